// Keyboard access to regions that scroll sideways (wide tables, code examples): they take
// focus, so arrow keys scroll them (axe-core's scrollable-region-focusable). Run on load and
// on every htmx swap.
(function () {
  function focusable(root) {
    (root || document).querySelectorAll(".table-wrap, pre").forEach(function (element) {
      if (element.scrollWidth > element.clientWidth + 1 && !element.hasAttribute("tabindex")) {
        element.setAttribute("tabindex", "0");
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { focusable(document); });
  document.addEventListener("htmx:load", function (event) { focusable(event.target); });
  window.addEventListener("resize", function () { focusable(document); });
})();
