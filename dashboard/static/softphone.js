/* The staff softphone: one WebRTC line from this browser to the hub (POST /api/softphone/offer),
   call controls over /api/calls/*, invitations (consult, conference, internal calls), and a
   level meter of what this line hears. Used by the agent desk and the wallboard (monitoring).
   Call events arrive on the agent socket (agent.js re-dispatches them as "desk-event"); a slow
   poll covers pages without that socket. window.softphone exposes state for the page and tests. */
(function () {
  "use strict";
  var D = window.HubDesk;
  var el = D.el, clear = D.clear, api = D.api;

  var RETRY_MS = 3000;
  var POLL_MS = 4000;
  var pc = null;
  var micStream = null;
  var audioEl = null;
  var analyser = null;
  var audioCtx = null;
  var state = { connected: false, bridge: null, invites: [], muted: false, directory: null };
  var root = document.getElementById("softphone");
  var badge = document.getElementById("softphone-state");
  var retryTimer = null;

  function toast(text) {
    var node = document.getElementById("toast");
    if (!node) return;
    node.textContent = text;
    node.hidden = false;
    setTimeout(function () { node.hidden = true; }, 4000);
  }

  function waitIce(conn) {
    if (conn.iceGatheringState === "complete") return Promise.resolve();
    return new Promise(function (resolve) {
      var done = function () {
        if (conn.iceGatheringState === "complete") { conn.removeEventListener("icegatheringstatechange", done); resolve(); }
      };
      conn.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 3000);
    });
  }

  async function connect() {
    if (pc) return;
    retryTimer = null;
    try {
      micStream = micStream || await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
    } catch (e) {
      setBadge("no microphone");
      render();
      return;
    }
    var conn = new RTCPeerConnection();
    pc = conn;
    micStream.getAudioTracks().forEach(function (t) { conn.addTrack(t, micStream); });
    conn.ontrack = function (ev) { playRemote(ev.streams[0] || new MediaStream([ev.track])); };
    conn.onconnectionstatechange = function () {
      if (pc !== conn) return;
      if (conn.connectionState === "connected") { state.connected = true; setBadge("on"); refresh(); }
      if (conn.connectionState === "failed" || conn.connectionState === "closed") lost();
    };
    try {
      await conn.setLocalDescription(await conn.createOffer());
      await waitIce(conn);
      var answer = await api("POST", "/api/softphone/offer", { sdp: conn.localDescription.sdp, type: "offer" });
      await conn.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    } catch (e) {
      lost();
    }
  }

  function lost() {
    if (pc) { try { pc.close(); } catch (e) { /* already closed */ } }
    pc = null;
    state.connected = false;
    setBadge("reconnecting");
    render();
    if (!retryTimer) retryTimer = setTimeout(connect, RETRY_MS);
  }

  function playRemote(stream) {
    if (!audioEl) {
      audioEl = el("audio");
      audioEl.autoplay = true;
      audioEl.hidden = true;
      document.body.appendChild(audioEl);
    }
    audioEl.srcObject = stream;
    try {
      audioCtx = audioCtx || new (window.AudioContext || window.webkitAudioContext)();
      var source = audioCtx.createMediaStreamSource(stream);
      analyser = audioCtx.createAnalyser();
      analyser.fftSize = 8192;
      analyser.smoothingTimeConstant = 0;
      source.connect(analyser);
    } catch (e) { analyser = null; }
  }

  /* dB of the loudest bin within 20 Hz of `freq` in what the line hears now. */
  function levelAt(freq) {
    if (!analyser) return -200;
    var bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    var hz = audioCtx.sampleRate / analyser.fftSize;
    var best = -200;
    for (var i = Math.floor((freq - 20) / hz); i <= Math.ceil((freq + 20) / hz); i++) {
      if (i >= 0 && i < bins.length && bins[i] > best) best = bins[i];
    }
    return best;
  }

  function setBadge(text) { if (badge) badge.textContent = text; }

  async function refresh() {
    try {
      var line = await api("GET", "/api/softphone");
      state.bridge = line.bridge;
      state.invites = await api("GET", "/api/calls/invites");
    } catch (e) { /* shown on the next event */ }
    render();
  }

  async function directory() {
    try { state.directory = await api("GET", "/api/calls/directory"); } catch (e) { state.directory = null; }
    return state.directory;
  }

  function mine() {
    var b = state.bridge;
    if (!b || !state.directory) return null;
    for (var i = 0; i < b.parties.length; i++) if (b.parties[i].user_id === state.directory.me) return b.parties[i];
    return null;
  }

  async function act(method, path, body, done) {
    try {
      var result = await api(method, path, body);
      if (done) toast(done);
      await refresh();
      return result;
    } catch (e) {
      toast(e.message || "That did not work");
      return null;
    }
  }

  function button(label, onClick, cls) {
    var b = el("button", "btn" + (cls ? " " + cls : ""), label);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  function targetSelect(withQueues) {
    var select = el("select", "softphone-target");
    var dir = state.directory || { agents: [], queues: [] };
    dir.agents.forEach(function (a) {
      if (a.id === dir.me) return;
      var o = el("option", null, a.name + " (" + a.state + (a.on_call ? ", on a call" : "") + ")");
      o.value = "agent:" + a.id;
      select.appendChild(o);
    });
    if (withQueues) {
      dir.queues.forEach(function (q) {
        var o = el("option", null, "Queue: " + q.name);
        o.value = "queue:" + q.id;
        select.appendChild(o);
      });
    }
    return select;
  }

  function render() {
    if (!root) return;
    clear(root);
    var status = el("div", "softphone-status", state.connected ? "Line connected" : "Line not connected");
    root.appendChild(status);
    state.invites.forEach(function (inv) {
      var row = el("div", "softphone-invite");
      row.appendChild(el("span", null, inv.from_name + " invites you to a " + inv.kind + " call"));
      row.appendChild(button("Accept", function () { act("POST", "/api/calls/invites/" + inv.id + "/accept", undefined, "Joined"); }, "btn-primary"));
      row.appendChild(button("Decline", function () { act("POST", "/api/calls/invites/" + inv.id + "/decline"); }));
      root.appendChild(row);
    });
    var b = state.bridge;
    if (!b) {
      var idle = el("div", "softphone-idle");
      var sel = targetSelect(false);
      idle.appendChild(sel);
      idle.appendChild(button("Call agent", function () {
        var v = sel.value || "";
        if (v.indexOf("agent:") === 0) act("POST", "/api/calls/internal", { agent_id: v.slice(6) }, "Ringing…");
      }));
      root.appendChild(idle);
      if (!state.directory) directory().then(render);
      return;
    }
    var me = mine();
    var parties = el("ul", "softphone-parties");
    b.parties.forEach(function (p) {
      var flags = [p.role, p.role === "supervisor" ? p.mode : null, p.held ? "on hold" : null, p.muted ? "muted" : null]
        .filter(Boolean).join(", ");
      parties.appendChild(el("li", null, (p.name || p.role) + " — " + flags));
    });
    root.appendChild(el("div", "softphone-call", b.internal ? "Internal call" : "Call " + (b.recording ? "(recording)" : "")));
    root.appendChild(parties);
    var controls = el("div", "softphone-controls");
    var cid = b.contact_id;
    var amSupervisor = me && me.role === "supervisor";
    var muted = me && me.muted;
    controls.appendChild(button(muted ? "Unmute" : "Mute", function () { act("POST", "/api/calls/mute", { on: !muted }); }));
    if (cid && !amSupervisor) {
      var customer = b.parties.filter(function (p) { return p.role === "customer"; })[0];
      var held = customer && customer.held;
      controls.appendChild(button(held ? "Resume" : "Hold", function () { act("POST", "/api/calls/" + cid + "/hold", { on: !held }); }));
    }
    if (amSupervisor && cid) {
      ["listen", "whisper", "barge"].forEach(function (mode) {
        controls.appendChild(button(mode[0].toUpperCase() + mode.slice(1), function () {
          act("POST", "/api/calls/" + cid + "/monitor", { mode: mode });
        }, me.mode === mode ? "btn-primary" : ""));
      });
      controls.appendChild(button("Release call", function () { act("POST", "/api/calls/" + cid + "/release", undefined, "Call released"); }, "btn-danger"));
    }
    root.appendChild(controls);
    if (cid && !amSupervisor) {
      var keypad = el("div", "softphone-keypad");
      "123456789*0#".split("").forEach(function (k) {
        keypad.appendChild(button(k, function () { act("POST", "/api/calls/dtmf", { digits: k }); }, "key"));
      });
      root.appendChild(keypad);
      var transfer = el("div", "softphone-transfer");
      var target = targetSelect(true);
      transfer.appendChild(target);
      transfer.appendChild(button("Transfer", function () {
        var v = target.value || "";
        var body = v.indexOf("queue:") === 0 ? { queue_id: v.slice(6) } : { agent_id: v.slice(6) };
        act("POST", "/api/calls/" + cid + "/transfer", body, "Transferred");
      }));
      transfer.appendChild(button("Consult", function () {
        var v = target.value || "";
        if (v.indexOf("agent:") === 0) act("POST", "/api/calls/" + cid + "/consult", { agent_id: v.slice(6) }, "Consulting…");
      }));
      transfer.appendChild(button("Add to call", function () {
        var v = target.value || "";
        if (v.indexOf("agent:") === 0) act("POST", "/api/calls/" + cid + "/conference", { agent_id: v.slice(6) }, "Inviting…");
      }));
      root.appendChild(transfer);
      var agents = b.parties.filter(function (p) { return p.role === "agent"; });
      if (agents.length > 1 || (b.invites || []).length) {
        var consult = el("div", "softphone-consult");
        consult.appendChild(button("Complete transfer", function () { act("POST", "/api/calls/" + cid + "/consult/complete", undefined, "Transferred"); }, "btn-primary"));
        consult.appendChild(button("Back to caller", function () { act("POST", "/api/calls/" + cid + "/consult/cancel"); }));
        root.appendChild(consult);
      }
      var hang = el("div", "softphone-hangup");
      var after = el("select", "softphone-after");
      [["survey", "Caller to survey"], ["ivr", "Caller to menu"], ["end", "End call"]].forEach(function (pair) {
        var o = el("option", null, pair[1]);
        o.value = pair[0];
        after.appendChild(o);
      });
      hang.appendChild(after);
      hang.appendChild(button("Hang up", function () { act("POST", "/api/calls/" + cid + "/hangup", { after: after.value }, "Call ended"); }, "btn-danger"));
      root.appendChild(hang);
    } else {
      root.appendChild(button(amSupervisor ? "Stop monitoring" : "Leave call", function () { act("POST", "/api/calls/leave"); }, "btn-danger"));
    }
    if (!state.directory) directory().then(render);
  }

  window.addEventListener("desk-event", function (ev) {
    var f = ev.detail || {};
    if (f.type === "softphone") {
      state.bridge = f.call ? f.call.bridge : null;
      render();
    } else if (f.type === "call_invite" || f.type === "call_invite_ended") {
      if (f.type === "call_invite") toast((f.invite.from_name || "A colleague") + " is calling you");
      refresh();
    }
  });

  setInterval(function () { if (pc) refresh(); }, POLL_MS);
  window.softphone = {
    connect: connect,
    refresh: refresh,
    levelAt: levelAt,
    state: function () { return { connected: state.connected, bridge: state.bridge, invites: state.invites }; },
    monitor: function (contactId, mode) { return act("POST", "/api/calls/" + contactId + "/monitor", { mode: mode }); },
  };
  if (root) { render(); connect(); }
})();
