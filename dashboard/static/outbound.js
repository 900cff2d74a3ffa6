/* The agent's outbound panel: preview campaigns (take the next record, see it, dial it —
   confirming a grey-listed number —, or hand it back) and the result of the record just
   called (a disposition, a note, a callback booked to me). */
(function () {
  "use strict";
  var D = window.HubDesk;
  var el = D.el, clear = D.clear, api = D.api;
  var panel = document.getElementById("outbound-panel");
  var root = document.getElementById("outbound");
  var campaigns = [];
  var current = null; // {campaign, record}
  var codes = [];

  function toast(text) {
    var node = document.getElementById("toast");
    if (!node) return;
    node.textContent = text;
    node.hidden = false;
    setTimeout(function () { node.hidden = true; }, 4000);
  }

  function button(label, onClick, cls) {
    var b = el("button", "btn btn-small" + (cls ? " " + cls : ""), label);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }

  async function load() {
    try {
      campaigns = await api("GET", "/api/campaigns/mine");
      codes = await api("GET", "/api/campaigns/dispositions");
    } catch (e) { campaigns = []; }
    panel.hidden = campaigns.length === 0 && !current;
    if (!current) render();  // a record being worked on keeps its half-typed result
  }

  async function next(campaign) {
    try {
      var got = await api("GET", "/api/campaigns/" + campaign.id + "/next");
      if (!got.target) { toast("No record to call in " + campaign.name + " right now"); return; }
      current = { campaign: campaign, record: got, dialled: false };
    } catch (e) { toast(e.message); }
    render();
  }

  async function dial(confirm) {
    var c = current;
    try {
      await api("POST", "/api/campaigns/" + c.campaign.id + "/targets/" + c.record.target.id + "/dial", { confirm: !!confirm });
      c.dialled = true;
      toast("Calling " + c.record.target.number + "…");
    } catch (e) { toast(e.message); }
    render();
  }

  async function release() {
    var c = current;
    try { await api("POST", "/api/campaigns/" + c.campaign.id + "/targets/" + c.record.target.id + "/release"); }
    catch (e) { toast(e.message); }
    current = null;
    render();
  }

  async function result(code, note, callbackAt) {
    var c = current;
    var body = { disposition: code, note: note };
    if (callbackAt) body.callback_at = new Date(callbackAt).toISOString();
    try {
      await api("POST", "/api/campaigns/" + c.campaign.id + "/targets/" + c.record.target.id + "/result", body);
      toast(callbackAt ? "Callback booked" : "Result saved");
      current = null;
    } catch (e) { toast(e.message); }
    render();
  }

  function render() {
    clear(root);
    if (!current) {
      campaigns.forEach(function (c) {
        if (c.type !== "preview") return;
        var row = el("div", "outbound-campaign");
        row.appendChild(el("span", null, c.name));
        row.appendChild(button("Next record", function () { next(c); }, "btn-primary"));
        root.appendChild(row);
      });
      return;
    }
    var r = current.record;
    var card = el("div", "outbound-record");
    card.appendChild(el("div", "outbound-number", r.target.number + (r.target.name ? " — " + r.target.name : "")));
    Object.keys(r.target.fields || {}).forEach(function (k) {
      card.appendChild(el("div", "outbound-field", k + ": " + r.target.fields[k]));
    });
    if (r.target.last_outcome) card.appendChild(el("div", "outbound-field", "Last: " + r.target.last_outcome));
    if (!r.may_dial) {
      card.appendChild(el("div", "outbound-warning", r.needs_confirmation
        ? "This number is on the grey list: confirm before dialling."
        : "Not now: " + r.reason + (r.retry_at ? " (from " + new Date(r.retry_at).toLocaleString() + ")" : "")));
    }
    root.appendChild(card);
    var actions = el("div", "outbound-actions");
    if (!current.dialled) {
      if (r.may_dial) actions.appendChild(button("Dial", function () { dial(false); }, "btn-primary"));
      if (r.needs_confirmation) actions.appendChild(button("Confirm and dial", function () { dial(true); }, "btn-primary"));
      actions.appendChild(button("Hand back", release));
    }
    root.appendChild(actions);
    var form = el("div", "outbound-result");
    var select = el("select");
    codes.forEach(function (d) { var o = el("option", null, d.label); o.value = d.code; select.appendChild(o); });
    var note = el("input");
    note.placeholder = "Note";
    var when = el("input");
    when.type = "datetime-local";
    when.title = "Book a callback (to me) at";
    form.appendChild(select);
    form.appendChild(note);
    form.appendChild(when);
    form.appendChild(button("Save result", function () { result(select.value, note.value, when.value); }));
    root.appendChild(form);
  }

  load();
  setInterval(load, 30000);
})();
