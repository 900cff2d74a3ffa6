/* The do-not-contact page (/dnc, dashboard/dnc_api.py): the tenant's red / black / grey
 * entries with filters and paging, add one number, remove an entry (a second click confirms),
 * import a pasted list or a file onto one list with its report, and record an opt-out.
 * Only admins may remove an opt-out (the API says so too; the button says why it is off).
 * Plain ES2020; all data goes into the page through textContent / value.
 */
(function () {
  "use strict";

  var D = window.HubDesk, C = window.HubCompliance;
  var el = D.el, clear = D.clear, api = D.api, say = C.say;
  var PAGE = 50;
  var CONFIRM_MS = 4000;
  var OPT_OUT_SOURCES = ["agent", "opt_out_key", "sms_stop", "email_unsubscribe"];
  var SOURCE_LABELS = {
    manual: "added by hand", import: "import", agent: "agent (opt-out)",
    opt_out_key: "robot-call key (opt-out)", sms_stop: "SMS STOP (opt-out)",
    email_unsubscribe: "email unsubscribe (opt-out)",
  };

  function $(id) { return document.getElementById(id); }

  var state = { skip: 0, total: 0, isAdmin: false };
  var showError = C.errorBox($("dn-error"));
  var failed = C.failed;

  // ------------------------------------------------------------------ the entries
  function filters() {
    var q = new URLSearchParams();
    if ($("dn-filter-list").value) q.set("list", $("dn-filter-list").value);
    if ($("dn-filter-source").value) q.set("source", $("dn-filter-source").value);
    var number = $("dn-filter-number").value.trim();
    if (number) q.set("number", number);
    if ($("dn-filter-active").checked) q.set("active", "true");
    q.set("skip", String(state.skip));
    q.set("limit", String(PAGE));
    return q;
  }

  function removeButton(entry) {
    var btn = C.button("Remove", "btn-small dn-remove");
    if (OPT_OUT_SOURCES.indexOf(entry.source) >= 0 && !state.isAdmin) {
      btn.disabled = true;
      btn.title = "The customer opted out: only an admin can remove this entry";
      return btn;
    }
    var armed = null;
    btn.addEventListener("click", async function () {
      if (!armed) {  // the first click asks, the second removes
        btn.textContent = "Really remove?";
        btn.classList.add("btn-danger");
        armed = setTimeout(function () {
          armed = null;
          btn.textContent = "Remove";
          btn.classList.remove("btn-danger");
        }, CONFIRM_MS);
        return;
      }
      clearTimeout(armed);
      armed = null;
      btn.disabled = true;
      try {
        await api("DELETE", "/api/dnc/" + encodeURIComponent(entry.id));
        say($("dn-rows-status"), entry.number + " removed from the " + entry.list + " list");
        await load();
      } catch (e) {
        btn.disabled = false;
        failed($("dn-rows-status"))(e);
      }
    });
    return btn;
  }

  function row(entry) {
    var tr = el("tr", "dn-row" + (entry.active ? "" : " dn-expired"));
    tr.dataset.entryId = entry.id;
    tr.appendChild(el("td", "dn-number", entry.number));
    var list = el("td");
    list.appendChild(el("span", "dn-list dn-list-" + entry.list, entry.list));
    tr.appendChild(list);
    tr.appendChild(el("td", "dn-reason", entry.reason || "–"));
    tr.appendChild(el("td", "dn-source", SOURCE_LABELS[entry.source] || entry.source));
    var expires = entry.expires_at ? C.when(entry.expires_at) : "never";
    tr.appendChild(el("td", "dn-expires", entry.active ? expires : "expired " + expires));
    tr.appendChild(el("td", null, entry.created_by_name || entry.created_by || "–"));
    tr.appendChild(el("td", null, C.when(entry.created_at)));
    var cell = el("td");
    cell.appendChild(removeButton(entry));
    tr.appendChild(cell);
    return tr;
  }

  async function load() {
    var page;
    try {
      page = await api("GET", "/api/dnc?" + filters().toString());
    } catch (e) {
      if (e && e.status === 401) return;
      showError(C.message(e));
      return;
    }
    showError(null);
    if (page.entries.length === 0 && state.skip > 0 && page.total > 0) {  // the last one of a page went
      state.skip = Math.max(0, state.skip - PAGE);
      return load();
    }
    state.total = page.total;
    var body = $("dn-rows");
    clear(body);
    page.entries.forEach(function (entry) { body.appendChild(row(entry)); });
    $("dn-empty").hidden = page.entries.length > 0;
    $("dn-count").textContent = page.total
      ? (state.skip + 1) + "–" + (state.skip + page.entries.length) + " of " + page.total
      : "0 entries";
    $("dn-prev").disabled = state.skip === 0;
    $("dn-next").disabled = state.skip + page.entries.length >= page.total;
  }

  $("dn-filters").addEventListener("submit", function (ev) {
    ev.preventDefault();
    state.skip = 0;
    say($("dn-rows-status"), "");
    load();
  });
  $("dn-reset").addEventListener("click", function () {
    $("dn-filters").reset();
    state.skip = 0;
    load();
  });
  ["dn-filter-list", "dn-filter-source", "dn-filter-active"].forEach(function (id) {
    $(id).addEventListener("change", function () { state.skip = 0; load(); });
  });
  $("dn-prev").addEventListener("click", function () { state.skip = Math.max(0, state.skip - PAGE); load(); });
  $("dn-next").addEventListener("click", function () { state.skip += PAGE; load(); });

  // ------------------------------------------------------------------ add one
  $("dn-add").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var status = $("dn-add-status");
    var body = {
      number: $("dn-add-number").value.trim(),
      list: $("dn-add-list").value,
      reason: $("dn-add-reason").value.trim(),
    };
    var expires = C.endOfDay($("dn-add-expires").value);
    if (expires) body.expires_at = expires;
    $("dn-add-go").disabled = true;
    try {
      var entry = await api("POST", "/api/dnc", body);
      say(status, entry.number + " is on the " + entry.list + " list");
      $("dn-add").reset();
      state.skip = 0;
      await load();
    } catch (e) {
      failed(status)(e);
    } finally {
      $("dn-add-go").disabled = false;
    }
  });

  // ------------------------------------------------------------------ import
  function renderReport(r) {
    var root = $("dn-import-report");
    clear(root);
    var figures = el("dl", "hl-figures dn-figures");
    [["Rows read", r.total_rows], ["Added", r.added], ["Already on the list", r.already_listed],
      ["Duplicates in the list", r.duplicates_in_file], ["Invalid", r.invalid_count],
      ["Dropped over the cap (" + r.cap + ")", r.dropped_over_cap], ["Region", r.region]].forEach(function (pair) {
      figures.appendChild(el("dt", null, pair[0]));
      figures.appendChild(el("dd", null, pair[1]));
    });
    root.appendChild(figures);
    if (!r.invalid || !r.invalid.length) return;
    root.appendChild(C.invalidTable(r.invalid, "dn-invalid"));
    if (r.invalid_count > r.invalid.length) {
      root.appendChild(el("div", "empty-note", "…and " + (r.invalid_count - r.invalid.length) + " more invalid rows."));
    }
  }

  $("dn-import").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var status = $("dn-import-status");
    var file = $("dn-file"), pasted = $("dn-paste").value;
    var hasFile = file.files && file.files.length > 0;
    if (!hasFile && !pasted.trim()) { say(status, "Paste numbers or choose a file first.", true); return; }
    var region = $("dn-import-region").value.trim().toUpperCase();
    if (region && !/^[A-Z]{2}$/.test(region)) { say(status, "Region: a two-letter country code such as US.", true); return; }
    var form = new FormData();
    form.append("list", $("dn-import-list").value);
    if ($("dn-import-reason").value.trim()) form.append("reason", $("dn-import-reason").value.trim());
    var expires = C.endOfDay($("dn-import-expires").value);
    if (expires) form.append("expires_at", expires);
    if (region) form.append("region", region);
    if (hasFile) form.append("file", file.files[0]);
    else form.append("text", pasted);
    var what = hasFile ? file.files[0].name : "the pasted numbers";
    clear($("dn-import-report"));
    say(status, "Importing " + what + "…");
    $("dn-import-go").disabled = true;
    try {
      var r = await C.upload("/api/dnc/import", form);
      say(status, what + ": " + r.added + " added, " + r.already_listed + " already on the " + r.list + " list, " +
        r.duplicates_in_file + " duplicates, " + r.invalid_count + " invalid");
      renderReport(r);
      file.value = "";
      $("dn-paste").value = "";
      state.skip = 0;
      await load();
    } catch (e) {
      failed(status)(e);
    } finally {
      $("dn-import-go").disabled = false;
    }
  });

  // ------------------------------------------------------------------ opt-out
  $("dn-optout").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var status = $("dn-optout-status");
    $("dn-optout-go").disabled = true;
    try {
      var done = await api("POST", "/api/dnc/opt-out", { number: $("dn-optout-number").value.trim() });
      say(status, done.entry.number + " opted out: black-listed, " + done.targets_skipped + " pending calls skipped");
      $("dn-optout").reset();
      state.skip = 0;
      await load();
    } catch (e) {
      failed(status)(e);
    } finally {
      $("dn-optout-go").disabled = false;
    }
  });

  async function boot() {
    try {
      var me = await C.signedIn();
      state.isAdmin = (me.roles || []).indexOf("admin") >= 0;
    } catch (e) {
      if (e && e.status === 401) return;
      showError(C.message(e));
      return;
    }
    await load();
  }

  boot();
})();
