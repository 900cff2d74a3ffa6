/* Contact hub web chat widget.
 *
 * Embed with:  <script src="https://HOST/widget.js" data-tenant="demo"></script>
 *
 * Speaks the protocol of docs/protocol.md over ws(s)://HOST/ws/chat?tenant=<slug>.
 * Plain ES2020, no dependencies. All message text is inserted with textContent.
 */
(function () {
  "use strict";

  if (window.HubChat && window.HubChat.__loaded) return;

  // ---------------------------------------------------------------- set-up
  var script = document.currentScript;
  if (!script) {
    var candidates = document.querySelectorAll("script[src*='widget.js']");
    script = candidates.length ? candidates[candidates.length - 1] : null;
  }
  var scriptSrc = (script && script.src) || window.location.href;
  var hubUrl = new URL(scriptSrc, window.location.href);
  var tenant = ((script && script.getAttribute("data-tenant")) || "demo").trim() || "demo";
  var wsUrl = (hubUrl.protocol === "https:" ? "wss://" : "ws://") + hubUrl.host +
    "/ws/chat?tenant=" + encodeURIComponent(tenant);
  var STORAGE_KEY = "hub-chat:" + tenant;
  var MAX_CACHED_MESSAGES = 200;
  var PING_MS = 25000;
  var STALE_MS = 65000; // no frame at all for this long: the socket is dead, reconnect
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 10000;

  // ---------------------------------------------------------------- storage
  var memoryStore = {};
  function loadStored() {
    var raw = null;
    try { raw = window.localStorage.getItem(STORAGE_KEY); } catch (e) { raw = memoryStore[STORAGE_KEY] || null; }
    var data = {};
    if (raw) { try { data = JSON.parse(raw) || {}; } catch (e) { data = {}; } }
    return {
      visitor_token: typeof data.visitor_token === "string" ? data.visitor_token : null,
      contact_id: typeof data.contact_id === "string" ? data.contact_id : null,
      last_seq: Number.isInteger(data.last_seq) && data.last_seq > 0 ? data.last_seq : 0,
      outbox: Array.isArray(data.outbox) ? data.outbox.filter(function (m) {
        return m && typeof m.client_id === "string" && typeof m.text === "string";
      }) : [],
      messages: Array.isArray(data.messages) ? data.messages.filter(function (m) {
        return m && typeof m.text === "string";
      }) : [],
    };
  }
  var store = loadStored();
  function save() {
    if (store.messages.length > MAX_CACHED_MESSAGES) {
      store.messages = store.messages.slice(store.messages.length - MAX_CACHED_MESSAGES);
    }
    var raw = JSON.stringify(store);
    try { window.localStorage.setItem(STORAGE_KEY, raw); } catch (e) { memoryStore[STORAGE_KEY] = raw; }
  }

  function newClientId() {
    try {
      if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    } catch (e) { /* insecure context: fall through */ }
    var s = "";
    for (var i = 0; i < 32; i++) {
      s += Math.floor(Math.random() * 16).toString(16);
      if (i === 7 || i === 11 || i === 15 || i === 19) s += "-";
    }
    return s + "-" + Date.now().toString(16);
  }

  // ---------------------------------------------------------------- styles
  var CSS = [
    "#hub-chat-root, #hub-chat-root * { box-sizing: border-box; font-family: -apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; }",
    "#hub-chat-root { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; font-size: 14px; line-height: 1.4; color: #1f2933; }",
    "#hub-chat-launcher { position: relative; width: 56px; height: 56px; border-radius: 50%; border: none; cursor: pointer; background: #1f6feb; color: #fff; box-shadow: 0 4px 14px rgba(0,0,0,.25); display: flex; align-items: center; justify-content: center; float: right; padding: 0; }",
    "#hub-chat-launcher:hover { background: #1858bd; }",
    "#hub-chat-launcher:focus-visible { outline: 3px solid #9ec5ff; outline-offset: 2px; }",
    "#hub-chat-launcher svg { width: 26px; height: 26px; fill: currentColor; }",
    "#hub-chat-unread { position: absolute; top: -4px; right: -4px; min-width: 20px; height: 20px; padding: 0 5px; border-radius: 10px; background: #d93025; color: #fff; font-size: 12px; font-weight: 600; line-height: 20px; text-align: center; }",
    "#hub-chat-unread[hidden] { display: none; }",
    "#hub-chat-panel { position: absolute; right: 0; bottom: 70px; width: 340px; max-width: calc(100vw - 40px); height: 480px; max-height: calc(100vh - 110px); background: #fff; border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.25); display: flex; flex-direction: column; overflow: hidden; }",
    "#hub-chat-panel[hidden] { display: none; }",
    ".hub-chat-header { background: #1f6feb; color: #fff; padding: 10px 12px; display: flex; align-items: center; gap: 8px; }",
    ".hub-chat-title { font-weight: 600; font-size: 15px; }",
    "#hub-chat-status { font-size: 12px; opacity: .9; }",
    ".hub-chat-header-text { flex: 1; min-width: 0; }",
    "#hub-chat-close { background: transparent; border: none; color: #fff; font-size: 20px; line-height: 1; cursor: pointer; padding: 2px 6px; }",
    "#hub-chat-messages { flex: 1; overflow-y: auto; padding: 10px; background: #f5f7fa; display: flex; flex-direction: column; gap: 6px; }",
    ".hub-chat-msg { max-width: 82%; padding: 7px 10px; border-radius: 12px; white-space: pre-wrap; word-wrap: break-word; overflow-wrap: anywhere; }",
    ".hub-chat-msg[data-author]::before { content: attr(data-author); display: block; font-size: 11px; font-weight: 600; opacity: .7; margin-bottom: 2px; }",
    ".hub-chat-visitor { align-self: flex-end; background: #1f6feb; color: #fff; border-bottom-right-radius: 4px; }",
    ".hub-chat-bot { align-self: flex-start; background: #e4e7eb; border-bottom-left-radius: 4px; }",
    ".hub-chat-agent { align-self: flex-start; background: #dff3e4; border-bottom-left-radius: 4px; }",
    ".hub-chat-system { align-self: center; background: transparent; color: #616e7c; font-size: 12px; font-style: italic; text-align: center; max-width: 95%; padding: 2px 6px; }",
    ".hub-chat-pending { opacity: .6; }",
    ".hub-chat-pending::after { content: ' \\231B'; font-size: 10px; }",
    ".hub-chat-failed { background: #fce8e6; color: #a50e0e; cursor: pointer; }",
    ".hub-chat-failed::after { content: ' (not sent – click to edit)'; font-size: 11px; }",
    ".hub-chat-compose { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #e4e7eb; background: #fff; }",
    "#hub-chat-input { flex: 1; min-width: 0; border: 1px solid #cbd2d9; border-radius: 8px; padding: 7px 9px; font-size: 14px; color: #1f2933; background: #fff; }",
    "#hub-chat-input:focus, .hub-chat-identify-form input:focus { outline: none; border-color: #1f6feb; box-shadow: 0 0 0 2px rgba(31,111,235,.2); }",
    "#hub-chat-send, #hub-chat-identify { border: none; border-radius: 8px; background: #1f6feb; color: #fff; padding: 7px 12px; font-size: 14px; cursor: pointer; }",
    "#hub-chat-send:hover, #hub-chat-identify:hover { background: #1858bd; }",
    ".hub-chat-identify-bar { border-top: 1px solid #e4e7eb; background: #fff; padding: 4px 8px 0; }",
    "#hub-chat-identify-toggle { background: none; border: none; color: #1f6feb; font-size: 12px; cursor: pointer; padding: 2px 0; text-decoration: underline; }",
    ".hub-chat-identify-form { display: grid; grid-template-columns: 1fr 1fr; gap: 6px; padding: 6px 0 4px; }",
    ".hub-chat-identify-form[hidden] { display: none; }",
    ".hub-chat-identify-form input { border: 1px solid #cbd2d9; border-radius: 6px; padding: 5px 7px; font-size: 13px; min-width: 0; color: #1f2933; background: #fff; }",
    "#hub-chat-name { grid-column: 1 / span 2; }",
    "#hub-chat-identify { grid-column: 1 / span 2; padding: 5px 10px; font-size: 13px; }",
    "#hub-chat-identify-result { grid-column: 1 / span 2; font-size: 12px; color: #3e4c59; min-height: 0; }",
    "#hub-chat-identify-result.hub-chat-error { color: #a50e0e; }",
  ].join("\n");

  // ---------------------------------------------------------------- DOM
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "className") node.className = attrs[k];
        else node.setAttribute(k, attrs[k]);
      });
    }
    if (text != null) node.textContent = text;
    return node;
  }

  var ui = {};
  function buildDom() {
    var style = el("style", { id: "hub-chat-style" });
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);

    var root = el("div", { id: "hub-chat-root" });

    var panel = el("div", { id: "hub-chat-panel", role: "dialog", "aria-label": "Chat" });
    panel.hidden = true;

    var header = el("div", { className: "hub-chat-header" });
    var headText = el("div", { className: "hub-chat-header-text" });
    headText.appendChild(el("div", { className: "hub-chat-title" }, "Chat with us"));
    var status = el("div", { id: "hub-chat-status", "aria-live": "polite" }, "Connecting…");
    headText.appendChild(status);
    header.appendChild(headText);
    var close = el("button", { id: "hub-chat-close", type: "button", "aria-label": "Close chat" }, "×");
    header.appendChild(close);
    panel.appendChild(header);

    var messages = el("div", { id: "hub-chat-messages", "aria-live": "polite" });
    panel.appendChild(messages);

    var idBar = el("div", { className: "hub-chat-identify-bar" });
    var idToggle = el("button", { id: "hub-chat-identify-toggle", type: "button", "aria-expanded": "false" },
      "Share your email or phone");
    idBar.appendChild(idToggle);
    var idForm = el("form", { className: "hub-chat-identify-form", novalidate: "" });
    idForm.hidden = true;
    var email = el("input", { id: "hub-chat-email", type: "email", placeholder: "Email", autocomplete: "email" });
    var phone = el("input", { id: "hub-chat-phone", type: "tel", placeholder: "Phone", autocomplete: "tel" });
    var name = el("input", { id: "hub-chat-name", type: "text", placeholder: "Name (optional)", autocomplete: "name" });
    var idButton = el("button", { id: "hub-chat-identify", type: "submit" }, "Share");
    var idResult = el("div", { id: "hub-chat-identify-result", "aria-live": "polite" });
    [email, phone, name, idButton, idResult].forEach(function (n) { idForm.appendChild(n); });
    idBar.appendChild(idForm);
    panel.appendChild(idBar);

    var compose = el("div", { className: "hub-chat-compose" });
    var input = el("input", { id: "hub-chat-input", type: "text", placeholder: "Type a message…",
      autocomplete: "off", "aria-label": "Message" });
    var send = el("button", { id: "hub-chat-send", type: "button" }, "Send");
    compose.appendChild(input);
    compose.appendChild(send);
    panel.appendChild(compose);

    var launcher = el("button", { id: "hub-chat-launcher", type: "button", "aria-label": "Open chat",
      "aria-controls": "hub-chat-panel", "aria-expanded": "false" });
    var svgNS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(svgNS, "path");
    path.setAttribute("d", "M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 1-2z");
    svg.appendChild(path);
    launcher.appendChild(svg);
    var unread = el("span", { id: "hub-chat-unread" }, "0");
    unread.hidden = true;
    launcher.appendChild(unread);

    root.appendChild(panel);
    root.appendChild(launcher);
    document.body.appendChild(root);

    ui = { root: root, panel: panel, status: status, messages: messages, input: input, send: send,
      launcher: launcher, unread: unread, close: close, idToggle: idToggle, idForm: idForm, email: email,
      phone: phone, name: name, idButton: idButton, idResult: idResult };

    launcher.addEventListener("click", function () { if (ui.panel.hidden) open(); else hide(); });
    close.addEventListener("click", hide);
    send.addEventListener("click", function () { sendFromInput(); });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); sendFromInput(); }
    });
    idToggle.addEventListener("click", function () {
      idForm.hidden = !idForm.hidden;
      idToggle.setAttribute("aria-expanded", String(!idForm.hidden));
      if (!idForm.hidden) email.focus();
    });
    idForm.addEventListener("submit", function (ev) { ev.preventDefault(); identify(); });
    messages.addEventListener("click", function (ev) {
      var target = ev.target;
      if (target && target.classList && target.classList.contains("hub-chat-failed")) {
        if (!ui.input.value) ui.input.value = target.textContent;
        target.remove();
        ui.input.focus();
      }
    });
  }

  // ---------------------------------------------------------------- state
  var ws = null;
  var connected = false;     // welcome received on the current socket
  var stopped = false;       // 4404: do not reconnect
  var backoff = BACKOFF_MIN;
  var reconnectTimer = null;
  var pingTimer = null;
  var lastFrameAt = 0;
  var statusKey = "connecting";
  var convStatus = null;     // bot | queued | offered | assigned | wrapup | closed
  var agentName = null;
  var unreadCount = 0;
  var inflight = [];         // frames awaiting ack/identified/error on this socket, in order
  var byId = Object.create(null);
  var byClientId = Object.create(null);

  var STATUS_TEXT = {
    connecting: "Connecting…",
    bot: "Chatting with our assistant",
    queued: "Waiting for an agent…",
    closed: "Conversation closed",
    offline: "Offline – reconnecting…",
    unavailable: "Chat unavailable",
  };

  function renderStatus() {
    var text;
    if (statusKey === "assigned") text = agentName ? "Chatting with " + agentName : "Chatting with an agent";
    else text = STATUS_TEXT[statusKey] || STATUS_TEXT.bot;
    ui.status.textContent = text;
  }

  function applyConversationStatus(status, name) {
    convStatus = status || null;
    if (name !== undefined) agentName = name || null;
    if (status === "assigned") statusKey = "assigned";
    else if (status === "queued" || status === "offered") statusKey = "queued";
    else if (status === "closed" || status === "wrapup") statusKey = "closed";
    else statusKey = "bot";
    renderStatus();
  }

  function setConnStatus(key) {
    statusKey = key;
    renderStatus();
  }

  function adoptContact(contactId) {
    if (!contactId || contactId === store.contact_id) return;
    // seq numbers are per contact: a new conversation starts again from 0.
    store.contact_id = contactId;
    store.last_seq = 0; seqsAhead = {};
    save();
    // A new conversation after a closed one starts with the assistant (a status frame may refine it).
    if (convStatus === "closed" || convStatus === "wrapup") applyConversationStatus("bot", null);
  }

  function adoptToken(token) {
    if (token && token !== store.visitor_token) {
      store.visitor_token = token;
      save();
    }
  }

  // ---------------------------------------------------------------- rendering
  var AUTHOR_CLASS = { visitor: "hub-chat-visitor", bot: "hub-chat-bot", agent: "hub-chat-agent", system: "hub-chat-system" };

  function scrollToEnd() { ui.messages.scrollTop = ui.messages.scrollHeight; }

  function authorLabel(m) {
    if (m.author === "agent") return m.author_name || "Agent";
    if (m.author === "bot") return m.author_name || "Assistant";
    return null;
  }

  function makeBubble(m) {
    var cls = AUTHOR_CLASS[m.author] || "hub-chat-system";
    var node = el("div", { className: "hub-chat-msg " + cls }, m.text);
    if (m.id) node.setAttribute("data-id", m.id);
    if (m.client_id) node.setAttribute("data-client-id", m.client_id);
    if (m.seq != null) node.setAttribute("data-seq", String(m.seq));
    var label = authorLabel(m);
    if (label) node.setAttribute("data-author", label);
    if (m.created_at) node.title = new Date(m.created_at).toLocaleString();
    return node;
  }

  function addSystemLine(text) {
    ui.messages.appendChild(makeBubble({ author: "system", text: text }));
    scrollToEnd();
  }

  function renderPending(entry) {
    var node = makeBubble({ author: "visitor", text: entry.text, client_id: entry.client_id });
    node.classList.add("hub-chat-pending");
    byClientId[entry.client_id] = node;
    ui.messages.appendChild(node);
    scrollToEnd();
    return node;
  }

  var cachedIds = Object.create(null);
  store.messages.forEach(function (m) { if (m.id) cachedIds[m.id] = true; });

  function cacheMessage(m) {
    if (!m.id || cachedIds[m.id]) return;
    cachedIds[m.id] = true;
    store.messages.push({ id: m.id, seq: m.seq, contact_id: m.contact_id, author: m.author,
      author_name: m.author_name || null, text: m.text, client_id: m.client_id || null,
      created_at: m.created_at || null });
  }

  function removeFromOutbox(clientId) {
    var before = store.outbox.length;
    store.outbox = store.outbox.filter(function (o) { return o.client_id !== clientId; });
    return store.outbox.length !== before;
  }

  var seqsAhead = {};  // seqs received above last_seq, waiting for the gap to fill

  function markStored(node, m) {
    node.classList.remove("hub-chat-pending");
    node.classList.remove("hub-chat-failed");
    if (m.id) { node.setAttribute("data-id", m.id); byId[m.id] = node; }
    if (m.seq != null) node.setAttribute("data-seq", String(m.seq));
  }

  // A message frame from the hub (live or replayed).
  function onMessage(f, live) {
    if (typeof f.text !== "string" || !f.id) return;
    adoptContact(f.contact_id);
    if (f.contact_id === store.contact_id && Number.isInteger(f.seq) && f.seq > store.last_seq) {
      // last_seq only advances over a contiguous run: two writers may deliver seq N+2
      // before N+1, and a reconnect must still ask for N+1.
      seqsAhead[f.seq] = true;
      while (seqsAhead[store.last_seq + 1]) {
        delete seqsAhead[store.last_seq + 1];
        store.last_seq += 1;
      }
    }
    if (byId[f.id]) { save(); return; }                      // already shown
    var pendingNode = f.client_id ? byClientId[f.client_id] : null;
    if (pendingNode) {                                      // echo of our own message
      markStored(pendingNode, f);
      removeFromOutbox(f.client_id);
      cacheMessage(f);
      save();
      return;
    }
    var node = makeBubble(f);
    byId[f.id] = node;
    if (f.client_id) byClientId[f.client_id] = node;
    ui.messages.appendChild(node);
    cacheMessage(f);
    save();
    scrollToEnd();
    if (live && f.author !== "visitor" && ui.panel.hidden) {
      unreadCount += 1;
      ui.unread.textContent = String(unreadCount);
      ui.unread.hidden = false;
    }
  }

  function onAck(f) {
    if (!f.client_id) return;
    inflight = inflight.filter(function (x) { return !(x.kind === "message" && x.client_id === f.client_id); });
    adoptContact(f.contact_id);
    removeFromOutbox(f.client_id);
    var node = byClientId[f.client_id];
    if (node) {
      markStored(node, f);
      cacheMessage({ id: f.id, seq: f.seq, contact_id: f.contact_id, author: "visitor", text: node.textContent,
        client_id: f.client_id, created_at: new Date().toISOString() });
    }
    save();
  }

  var IDENTIFY_CODES = /email|phone|identif|name|customer/i;

  function onError(f) {
    var text = f.message || f.code || "Something went wrong";
    addSystemLine(text);
    var idx = -1;
    if (IDENTIFY_CODES.test(f.code || "")) {
      idx = inflight.findIndex(function (x) { return x.kind === "identify"; });
    }
    if (idx < 0 && inflight.length) idx = 0;
    if (idx < 0) return;
    var entry = inflight.splice(idx, 1)[0];
    if (entry.kind === "identify") {
      showIdentifyResult(text, true);
    } else if (entry.kind === "message") {
      // Rejected (e.g. text_too_long): resending would fail again.
      failMessage(entry.client_id, text);
    }
  }

  function failMessage(clientId, reason) {
    removeFromOutbox(clientId);
    save();
    var node = byClientId[clientId];
    if (node && !node.getAttribute("data-id")) {
      node.classList.remove("hub-chat-pending");
      node.classList.add("hub-chat-failed");
      if (reason) node.title = reason;
      delete byClientId[clientId];
    }
  }

  function showIdentifyResult(text, isError) {
    ui.idResult.textContent = text;
    ui.idResult.classList.toggle("hub-chat-error", !!isError);
  }

  function onIdentified(f) {
    var idx = inflight.findIndex(function (x) { return x.kind === "identify"; });
    if (idx >= 0) inflight.splice(idx, 1);
    var c = f.customer || {};
    var who = c.name || c.email || c.phone;
    showIdentifyResult(who ? "Thanks, " + who + " – we have your details." : "Thanks – we have your details.", false);
  }

  // ---------------------------------------------------------------- socket
  function rawSend(frame) {
    if (!ws || ws.readyState !== 1) return false;
    try { ws.send(JSON.stringify(frame)); return true; } catch (e) { return false; }
  }

  function sendOutboxEntry(entry) {
    if (!connected) return;
    if (rawSend({ type: "message", client_id: entry.client_id, text: entry.text })) {
      inflight.push({ kind: "message", client_id: entry.client_id });
    }
  }

  function connect() {
    if (stopped) return;
    if (ws && (ws.readyState === 0 || ws.readyState === 1)) return;
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    connected = false;
    inflight = [];
    var sock;
    try {
      sock = new WebSocket(wsUrl);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = function () {
      if (ws !== sock) return;
      lastFrameAt = Date.now();
      rawSend({ type: "hello", visitor_token: store.visitor_token, contact_id: store.contact_id,
        last_seq: store.last_seq });
      startPing();
    };
    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      lastFrameAt = Date.now();
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (!f || typeof f !== "object") return;
      handleFrame(f);
    };
    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      connected = false;
      stopPing();
      var head = inflight.length ? inflight[0] : null;
      inflight = [];
      if (ev.code === 4404) {
        stopped = true;
        setConnStatus("unavailable");
        return;
      }
      if (ev.code === 4401) {
        // The hub no longer accepts our token: start over as a new visitor (the outbox is kept).
        store.visitor_token = null;
        store.contact_id = null;
        store.last_seq = 0; seqsAhead = {};
        save();
      }
      if (ev.code === 1009 && head && head.kind === "message") {
        failMessage(head.client_id, "Message too long");
      }
      setConnStatus("offline");
      scheduleReconnect();
    };
    sock.onerror = function () { /* onclose follows */ };
  }

  function handleFrame(f) {
    switch (f.type) {
      case "welcome":
        connected = true;
        backoff = BACKOFF_MIN;
        adoptToken(f.visitor_token);
        adoptContact(f.contact_id);
        applyConversationStatus(f.contact_id ? f.status : (f.status || "bot"), f.agent_name);
        // Everything not acknowledged yet goes again, with the same client_id.
        store.outbox.slice().forEach(sendOutboxEntry);
        break;
      case "message":
        onMessage(f, connected);
        break;
      case "ack":
        onAck(f);
        break;
      case "status":
        adoptContact(f.contact_id);
        if (!f.contact_id || f.contact_id === store.contact_id) applyConversationStatus(f.status, f.agent_name);
        break;
      case "identified":
        onIdentified(f);
        break;
      case "error":
        onError(f);
        break;
      case "pong":
        break;
      default:
        break;
    }
    if (f.visitor_token && f.type !== "welcome") adoptToken(f.visitor_token);
  }

  function scheduleReconnect() {
    if (stopped || reconnectTimer) return;
    var delay = backoff;
    backoff = Math.min(backoff * 2, BACKOFF_MAX);
    reconnectTimer = setTimeout(function () { reconnectTimer = null; connect(); }, delay);
  }

  function startPing() {
    stopPing();
    pingTimer = setInterval(function () {
      if (!ws) return;
      if (Date.now() - lastFrameAt > STALE_MS) {
        try { ws.close(); } catch (e) { /* ignore */ }
        return;
      }
      rawSend({ type: "ping" });
    }, PING_MS);
  }

  function stopPing() {
    if (pingTimer) clearInterval(pingTimer);
    pingTimer = null;
  }

  // ---------------------------------------------------------------- actions
  function send(text) {
    text = String(text == null ? "" : text).trim();
    if (!text) return null;
    if (stopped) { addSystemLine("Chat is unavailable right now."); return null; }
    var entry = { client_id: newClientId(), text: text, created_at: new Date().toISOString() };
    store.outbox.push(entry);
    save();
    renderPending(entry);
    if (connected) sendOutboxEntry(entry);
    else connect();
    return entry.client_id;
  }

  function sendFromInput() {
    var text = ui.input.value;
    if (!text.trim()) return;
    if (send(text) !== null) ui.input.value = "";
    ui.input.focus();
  }

  function identify() {
    var frame = { type: "identify" };
    var email = ui.email.value.trim();
    var phone = ui.phone.value.trim();
    var name = ui.name.value.trim();
    if (!email && !phone) { showIdentifyResult("Please enter an email address or a phone number.", true); return; }
    if (email) frame.email = email;
    if (phone) frame.phone = phone;
    if (name) frame.name = name;
    if (!connected || !rawSend(frame)) {
      showIdentifyResult("You are offline – please try again in a moment.", true);
      return;
    }
    inflight.push({ kind: "identify" });
    showIdentifyResult("Sending…", false);
  }

  function open() {
    ui.panel.hidden = false;
    ui.launcher.setAttribute("aria-expanded", "true");
    unreadCount = 0;
    ui.unread.hidden = true;
    if (!stopped) connect();
    scrollToEnd();
    try { ui.input.focus(); } catch (e) { /* ignore */ }
  }

  function hide() {
    ui.panel.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "false");
  }

  function state() {
    return {
      tenant: tenant,
      ws_url: wsUrl,
      connected: connected,
      open: !ui.panel.hidden,
      status: convStatus,
      status_text: ui.status.textContent,
      agent_name: agentName,
      visitor_token: store.visitor_token,
      contact_id: store.contact_id,
      last_seq: store.last_seq,
      outbox: store.outbox.map(function (o) { return { client_id: o.client_id, text: o.text }; }),
      messages: Array.prototype.map.call(ui.messages.querySelectorAll(".hub-chat-msg"), function (n) {
        return {
          id: n.getAttribute("data-id"),
          client_id: n.getAttribute("data-client-id"),
          author: (n.className.match(/hub-chat-(visitor|bot|agent|system)/) || [])[1] || null,
          text: n.textContent,
          pending: n.classList.contains("hub-chat-pending"),
        };
      }),
    };
  }

  // ---------------------------------------------------------------- start
  function restore() {
    // Messages shown before a reload come back from the cache; last_seq says what the hub need not resend.
    store.messages.forEach(function (m) {
      if (m.id && byId[m.id]) return;
      var node = makeBubble(m);
      if (m.id) byId[m.id] = node;
      if (m.client_id) byClientId[m.client_id] = node;
      ui.messages.appendChild(node);
    });
    store.outbox.forEach(function (o) { if (!byClientId[o.client_id]) renderPending(o); });
  }

  function start() {
    buildDom();
    restore();
    renderStatus();
    window.addEventListener("online", function () {
      if (!ws && !stopped) { backoff = BACKOFF_MIN; clearTimeout(reconnectTimer); reconnectTimer = null; connect(); }
    });
    connect();
  }

  window.HubChat = { open: open, close: hide, send: send, state: state, __loaded: true };

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
