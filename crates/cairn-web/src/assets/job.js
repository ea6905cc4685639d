// Live progress of a restore or check: poll the job's status and reload
// the page (which then shows the summary) once it has finished.
(function () {
  var job = document.getElementById("job");
  if (!job) return;
  var url = job.getAttribute("data-status");
  var bar = document.getElementById("bar");
  var done = document.getElementById("done");
  function poll() {
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.state !== "running") { location.reload(); return; }
        bar.value = s.done;
        done.textContent = s.done_text;
        setTimeout(poll, 500);
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 300);
})();
