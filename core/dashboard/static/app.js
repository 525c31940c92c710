// Sluice dashboard: keep the live sections of the page fresh, and ask
// before destructive queue actions. The page works without it.
(function () {
  "use strict";
  var every = 5000;
  function refresh() {
    if (document.hidden) { return; }
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh) { el.replaceWith(document.importNode(fresh, true)); }
        });
      })
      .catch(function () {});
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (document.querySelector("[data-live]")) { setInterval(refresh, every); }
    document.querySelectorAll("button.op.remove, button.op.bounce").forEach(function (b) {
      b.form.addEventListener("submit", function (e) {
        if (!confirm(b.textContent.trim() + " this message?")) { e.preventDefault(); }
      });
    });
  });
})();
