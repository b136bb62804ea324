// The launch page. A click on a type's region cell chooses that type and that region; choosing
// a type whose offer does not include the region chosen picks its first region. Each change
// reaches the form's htmx summary through the "change" event it listens to.
(function () {
  function form() { return document.querySelector("[data-testid=launch-form]"); }
  function regionSelect() { return document.querySelector("select[name=region]"); }
  function changed(element) { element.dispatchEvent(new Event("change", { bubbles: true })); }

  function fitRegion(radio) {
    var select = regionSelect();
    var regions = (radio.dataset.regions || "").trim().split(/\s+/).filter(Boolean);
    if (select && regions.length && regions.indexOf(select.value) === -1) {
      select.value = regions[0];
    }
    document.querySelectorAll("[data-testid=offers] tbody tr").forEach(function (row) {
      row.classList.toggle("chosen", row.contains(radio));
    });
  }

  document.addEventListener("click", function (event) {
    var cell = event.target.closest("td.region-cell");
    if (!cell || !form()) return;
    var radio = document.getElementById("type-" + cell.dataset.type);
    var select = regionSelect();
    if (!radio || !select) return;
    radio.checked = true;
    fitRegion(radio);
    select.value = cell.dataset.region;
    changed(select);
  });

  document.addEventListener("change", function (event) {
    var radio = event.target;
    if (radio.name === "instance_type" && radio.checked) fitRegion(radio);
  }, true);  // capture: the region is set before htmx reads the form for the summary
})();
