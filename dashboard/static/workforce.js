/* Workforce planning (/workforce): the Erlang C calculator (GET /api/reports/erlang) and the
 * day's staffing, required against actual per 15 minutes (GET /api/reports/staffing).
 * The maths runs on the server (reports/erlang.py) so the page and the API never disagree.
 * Plain ES2020; all data goes into the page through textContent.
 */
(function () {
  "use strict";

  var D = window.HubDesk;
  var el = D.el, clear = D.clear, api = D.api;
  function $(id) { return document.getElementById(id); }

  function showError(text) {
    $("wf-error").textContent = text || "";
    $("wf-error").hidden = !text;
  }
  function failed(e, what) {
    if (e && e.status === 401) return;
    showError((e && e.message) || ("Could not load " + what));
  }

  function pct(ratio) { return ratio == null ? "–" : (Math.round(ratio * 1000) / 10) + " %"; }
  function secs(s) { return s == null ? "–" : (s < 10 ? s.toFixed(1) : String(Math.round(s))) + " s"; }
  function num(x, digits) { return x == null ? "–" : Number(x).toFixed(digits); }
  function cell(text, cls) { return el("td", cls || null, text == null ? "" : String(text)); }
  function share(id) {  // a percentage field as a share, or null when empty
    var v = $(id).value.trim();
    return v === "" ? null : Number(v) / 100;
  }

  // ---- the calculator
  async function calculate() {
    showError("");
    var q = new URLSearchParams();
    q.set("contacts", $("wf-contacts").value);
    q.set("interval_min", $("wf-interval").value);
    q.set("aht_s", $("wf-aht").value);
    q.set("sl_seconds", $("wf-sl-seconds").value || "0");
    var sl = share("wf-sl");
    q.set("sl_target", String(sl == null ? 0 : sl));  // 0: no service-level goal
    if ($("wf-max-asa").value.trim()) q.set("max_asa_s", $("wf-max-asa").value.trim());
    var occ = share("wf-max-occ");
    if (occ != null) q.set("max_occupancy", String(occ));
    q.set("shrinkage", String(share("wf-shrinkage") || 0));
    try {
      var data = await api("GET", "/api/reports/erlang?" + q.toString());
      renderCalc(data);
    } catch (e) { failed(e, "the calculation"); }
  }

  function renderCalc(data) {
    var r = data.required;
    $("wf-result").hidden = false;
    $("wf-agents").textContent = String(r.agents);
    $("wf-scheduled").textContent = String(r.scheduled);
    $("wf-service-level").textContent = pct(r.service_level);
    $("wf-asa").textContent = secs(r.asa_s);
    $("wf-occupancy").textContent = pct(r.occupancy);
    $("wf-pwait").textContent = pct(r.p_wait);
    $("wf-traffic").textContent = num(data.traffic, 2);
    var tbody = $("wf-option-rows");
    clear(tbody);
    (data.table || []).forEach(function (row) {
      var tr = el("tr", row.agents === r.agents ? "wf-chosen" : null);
      tr.setAttribute("data-agents", String(row.agents));
      tr.appendChild(cell(row.agents, "num"));
      tr.appendChild(cell(row.scheduled, "num"));
      tr.appendChild(cell(pct(row.service_level), "num"));
      tr.appendChild(cell(row.asa_s == null ? "∞" : secs(row.asa_s), "num"));
      tr.appendChild(cell(pct(row.occupancy), "num"));
      tr.appendChild(cell(pct(row.p_wait), "num"));
      tbody.appendChild(tr);
    });
    $("wf-options").hidden = !(data.table || []).length;
  }

  // ---- the day's staffing
  async function loadDay() {
    showError("");
    var q = new URLSearchParams();
    if ($("wf-day").value) q.set("day", $("wf-day").value);
    if ($("wf-queue").value.trim()) q.set("queue", $("wf-queue").value.trim());
    q.set("shrinkage", String(share("wf-day-shrinkage") || 0));
    q.set("weeks", $("wf-weeks").value);
    try {
      var data = await api("GET", "/api/reports/staffing?" + q.toString());
      renderDay(data);
    } catch (e) { failed(e, "the staffing"); }
  }

  function renderDay(data) {
    if (!$("wf-day").value) $("wf-day").value = data.day;
    var t = data.totals || {};
    $("wf-day-summary").textContent = data.day + " (" + data.timezone + "): " + t.contacts + " contacts" +
      (data.history_weeks ? " (" + num(t.forecast, 1) + " forecast from " + data.history_weeks + " weeks)" : "") + ", peak " +
      t.peak_required + " agents needed (" + t.peak_scheduled + " to schedule), " + t.understaffed_intervals +
      " under-staffed intervals. Goal " + pct(data.goal.sl_target) + " within " + data.goal.sl_seconds +
      " s; contacts read from " + data.sources.forecast + ", agents from " + data.sources.actual + ".";
    var tbody = $("wf-staffing-rows");
    clear(tbody);
    var hide = $("wf-hide-empty").checked;
    var peak = Math.max(1, t.peak_scheduled || 1);
    var shown = 0;
    (data.intervals || []).forEach(function (r) {
      var quiet = !r.contacts && !r.forecast && !r.logged_in;
      if (hide && quiet) return;
      shown += 1;
      var tr = el("tr", "wf-interval" + (r.understaffed ? " wf-under" : ""));
      tr.setAttribute("data-start", r.label);
      tr.appendChild(cell(r.label));
      tr.appendChild(cell(r.contacts, "num wf-contacts"));
      tr.appendChild(cell(num(r.forecast, data.history_weeks ? 1 : 0), "num wf-forecast"));
      tr.appendChild(cell(r.forecast ? secs(r.aht_s) : "–", "num"));
      tr.appendChild(cell(num(r.traffic, 2), "num"));
      tr.appendChild(cell(r.required, "num wf-required"));
      var scheduled = cell(r.scheduled, "num wf-scheduled");
      var bar = el("span", "wf-bar");
      bar.style.width = Math.round(60 * r.scheduled / peak) + "px";
      scheduled.appendChild(bar);
      tr.appendChild(scheduled);
      tr.appendChild(cell(r.logged_in == null ? "–" : num(r.logged_in, 1), "num wf-logged-in"));
      tr.appendChild(cell(r.on_phones == null ? "–" : num(r.on_phones, 1), "num"));
      tr.appendChild(cell(r.gap == null ? "–" : (r.gap > 0 ? "+" : "") + num(r.gap, 1), "num wf-gap"));
      tbody.appendChild(tr);
    });
    if (!shown) {
      var tr = el("tr");
      var td = el("td", "empty-note", "No contacts and no agents logged in on this day.");
      td.colSpan = 10;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }

  async function loadQueues() {
    try {
      var queues = await api("GET", "/api/queues");
      var list = $("wf-queue-names");
      clear(list);
      (queues || []).forEach(function (q) {
        var option = el("option");
        option.value = q.name;
        list.appendChild(option);
      });
    } catch (e) { /* the datalist is a convenience */ }
  }

  $("wf-calc").addEventListener("submit", function (ev) { ev.preventDefault(); calculate(); });
  $("wf-day-form").addEventListener("submit", function (ev) { ev.preventDefault(); loadDay(); });
  $("wf-hide-empty").addEventListener("change", loadDay);
  $("wf-weeks").addEventListener("change", loadDay);
  api("GET", "/api/me").then(function (me) {
    $("user-name").textContent = me.name || me.email || "";
    $("tenant-name").textContent = me.tenant_name || me.tenant_slug || "";
  }).catch(function () { /* api() redirects on 401 */ });
  calculate();
  loadDay();
  loadQueues();
})();
