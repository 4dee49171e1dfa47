/* mlapi portal: draws usage charts with the vendored Chart.js.
   Each <canvas data-chart="ID"> reads its data from <script type="application/json" id="ID">
   (Django's json_script), shaped {labels: [...], series: [{label, data, kind?}]}.
   The same numbers are always in a table next to the chart, so the chart is decoration. */
(function () {
  "use strict";

  // Predictions (bars), requests and errors (lines): blue, slate, red; AA on white.
  var COLOURS = ["#1d4ed8", "#4a5563", "#b42318", "#166534"];

  function readData(id) {
    var node = document.getElementById(id);
    if (!node) { return null; }
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function draw(canvas) {
    var data = readData(canvas.getAttribute("data-chart"));
    if (!data || typeof window.Chart === "undefined") { return; }
    var datasets = data.series.map(function (s, i) {
      var colour = COLOURS[i % COLOURS.length];
      return {
        label: s.label,
        data: s.data,
        type: s.kind || "bar",
        backgroundColor: colour,
        borderColor: colour,
        borderWidth: s.kind === "line" ? 2 : 0,
        pointRadius: s.kind === "line" ? 1.5 : 0,
        yAxisID: s.axis || "y",
        order: s.kind === "line" ? 0 : 1  // lines drawn over the bars
      };
    });
    var scales = {
      x: { offset: true, ticks: { maxRotation: 0, autoSkip: true } },
      y: { beginAtZero: true, position: "left", ticks: { precision: 0 } }
    };
    if (data.series.some(function (s) { return s.axis === "y2"; })) {
      scales.y2 = {
        beginAtZero: true, position: "right", ticks: { precision: 0 }, grid: { drawOnChartArea: false }
      };
    }
    canvas.mlapiChart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: data.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom" } },
        scales: scales
      }
    });
    canvas.setAttribute("data-rendered", "true");
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("canvas[data-chart]"), draw);
  });
})();
