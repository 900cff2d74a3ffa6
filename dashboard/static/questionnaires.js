/* The questionnaire designer (dashboard/questionnaires_api.py): questions of five kinds, options
 * (keypad digits 1-9 by position), jumps per option and per question, conditions on earlier
 * answers, extra endings; live preview rendered by the server (POST /api/questionnaires/preview)
 * as a voice call (keys or words), an SMS conversation, the email text and the email form, so
 * what is previewed is what the channels run. Locked questionnaires (with answers) are read
 * only: "Copy as new version". Plain ES2020; data goes into the page through textContent / value.
 */
(function () {
  "use strict";

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  var KINDS = [["single", "Single choice"], ["multiple", "Multiple choice"], ["text", "Text"],
    ["number", "Number"], ["date", "Date"]];
  var OPS = [["in", "is one of"], ["gt", "is more than / after"], ["lt", "is less than / before"]];

  function $(id) { return document.getElementById(id); }
  var dom = {
    tenantName: $("tenant-name"), userName: $("user-name"), list: $("qn-list"), listEmpty: $("qn-list-empty"),
    error: $("qn-error"), locked: $("qn-locked"), form: $("qn-form"), name: $("qn-name"), intro: $("qn-intro"),
    end: $("qn-end"), dateOrder: $("qn-date-order"), questions: $("qn-questions"), endings: $("qn-endings"),
    status: $("qn-status"), save: $("qn-save"), copy: $("qn-copy"), del: $("qn-delete"), statsOpen: $("qn-stats-open"),
    stats: $("qn-stats"), problems: $("qn-problems"), conversation: $("qn-conversation"), tryForm: $("qn-try"),
    tryInput: $("qn-try-input"), print: $("qn-print"), formPreview: $("qn-form-preview"),
  };

  var items = [];          // GET /api/questionnaires
  var current = null;      // the saved questionnaire being edited (null: a new one)
  var draft = null;        // the document being edited
  var tab = "voice";
  var inputs = [];         // what was answered in the preview conversation
  var previewTimer = null, previewToken = 0;

  function showError(text) { dom.error.textContent = text || ""; dom.error.hidden = !text; }
  function fail(e) { if (!e || e.status !== 401) showError(e && e.message ? e.message : String(e)); }
  function status(text) { dom.status.textContent = text || ""; }

  function blank() {
    return {
      name: "New questionnaire", intro: "", end_text: "Thank you for your answers.", date_order: "YMD",
      questions: [{ key: "q1", text: "", kind: "single", required: true,
        options: [{ key: "1", label: "Yes", next: null }, { key: "2", label: "No", next: null }],
        min: null, max: null, next: null, branches: [] }],
      endings: [],
    };
  }

  function freshKey(prefix) {
    var used = new Set(draft.questions.map(function (q) { return q.key; })
      .concat(draft.endings.map(function (e) { return e.key; })));
    for (var i = 1; ; i++) if (!used.has(prefix + i)) return prefix + i;
  }

  // Renaming a key renames every jump and condition that points at it.
  function renameKey(from, to) {
    if (!to || from === to) return;
    draft.questions.forEach(function (q) {
      if (q.next === from) q.next = to;
      (q.options || []).forEach(function (o) { if (o.next === from) o.next = to; });
      (q.branches || []).forEach(function (b) {
        if (b.then === from) b.then = to;
        if (b["if"].q === from) b["if"].q = to;
      });
    });
  }

  function renumber(q) { (q.options || []).forEach(function (o, i) { o.key = String(i + 1); }); }

  // ------------------------------------------------------------------ list
  async function loadList(selectId) {
    try { items = await api("GET", "/api/questionnaires"); } catch (e) { fail(e); return; }
    clear(dom.list);
    dom.listEmpty.hidden = items.length > 0;
    items.forEach(function (item) {
      var node = el("button", "qn-item" + (current && current.id === item.id ? " selected" : ""));
      node.type = "button";
      node.setAttribute("data-id", item.id);
      node.appendChild(el("span", "qn-item-name", item.name));
      node.appendChild(el("span", "chip chip-muted", "v" + item.version + (item.locked ? " · locked" : "")));
      node.addEventListener("click", function () { open(item.id); });
      dom.list.appendChild(node);
    });
    if (selectId) await open(selectId);
  }

  async function open(id) {
    showError("");
    try { current = await api("GET", "/api/questionnaires/" + encodeURIComponent(id)); } catch (e) { fail(e); return; }
    draft = JSON.parse(JSON.stringify(current));
    ["id", "version", "family_id", "locked", "created_at", "updated_at"].forEach(function (k) { delete draft[k]; });
    dom.stats.hidden = true;
    inputs = [];
    renderAll();
    Array.prototype.forEach.call(dom.list.children, function (n) {
      n.classList.toggle("selected", n.getAttribute("data-id") === id);
    });
  }

  function startNew() {
    current = null;
    draft = blank();
    dom.stats.hidden = true;
    inputs = [];
    renderAll();
  }

  // ------------------------------------------------------------------ editor
  function targetSelect(value, ownKey, emptyLabel, onChange) {
    var select = el("select", "qn-target");
    var empty = el("option", null, emptyLabel);
    empty.value = "";
    select.appendChild(empty);
    draft.questions.forEach(function (q, i) {
      if (q.key === ownKey) return;
      var opt = el("option", null, "Question " + (i + 1) + " (" + q.key + ")");
      opt.value = q.key;
      select.appendChild(opt);
    });
    var end = el("option", null, "End");
    end.value = "end";
    select.appendChild(end);
    draft.endings.forEach(function (e) {
      var opt = el("option", null, "End: " + e.key);
      opt.value = e.key;
      select.appendChild(opt);
    });
    select.value = value || "";
    select.addEventListener("change", function () { onChange(select.value || null); changed(); });
    return select;
  }

  function textInput(value, className, placeholder, onInput) {
    var input = el("input", className);
    input.type = "text";
    input.value = value == null ? "" : String(value);
    if (placeholder) input.placeholder = placeholder;
    input.addEventListener("input", function () { onInput(input.value); changed(); });
    return input;
  }

  function smallButton(label, title, onClick) {
    var b = el("button", "btn btn-small", label);
    b.type = "button";
    if (title) b.title = title;
    b.addEventListener("click", onClick);
    return b;
  }

  function renderOptions(q, box) {
    q.options.forEach(function (o, i) {
      var row = el("div", "qn-option");
      row.appendChild(el("span", "chip", "key " + o.key));
      row.appendChild(textInput(o.label, "qn-option-label", "Option label", function (v) { o.label = v; }));
      row.appendChild(el("span", "muted", "then"));
      row.appendChild(targetSelect(o.next, q.key, "(the question's next)", function (v) { o.next = v; }));
      row.appendChild(smallButton("×", "Remove option", function () {
        q.options.splice(i, 1); renumber(q); renderQuestions(); changed();
      }));
      box.appendChild(row);
    });
    if (q.options.length < 9) {
      box.appendChild(smallButton("Add option", "Options are answered with keys 1-9", function () {
        q.options.push({ key: String(q.options.length + 1), label: "", next: null });
        renderQuestions(); changed();
      }));
    }
  }

  function conditionValue(b) {
    var c = b["if"];
    if (c["in"] != null) return ["in", (c["in"] || []).join(", ")];
    if (c.gt != null) return ["gt", String(c.gt)];
    if (c.lt != null) return ["lt", String(c.lt)];
    return ["in", ""];
  }

  function setCondition(b, op, raw) {
    var source = draft.questions.find(function (q) { return q.key === b["if"].q; });
    var numeric = source && source.kind === "number";
    var cond = { q: b["if"].q };
    if (op === "in") {
      cond["in"] = raw.split(",").map(function (s) { return s.trim(); }).filter(Boolean)
        .map(function (s) { return numeric && !isNaN(Number(s)) ? Number(s) : s; });
    } else {
      cond[op] = numeric && raw.trim() !== "" && !isNaN(Number(raw)) ? Number(raw) : raw.trim();
    }
    b["if"] = cond;
  }

  function renderBranches(q, index, box) {
    (q.branches || []).forEach(function (b, i) {
      var row = el("div", "qn-branch");
      row.appendChild(el("span", "muted", "If"));
      var source = el("select", "qn-branch-q");
      draft.questions.slice(0, index + 1).forEach(function (other, j) {
        var opt = el("option", null, "answer " + (j + 1) + " (" + other.key + ")");
        opt.value = other.key;
        source.appendChild(opt);
      });
      source.value = b["if"].q;
      var given = conditionValue(b);
      var op = el("select", "qn-branch-op");
      OPS.forEach(function (pair) { var o = el("option", null, pair[1]); o.value = pair[0]; op.appendChild(o); });
      op.value = given[0];
      var value = el("input", "qn-branch-value");
      value.type = "text";
      value.value = given[1];
      value.placeholder = "option keys (1, 3), numbers or dates";
      var update = function () { b["if"].q = source.value; setCondition(b, op.value, value.value); changed(); };
      source.addEventListener("change", update);
      op.addEventListener("change", update);
      value.addEventListener("input", update);
      row.appendChild(source);
      row.appendChild(op);
      row.appendChild(value);
      row.appendChild(el("span", "muted", "go to"));
      row.appendChild(targetSelect(b.then, q.key, "(choose)", function (v) { b.then = v || "end"; }));
      row.appendChild(smallButton("×", "Remove condition", function () {
        q.branches.splice(i, 1); renderQuestions(); changed();
      }));
      box.appendChild(row);
    });
    box.appendChild(smallButton("Add condition", "Jump on an answer given so far (checked first)", function () {
      q.branches = q.branches || [];
      q.branches.push({ "if": { q: q.key, "in": [] }, then: "end" });
      renderQuestions(); changed();
    }));
  }

  function renderQuestion(q, index) {
    var card = el("div", "qn-question");
    card.setAttribute("data-key", q.key);
    var head = el("div", "qn-row");
    head.appendChild(el("span", "qn-number", String(index + 1)));
    var key = textInput(q.key, "qn-key", "key", function () { /* applied on change */ });
    key.title = "The answer's name in exports (a-z, 0-9, _)";
    key.addEventListener("change", function () {
      var to = key.value.trim();
      renameKey(q.key, to);
      q.key = to;
      renderQuestions(); changed();
    });
    head.appendChild(key);
    var kind = el("select", "qn-kind");
    KINDS.forEach(function (pair) { var o = el("option", null, pair[1]); o.value = pair[0]; kind.appendChild(o); });
    kind.value = q.kind;
    kind.addEventListener("change", function () {
      q.kind = kind.value;
      var choice = q.kind === "single" || q.kind === "multiple";
      if (choice && !(q.options || []).length) {
        q.options = [{ key: "1", label: "", next: null }, { key: "2", label: "", next: null }];
      }
      if (!choice) q.options = [];
      if (q.kind !== "number") { q.min = null; q.max = null; }
      renderQuestions(); changed();
    });
    head.appendChild(kind);
    var required = el("label", "rt-check");
    var check = el("input");
    check.type = "checkbox";
    check.checked = q.required !== false;
    check.addEventListener("change", function () { q.required = check.checked; changed(); });
    required.appendChild(check);
    required.appendChild(document.createTextNode(" required"));
    head.appendChild(required);
    head.appendChild(el("span", "qn-grow"));
    head.appendChild(smallButton("↑", "Move up", function () { move(index, -1); }));
    head.appendChild(smallButton("↓", "Move down", function () { move(index, 1); }));
    head.appendChild(smallButton("Delete", "Delete the question", function () {
      draft.questions.splice(index, 1); renderQuestions(); changed();
    }));
    card.appendChild(head);
    var text = el("textarea", "qn-text");
    text.rows = 2;
    text.value = q.text || "";
    text.placeholder = "The question, as the agent or the robot says it";
    text.addEventListener("input", function () { q.text = text.value; changed(); });
    card.appendChild(text);
    if (q.kind === "single" || q.kind === "multiple") {
      var options = el("div", "qn-options");
      renderOptions(q, options);
      card.appendChild(options);
    }
    if (q.kind === "number") {
      var bounds = el("div", "qn-row");
      ["min", "max"].forEach(function (name) {
        var label = el("label", "qn-field", name + " ");
        var input = el("input", "qn-bound");
        input.type = "number";
        input.step = "any";
        input.value = q[name] == null ? "" : String(q[name]);
        input.addEventListener("input", function () {
          q[name] = input.value.trim() === "" ? null : Number(input.value);
          changed();
        });
        label.appendChild(input);
        bounds.appendChild(label);
      });
      card.appendChild(bounds);
    }
    var flow = el("div", "qn-row");
    flow.appendChild(el("span", "muted", "Then"));
    flow.appendChild(targetSelect(q.next, q.key, "the next question", function (v) { q.next = v; }));
    card.appendChild(flow);
    var branches = el("div", "qn-branches");
    renderBranches(q, index, branches);
    card.appendChild(branches);
    return card;
  }

  function move(index, by) {
    var to = index + by;
    if (to < 0 || to >= draft.questions.length) return;
    var q = draft.questions.splice(index, 1)[0];
    draft.questions.splice(to, 0, q);
    renderQuestions(); changed();
  }

  function renderQuestions() {
    clear(dom.questions);
    draft.questions.forEach(function (q, i) { dom.questions.appendChild(renderQuestion(q, i)); });
  }

  function renderEndings() {
    clear(dom.endings);
    draft.endings.forEach(function (e, i) {
      var row = el("div", "qn-row qn-ending");
      var key = textInput(e.key, "qn-key", "key", function () { /* on change */ });
      key.addEventListener("change", function () {
        var to = key.value.trim();
        renameKey(e.key, to);
        e.key = to;
        renderQuestions(); renderEndings(); changed();
      });
      row.appendChild(key);
      row.appendChild(textInput(e.text, "qn-grow", "Closing text of this ending", function (v) { e.text = v; }));
      row.appendChild(smallButton("×", "Remove ending", function () {
        draft.endings.splice(i, 1); renderQuestions(); renderEndings(); changed();
      }));
      dom.endings.appendChild(row);
    });
  }

  function renderAll() {
    dom.name.value = draft.name || "";
    dom.intro.value = draft.intro || "";
    dom.end.value = draft.end_text || "";
    dom.dateOrder.value = draft.date_order || "YMD";
    var locked = !!(current && current.locked);
    dom.locked.hidden = !locked;
    dom.form.disabled = locked;
    dom.save.disabled = locked;
    dom.copy.disabled = !current;
    dom.del.disabled = !current || locked;
    dom.statsOpen.disabled = !current;
    status(current ? "Version " + current.version : "Not saved yet");
    renderQuestions();
    renderEndings();
    schedulePreview();
  }

  function changed() { status("Unsaved changes"); schedulePreview(); }

  dom.name.addEventListener("input", function () { draft.name = dom.name.value; changed(); });
  dom.intro.addEventListener("input", function () { draft.intro = dom.intro.value; changed(); });
  dom.end.addEventListener("input", function () { draft.end_text = dom.end.value; changed(); });
  dom.dateOrder.addEventListener("change", function () { draft.date_order = dom.dateOrder.value; changed(); });
  $("qn-new").addEventListener("click", startNew);
  $("qn-add-question").addEventListener("click", function () {
    draft.questions.push({ key: freshKey("q"), text: "", kind: "single", required: true,
      options: [{ key: "1", label: "", next: null }, { key: "2", label: "", next: null }],
      min: null, max: null, next: null, branches: [] });
    renderQuestions(); changed();
  });
  $("qn-add-ending").addEventListener("click", function () {
    draft.endings.push({ key: freshKey("ending"), text: "" });
    renderQuestions(); renderEndings(); changed();
  });

  dom.save.addEventListener("click", async function () {
    showError("");
    dom.save.disabled = true;
    try {
      var saved = current
        ? await api("PUT", "/api/questionnaires/" + encodeURIComponent(current.id), draft)
        : await api("POST", "/api/questionnaires", draft);
      await loadList(saved.id);
      status("Saved");
    } catch (e) { fail(e); }
    dom.save.disabled = !!(current && current.locked);
  });
  dom.copy.addEventListener("click", async function () {
    if (!current) return;
    try {
      var copy = await api("POST", "/api/questionnaires/" + encodeURIComponent(current.id) + "/copy");
      await loadList(copy.id);
      status("Copied as version " + copy.version);
    } catch (e) { fail(e); }
  });
  dom.del.addEventListener("click", async function () {
    if (!current || !window.confirm("Delete “" + current.name + "”?")) return;
    try {
      await api("DELETE", "/api/questionnaires/" + encodeURIComponent(current.id));
      startNew();
      loadList();
    } catch (e) { fail(e); }
  });

  // ------------------------------------------------------------------ statistics
  dom.statsOpen.addEventListener("click", async function () {
    if (!current) return;
    var s;
    try { s = await api("GET", "/api/questionnaires/" + encodeURIComponent(current.id) + "/stats"); } catch (e) { fail(e); return; }
    clear(dom.stats);
    dom.stats.hidden = false;
    dom.stats.appendChild(el("h3", "panel-subtitle", "Statistics"));
    dom.stats.appendChild(el("div", "qn-stats-totals",
      s.started + " started · " + s.answered + " answered · " + s.completed + " completed"));
    s.questions.forEach(function (q, i) {
      var box = el("div", "qn-stats-question");
      box.appendChild(el("div", "qn-stats-title", (i + 1) + ". " + q.text));
      box.appendChild(el("div", "muted", q.answered + " answered" + (q.skipped ? " · " + q.skipped + " skipped" : "")));
      if (q.options) {
        q.options.forEach(function (o) {
          var row = el("div", "qn-bar-row");
          row.appendChild(el("span", "qn-bar-label", o.key + " " + o.label));
          var bar = el("span", "qn-bar");
          var fill = el("span", "qn-bar-fill");
          fill.style.width = (q.answered ? Math.round(100 * o.count / q.answered) : 0) + "%";
          bar.appendChild(fill);
          row.appendChild(bar);
          row.appendChild(el("span", "qn-bar-count", String(o.count)));
          box.appendChild(row);
        });
      } else if (q.kind === "number") {
        box.appendChild(el("div", null, q.mean == null ? "No answers yet."
          : "mean " + Math.round(q.mean * 100) / 100 + " · min " + q.min + " · max " + q.max));
      } else if (q.kind === "date") {
        box.appendChild(el("div", null, q.earliest ? q.earliest + " … " + q.latest : "No answers yet."));
      } else {
        (q.latest || []).forEach(function (t) { box.appendChild(el("div", "qn-stats-text", "“" + t.text + "”")); });
      }
      dom.stats.appendChild(box);
    });
  });

  // ------------------------------------------------------------------ preview
  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, 350);
  }

  async function preview() {
    if (!draft) return;
    var token = ++previewToken;
    var result;
    try {
      result = await api("POST", "/api/questionnaires/preview",
        { questionnaire: draft, inputs: inputs, channel: tab === "voice" ? "voice" : "text" });
    } catch (e) { if (token === previewToken) fail(e); return; }
    if (token !== previewToken) return;
    clear(dom.problems);
    (result.problems || []).forEach(function (p) { dom.problems.appendChild(el("li", null, p)); });
    clear(dom.conversation);
    var chat = tab === "voice" || tab === "text";
    dom.conversation.hidden = !chat || !result.valid;
    dom.tryForm.hidden = !chat || !result.valid;
    dom.print.hidden = tab !== "print" || !result.valid;
    dom.formPreview.hidden = tab !== "form" || !result.valid;
    if (!result.valid) return;
    (result.transcript || []).forEach(function (line) {
      var cls = "qn-line qn-line-" + line.from + (line.error ? " qn-line-error" : "");
      dom.conversation.appendChild(el("div", cls, line.text));
    });
    if (result.state && result.state.done) dom.conversation.appendChild(el("div", "muted", "(the end)"));
    dom.conversation.scrollTop = dom.conversation.scrollHeight;
    dom.print.textContent = result.text;
    if (tab === "form") dom.formPreview.srcdoc = result.html;
  }

  Array.prototype.forEach.call(document.querySelectorAll(".qn-tab"), function (b) {
    b.addEventListener("click", function () {
      tab = b.getAttribute("data-tab");
      Array.prototype.forEach.call(document.querySelectorAll(".qn-tab"), function (o) {
        o.classList.toggle("btn-primary", o === b);
        o.setAttribute("aria-selected", o === b ? "true" : "false");
      });
      inputs = [];
      preview();
    });
  });
  dom.tryForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    inputs.push(dom.tryInput.value);
    dom.tryInput.value = "";
    preview();
  });
  $("qn-try-restart").addEventListener("click", function () { inputs = []; preview(); });

  // ------------------------------------------------------------------ start
  async function boot() {
    startNew();  // at once: the editor is usable while the list loads
    try {
      var me = await api("GET", "/api/me");
      dom.userName.textContent = me.name || me.email || "";
      dom.tenantName.textContent = me.tenant_name || "";
    } catch (e) { fail(e); return; }
    document.querySelector('.qn-tab[data-tab="voice"]').classList.add("btn-primary");
    var wanted = new URLSearchParams(window.location.search).get("id");
    await loadList(wanted || null);
  }

  window.QuestionnaireDesigner = {
    state: function () { return { current: current, draft: draft, inputs: inputs, tab: tab }; },
    open: open,
  };
  boot();
})();
