/* Agent desktop: offers, conversations, transcript, screen pop, wrap-up, knowledge base.
 * Speaks the dashboard HTTP API and the /ws/agent socket of docs/protocol.md.
 * Plain ES2020; every piece of data goes into the page through textContent.
 */
(function () {
  "use strict";

  var POLL_MS = 10000;
  var PING_MS = 25000;
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 10000;
  var KB_DEBOUNCE_MS = 250;
  var SUGGEST_MIN_MS = 2000;     // suggestions refresh at most this often while the customer talks
  var SUGGEST_DEBOUNCE_MS = 400;

  function $(id) { return document.getElementById(id); }

  var dom = {
    tenantName: $("tenant-name"), userName: $("user-name"), presence: $("presence"),
    presenceSlots: $("presence-slots"), wsState: $("ws-state"), logout: $("logout"),
    wallboardLink: $("wallboard-link"),
    routingLink: $("routing-link"),
    recordingsLink: $("recordings-link"),
    offers: $("offers"), offersEmpty: $("offers-empty"), offerCount: $("offer-count"),
    list: $("conversation-list"), listEmpty: $("conversations-empty"), listCount: $("conversation-count"),
    title: $("conversation-title"), meta: $("conversation-meta"),
    transcript: $("transcript"), replyInput: $("reply-input"), replySend: $("reply-send"),
    wrapupOpen: $("wrapup-open"), wrapupForm: $("wrapup-form"), disposition: $("disposition"),
    wrapupNote: $("wrapup-note"), wrapupSubmit: $("wrapup-submit"), wrapupCancel: $("wrapup-cancel"),
    wrapupError: $("wrapup-error"),
    profile: $("customer-profile"), history: $("customer-history"),
    kbSearch: $("kb-search"), kbResults: $("kb-results"), toast: $("toast"),
    callContext: $("call-context"), suggestions: $("kb-suggestions"), announcements: $("announcements"),
  };

  // ------------------------------------------------------------------ state
  var me = null;
  var offers = new Map();        // contact_id -> offer
  var assigned = new Map();      // contact_id -> contact
  var names = new Map();         // contact_id -> customer display name
  var unread = new Set();        // contact ids with unseen messages
  var previews = new Map();      // contact_id -> last message text
  var selectedId = null;
  var current = null;            // screen pop of the selected contact
  var selectToken = 0;
  var shownIds = new Set();      // message ids in #transcript
  var pendingByClientId = new Map();
  var mutationEpoch = 0;         // bumps on local accept / wrap-up so stale list fetches are dropped
  var customerCache = new Map(); // customer_id -> GET /api/customers/{id}

  // ------------------------------------------------------------------ helpers
  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;

  function newClientId() {
    try {
      if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    } catch (e) { /* fall through */ }
    return "c" + Date.now().toString(16) + Math.random().toString(16).slice(2) + Math.random().toString(16).slice(2);
  }

  function fmtTime(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return "";
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function fmtDateTime(iso) {
    if (!iso) return "";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" }) + " " +
      d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // "billing_question" -> "Billing question"; free text is left as it is.
  function humanize(s) {
    if (s == null || s === "") return "";
    s = String(s);
    if (!/^[a-z0-9]+([_-][a-z0-9]+)*$/.test(s)) return s;
    s = s.replace(/[_-]+/g, " ");
    return s.charAt(0).toUpperCase() + s.slice(1);
  }

  var toastTimer = null;
  function toast(text, kind) {
    dom.toast.textContent = text;
    dom.toast.className = "toast" + (kind ? " toast-" + kind : "");
    dom.toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { dom.toast.hidden = true; }, 4000);
  }

  function isFinished(contact) {
    return !!contact.disposition || (!!contact.agent_id && !!me && contact.agent_id !== me.id);
  }

  // ------------------------------------------------------------------ presence
  // Select values: "available", "offline", "not_ready:<reason>"; the hub's own states (wrapup,
  // busy) get a disabled option that only shows where the agent is.
  var NOT_READY = "not_ready:";
  var REASON_LABELS = {
    "break": "Break", lunch: "Lunch", training: "Training", meeting: "Meeting", away: "Away",
    missed_offer: "missed an offer",
  };
  var presence = null;           // last presence from the hub
  var presenceSeq = 0;           // bumps on every newer presence so a slower GET is dropped
  var presenceFetchAt = 0;

  function presenceValue(p) {
    return p.state === "not_ready" ? NOT_READY + (p.reason || "away") : String(p.state);
  }

  function reasonLabel(reason) { return "Not ready — " + (REASON_LABELS[reason] || humanize(reason)); }

  function wrapupLeft() {
    var t = presence && presence.wrapup_until ? Date.parse(presence.wrapup_until) : NaN;
    if (isNaN(t)) return null;
    return Math.max(0, Math.ceil((t - Date.now()) / 1000));
  }

  function systemLabel(state) {
    if (state === "wrapup") {
      var left = wrapupLeft();
      return "Wrap-up" + (left != null ? " (" + left + "s)" : "");
    }
    if (state === "busy") return "Busy";
    return humanize(state);
  }

  // The option for a value; states beyond the fixed list are added on the fly.
  function presenceOption(value) {
    var opt = Array.prototype.find.call(dom.presence.options, function (o) { return o.value === value; });
    if (opt) return opt;
    var choosable = value.indexOf(NOT_READY) === 0;
    opt = el("option", "presence-extra", choosable ? reasonLabel(value.slice(NOT_READY.length)) : systemLabel(value));
    opt.value = value;
    if (choosable) {
      var offline = Array.prototype.find.call(dom.presence.options, function (o) { return o.value === "offline"; });
      dom.presence.insertBefore(opt, offline || null);
    } else {
      opt.disabled = true;
      opt.setAttribute("data-system", "1");
      dom.presence.insertBefore(opt, dom.presence.firstChild);
    }
    return opt;
  }

  function renderSlots(p) {
    var capacity = p.capacity && typeof p.capacity === "object" ? p.capacity : {};
    var free = p.free || {};
    var parts = Object.keys(capacity).filter(function (ch) { return Number(capacity[ch]) > 0; }).sort()
      .map(function (ch) { return ch + " " + (free[ch] != null ? free[ch] : "?") + "/" + capacity[ch]; });
    dom.presenceSlots.textContent = parts.length ? parts.join(" · ") + " free" : "";
  }

  function setPresence(p) {
    if (!p || !p.state) return;
    if (p.agent_id && me && p.agent_id !== me.id) return;
    presence = p;
    var value = presenceValue(p);
    Array.prototype.slice.call(dom.presence.querySelectorAll("option.presence-extra")).forEach(function (o) {
      if (o.value !== value) o.remove();
    });
    var opt = presenceOption(value);
    if (opt.hasAttribute("data-system")) opt.textContent = systemLabel(p.state);
    opt.selected = true;
    dom.presence.setAttribute("data-status", value);
    dom.presence.title = p.state === "wrapup" ? "Choose Available to end the wrap-up now" : "";
    renderSlots(p);
  }

  function onPresence(p) {
    presenceSeq++;
    setPresence(p);
  }

  async function loadPresence() {
    var seq = presenceSeq;
    presenceFetchAt = Date.now();
    try {
      var p = await api("GET", "/api/agent/presence");
      if (seq === presenceSeq) setPresence(p);
    } catch (e) { /* shown on change */ }
  }

  // The wrap-up countdown; once it ran out the hub makes the agent available (and says so
  // on the socket), but ask now and then in case that push was missed.
  setInterval(function () {
    if (!presence || presence.state !== "wrapup") return;
    var opt = presenceOption("wrapup");
    opt.textContent = systemLabel("wrapup");
    if (wrapupLeft() === 0 && Date.now() - presenceFetchAt > 3000) loadPresence();
  }, 1000);

  dom.presence.addEventListener("change", async function () {
    var wanted = dom.presence.value;
    var previous = dom.presence.getAttribute("data-status");
    var body;
    if (wanted.indexOf(NOT_READY) === 0) body = { state: "not_ready", reason: wanted.slice(NOT_READY.length) };
    else if (wanted === "available" || wanted === "offline") body = { state: wanted };
    else {
      if (previous) dom.presence.value = previous;
      return;
    }
    presenceSeq++;
    try {
      onPresence(await api("POST", "/api/agent/presence", body));
      refreshContacts();
    } catch (e) {
      if (e.status === 401) return;
      if (previous) dom.presence.value = previous;
      toast("Could not change status: " + e.message, "error");
    }
  });

  dom.logout.addEventListener("click", function (ev) {
    ev.preventDefault();
    var go = function () { window.location.assign("/logout"); };
    try {
      fetch("/api/auth/logout", { method: "POST", credentials: "same-origin", keepalive: true,
        headers: HubDesk.csrfHeaders() }).then(go, go);
    } catch (e) { go(); }
  });

  // ------------------------------------------------------------------ offers
  function offerRemaining(offer) {
    var t = Date.parse(offer.expires_at);
    if (isNaN(t)) return null;
    return Math.max(0, Math.round((t - Date.now()) / 1000));
  }

  function buildOffer(offer) {
    var node = el("div", "offer");
    node.setAttribute("data-contact-id", offer.contact_id);
    var head = el("div", "offer-head");
    head.appendChild(el("span", "offer-name", offer.customer_name || "Visitor"));
    head.appendChild(el("span", "offer-countdown"));
    node.appendChild(head);
    var tags = el("div", "offer-tags");
    if (offer.queue) tags.appendChild(el("span", "chip offer-queue", offer.queue));
    if (offer.skill) tags.appendChild(el("span", "chip offer-skill", offer.skill));
    if (offer.channel) tags.appendChild(el("span", "chip chip-muted offer-channel", offer.channel));
    if (offer.ring_all) {
      var ring = el("span", "chip chip-muted offer-ring-all", "ring all");
      ring.title = "Offered to several agents: the first to accept takes it";
      tags.appendChild(ring);
    }
    node.appendChild(tags);
    // the screen pop on offer: who (tier, how often they contacted us), why, and what they said last
    if (offer.customer_name || offer.customer_tier || offer.previous_contacts) {
      var who = el("div", "offer-customer");
      if (offer.customer_tier) who.appendChild(el("span", "chip chip-muted offer-tier", humanize(offer.customer_tier)));
      var count = Number(offer.previous_contacts) || 0;
      who.appendChild(el("span", "offer-history",
        count ? count + " previous contact" + (count === 1 ? "" : "s") : "first contact"));
      node.appendChild(who);
    }
    var intent = offer.intent || offer.last_intent;
    if (intent) node.appendChild(el("div", "offer-intent", "Intent: " + humanize(intent)));
    if (offer.reason) node.appendChild(el("div", "offer-reason", humanize(offer.reason)));
    if (offer.preview) node.appendChild(el("div", "offer-preview", offer.preview));
    var actions = el("div", "offer-actions");
    var accept = el("button", "btn btn-primary btn-small offer-accept", "Accept");
    accept.type = "button";
    accept.addEventListener("click", function () { acceptOffer(offer.contact_id, node); });
    var decline = el("button", "btn btn-small offer-decline", "Decline");
    decline.type = "button";
    decline.addEventListener("click", function () { declineOffer(offer.contact_id, node); });
    actions.appendChild(accept);
    actions.appendChild(decline);
    node.appendChild(actions);
    updateCountdown(node, offer);
    return node;
  }

  function updateCountdown(node, offer) {
    var left = offerRemaining(offer);
    var span = node.querySelector(".offer-countdown");
    if (!span) return;
    if (left == null) { span.textContent = ""; return; }
    span.textContent = left > 0 ? left + "s" : "expiring";
    node.classList.toggle("offer-urgent", left <= 10);
  }

  function renderOffers() {
    var existing = new Map();
    Array.prototype.forEach.call(dom.offers.querySelectorAll(".offer"), function (n) {
      existing.set(n.getAttribute("data-contact-id"), n);
    });
    existing.forEach(function (node, id) {
      if (!offers.has(id)) node.remove();
    });
    offers.forEach(function (offer, id) {
      if (offer.customer_name) names.set(id, offer.customer_name);
      if (!existing.has(id)) dom.offers.appendChild(buildOffer(offer));
    });
    dom.offersEmpty.hidden = offers.size > 0;
    dom.offerCount.textContent = offers.size ? String(offers.size) : "";
  }

  setInterval(function () {
    Array.prototype.forEach.call(dom.offers.querySelectorAll(".offer"), function (node) {
      var offer = offers.get(node.getAttribute("data-contact-id"));
      if (offer) updateCountdown(node, offer);
    });
  }, 1000);

  function setOfferBusy(node, busy) {
    if (!node) return;
    node.classList.toggle("offer-busy", busy);
    Array.prototype.forEach.call(node.querySelectorAll("button"), function (b) { b.disabled = busy; });
  }

  async function acceptOffer(id, node) {
    setOfferBusy(node, true);
    mutationEpoch++;
    try {
      var res = await api("POST", "/api/contacts/" + encodeURIComponent(id) + "/accept");
      var offer = offers.get(id);
      offers.delete(id);
      renderOffers();
      var contact = res && (res.contact || (res.id ? res : null));
      if (contact && contact.id === id) assigned.set(id, contact);
      else if (!assigned.has(id)) {
        assigned.set(id, { id: id, status: "assigned", channel: offer && offer.channel, skill: offer && offer.skill,
          reason: offer && offer.reason, intent: offer && offer.intent, agent_id: me && me.id });
      }
      renderConversations();
      await selectContact(id);
    } catch (e) {
      if (e.status === 401) return;
      offers.delete(id);
      renderOffers();
      toast(e.status === 409 || e.status === 404 || e.status === 410
        ? "This offer is no longer available" : "Could not accept: " + e.message, "error");
    } finally {
      setOfferBusy(node, false);
      mutationEpoch++;
      refreshContacts();
    }
  }

  async function declineOffer(id, node) {
    setOfferBusy(node, true);
    try {
      await api("POST", "/api/contacts/" + encodeURIComponent(id) + "/decline");
    } catch (e) {
      if (e.status === 401) return;
      if (e.status !== 404 && e.status !== 409 && e.status !== 410) toast("Could not decline: " + e.message, "error");
    }
    offers.delete(id);
    renderOffers();
    setOfferBusy(node, false);
  }

  // ------------------------------------------------------------------ conversation list
  function listContacts() {
    var items = Array.from(assigned.values());
    if (current && current.contact && selectedId === current.contact.id && !assigned.has(selectedId) &&
        !isFinished(current.contact)) {
      items.push(current.contact);
    }
    items.sort(function (a, b) { return String(a.opened_at || "").localeCompare(String(b.opened_at || "")); });
    return items;
  }

  function fillConversationItem(node, c) {
    clear(node);
    var top = el("div", "ci-top");
    top.appendChild(el("span", "ci-name", names.get(c.id) || "Visitor"));
    top.appendChild(el("span", "ci-status status-" + (c.status || "unknown"), humanize(c.status)));
    node.appendChild(top);
    var meta = [c.channel, c.skill, humanize(c.intent || c.reason)].filter(Boolean).join(" · ");
    if (meta) node.appendChild(el("div", "ci-meta", meta));
    var preview = previews.get(c.id);
    if (preview) node.appendChild(el("div", "ci-preview", preview));
    node.classList.toggle("unread", unread.has(c.id));
    node.classList.toggle("selected", c.id === selectedId);
    node.setAttribute("aria-selected", c.id === selectedId ? "true" : "false");
  }

  function renderConversations() {
    var items = listContacts();
    var wanted = new Set(items.map(function (c) { return c.id; }));
    var existing = new Map();
    Array.prototype.forEach.call(dom.list.querySelectorAll(".conversation-item"), function (n) {
      var id = n.getAttribute("data-contact-id");
      if (!wanted.has(id)) n.remove();
      else existing.set(id, n);
    });
    items.forEach(function (c) {
      var node = existing.get(c.id);
      if (!node) {
        node = el("div", "conversation-item");
        node.setAttribute("data-contact-id", c.id);
        node.setAttribute("role", "option");
        node.tabIndex = 0;
        node.addEventListener("click", function () { selectContact(c.id); });
        node.addEventListener("keydown", function (ev) {
          if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); selectContact(c.id); }
        });
      }
      fillConversationItem(node, c);
      dom.list.appendChild(node); // keeps DOM order equal to sort order
    });
    dom.listEmpty.hidden = items.length > 0;
    dom.listCount.textContent = items.length ? String(items.length) : "";
  }

  var refreshing = null;
  async function refreshContacts() {
    if (refreshing) return refreshing;
    var epoch = mutationEpoch;
    var again = false;
    refreshing = (async function () {
      try {
        var data = await api("GET", "/api/agent/contacts");
        if (epoch !== mutationEpoch) { again = true; return; } // started before a local change: stale
        if (!data) return;
        offers = new Map((data.offers || []).map(function (o) { return [o.contact_id, o]; }));
        assigned = new Map((data.assigned || []).filter(function (c) { return !isFinished(c); })
          .map(function (c) { return [c.id, c]; }));
        assigned.forEach(function (c, id) { offers.delete(id); });
        renderOffers();
        renderConversations();
        if (current && selectedId && assigned.has(selectedId)) {
          current.contact = assigned.get(selectedId);
          renderConversationHead();
        }
      } catch (e) {
        /* the next poll or socket reconnect will try again */
      } finally {
        refreshing = null;
        if (again) setTimeout(refreshContacts, 0);
      }
    })();
    return refreshing;
  }

  // ------------------------------------------------------------------ transcript
  var AUTHOR_LABEL = { visitor: "Customer", bot: "Bot", agent: "Agent", system: "System" };

  function buildMessage(m) {
    var author = AUTHOR_LABEL[m.author] ? m.author : "system";
    var node = el("div", "msg msg-" + author, m.text);
    if (m.id) node.setAttribute("data-id", m.id);
    if (m.seq != null) node.setAttribute("data-seq", String(m.seq));
    if (m.client_id) node.setAttribute("data-client-id", m.client_id);
    var label = m.author === "agent" ? (m.author_name || "Agent")
      : m.author === "visitor" ? (names.get(m.contact_id) || m.author_name || "Customer")
      : m.author === "bot" ? (m.author_name || "Bot") : "";
    var time = fmtTime(m.created_at);
    if (label) node.setAttribute("data-author", label);
    if (time) node.setAttribute("data-time", time);
    if (m.created_at) node.title = fmtDateTime(m.created_at);
    return node;
  }

  function nearBottom() {
    var t = dom.transcript;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 80;
  }

  function insertBySeq(node, seq) {
    if (seq != null) {
      var nodes = dom.transcript.querySelectorAll(".msg[data-seq]");
      for (var i = 0; i < nodes.length; i++) {
        if (Number(nodes[i].getAttribute("data-seq")) > seq) {
          dom.transcript.insertBefore(node, nodes[i]);
          return;
        }
      }
    }
    dom.transcript.appendChild(node);
  }

  function appendMessage(m) {
    if (!m || !m.id || m.contact_id !== selectedId) return false;
    if (shownIds.has(m.id)) return false;
    var stick = nearBottom();
    var pending = m.client_id ? pendingByClientId.get(m.client_id) : null;
    if (pending) {
      pendingByClientId.delete(m.client_id);
      pending.remove();
    }
    var empty = dom.transcript.querySelector(".transcript-empty");
    if (empty) empty.remove();
    shownIds.add(m.id);
    insertBySeq(buildMessage(m), m.seq);
    if (stick || pending) dom.transcript.scrollTop = dom.transcript.scrollHeight;
    return true;
  }

  function resetTranscript(note) {
    clear(dom.transcript);
    shownIds = new Set();
    pendingByClientId = new Map();
    if (note) dom.transcript.appendChild(el("div", "empty-note transcript-empty", note));
  }

  function renderConversationHead() {
    var c = current && current.contact;
    if (!c) {
      dom.title.textContent = "No conversation selected";
      dom.meta.textContent = "";
      return;
    }
    dom.title.textContent = names.get(c.id) || "Visitor";
    var parts = [c.channel, c.skill && ("skill " + c.skill), humanize(c.intent || c.reason), humanize(c.status)];
    if (c.previous_contact_id) parts.push("follow-up of an earlier contact");
    if (c.opened_at) parts.push("opened " + fmtDateTime(c.opened_at));
    dom.meta.textContent = parts.filter(Boolean).join(" · ");
    var closed = c.status === "closed";
    dom.replyInput.disabled = closed;
    dom.replySend.disabled = closed;
    dom.wrapupOpen.disabled = false;
  }

  function clearSelection() {
    selectedId = null;
    current = null;
    selectToken++;
    resetTranscript("Select a conversation or accept an offer.");
    renderConversationHead();
    dom.replyInput.disabled = true;
    dom.replySend.disabled = true;
    dom.wrapupOpen.disabled = true;
    dom.wrapupForm.hidden = true;
    clear(dom.profile);
    dom.profile.appendChild(el("div", "empty-note", "No conversation selected."));
    clear(dom.history);
    renderCallContext(null);
    renderSuggestions(null);
    renderConversations();
  }

  async function selectContact(id) {
    if (selectedId !== id) {
      selectedId = id;
      current = null;
      resetTranscript("Loading…");
      dom.wrapupForm.hidden = true;
      dom.wrapupError.textContent = "";
    }
    unread.delete(id);
    renderConversations();
    await loadSelected(true);
  }

  // Fetches the screen pop of the selected contact; merges messages (nothing shown twice).
  async function loadSelected(full) {
    var id = selectedId;
    if (!id) return;
    var token = ++selectToken;
    var data;
    try {
      data = await api("GET", "/api/contacts/" + encodeURIComponent(id));
    } catch (e) {
      if (token !== selectToken || e.status === 401) return;
      if (e.status === 404 || e.status === 403) {
        assigned.delete(id);
        clearSelection();
        toast("That conversation is no longer available", "error");
      } else if (full) {
        resetTranscript("Could not load the conversation: " + e.message);
      }
      return;
    }
    if (token !== selectToken || selectedId !== id || !data) return;
    current = data;
    var contact = data.contact || { id: id };
    if (data.customer && data.customer.name) names.set(id, data.customer.name);
    if (assigned.has(id) && !isFinished(contact)) assigned.set(id, contact);
    var empty = dom.transcript.querySelector(".transcript-empty");
    if (empty) empty.remove();
    var msgs = (data.messages || []).slice().sort(function (a, b) { return (a.seq || 0) - (b.seq || 0); });
    msgs.forEach(function (m) {
      if (!m.contact_id) m.contact_id = id;
      appendMessage(m);
    });
    if (!dom.transcript.querySelector(".msg")) dom.transcript.appendChild(el("div", "empty-note transcript-empty", "No messages yet."));
    if (msgs.length) previews.set(id, msgs[msgs.length - 1].text);
    if (full) dom.transcript.scrollTop = dom.transcript.scrollHeight;
    renderConversationHead();
    renderProfile(data.customer);
    renderHistory(data.history || [], data.customer, id);
    renderCallContext(data.context || null);
    if (Array.isArray(data.suggestions)) renderSuggestions(data.suggestions);
    renderConversations();
  }

  // ------------------------------------------------------------------ reply
  async function sendReply() {
    var text = dom.replyInput.value.trim();
    var id = selectedId;
    if (!text || !id) return;
    var clientId = newClientId();
    dom.replyInput.value = "";
    var empty = dom.transcript.querySelector(".transcript-empty");
    if (empty) empty.remove();
    var pending = buildMessage({ author: "agent", author_name: me && me.name, text: text, client_id: clientId,
      created_at: new Date().toISOString(), contact_id: id });
    pending.classList.add("msg-pending");
    pendingByClientId.set(clientId, pending);
    dom.transcript.appendChild(pending);
    dom.transcript.scrollTop = dom.transcript.scrollHeight;
    try {
      var m = await api("POST", "/api/contacts/" + encodeURIComponent(id) + "/messages", { text: text, client_id: clientId });
      if (m && m.message) m = m.message;
      if (m && m.id) {
        if (!m.contact_id) m.contact_id = id;
        if (m.contact_id === selectedId) {
          if (shownIds.has(m.id)) {           // the socket was faster
            pendingByClientId.delete(clientId);
            pending.remove();
          } else {
            appendMessage(m);
          }
        }
        previews.set(id, m.text || text);
      } else {
        pending.classList.remove("msg-pending");
      }
    } catch (e) {
      pendingByClientId.delete(clientId);
      pending.remove();
      if (e.status === 401) return;
      if (!dom.replyInput.value) dom.replyInput.value = text;
      toast("Message not sent: " + e.message, "error");
    }
  }

  dom.replySend.addEventListener("click", sendReply);
  dom.replyInput.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      sendReply();
    }
  });

  // ------------------------------------------------------------------ wrap-up
  async function loadDispositions() {
    try {
      var list = await api("GET", "/api/dispositions");
      clear(dom.disposition);
      (list || []).forEach(function (d) {
        var opt = el("option", null, d.label || d.code);
        opt.value = d.code;
        dom.disposition.appendChild(opt);
      });
    } catch (e) {
      if (e.status !== 401) toast("Could not load dispositions", "error");
    }
  }

  dom.wrapupOpen.addEventListener("click", function () {
    if (!selectedId) return;
    dom.wrapupForm.hidden = !dom.wrapupForm.hidden;
    dom.wrapupError.textContent = "";
    if (!dom.wrapupForm.hidden) {
      if (!dom.disposition.options.length) loadDispositions();
      dom.disposition.focus();
    }
  });

  dom.wrapupCancel.addEventListener("click", function () { dom.wrapupForm.hidden = true; });

  dom.wrapupForm.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var id = selectedId;
    if (!id) return;
    var code = dom.disposition.value;
    if (!code) { dom.wrapupError.textContent = "Choose a disposition."; return; }
    dom.wrapupError.textContent = "";
    dom.wrapupSubmit.disabled = true;
    mutationEpoch++;
    try {
      await api("POST", "/api/contacts/" + encodeURIComponent(id) + "/wrapup", { disposition: code, note: dom.wrapupNote.value });
      assigned.delete(id);
      unread.delete(id);
      previews.delete(id);
      dom.wrapupNote.value = "";
      dom.wrapupForm.hidden = true;
      if (selectedId === id) clearSelection();
      else renderConversations();
      toast("Wrapped up", "success");
    } catch (e) {
      if (e.status !== 401) dom.wrapupError.textContent = "Wrap-up failed: " + e.message;
    } finally {
      dom.wrapupSubmit.disabled = false;
      mutationEpoch++;
      refreshContacts();
    }
  });

  // ------------------------------------------------------------------ customer profile and history
  function firstOf(obj, keys) {
    for (var i = 0; i < keys.length; i++) {
      var v = obj[keys[i]];
      if (v != null && v !== "" && !(Array.isArray(v) && !v.length)) return v;
    }
    return null;
  }

  function asText(v) {
    if (v == null) return "";
    if (Array.isArray(v)) return v.map(asText).filter(Boolean).join(", ");
    if (typeof v === "object") return asText(v.value || v.number || v.address || v.email || v.phone || "");
    return String(v);
  }

  function fmtBalance(c) {
    var v = c.balance;
    if (v == null || v === "") return "";
    var currency = c.currency || null;
    if (typeof v === "object") { currency = v.currency || currency; v = v.amount != null ? v.amount : v.value; }
    var n = Number(v);
    if (v === "" || v == null || isNaN(n)) return asText(v);
    try {
      if (currency) return n.toLocaleString(undefined, { style: "currency", currency: String(currency) });
    } catch (e) { /* unknown currency code */ }
    return n.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }) + (currency ? " " + currency : "");
  }

  function renderProfile(customer) {
    clear(dom.profile);
    if (!customer) {
      dom.profile.appendChild(el("div", "profile-unknown", "Unknown visitor"));
      return;
    }
    var name = firstOf(customer, ["name", "full_name", "display_name"]) ||
      [customer.first_name, customer.last_name].filter(Boolean).join(" ");
    dom.profile.appendChild(el("div", "profile-name", name || "Unnamed customer"));
    var dl = el("dl", "profile-fields");
    function row(label, field, value) {
      var dt = el("dt", null, label);
      var dd = el("dd", null, value || "—");
      dd.setAttribute("data-field", field);
      if (!value) dd.classList.add("muted");
      dl.appendChild(dt);
      dl.appendChild(dd);
    }
    row("Email", "email", asText(firstOf(customer, ["email", "emails"])));
    row("Phone", "phone", asText(firstOf(customer, ["phone", "phones", "mobile"])));
    row("Account", "account_number", asText(firstOf(customer, ["account_number", "account_no", "account", "account_id"])));
    row("Segment", "segment", humanize(asText(customer.segment)));
    row("Balance", "balance", fmtBalance(customer));
    dom.profile.appendChild(dl);
    var tags = customer.tags;
    if (typeof tags === "string") tags = tags.split(",").map(function (t) { return t.trim(); }).filter(Boolean);
    var tagBox = el("div", "profile-tags");
    (Array.isArray(tags) ? tags : []).forEach(function (t) { tagBox.appendChild(el("span", "chip tag", asText(t))); });
    if (tagBox.firstChild) dom.profile.appendChild(tagBox);
  }

  function renderHistoryMessages(box, messages) {
    clear(box);
    if (!messages || !messages.length) {
      box.appendChild(el("div", "empty-note", "No messages."));
      return;
    }
    messages.slice().sort(function (a, b) { return (a.seq || 0) - (b.seq || 0); }).forEach(function (m) {
      var author = AUTHOR_LABEL[m.author] ? m.author : "system";
      var line = el("div", "history-msg history-msg-" + author);
      line.appendChild(el("span", "history-msg-author", (m.author === "agent" && m.author_name) || AUTHOR_LABEL[author]));
      line.appendChild(el("span", "history-msg-text", m.text));
      box.appendChild(line);
    });
  }

  async function loadHistoryMessages(h, customer) {
    if (Array.isArray(h.messages)) return h.messages;
    var cid = customer && (customer.id || customer._id);
    if (cid) {
      try {
        var data = customerCache.get(cid);
        if (!data) {
          data = await api("GET", "/api/customers/" + encodeURIComponent(cid));
          customerCache.set(cid, data);
        }
        var hit = (data && data.history || []).find(function (x) { return x.id === h.id; });
        if (hit && Array.isArray(hit.messages)) return hit.messages;
      } catch (e) { /* fall back to the contact itself */ }
    }
    var pop = await api("GET", "/api/contacts/" + encodeURIComponent(h.id));
    return (pop && pop.messages) || [];
  }

  function renderHistory(history, customer, currentId) {
    clear(dom.history);
    var items = (history || []).filter(function (h) { return h && h.id !== currentId; });
    if (!items.length) {
      dom.history.appendChild(el("div", "empty-note", customer ? "No previous contacts." : "No history for unknown visitors."));
      return;
    }
    items.sort(function (a, b) { return String(b.opened_at || "").localeCompare(String(a.opened_at || "")); });
    items.forEach(function (h) {
      var item = el("div", "history-item");
      item.setAttribute("data-contact-id", h.id);
      var top = el("div", "history-top");
      top.appendChild(el("span", "history-date", fmtDateTime(h.opened_at || h.closed_at)));
      top.appendChild(el("span", "chip chip-muted history-channel", h.channel || ""));
      if (h.disposition) top.appendChild(el("span", "chip history-disposition", humanize(h.disposition)));
      item.appendChild(top);
      var by = [h.agent_name && ("by " + h.agent_name), h.status && humanize(h.status)].filter(Boolean).join(" · ");
      if (by) item.appendChild(el("div", "history-meta", by));
      // an email follow-up (a reply into a closed thread) links to the contact it continues
      var earlier = h.previous_contact_id && items.find(function (x) { return x.id === h.previous_contact_id; });
      if (h.previous_contact_id) {
        item.appendChild(el("div", "history-meta history-follow-up", "Follow-up of the " +
          (earlier ? fmtDateTime(earlier.opened_at) + " " : "") + "thread"));
      }
      if (current && current.contact && current.contact.previous_contact_id === h.id) {
        item.classList.add("history-continued");
        item.appendChild(el("div", "history-meta history-continued-note", "Continued by this conversation"));
      }
      if (h.note) item.appendChild(el("div", "history-note", h.note));
      var details = el("details", "history-transcript");
      details.appendChild(el("summary", null, "Transcript"));
      var box = el("div", "history-messages");
      details.appendChild(box);
      var loaded = false;
      details.addEventListener("toggle", async function () {
        if (!details.open || loaded) return;
        loaded = true;
        box.textContent = "Loading…";
        try {
          renderHistoryMessages(box, await loadHistoryMessages(h, customer));
        } catch (e) {
          loaded = false;
          box.textContent = "Could not load the transcript.";
        }
      });
      item.appendChild(details);
      dom.history.appendChild(item);
    });
  }

  // ------------------------------------------------------------------ call context (screen pop)
  function fmtWait(seconds) {
    var s = Math.max(0, Math.round(Number(seconds) || 0));
    var m = Math.floor(s / 60);
    var r = s % 60;
    return m ? m + "m " + (r < 10 ? "0" : "") + r + "s" : r + "s";
  }

  function renderCallContext(ctx) {
    clear(dom.callContext);
    if (!ctx) {
      dom.callContext.appendChild(el("div", "empty-note", "No call selected."));
      return;
    }
    var dl = el("dl", "profile-fields context-fields");
    function row(label, field, value) {
      if (value == null || value === "") return;
      var dd = el("dd", null, value);
      dd.setAttribute("data-field", field);
      dl.appendChild(el("dt", null, label));
      dl.appendChild(dd);
    }
    row("Channel", "channel", humanize(ctx.channel));
    row("Intent", "intent", humanize(ctx.intent || ctx.last_intent));
    if (ctx.last_intent && ctx.intent && ctx.last_intent !== ctx.intent) row("Last said", "last_intent", humanize(ctx.last_intent));
    row("Reason", "reason", humanize(ctx.reason));
    row("Queue", "queue", [ctx.queue_name, ctx.skill && ctx.skill !== ctx.queue_name ? "skill " + ctx.skill : ""]
      .filter(Boolean).join(" · "));
    row("Waited", "wait", ctx.wait_s != null ? fmtWait(ctx.wait_s) : "");
    row("Number", "from_number", ctx.from_number);
    if (!dl.firstChild) dom.callContext.appendChild(el("div", "empty-note", "No context for this contact."));
    else dom.callContext.appendChild(dl);
    var path = Array.isArray(ctx.ivr_path) ? ctx.ivr_path : [];
    if (path.length) {
      var crumbs = el("nav", "ivr-path");
      crumbs.setAttribute("aria-label", "IVR path");
      path.forEach(function (step, i) {
        if (i) crumbs.appendChild(el("span", "ivr-sep", "›"));
        var crumb = el("span", "ivr-step" + (step.type ? " ivr-" + step.type : ""), step.id);
        crumb.setAttribute("data-node", step.id);
        crumb.title = step.label || step.id;
        crumbs.appendChild(crumb);
      });
      dom.callContext.appendChild(crumbs);
      var last = path[path.length - 1];
      if (last && last.text) dom.callContext.appendChild(el("div", "ivr-last", last.text));
    }
  }

  // ------------------------------------------------------------------ suggested articles
  var suggestTimer = null;
  var suggestLastAt = 0;
  var suggestSeq = 0;

  function insertIntoReply(text) {
    dom.replyInput.value = text || "";
    if (!dom.replyInput.disabled) dom.replyInput.focus();
  }

  function renderSuggestions(list) {
    clear(dom.suggestions);
    if (!list) {
      clearTimeout(suggestTimer);
      suggestTimer = null;
      dom.suggestions.appendChild(el("div", "empty-note", "No conversation selected."));
      return;
    }
    if (!list.length) {
      dom.suggestions.appendChild(el("div", "empty-note kb-empty", "No suggestions yet."));
      return;
    }
    list.forEach(function (r) {
      var node = el("div", "kb-result kb-suggestion");
      if (r.id) node.setAttribute("data-id", r.id);
      var title = el("button", "kb-title kb-suggestion-title", r.title || "Untitled");
      title.type = "button";
      title.setAttribute("aria-expanded", "false");
      node.appendChild(title);
      node.appendChild(el("div", "kb-snippet", r.snippet || ""));
      var body = el("div", "kb-body", r.body || "");
      var foot = el("div", "kb-foot");
      (Array.isArray(r.tags) ? r.tags : []).forEach(function (t) { foot.appendChild(el("span", "chip chip-muted", t)); });
      var insert = el("button", "btn btn-small kb-insert", "Insert");
      insert.type = "button";
      insert.title = "Copy into the reply box";
      insert.addEventListener("click", function () { insertIntoReply(r.body); });
      foot.appendChild(insert);
      body.hidden = true;
      foot.hidden = true;
      node.appendChild(body);
      node.appendChild(foot);
      // a click opens the whole article, as in the knowledge base search
      title.addEventListener("click", function () {
        var open = body.hidden;
        body.hidden = !open;
        foot.hidden = !open;
        node.classList.toggle("kb-open", open);
        title.setAttribute("aria-expanded", open ? "true" : "false");
        // an agent reading a suggestion counts as a view in the knowledge-base statistics
        if (open && r.id) {
          api("POST", "/api/kb/usage/view", { article_id: r.id, contact_id: selectedId || null })
            .catch(function () { /* statistics only: never bother the agent */ });
        }
      });
      dom.suggestions.appendChild(node);
    });
  }

  // At most one refresh per SUGGEST_MIN_MS, a short while after the customer's last message.
  function scheduleSuggestions() {
    if (suggestTimer || !selectedId) return;
    var wait = Math.max(SUGGEST_DEBOUNCE_MS, suggestLastAt + SUGGEST_MIN_MS - Date.now());
    suggestTimer = setTimeout(function () { suggestTimer = null; refreshSuggestions(); }, wait);
  }

  async function refreshSuggestions() {
    var id = selectedId;
    if (!id) return;
    var seq = ++suggestSeq;
    suggestLastAt = Date.now();
    var data;
    try {
      data = await api("GET", "/api/contacts/" + encodeURIComponent(id) + "/suggestions");
    } catch (e) {
      return; /* the next customer message tries again */
    }
    if (seq !== suggestSeq || selectedId !== id || !data) return;
    renderSuggestions(data.suggestions || []);
  }

  // ------------------------------------------------------------------ knowledge base
  var kbTimer = null;
  var kbSeq = 0;
  dom.kbSearch.addEventListener("input", function () {
    clearTimeout(kbTimer);
    kbTimer = setTimeout(runKbSearch, KB_DEBOUNCE_MS);
  });
  dom.kbSearch.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") { ev.preventDefault(); clearTimeout(kbTimer); runKbSearch(); }
  });

  async function runKbSearch() {
    var q = dom.kbSearch.value.trim();
    var seq = ++kbSeq;
    if (!q) { clear(dom.kbResults); return; }
    var results;
    try {
      results = await api("GET", "/api/kb/search?q=" + encodeURIComponent(q));
    } catch (e) {
      if (seq !== kbSeq || e.status === 401) return;
      clear(dom.kbResults);
      dom.kbResults.appendChild(el("div", "empty-note", "Search failed: " + e.message));
      return;
    }
    if (seq !== kbSeq) return;
    if (results && !Array.isArray(results)) results = results.results || results.items || [];
    clear(dom.kbResults);
    if (!results || !results.length) {
      dom.kbResults.appendChild(el("div", "empty-note kb-empty", "No articles found."));
      return;
    }
    results.forEach(function (r) {
      var node = el("div", "kb-result");
      if (r.id) node.setAttribute("data-id", r.id);
      node.appendChild(el("div", "kb-title", r.title || "Untitled"));
      node.appendChild(el("div", "kb-body", r.body || ""));
      var foot = el("div", "kb-foot");
      (Array.isArray(r.tags) ? r.tags : []).forEach(function (t) { foot.appendChild(el("span", "chip chip-muted", t)); });
      var insert = el("button", "btn btn-small kb-insert", "Insert");
      insert.type = "button";
      insert.title = "Copy into the reply box";
      insert.addEventListener("click", function () {
        dom.replyInput.value = r.body || "";
        if (!dom.replyInput.disabled) dom.replyInput.focus();
      });
      foot.appendChild(insert);
      node.appendChild(foot);
      dom.kbResults.appendChild(node);
    });
  }

  // ------------------------------------------------------------------ announcements (broadcasts)
  var announcements = new Map(); // id -> announcement, unread and not expired

  function expired(a) {
    var t = Date.parse(a.expires_at);
    return !isNaN(t) && t <= Date.now();
  }

  function renderAnnouncements() {
    var box = dom.announcements;
    var wanted = new Set(announcements.keys());
    Array.prototype.forEach.call(box.querySelectorAll(".announcement"), function (n) {
      if (!wanted.has(n.getAttribute("data-id"))) n.remove();
    });
    var items = Array.from(announcements.values()).sort(function (a, b) {
      return (b.level === "urgent") - (a.level === "urgent") ||
        String(b.created_at || "").localeCompare(String(a.created_at || ""));
    });
    items.forEach(function (a) {
      var node = box.querySelector(".announcement[data-id='" + CSS.escape(a.id) + "']");
      if (!node) {
        node = el("div", "announcement announcement-" + (a.level === "urgent" ? "urgent" : "info"));
        node.setAttribute("data-id", a.id);
        node.setAttribute("role", a.level === "urgent" ? "alert" : "status");
        node.appendChild(el("span", "announcement-level", a.level === "urgent" ? "Urgent" : "Announcement"));
        node.appendChild(el("span", "announcement-text", a.text));
        var meta = [a.from_name && ("from " + a.from_name), fmtTime(a.created_at)].filter(Boolean).join(" · ");
        node.appendChild(el("span", "announcement-meta", meta));
        var dismiss = el("button", "btn btn-small announcement-dismiss", "Dismiss");
        dismiss.type = "button";
        dismiss.title = "Mark as read";
        dismiss.addEventListener("click", function () { dismissAnnouncement(a.id, dismiss); });
        node.appendChild(dismiss);
      }
      box.appendChild(node); // keeps DOM order equal to sort order
    });
    box.hidden = items.length === 0;
  }

  function showAnnouncement(a) {
    if (!a || !a.id || a.read || expired(a)) return;
    var isNew = !announcements.has(a.id);
    announcements.set(a.id, a);
    renderAnnouncements();
    if (isNew && a.level === "urgent") toast("Urgent announcement: " + a.text, "error");
  }

  function dropAnnouncement(id) {
    if (announcements.delete(id)) renderAnnouncements();
  }

  function expireAnnouncements() {
    var changed = false;
    announcements.forEach(function (a, id) { if (expired(a)) { announcements.delete(id); changed = true; } });
    if (changed) renderAnnouncements();
  }

  async function loadAnnouncements() {
    var list;
    try { list = await api("GET", "/api/announcements"); } catch (e) { return; }
    var fresh = new Map();
    (list || []).forEach(function (a) { if (a && a.id && !a.read && !expired(a)) fresh.set(a.id, a); });
    announcements = fresh;
    renderAnnouncements();
  }

  async function dismissAnnouncement(id, button) {
    if (button) button.disabled = true;
    try {
      await api("POST", "/api/announcements/" + encodeURIComponent(id) + "/read");
      dropAnnouncement(id);
    } catch (e) {
      if (e.status === 404) { dropAnnouncement(id); return; }
      if (button) button.disabled = false;
      if (e.status !== 401) toast("Could not dismiss: " + e.message, "error");
    }
  }

  // ------------------------------------------------------------------ live socket
  var ws = null;
  var wsBackoff = BACKOFF_MIN;
  var wsTimer = null;
  var wsPing = null;

  function setWsState(ok) {
    dom.wsState.textContent = ok ? "Live" : "Reconnecting…";
    dom.wsState.className = "ws-state " + (ok ? "ws-online" : "ws-offline");
  }

  function connectSocket() {
    clearTimeout(wsTimer);
    wsTimer = null;
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent";
    var sock;
    try { sock = new WebSocket(url); } catch (e) { scheduleSocket(); return; }
    ws = sock;
    sock.onopen = function () {
      if (ws !== sock) return;
      wsBackoff = BACKOFF_MIN;
      setWsState(true);
      clearInterval(wsPing);
      wsPing = setInterval(function () {
        if (sock.readyState === 1) { try { sock.send(JSON.stringify({ type: "ping" })); } catch (e) { /* closing */ } }
      }, PING_MS);
      // Anything that happened while we were away: fetch it.
      refreshContacts();
      loadAnnouncements();
      if (selectedId) loadSelected(false);
    };
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f && typeof f === "object") {
        handleFrame(f);
        // the softphone (softphone.js) follows call events from the same socket
        window.dispatchEvent(new CustomEvent("desk-event", { detail: f }));
      }
    };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      clearInterval(wsPing);
      setWsState(false);
      if (ev.code === 4401 || ev.code === 4403) {
        api("GET", "/api/me").catch(function () { /* api() redirects on 401 */ });
      }
      scheduleSocket();
    };
    sock.onerror = function () { /* onclose follows */ };
  }

  function scheduleSocket() {
    if (wsTimer) return;
    var delay = wsBackoff;
    wsBackoff = Math.min(wsBackoff * 2, BACKOFF_MAX);
    wsTimer = setTimeout(function () { wsTimer = null; connectSocket(); }, delay);
  }

  function handleFrame(f) {
    switch (f.type) {
      case "offer":
        if (f.offer && f.offer.contact_id && !assigned.has(f.offer.contact_id)) {
          offers.set(f.offer.contact_id, f.offer);
          renderOffers();
        }
        break;
      case "offer_revoked":
        if (offers.delete(f.contact_id)) renderOffers();
        break;
      case "contact":
        if (f.contact) onContact(f.contact);
        break;
      case "message":
        if (f.message) onMessage(f.message);
        break;
      case "presence":
        onPresence(f);
        break;
      case "announcement":
        if (f.announcement) showAnnouncement(f.announcement);
        break;
      case "announcement_read":
        dropAnnouncement(f.id);
        break;
      case "task":
        refreshTasks();
        break;
      default:
        break;
    }
  }

  function onContact(c) {
    if (!c.id) return;
    if (isFinished(c)) {
      var had = assigned.delete(c.id);
      if (selectedId === c.id) {
        clearSelection();
        if (c.agent_id && me && c.agent_id !== me.id) toast("The conversation was moved to another agent");
      } else if (had) {
        renderConversations();
      }
      return;
    }
    if (offers.has(c.id) && c.status !== "offered") { offers.delete(c.id); renderOffers(); }
    if (assigned.has(c.id) || (c.agent_id && me && c.agent_id === me.id)) {
      assigned.set(c.id, c);
    }
    if (current && selectedId === c.id) {
      current.contact = c;
      renderConversationHead();
    }
    renderConversations();
  }

  function onMessage(m) {
    var cid = m.contact_id;
    if (!cid) return;
    previews.set(cid, m.text);
    if (cid === selectedId) {
      appendMessage(m);
      if (m.author === "visitor") scheduleSuggestions();
    } else if (m.author !== "agent" || !me || m.author_name !== me.name) {
      unread.add(cid);
    }
    if (!assigned.has(cid) && cid !== selectedId) {
      // A message for a contact we do not list yet: the list is out of date.
      refreshContacts();
    }
    renderConversations();
  }

  // ------------------------------------------------------------------ start
  async function boot() {
    try {
      me = await api("GET", "/api/me");
    } catch (e) {
      if (e.status !== 401) {
        resetTranscript("Cannot reach the server: " + e.message + ". Retrying…");
        setTimeout(boot, 3000);
      }
      return;
    }
    dom.userName.textContent = me.name || me.email || "";
    dom.tenantName.textContent = me.tenant_name || me.tenant_slug || "";
    var roles = me.roles || [];
    var supervisor = roles.indexOf("supervisor") >= 0 || roles.indexOf("admin") >= 0;
    dom.wallboardLink.hidden = !supervisor;
    var perms = me.permissions || [];
    dom.routingLink.hidden = !supervisor && perms.indexOf("agents.manage") < 0;  // technicians too
    if ($("admin-link")) {
      $("admin-link").hidden = !["tenants.manage", "users.manage", "roles.manage", "branding.manage"]
        .some(function (p) { return perms.indexOf(p) >= 0; });
    }
    // agents see their own calls' recordings (the page explains if the tenant does not allow it)
    dom.recordingsLink.hidden = !supervisor && roles.indexOf("agent") < 0;
    // quality: supervisors score, agents read (and acknowledge) their own evaluations
    if ($("quality-link")) $("quality-link").hidden = !supervisor && roles.indexOf("agent") < 0;
    document.title = "Agent desktop – " + (me.tenant_name || "Contact hub");
    loadPresence();
    loadDispositions();
    renderSuggestions(null);
    loadAnnouncements();
    setInterval(expireAnnouncements, 5000);
    renderOffers();
    renderConversations();
    await refreshContacts();
    connectSocket();
    setInterval(refreshContacts, POLL_MS);
    refreshTasks();
    setInterval(refreshTasks, 15000);
    refreshQueue();
    setInterval(refreshQueue, 5000);
    window.addEventListener("online", function () {
      if (!ws) { wsBackoff = BACKOFF_MIN; clearTimeout(wsTimer); wsTimer = null; connectSocket(); }
    });
  }

  // ------------------------------------------------------------------ waiting in all queues (pickup)
  async function refreshQueue() {
    var list = $("queue-list");
    var waiting;
    try { waiting = await api("GET", "/api/queue"); } catch (e) { return; }
    clear(list);
    $("queue-empty").style.display = waiting.length ? "none" : "";
    $("queue-count").textContent = waiting.length ? String(waiting.length) : "";
    waiting.forEach(function (c) {
      var node = el("div", "task queue-item");
      node.setAttribute("data-contact-id", c.id);
      node.appendChild(el("div", "task-title", humanize(c.channel) + " · " + humanize(c.skill || "general")));
      node.appendChild(el("div", "task-meta", "waiting since " + fmtTime(c.queued_at) +
        (c.status === "offered" ? " · being offered" : "")));
      var take = el("button", "btn btn-small queue-pickup", "Pick up");
      take.type = "button";
      take.addEventListener("click", async function () {
        take.disabled = true;
        try {
          await api("POST", "/api/contacts/" + encodeURIComponent(c.id) + "/pickup");
          await refreshContacts();
        } catch (e) { toast(e.message, "error"); }
        refreshQueue();
      });
      node.appendChild(take);
      list.appendChild(node);
    });
  }

  // ------------------------------------------------------------------ callbacks & voicemail
  async function refreshTasks() {
    var list = $("tasks");
    var tasks;
    try { tasks = await api("GET", "/api/tasks"); } catch (e) { return; }
    clear(list);
    $("tasks-empty").style.display = tasks.length ? "none" : "";
    $("task-count").textContent = tasks.length ? String(tasks.length) : "";
    tasks.forEach(function (t) {
      var node = el("div", "task");
      node.setAttribute("data-task-id", t.id);
      node.appendChild(el("div", "task-title", (t.kind === "voicemail" ? "Voicemail from "
        : t.kind === "recontact" ? "Re-contact (quality) " : "Call back ") + (t.phone || t.email || "unknown number")));
      node.appendChild(el("div", "task-meta", fmtDateTime(t.created_at)));
      if (t.note) node.appendChild(el("div", "task-meta task-note", t.note));
      if (t.evaluation_id) {
        var link = el("a", "task-meta", "See the evaluation");
        link.href = "/quality?evaluation=" + encodeURIComponent(t.evaluation_id);
        node.appendChild(link);
      }
      if (t.voicemail_url) {
        var audio = document.createElement("audio");
        audio.controls = true;
        audio.preload = "none";
        audio.src = t.voicemail_url;
        audio.className = "task-audio";
        node.appendChild(audio);
      }
      var done = el("button", "btn btn-small task-done", "Done");
      done.type = "button";
      done.addEventListener("click", async function () {
        done.disabled = true;
        try { await api("POST", "/api/tasks/" + encodeURIComponent(t.id) + "/done"); node.remove(); }
        catch (e) { done.disabled = false; toast(e.message, "error"); }
        refreshTasks();
      });
      node.appendChild(done);
      list.appendChild(node);
    });
  }

  // For tests and debugging.
  window.AgentDesk = {
    state: function () {
      var sel = current && current.contact && current.contact.id === selectedId ? current.contact : null;
      return { me: me, selected: selectedId, offers: Array.from(offers.keys()), assigned: Array.from(assigned.keys()),
        socket: !!(ws && ws.readyState === 1),
        // the selected contact's channel and status, for the email view and reply tools (mailview.js, replytools.js)
        channel: sel ? sel.channel : null, status: sel ? sel.status : null };
    },
    refresh: refreshContacts,
  };

  boot();
})();
