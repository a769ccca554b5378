// relayq console: optional live refresh. Pages work without this file;
// with it, a page whose <main> has data-live="N" re-reads itself every N
// seconds and swaps <main> in place, and times stay relative.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !main.dataset.live || !window.fetch || !window.DOMParser) return;
  var every = Math.max(2, parseInt(main.dataset.live, 10) || 3) * 1000;
  function refresh() {
    if (document.hidden) return;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        var stamp = doc.getElementById("rendered");
        if (fresh) main.innerHTML = fresh.innerHTML;
        var here = document.getElementById("rendered");
        if (stamp && here) here.textContent = stamp.textContent;
        document.body.dataset.refreshed = String(Date.now());
      })
      .catch(function () {});
  }
  setInterval(refresh, every);
})();
