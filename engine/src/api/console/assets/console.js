// Live updates for the console's pages, and nothing else: every page works without it.
//
// An element with `data-refresh="URL"` is replaced by the HTML fragment at URL:
//   - with `data-events="URL"` too, whenever that event stream (a run's) says something
//     changed, at most every 300 ms, and once more when the run ends;
//   - without it, every 5 seconds while the page is visible.
"use strict";

(function () {
  function refresher(el) {
    var url = el.getAttribute("data-refresh");
    var busy = false;
    var again = false;
    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.redirected || r.status === 401) { window.location.reload(); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined) {
            var focused = document.activeElement && document.activeElement.id;
            el.innerHTML = html;
            if (focused) {
              var f = document.getElementById(focused);
              if (f) { f.focus(); }
            }
          }
        })
        .catch(function () { /* the next event or tick tries again */ })
        .finally(function () {
          busy = false;
          if (again) { again = false; setTimeout(refresh, 300); }
        });
    }
    return refresh;
  }

  function follow(el) {
    var refresh = refresher(el);
    var events = el.getAttribute("data-events");
    if (events && window.EventSource) {
      var timer = null;
      var soon = function () {
        if (timer) { return; }
        timer = setTimeout(function () { timer = null; refresh(); }, 300);
      };
      var source = new EventSource(events);
      source.addEventListener("step", soon);
      source.addEventListener("run", function (e) {
        soon();
        try {
          var data = JSON.parse(e.data);
          if (["succeeded", "failed", "cancelled"].indexOf(data.status) >= 0) {
            source.close();
            setTimeout(refresh, 600);
          }
        } catch (_) { /* not JSON: keep following */ }
      });
      source.onerror = function () {
        // The stream ended (the run is over) or the server went away: fall back to polling.
        source.close();
        setInterval(function () { if (!document.hidden) { refresh(); } }, 5000);
      };
    } else {
      setInterval(function () { if (!document.hidden) { refresh(); } }, 5000);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.querySelectorAll("[data-refresh]");
    for (var i = 0; i < live.length; i++) { follow(live[i]); }
  });
})();
