/* The /reports page: pick a historical report (dimension, interval, local days, filters),
 * see it as a chart (HubCharts, our inline-SVG module) and a table, export it as CSV or
 * Excel, and schedule it to be mailed. Data: GET /api/reports/historical and
 * /api/reports/schedules (docs/reports.md). Plain ES2020; data goes in through textContent.
 */
(function () {
  "use strict";

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  function $(id) { return document.getElementById(id); }

  var KEY_COLUMNS = ["offered", "answered", "abandoned", "abandon_rate", "service_level", "asa_s", "aht_s",
    "avg_talk_s", "occupancy", "transfers", "csat", "fcr_rate", "complaints"];
  var RATES = { abandon_rate: 1, service_level: 1, contact_rate: 1, occupancy: 1, busy_rate: 1, idle_rate: 1,
    fcr_rate: 1, valid_number_rate: 1, connect_rate: 1, success_rate: 1 };
  var LABELS = {
    contacts: "Contacts", offered: "Offered", answered: "Answered", abandoned: "Abandoned",
    abandon_rate: "Abandon rate", service_level: "Service level", asa_s: "ASA", aht_s: "AHT",
    avg_talk_s: "Avg talk", avg_hold_s: "Avg hold", avg_wrapup_s: "Avg wrap-up",
    contacts_per_hour: "Per hour", contact_rate: "Contact rate", occupancy: "Occupancy",
    busy_rate: "Busy rate", idle_rate: "Idle rate", logged_in_s: "Logged in", transfers: "Transfers",
    csat: "CSAT", fcr_rate: "FCR", complaints: "Complaints", bot_contained: "Bot contained",
    attempts: "Attempts", valid_number_rate: "Valid numbers", connect_rate: "Connect rate",
    success: "Successes", success_rate: "Success rate", online_success_value: "Online success value",
  };
  var EVERY = { day: "Daily", week: "Weekly", month: "Monthly" };

  var dom = {
    error: $("rp-error"), status: $("rp-status"), form: $("rp-form"),
    by: $("rp-by"), interval: $("rp-interval"), from: $("rp-from"), to: $("rp-to"),
    queue: $("rp-queue"), agent: $("rp-agent"), channel: $("rp-channel"), campaign: $("rp-campaign"),
    questionnaire: $("rp-questionnaire"), questionnaireField: $("rp-questionnaire-field"),
    csv: $("rp-csv"), xlsx: $("rp-xlsx"), chart: $("rp-chart"), allColumns: $("rp-all-columns"),
    thead: $("rp-thead"), tbody: $("rp-tbody"), tfoot: $("rp-tfoot"), empty: $("rp-empty"),
    schedForm: $("rp-sched-form"), schedList: $("rp-sched-list"), schedEmpty: $("rp-sched-empty"),
  };
  var report = null;
  var loading = 0;

  function showError(text) { dom.error.textContent = text || ""; dom.error.hidden = !text; }

  function isoDay(d) {
    var m = d.getMonth() + 1, day = d.getDate();
    return d.getFullYear() + "-" + (m < 10 ? "0" : "") + m + "-" + (day < 10 ? "0" : "") + day;
  }

  function seconds(v) {
    var s = Math.round(Number(v));
    if (s < 60) return s + " s";
    var m = Math.floor(s / 60), r = s % 60;
    if (m < 60) return m + ":" + (r < 10 ? "0" : "") + r;
    var h = Math.floor(m / 60), mm = m % 60;
    return h + ":" + (mm < 10 ? "0" : "") + mm + ":" + (r < 10 ? "0" : "") + r;
  }

  function cell(column, value) {
    if (value == null || value === "") return "–";
    if (RATES[column]) return (Math.round(value * 1000) / 10) + " %";
    if (/_s$/.test(column)) return seconds(value);
    if (typeof value === "number") return Math.round(value * 100) / 100 + "";
    return String(value);
  }

  // ------------------------------------------------------------------ the query
  function params() {
    var p = new URLSearchParams();
    p.set("by", dom.by.value);
    p.set("interval", dom.interval.value);
    p.set("from", dom.from.value);
    p.set("to", dom.to.value);
    ["queue", "agent", "channel", "campaign", "questionnaire"].forEach(function (name) {
      if (dom[name].value && !(name === "questionnaire" && dom.by.value !== "question")) p.set(name, dom[name].value);
    });
    return p;
  }

  function updateExports() {
    var p = params();
    p.set("format", "csv");
    dom.csv.href = "/api/reports/historical?" + p.toString();
    p.set("format", "xlsx");
    dom.xlsx.href = "/api/reports/historical?" + p.toString();
    dom.questionnaireField.hidden = dom.by.value !== "question";
  }

  async function load() {
    updateExports();
    var mine = ++loading;
    dom.status.textContent = "Loading…";
    try {
      var data = await api("GET", "/api/reports/historical?" + params().toString());
      if (mine !== loading) return;
      report = data;
      showError("");
      dom.status.textContent = data.rows.length + " rows · " + data.from + " to " + data.to + " · " + (data.timezone || "UTC");
      render();
    } catch (e) {
      if (mine !== loading || e.status === 401) return;
      dom.status.textContent = "";
      showError("The report failed: " + e.message);
    }
  }

  // ------------------------------------------------------------------ chart and table
  function shortTime(text) {
    if (!text) return "";
    var m = /^(\d{4})-(\d\d)-(\d\d)(?:T(\d\d):(\d\d))?/.exec(text);
    if (!m) return text;
    if (report.interval === "15m" || report.interval === "hour") return m[2] + "-" + m[3] + " " + (m[4] || "00") + ":" + (m[5] || "00");
    if (report.interval === "month") return m[1] + "-" + m[2];
    return m[1] + "-" + m[2] + "-" + m[3];
  }

  function rowLabel(row) { return row.label == null || row.label === "" ? "(none)" : String(row.label); }

  // One bar group per interval (all keys summed); for the whole period, one per key.
  function chartData() {
    var byCategory = new Map();
    report.rows.forEach(function (row) {
      var cat = report.interval === "total" ? rowLabel(row) : shortTime(row.interval_start);
      var acc = byCategory.get(cat);
      if (!acc) { acc = { offered: 0, answered: 0, abandoned: 0, slWeighted: 0, slBase: 0 }; byCategory.set(cat, acc); }
      acc.offered += row.offered || 0;
      acc.answered += row.answered || 0;
      acc.abandoned += row.abandoned || 0;
      if (row.service_level != null) {
        var base = (row.answered || 0) + (row.abandoned || 0);  // SL = in time / (answered + abandoned)
        acc.slWeighted += row.service_level * base;
        acc.slBase += base;
      }
    });
    var cats = Array.from(byCategory.keys());
    var vals = cats.map(function (c) { return byCategory.get(c); });
    return {
      title: "Offered, answered and abandoned per " + (report.interval === "total" ? report.by : report.interval),
      categories: cats,
      series: [
        { name: "Offered", key: "offered", values: vals.map(function (v) { return v.offered; }) },
        { name: "Answered", key: "answered", values: vals.map(function (v) { return v.answered; }) },
        { name: "Abandoned", key: "abandoned", values: vals.map(function (v) { return v.abandoned; }) },
      ],
      line: { name: "Service level", key: "service_level",
        values: vals.map(function (v) { return v.slBase ? v.slWeighted / v.slBase : null; }) },
      empty: "No contacts in this period.",
    };
  }

  function columns() {
    var all = report.columns || [];
    return dom.allColumns.checked ? all : KEY_COLUMNS.filter(function (c) { return all.indexOf(c) >= 0; });
  }

  function render() {
    HubCharts.bars(dom.chart, chartData());
    var cols = columns();
    var showTime = report.interval !== "total";
    clear(dom.thead); clear(dom.tbody); clear(dom.tfoot);
    var head = el("tr");
    head.appendChild(el("th", null, report.by === "none" ? "" : LABELS[report.by] || report.by.charAt(0).toUpperCase() + report.by.slice(1)));
    if (showTime) head.appendChild(el("th", null, "From"));
    cols.forEach(function (c) { head.appendChild(el("th", "num", LABELS[c] || c)); });
    dom.thead.appendChild(head);
    report.rows.forEach(function (row) {
      var tr = el("tr");
      tr.setAttribute("data-key", JSON.stringify(row.key));
      tr.appendChild(el("td", "rp-label", rowLabel(row)));
      if (showTime) tr.appendChild(el("td", "rp-time", shortTime(row.interval_start)));
      cols.forEach(function (c) {
        var td = el("td", "num", cell(c, row[c]));
        td.setAttribute("data-col", c);
        tr.appendChild(td);
      });
      dom.tbody.appendChild(tr);
    });
    var total = el("tr", "rp-total");
    total.appendChild(el("td", null, "Total"));
    if (showTime) total.appendChild(el("td"));
    cols.forEach(function (c) {
      var td = el("td", "num", cell(c, (report.totals || {})[c]));
      td.setAttribute("data-col", c);
      total.appendChild(td);
    });
    dom.tfoot.appendChild(total);
    dom.empty.hidden = report.rows.length > 0;
  }

  // ------------------------------------------------------------------ filter choices
  function fill(select, items) {
    items.forEach(function (item) {
      var opt = el("option", null, item.label);
      opt.value = item.value;
      select.appendChild(opt);
    });
  }

  async function loadChoices() {
    var calls = [
      api("GET", "/api/queues").then(function (qs) {
        fill(dom.queue, (qs || []).map(function (q) { return { value: q.name, label: q.name }; }));
      }),
      api("GET", "/api/agents").then(function (as) {
        fill(dom.agent, (as || []).map(function (a) { return { value: a.id || a._id, label: a.name || a.id }; }));
      }),
      api("GET", "/api/campaigns").then(function (cs) {
        var list = Array.isArray(cs) ? cs : (cs && cs.campaigns) || [];
        fill(dom.campaign, list.map(function (c) { return { value: c.id, label: c.name || c.id }; }));
      }),
      api("GET", "/api/questionnaires").then(function (qs) {
        fill(dom.questionnaire, (qs || []).map(function (q) { return { value: q.id, label: q.name || q.id }; }));
      }),
    ];
    // a missing list only leaves its filter at "All"
    await Promise.all(calls.map(function (p) { return p.catch(function () { return null; }); }));
  }

  // ------------------------------------------------------------------ schedules
  function scheduleLabel(s) {
    var p = s.params || {};
    var text = "by " + p.by + " per " + p.interval;
    ["queue", "agent", "channel", "campaign", "questionnaire"].forEach(function (k) { if (p[k]) text += ", " + k + " " + p[k]; });
    return text + " (" + (s.format === "csv" ? "CSV" : "Excel") + ")";
  }

  function when(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString();
  }

  async function loadSchedules() {
    var list = [];
    try { list = (await api("GET", "/api/reports/schedules")) || []; } catch (e) {
      if (e.status !== 401) showError("Schedules: " + e.message);
      return;
    }
    clear(dom.schedList);
    list.forEach(function (s) {
      var tr = el("tr");
      tr.setAttribute("data-schedule", s.id);
      tr.appendChild(el("td", null, s.name || "–"));
      tr.appendChild(el("td", null, scheduleLabel(s)));
      tr.appendChild(el("td", null, (EVERY[s.every] || s.every) + " at " + s.at));
      tr.appendChild(el("td", null, (s.to || []).join(", ")));
      tr.appendChild(el("td", null, when(s.next_at)));
      var last = el("td", null, s.last_error ? "Not sent: " + s.last_error : when(s.last_sent_at));
      if (s.last_error) last.className = "rp-sched-error";
      tr.appendChild(last);
      var actions = el("td", "rp-actions");
      var send = el("button", "btn rp-send", "Send now");
      send.type = "button";
      send.addEventListener("click", async function () {
        send.disabled = true;
        try { await api("POST", "/api/reports/schedules/" + encodeURIComponent(s.id) + "/send"); }
        catch (e) { showError("Not sent: " + e.message); }
        setTimeout(loadSchedules, 1500);
      });
      var del = el("button", "btn rp-delete", "Delete");
      del.type = "button";
      del.addEventListener("click", async function () {
        del.disabled = true;
        try { await api("DELETE", "/api/reports/schedules/" + encodeURIComponent(s.id)); }
        catch (e) { showError("Not deleted: " + e.message); }
        loadSchedules();
      });
      actions.appendChild(send);
      actions.appendChild(del);
      tr.appendChild(actions);
      dom.schedList.appendChild(tr);
    });
    dom.schedEmpty.hidden = list.length > 0;
  }

  dom.schedForm.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var p = params();
    var body = {
      name: $("rp-sched-name").value.trim(),
      every: $("rp-sched-every").value,
      at: $("rp-sched-at").value,
      to: $("rp-sched-to").value,
      format: $("rp-sched-format").value,
      params: { by: p.get("by"), interval: p.get("interval") },
    };
    ["queue", "agent", "channel", "campaign", "questionnaire"].forEach(function (k) { if (p.get(k)) body.params[k] = p.get(k); });
    try {
      await api("POST", "/api/reports/schedules", body);
      showError("");
      $("rp-sched-name").value = "";
      loadSchedules();
    } catch (e) {
      if (e.status !== 401) showError("Not scheduled: " + e.message);
    }
  });

  // ------------------------------------------------------------------ the tenant's Excel template
  var template = { form: $("rp-template-form"), scope: $("rp-template-scope"), file: $("rp-template-file"),
    reset: $("rp-template-reset"), status: $("rp-template-status") };

  function templateName() {
    return template.scope.value === "by" ? "historical_" + dom.by.value : "historical";
  }

  template.form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var file = template.file.files && template.file.files[0];
    if (!file) { template.status.textContent = "Choose an .xlsx file first."; return; }
    template.status.textContent = "Uploading…";
    try {
      var resp = await fetch("/api/reports/templates/" + encodeURIComponent(templateName()), {
        method: "PUT", credentials: "same-origin", body: file,
        headers: HubDesk.csrfHeaders({
          "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" }),
      });
      var data = null;
      try { data = await resp.json(); } catch (e) { data = null; }
      if (!resp.ok) throw new Error((data && HubDesk.detailText(data.detail)) || "upload failed (" + resp.status + ")");
      template.status.textContent = "Saved: exports of " + (template.scope.value === "by" ? "reports by " + dom.by.value : "all reports") + " now use " + file.name + ".";
      template.file.value = "";
    } catch (e) {
      template.status.textContent = "Not saved: " + e.message;
    }
  });

  template.reset.addEventListener("click", async function () {
    try {
      await api("DELETE", "/api/reports/templates/" + encodeURIComponent(templateName()));
      template.status.textContent = "Back to the built-in template.";
    } catch (e) {
      if (e.status === 404) template.status.textContent = "Already the built-in template.";
      else if (e.status !== 401) template.status.textContent = "Not changed: " + e.message;
    }
  });

  // ------------------------------------------------------------------ start
  dom.form.addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
  [dom.by, dom.interval, dom.from, dom.to, dom.queue, dom.agent, dom.channel, dom.campaign, dom.questionnaire]
    .forEach(function (input) { input.addEventListener("change", updateExports); });
  dom.allColumns.addEventListener("change", function () { if (report) render(); });
  $("logout").addEventListener("click", function (ev) {
    ev.preventDefault();
    var go = function () { window.location.assign("/logout"); };
    try { fetch("/api/auth/logout", { method: "POST", credentials: "same-origin", keepalive: true,
        headers: HubDesk.csrfHeaders() }).then(go, go); }
    catch (e) { go(); }
  });

  async function boot() {
    var today = new Date();
    var weekAgo = new Date(today.getTime() - 6 * 86400000);
    dom.from.value = isoDay(weekAgo);
    dom.to.value = isoDay(today);
    updateExports();
    try {
      var me = await api("GET", "/api/me");
      $("user-name").textContent = me.name || me.email || "";
      $("tenant-name").textContent = me.tenant_name || me.tenant_slug || "";
    } catch (e) {
      if (e.status !== 401) showError("Cannot reach the server: " + e.message);
      return;
    }
    await loadChoices();
    await Promise.all([load(), loadSchedules()]);
  }

  // For tests and debugging.
  window.Reports = { state: function () { return { report: report }; }, load: load };

  boot();
})();
