/* Shared by the outbound compliance pages (/dnc and /approvals): the form upload (HubDesk.api
 * sends JSON only), date display, status lines and error boxes, the invalid-rows table of an
 * import report, and the top bar (who is signed in, log out).
 * Plain ES2020; all data goes into the page through textContent / value.
 */
(function () {
  "use strict";

  var D = window.HubDesk;

  // POST a FormData (multipart: files and fields); errors as HubDesk.ApiError.
  async function upload(path, form) {
    var resp;
    try {
      resp = await fetch(path, { method: "POST", credentials: "same-origin", body: form,
        headers: HubDesk.csrfHeaders({ Accept: "application/json" }) });
    } catch (e) {
      throw new D.ApiError(0, "Cannot reach the server");
    }
    if (resp.status === 401) { window.location.assign("/login"); throw new D.ApiError(401, "Not signed in"); }
    var data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      throw new D.ApiError(resp.status, (data && D.detailText(data.detail)) || "Request failed (" + resp.status + ")");
    }
    return data;
  }

  function when(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  // The end of a chosen day (an <input type=date> value) in the browser's time zone, as ISO.
  function endOfDay(value) {
    if (!value) return null;
    var d = new Date(value + "T23:59:59");
    return isNaN(d) ? null : d.toISOString();
  }

  function say(node, text, isError) {
    node.textContent = text || "";
    node.classList.toggle("rt-status-error", !!isError);
  }

  function message(e) { return e && e.message ? e.message : String(e); }

  // A page-wide error box: shows the text given, hides itself on none.
  function errorBox(node) {
    return function (text) {
      node.textContent = text || "";
      node.hidden = !text;
    };
  }

  // A catch handler that writes the error into a status line (a 401 has already gone to the login).
  function failed(node) {
    return function (e) {
      if (e && e.status === 401) return;
      say(node, message(e), true);
    };
  }

  // The invalid rows of an import report (line, value, why) as a table.
  function invalidTable(rows, className) {
    var table = D.el("table", "rt-table hl-invalid" + (className ? " " + className : ""));
    var head = D.el("thead"), h = D.el("tr");
    ["Line", "Value", "Why"].forEach(function (t) { h.appendChild(D.el("th", null, t)); });
    head.appendChild(h);
    table.appendChild(head);
    var body = D.el("tbody");
    rows.forEach(function (bad) {
      var tr = D.el("tr");
      tr.appendChild(D.el("td", "num", bad.line));
      tr.appendChild(D.el("td", null, bad.value));
      tr.appendChild(D.el("td", null, bad.reason));
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  function button(text, className) {
    var node = D.el("button", "btn " + (className || ""), text);
    node.type = "button";
    return node;
  }

  // Fill the top bar; resolves to /api/me (roles included).
  async function signedIn() {
    var logout = document.getElementById("logout");
    logout.addEventListener("click", function (ev) {
      ev.preventDefault();
      var leave = function () { window.location.assign("/logout"); };
      try {
        fetch("/api/auth/logout", { method: "POST", credentials: "same-origin", keepalive: true,
        headers: HubDesk.csrfHeaders() }).then(leave, leave);
      } catch (e) { leave(); }
    });
    var me = await D.api("GET", "/api/me");
    document.getElementById("user-name").textContent = me.name || me.email || "";
    document.getElementById("tenant-name").textContent = me.tenant_name || me.tenant_slug || "";
    return me;
  }

  window.HubCompliance = {
    upload: upload, when: when, endOfDay: endOfDay, say: say, message: message, button: button,
    errorBox: errorBox, failed: failed, invalidTable: invalidTable, signedIn: signedIn,
  };
})();
