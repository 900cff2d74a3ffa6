/* The agent's guided script (dashboard/questionnaires_api.py): the questionnaire of the selected
 * contact (its own or its campaign's) one question at a time, options as buttons. Every answer
 * posts all answers so far to POST /api/contacts/{id}/answers; the server replays them through
 * the same session a robot call or an SMS uses and answers with the next question, so the
 * branching shown here is the branching everywhere. Follows the desk's selection through
 * window.AgentDesk.state(); all data goes into the page through textContent / value.
 */
(function () {
  "use strict";

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  var panel = document.getElementById("script-panel");
  var contactId = null;   // the contact whose script is shown
  var data = null;        // GET /api/contacts/{id}/script, state replaced after each save
  var loadToken = 0;
  var busy = false;
  var error = "";
  var chosen = new Set(); // multiple choice: options toggled but not yet sent

  function deskState() { return window.AgentDesk && window.AgentDesk.state ? window.AgentDesk.state() : null; }

  function revealDesignerLink(me) {
    var link = document.getElementById("questionnaires-link");
    if (!link || !link.hidden || !me) return;
    var roles = me.roles || [];
    link.hidden = !(roles.indexOf("supervisor") >= 0 || roles.indexOf("admin") >= 0);
  }

  function poll() {
    var state = deskState();
    if (!state) return;
    revealDesignerLink(state.me);
    var selected = state.selected || null;
    if (selected !== contactId) {
      contactId = selected;
      data = null;
      error = "";
      chosen = new Set();
      load();
    }
  }

  async function load() {
    var id = contactId;
    var token = ++loadToken;
    if (!id) { render(); return; }
    try {
      var got = await api("GET", "/api/contacts/" + encodeURIComponent(id) + "/script");
      if (token !== loadToken) return;
      data = got;
    } catch (e) {
      if (token !== loadToken) return;
      data = null;
    }
    render();
  }

  function questionOf(key) {
    var qs = (data && data.questionnaire && data.questionnaire.questions) || [];
    for (var i = 0; i < qs.length; i++) if (qs[i].key === key) return qs[i];
    return null;
  }

  function answerLabel(question, value) {
    if (value === null || value === undefined) return "(skipped)";
    if (question && question.options && question.options.length) {
      var keys = Array.isArray(value) ? value : [value];
      return keys.map(function (k) {
        var opt = question.options.find(function (o) { return o.key === String(k); });
        return opt ? opt.label : String(k);
      }).join(", ");
    }
    return String(value);
  }

  async function save(answers) {
    if (busy || !data || !data.questionnaire) return;
    busy = true;
    error = "";
    render();
    var id = contactId;
    try {
      var state = await api("POST", "/api/contacts/" + encodeURIComponent(id) + "/answers",
        { questionnaire_id: data.questionnaire.id, answers: answers });
      if (id === contactId && data) {
        data.state = state;
        chosen = new Set();
      }
    } catch (e) {
      if (id === contactId) error = e.message || "Could not save the answer";
    }
    busy = false;
    render();
  }

  function answer(key, value) {
    var answers = Object.assign({}, data.state.answers);
    answers[key] = value;
    save(answers);
  }

  function back() {
    var path = data.state.path || [];
    if (!path.length) return;
    var answers = Object.assign({}, data.state.answers);
    delete answers[path[path.length - 1]];
    save(answers);
  }

  function button(label, className, onClick) {
    var b = el("button", "btn " + (className || ""), label);
    b.type = "button";
    b.disabled = busy || !data.editable;
    b.addEventListener("click", onClick);
    return b;
  }

  function inputFor(prompt) {
    var wrap = el("div", "sc-input");
    var field;
    if (prompt.kind === "text") {
      field = el("textarea", "sc-field");
      field.rows = 2;
    } else {
      field = el("input", "sc-field");
      field.type = prompt.kind === "number" ? "number" : prompt.kind === "date" ? "date" : "text";
      if (prompt.kind === "number") {
        field.step = "any";
        if (prompt.min != null) field.min = String(prompt.min);
        if (prompt.max != null) field.max = String(prompt.max);
      }
    }
    field.setAttribute("aria-label", prompt.text);
    field.disabled = busy || !data.editable;
    var next = button("Next", "btn-primary sc-next", function () { answer(prompt.key, field.value.trim()); });
    field.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); next.click(); }
    });
    wrap.appendChild(field);
    wrap.appendChild(next);
    return wrap;
  }

  function renderPrompt(box, prompt) {
    if (prompt.intro) box.appendChild(el("p", "sc-intro", prompt.intro));
    box.appendChild(el("div", "sc-number", "Question " + prompt.number + (prompt.required ? "" : " · optional")));
    box.appendChild(el("p", "sc-question", prompt.text));
    var options = el("div", "sc-options");
    if (prompt.kind === "single") {
      prompt.options.forEach(function (o) {
        options.appendChild(button(o.key + "  " + o.label, "sc-option", function () { answer(prompt.key, o.key); }));
      });
    } else if (prompt.kind === "multiple") {
      prompt.options.forEach(function (o) {
        var b = button(o.key + "  " + o.label, "sc-option" + (chosen.has(o.key) ? " sc-chosen" : ""), function () {
          if (chosen.has(o.key)) chosen.delete(o.key); else chosen.add(o.key);
          render();
        });
        b.setAttribute("aria-pressed", chosen.has(o.key) ? "true" : "false");
        options.appendChild(b);
      });
      var next = button("Next", "btn-primary sc-next", function () { answer(prompt.key, Array.from(chosen)); });
      next.disabled = next.disabled || (!chosen.size && prompt.required);
      options.appendChild(next);
    } else {
      options.appendChild(inputFor(prompt));
    }
    box.appendChild(options);
    var actions = el("div", "sc-actions");
    if (!prompt.required) actions.appendChild(button("Skip", "btn-small btn-ghost sc-skip", function () { answer(prompt.key, null); }));
    box.appendChild(actions);
  }

  function render() {
    clear(panel);
    if (!contactId || !data || !data.questionnaire) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    var q = data.questionnaire, state = data.state || {};
    var title = el("h2", "panel-title", "Script ");
    title.appendChild(el("span", "count", q.name));
    panel.appendChild(title);
    var box = el("div", "sc-body");
    if (state.done) {
      box.appendChild(el("div", "sc-number", "Finished"));
      box.appendChild(el("p", "sc-question", state.end_text || "Thank you."));
    } else if (state.prompt) {
      renderPrompt(box, state.prompt);
    }
    if (!data.editable) box.appendChild(el("div", "empty-note", "Read only: answers are recorded by the agent holding the contact."));
    if (error) box.appendChild(el("div", "form-error sc-error", error));
    var path = state.path || [];
    if (path.length) {
      var list = el("ol", "sc-answers");
      path.forEach(function (key) {
        var question = questionOf(key);
        var item = el("li");
        item.appendChild(el("span", "sc-answer-q", question ? question.text : key));
        item.appendChild(el("span", "sc-answer-a", answerLabel(question, state.answers[key])));
        list.appendChild(item);
      });
      box.appendChild(list);
      box.appendChild(button("Back", "btn-small btn-ghost sc-back", back));
    }
    panel.appendChild(box);
  }

  setInterval(poll, 500);
  poll();
  window.AgentScript = {
    state: function () { return { contactId: contactId, data: data, error: error, busy: busy }; },
    reload: load,
  };
})();
