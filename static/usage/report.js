// Draws the admin usage report's chart from the JSON the page embeds (CSP: no inline script).
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("usage-chart-data");
    var canvas = document.getElementById("usage-chart");
    if (!source || !canvas || typeof window.Chart === "undefined") {
      return;
    }
    var data = JSON.parse(source.textContent);
    var series = [
      ["requests", "Requests", "#417690"],
      ["errors", "Errors", "#ba2121"],
      ["throttled", "Throttled (429)", "#e0a800"],
    ];
    canvas.chart = new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: series.map(function (s) {
          return { label: s[1], data: data[s[0]], borderColor: s[2], backgroundColor: s[2], tension: 0 };
        }),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
