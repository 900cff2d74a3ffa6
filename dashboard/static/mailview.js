/* The agent desk's email view: for an email contact the chat transcript is replaced by the mail
 * thread of GET /api/contacts/{id}/email (channels/email/api.py): each mail with subject, from,
 * to and date, the text with quoted parts collapsed, the HTML part on demand in a sandboxed
 * iframe (sandbox="" = no scripts, no forms, a unique origin; a CSP in the document also blocks
 * remote images so tracking pixels stay silent), attachments with their size and a download
 * link, and the delivery state of our replies. It also shows the reply's subject ("Re: ...").
 * Follows the desk's selection through window.AgentDesk.state() like script.js; new messages
 * arrive as "desk-event" frames. All data goes into the page through textContent / attributes.
 */
(function () {
  "use strict";

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  var REFRESH_MS = 5000;  // delivery states (queued -> sent) are not pushed: look again now and then
  var HTML_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:";

  var box = document.getElementById("email-thread");
  var transcript = document.getElementById("transcript");
  var subjectLine = document.getElementById("reply-subject");
  var contactId = null;     // the email contact shown
  var loadToken = 0;
  var nodes = new Map();    // mail id -> article
  var reloadTimer = null;

  function deskState() { return window.AgentDesk && window.AgentDesk.state ? window.AgentDesk.state() : null; }

  function fmtDate(iso) {
    var d = new Date(iso);
    if (!iso || isNaN(d.getTime())) return iso || "";
    return d.toLocaleString([], { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function fmtSize(bytes) {
    var n = Number(bytes) || 0;
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KB";
    return (n / (1024 * 1024)).toFixed(1) + " MB";
  }

  function address(addr, name) { return name ? name + " <" + addr + ">" : addr; }

  function field(dl, label, cls, value) {
    dl.appendChild(el("dt", null, label));
    dl.appendChild(el("dd", cls, value));
  }

  function htmlFrame(markup) {
    var frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "");          // set before the content: nothing in it may run
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.className = "mail-html-frame";
    frame.title = "Formatted mail";
    frame.srcdoc = '<meta http-equiv="Content-Security-Policy" content="' + HTML_CSP + '">' + markup;
    return frame;
  }

  function buildBody(mail) {
    var body = el("div", "mail-body");
    (mail.blocks || []).forEach(function (b) {
      if (!b.quoted) { body.appendChild(el("div", "mail-text", b.text)); return; }
      var details = el("details", "mail-quoted");
      details.appendChild(el("summary", null, "Quoted text"));
      details.appendChild(el("div", "mail-quoted-text", b.text));
      body.appendChild(details);
    });
    if (!body.firstChild) body.appendChild(el("div", "mail-text muted", "(no text)"));
    return body;
  }

  function buildHtml(mail) {
    var wrap = el("div", "mail-html");
    var toggle = el("button", "btn btn-small mail-html-toggle", "Show formatted");
    toggle.type = "button";
    toggle.setAttribute("aria-expanded", "false");
    var frame = null;
    toggle.addEventListener("click", function () {
      if (!frame) { frame = htmlFrame(mail.html); wrap.appendChild(frame); }
      else frame.hidden = !frame.hidden;
      var open = !frame.hidden;
      toggle.textContent = open ? "Hide formatted" : "Show formatted";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
    wrap.appendChild(toggle);
    return wrap;
  }

  function buildAttachments(mail) {
    var list = el("ul", "mail-attachments");
    (mail.attachments || []).forEach(function (a) {
      var item = el("li", "mail-attachment-item");
      var link = el("a", "mail-attachment", a.filename);
      link.href = a.url;
      link.setAttribute("download", a.filename);
      link.title = a.content_type;
      item.appendChild(link);
      item.appendChild(el("span", "mail-attachment-size", fmtSize(a.size)));
      list.appendChild(item);
    });
    (mail.refused_attachments || []).forEach(function (r) {
      list.appendChild(el("li", "mail-attachment-refused",
        (r.filename || "attachment") + " (" + fmtSize(r.size) + ") not kept: " + (r.reason || "too large")));
    });
    return list.firstChild ? list : null;
  }

  function deliveryLabel(mail) {
    var labels = { pending: "not queued yet", queued: "queued", sending: "sending", sent: "sent",
      delivered: "delivered", failed: "failed", undelivered: "undelivered" };
    return labels[mail.delivery] || String(mail.delivery || "");
  }

  function setDelivery(node, mail) {
    var chip = node.querySelector(".mail-delivery");
    if (!chip || mail.direction !== "out") return;
    chip.textContent = deliveryLabel(mail);
    chip.className = "chip mail-delivery delivery-" + (mail.delivery || "pending");
    chip.title = mail.error || "";
  }

  function buildMail(mail) {
    if (mail.direction === "system") {
      var note = el("div", "mail-system", mail.text);
      note.setAttribute("data-id", mail.id);
      return note;
    }
    var node = el("article", "mail mail-" + mail.direction + " mail-author-" + mail.author);
    node.setAttribute("data-id", mail.id);
    node.setAttribute("data-seq", String(mail.seq));
    var head = el("header", "mail-head");
    var top = el("div", "mail-top");
    top.appendChild(el("div", "mail-subject", mail.subject || "(no subject)"));
    if (mail.direction === "out") top.appendChild(el("span", "chip mail-delivery"));
    head.appendChild(top);
    var dl = el("dl", "mail-fields");
    field(dl, "From", "mail-from", address(mail.from, mail.from_name));
    field(dl, "To", "mail-to", (mail.to || []).join(", "));
    field(dl, "Date", "mail-date", fmtDate(mail.date));
    head.appendChild(dl);
    node.appendChild(head);
    node.appendChild(buildBody(mail));
    if (mail.html) node.appendChild(buildHtml(mail));
    var files = buildAttachments(mail);
    if (files) node.appendChild(files);
    if (mail.note) node.appendChild(el("div", "mail-note", mail.note));
    setDelivery(node, mail);
    return node;
  }

  function renderPrevious(previous) {
    var banner = box.querySelector(".mail-previous");
    if (!previous) { if (banner) banner.remove(); return; }
    if (banner) return;
    var parts = ["Follow-up of an earlier thread"];
    if (previous.subject) parts.push("“" + previous.subject + "”");
    var meta = [previous.closed_at && "closed " + fmtDate(previous.closed_at),
      previous.agent_name && "by " + previous.agent_name, previous.disposition].filter(Boolean).join(", ");
    banner = el("div", "mail-previous", parts.join(" ") + (meta ? " (" + meta + ")" : ""));
    banner.setAttribute("data-contact-id", previous.id);
    banner.title = "The customer answered a conversation that was already closed; see History.";
    box.insertBefore(banner, box.firstChild);
  }

  function render(thread) {
    var empty = box.querySelector(".empty-note");
    if (empty) empty.remove();
    renderPrevious(thread.previous_contact);
    var stick = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    var added = false;
    (thread.mails || []).forEach(function (mail) {
      var node = nodes.get(mail.id);
      if (node) { setDelivery(node, mail); return; }
      node = buildMail(mail);
      nodes.set(mail.id, node);
      box.appendChild(node);
      added = true;
    });
    if (!nodes.size) box.appendChild(el("div", "empty-note", "No mail yet."));
    if (added && stick) box.scrollTop = box.scrollHeight;
    subjectLine.textContent = "Subject: " + (thread.reply_subject || "");
    subjectLine.hidden = false;
  }

  async function load() {
    var id = contactId;
    var token = ++loadToken;
    if (!id) return;
    var thread;
    try {
      thread = await api("GET", "/api/contacts/" + encodeURIComponent(id) + "/email");
    } catch (e) {
      if (token !== loadToken || id !== contactId) return;
      if (!nodes.size) { clear(box); box.appendChild(el("div", "empty-note", "Could not load the mails: " + e.message)); }
      return;
    }
    if (token !== loadToken || id !== contactId || !thread) return;
    render(thread);
  }

  function show(id) {
    contactId = id;
    nodes = new Map();
    clear(box);
    box.appendChild(el("div", "empty-note", "Loading mail…"));
    box.hidden = false;
    transcript.hidden = true;
    load();
  }

  function hide() {
    contactId = null;
    loadToken++;
    nodes = new Map();
    clear(box);
    box.hidden = true;
    transcript.hidden = false;
    subjectLine.hidden = true;
    subjectLine.textContent = "";
  }

  function poll() {
    var state = deskState();
    var wanted = state && state.selected && state.channel === "email" ? state.selected : null;
    if (wanted === contactId) return;
    if (wanted) show(wanted);
    else hide();
  }

  // a new message in the shown thread (the customer's mail or our reply): fetch the thread again
  window.addEventListener("desk-event", function (ev) {
    var f = ev.detail || {};
    if (f.type !== "message" || !f.message || f.message.contact_id !== contactId) return;
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 150);
  });

  setInterval(poll, 300);
  setInterval(function () { if (contactId) load(); }, REFRESH_MS);
  poll();

  window.HubMailView = { reload: load };
})();
