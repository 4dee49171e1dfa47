/* mlapi portal: live progress for batch jobs without reloading the page.
   Rows <tr data-job-url="/portal/jobs/ID/status" data-status="..."> are polled with the
   session cookie (same origin; the JSON is the same as GET /api/v1/jobs/ID) until they finish; their progress bar, counts, status badge and
   download/cancel controls follow the job's state. */
(function () {
  "use strict";

  var FINISHED = { succeeded: true, failed: true, cancelled: true };
  var INTERVAL_MS = 1000;

  function text(row, selector, value) {
    var node = row.querySelector(selector);
    if (node) { node.textContent = value; }
  }

  function duration(seconds) {
    if (seconds < 60) { return Math.ceil(seconds) + " s"; }
    if (seconds < 3600) { return Math.round(seconds / 60) + " min"; }
    return (seconds / 3600).toFixed(1) + " h";
  }

  /* "41,230 rows/s · about 12 s left" while running; the average rate once finished. */
  function speed(job) {
    if (!job.rows_per_second) { return ""; }
    var rate = Math.round(job.rows_per_second).toLocaleString() + " rows/s";
    if (FINISHED[job.status]) { return rate; }
    var workers = job.workers > 1 ? " on " + job.workers + " workers" : "";
    var eta = job.eta_seconds === null ? "" : " · about " + duration(job.eta_seconds) + " left";
    return rate + workers + eta;
  }

  function update(row, job) {
    var progress = row.querySelector("progress");
    if (progress) {
      progress.max = Math.max(job.rows_total, 1);
      progress.value = job.rows_done;
      progress.textContent = job.rows_done + " of " + job.rows_total;
    }
    text(row, "[data-field=rows]", job.rows_done + " / " + job.rows_total);
    text(row, "[data-field=failed]", String(job.rows_failed));
    text(row, "[data-field=speed]", speed(job));
    var badge = row.querySelector("[data-field=status] .badge");
    if (badge) {
      badge.textContent = job.status;
      badge.className = "badge " + job.status;
    }
    if (job.error) { text(row, "[data-field=error]", job.error); }
    var previous = row.getAttribute("data-status");
    row.setAttribute("data-status", job.status);
    if (FINISHED[job.status]) {
      var download = row.querySelector("[data-role=download]");
      if (download && job.status === "succeeded") { download.hidden = false; }
      var cancel = row.querySelector("[data-role=cancel]");
      if (cancel) { cancel.hidden = true; }
      if (previous !== job.status && window.mlapiAnnounce) {
        window.mlapiAnnounce("Job " + row.getAttribute("data-job-name") + " " + job.status + ".");
      }
    }
  }

  function poll(row) {
    if (FINISHED[row.getAttribute("data-status")]) { return; }
    fetch(row.getAttribute("data-job-url"), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" },
      cache: "no-store"
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (job) {
      update(row, job);
      if (!FINISHED[job.status]) { window.setTimeout(function () { poll(row); }, INTERVAL_MS); }
    }).catch(function () {
      text(row, "[data-field=error]", "Live updates paused; reload the page to refresh.");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("tr[data-job-url]"), poll);
  });
})();
