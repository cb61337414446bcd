// fieldsync console: draws a page's map from the JSON in its data-day or
// data-points attribute. Markers are vector circles, so they show with no
// tiles at all (offline, or tiles blocked); tiles come from data-tiles
// when it is set.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || typeof L === "undefined") { return; }
  var data = JSON.parse(el.getAttribute("data-day") || el.getAttribute("data-points") || "{}");
  var map = L.map(el, { preferCanvas: false });
  var tiles = el.getAttribute("data-tiles");
  if (tiles) {
    L.tileLayer(tiles, { maxZoom: 19, attribution: "&copy; OpenStreetMap" }).addTo(map);
  }
  var bounds = [];
  function point(p, cls, radius) {
    var m = L.circleMarker([p.lat, p.lng], { radius: radius, className: cls, weight: 2 });
    m.bindTooltip(p.label);
    m.addTo(map);
    bounds.push([p.lat, p.lng]);
    return m;
  }
  (data.stops || []).forEach(function (p) { point(p, "fs-marker fs-stop", 9); });
  if ((data.route || []).length > 1) {
    L.polyline(data.route, { className: "fs-route", weight: 3 }).addTo(map);
  }
  (data.visits || []).forEach(function (p) { point(p, "fs-marker fs-visit fs-" + p.kind, 6); });
  (data.points || []).forEach(function (p) { point(p, "fs-marker fs-outlet fs-grade-" + p.kind, 6); });
  if (bounds.length > 0) {
    map.fitBounds(bounds, { padding: [30, 30], maxZoom: 16 });
  } else {
    map.setView([0, 0], 2);
  }
  el.setAttribute("data-markers", String(bounds.length));
})();
