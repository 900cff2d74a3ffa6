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

  async function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
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

  window.HubDesk = { el: el, clear: clear, api: api, ApiError: ApiError, detailText: detailText };
})();
