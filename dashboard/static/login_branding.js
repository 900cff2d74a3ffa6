/* The sign-in page shows the organisation's branding (GET /branding/{slug}: its own name and
   logo or its reseller's) once the organisation field holds a known login name. */
(function () {
  "use strict";
  var field = document.getElementById("login-tenant");
  var title = document.getElementById("login-title");
  var logo = document.getElementById("login-logo");
  if (!field || !title || !logo) return;
  var product = title.textContent;
  var timer = null;
  var asked = null;

  function show(branding) {
    title.textContent = (branding && branding.name) || product;
    if (branding && branding.logo_url) {
      logo.src = branding.logo_url;
      logo.hidden = false;
    } else {
      logo.hidden = true;
      logo.removeAttribute("src");
    }
  }

  function lookup() {
    var slug = field.value.trim().toLowerCase();
    if (slug === asked) return;
    asked = slug;
    if (!/^[a-z0-9][a-z0-9-]{1,40}$/.test(slug)) { show(null); return; }
    fetch("/branding/" + encodeURIComponent(slug), { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (b) { if (asked === slug) show(b); }, function () { show(null); });
  }

  field.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(lookup, 300);
  });
  field.addEventListener("change", lookup);
  lookup();
})();
