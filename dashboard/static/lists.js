/* A campaign's contact lists (dashboard/lists_api.py): upload a .txt / .csv / .xlsx list,
 * follow its import with a progress bar, read the report, and split the targets among
 * agents or give them to a skill group, or reclaim them.
 *
 * `HubLists.mount(element, campaignId)` builds the whole section inside `element` and
 * returns `{destroy()}`; the campaign page can embed it. On /lists (body[data-lists-page])
 * this file also runs the page: a campaign picker (?campaign=ID preselects).
 * Plain ES2020; all data goes into the page through textContent / value.
 */
(function () {
  "use strict";

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  var POLL_MS = 400;

  function field(labelText, input, className) {
    var label = el("label", "rt-field" + (className ? " " + className : ""), labelText);
    label.appendChild(input);
    return label;
  }

  function input(type, attrs) {
    var node = el("input");
    node.type = type;
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  function button(text, className) {
    var node = el("button", "btn " + (className || ""), text);
    node.type = "button";
    return node;
  }

  // A multipart upload (HubDesk.api sends JSON only); errors as HubDesk.ApiError.
  async function upload(path, form) {
    var resp;
    try {
      resp = await fetch(path, { method: "POST", credentials: "same-origin", body: form,
        headers: HubDesk.csrfHeaders({ Accept: "application/json" }) });
    } catch (e) {
      throw new HubDesk.ApiError(0, "Cannot reach the server");
    }
    if (resp.status === 401) { window.location.assign("/login"); throw new HubDesk.ApiError(401, "Not signed in"); }
    var data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      throw new HubDesk.ApiError(resp.status,
        (data && HubDesk.detailText(data.detail)) || "Upload failed (" + resp.status + ")");
    }
    return data;
  }

  function when(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function mount(root, campaignId) {
    var base = "/api/campaigns/" + encodeURIComponent(campaignId);
    var timer = null, destroyed = false;
    clear(root);

    // ---------------------------------------------------------------- import form
    var importPanel = el("section", "panel rt-panel hl-import");
    importPanel.appendChild(el("h2", "panel-title", "Import a list"));
    var form = el("form", "rt-form hl-form");
    form.setAttribute("autocomplete", "off");
    var file = input("file", { accept: ".txt,.csv,.tsv,.xlsx", "aria-label": "List file", required: "" });
    file.className = "hl-file";
    var region = input("text", { maxlength: "2", placeholder: "campaign's", "aria-label": "Default region" });
    region.className = "rt-region hl-region";
    var cap = input("number", { min: "0", step: "1", placeholder: "50000", "aria-label": "Row cap" });
    cap.className = "hl-cap";
    var column = input("text", { placeholder: "found by name", "aria-label": "Number column" });
    var sheet = input("text", { placeholder: "first sheet", "aria-label": "Excel sheet" });
    var go = el("button", "btn btn-primary hl-go", "Import");
    go.type = "submit";
    form.appendChild(field("File (.txt, .csv, .xlsx)", file));
    form.appendChild(field("Region", region));
    form.appendChild(field("Row cap", cap));
    form.appendChild(field("Number column", column));
    form.appendChild(field("Sheet", sheet));
    form.appendChild(go);
    importPanel.appendChild(form);
    var status = el("div", "hl-status");
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    var bar = el("progress", "hl-progress");
    bar.hidden = true;
    var report = el("div", "hl-report");
    importPanel.appendChild(bar);
    importPanel.appendChild(status);
    importPanel.appendChild(report);
    root.appendChild(importPanel);

    // ---------------------------------------------------------------- history
    var historyPanel = el("section", "panel rt-panel hl-history");
    historyPanel.appendChild(el("h2", "panel-title", "Imports"));
    var history = el("table", "rt-table");
    var head = el("thead"), headRow = el("tr");
    ["File", "When", "Status", "Imported", "Invalid", "Duplicates", "Over cap"].forEach(function (h, i) {
      headRow.appendChild(el("th", i >= 3 ? "num" : null, h));
    });
    head.appendChild(headRow);
    history.appendChild(head);
    var historyBody = el("tbody");
    history.appendChild(historyBody);
    historyPanel.appendChild(history);
    var historyEmpty = el("div", "empty-note", "No lists imported yet.");
    historyPanel.appendChild(historyEmpty);
    root.appendChild(historyPanel);

    // ---------------------------------------------------------------- assignment
    var assignPanel = el("section", "panel rt-panel hl-assign");
    assignPanel.appendChild(el("h2", "panel-title", "Assignment"));
    var counts = el("div", "hl-counts");
    assignPanel.appendChild(counts);
    var owners = el("table", "rt-table hl-owners");
    var ownersHead = el("thead"), ownersRow = el("tr");
    ["Agent or group", "Pending", "All", ""].forEach(function (h, i) {
      ownersRow.appendChild(el("th", i === 1 || i === 2 ? "num" : null, h));
    });
    ownersHead.appendChild(ownersRow);
    owners.appendChild(ownersHead);
    var ownersBody = el("tbody");
    owners.appendChild(ownersBody);
    assignPanel.appendChild(owners);

    var assignForm = el("form", "hl-assign-form");
    assignForm.setAttribute("autocomplete", "off");
    var agentBox = el("fieldset", "rt-fieldset hl-agents");
    agentBox.appendChild(el("legend", null, "Split evenly among agents"));
    var groupSelect = el("select", "hl-group");
    groupSelect.setAttribute("aria-label", "Skill group");
    var count = input("number", { min: "1", step: "1", placeholder: "all pending", "aria-label": "How many" });
    count.className = "hl-count";
    var assignBtn = el("button", "btn btn-primary hl-assign-go", "Assign");
    assignBtn.type = "submit";
    var reclaimAll = button("Reclaim all", "hl-reclaim-all");
    var assignStatus = el("span", "rt-status");
    assignStatus.setAttribute("role", "status");
    var row = el("div", "rt-form");
    row.appendChild(field("…or give them to a group", groupSelect));
    row.appendChild(field("How many", count));
    row.appendChild(assignBtn);
    row.appendChild(reclaimAll);
    row.appendChild(assignStatus);
    assignForm.appendChild(agentBox);
    assignForm.appendChild(row);
    assignPanel.appendChild(assignForm);
    root.appendChild(assignPanel);

    function say(node, text, isError) {
      node.textContent = text || "";
      node.classList.toggle("rt-status-error", !!isError);
    }

    // ---------------------------------------------------------------- rendering
    function renderReport(job) {
      clear(report);
      if (job.status === "failed") {
        say(status, "Import failed: " + (job.error || "unknown error"), true);
        return;
      }
      var r = job.report;
      if (!r) return;
      say(status, job.filename + ": " + r.imported + " of " + r.total_rows + " rows imported");
      var list = el("dl", "hl-figures");
      [["Rows read", r.total_rows], ["Imported", r.imported], ["Invalid", r.invalid_count],
        ["Duplicates in the file", r.duplicates.in_file],
        ["Already in the campaign", r.duplicates.already_in_campaign],
        ["Dropped over the cap (" + r.cap + ")", r.dropped_over_cap],
        ["Number column", r.column || "–"], ["Region", r.region]].forEach(function (pair) {
        list.appendChild(el("dt", null, pair[0]));
        list.appendChild(el("dd", null, pair[1]));
      });
      report.appendChild(list);
      if (r.invalid && r.invalid.length) {
        var table = el("table", "rt-table hl-invalid");
        var h = el("tr");
        ["Line", "Value", "Why"].forEach(function (t) { h.appendChild(el("th", null, t)); });
        var th = el("thead");
        th.appendChild(h);
        table.appendChild(th);
        var body = el("tbody");
        r.invalid.forEach(function (bad) {
          var tr = el("tr");
          tr.appendChild(el("td", "num", bad.line));
          tr.appendChild(el("td", null, bad.value));
          tr.appendChild(el("td", null, bad.reason));
          body.appendChild(tr);
        });
        table.appendChild(body);
        report.appendChild(table);
        if (r.invalid_count > r.invalid.length) {
          report.appendChild(el("div", "empty-note", "…and " + (r.invalid_count - r.invalid.length) + " more invalid rows."));
        }
      }
    }

    function renderHistory(jobs) {
      clear(historyBody);
      historyEmpty.hidden = jobs.length > 0;
      jobs.forEach(function (job) {
        var r = job.report;
        var tr = el("tr");
        tr.appendChild(el("td", null, job.filename));
        tr.appendChild(el("td", null, when(job.created_at)));
        tr.appendChild(el("td", "hl-job-" + job.status, job.status === "failed" ? "failed: " + (job.error || "") : job.status));
        tr.appendChild(el("td", "num", r ? r.imported : "–"));
        tr.appendChild(el("td", "num", r ? r.invalid_count : "–"));
        tr.appendChild(el("td", "num", r ? r.duplicates.in_file + r.duplicates.already_in_campaign : "–"));
        tr.appendChild(el("td", "num", r ? r.dropped_over_cap : "–"));
        historyBody.appendChild(tr);
      });
    }

    function ownerRow(label, entry, reclaimBody) {
      var tr = el("tr");
      tr.appendChild(el("td", null, label));
      tr.appendChild(el("td", "num", entry.pending));
      tr.appendChild(el("td", "num", entry.total));
      var cell = el("td");
      var btn = button("Reclaim", "btn-small hl-reclaim");
      btn.disabled = entry.pending === 0;
      btn.addEventListener("click", function () { reclaim(reclaimBody, btn); });
      cell.appendChild(btn);
      tr.appendChild(cell);
      return tr;
    }

    function renderSummary(summary) {
      clear(counts);
      var by = summary.by_status || {};
      var text = summary.total + " targets: " + (by.pending || 0) + " pending (" + summary.pending_unassigned +
        " unassigned), " + (by.dialing || 0) + " dialling, " + (by.done || 0) + " done, " + (by.skipped || 0) + " skipped";
      counts.appendChild(el("p", "hl-counts-text", text));
      clear(ownersBody);
      summary.agents.forEach(function (a) {
        ownersBody.appendChild(ownerRow(a.name || a.agent_id, a, { agent_id: a.agent_id }));
      });
      summary.groups.forEach(function (g) {
        ownersBody.appendChild(ownerRow("group " + g.group, g, { group: g.group }));
      });
      owners.hidden = !summary.agents.length && !summary.groups.length;
    }

    function renderAgents(agents) {
      while (agentBox.childNodes.length > 1) agentBox.removeChild(agentBox.lastChild);
      var groups = {};
      agents.forEach(function (a) {
        var label = el("label", "rt-check hl-agent");
        var box = input("checkbox", {});
        box.value = a.id;
        label.appendChild(box);
        label.appendChild(document.createTextNode(" " + a.name));
        agentBox.appendChild(label);
        Object.keys(a.skills || {}).forEach(function (s) { groups[s] = true; });
      });
      if (!agents.length) agentBox.appendChild(el("span", "empty-note", "No agents."));
      clear(groupSelect);
      var none = el("option", null, "—");
      none.value = "";
      groupSelect.appendChild(none);
      Object.keys(groups).sort().forEach(function (g) {
        var opt = el("option", null, g);
        opt.value = g;
        groupSelect.appendChild(opt);
      });
    }

    // ---------------------------------------------------------------- actions
    async function refresh() {
      var results = await Promise.all([api("GET", base + "/imports"), api("GET", base + "/targets/summary")]);
      if (destroyed) return;
      renderHistory(results[0]);
      renderSummary(results[1]);
    }

    function fail(node) {
      return function (e) {
        if (e && e.status === 401) return;
        say(node, e && e.message ? e.message : String(e), true);
      };
    }

    async function poll(importId) {
      if (destroyed) return;
      var job;
      try {
        job = await api("GET", base + "/imports/" + encodeURIComponent(importId));
      } catch (e) {
        fail(status)(e);
        go.disabled = false;
        return;
      }
      bar.max = Math.max(job.total, 1);
      bar.value = job.done;
      if (job.status === "queued" || job.status === "running") {
        say(status, "Importing " + job.filename + ": " + job.done + " of " + (job.total || "?") + " rows…");
        timer = setTimeout(function () { poll(importId); }, POLL_MS);
        return;
      }
      bar.hidden = job.status !== "done";
      go.disabled = false;
      renderReport(job);
      refresh().catch(fail(status));
    }

    form.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      if (!file.files || !file.files.length) { say(status, "Choose a file first.", true); return; }
      var data = new FormData();
      data.append("file", file.files[0]);
      var reg = region.value.trim().toUpperCase();
      if (reg && !/^[A-Z]{2}$/.test(reg)) { say(status, "Region: a two-letter country code such as US.", true); return; }
      if (reg) data.append("region", reg);
      if (cap.value.trim()) data.append("cap", cap.value.trim());
      if (column.value.trim()) data.append("column", column.value.trim());
      if (sheet.value.trim()) data.append("sheet", sheet.value.trim());
      go.disabled = true;
      clear(report);
      bar.hidden = false;
      bar.removeAttribute("value");  // indeterminate until the first progress
      say(status, "Uploading " + file.files[0].name + "…");
      try {
        var started = await upload(base + "/imports", data);
        poll(started.import_id);
      } catch (e) {
        bar.hidden = true;
        go.disabled = false;
        fail(status)(e);
      }
    });

    async function reclaim(body, btn) {
      if (btn) btn.disabled = true;
      say(assignStatus, "Reclaiming…");
      try {
        var done = await api("POST", base + "/targets/reclaim", body);
        say(assignStatus, done.reclaimed + " targets reclaimed");
        await refresh();
      } catch (e) {
        fail(assignStatus)(e);
        if (btn) btn.disabled = false;
      }
    }

    reclaimAll.addEventListener("click", function () { reclaim({}, reclaimAll).then(function () { reclaimAll.disabled = false; }); });

    assignForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      var ids = Array.prototype.filter.call(agentBox.querySelectorAll("input[type=checkbox]"), function (b) { return b.checked; })
        .map(function (b) { return b.value; });
      var body = {};
      if (ids.length && groupSelect.value) { say(assignStatus, "Choose agents or a group, not both.", true); return; }
      if (ids.length) body.agent_ids = ids;
      else if (groupSelect.value) body.group = groupSelect.value;
      else { say(assignStatus, "Choose agents or a group.", true); return; }
      if (count.value.trim()) body.count = Number(count.value);
      assignBtn.disabled = true;
      say(assignStatus, "Assigning…");
      try {
        var done = await api("POST", base + "/targets/assign", body);
        say(assignStatus, done.total + " targets assigned");
        await refresh();
      } catch (e) {
        fail(assignStatus)(e);
      } finally {
        assignBtn.disabled = false;
      }
    });

    refresh().catch(fail(status));
    api("GET", "/api/agents").then(function (agents) { if (!destroyed) renderAgents(agents); }, fail(assignStatus));

    return {
      destroy: function () {
        destroyed = true;
        if (timer) clearTimeout(timer);
        clear(root);
      },
    };
  }

  window.HubLists = { mount: mount };

  // ------------------------------------------------------------------ the /lists page
  if (!document.body || !document.body.hasAttribute("data-lists-page")) return;

  function $(id) { return document.getElementById(id); }
  var picker = $("lists-campaign"), rootNode = $("lists-root"), errorBox = $("lists-error");
  var mounted = null;

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  function choose(id) {
    if (mounted) mounted.destroy();
    mounted = id ? mount(rootNode, id) : null;
    var url = new URL(window.location.href);
    if (id) url.searchParams.set("campaign", id); else url.searchParams.delete("campaign");
    window.history.replaceState(null, "", url.toString());
  }

  $("logout").addEventListener("click", function (ev) {
    ev.preventDefault();
    var leave = function () { window.location.assign("/logout"); };
    try {
      fetch("/api/auth/logout", { method: "POST", credentials: "same-origin", keepalive: true,
        headers: HubDesk.csrfHeaders() }).then(leave, leave);
    } catch (e) { leave(); }
  });

  async function boot() {
    try {
      var me = await api("GET", "/api/me");
      $("user-name").textContent = me.name || me.email || "";
      $("tenant-name").textContent = me.tenant_name || me.tenant_slug || "";
      var campaigns = await api("GET", "/api/campaigns");
      var wanted = new URL(window.location.href).searchParams.get("campaign");
      clear(picker);
      campaigns.forEach(function (c) {
        var opt = el("option", null, c.name + " (" + c.type + ", " + c.state + ")");
        opt.value = c.id;
        picker.appendChild(opt);
      });
      $("lists-empty").hidden = campaigns.length > 0;
      if (wanted && campaigns.some(function (c) { return c.id === wanted; })) picker.value = wanted;
      picker.addEventListener("change", function () { choose(picker.value); });
      choose(picker.value || null);
    } catch (e) {
      if (e && e.status === 401) return;
      showError(e && e.message ? e.message : String(e));
    }
  }

  boot();
})();
