/* Shared by the staff pages (agent desk, routing, wallboard): DOM helpers and the JSON API
   client (same-origin cookie session; 401 goes to the login page; FastAPI error details
   turned into one readable line). */
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = String(text);
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function ApiError(status, message) {
    this.status = status;
    this.message = message;
  }

  function detailText(detail) {
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail.map(function (d) {
        var loc = Array.isArray(d && d.loc) ? d.loc.filter(function (p) { return p !== "body"; }).join(".") : "";
        return (loc ? loc + ": " : "") + (d && d.msg ? d.msg : String(d));
      }).join("; ");
    }
    return null;
  }

  // The double-submit CSRF token (hub/csrf.py): the hub_csrf cookie echoed in X-CSRF-Token on
  // every state-changing request. Pages that call fetch themselves (uploads, logout) merge
  // csrfHeaders() into their headers.
  function csrfToken() {
    var m = document.cookie.match(/(?:^|;\s*)hub_csrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function csrfHeaders(headers) {
    var out = {};
    Object.keys(headers || {}).forEach(function (k) { out[k] = headers[k]; });
    var token = csrfToken();
    if (token) out["X-CSRF-Token"] = token;
    return out;
  }

  async function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET" && method !== "HEAD") opts.headers = csrfHeaders(opts.headers);
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    var resp;
    try {
      resp = await fetch(path, opts);
    } catch (e) {
      throw new ApiError(0, "Cannot reach the server");
    }
    if (resp.status === 401) {
      window.location.assign("/login");
      throw new ApiError(401, "Not signed in");
    }
    if (resp.status === 204) return null;
    var data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 403 && data && data.code === "password_change_required" &&
        window.location.pathname !== "/password") {
      // an admin-set password: nothing works until it is changed (hub/auth.py current_user)
      window.location.assign(passwordPage());
    }
    if (!resp.ok) {
      var msg = (data && detailText(data.detail)) || "Request failed (" + resp.status + ")";
      throw new ApiError(resp.status, msg);
    }
    return data;
  }

  // The own-password form, returning here after the change.
  function passwordPage() {
    return "/password?next=" + encodeURIComponent(window.location.pathname + window.location.search +
      window.location.hash);
  }

  // POST /api/auth/logout (with the CSRF header), then go to the /logout page either way.
  function logout() {
    var go = function () { window.location.assign("/logout"); };
    try {
      fetch("/api/auth/logout", { method: "POST", credentials: "same-origin", keepalive: true,
        headers: csrfHeaders() }).then(go, go);
    } catch (e) { go(); }
  }

  window.HubDesk = {
    el: el, clear: clear, api: api, ApiError: ApiError, detailText: detailText,
    csrfHeaders: csrfHeaders, logout: logout, passwordPage: passwordPage,
  };
})();

/* Branding (hub/branding.py): the tenant's own or inherited name and logo in the top bar of
   every staff page that has one, and a reminder when an admin reset the password. */
(function () {
  "use strict";

  function apply(branding) {
    var brand = document.querySelector(".topbar .brand");
    if (!brand || !branding || (!branding.name && !branding.logo_url)) return;
    while (brand.firstChild) brand.removeChild(brand.firstChild);
    if (branding.logo_url) {
      var img = document.createElement("img");
      img.className = "brand-logo";
      img.alt = "";
      img.src = branding.logo_url;
      brand.appendChild(img);
    }
    var name = document.createElement("span");
    name.className = "brand-name";
    name.textContent = branding.name || "Contact hub";
    brand.appendChild(name);
    brand.setAttribute("data-branded", "true");
  }

  function remind() {
    var bar = document.querySelector(".topbar");
    if (!bar || document.getElementById("must-change-password") || window.location.pathname === "/admin") return;
    var link = document.createElement("a");
    link.id = "must-change-password";
    link.className = "topbar-link topbar-warning";
    link.href = window.HubDesk && window.HubDesk.passwordPage ? window.HubDesk.passwordPage() : "/password";
    link.textContent = "Please change your password";
    bar.insertBefore(link, bar.querySelector(".user-name") || null);
  }

  function load() {
    if (!document.querySelector(".topbar .brand")) return;
    fetch("/api/me", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (me) {
        if (!me) return;
        apply(me.branding);
        if (me.must_change_password) remind();
      }, function () { /* the page's own calls report an unreachable server */ });
  }

  if (window.HubDesk) window.HubDesk.applyBranding = apply;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", load);
  else load();
})();
