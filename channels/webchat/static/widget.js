/* Contact hub web chat widget.
 *
 * Embed with:  <script src="https://HOST/widget.js" data-tenant="demo"></script>
 *
 * Speaks the protocol of docs/protocol.md over ws(s)://HOST/ws/chat?tenant=<slug>.
 * Plain ES2020, no dependencies. All message text is inserted with textContent.
 *
 * Click-to-call ("Call us" in the header): a plain RTCPeerConnection with the microphone,
 * whose complete offer (ICE gathered) is posted with the chat's visitor token to
 * HOST/webrtc/offer?tenant=<slug> (channels/webrtc/call.py); the hub's voice bot answers.
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
  var offerUrl = hubUrl.protocol + "//" + hubUrl.host + "/webrtc/offer?tenant=" + encodeURIComponent(tenant);
  var ICE_GATHER_MS = 3000;       // post the offer with what was gathered by then
  var TOKEN_WAIT_MS = 10000;      // a call needs the chat's visitor token (from the welcome frame)
  var CALL_DROP_GRACE_MS = 5000;  // "disconnected" may recover; after this the call has ended

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
    "#hub-chat-call { display: flex; align-items: center; gap: 4px; flex: none; background: rgba(255,255,255,.16); border: 1px solid rgba(255,255,255,.55); color: #fff; border-radius: 14px; padding: 3px 10px; font-size: 12px; cursor: pointer; }",
    "#hub-chat-call:hover { background: rgba(255,255,255,.3); }",
    "#hub-chat-call:focus-visible, #hub-chat-hangup:focus-visible { outline: 2px solid #9ec5ff; outline-offset: 1px; }",
    "#hub-chat-call[disabled] { opacity: .55; cursor: default; }",
    "#hub-chat-call svg { width: 14px; height: 14px; fill: currentColor; }",
    "#hub-chat-call-bar { display: flex; align-items: center; gap: 8px; min-height: 37px; padding: 6px 12px; background: #e8f0fe; border-bottom: 1px solid #d2e3fc; font-size: 13px; }",
    "#hub-chat-call-bar[hidden] { display: none; }",
    "#hub-chat-call-status { flex: 1; min-width: 0; color: #174ea6; }",
    "#hub-chat-call-bar.hub-chat-call-error #hub-chat-call-status { color: #a50e0e; }",
    "#hub-chat-hangup { border: none; border-radius: 14px; background: #d93025; color: #fff; padding: 4px 12px; font-size: 13px; cursor: pointer; }",
    "#hub-chat-hangup:hover { background: #b3261e; }",
    "#hub-chat-hangup[hidden] { display: none; }",
    ".hub-chat-quick { align-self: flex-start; display: flex; flex-wrap: wrap; gap: 6px; }",
    ".hub-chat-quick button { border: 1px solid #1f6feb; background: #fff; color: #1f6feb; border-radius: 14px; padding: 4px 12px; font-size: 13px; cursor: pointer; }",
    ".hub-chat-quick button:hover { background: #e8f0fe; }",
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

  function icon(d) {
    var svgNS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(svgNS, "path");
    path.setAttribute("d", d);
    svg.appendChild(path);
    return svg;
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
    var callButton = el("button", { id: "hub-chat-call", type: "button", title: "Call us", "aria-label": "Call us" });
    callButton.appendChild(icon("M6.62 10.79a15.05 15.05 0 0 0 6.59 6.59l2.2-2.2a1 1 0 0 1 1.02-.24c1.12.37 2.33.57 " +
      "3.57.57a1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 " +
      "3.57a1 1 0 0 1-.25 1.02l-2.2 2.2z"));
    callButton.appendChild(el("span", { className: "hub-chat-call-label" }, "Call us"));
    header.appendChild(callButton);
    var close = el("button", { id: "hub-chat-close", type: "button", "aria-label": "Close chat" }, "×");
    header.appendChild(close);
    panel.appendChild(header);

    var callBar = el("div", { id: "hub-chat-call-bar" });
    callBar.hidden = true;
    var callStatus = el("div", { id: "hub-chat-call-status", role: "status", "aria-live": "polite" });
    var hangupButton = el("button", { id: "hub-chat-hangup", type: "button" }, "Hang up");
    hangupButton.hidden = true;
    callBar.appendChild(callStatus);
    callBar.appendChild(hangupButton);
    panel.appendChild(callBar);

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
    launcher.appendChild(icon("M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H8l-5 4V5a2 2 0 0 1 1-2z"));
    var unread = el("span", { id: "hub-chat-unread" }, "0");
    unread.hidden = true;
    launcher.appendChild(unread);

    var callAudio = el("audio", { id: "hub-chat-call-audio", autoplay: "" });
    callAudio.hidden = true;

    root.appendChild(panel);
    root.appendChild(launcher);
    root.appendChild(callAudio);
    document.body.appendChild(root);

    ui = { root: root, panel: panel, status: status, messages: messages, input: input, send: send,
      launcher: launcher, unread: unread, close: close, idToggle: idToggle, idForm: idForm, email: email,
      phone: phone, name: name, idButton: idButton, idResult: idResult, callButton: callButton,
      callBar: callBar, callStatus: callStatus, hangupButton: hangupButton, callAudio: callAudio };

    launcher.addEventListener("click", function () { if (ui.panel.hidden) open(); else hide(); });
    close.addEventListener("click", hide);
    callButton.addEventListener("click", function () { startCall(); });
    hangupButton.addEventListener("click", function () { hangup(); });
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
    removeQuickReplies();
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
    removeQuickReplies();
    ui.messages.appendChild(node);
    if (Array.isArray(f.buttons) && f.buttons.length && f.author === "bot") showQuickReplies(f.buttons);
    cacheMessage(f);
    save();
    scrollToEnd();
    if (live && f.author !== "visitor" && ui.panel.hidden) {
      unreadCount += 1;
      ui.unread.textContent = String(unreadCount);
      ui.unread.hidden = false;
    }
  }

  // Quick replies (e.g. "Did that help?" Yes / No): one row under the latest bot message; a
  // click sends the button's title as the visitor's message. Any newer message removes them.
  function removeQuickReplies() {
    Array.prototype.forEach.call(ui.messages.querySelectorAll(".hub-chat-quick"), function (n) { n.remove(); });
  }

  function showQuickReplies(buttons) {
    var row = el("div", { className: "hub-chat-quick" });
    buttons.slice(0, 6).forEach(function (b) {
      if (!b || typeof b.title !== "string") return;
      var button = el("button", { type: "button", "data-payload": String(b.payload || "") }, b.title);
      button.addEventListener("click", function () { removeQuickReplies(); send(b.title); });
      row.appendChild(button);
    });
    ui.messages.appendChild(row);
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
        releaseTokenWaiters();
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
        releaseTokenWaiters();
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

  // ---------------------------------------------------------------- web call
  // One call at a time. `callSeq` changes whenever a call starts or ends, so the async
  // steps of a call that was hung up meanwhile stop where they are.
  var callSeq = 0;
  var activeCall = newCall("idle");
  var tokenWaiters = [];

  var CALL_TEXT = { calling: "Calling…", connected: "Connected", ended: "Call ended" };

  function newCall(state) {
    return { state: state, error: null, pc: null, mic: null, channel: null, pc_id: null, contact_id: null,
      dropTimer: null };
  }

  function renderCall() {
    if (!ui.callBar) return;  // called before the DOM exists
    var c = activeCall;
    var live = c.state === "calling" || c.state === "connected";
    ui.callBar.hidden = c.state === "idle";
    ui.callStatus.textContent = c.error ? "Call failed: " + c.error : (CALL_TEXT[c.state] || "");
    ui.callBar.classList.toggle("hub-chat-call-error", !!c.error);
    ui.hangupButton.hidden = !live;
    ui.callButton.disabled = live;
  }

  function setCallState(state) {
    activeCall.state = state;
    renderCall();
  }

  function releaseTokenWaiters() {
    var waiters = tokenWaiters;
    tokenWaiters = [];
    waiters.forEach(function (resolve) { resolve(); });
  }

  // The chat's visitor token: fresh once this page got a welcome frame; else connect and wait for one.
  function visitorToken() {
    if (connected && store.visitor_token) return Promise.resolve(store.visitor_token);
    if (stopped) return Promise.reject(new Error("calls are not available"));
    return new Promise(function (resolve) {
      var timer = setTimeout(resolve, TOKEN_WAIT_MS);
      tokenWaiters.push(function () { clearTimeout(timer); resolve(); });
      connect();
    }).then(function () {
      if (store.visitor_token && !stopped) return store.visitor_token;
      throw new Error(stopped ? "calls are not available" : "cannot reach the service – please try again");
    });
  }

  function iceGathered(pc) {
    return new Promise(function (resolve) {
      if (pc.iceGatheringState === "complete") { resolve(); return; }
      var timer = setTimeout(done, ICE_GATHER_MS);
      function check() { if (pc.iceGatheringState === "complete") done(); }
      function done() {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  function micError(err) {
    var name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError") return "microphone access was blocked";
    if (name === "NotFoundError" || name === "OverconstrainedError") return "no microphone found";
    if (name === "NotReadableError") return "the microphone is in use by another application";
    return "cannot open the microphone";
  }

  function offerError(status, detail) {
    if (status === 429) return detail || "all lines are busy – please try again later";
    if (status === 404) return "calls are not available";
    if (status === 401) return "your session expired – please reload the page";
    return detail || "could not connect the call (" + status + ")";
  }

  function stopTracks(stream) {
    if (!stream) return;
    stream.getTracks().forEach(function (t) { try { t.stop(); } catch (e) { /* ignore */ } });
  }

  function onPeerState(seq, pc) {
    if (seq !== callSeq) return;
    var state = pc.connectionState;
    clearTimeout(activeCall.dropTimer);
    activeCall.dropTimer = null;
    if (state === "connected") {
      setCallState("connected");
    } else if (state === "disconnected") {
      activeCall.dropTimer = setTimeout(function () { if (seq === callSeq) endCall(null); }, CALL_DROP_GRACE_MS);
    } else if (state === "failed" || state === "closed") {
      endCall(activeCall.state === "connected" ? null : "the connection could not be established");
    }
  }

  function onChannelMessage(seq, ev) {
    if (seq !== callSeq) return;
    var m = null;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    // The hub's SmallWebRTC says "peerLeft" when it ends the call (e.g. the menu said goodbye).
    if (m && m.type === "signalling" && m.message && m.message.type === "peerLeft") endCall(null);
  }

  async function placeCall(seq) {
    var token = await visitorToken();
    if (seq !== callSeq) return;
    var mic;
    try {
      mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (err) {
      throw new Error(micError(err));
    }
    if (seq !== callSeq) { stopTracks(mic); return; }
    activeCall.mic = mic;
    var pc = new RTCPeerConnection();
    activeCall.pc = pc;
    var channel = pc.createDataChannel("hub");
    channel.onmessage = function (ev) { onChannelMessage(seq, ev); };
    activeCall.channel = channel;
    mic.getAudioTracks().forEach(function (track) { pc.addTrack(track, mic); });
    pc.ontrack = function (ev) {
      if (seq !== callSeq || ev.track.kind !== "audio") return;
      ui.callAudio.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
      var played = ui.callAudio.play();
      if (played && played.catch) played.catch(function () { /* autoplay refused: the element retries on gesture */ });
    };
    pc.onconnectionstatechange = function () { onPeerState(seq, pc); };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc);
    if (seq !== callSeq) return;
    var response;
    try {
      response = await fetch(offerUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "omit",
        body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type,
          visitor_token: token, contact_id: store.contact_id }),
      });
    } catch (err) {
      throw new Error("cannot reach the service – please try again");
    }
    var data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok || !data || typeof data.sdp !== "string") {
      throw new Error(offerError(response.status, data && typeof data.detail === "string" ? data.detail : null));
    }
    if (seq !== callSeq) return;
    activeCall.pc_id = data.pc_id || null;
    activeCall.contact_id = data.contact_id || null;
    await pc.setRemoteDescription({ type: data.type, sdp: data.sdp });
  }

  function startCall() {
    if (activeCall.state === "calling" || activeCall.state === "connected") return Promise.resolve(callState());
    callSeq += 1;
    var seq = callSeq;
    activeCall = newCall("calling");
    if (ui.panel && ui.panel.hidden) open();
    renderCall();
    if (!window.RTCPeerConnection || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      endCall("this browser cannot place calls");
      return Promise.resolve(callState());
    }
    return placeCall(seq).catch(function (err) {
      if (seq === callSeq) endCall((err && err.message) || "the call could not be placed");
    }).then(callState);
  }

  function endCall(error) {
    callSeq += 1;
    var c = activeCall;
    clearTimeout(c.dropTimer);
    c.dropTimer = null;
    if (c.channel) { try { c.channel.close(); } catch (e) { /* ignore */ } }
    if (c.pc) { try { c.pc.close(); } catch (e) { /* ignore */ } }
    stopTracks(c.mic);
    c.pc = null;
    c.mic = null;
    c.channel = null;
    if (ui.callAudio) ui.callAudio.srcObject = null;
    c.error = error || null;
    setCallState("ended");
  }

  function hangup() {
    if (activeCall.state === "calling" || activeCall.state === "connected") endCall(null);
    return callState();
  }

  function callState() {
    var c = activeCall;
    return {
      state: c.state,
      status_text: ui.callBar && !ui.callBar.hidden ? ui.callStatus.textContent : "",
      error: c.error,
      pc_id: c.pc_id,
      contact_id: c.contact_id,
      connection_state: c.pc ? c.pc.connectionState : null,
    };
  }

  // Audio counters of the live call (diagnostics and tests): what was received and sent so far.
  async function callStats() {
    var pc = activeCall.pc;
    var out = { inbound_audio_energy: 0, inbound_audio_level: 0, inbound_samples: 0, inbound_packets: 0,
      outbound_packets: 0 };
    if (!pc) return out;
    var report = await pc.getStats();
    report.forEach(function (s) {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.inbound_audio_energy += s.totalAudioEnergy || 0;
        out.inbound_audio_level = Math.max(out.inbound_audio_level, s.audioLevel || 0);
        out.inbound_samples += s.totalSamplesReceived || 0;
        out.inbound_packets += s.packetsReceived || 0;
      } else if (s.type === "outbound-rtp" && s.kind === "audio") {
        out.outbound_packets += s.packetsSent || 0;
      }
    });
    return out;
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
    window.addEventListener("pagehide", function () { hangup(); });
    window.addEventListener("online", function () {
      if (!ws && !stopped) { backoff = BACKOFF_MIN; clearTimeout(reconnectTimer); reconnectTimer = null; connect(); }
    });
    connect();
  }

  window.HubChat = { open: open, close: hide, send: send, state: state, call: startCall, hangup: hangup,
    callState: callState, callStats: callStats, __loaded: true };

  if (document.body) start();
  else document.addEventListener("DOMContentLoaded", start);
})();
