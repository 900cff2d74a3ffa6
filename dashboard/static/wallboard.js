/* Supervisor wallboard: big live tiles fed by the /ws/wallboard socket (snapshots of
 * dashboard/wallboard.py). Waiting times tick locally between pushes; the socket
 * reconnects with backoff. Plain ES2020; all data goes into the page through textContent.
 */
(function () {
  "use strict";

  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 10000;
  var STALE_MS = 15000;      // the hub pushes at least every 5 s; silence this long = dead socket
  var SL_GOOD = 0.8;
  var SL_WARN = 0.6;
  var STATE_ORDER = ["available", "busy", "wrapup", "not_ready", "offline"];
  var STATE_LABELS = { available: "Available", busy: "Busy", wrapup: "Wrap-up", not_ready: "Not ready", offline: "Offline" };

  function $(id) { return document.getElementById(id); }

  var dom = {
    tenantName: $("tenant-name"), userName: $("user-name"), logout: $("logout"),
    state: $("wb-state"), updated: $("wb-updated"), error: $("wb-error"),
    waiting: $("wb-waiting"), longest: $("wb-longest"),
    sl: $("wb-sl"), slTile: $("wb-sl-tile"), slSub: $("wb-sl-sub"),
    answered: $("wb-answered"), abandoned: $("wb-abandoned"),
    agents: $("wb-agents"), queues: $("wb-queues"), queuesEmpty: $("wb-queues-empty"),
    roster: $("wb-roster"), rosterEmpty: $("wb-roster-empty"), day: $("wb-day"),
  };

  var board = null;        // last snapshot
  var boardAt = 0;         // Date.now() when it arrived (waits tick from here, not from the server clock)
  var lastFrameAt = 0;

  // ------------------------------------------------------------------ helpers
  var el = HubDesk.el, clear = HubDesk.clear;

  function humanize(s) {
    s = String(s == null ? "" : s).replace(/[_-]+/g, " ");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  function mmss(seconds) {
    var s = Math.max(0, Math.floor(Number(seconds) || 0));
    var m = Math.floor(s / 60);
    var r = s % 60;
    return (m < 10 ? "0" : "") + m + ":" + (r < 10 ? "0" : "") + r;
  }

  function showError(text) {
    dom.error.textContent = text || "";
    dom.error.hidden = !text;
  }

  function api(path) { return HubDesk.api("GET", path); }

  // ------------------------------------------------------------------ rendering
  function elapsed() { return board ? Math.max(0, (Date.now() - boardAt) / 1000) : 0; }

  // A queue's longest wait now: the pushed figure plus the time since the push.
  function waitNow(waiting, longest) { return waiting > 0 ? (Number(longest) || 0) + elapsed() : 0; }

  // Time in state as h:mm:ss once past an hour (agents sit in a state for long stretches).
  function duration(seconds) {
    var s = Math.max(0, Math.floor(Number(seconds) || 0));
    if (s < 3600) return mmss(s);
    var h = Math.floor(s / 3600);
    return h + ":" + mmss(s - h * 3600);
  }

  function renderWaits() {
    if (!board) return;
    dom.longest.textContent = mmss(waitNow(board.waiting, board.longest_wait_s));
    Array.prototype.forEach.call(dom.roster.querySelectorAll("tr[data-agent]"), function (row) {
      var base = row.getAttribute("data-in-state");
      row.querySelector(".wb-roster-time").textContent = base === "" ? "–" : duration(Number(base) + elapsed());
    });
    Array.prototype.forEach.call(dom.queues.querySelectorAll("tr[data-queue]"), function (row) {
      var q = (board.queues || {})[row.getAttribute("data-queue")];
      if (q) row.querySelector(".wb-queue-longest").textContent = mmss(waitNow(q.waiting, q.longest_wait_s));
    });
    if (board.at) {
      var d = new Date(board.at);
      if (!isNaN(d.getTime())) dom.updated.textContent = "Updated " + d.toLocaleTimeString();
    }
  }

  function renderServiceLevel() {
    var level = board.service_level;
    var threshold = Math.round(Number(board.service_level_threshold_s) || 0);
    dom.slTile.classList.remove("wb-good", "wb-warn", "wb-bad");
    if (level == null) {
      dom.sl.textContent = "–";
      dom.sl.removeAttribute("data-level");
      dom.slSub.textContent = "nothing answered or abandoned today · target: answered within " + threshold + " s";
      return;
    }
    var pct = Math.round(level * 1000) / 10;
    dom.sl.textContent = pct + " %";
    dom.sl.setAttribute("data-level", level >= SL_GOOD ? "good" : level >= SL_WARN ? "warn" : "bad");
    dom.slTile.classList.add(level >= SL_GOOD ? "wb-good" : level >= SL_WARN ? "wb-warn" : "wb-bad");
    dom.slSub.textContent = "answered within " + threshold + " s · target " + Math.round(SL_GOOD * 100) + " %";
  }

  function renderAgents() {
    var agents = board.agents || {};
    var states = Object.keys(agents).sort(function (a, b) {
      var ia = STATE_ORDER.indexOf(a), ib = STATE_ORDER.indexOf(b);
      if (ia < 0) ia = STATE_ORDER.length;
      if (ib < 0) ib = STATE_ORDER.length;
      return ia - ib || (a < b ? -1 : a > b ? 1 : 0);
    });
    clear(dom.agents);
    if (!states.length) {
      dom.agents.appendChild(el("div", "empty-note", "No agents."));
      return;
    }
    states.forEach(function (state) {
      var node = el("div", "wb-agent-state");
      node.setAttribute("data-state", state);
      node.appendChild(el("div", "wb-agent-count", agents[state]));
      node.appendChild(el("div", "wb-agent-label", STATE_LABELS[state] || humanize(state)));
      if (state === "not_ready") {
        var reasons = board.not_ready_reasons || {};
        var names = Object.keys(reasons).sort(function (a, b) {
          return (reasons[b] - reasons[a]) || (a < b ? -1 : a > b ? 1 : 0);
        });
        if (names.length) {
          var list = el("ul", "wb-agent-reasons");
          names.forEach(function (reason) {
            var item = el("li");
            item.setAttribute("data-reason", reason);
            item.appendChild(el("span", "wb-agent-reason", humanize(reason)));
            item.appendChild(el("span", "wb-agent-reason-count", reasons[reason]));
            list.appendChild(item);
          });
          node.appendChild(list);
        }
      }
      dom.agents.appendChild(node);
    });
  }

  function renderQueues() {
    var queues = board.queues || {};
    var names = Object.keys(queues).sort(function (a, b) {
      return (queues[b].waiting - queues[a].waiting) || (a < b ? -1 : a > b ? 1 : 0);
    });
    clear(dom.queues);
    names.forEach(function (name) {
      var row = el("tr");
      row.setAttribute("data-queue", name);
      row.appendChild(el("td", "wb-queue-name", humanize(name)));
      row.appendChild(el("td", "num wb-queue-waiting", queues[name].waiting));
      row.appendChild(el("td", "num wb-queue-longest"));
      var level = queues[name].service_level;
      var sl = el("td", "num wb-queue-sl", level == null ? "–" : Math.round(level * 100) + " %");
      if (queues[name].service_level_threshold_s != null) {
        sl.title = "answered within " + queues[name].service_level_threshold_s + " s, today";
      }
      row.appendChild(sl);
      row.appendChild(el("td", "num wb-queue-answered", queues[name].answered_today || 0));
      row.appendChild(el("td", "num wb-queue-abandoned", queues[name].abandoned_today || 0));
      dom.queues.appendChild(row);
    });
    dom.queuesEmpty.hidden = names.length > 0;
  }

  function percent(value) { return value == null ? "–" : Math.round(value * 100) + " %"; }

  // One row per agent: state, time in it (ticks locally), contacts handled and occupancy today.
  function renderRoster() {
    var roster = board.roster || [];
    clear(dom.roster);
    roster.forEach(function (agent) {
      var row = el("tr");
      row.setAttribute("data-agent", agent.id);
      row.setAttribute("data-state", agent.state);
      row.setAttribute("data-in-state", agent.in_state_s == null ? "" : String(agent.in_state_s));
      row.appendChild(el("td", "wb-roster-name", agent.name));
      var label = STATE_LABELS[agent.state] || humanize(agent.state);
      if (agent.reason) label += " (" + humanize(agent.reason) + ")";
      var state = el("td", "wb-roster-state");
      state.appendChild(el("span", "wb-state-dot"));
      state.appendChild(document.createTextNode(label));
      row.appendChild(state);
      row.appendChild(el("td", "num wb-roster-time", "–"));
      row.appendChild(el("td", "num wb-roster-handled", agent.handled_today || 0));
      row.appendChild(el("td", "num wb-roster-occupancy", percent(agent.occupancy)));
      dom.roster.appendChild(row);
    });
    dom.rosterEmpty.hidden = roster.length > 0;
    dom.day.textContent = board.day ? board.day + (board.timezone && board.timezone !== "UTC" ? " · " + board.timezone : " · UTC") : "";
  }

  function render(snapshot) {
    board = snapshot;
    boardAt = Date.now();
    dom.waiting.textContent = String(snapshot.waiting != null ? snapshot.waiting : 0);
    dom.answered.textContent = String(snapshot.answered_today != null ? snapshot.answered_today : 0);
    dom.abandoned.textContent = String(snapshot.abandoned_today != null ? snapshot.abandoned_today : 0);
    renderServiceLevel();
    renderAgents();
    renderQueues();
    renderRoster();
    renderWaits();
  }

  // ------------------------------------------------------------------ live socket
  var ws = null;
  var wsBackoff = BACKOFF_MIN;
  var wsTimer = null;
  var stopped = false;

  function setState(kind) {
    var text = { live: "Live", reconnecting: "Reconnecting…", connecting: "Connecting…", stopped: "Offline" }[kind];
    dom.state.textContent = text;
    dom.state.setAttribute("data-state", kind);
    dom.state.className = "ws-state " + (kind === "live" ? "ws-online" : "ws-offline");
  }

  function connectSocket() {
    clearTimeout(wsTimer);
    wsTimer = null;
    if (stopped) return;
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/wallboard";
    var sock;
    try { sock = new WebSocket(url); } catch (e) { scheduleSocket(); return; }
    ws = sock;
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (!f || f.type !== "wallboard") return;
      wsBackoff = BACKOFF_MIN;       // reset only once the hub accepted us and pushed a snapshot
      lastFrameAt = Date.now();
      setState("live");
      showError("");
      render(f);
    };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      if (ev.code === 4403) {
        stopped = true;
        setState("stopped");
        showError("The wallboard is for supervisors and admins.");
        return;
      }
      setState("reconnecting");
      if (ev.code === 4401) {
        // the session is gone or expired: api() sends the browser to /login on 401
        api("/api/me").catch(function () { /* redirected */ });
      }
      scheduleSocket();
    };
    sock.onerror = function () { /* onclose follows */ };
  }

  function scheduleSocket() {
    if (wsTimer || stopped) return;
    var delay = wsBackoff;
    wsBackoff = Math.min(wsBackoff * 2, BACKOFF_MAX);
    wsTimer = setTimeout(function () { wsTimer = null; connectSocket(); }, delay);
  }

  function reconnectNow() {
    if (stopped) return;
    wsBackoff = BACKOFF_MIN;
    if (ws) {
      var old = ws;
      ws = null;
      try { old.close(); } catch (e) { /* already closed */ }
    }
    setState("reconnecting");
    clearTimeout(wsTimer);
    wsTimer = null;
    connectSocket();
  }

  function tick() {
    renderWaits();
    // a socket that stopped delivering (sleeping laptop, dead proxy) is replaced
    if (ws && ws.readyState === 1 && lastFrameAt && Date.now() - lastFrameAt > STALE_MS) reconnectNow();
  }

  // ------------------------------------------------------------------ announce
  var announce = {
    form: $("wb-announce"), text: $("wb-announce-text"), level: $("wb-announce-level"),
    audience: $("wb-announce-audience"), send: $("wb-announce-send"), status: $("wb-announce-status"),
  };

  function announceStatus(text, error) {
    announce.status.textContent = text || "";
    announce.status.classList.toggle("wb-announce-error", !!error);
  }

  // Audiences: everyone, each configured queue, and each skill group agents have (the
  // router's implicit queue "skill:<name>" for skills without a queue of that name).
  async function loadAudiences() {
    var queues = [], agents = [];
    try { queues = (await api("/api/queues")) || []; } catch (e) { /* all agents still works */ }
    try { agents = (await api("/api/agents")) || []; } catch (e) { /* idem */ }
    var names = new Set(queues.map(function (q) { return q.name; }));
    var skills = new Set();
    agents.forEach(function (a) { Object.keys(a.skills || {}).forEach(function (s) { skills.add(s); }); });
    while (announce.audience.options.length > 1) announce.audience.remove(1);
    queues.forEach(function (q) {
      var opt = el("option", null, "Queue: " + q.name);
      opt.value = "queue:" + q.id;
      announce.audience.appendChild(opt);
    });
    Array.from(skills).sort().forEach(function (skill) {
      if (names.has(skill)) return;
      var opt = el("option", null, "Skill: " + humanize(skill));
      opt.value = "queue:skill:" + skill;
      announce.audience.appendChild(opt);
    });
  }

  announce.form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var text = announce.text.value.trim();
    if (!text) { announceStatus("Write a message first.", true); return; }
    var target = announce.audience.value;
    var audience = target === "all" ? { all: true } : { queue_ids: [target.slice("queue:".length)] };
    announce.send.disabled = true;
    announceStatus("");
    try {
      var sent = await HubDesk.api("POST", "/api/announcements", { text: text, level: announce.level.value, audience: audience });
      announce.text.value = "";
      var n = sent && sent.recipients != null ? sent.recipients : 0;
      announceStatus("Sent to " + n + " " + (n === 1 ? "person" : "people") + ".");
    } catch (e) {
      if (e.status !== 401) announceStatus("Not sent: " + e.message, true);
    } finally {
      announce.send.disabled = false;
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
    setState("connecting");
    var me;
    try {
      me = await api("/api/me");
    } catch (e) {
      if (e.status !== 401) {
        showError("Cannot reach the server: " + e.message + ". Retrying…");
        setTimeout(boot, 3000);
      }
      return;
    }
    dom.userName.textContent = me.name || me.email || "";
    dom.tenantName.textContent = me.tenant_name || me.tenant_slug || "";
    document.title = "Wallboard – " + (me.tenant_name || "Contact hub");
    var roles = me.roles || [];
    if (roles.indexOf("supervisor") < 0 && roles.indexOf("admin") < 0) {
      stopped = true;
      setState("stopped");
      showError("The wallboard is for supervisors and admins.");
      return;
    }
    showError("");
    loadAudiences();
    try {
      var first = await api("/api/wallboard");
      if (!board && first) render(first);
    } catch (e) {
      if (e.status === 401) return;
      /* the socket's first push fills the board */
    }
    lastFrameAt = Date.now();
    connectSocket();
    setInterval(tick, 1000);
    window.addEventListener("online", function () { if (!ws || ws.readyState !== 1) reconnectNow(); });
  }

  // For tests and debugging.
  window.Wallboard = {
    state: function () {
      return { board: board, socket: !!(ws && ws.readyState === 1), stopped: stopped };
    },
  };

  boot();
})();
