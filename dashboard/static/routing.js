/* Supervisor routing configuration (dashboard/routing_api.py): queues (/api/queues), agents'
 * skill levels (/api/agents, PUT /api/agents/{id}/skills), their own capacities and languages
 * (PUT /api/agents/{id}/routing) and the tenant's routing settings (/api/routing/settings).
 * Plain ES2020; all data goes into the page through textContent / value.
 */
(function () {
  "use strict";

  var CHANNELS = ["voice", "chat", "email", "sms"];
  var STRATEGY_LABELS = {
    longest_idle: "Longest idle", least_occupied: "Least occupied", best_fit: "Best fit",
    round_robin: "Round robin", ring_all: "Ring all",
  };

  function $(id) { return document.getElementById(id); }

  var dom = {
    tenantName: $("tenant-name"), userName: $("user-name"), logout: $("logout"), error: $("routing-error"),
    queues: $("queues"), queuesEmpty: $("queues-empty"), agents: $("agents"), agentsEmpty: $("agents-empty"),
    form: $("queue-form"), name: $("queue-name"), skill: $("queue-skill"), level: $("queue-level"),
    strategy: $("queue-strategy"), priority: $("queue-priority"), maxWait: $("queue-max-wait"), save: $("queue-save"),
    settingsForm: $("settings-form"), reasons: $("rs-reasons"), stickyDays: $("rs-sticky-days"),
    stickyWait: $("rs-sticky-wait"), pickup: $("rs-pickup"), region: $("rs-region"),
    settingsSave: $("rs-save"), settingsStatus: $("rs-status"),
  };

  // ------------------------------------------------------------------ helpers
  function showError(text) {
    dom.error.textContent = text || "";
    dom.error.hidden = !text;
  }

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  var tenantSettings = null;  // the last GET / PUT /api/routing/settings

  function fail(e) {
    if (e && e.status === 401) return;
    showError(e && e.message ? e.message : String(e));
  }

  function sortedNames(obj) { return Object.keys(obj || {}).sort(); }

  // Channels in the usual order (voice, chat, email, sms), then any others by name.
  function channelNames(obj) {
    var names = Object.keys(obj || {});
    return CHANNELS.filter(function (ch) { return names.indexOf(ch) >= 0; })
      .concat(names.filter(function (ch) { return CHANNELS.indexOf(ch) < 0; }).sort());
  }

  // A number input's value: null when empty, NaN when not a number.
  function numberValue(input) {
    if (input.validity && input.validity.badInput) return NaN;
    var raw = input.value.trim();
    return raw === "" ? null : Number(raw);
  }

  // ------------------------------------------------------------------ queues
  function renderQueues(queues) {
    clear(dom.queues);
    queues.forEach(function (q) {
      var row = el("tr");
      row.setAttribute("data-queue-id", q.id);
      row.appendChild(el("td", "queue-name", q.name));
      var skills = el("td", "queue-skills");
      var names = sortedNames(q.skills);
      if (!names.length) skills.appendChild(el("span", "muted", "any"));
      names.forEach(function (name) {
        skills.appendChild(el("span", "chip", name + " " + q.skills[name]));
        skills.appendChild(document.createTextNode(" "));
      });
      row.appendChild(skills);
      row.appendChild(el("td", "num queue-priority", q.priority));
      row.appendChild(el("td", "queue-strategy", STRATEGY_LABELS[q.strategy] || q.strategy));
      row.appendChild(el("td", "num queue-max-wait", q.max_wait_s != null ? q.max_wait_s + " s" : "–"));
      var actions = el("td");
      var del = el("button", "btn btn-small queue-delete", "Delete");
      del.type = "button";
      del.addEventListener("click", function () { deleteQueue(q, del); });
      actions.appendChild(del);
      row.appendChild(actions);
      dom.queues.appendChild(row);
    });
    dom.queuesEmpty.hidden = queues.length > 0;
  }

  async function loadQueues() { renderQueues((await api("GET", "/api/queues")) || []); }

  async function deleteQueue(q, button) {
    if (!window.confirm("Delete the queue “" + q.name + "”?")) return;
    button.disabled = true;
    try {
      await api("DELETE", "/api/queues/" + encodeURIComponent(q.id));
      showError("");
      await loadQueues();
    } catch (e) {
      button.disabled = false;
      fail(e);
    }
  }

  dom.form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var body = {
      name: dom.name.value.trim(),
      skills: {},
      priority: dom.priority.value === "" ? 0 : Number(dom.priority.value),
      strategy: dom.strategy.value,
    };
    var skill = dom.skill.value.trim();
    if (skill) body.skills[skill] = Number(dom.level.value);
    if (dom.maxWait.value !== "") body.max_wait_s = Number(dom.maxWait.value);
    dom.save.disabled = true;
    try {
      await api("POST", "/api/queues", body);
      showError("");
      dom.form.reset();
      await loadQueues();
    } catch (e) {
      fail(e);
    } finally {
      dom.save.disabled = false;
    }
  });

  // ------------------------------------------------------------------ agents
  function levelInput(value) {
    var input = el("input", "skill-level");
    input.type = "number";
    input.min = "1";
    input.max = "10";
    input.value = String(value);
    return input;
  }

  function skillNode(name, level) {
    var node = el("label", "rt-skill");
    node.setAttribute("data-skill", name);
    node.appendChild(el("span", "chip", name));
    var input = levelInput(level);
    input.setAttribute("aria-label", name + " level");
    node.appendChild(input);
    return node;
  }

  var STATE_LABELS = { available: "Available", busy: "Busy", wrapup: "Wrap-up", not_ready: "Not ready", offline: "Offline" };

  function humanize(s) {
    s = String(s == null ? "" : s).replace(/[_-]+/g, " ");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  // "Not ready (lunch)" plus the free slots per channel, e.g. "chat 2/3 · voice 1/1 free".
  function agentStateCell(a) {
    var state = a.state || "offline";
    var label = STATE_LABELS[state] || humanize(state);
    if (state === "not_ready" && a.reason) label += " (" + humanize(a.reason).toLowerCase() + ")";
    var cell = el("td", "agent-status" + (state === "offline" ? " muted" : ""), label);
    cell.setAttribute("data-state", state);
    var capacity = a.capacity || {}, free = a.free || {};
    var slots = Object.keys(capacity).filter(function (ch) { return Number(capacity[ch]) > 0; }).sort()
      .map(function (ch) { return ch + " " + (free[ch] != null ? free[ch] : "?") + "/" + capacity[ch]; });
    if (slots.length && state !== "offline") cell.title = slots.join(" · ") + " free";
    return cell;
  }

  // "voice 1 · chat 3"; channels the agent takes none of are left out.
  function capacityText(capacity) {
    return channelNames(capacity).filter(function (ch) { return Number(capacity[ch]) > 0; })
      .map(function (ch) { return ch + " " + capacity[ch]; }).join(" · ");
  }

  function capacityInput(className, channel, a) {
    var input = el("input", className);
    input.type = "number";
    input.min = "0";
    input.max = "50";
    input.step = "1";
    var own = a.own_capacity || {};
    input.value = own[channel] != null ? String(own[channel]) : "";
    var tenant = tenantSettings && tenantSettings.capacity ? tenantSettings.capacity[channel] : null;
    input.placeholder = tenant != null ? String(tenant) : "";
    input.title = channel + " capacity of " + a.name + " (empty: the tenant's" + (tenant != null ? ", " + tenant : "") + ")";
    input.setAttribute("aria-label", channel + " capacity for " + a.name);
    return input;
  }

  // The effective capacity and languages, and controls for the agent's own chat / voice capacity.
  function agentRoutingCell(a) {
    var cell = el("td", "agent-routing");
    var capacity = a.capacity || {};
    var capText = capacityText(capacity);
    var cap = el("div", "agent-capacity" + (capText ? "" : " muted"), capText || "no capacity");
    if (a.own_capacity) {
      cap.appendChild(document.createTextNode(" "));
      cap.appendChild(el("span", "chip chip-muted", "own"));
    }
    cell.appendChild(cap);
    var languages = a.languages || [];
    cell.appendChild(el("div", "agent-languages" + (languages.length ? "" : " muted"),
      languages.length ? languages.join(", ") : "any language"));

    var box = el("div", "rt-add rt-agent-routing");
    var chat = capacityInput("agent-cap-chat", "chat", a);
    var voice = capacityInput("agent-cap-voice", "voice", a);
    var langs = el("input", "agent-langs");
    langs.type = "text";
    langs.placeholder = "languages, e.g. en, ko";
    langs.value = languages.join(", ");
    langs.setAttribute("aria-label", "Languages of " + a.name);
    var save = el("button", "btn btn-small agent-routing-save", "Set");
    save.type = "button";
    save.title = "Save the capacity and languages of " + a.name;
    var saved = el("span", "agent-routing-saved");
    box.appendChild(el("span", "rt-input-label", "chat"));
    box.appendChild(chat);
    box.appendChild(el("span", "rt-input-label", "voice"));
    box.appendChild(voice);
    box.appendChild(langs);
    box.appendChild(save);
    box.appendChild(saved);
    save.addEventListener("click", function () { saveAgentRouting(a, cell, save); });
    cell.appendChild(box);
    return cell;
  }

  function renderAgents(agents) {
    clear(dom.agents);
    agents.forEach(function (a) { dom.agents.appendChild(agentRow(a)); });
    dom.agentsEmpty.hidden = agents.length > 0;
  }

  function agentRow(a) {
    var row = el("tr");
    row.setAttribute("data-agent-id", a.id);
    var who = el("td", "agent-name", a.name);
    who.title = a.email || "";
    row.appendChild(who);
    row.appendChild(agentStateCell(a));
    row.appendChild(agentRoutingCell(a));

    var skills = el("td");
    var list = el("div", "rt-skills agent-skills");
    sortedNames(a.skills).forEach(function (name) { list.appendChild(skillNode(name, a.skills[name])); });
    skills.appendChild(list);
    row.appendChild(skills);

    var add = el("td");
    var addBox = el("div", "rt-add");
    var newName = el("input", "new-skill-name");
    newName.type = "text";
    newName.placeholder = "skill";
    newName.setAttribute("aria-label", "New skill for " + a.name);
    var newLevel = levelInput(5);
    newLevel.classList.add("new-skill-level");
    newLevel.classList.remove("skill-level");
    newLevel.setAttribute("aria-label", "New skill level for " + a.name);
    addBox.appendChild(newName);
    addBox.appendChild(newLevel);
    add.appendChild(addBox);
    row.appendChild(add);

    var actions = el("td");
    var save = el("button", "btn btn-small btn-primary agent-save", "Save");
    save.type = "button";
    var saved = el("span", "rt-saved");
    save.addEventListener("click", function () { saveAgent(a, row, save, saved); });
    actions.appendChild(save);
    actions.appendChild(document.createTextNode(" "));
    actions.appendChild(saved);
    row.appendChild(actions);
    return row;
  }

  async function loadAgents() { renderAgents((await api("GET", "/api/agents")) || []); }

  async function saveAgent(agent, row, button, saved) {
    var skills = {};
    Array.prototype.forEach.call(row.querySelectorAll(".rt-skill[data-skill]"), function (node) {
      var input = node.querySelector(".skill-level");
      skills[node.getAttribute("data-skill")] = Number(input.value);
    });
    var newName = row.querySelector(".new-skill-name").value.trim();
    if (newName) skills[newName] = Number(row.querySelector(".new-skill-level").value);
    button.disabled = true;
    saved.textContent = "";
    try {
      await api("PUT", "/api/agents/" + encodeURIComponent(agent.id) + "/skills", { skills: skills });
      showError("");
      await loadAgents();
      var fresh = dom.agents.querySelector('tr[data-agent-id="' + CSS.escape(agent.id) + '"] .rt-saved');
      if (fresh) fresh.textContent = "Saved";
    } catch (e) {
      button.disabled = false;
      fail(e);
    }
  }

  // Redraw one agent's row from a fresh /api/agents, leaving the other rows' edits alone.
  async function refreshAgentRow(agentId) {
    var agents = (await api("GET", "/api/agents")) || [];
    var fresh = agents.filter(function (a) { return a.id === agentId; })[0];
    var old = dom.agents.querySelector('tr[data-agent-id="' + CSS.escape(agentId) + '"]');
    if (!fresh) {
      renderAgents(agents);
      return null;
    }
    var row = agentRow(fresh);
    if (old) dom.agents.replaceChild(row, old);
    else dom.agents.appendChild(row);
    return row;
  }

  // The agent's own chat / voice capacity (both empty: the tenant's) and languages.
  async function saveAgentRouting(agent, cell, button) {
    var own = {};
    Object.keys(agent.own_capacity || {}).forEach(function (ch) {
      if (ch !== "chat" && ch !== "voice") own[ch] = agent.own_capacity[ch];
    });
    var inputs = { chat: cell.querySelector(".agent-cap-chat"), voice: cell.querySelector(".agent-cap-voice") };
    for (var ch in inputs) {
      var n = numberValue(inputs[ch]);
      if (n === null) continue;
      if (!Number.isInteger(n) || n < 0 || n > 50) {
        showError(agent.name + ": " + ch + " capacity must be a whole number 0–50 (empty: the tenant's).");
        inputs[ch].focus();
        return;
      }
      own[ch] = n;
    }
    var languages = cell.querySelector(".agent-langs").value.split(/[\s,;]+/)
      .map(function (l) { return l.trim(); }).filter(Boolean);
    var body = { capacity: Object.keys(own).length ? own : null, languages: languages };
    button.disabled = true;
    cell.querySelector(".agent-routing-saved").textContent = "";
    try {
      await api("PUT", "/api/agents/" + encodeURIComponent(agent.id) + "/routing", body);
      showError("");
      var row = await refreshAgentRow(agent.id);
      var saved = row && row.querySelector(".agent-routing-saved");
      if (saved) saved.textContent = "Saved";
    } catch (e) {
      button.disabled = false;
      fail(e);
    }
  }

  // ------------------------------------------------------------------ routing settings
  function settingsInput(kind, channel) { return $("rs-" + kind + "-" + channel); }

  function setSettingsStatus(text, isError) {
    dom.settingsStatus.textContent = text || "";
    dom.settingsStatus.classList.toggle("rt-status-error", !!isError);
  }

  function renderSettings(s) {
    tenantSettings = s;
    var capacity = s.capacity || {}, wrapup = s.wrapup_s || {};
    CHANNELS.forEach(function (ch) {
      settingsInput("cap", ch).value = capacity[ch] != null ? String(capacity[ch]) : "0";
      settingsInput("wrap", ch).value = wrapup[ch] != null ? String(wrapup[ch]) : "0";
    });
    dom.reasons.value = (s.not_ready_reasons || []).join(", ");
    dom.stickyDays.value = String(s.sticky_days);
    dom.stickyWait.value = String(s.sticky_wait_s);
    dom.pickup.checked = !!s.allow_pickup;
    dom.region.value = s.default_region || "";
  }

  async function loadSettings() { renderSettings(await api("GET", "/api/routing/settings")); }

  // The form as the whole settings object (anything the form does not show is sent back as
  // it came); throws a message for input the server would not make sense of.
  function settingsBody() {
    var body = JSON.parse(JSON.stringify(tenantSettings || {}));
    body.capacity = body.capacity || {};
    body.wrapup_s = body.wrapup_s || {};
    CHANNELS.forEach(function (ch) {
      var cap = numberValue(settingsInput("cap", ch));
      if (cap === null || !Number.isInteger(cap)) throw new Error(ch + " capacity: enter a whole number 0–50.");
      body.capacity[ch] = cap;
      var wrap = numberValue(settingsInput("wrap", ch));
      if (Number.isNaN(wrap)) throw new Error(ch + " wrap-up: enter a number of seconds (0 = none).");
      body.wrapup_s[ch] = wrap === null ? 0 : wrap;
    });
    body.not_ready_reasons = dom.reasons.value.split(",")
      .map(function (r) { return r.trim(); })
      .filter(function (r, i, all) { return r && all.indexOf(r) === i; });
    var days = numberValue(dom.stickyDays), wait = numberValue(dom.stickyWait);
    if (days === null || Number.isNaN(days)) throw new Error("Sticky days: enter a number (0 = off).");
    if (wait === null || Number.isNaN(wait)) throw new Error("Sticky wait: enter a number of seconds.");
    body.sticky_days = days;
    body.sticky_wait_s = wait;
    body.allow_pickup = dom.pickup.checked;
    var region = dom.region.value.trim().toUpperCase();
    if (region && !/^[A-Z]{2}$/.test(region)) throw new Error("Default region: a two-letter country code such as US, or empty.");
    body.default_region = region || null;
    return body;
  }

  dom.settingsForm.addEventListener("input", function () { setSettingsStatus(""); });

  dom.settingsForm.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var body;
    try {
      body = settingsBody();
    } catch (e) {
      setSettingsStatus(e.message, true);
      return;
    }
    dom.settingsSave.disabled = true;
    setSettingsStatus("Saving…");
    try {
      renderSettings(await api("PUT", "/api/routing/settings", body));
      setSettingsStatus("Saved");
    } catch (e) {
      if (e && e.status === 401) return;
      setSettingsStatus(e && e.message ? e.message : String(e), true);
      return;
    } finally {
      dom.settingsSave.disabled = false;
    }
    try {
      await loadAgents();  // the agents' effective capacities follow the tenant's
    } catch (e) {
      fail(e);
    }
  });

  // ------------------------------------------------------------------ start
  dom.logout.addEventListener("click", function (ev) {
    ev.preventDefault();
    var go = function () { window.location.assign("/logout"); };
    try {
      fetch("/api/auth/logout", { method: "POST", credentials: "same-origin", keepalive: true,
        headers: HubDesk.csrfHeaders() }).then(go, go);
    } catch (e) { go(); }
  });

  async function boot() {
    var me;
    try {
      me = await api("GET", "/api/me");
    } catch (e) {
      if (e.status !== 401) {
        showError("Cannot reach the server: " + e.message + ". Retrying…");
        setTimeout(boot, 3000);
      }
      return;
    }
    dom.userName.textContent = me.name || me.email || "";
    dom.tenantName.textContent = me.tenant_name || me.tenant_slug || "";
    document.title = "Routing – " + (me.tenant_name || "Contact hub");
    var roles = me.roles || [];
    if (roles.indexOf("supervisor") < 0 && roles.indexOf("admin") < 0) {
      showError("Routing configuration is for supervisors and admins.");
      return;
    }
    showError("");
    try {
      // The settings first: the agents' capacity inputs show the tenant's as placeholders.
      await Promise.all([loadQueues(), loadSettings().catch(fail).then(loadAgents)]);
    } catch (e) {
      fail(e);
    }
  }

  boot();
})();
