// Copy buttons: <button data-copy="text">. No inline scripts (the CSP forbids them).
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) return;
  var done = function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(button.dataset.copy).then(done);
  } else {
    var field = document.createElement("textarea");
    field.value = button.dataset.copy;
    document.body.appendChild(field);
    field.select();
    document.execCommand("copy");
    field.remove();
    done();
  }
});

// Running time and cost so far advance while the instance runs: <dd data-ticking
// data-seconds="N" data-hourly="2.49">. The server's figures come back with every htmx swap;
// in between, this counts on from them (an estimate, like the figure it starts from).
function formatDuration(seconds) {
  var hours = Math.floor(seconds / 3600);
  var minutes = Math.floor((seconds % 3600) / 60);
  var secs = seconds % 60;
  if (hours) return hours + " h " + minutes + " min";
  if (minutes) return minutes + " min " + secs + " s";
  return secs + " s";
}
// As the pages' money filter writes it (portal/lib/money.py): a symbol in front where the
// currency has one, its code after the number otherwise.
var SYMBOLS = { USD: "$", EUR: "€", GBP: "£" };
function formatMoney(amount, currency) {
  var digits = amount.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  var symbol = SYMBOLS[currency || "USD"];
  return symbol ? symbol + digits : digits + " " + currency;
}
function stamp(root) {
  // When the server's figures arrived: the page's load, or htmx's swap of the region.
  (root || document).querySelectorAll("[data-ticking]").forEach(function (element) {
    if (!element.dataset.startedAt) element.dataset.startedAt = String(Date.now());
  });
}
document.addEventListener("DOMContentLoaded", function () { stamp(document); });
document.addEventListener("htmx:load", function (event) { stamp(event.target); });
function tick() {
  stamp(document);
  document.querySelectorAll("[data-ticking]").forEach(function (element) {
    var elapsed = Math.floor((Date.now() - Number(element.dataset.startedAt)) / 1000);
    var seconds = Number(element.dataset.seconds) + elapsed;
    var duration = element.querySelector("[data-duration]");
    if (duration) duration.textContent = formatDuration(seconds);
    var cost = element.querySelector("[data-amount]");
    if (cost && element.dataset.hourly) {
      cost.textContent = formatMoney(
        seconds * Number(element.dataset.hourly) / 3600, element.dataset.currency
      );
    }
  });
}
setInterval(tick, 1000);
