/* Campaign manager: create campaigns, start / pause / resume / stop them, watch progress live,
   import lists (lists.js when present) and export results. */
(function () {
  "use strict";
  var D = window.HubDesk;
  var el = D.el, clear = D.clear, api = D.api;
  var selected = null;
  var errorBox = document.getElementById("cp-error");

  function showError(e) {
    errorBox.textContent = e ? (e.message || String(e)) : "";
    errorBox.hidden = !e;
  }

  function percent(x) { return (Math.round(x * 1000) / 10) + " %"; }

  async function loadList() {
    var rows;
    try { rows = await api("GET", "/api/campaigns"); } catch (e) { showError(e); return; }
    var body = document.getElementById("cp-list");
    clear(body);
    document.getElementById("cp-empty").hidden = rows.length > 0;
    for (var i = 0; i < rows.length; i++) {
      var c = rows[i];
      var detail = await api("GET", "/api/campaigns/" + c.id + "/progress").catch(function () { return null; });
      var tr = el("tr");
      tr.dataset.campaignId = c.id;
      tr.appendChild(el("td", null, c.name));
      tr.appendChild(el("td", null, c.type));
      tr.appendChild(el("td", "cp-state cp-state-" + c.state, c.state));
      tr.appendChild(el("td", "num", c.priority));
      tr.appendChild(el("td", "num", detail ? detail.targets : "—"));
      tr.appendChild(el("td", "num", detail ? percent(detail.done_fraction) : "—"));
      tr.appendChild(el("td", "num", detail ? percent(detail.abandon_rate) : "—"));
      var open = el("button", "btn btn-small", "Open");
      open.type = "button";
      open.addEventListener("click", select.bind(null, c.id));
      var cell = el("td");
      cell.appendChild(open);
      tr.appendChild(cell);
      body.appendChild(tr);
    }
  }

  async function select(id) {
    selected = id;
    document.getElementById("cp-detail").hidden = false;
    document.getElementById("cp-export").href = "/api/campaigns/" + id + "/results.xlsx";
    var lists = document.getElementById("cp-lists");
    clear(lists);
    if (window.HubLists && window.HubLists.mount) window.HubLists.mount(lists, id);
    await refresh();
  }

  async function refresh() {
    if (!selected) return;
    var c;
    try { c = await api("GET", "/api/campaigns/" + selected); } catch (e) { showError(e); return; }
    document.getElementById("cp-detail-title").textContent = c.name + " — " + c.state;
    var p = c.progress;
    document.getElementById("cp-bar").style.width = Math.round(p.done_fraction * 100) + "%";
    document.getElementById("cp-figures").textContent =
      "Targets " + p.targets + " · by status " + JSON.stringify(p.by_status) +
      "\nAttempts " + p.attempts + " · outcomes " + JSON.stringify(p.outcomes) +
      "\nResults " + JSON.stringify(p.by_class) + " · abandon rate " + percent(p.abandon_rate);
  }

  document.querySelectorAll(".cp-controls [data-action]").forEach(function (button) {
    button.addEventListener("click", async function () {
      if (!selected) return;
      try {
        await api("POST", "/api/campaigns/" + selected + "/" + button.dataset.action);
        showError(null);
      } catch (e) { showError(e); }
      refresh();
      loadList();
    });
  });

  document.getElementById("cp-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var type = document.getElementById("cp-type").value;
    var extra = document.getElementById("cp-extra").value.trim();
    var days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    var windows = {};
    days.forEach(function (d) { windows[d] = [[document.getElementById("cp-from").value, document.getElementById("cp-to").value]]; });
    var body = {
      name: document.getElementById("cp-name").value.trim(),
      type: type,
      priority: Number(document.getElementById("cp-priority").value),
      pacing_ratio: Number(document.getElementById("cp-ratio").value) / 100,
      ring_timeout_s: Number(document.getElementById("cp-ring").value),
      recording: document.getElementById("cp-record").checked,
      amd: { enabled: document.getElementById("cp-amd").checked },
      schedule: { windows: windows },
    };
    var caller = document.getElementById("cp-caller").value.trim();
    if (caller) body.caller_id = caller;
    if (extra) {
      if (type === "robot") body.flow_id = extra;
      else if (type === "broadcast") body.prompt_id = extra;
      else if (type === "sms") body.sms_text = extra;
      else if (type === "email") { body.email_subject = extra; body.email_body = extra; }
    }
    try {
      var created = await api("POST", "/api/campaigns", body);
      showError(null);
      ev.target.reset();
      await loadList();
      select(created.id);
    } catch (e) { showError(e); }
  });

  api("GET", "/api/me").then(function (me) {
    document.getElementById("user-name").textContent = me.name;
    document.getElementById("tenant-name").textContent = me.tenant_name;
  }).catch(function () { /* api() redirects to login */ });
  loadList();
  setInterval(function () { refresh(); }, 2000);
  setInterval(loadList, 10000);
})();
