/* Call recordings (dashboard/recordings_api.py): the list with filters (/api/recordings), an
 * <audio> player fed by /api/recordings/{id}/audio (range requests let it seek), downloads,
 * deletion for admins, and the tenant's recording settings (/api/recordings/settings: admins
 * edit, supervisors read). Agents see only their own calls, if the tenant allows it.
 * Plain ES2020; all data goes into the page through textContent / value.
 */
(function () {
  "use strict";

  var CHANNEL_LABELS = { voice: "Voice", webrtc: "Web call", chat: "Chat", sms: "SMS", email: "Email" };

  function $(id) { return document.getElementById(id); }

  var dom = {
    tenantName: $("tenant-name"), userName: $("user-name"), logout: $("logout"), error: $("rec-error"),
    wallboardLink: $("wallboard-link"), routingLink: $("routing-link"), scope: $("rec-scope"),
    filters: $("rec-filters"), contact: $("f-contact"), agent: $("f-agent"), agentField: $("f-agent-field"),
    since: $("f-since"), until: $("f-until"), reset: $("f-reset"),
    player: $("rec-player"), now: $("rec-now"), audio: $("rec-audio"), download: $("rec-download"),
    rows: $("recordings"), empty: $("recordings-empty"),
    settingsPanel: $("settings-panel"), settingsForm: $("rec-settings"), settingsFields: $("rs-fields"),
    enabled: $("rs-enabled"), disclosure: $("rs-disclosure"), disclosureText: $("rs-disclosure-text"),
    retention: $("rs-retention"), agentsOwn: $("rs-agents-own"), save: $("rs-save"), status: $("rs-status"),
  };

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  var me = null;
  var isAdmin = false;
  var isSupervisor = false;
  var agentNames = {};   // user id -> name (supervisors: from /api/agents)
  var playingId = null;

  // ------------------------------------------------------------------ helpers
  function showError(text) {
    dom.error.textContent = text || "";
    dom.error.hidden = !text;
  }

  function fail(e) {
    if (e && e.status === 401) return;
    showError(e && e.message ? e.message : String(e));
  }

  function mmss(seconds) {
    var s = Math.max(0, Math.round(Number(seconds) || 0));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var out = (m < 10 && h ? "0" : "") + m + ":" + (r < 10 ? "0" : "") + r;
    return h ? h + ":" + out : out;
  }

  function when(isoText) {
    var d = new Date(isoText);
    return isNaN(d.getTime()) ? String(isoText || "–") : d.toLocaleString();
  }

  // The start of a local calendar day (input type=date value), as ISO for the API.
  function dayStart(value, plusDays) {
    if (!value) return null;
    var parts = value.split("-").map(Number);
    if (parts.length !== 3 || parts.some(isNaN)) return null;
    return new Date(parts[0], parts[1] - 1, parts[2] + (plusDays || 0)).toISOString();
  }

  function agentsText(rec) {
    var ids = rec.agent_ids || [];
    var names = rec.agent_names || [];
    if (!ids.length) return "–";
    return ids.map(function (id, i) { return names[i] || agentNames[id] || id; }).join(", ");
  }

  // ------------------------------------------------------------------ list
  function query() {
    var params = new URLSearchParams();
    var contact = dom.contact.value.trim();
    if (contact) params.set("contact_id", contact);
    if (dom.agent.value) params.set("agent_id", dom.agent.value);
    var since = dayStart(dom.since.value, 0);
    var until = dayStart(dom.until.value, 1);
    if (since) params.set("since", since);
    if (until) params.set("until", until);
    params.set("limit", "200");
    return "/api/recordings?" + params.toString();
  }

  function render(recordings) {
    clear(dom.rows);
    recordings.forEach(function (rec) {
      var row = el("tr");
      row.setAttribute("data-recording-id", rec.id);
      if (rec.id === playingId) row.classList.add("rec-playing");
      row.appendChild(el("td", "rec-date", when(rec.started_at)));
      row.appendChild(el("td", "num rec-duration", mmss(rec.duration_s)));
      row.appendChild(el("td", "rec-agents", agentsText(rec)));
      row.appendChild(el("td", "rec-channel", CHANNEL_LABELS[rec.channel] || rec.channel || "–"));
      row.appendChild(el("td", "rec-contact", rec.contact_id || "–"));
      var cell = el("td", "rec-actions");
      var actions = el("div", "rec-buttons");
      cell.appendChild(actions);
      var play = el("button", "btn btn-small rec-play", "Play");
      play.type = "button";
      play.addEventListener("click", function () { playRecording(rec); });
      actions.appendChild(play);
      var download = el("a", "btn btn-small rec-download", "Download");
      download.href = rec.download_url;
      download.setAttribute("download", "");
      actions.appendChild(download);
      if (isAdmin) {
        var del = el("button", "btn btn-small rec-delete", "Delete");
        del.type = "button";
        del.addEventListener("click", function () { deleteRecording(rec, del); });
        actions.appendChild(del);
      }
      row.appendChild(cell);
      dom.rows.appendChild(row);
    });
    dom.empty.hidden = recordings.length > 0;
  }

  async function loadRecordings() {
    try {
      render((await api("GET", query())) || []);
      showError("");
    } catch (e) {
      if (e.status === 403 && !isSupervisor) {
        render([]);
        dom.empty.hidden = true;
        showError("Your organisation does not let agents play recordings.");
        return;
      }
      fail(e);
    }
  }

  function playRecording(rec) {
    playingId = rec.id;
    dom.player.hidden = false;
    dom.now.textContent = when(rec.started_at) + " · " + mmss(rec.duration_s) + " · " + agentsText(rec) +
      " · contact " + (rec.contact_id || "–") + " · left: customer, right: agent";
    dom.audio.src = rec.audio_url;
    dom.download.href = rec.download_url;
    Array.prototype.forEach.call(dom.rows.querySelectorAll("tr"), function (row) {
      row.classList.toggle("rec-playing", row.getAttribute("data-recording-id") === rec.id);
    });
    var started = dom.audio.play();
    if (started && started.catch) started.catch(function () { /* the user presses play */ });
  }

  function stopPlayer() {
    playingId = null;
    dom.audio.pause();
    dom.audio.removeAttribute("src");
    dom.audio.load();
    dom.player.hidden = true;
  }

  async function deleteRecording(rec, button) {
    if (!window.confirm("Delete this recording for good? The audio cannot be restored.")) return;
    button.disabled = true;
    try {
      await api("DELETE", "/api/recordings/" + encodeURIComponent(rec.id));
      if (playingId === rec.id) stopPlayer();
      await loadRecordings();
    } catch (e) {
      button.disabled = false;
      fail(e);
    }
  }

  async function loadAgents() {
    try {
      var agents = (await api("GET", "/api/agents")) || [];
      agents.forEach(function (a) {
        agentNames[a.id] = a.name;
        var option = el("option", null, a.name + (a.email ? " (" + a.email + ")" : ""));
        option.value = a.id;
        dom.agent.appendChild(option);
      });
    } catch (e) { /* the filter stays at "any agent" */ }
  }

  dom.filters.addEventListener("submit", function (ev) { ev.preventDefault(); loadRecordings(); });
  dom.reset.addEventListener("click", function () { dom.filters.reset(); loadRecordings(); });

  // ------------------------------------------------------------------ settings
  function fillSettings(s) {
    dom.enabled.checked = !!s.enabled;
    dom.disclosure.checked = !!s.disclosure;
    dom.disclosureText.value = s.disclosure_text || "";
    dom.retention.value = String(s.retention_days);
    dom.agentsOwn.checked = !!s.agents_play_own;
  }

  function setStatus(text, error) {
    dom.status.textContent = text || "";
    dom.status.classList.toggle("rt-status-error", !!error);
  }

  async function loadSettings() {
    try {
      fillSettings(await api("GET", "/api/recordings/settings"));
    } catch (e) { fail(e); }
  }

  dom.settingsForm.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    if (!isAdmin) return;
    var retention = dom.retention.value.trim();
    var days = Number(retention);
    if (retention === "" || !Number.isInteger(days) || days < 0 || days > 3650) {
      setStatus("Keep for: a whole number of days from 0 to 3650.", true);
      return;
    }
    var text = dom.disclosureText.value.trim();
    if (!text || text.length > 500) {
      setStatus("Disclosure text: 1 to 500 characters.", true);
      return;
    }
    dom.save.disabled = true;
    setStatus("");
    try {
      fillSettings(await api("PUT", "/api/recordings/settings", {
        enabled: dom.enabled.checked,
        disclosure: dom.disclosure.checked,
        disclosure_text: text,
        retention_days: days,
        agents_play_own: dom.agentsOwn.checked,
      }));
      setStatus("Saved.");
    } catch (e) {
      if (e.status === 401) return;
      setStatus(e.message || String(e), true);
    } finally {
      dom.save.disabled = false;
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
    document.title = "Recordings – " + (me.tenant_name || "Contact hub");
    var roles = me.roles || [];
    isAdmin = roles.indexOf("admin") >= 0;
    isSupervisor = isAdmin || roles.indexOf("supervisor") >= 0;
    dom.wallboardLink.hidden = !isSupervisor;
    dom.routingLink.hidden = !isSupervisor;
    dom.agentField.hidden = !isSupervisor;
    dom.scope.textContent = isSupervisor ? "" : "· your calls";
    dom.settingsPanel.hidden = !isSupervisor;
    dom.settingsFields.disabled = !isAdmin;
    dom.save.hidden = !isAdmin;
    if (isSupervisor && !isAdmin) setStatus("Only admins can change these settings.");
    showError("");
    if (isSupervisor) {
      await loadAgents();
      loadSettings();
    }
    await loadRecordings();
  }

  // For tests and debugging.
  window.Recordings = { reload: loadRecordings, playing: function () { return playingId; } };

  boot();
})();
