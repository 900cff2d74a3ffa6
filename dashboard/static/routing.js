/* Supervisor routing configuration: queues (dashboard/routing_api.py /api/queues) and agents'
 * skill levels (/api/agents, PUT /api/agents/{id}/skills). Plain ES2020; all data goes into the
 * page through textContent / value.
 */
(function () {
  "use strict";

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
  };

  // ------------------------------------------------------------------ helpers
  function showError(text) {
    dom.error.textContent = text || "";
    dom.error.hidden = !text;
  }

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;

  function fail(e) {
    if (e && e.status === 401) return;
    showError(e && e.message ? e.message : String(e));
  }

  function sortedNames(obj) { return Object.keys(obj || {}).sort(); }

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

  function renderAgents(agents) {
    clear(dom.agents);
    agents.forEach(function (a) {
      var row = el("tr");
      row.setAttribute("data-agent-id", a.id);
      var who = el("td", "agent-name", a.name);
      who.title = a.email || "";
      row.appendChild(who);
      row.appendChild(agentStateCell(a));

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
      dom.agents.appendChild(row);
    });
    dom.agentsEmpty.hidden = agents.length > 0;
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

  // ------------------------------------------------------------------ start
  dom.logout.addEventListener("click", function (ev) {
    ev.preventDefault();
    var go = function () { window.location.assign("/logout"); };
    try {
      fetch("/api/auth/logout", { method: "POST", credentials: "same-origin", keepalive: true }).then(go, go);
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
      await Promise.all([loadQueues(), loadAgents()]);
    } catch (e) {
      fail(e);
    }
  }

  boot();
})();
