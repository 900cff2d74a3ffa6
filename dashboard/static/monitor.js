/* Supervisor monitoring on the wallboard: every live call of the tenant with listen, whisper,
   barge-in and release. The audio goes to this page's softphone (softphone.js). */
(function () {
  "use strict";
  var D = window.HubDesk;
  var el = D.el, clear = D.clear, api = D.api;
  var body = document.getElementById("wb-calls");
  var empty = document.getElementById("wb-calls-empty");
  var count = document.getElementById("wb-calls-count");

  function duration(s) {
    var m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }

  function monitorButton(call, mode, label) {
    var b = el("button", "btn btn-small", label);
    b.type = "button";
    b.dataset.mode = mode;
    b.addEventListener("click", async function () {
      try {
        if (mode === "release") await api("POST", "/api/calls/" + call.contact_id + "/release");
        else await window.softphone.monitor(call.contact_id, mode);
      } catch (e) { /* softphone.js shows errors */ }
      load();
    });
    return b;
  }

  async function load() {
    var calls;
    try { calls = await api("GET", "/api/calls/live"); } catch (e) { return; }
    clear(body);
    calls = calls.filter(function (c) { return !c.internal; });
    empty.hidden = calls.length > 0;
    count.textContent = calls.length ? String(calls.length) : "";
    calls.forEach(function (call) {
      var row = el("tr");
      row.dataset.contactId = call.contact_id;
      row.appendChild(el("td", null, call.from_number || call.channel || "caller"));
      row.appendChild(el("td", null, call.agent_name || "—"));
      row.appendChild(el("td", null, call.queue_name || "—"));
      row.appendChild(el("td", "num", duration(call.duration_s)));
      var cell = el("td", "wb-monitor");
      cell.appendChild(monitorButton(call, "listen", "Listen"));
      cell.appendChild(monitorButton(call, "whisper", "Whisper"));
      cell.appendChild(monitorButton(call, "barge", "Barge in"));
      cell.appendChild(monitorButton(call, "release", "Release"));
      row.appendChild(cell);
      body.appendChild(row);
    });
  }

  load();
  setInterval(load, 2000);
})();
