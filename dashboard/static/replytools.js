/* Reply tools of the agent desk, for chat, SMS and email alike: a canned-response picker
 * (dashboard/canned_api.py: the tenant's responses for the contact's channel, filled for the
 * contact's customer by GET /api/canned-responses/{id}/render) and, on SMS contacts, the segment
 * count of the reply as the agent types.
 *
 * The segment rule is ported from channels/sms/segments.py rather than asked of the server: the
 * count must follow every keystroke without a request each time. tests/e2e/test_email_desk_e2e.py
 * checks that this port and the Python rule agree.
 */
(function () {
  "use strict";

  var el = HubDesk.el, api = HubDesk.api;

  // ---- SMS segments: GSM 03.38 basic and extension tables (as in channels/sms/segments.py)
  var GSM7_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var GSM7_EXTENSION = "^{}\\[~]|€\f";  // each costs two septets (escape + character)
  var BASIC = new Set(Array.from(GSM7_BASIC));
  var EXTENSION = new Set(Array.from(GSM7_EXTENSION));
  var MAX_BODY_CHARS = 1600;  // longer replies leave as several messages (split_body)

  // {encoding, units, segments}: 160 septets in one, 153 per part; UCS-2 70 units, 67 per part
  // (UTF-16 code units, which is what a JS string's length counts: an emoji costs two).
  function countSegments(text) {
    var gsm = true, septets = 0;
    for (var ch of text) {
      if (EXTENSION.has(ch)) septets += 2;
      else if (BASIC.has(ch)) septets += 1;
      else { gsm = false; break; }
    }
    var units = gsm ? septets : text.length;
    var single = gsm ? 160 : 70, part = gsm ? 153 : 67;
    var segments = units <= single ? (units ? 1 : 0) : Math.ceil(units / part);
    return { encoding: gsm ? "GSM-7" : "UCS-2", units: units, segments: segments };
  }

  function segmentText(text) {
    var info = countSegments(text);
    var single = info.encoding === "GSM-7" ? 160 : 70, part = info.encoding === "GSM-7" ? 153 : 67;
    var room = info.segments <= 1 ? single : info.segments * part;
    var line = info.segments + " segment" + (info.segments === 1 ? "" : "s") + " · " +
      info.units + "/" + room + " · " + info.encoding;
    if (text.length > MAX_BODY_CHARS) line += " · over " + MAX_BODY_CHARS + " characters: sent as several texts";
    return line;
  }

  // ---- the desk's selection
  var tools = document.getElementById("reply-tools");
  var picker = document.getElementById("canned-picker");
  var counter = document.getElementById("sms-segments");
  var input = document.getElementById("reply-input");
  var contactId = null;
  var channel = null;
  var loadToken = 0;
  var lastCounted = null;

  function deskState() { return window.AgentDesk && window.AgentDesk.state ? window.AgentDesk.state() : null; }

  function resetPicker(note) {
    while (picker.options.length > 1) picker.remove(1);
    picker.options[0].textContent = note || "Canned responses…";
    picker.value = "";
  }

  async function loadCanned() {
    var token = ++loadToken;
    resetPicker("Loading canned responses…");
    picker.disabled = true;
    var list;
    try {
      list = await api("GET", "/api/canned-responses?channel=" + encodeURIComponent(channel || ""));
    } catch (e) {
      if (token === loadToken) resetPicker("Canned responses unavailable");
      return;
    }
    if (token !== loadToken) return;
    resetPicker(list && list.length ? "Canned responses…" : "No canned responses");
    (list || []).forEach(function (c) {
      var opt = el("option", null, c.title);
      opt.value = c.id;
      opt.title = c.body;
      picker.appendChild(opt);
    });
    picker.disabled = !(list && list.length);
  }

  // Puts text where the cursor is (replacing a selection), as if typed.
  function insert(text) {
    var start = input.selectionStart != null ? input.selectionStart : input.value.length;
    var end = input.selectionEnd != null ? input.selectionEnd : start;
    input.value = input.value.slice(0, start) + text + input.value.slice(end);
    var at = start + text.length;
    input.focus();
    input.setSelectionRange(at, at);
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  picker.addEventListener("change", async function () {
    var id = picker.value;
    var forContact = contactId;
    if (!id || !forContact) return;
    picker.disabled = true;
    try {
      var filled = await api("GET", "/api/canned-responses/" + encodeURIComponent(id) + "/render?contact_id=" +
        encodeURIComponent(forContact));
      if (forContact === contactId && filled && typeof filled.text === "string") insert(filled.text);
    } catch (e) {
      if (e.status !== 401 && window.console) console.warn("canned response: " + e.message);
    } finally {
      picker.value = "";
      picker.disabled = false;
    }
  });

  function updateCounter() {
    if (channel !== "sms") { counter.hidden = true; lastCounted = null; return; }
    if (input.value === lastCounted) return;
    lastCounted = input.value;
    counter.textContent = segmentText(input.value);
    counter.classList.toggle("sms-segments-many", countSegments(input.value).segments > 1);
    counter.hidden = false;
  }

  input.addEventListener("input", updateCounter);

  function poll() {
    var state = deskState();
    var id = state && state.selected && state.channel ? state.selected : null;
    var ch = id ? state.channel : null;
    if (id !== contactId || ch !== channel) {
      contactId = id;
      channel = ch;
      lastCounted = null;
      tools.hidden = !id;
      if (id) loadCanned();
    }
    updateCounter();  // the desk clears the box after a send without an input event
  }

  setInterval(poll, 300);
  poll();

  window.HubReplyTools = { countSegments: countSegments, segmentText: segmentText };
})();
