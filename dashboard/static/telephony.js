/* The telephony page (/telephony, dashboard/telephony_api.py): the number inventory with the flow
 * answering each number (map a number to a flow; allocate / release numbers for tenants below),
 * the tenant's own Twilio account (the token is write-only), SIP trunks and outbound routes.
 * Holders of flows.manage only see the numbers; the other sections need telephony.manage.
 * Plain ES2020; all data goes into the page through textContent / value / attributes.
 */
(function () {
  "use strict";

  var D = window.HubDesk, C = window.HubCompliance;
  var el = D.el, clear = D.clear, api = D.api, say = C.say;
  var BASE = "/api/admin/telephony";
  var CODECS = ["PCMU", "PCMA", "G722", "G729", "opus"];

  function $(id) { return document.getElementById(id); }

  var showError = C.errorBox($("tel-error"));
  var failed = C.failed;
  var trunks = [];

  function option(value, text, selected) {
    var node = el("option", null, text);
    node.value = value;
    if (selected) node.selected = true;
    return node;
  }

  // ---------------------------------------------------------------- numbers
  function numberRow(n, flows, canAllocate) {
    var tr = el("tr", "tel-number");
    tr.dataset.number = n.number;
    tr.appendChild(el("td", "tel-number-value", n.number));
    tr.appendChild(el("td", null, n.own ? "you" : n.tenant_name));
    tr.appendChild(el("td", null, n.sms ? "yes" : "no"));
    var flowCell = el("td");
    if (n.own) {
      var pick = el("select", "tel-flow-select");
      pick.setAttribute("aria-label", "Flow for " + n.number);
      pick.appendChild(option("", n.flow ? "" : "– no flow –", !n.flow));
      flows.forEach(function (f) {
        pick.appendChild(option(f.id, (f.name || "flow") + " (now " + f.number + ")", n.flow && n.flow.id === f.id));
      });
      pick.addEventListener("change", async function () {
        if (!pick.value) return;
        try {
          var done = await api("PUT", BASE + "/numbers/" + encodeURIComponent(n.number) + "/flow", { flow_id: pick.value });
          say($("tel-numbers-status"), n.number + " now answers flow " + (done.flow.name || done.flow.id));
          await loadNumbers();
        } catch (e) { failed($("tel-numbers-status"))(e); }
      });
      flowCell.appendChild(pick);
    } else {
      flowCell.textContent = "–";
    }
    tr.appendChild(flowCell);
    var actions = el("td", "tel-actions");
    if (canAllocate && !n.own) {
      var back = C.button("Release", "btn-small btn-danger tel-release");
      back.addEventListener("click", async function () {
        back.disabled = true;
        try {
          await api("DELETE", BASE + "/numbers/" + encodeURIComponent(n.number));
          say($("tel-numbers-status"), n.number + " released");
          await loadNumbers();
        } catch (e) { back.disabled = false; failed($("tel-numbers-status"))(e); }
      });
      actions.appendChild(back);
    }
    tr.appendChild(actions);
    return tr;
  }

  async function loadNumbers() {
    var data = await api("GET", BASE + "/numbers");
    var body = $("tel-number-rows");
    clear(body);
    data.numbers.forEach(function (n) { body.appendChild(numberRow(n, data.flows, data.can_allocate)); });
    $("tel-numbers-empty").hidden = data.numbers.length > 0;
    var form = $("tel-allocate");
    form.hidden = !(data.can_allocate && data.tenants.length);
    var pick = $("tel-alloc-tenant"), current = pick.value;
    clear(pick);
    data.tenants.forEach(function (t) { pick.appendChild(option(t.id, t.name + " (" + t.level + ")", t.id === current)); });
  }

  $("tel-allocate").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var status = $("tel-alloc-status");
    try {
      var done = await api("POST", BASE + "/numbers", {
        number: $("tel-alloc-number").value.trim(), tenant_id: $("tel-alloc-tenant").value, sms: $("tel-alloc-sms").checked,
      });
      say(status, done.number + " allocated");
      $("tel-alloc-number").value = "";
      await loadNumbers();
    } catch (e) { failed(status)(e); }
  });

  // ---------------------------------------------------------------- Twilio
  function showTwilio(acc) {
    var state = $("tel-twilio-state");
    if (acc.configured) {
      state.textContent = "Own account " + acc.account_sid + (acc.auth_token_set ? ", token …" + (acc.auth_token_last4 || "set") : "");
      $("tel-twilio-sid").value = acc.account_sid;
    } else {
      state.textContent = acc.hub_account ? "Using the hub's Twilio account." : "No Twilio account: calls and SMS cannot be sent.";
      $("tel-twilio-sid").value = "";
    }
    $("tel-twilio-token").value = "";
    $("tel-twilio-clear").hidden = !acc.configured;
  }

  $("tel-twilio").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var status = $("tel-twilio-status");
    var body = { account_sid: $("tel-twilio-sid").value.trim() };
    var token = $("tel-twilio-token").value.trim();
    if (token) body.auth_token = token;
    try {
      showTwilio(await api("PUT", BASE + "/twilio", body));
      say(status, "Saved");
    } catch (e) { failed(status)(e); }
  });

  $("tel-twilio-clear").addEventListener("click", async function () {
    var status = $("tel-twilio-status");
    try {
      showTwilio(await api("DELETE", BASE + "/twilio"));
      say(status, "Using the hub's account");
    } catch (e) { failed(status)(e); }
  });

  // ---------------------------------------------------------------- trunks
  function deleteButton(path, label, statusNode, reload) {
    var btn = C.button("Delete", "btn-small btn-danger");
    btn.setAttribute("aria-label", "Delete " + label);
    btn.addEventListener("click", async function () {
      btn.disabled = true;
      try {
        await api("DELETE", path);
        say(statusNode, label + " deleted");
        await reload();
      } catch (e) { btn.disabled = false; failed(statusNode)(e); }
    });
    return btn;
  }

  async function loadTrunks() {
    trunks = await api("GET", BASE + "/trunks");
    var body = $("tel-trunk-rows");
    clear(body);
    trunks.forEach(function (t) {
      var tr = el("tr", "tel-trunk");
      tr.dataset.id = t.id;
      tr.appendChild(el("td", "tel-trunk-name", t.name));
      tr.appendChild(el("td", null, t.host + ":" + t.port));
      tr.appendChild(el("td", null, t.transport.toUpperCase()));
      tr.appendChild(el("td", null, t.codecs.join(", ")));
      tr.appendChild(el("td", null, (t.username || "–") + (t.password_set ? " (password set)" : "")));
      tr.appendChild(el("td", null, t.register ? "yes" : "no"));
      var actions = el("td", "tel-actions");
      actions.appendChild(deleteButton(BASE + "/trunks/" + encodeURIComponent(t.id), t.name, $("tel-trunks-status"), loadTrunks));
      tr.appendChild(actions);
      body.appendChild(tr);
    });
    $("tel-trunks-empty").hidden = trunks.length > 0;
    var pick = $("tel-route-trunk"), current = pick.value;
    clear(pick);
    trunks.forEach(function (t) { pick.appendChild(option(t.id, t.name, t.id === current)); });
  }

  (function codecBoxes() {
    var box = $("tel-trunk-codecs");
    CODECS.forEach(function (c) {
      var label = el("label", "rt-check");
      var input = el("input", "tel-codec");
      input.type = "checkbox";
      input.value = c;
      input.checked = c === "PCMU" || c === "PCMA";
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + c));
      box.appendChild(label);
    });
  })();

  $("tel-trunk-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var status = $("tel-trunk-status");
    var codecs = Array.prototype.filter.call(document.querySelectorAll(".tel-codec"), function (i) { return i.checked; })
      .map(function (i) { return i.value; });
    var body = {
      name: $("tel-trunk-name").value.trim(),
      host: $("tel-trunk-host").value.trim(),
      port: parseInt($("tel-trunk-port").value, 10) || 5060,
      transport: $("tel-trunk-transport").value,
      codecs: codecs,
      username: $("tel-trunk-user").value.trim(),
      register: $("tel-trunk-register").checked,
      caller_id_prefix: $("tel-trunk-prefix").value.trim(),
    };
    if ($("tel-trunk-password").value) body.password = $("tel-trunk-password").value;
    try {
      var t = await api("POST", BASE + "/trunks", body);
      say(status, "Trunk " + t.name + " added");
      ["tel-trunk-name", "tel-trunk-host", "tel-trunk-user", "tel-trunk-password", "tel-trunk-prefix"].forEach(function (id) {
        $(id).value = "";
      });
      await loadTrunks();
    } catch (e) { failed(status)(e); }
  });

  // ---------------------------------------------------------------- routes
  async function loadRoutes() {
    var routes = await api("GET", BASE + "/routes");
    var body = $("tel-route-rows");
    clear(body);
    routes.forEach(function (r) {
      var tr = el("tr", "tel-route");
      tr.dataset.id = r.id;
      tr.appendChild(el("td", "tel-route-name", r.name));
      tr.appendChild(el("td", null, r.pattern || "(any)"));
      tr.appendChild(el("td", null, r.trunk_name));
      tr.appendChild(el("td", "num", String(r.strip_digits)));
      tr.appendChild(el("td", null, r.prepend || "–"));
      tr.appendChild(el("td", "num", String(r.priority)));
      var actions = el("td", "tel-actions");
      actions.appendChild(deleteButton(BASE + "/routes/" + encodeURIComponent(r.id), r.name, $("tel-routes-status"), loadRoutes));
      tr.appendChild(actions);
      body.appendChild(tr);
    });
    $("tel-routes-empty").hidden = routes.length > 0;
  }

  $("tel-route-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var status = $("tel-route-status");
    if (!$("tel-route-trunk").value) { say(status, "Add a trunk first.", true); return; }
    try {
      var r = await api("POST", BASE + "/routes", {
        name: $("tel-route-name").value.trim(),
        pattern: $("tel-route-pattern").value.trim(),
        trunk_id: $("tel-route-trunk").value,
        strip_digits: parseInt($("tel-route-strip").value, 10) || 0,
        prepend: $("tel-route-prepend").value.trim(),
        priority: parseInt($("tel-route-priority").value, 10) || 0,
      });
      say(status, "Route " + r.name + " added");
      $("tel-route-name").value = "";
      $("tel-route-pattern").value = "";
      $("tel-route-prepend").value = "";
      await loadRoutes();
    } catch (e) { failed(status)(e); }
  });

  $("tel-route-test").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var out = $("tel-test-result");
    try {
      var found = await api("POST", BASE + "/routes/test", { number: $("tel-test-number").value.trim() });
      say(out, found.route ? "Route " + found.route.name + " via " + found.trunk.name + ", dialling " + found.dialled
        : "No route matches this number.", !found.route);
    } catch (e) { failed(out)(e); }
  });

  // ---------------------------------------------------------------- start
  async function boot() {
    try {
      await C.signedIn();
      await loadNumbers();
    } catch (e) {
      if (e && e.status === 401) return;
      showError(C.message(e));
      return;
    }
    try {
      showTwilio(await api("GET", BASE + "/twilio"));
    } catch (e) {
      if (e && e.status === 403) {  // flows.manage only: numbers, nothing else
        ["tel-twilio-panel", "tel-trunks-panel", "tel-routes-panel"].forEach(function (id) { $(id).hidden = true; });
        return;
      }
      showError(C.message(e));
      return;
    }
    try {
      await loadTrunks();
      await loadRoutes();
    } catch (e) { showError(C.message(e)); }
  }

  boot();
})();
