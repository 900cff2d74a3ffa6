/* Bot analytics (/bot-analytics, GET /api/reports/bot): containment, handoff reasons, intents,
 * fallback rate and CSAT by channel and by bot against agent. Plain ES2020; data goes into the
 * page through textContent.
 */
(function () {
  "use strict";

  var D = window.HubDesk;
  var el = D.el, clear = D.clear, api = D.api;
  function $(id) { return document.getElementById(id); }

  function showError(text) {
    $("ba-error").textContent = text || "";
    $("ba-error").hidden = !text;
  }
  function pct(ratio) { return ratio == null ? "–" : (Math.round(ratio * 1000) / 10) + " %"; }
  function score(avg) { return avg == null ? "–" : Number(avg).toFixed(2) + " / 5"; }
  function cell(text, cls) { return el("td", cls || null, text == null ? "" : String(text)); }

  function fill(id, rows, cols, emptyText, render) {
    var tbody = $(id);
    clear(tbody);
    if (!rows.length) {
      var tr = el("tr");
      var td = el("td", "empty-note", emptyText);
      td.colSpan = cols;
      tr.appendChild(td);
      tbody.appendChild(tr);
      return;
    }
    rows.forEach(function (row) { tbody.appendChild(render(row)); });
  }

  function render(data) {
    if (!$("ba-from").value) $("ba-from").value = data.from;
    if (!$("ba-to").value) $("ba-to").value = data.to;
    var t = data.totals, csat = data.csat;
    $("ba-started").textContent = String(t.started);
    $("ba-containment").textContent = pct(t.containment_rate);
    $("ba-handoff").textContent = pct(t.handoff_rate);
    $("ba-fallback").textContent = pct(data.fallback.fallback_rate);
    $("ba-csat-bot").textContent = score(csat.bot.avg);
    $("ba-csat-agent").textContent = score(csat.agent.avg);
    var scores = {};
    (csat.by_channel || []).forEach(function (c) { scores[c.channel] = c; });
    fill("ba-channel-rows", data.by_channel || [], 10, "No contacts in this period.", function (c) {
      var tr = el("tr", "ba-channel");
      tr.setAttribute("data-channel", c.channel);
      var s = scores[c.channel] || {};
      [[c.channel], [c.started, "num"], [c.contained, "num ba-contained"], [pct(c.containment_rate), "num ba-rate"],
        [c.handed_off, "num"], [c.answered, "num"], [c.abandoned, "num"], [c.with_bot, "num"],
        [score(s.bot_avg), "num"], [score(s.agent_avg), "num"]].forEach(function (pair) {
        tr.appendChild(cell(pair[0], pair[1]));
      });
      return tr;
    });
    fill("ba-reason-rows", data.handoff_reasons || [], 3, "No handoffs in this period.", function (r) {
      var tr = el("tr", "ba-reason");
      tr.setAttribute("data-reason", r.reason);
      tr.appendChild(cell(r.reason));
      tr.appendChild(cell(r.contacts, "num"));
      tr.appendChild(cell(pct(r.share), "num"));
      return tr;
    });
    fill("ba-intent-rows", data.intents || [], 4, "No intents in this period.", function (i) {
      var tr = el("tr", "ba-intent");
      tr.appendChild(cell(i.intent));
      tr.appendChild(cell(i.contacts, "num"));
      tr.appendChild(cell(i.handed_off, "num"));
      tr.appendChild(cell(pct(i.handoff_rate), "num"));
      return tr;
    });
    fill("ba-vote-rows", data.kb_votes || [], 4, "No votes in this period.", function (v) {
      var tr = el("tr", "ba-vote");
      tr.appendChild(cell(v.channel));
      tr.appendChild(cell(v.helpful, "num"));
      tr.appendChild(cell(v.not_helpful, "num"));
      tr.appendChild(cell(pct(v.helpful_ratio), "num"));
      return tr;
    });
  }

  async function load() {
    showError("");
    var q = new URLSearchParams();
    if ($("ba-from").value) q.set("from", $("ba-from").value);
    if ($("ba-to").value) q.set("to", $("ba-to").value);
    try {
      render(await api("GET", "/api/reports/bot?" + q.toString()));
    } catch (e) {
      if (e && e.status === 401) return;
      showError((e && e.message) || "Could not load the bot analytics");
    }
  }

  $("ba-form").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
  api("GET", "/api/me").then(function (me) {
    $("user-name").textContent = me.name || me.email || "";
    $("tenant-name").textContent = me.tenant_name || me.tenant_slug || "";
  }).catch(function () { /* api() redirects on 401 */ });
  load();
})();
