// First visit without a time zone set: tell the portal the browser's, once (see accounts/views.py).
(function () {
  var script = document.currentScript;
  var zone = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!script || !zone) return;
  fetch(script.dataset.url, {
    method: "POST",
    credentials: "same-origin",
    headers: {"X-CSRFToken": script.dataset.csrf, "Content-Type": "application/x-www-form-urlencoded"},
    body: "time_zone=" + encodeURIComponent(zone)
  });
})();
