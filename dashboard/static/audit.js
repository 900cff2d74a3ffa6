/* The audit log page (dashboard/audit_api.py): filters (tenant below the caller's, actor id,
 * action prefix, period), paging by offset, and a CSV export of the same selection.
 * Plain ES2020; all data goes into the page through textContent.
 */
(function () {
  "use strict";

  var PAGE = 50;
  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  function $(id) { return document.getElementById(id); }

  var offset = 0;

  function showError(text) {
    $("audit-error").textContent = text || "";
    $("audit-error").hidden = !text;
  }

  function when(iso) { var d = new Date(iso); return isNaN(d) ? (iso || "") : d.toLocaleString(); }

  // the filters as query parameters; "until" is inclusive on the page, exclusive in the API
  function params() {
    var p = new URLSearchParams();
    var set = function (name, value) { if (value) p.set(name, value); };
    set("tenant_id", $("au-tenant").value.trim());
    set("actor", $("au-actor").value.trim());
    set("action", $("au-action").value.trim());
    set("since", $("au-since").value);
    if ($("au-until").value) {
      var end = new Date($("au-until").value + "T00:00:00Z");
      end.setUTCDate(end.getUTCDate() + 1);
      p.set("until", end.toISOString().slice(0, 10));
    }
    return p;
  }

  function summary(value) {
    if (!value || typeof value !== "object" || !Object.keys(value).length) return "";
    var text = JSON.stringify(value);
    return text.length > 200 ? text.slice(0, 200) + "…" : text;
  }

  function target(t) {
    if (!t) return "";
    if (t.kind === "http") return t.method + " " + (t.route || t.path);
    return [t.kind, t.id || t.email || t.name || ""].filter(Boolean).join(" ");
  }

  function render(data) {
    var body = $("au-rows");
    clear(body);
    data.entries.forEach(function (e) {
      var tr = el("tr", "au-row");
      tr.dataset.action = e.action || "";
      tr.appendChild(el("td", "au-at", when(e.at)));
      tr.appendChild(el("td", "au-action", e.action));
      tr.appendChild(el("td", "au-actor", e.actor_name || e.actor_id || ""));
      tr.appendChild(el("td", "au-target", target(e.target)));
      var changes = el("td", "au-changes", summary(e.changes));
      changes.title = JSON.stringify(e.changes || {});
      tr.appendChild(changes);
      tr.appendChild(el("td", "au-ip", e.ip || ""));
      body.appendChild(tr);
    });
    $("au-empty").hidden = data.entries.length > 0;
    $("au-prev").disabled = offset === 0;
    $("au-next").disabled = !data.more;
    $("au-page").textContent = data.entries.length
      ? (offset + 1) + "–" + (offset + data.entries.length) : "";
    var csv = params();
    csv.set("format", "csv");
    $("au-csv").href = "/api/audit?" + csv.toString();
  }

  async function load() {
    showError("");
    var p = params();
    p.set("offset", String(offset));
    p.set("limit", String(PAGE));
    try {
      render(await api("GET", "/api/audit?" + p.toString()));
    } catch (e) {
      if (e && e.status === 401) return;
      showError(e && e.message ? e.message : String(e));
    }
  }

  $("au-filters").addEventListener("submit", function (ev) { ev.preventDefault(); offset = 0; load(); });
  $("au-prev").addEventListener("click", function () { offset = Math.max(0, offset - PAGE); load(); });
  $("au-next").addEventListener("click", function () { offset += PAGE; load(); });
  $("logout").addEventListener("click", function (ev) { ev.preventDefault(); HubDesk.logout(); });

  async function boot() {
    try {
      var me = await api("GET", "/api/me");
      $("tenant-name").textContent = me.tenant_name || "";
      $("user-name").textContent = me.name || "";
    } catch (e) {
      if (e && e.status !== 401) showError(e.message);
      return;
    }
    var wanted = new URLSearchParams(window.location.search).get("tenant_id");
    if (wanted) $("au-tenant").value = wanted;
    await load();
  }

  boot();
})();
