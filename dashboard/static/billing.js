/* The /billing page: the caller's balance, the tenants below with their balances and a
 * top-up form, a statement (JSON view and Excel download) with its top-ups, charges by
 * prefix and latest records, and the rate groups the tenant owns or is rated on.
 * Data: /api/billing/* (dashboard/billing_api.py, docs/admin.md "Billing"). Plain ES2020;
 * data goes in through textContent.
 */
(function () {
  "use strict";

  var el = HubDesk.el, clear = HubDesk.clear, api = HubDesk.api;
  function $(id) { return document.getElementById(id); }

  var me = null;
  var accounts = null;
  var currentGroup = null;

  function showError(text) { $("bl-error").textContent = text || ""; $("bl-error").hidden = !text; }
  function status(text) { $("bl-status").textContent = text || ""; }

  function isoDay(d) {
    var m = d.getMonth() + 1, day = d.getDate();
    return d.getFullYear() + "-" + (m < 10 ? "0" : "") + m + "-" + (day < 10 ? "0" : "") + day;
  }
  function when(v) { return v ? new Date(v).toLocaleString() : "–"; }
  function money(v, currency) { return v == null ? "–" : v + (currency ? " " + currency : ""); }

  function row(cells, numeric) {
    var tr = el("tr");
    cells.forEach(function (c, i) {
      var td = el("td", numeric && numeric.indexOf(i) >= 0 ? "num" : "", c == null ? "–" : c);
      tr.appendChild(td);
    });
    return tr;
  }

  function stateText(acc) {
    if (!acc.billed) return "not billed";
    return acc.stopped ? "outbound stopped" : "active";
  }

  async function loadAccounts() {
    accounts = await api("GET", "/api/billing/accounts");
    var own = accounts.own;
    $("bl-own-balance").textContent = own.billed ? money(own.balance, own.currency) : "not billed";
    $("bl-own-stop").textContent = own.billed ? money(own.stop_below, own.currency) : "–";
    $("bl-own-state").textContent = stateText(own);
    $("bl-own-state").className = own.stopped ? "bl-stopped" : "";
    var body = $("bl-below");
    clear(body);
    var topupSelect = $("bl-topup-tenant"), stmtSelect = $("bl-statement-tenant");
    var keepTopup = topupSelect.value, keepStmt = stmtSelect.value;
    clear(topupSelect);
    clear(stmtSelect);
    stmtSelect.appendChild(new Option(own.tenant_name || "Your tenant", own.tenant_id));
    accounts.below.forEach(function (acc) {
      var tr = row([
        acc.tenant_name, acc.tenant_level, acc.billed ? money(acc.balance, acc.currency) : "–",
        acc.billed ? acc.stop_below : "–", acc.billed ? acc.markup_pct + " %" : "–", stateText(acc),
      ], [2, 3, 4]);
      tr.dataset.tenant = acc.tenant_id;
      if (acc.stopped) tr.children[5].className = "bl-stopped";
      var pick = el("button", "btn btn-small", "Statement");
      pick.type = "button";
      pick.addEventListener("click", function () { stmtSelect.value = acc.tenant_id; loadStatement(); });
      var td = el("td");
      td.appendChild(pick);
      tr.appendChild(td);
      body.appendChild(tr);
      topupSelect.appendChild(new Option(acc.tenant_name, acc.tenant_id));
      stmtSelect.appendChild(new Option(acc.tenant_name, acc.tenant_id));
    });
    if (keepTopup) topupSelect.value = keepTopup;
    if (keepStmt) stmtSelect.value = keepStmt;
    $("bl-below-empty").hidden = accounts.below.length > 0;
    $("bl-topup-form").hidden = accounts.below.length === 0;
  }

  function period() {
    return "from=" + encodeURIComponent($("bl-from").value) + "&to=" + encodeURIComponent($("bl-to").value);
  }

  async function loadStatement() {
    var tenant = $("bl-statement-tenant").value || me.tenant_id;
    var doc = await api("GET", "/api/billing/statements/" + encodeURIComponent(tenant) + "?" + period());
    $("bl-xlsx").href = "/api/billing/statements/" + encodeURIComponent(tenant) + "/xlsx?" + period();
    $("bl-opening").textContent = money(doc.opening_balance, doc.currency);
    $("bl-topups-total").textContent = money(doc.top_ups_total, doc.currency);
    $("bl-charges-total").textContent = money(doc.charges_total, doc.currency);
    $("bl-closing").textContent = money(doc.closing_balance, doc.currency);
    var tops = $("bl-topups");
    clear(tops);
    doc.top_ups.forEach(function (t) { tops.appendChild(row([when(t.at), t.amount, t.note], [1])); });
    if (!doc.top_ups.length) tops.appendChild(row(["No top-ups in this period", "", ""]));
    var prefixes = $("bl-prefixes");
    clear(prefixes);
    doc.charges_by_prefix.forEach(function (p) {
      prefixes.appendChild(row([p.kind, p.prefix || "unrated", p.description, p.unit_price, p.count,
        p.billed_seconds, p.segments, p.amount], [3, 4, 5, 6, 7]));
    });
    var records = await api("GET", "/api/billing/records?tenant_id=" + encodeURIComponent(tenant) + "&limit=50&" + period());
    var rbody = $("bl-records");
    clear(rbody);
    records.records.forEach(function (r) {
      rbody.appendChild(row([when(r.at), r.kind, r.number, r.kind === "sms" ? r.segments + " seg" : r.seconds,
        r.kind === "sms" ? "–" : r.billed_seconds, r.unit_price, r.amount], [3, 4, 5, 6]));
    });
  }

  async function loadGroups() {
    var groups = await api("GET", "/api/billing/groups");
    var body = $("bl-groups");
    clear(body);
    groups.owned.concat(groups.rated_on).forEach(function (g) {
      var tr = row([g.name + (g.inherited ? " (your rates)" : ""), g.kind, g.currency, g.rates == null ? "–" : g.rates]);
      var open = el("button", "btn btn-small", "Rates");
      open.type = "button";
      open.addEventListener("click", function () { openGroup(g).catch(function (e) { showError(e.message); }); });
      var td = el("td");
      td.appendChild(open);
      tr.appendChild(td);
      body.appendChild(tr);
    });
  }

  async function openGroup(g) {
    currentGroup = g;
    var data = await api("GET", "/api/billing/groups/" + encodeURIComponent(g.id) + "/rates");
    $("bl-rates-box").hidden = false;
    $("bl-rates-heading").textContent = "Rates of " + g.name + (data.markups_pct.length ? " (with your markups)" : "");
    $("bl-rate-form").hidden = !!g.inherited;
    $("bl-import-form").querySelector("label").hidden = !!g.inherited;
    $("bl-import-form").querySelector("button").hidden = !!g.inherited;
    $("bl-rates-export").href = "/api/billing/groups/" + encodeURIComponent(g.id) + "/rates/export?format=xlsx";
    var body = $("bl-rates");
    clear(body);
    data.rates.forEach(function (r) {
      body.appendChild(row([r.prefix, r.description, r.price, r.increment, r.minimum_s, r.connection], [2, 4, 5]));
    });
  }

  function guard(fn) {
    return function (ev) {
      if (ev) ev.preventDefault();
      showError("");
      fn().catch(function (e) { showError(e.message); });
    };
  }

  $("bl-topup-form").addEventListener("submit", guard(async function () {
    var tenant = $("bl-topup-tenant").value;
    var result = await api("POST", "/api/billing/accounts/" + encodeURIComponent(tenant) + "/top-ups", {
      amount: $("bl-topup-amount").value.trim(), note: $("bl-topup-note").value.trim(),
    });
    status("Topped up " + result.top_up.amount + ": balance now " + result.account.balance);
    $("bl-topup-amount").value = "";
    $("bl-topup-note").value = "";
    await loadAccounts();
    $("bl-statement-tenant").value = tenant;
    await loadStatement();
  }));

  $("bl-statement-form").addEventListener("submit", guard(loadStatement));

  $("bl-group-form").addEventListener("submit", guard(async function () {
    await api("POST", "/api/billing/groups", {
      name: $("bl-group-name").value.trim(), kind: $("bl-group-kind").value,
      currency: $("bl-group-currency").value.trim().toUpperCase(),
    });
    $("bl-group-name").value = "";
    await loadGroups();
  }));

  $("bl-rate-form").addEventListener("submit", guard(async function () {
    if (!currentGroup) return;
    await api("PUT", "/api/billing/groups/" + encodeURIComponent(currentGroup.id) + "/rates", {
      prefix: $("bl-rate-prefix").value.trim(), description: $("bl-rate-description").value.trim(),
      price: $("bl-rate-price").value.trim(), increment: $("bl-rate-increment").value.trim(),
      minimum_s: Number($("bl-rate-minimum").value || 0), connection: $("bl-rate-connection").value.trim() || "0",
    });
    await openGroup(currentGroup);
    await loadGroups();
  }));

  $("bl-import-form").addEventListener("submit", guard(async function () {
    if (!currentGroup) return;
    var file = $("bl-import-file").files[0];
    if (!file) return;
    var form = new FormData();
    form.append("file", file);
    var headers = {};
    var csrf = document.cookie.match(/(?:^|; )hub_csrf=([^;]+)/);
    if (csrf) headers["X-CSRF-Token"] = decodeURIComponent(csrf[1]);
    var resp = await fetch("/api/billing/groups/" + encodeURIComponent(currentGroup.id) + "/rates/import",
      { method: "POST", body: form, credentials: "same-origin", headers: headers });
    var data = await resp.json().catch(function () { return {}; });
    if (!resp.ok) throw new HubDesk.ApiError(resp.status, HubDesk.detailText(data.detail) || "Import failed");
    status("Imported " + data.stored + " rates; " + data.invalid + " invalid rows" +
      (data.errors.length ? " (first: line " + data.errors[0].line + ": " + data.errors[0].error + ")" : ""));
    await openGroup(currentGroup);
    await loadGroups();
  }));

  async function start() {
    me = await api("GET", "/api/me");
    $("user-name").textContent = me.name || me.email || "";
    $("tenant-name").textContent = me.tenant_name || me.tenant_slug || "";
    var now = new Date();
    $("bl-from").value = isoDay(new Date(now.getFullYear(), now.getMonth(), 1));
    $("bl-to").value = isoDay(now);
    await loadAccounts();
    await loadStatement();
    await loadGroups();
    document.body.dataset.ready = "1";
  }

  start().catch(function (e) { showError(e.message); });
})();
