/* Small inline-SVG charts for the staff pages: grouped bars with an optional percentage line.
 *
 * Why our own instead of a chart library: the hub serves every file itself (no CDN at run
 * time, installs may be offline) and the pages need only a few bar / line charts, which take
 * less code than wiring a library in. Everything is built with createElementNS and
 * textContent, so no data ever becomes markup.
 *
 *   HubCharts.bars(container, {
 *     categories: ["09:00", "09:15"],
 *     series: [{ name: "Offered", key: "offered", values: [3, 5] }, ...],
 *     line: { name: "Service level", key: "service_level", values: [0.8, null] },  // 0..1, optional
 *   });
 */
(function () {
  "use strict";

  var NS = "http://www.w3.org/2000/svg";
  var WIDTH = 960;
  var HEIGHT = 320;
  var PAD = { top: 36, right: 56, bottom: 64, left: 52 };
  var COLORS = ["#3b6fd8", "#2f9e62", "#d9534f", "#f0a500", "#7b61c9", "#4aa3b5"];
  var LINE_COLOR = "#222";
  var MAX_BAR = 48;  // a day with one interval should not be one wall of colour

  function node(tag, attrs, text) {
    var n = document.createElementNS(NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, String(attrs[k])); });
    if (text != null) n.textContent = String(text);
    return n;
  }

  // A "nice" axis maximum (1, 2, 2.5, 5 or 10 times a power of ten) and its tick step.
  function niceScale(max) {
    if (!(max > 0)) return { max: 1, step: 1 };
    var raw = max / 4;
    var power = Math.pow(10, Math.floor(Math.log10(raw)));
    var step = [1, 2, 2.5, 5, 10].map(function (m) { return m * power; }).find(function (s) { return s >= raw; });
    if (step < 1 && max >= 1) step = 1;
    return { max: Math.ceil(max / step) * step, step: step };
  }

  function tickLabel(value) {
    return Math.abs(value) >= 1000 ? (value / 1000).toLocaleString() + "k" : value.toLocaleString();
  }

  function bars(container, spec) {
    while (container.firstChild) container.removeChild(container.firstChild);
    var categories = spec.categories || [];
    var series = spec.series || [];
    var line = spec.line || null;
    var svg = node("svg", {
      viewBox: "0 0 " + WIDTH + " " + HEIGHT, class: "hc-chart", role: "img",
      "aria-label": spec.title || "chart", preserveAspectRatio: "xMidYMid meet",
    });
    container.appendChild(svg);
    if (!categories.length || !series.length) {
      svg.appendChild(node("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "hc-empty" },
        spec.empty || "No data"));
      return svg;
    }
    var plotW = WIDTH - PAD.left - PAD.right;
    var plotH = HEIGHT - PAD.top - PAD.bottom;
    var max = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v > max) max = v; }); });
    var scale = niceScale(max);
    var y = function (v) { return PAD.top + plotH - (v / scale.max) * plotH; };

    var grid = node("g", { class: "hc-grid" });
    for (var t = 0; t <= scale.max + 1e-9; t += scale.step) {
      grid.appendChild(node("line", { x1: PAD.left, x2: PAD.left + plotW, y1: y(t), y2: y(t) }));
      grid.appendChild(node("text", { x: PAD.left - 6, y: y(t) + 4, "text-anchor": "end", class: "hc-tick" }, tickLabel(t)));
    }
    svg.appendChild(grid);

    var band = plotW / categories.length;
    var barW = Math.min(MAX_BAR, (band * 0.8) / series.length);
    var groupW = barW * series.length;
    var labelEvery = Math.max(1, Math.ceil(categories.length / 16));
    var barsG = node("g", { class: "hc-bars" });
    categories.forEach(function (cat, i) {
      var x0 = PAD.left + i * band + (band - groupW) / 2;
      series.forEach(function (s, j) {
        var v = Number(s.values[i]) || 0;
        var rect = node("rect", {
          x: x0 + j * barW, y: y(v), width: Math.max(1, barW - 1), height: Math.max(0, PAD.top + plotH - y(v)),
          fill: s.color || COLORS[j % COLORS.length], class: "hc-bar", "data-series": s.key || s.name,
          "data-category": cat, "data-value": v,
        });
        rect.appendChild(node("title", null, cat + " · " + s.name + ": " + v.toLocaleString()));
        barsG.appendChild(rect);
      });
      if (i % labelEvery === 0) {
        var lx = PAD.left + i * band + band / 2;
        var label = node("text", {
          x: lx, y: PAD.top + plotH + 14, "text-anchor": "end", class: "hc-cat",
          transform: "rotate(-35 " + lx + " " + (PAD.top + plotH + 14) + ")",
        }, cat);
        svg.appendChild(label);
      }
    });
    svg.appendChild(barsG);
    svg.appendChild(node("line", { x1: PAD.left, x2: PAD.left + plotW, y1: PAD.top + plotH, y2: PAD.top + plotH, class: "hc-axis" }));

    if (line) {
      var yl = function (v) { return PAD.top + plotH - v * plotH; };  // 0..1 on the right axis
      [0, 0.25, 0.5, 0.75, 1].forEach(function (p) {
        svg.appendChild(node("text", { x: PAD.left + plotW + 6, y: yl(p) + 4, class: "hc-tick" }, Math.round(p * 100) + " %"));
      });
      var d = "";
      var lineG = node("g", { class: "hc-line", "data-series": line.key || line.name });
      categories.forEach(function (cat, i) {
        var v = line.values[i];
        if (v == null || isNaN(v)) return;
        var cx = PAD.left + i * band + band / 2;
        d += (d ? " L " : "M ") + cx.toFixed(1) + " " + yl(v).toFixed(1);
        var dot = node("circle", { cx: cx, cy: yl(v), r: 3.5, fill: LINE_COLOR, class: "hc-point", "data-value": v });
        dot.appendChild(node("title", null, cat + " · " + line.name + ": " + Math.round(v * 1000) / 10 + " %"));
        lineG.appendChild(dot);
      });
      if (d) lineG.insertBefore(node("path", { d: d, fill: "none", stroke: LINE_COLOR, "stroke-width": 2 }), lineG.firstChild);
      svg.appendChild(lineG);
    }

    var legend = node("g", { class: "hc-legend" });
    var lx0 = PAD.left;
    series.concat(line ? [{ name: line.name, color: LINE_COLOR, isLine: true }] : []).forEach(function (s, j) {
      var ly = 16;
      legend.appendChild(s.isLine
        ? node("line", { x1: lx0, x2: lx0 + 14, y1: ly - 4, y2: ly - 4, stroke: LINE_COLOR, "stroke-width": 2 })
        : node("rect", { x: lx0, y: ly - 10, width: 12, height: 12, fill: s.color || COLORS[j % COLORS.length] }));
      legend.appendChild(node("text", { x: lx0 + 18, y: ly, class: "hc-legend-text" }, s.name));
      lx0 += 30 + s.name.length * 8;
    });
    svg.appendChild(legend);
    return svg;
  }

  window.HubCharts = { bars: bars, niceScale: niceScale };
})();
