/* Quality inspection (dashboard/quality_api.py, /api/quality/...).
 * Supervisors and admins: the contacts to score (/queue), a contact's transcript and
 * recordings (/contacts/{id}), the scoring form (POST /evaluations), the scorecard designer
 * (/scorecards), all evaluations and the report (/report, /report.csv).
 * Agents: their own evaluations, with the acknowledgement form.
 * Plain ES2020; all data goes into the page through textContent / value.
 */
(function () {
  "use strict";

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  var CHANNELS = { webchat: "Chat", voice: "Phone", webcall: "Web call", sms: "SMS", email: "Email" };

  function $(id) { return document.getElementById(id); }

  var me = null;
  var supervisor = false;
  var cards = [];            // active scorecards (GET /scorecards)
  var current = null;        // the contact being scored: {contact, messages, recordings, evaluations}
  var editingId = null;      // scorecard version in the designer (null: a new one)
  var selectedEvaluation = null;

  // ------------------------------------------------------------------ helpers
  function showError(text) {
    $("q-error").textContent = text || "";
    $("q-error").hidden = !text;
  }

  function fail(e) {
    if (e && e.status === 401) return;
    showError(e && e.message ? e.message : String(e));
  }

  function fmtDateTime(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  }

  function pct(value) { return value == null ? "–" : (Math.round(value * 10) / 10) + " %"; }

  function scoreChip(ev) {
    if (ev.auto_failed) return el("span", "chip q-fail", "auto-fail");
    var cls = ev.total_pct >= 80 ? "q-ok" : ev.total_pct >= 60 ? "q-warn" : "q-fail";
    return el("span", "chip " + cls + " q-score-value", pct(ev.total_pct));
  }

  function query(params) {
    var parts = [];
    Object.keys(params).forEach(function (k) {
      if (params[k] !== "" && params[k] != null) parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(params[k]));
    });
    return parts.length ? "?" + parts.join("&") : "";
  }

  function allItems(card) {
    var out = [];
    (card.sections || []).forEach(function (s) { (s.items || []).forEach(function (it) { out.push(it); }); });
    return out;
  }

  // ------------------------------------------------------------------ tabs
  function showTab(name) {
    document.querySelectorAll(".q-tab").forEach(function (tab) {
      tab.setAttribute("aria-selected", String(tab.getAttribute("data-tab") === name));
    });
    ["score", "scorecards", "evaluations", "report"].forEach(function (t) { $("tab-" + t).hidden = t !== name; });
    if (name === "evaluations") loadEvaluations();
    if (name === "report") loadReport();
    if (name === "scorecards") loadCards();
  }

  // ------------------------------------------------------------------ contacts to score
  async function loadQueue() {
    var params = {
      channel: $("q-channel").value, agent_id: $("q-agent").value,
      days: $("q-days").value || 7, sample: $("q-sample").value,
    };
    var list;
    try { list = await api("GET", "/api/quality/queue" + query(params)); } catch (e) { fail(e); return; }
    showError("");
    var box = $("q-queue");
    clear(box);
    $("q-queue-empty").hidden = list.length > 0;
    $("q-queue-count").textContent = list.length ? String(list.length) : "";
    list.forEach(function (c) {
      var node = el("div", "q-item");
      node.setAttribute("role", "option");
      node.setAttribute("data-contact-id", c.id);
      if (current && current.contact.id === c.id) node.classList.add("selected");
      var top = el("div", "q-item-top");
      top.appendChild(el("span", null, c.agent_name || "agent"));
      top.appendChild(el("span", "chip chip-muted", CHANNELS[c.channel] || c.channel));
      node.appendChild(top);
      var meta = fmtDateTime(c.closed_at) + (c.disposition ? " · " + c.disposition : "") +
        (c.recording_ids.length ? " · " + c.recording_ids.length + " recording(s)" : "");
      node.appendChild(el("div", "q-item-meta", meta));
      node.addEventListener("click", function () {
        box.querySelectorAll(".q-item").forEach(function (n) { n.classList.remove("selected"); });
        node.classList.add("selected");
        openContact(c.id);
      });
      box.appendChild(node);
    });
  }

  async function openContact(contactId) {
    try { current = await api("GET", "/api/quality/contacts/" + encodeURIComponent(contactId)); } catch (e) { fail(e); return; }
    var c = current.contact;
    var head = $("q-contact-head");
    clear(head);
    head.classList.remove("muted");
    head.appendChild(el("strong", null, (CHANNELS[c.channel] || c.channel) + " with " + (c.agent_name || "an agent")));
    head.appendChild(el("div", "muted", "opened " + fmtDateTime(c.opened_at) + " · closed " + fmtDateTime(c.closed_at) +
      (c.disposition ? " · " + c.disposition : "") + (c.note ? " · " + c.note : "")));
    current.evaluations.forEach(function (ev) {
      var line = el("div", "muted", "Scored by " + (ev.evaluator_name || "someone") + " (" + ev.scorecard_name + "): ");
      line.appendChild(scoreChip(ev));
      head.appendChild(line);
    });
    var recs = $("q-recordings");
    clear(recs);
    current.recordings.forEach(function (r) {
      var wrap = el("div", "q-recording");
      wrap.appendChild(el("div", "q-item-meta", "Recording " + fmtDateTime(r.started_at) +
        (r.duration_s != null ? " · " + Math.round(r.duration_s) + " s" : "") + " · left: customer, right: agent"));
      var audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "none";
      audio.src = r.audio_url;
      audio.setAttribute("data-recording-id", r.id);
      wrap.appendChild(audio);
      recs.appendChild(wrap);
    });
    var box = $("q-transcript");
    clear(box);
    if (!current.messages.length) box.appendChild(el("div", "empty-note", "No transcript."));
    current.messages.forEach(function (m) {
      var node = el("div", "msg msg-" + m.author, m.text);
      if (m.author !== "system") {
        node.setAttribute("data-author", m.author_name || m.author);
        node.setAttribute("data-time", fmtDateTime(m.created_at));
      }
      box.appendChild(node);
    });
    renderEvalForm();
  }

  // ------------------------------------------------------------------ scoring form
  function renderEvalForm() {
    var form = $("q-eval-form");
    form.hidden = !current || !cards.length;
    $("q-eval-empty").hidden = !form.hidden;
    $("q-eval-empty").textContent = current && !cards.length
      ? "Design a scorecard first (Scorecards tab)." : "Choose a contact, then score it with a scorecard.";
    if (form.hidden) return;
    var select = $("q-eval-card");
    var keep = select.value;
    clear(select);
    cards.forEach(function (card) {
      var opt = el("option", null, card.name + (card.version > 1 ? " (v" + card.version + ")" : ""));
      opt.value = card.id;
      select.appendChild(opt);
    });
    if (keep && cards.some(function (c) { return c.id === keep; })) select.value = keep;
    $("q-eval-comments").value = "";
    $("q-eval-recontact").checked = false;
    $("q-eval-recontact-note").value = "";
    $("q-eval-recontact-note").hidden = true;
    $("q-eval-status").textContent = "";
    renderEvalItems();
  }

  function selectedCard() {
    var id = $("q-eval-card").value;
    return cards.find(function (c) { return c.id === id; }) || null;
  }

  function renderEvalItems() {
    var box = $("q-eval-items");
    clear(box);
    var card = selectedCard();
    if (!card) return;
    card.sections.forEach(function (section) {
      if (section.title) box.appendChild(el("div", "q-section-title", section.title));
      section.items.forEach(function (item) {
        var node = el("div", "q-eval-item");
        node.setAttribute("data-key", item.key);
        var head = el("div", "q-eval-item-head");
        var label = el("label", "q-eval-item-label", item.label + (item.critical ? " *" : ""));
        if (item.critical) label.title = "Critical: failing it makes the whole evaluation 0";
        var select = el("select", "q-answer");
        select.id = "q-answer-" + item.key;
        label.htmlFor = select.id;
        var options = [["", "—"]];
        if (item.kind === "yes_no") options.push(["yes", "Yes"], ["no", "No"]);
        else for (var v = item.max; v >= 0; v--) options.push([String(v), v + " / " + item.max]);
        if (item.na_allowed) options.push(["na", "N/A"]);
        options.forEach(function (o) { var opt = el("option", null, o[1]); opt.value = o[0]; select.appendChild(opt); });
        select.addEventListener("change", updatePreview);
        head.appendChild(label);
        head.appendChild(select);
        node.appendChild(head);
        if (item.description) node.appendChild(el("div", "q-item-meta", item.description));
        var comment = el("input", "q-eval-item-comment");
        comment.type = "text";
        comment.maxLength = 2000;
        comment.placeholder = "Comment on this item (optional)";
        node.appendChild(comment);
        box.appendChild(node);
      });
    });
    updatePreview();
  }

  function collectAnswers() {
    var answers = {}, comments = {}, missing = [];
    document.querySelectorAll("#q-eval-items .q-eval-item").forEach(function (node) {
      var key = node.getAttribute("data-key");
      var raw = node.querySelector(".q-answer").value;
      if (raw === "") missing.push(key);
      else answers[key] = raw === "na" ? null : raw === "yes" ? true : raw === "no" ? false : Number(raw);
      var text = node.querySelector(".q-eval-item-comment").value.trim();
      if (text) comments[key] = text;
    });
    return { answers: answers, item_comments: comments, missing: missing };
  }

  // The same arithmetic as dashboard/quality.py, for the preview only.
  function updatePreview() {
    var card = selectedCard();
    var collected = collectAnswers();
    var earned = 0, possible = 0, failed = false;
    allItems(card || { sections: [] }).forEach(function (item) {
      if (!(item.key in collected.answers)) return;
      var v = collected.answers[item.key];
      if (v === null) return;
      var points = v === true ? 1 : v === false ? 0 : v;
      earned += item.weight * points / item.max;
      possible += item.weight;
      if (item.critical && points === 0) failed = true;
    });
    $("q-eval-total").textContent = possible ? pct(failed ? 0 : 100 * earned / possible) +
      (collected.missing.length ? " (so far)" : "") : "–";
    $("q-eval-autofail").hidden = !failed;
  }

  async function saveEvaluation(ev) {
    ev.preventDefault();
    if (!current) return;
    var collected = collectAnswers();
    if (collected.missing.length) {
      $("q-eval-status").textContent = "Answer every item (" + collected.missing.length + " left)";
      $("q-eval-status").classList.add("rt-status-error");
      return;
    }
    var body = {
      contact_id: current.contact.id,
      recording_id: current.recordings.length ? current.recordings[current.recordings.length - 1].id : null,
      scorecard_id: $("q-eval-card").value,
      answers: collected.answers,
      item_comments: collected.item_comments,
      comments: $("q-eval-comments").value,
      recontact: { requested: $("q-eval-recontact").checked, note: $("q-eval-recontact-note").value },
    };
    var button = $("q-eval-save");
    button.disabled = true;
    try {
      var saved = await api("POST", "/api/quality/evaluations", body);
      $("q-eval-status").classList.remove("rt-status-error");
      $("q-eval-status").textContent = "Saved: " + (saved.auto_failed ? "auto-fail (0 %)" : pct(saved.total_pct));
      await openContact(current.contact.id);
      $("q-eval-status").textContent = "Saved: " + (saved.auto_failed ? "auto-fail (0 %)" : pct(saved.total_pct));
      loadQueue();
    } catch (e) {
      $("q-eval-status").classList.add("rt-status-error");
      $("q-eval-status").textContent = e.message;
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ scorecards and the designer
  async function loadCards() {
    try { cards = await api("GET", "/api/quality/scorecards"); } catch (e) { fail(e); return; }
    var body = $("q-cards");
    clear(body);
    $("q-cards-empty").hidden = cards.length > 0;
    cards.forEach(function (card) {
      var row = el("tr");
      row.setAttribute("data-scorecard-id", card.id);
      var name = el("td");
      name.appendChild(el("div", null, card.name));
      if (card.description) name.appendChild(el("div", "q-item-meta", card.description));
      row.appendChild(name);
      row.appendChild(el("td", "num", card.version));
      row.appendChild(el("td", "num", allItems(card).length));
      row.appendChild(el("td", null, card.used ? "in use" : "not used yet"));
      var actions = el("td");
      var edit = el("button", "btn btn-small", "Edit");
      edit.type = "button";
      edit.addEventListener("click", function () { editCard(card); });
      var del = el("button", "btn btn-small", card.used ? "Archive" : "Delete");
      del.type = "button";
      del.addEventListener("click", async function () {
        if (!window.confirm((card.used ? "Archive " : "Delete ") + card.name + "?")) return;
        try {
          await api("DELETE", "/api/quality/scorecards/" + encodeURIComponent(card.id));
          if (editingId === card.id) resetDesigner();
          loadCards();
        } catch (e) { fail(e); }
      });
      actions.appendChild(edit);
      actions.appendChild(document.createTextNode(" "));
      actions.appendChild(del);
      row.appendChild(actions);
      body.appendChild(row);
    });
    if (current) renderEvalForm();
  }

  function slug(text) {
    return text.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 40) || "item";
  }

  function addItemRow(item, section) {
    item = item || { kind: "yes_no", max: 1, weight: 1 };
    var row = el("tr", "q-designer-item");
    function cell(node) { var td = el("td"); td.appendChild(node); row.appendChild(td); return node; }
    function text(cls, value, placeholder) {
      var input = el("input", cls);
      input.type = "text";
      input.value = value || "";
      input.placeholder = placeholder;
      input.setAttribute("aria-label", placeholder);
      return input;
    }
    cell(text("it-section", section || "", "Section"));
    var key = cell(text("it-key", item.key, "key"));
    var label = cell(text("it-label", item.label, "Label"));
    // a new item's key follows its label until the key is typed in
    var autoKey = !item.key;
    key.addEventListener("input", function () { autoKey = !key.value.trim(); });
    label.addEventListener("input", function () { if (autoKey) key.value = slug(label.value); });
    var kind = cell(el("select", "it-kind"));
    [["yes_no", "Yes / no"], ["scale", "Scale 0..max"]].forEach(function (o) {
      var opt = el("option", null, o[1]); opt.value = o[0]; kind.appendChild(opt);
    });
    kind.value = item.kind;
    var max = cell(el("input", "it-max"));
    max.type = "number"; max.min = "1"; max.max = "10"; max.value = item.max || 5;
    max.setAttribute("aria-label", "Max");
    function syncKind() { max.disabled = kind.value === "yes_no"; if (kind.value === "yes_no") max.value = 1; else if (max.value === "1") max.value = 5; }
    kind.addEventListener("change", syncKind);
    var weight = cell(el("input", "it-weight"));
    weight.type = "number"; weight.min = "0.1"; weight.step = "any"; weight.value = item.weight || 1;
    weight.setAttribute("aria-label", "Weight");
    var critical = cell(el("input", "it-critical"));
    critical.type = "checkbox"; critical.checked = !!item.critical; critical.setAttribute("aria-label", "Critical");
    var na = cell(el("input", "it-na"));
    na.type = "checkbox"; na.checked = !!item.na_allowed; na.setAttribute("aria-label", "N/A allowed");
    var remove = cell(el("button", "btn btn-small it-remove", "Remove"));
    remove.type = "button";
    remove.addEventListener("click", function () { row.remove(); });
    max.disabled = kind.value === "yes_no";
    $("q-designer-items").appendChild(row);
    return row;
  }

  function resetDesigner() {
    editingId = null;
    $("q-designer-title").textContent = "New scorecard";
    $("q-card-name").value = "";
    $("q-card-desc").value = "";
    clear($("q-designer-items"));
    addItemRow();
    $("q-designer-status").textContent = "";
  }

  function editCard(card) {
    editingId = card.id;
    $("q-designer-title").textContent = "Edit " + card.name + " (version " + card.version + ")" +
      (card.used ? " – saving makes version " + (card.version + 1) : "");
    $("q-card-name").value = card.name;
    $("q-card-desc").value = card.description || "";
    clear($("q-designer-items"));
    card.sections.forEach(function (s) { s.items.forEach(function (it) { addItemRow(it, s.title); }); });
    $("q-designer-status").textContent = "";
    $("q-card-name").focus();
  }

  function collectCard() {
    var sections = [], byTitle = {};
    document.querySelectorAll("#q-designer-items .q-designer-item").forEach(function (row) {
      var title = row.querySelector(".it-section").value.trim();
      var label = row.querySelector(".it-label").value.trim();
      var kind = row.querySelector(".it-kind").value;
      var item = {
        key: row.querySelector(".it-key").value.trim() || slug(label),
        label: label,
        kind: kind,
        max: kind === "yes_no" ? 1 : Number(row.querySelector(".it-max").value),
        weight: Number(row.querySelector(".it-weight").value),
        critical: row.querySelector(".it-critical").checked,
        na_allowed: row.querySelector(".it-na").checked,
      };
      if (!(title in byTitle)) { byTitle[title] = { title: title, items: [] }; sections.push(byTitle[title]); }
      byTitle[title].items.push(item);
    });
    return { name: $("q-card-name").value, description: $("q-card-desc").value, sections: sections };
  }

  async function saveCard(ev) {
    ev.preventDefault();
    var status = $("q-designer-status");
    var body = collectCard();
    status.classList.remove("rt-status-error");
    try {
      var saved = editingId
        ? await api("PUT", "/api/quality/scorecards/" + encodeURIComponent(editingId), body)
        : await api("POST", "/api/quality/scorecards", body);
      var versioned = editingId && saved.id !== editingId;
      status.textContent = versioned
        ? "Saved as version " + saved.version + " (earlier evaluations keep their version)" : "Saved";
      await loadCards();
      editCard(saved);
      status.textContent = versioned ? "Saved as version " + saved.version + " (earlier evaluations keep their version)" : "Saved";
    } catch (e) {
      status.classList.add("rt-status-error");
      status.textContent = e.message;
    }
  }

  // ------------------------------------------------------------------ evaluations
  async function loadEvaluations() {
    var list;
    try { list = await api("GET", "/api/quality/evaluations"); } catch (e) { fail(e); return; }
    var box = $("q-evals");
    clear(box);
    $("q-evals-empty").hidden = list.length > 0;
    $("q-evals-count").textContent = list.length ? String(list.length) : "";
    list.forEach(function (ev) {
      var node = el("div", "q-item");
      node.setAttribute("data-evaluation-id", ev.id);
      if (ev.id === selectedEvaluation) node.classList.add("selected");
      var top = el("div", "q-item-top");
      top.appendChild(el("span", null, supervisor ? (ev.agent_name || "agent") : ev.scorecard_name));
      top.appendChild(scoreChip(ev));
      node.appendChild(top);
      var meta = (CHANNELS[ev.channel] || ev.channel || "") + " · " + fmtDateTime(ev.created_at) +
        (supervisor ? " · " + ev.scorecard_name : " · by " + (ev.evaluator_name || "a supervisor"));
      node.appendChild(el("div", "q-item-meta", meta));
      var state = ev.acknowledgement ? (ev.acknowledgement.dispute ? "disputed" : "acknowledged") : "not acknowledged";
      node.appendChild(el("div", "q-item-meta", state + (ev.recontact.requested ? " · re-contact requested" : "")));
      node.addEventListener("click", function () {
        box.querySelectorAll(".q-item").forEach(function (n) { n.classList.remove("selected"); });
        node.classList.add("selected");
        showEvaluation(ev.id);
      });
      box.appendChild(node);
    });
  }

  async function showEvaluation(id) {
    selectedEvaluation = id;
    var ev;
    try { ev = await api("GET", "/api/quality/evaluations/" + encodeURIComponent(id)); } catch (e) { fail(e); return; }
    var box = $("q-eval-detail");
    clear(box);
    var head = el("div", "q-item-top");
    head.appendChild(el("span", null, ev.scorecard_name + " v" + ev.scorecard_version + " · " + (ev.agent_name || "agent")));
    head.appendChild(scoreChip(ev));
    box.appendChild(head);
    box.appendChild(el("div", "q-item-meta", "Scored by " + (ev.evaluator_name || "a supervisor") + " on " +
      fmtDateTime(ev.created_at) + (ev.history.length ? " · amended " + ev.history.length + "×" : "") +
      " · contact closed " + fmtDateTime(ev.contact_closed_at)));
    if (ev.auto_failed) {
      box.appendChild(el("div", "chip q-fail", "Auto-fail: a critical item failed (would have been " + pct(ev.raw_pct) + ")"));
    }
    var table = el("table", "q-detail-table");
    var thead = el("tr");
    ["Item", "Answer", "Score", "Comment"].forEach(function (h) { thead.appendChild(el("th", null, h)); });
    table.appendChild(thead);
    var items = ev.scorecard ? allItems(ev.scorecard) : Object.keys(ev.by_item).map(function (k) { return { key: k, label: k }; });
    items.forEach(function (item) {
      var r = ev.by_item[item.key] || {};
      var row = el("tr");
      row.appendChild(el("td", null, item.label + (item.critical ? " *" : "")));
      var answer = r.na ? "N/A" : item.kind === "yes_no" ? (r.value ? "Yes" : "No") : r.value + " / " + r.max;
      row.appendChild(el("td", null, answer));
      row.appendChild(el("td", "num", r.failed ? "failed" : pct(r.pct)));
      row.appendChild(el("td", null, (ev.item_comments || {})[item.key] || ""));
      table.appendChild(row);
    });
    box.appendChild(table);
    if (ev.comments) { box.appendChild(el("strong", null, "Comments")); box.appendChild(el("div", "q-comment", ev.comments)); }
    if (ev.recontact.requested) {
      box.appendChild(el("div", "chip q-warn", "Re-contact the customer" + (ev.recontact.note ? ": " + ev.recontact.note : "")));
    }
    var ack = el("div", "q-ack");
    if (ev.acknowledgement) {
      ack.appendChild(el("strong", null, (ev.acknowledgement.dispute ? "Disputed" : "Acknowledged") + " by the agent on " +
        fmtDateTime(ev.acknowledgement.at)));
      if (ev.acknowledgement.comment) ack.appendChild(el("div", "q-comment", ev.acknowledgement.comment));
    } else if (me && ev.agent_id === me.id) {
      ack.appendChild(el("strong", null, "Acknowledge"));
      var comment = el("textarea", "q-ack-comment");
      comment.rows = 2; comment.maxLength = 2000; comment.placeholder = "Your comment (optional)";
      var disputeLabel = el("label", "q-check");
      var dispute = el("input", "q-ack-dispute");
      dispute.type = "checkbox";
      disputeLabel.appendChild(dispute);
      disputeLabel.appendChild(document.createTextNode(" I disagree with this evaluation"));
      var send = el("button", "btn btn-primary q-ack-send", "Acknowledge");
      send.type = "button";
      send.addEventListener("click", async function () {
        send.disabled = true;
        try {
          await api("POST", "/api/quality/evaluations/" + encodeURIComponent(ev.id) + "/acknowledge",
            { comment: comment.value, dispute: dispute.checked });
          await loadEvaluations();
          showEvaluation(ev.id);
        } catch (e) { send.disabled = false; fail(e); }
      });
      ack.appendChild(comment);
      ack.appendChild(disputeLabel);
      ack.appendChild(send);
    } else {
      ack.appendChild(el("div", "muted", "Not acknowledged by the agent yet."));
    }
    box.appendChild(ack);
  }

  // ------------------------------------------------------------------ report
  function reportParams() {
    var until = $("q-until").value;
    return { since: $("q-since").value, until: until, group: $("q-group").value };
  }

  async function loadReport() {
    var params = reportParams();
    $("q-report-csv").href = "/api/quality/report.csv" + query(params);
    var data;
    try { data = await api("GET", "/api/quality/report" + query(params)); } catch (e) { fail(e); return; }
    showError("");
    var keys = Object.keys(data.item_labels);
    var head = $("q-report-head");
    clear(head);
    var hr = el("tr");
    [{ "agent": "Agent", "queue": "Queue", "scorecard": "Scorecard" }[data.group], "Evaluations", "Average",
      "Auto-fails", "Re-contacts"].concat(keys.map(function (k) { return data.item_labels[k]; }))
      .forEach(function (h, i) { hr.appendChild(el("th", i ? "num" : null, h)); });
    head.appendChild(hr);
    var body = $("q-report-body");
    clear(body);
    $("q-report-empty").hidden = data.rows.length > 0;
    data.rows.concat(data.rows.length ? [Object.assign({ name: "Total", total: true }, data.total)] : [])
      .forEach(function (row) {
        var tr = el("tr", row.total ? "q-total" : null);
        tr.appendChild(el("td", null, row.name));
        tr.appendChild(el("td", "num", row.count));
        tr.appendChild(el("td", "num", pct(row.avg_total_pct)));
        tr.appendChild(el("td", "num", row.auto_fail_count));
        tr.appendChild(el("td", "num", row.recontact_count));
        keys.forEach(function (k) { tr.appendChild(el("td", "num", pct((row.items[k] || {}).avg_pct))); });
        body.appendChild(tr);
      });
  }

  // ------------------------------------------------------------------ boot
  async function loadAgents() {
    var list;
    try { list = await api("GET", "/api/agents"); } catch (e) { return; }
    var select = $("q-agent");
    list.forEach(function (a) { var opt = el("option", null, a.name); opt.value = a.id; select.appendChild(opt); });
  }

  async function boot() {
    try { me = await api("GET", "/api/me"); } catch (e) { fail(e); return; }
    $("user-name").textContent = me.name || me.email || "";
    $("tenant-name").textContent = me.tenant_name || me.tenant_slug || "";
    var roles = me.roles || [];
    supervisor = roles.indexOf("supervisor") >= 0 || roles.indexOf("admin") >= 0;
    $("wallboard-link").hidden = !supervisor;
    $("routing-link").hidden = !supervisor;
    document.querySelectorAll(".q-tab").forEach(function (tab) {
      tab.addEventListener("click", function () { showTab(tab.getAttribute("data-tab")); });
    });
    var wanted = new URLSearchParams(window.location.search).get("evaluation");
    if (!supervisor) {
      $("q-evals-title").textContent = "My evaluations";
      $("tab-evaluations").hidden = false;
      await loadEvaluations();
      if (wanted) showEvaluation(wanted);
      return;
    }
    $("q-tabs").hidden = false;
    $("q-queue-filter").addEventListener("submit", function (ev) { ev.preventDefault(); loadQueue(); });
    $("q-eval-card").addEventListener("change", renderEvalItems);
    $("q-eval-recontact").addEventListener("change", function () {
      $("q-eval-recontact-note").hidden = !$("q-eval-recontact").checked;
    });
    $("q-eval-form").addEventListener("submit", saveEvaluation);
    $("q-add-item").addEventListener("click", function () { addItemRow(); });
    $("q-designer-reset").addEventListener("click", resetDesigner);
    $("q-designer").addEventListener("submit", saveCard);
    $("q-report-form").addEventListener("submit", function (ev) { ev.preventDefault(); loadReport(); });
    resetDesigner();
    loadAgents();
    await loadCards();
    if (wanted) { showTab("evaluations"); showEvaluation(wanted); return; }
    showTab("score");
    loadQueue();
  }

  window.QualityPage = { reload: loadQueue, state: function () { return { me: me, cards: cards, current: current }; } };
  boot();
})();
