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
    if (!resp.ok) {
      var msg = (data && detailText(data.detail)) || "Request failed (" + resp.status + ")";
      throw new ApiError(resp.status, msg);
    }
    return data;
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
    csrfHeaders: csrfHeaders, logout: logout,
  };
})();
