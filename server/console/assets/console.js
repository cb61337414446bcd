// fieldsync console: sortable report tables. Click a column head to sort
// by it; click again to reverse. Cells sort by their data-sort value,
// numerically when both values are numbers.
(function () {
  "use strict";
  function key(td) { return td ? td.getAttribute("data-sort") || "" : ""; }
  function compare(a, b) {
    var x = parseFloat(a), y = parseFloat(b);
    if (!isNaN(x) && !isNaN(y) && String(x) === a && String(y) === b) { return x - y; }
    if (!isNaN(x) && !isNaN(y) && /^-?[0-9.]+$/.test(a) && /^-?[0-9.]+$/.test(b)) { return x - y; }
    return a < b ? -1 : a > b ? 1 : 0;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (th) {
      th.classList.add("sort");
      th.addEventListener("click", function () {
        var col = Number(th.getAttribute("data-col"));
        var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
        table.querySelectorAll("thead th").forEach(function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) { return dir * compare(key(r1.cells[col]), key(r2.cells[col])); });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
})();
