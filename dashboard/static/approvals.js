/* The approvals page (/approvals, dashboard/approvals_api.py): caller ids submitted with their
 * documents and audio prompts, pending first, with their status; reviewers approve or reject (a
 * rejection needs a reason; rejecting an approved item revokes it). A reviewer above other
 * tenants (the operator's service staff) also sees theirs, each with its tenant's name; items
 * the caller may decide on carry `reviewable`. Supervisors submit numbers
 * and upload prompts (the IVR API, dashboard/ivr_api.py) and follow their status.
 * Plain ES2020; all data goes into the page through textContent / value / attributes.
 */
(function () {
  "use strict";

  var D = window.HubDesk, C = window.HubCompliance;
  var el = D.el, clear = D.clear, api = D.api, say = C.say;

  function $(id) { return document.getElementById(id); }

  var canReview = false;
  var showError = C.errorBox($("ap-error"));
  var failed = C.failed;

  function statusCell(status, reason) {
    var td = el("td", "ap-status-cell");
    td.appendChild(el("span", "ap-status ap-status-" + status, status));
    if (reason) td.appendChild(el("div", "ap-reason", reason));
    return td;
  }

  function byWhen(name, iso) {
    if (!iso) return el("td", null, "–");
    var td = el("td");
    if (name) td.appendChild(el("div", null, name));
    td.appendChild(el("div", "ap-when", C.when(iso)));
    return td;
  }

  function seconds(value) {
    if (value == null) return "–";
    return (Math.round(value * 10) / 10) + " s";
  }

  // Approve / reject controls for admins: `path` is the item's URL, `status` its state now.
  function reviewCell(path, status, label, statusNode, reviewable) {
    var td = el("td", "ap-actions");
    if (!(reviewable === undefined ? canReview : reviewable)) return td;
    var reason = el("input", "ap-review-reason");
    reason.type = "text";
    reason.maxLength = 500;
    reason.placeholder = "reason";
    reason.setAttribute("aria-label", "Reason for " + label);
    td.appendChild(reason);
    async function decide(verb, btn) {
      var why = reason.value.trim();
      if (verb === "reject" && !why) { say(statusNode, "Say why " + label + " is rejected.", true); reason.focus(); return; }
      btn.disabled = true;
      try {
        await api("POST", path + "/" + verb, { reason: why });
        say(statusNode, label + (verb === "approve" ? " approved" : " rejected"));
        await load();
      } catch (e) {
        btn.disabled = false;
        failed(statusNode)(e);
      }
    }
    if (status !== "approved") {
      var ok = C.button("Approve", "btn-small btn-primary ap-approve");
      ok.addEventListener("click", function () { decide("approve", ok); });
      td.appendChild(ok);
    }
    if (status !== "rejected") {
      var no = C.button(status === "approved" ? "Revoke" : "Reject", "btn-small btn-danger ap-reject");
      no.addEventListener("click", function () { decide("reject", no); });
      td.appendChild(no);
    }
    return td;
  }

  function callerRow(c) {
    var tr = el("tr", "ap-caller ap-row-" + c.status);
    tr.dataset.id = c.id;
    var numberCell = el("td", "ap-number", c.number);
    if (c.own === false) numberCell.appendChild(el("div", "ap-tenant", c.tenant_name));
    tr.appendChild(numberCell);
    tr.appendChild(el("td", null, c.label || "–"));
    tr.appendChild(statusCell(c.status, c.reason));
    var docs = el("td", "ap-documents");
    (c.document_files || []).forEach(function (d) {
      var link = el("a", "ap-document", d.name);
      link.href = "/api/caller-ids/" + encodeURIComponent(c.id) + "/documents/" + encodeURIComponent(d.id);
      link.setAttribute("download", d.name);
      docs.appendChild(link);
    });
    if (!docs.firstChild) docs.textContent = "–";
    tr.appendChild(docs);
    tr.appendChild(byWhen(c.submitted_by_name, c.submitted_at));
    tr.appendChild(byWhen(c.reviewed_by_name, c.reviewed_at));
    tr.appendChild(reviewCell("/api/caller-ids/" + encodeURIComponent(c.id), c.status, c.number, $("ap-callers-status"),
      c.reviewable));
    return tr;
  }

  function promptRow(p) {
    var a = p.approval;
    var tr = el("tr", "ap-prompt ap-row-" + a.status);
    tr.dataset.id = p.id;
    var nameCell = el("td", "ap-prompt-name", p.name || p.filename);
    if (p.own === false) nameCell.appendChild(el("div", "ap-tenant", p.tenant_name));
    tr.appendChild(nameCell);
    var listen = el("td");
    var audio = el("audio", "ap-audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = p.audio_url || "/api/ivr/prompts/" + encodeURIComponent(p.id);
    listen.appendChild(audio);
    tr.appendChild(listen);
    tr.appendChild(el("td", "num", seconds(p.duration_s)));
    tr.appendChild(statusCell(a.status, a.reason));
    tr.appendChild(byWhen(p.uploaded_by_name, p.uploaded_at));
    tr.appendChild(byWhen(a.reviewed_by_name, a.reviewed_at));
    tr.appendChild(reviewCell("/api/ivr/prompts/" + encodeURIComponent(p.id), a.status, p.name || p.filename,
      $("ap-prompts-status"), p.reviewable));
    return tr;
  }

  async function load() {
    var queue;
    try {
      queue = await api("GET", "/api/approvals");
    } catch (e) {
      if (e && e.status === 401) return;
      showError(C.message(e));
      return;
    }
    showError(null);
    canReview = !!queue.can_review;
    $("ap-reviewer-note").hidden = canReview;
    var callers = $("ap-caller-rows"), prompts = $("ap-prompt-rows");
    clear(callers);
    clear(prompts);
    queue.caller_ids.forEach(function (c) { callers.appendChild(callerRow(c)); });
    queue.prompts.forEach(function (p) { prompts.appendChild(promptRow(p)); });
    $("ap-callers-empty").hidden = queue.caller_ids.length > 0;
    $("ap-prompts-empty").hidden = queue.prompts.length > 0;
  }

  $("ap-submit").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var status = $("ap-submit-status");
    var files = $("ap-documents").files || [];
    if (files.length > 5) { say(status, "At most 5 documents.", true); return; }
    var form = new FormData();
    form.append("number", $("ap-number").value.trim());
    if ($("ap-label").value.trim()) form.append("label", $("ap-label").value.trim());
    Array.prototype.forEach.call(files, function (f) { form.append("documents", f); });
    $("ap-submit-go").disabled = true;
    try {
      var c = await C.upload("/api/caller-ids", form);
      say(status, c.number + " submitted: " + c.status);
      $("ap-submit").reset();
      await load();
    } catch (e) {
      failed(status)(e);
    } finally {
      $("ap-submit-go").disabled = false;
    }
  });

  $("ap-upload").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var status = $("ap-upload-status");
    var file = $("ap-prompt-file").files;
    if (!file || !file.length) { say(status, "Choose a WAV file first.", true); return; }
    var form = new FormData();
    form.append("file", file[0]);
    if ($("ap-prompt-name").value.trim()) form.append("name", $("ap-prompt-name").value.trim());
    $("ap-upload-go").disabled = true;
    try {
      var p = await C.upload("/api/ivr/prompts", form);
      say(status, (p.name || p.filename) + " uploaded: waiting for approval");
      $("ap-upload").reset();
      await load();
    } catch (e) {
      failed(status)(e);
    } finally {
      $("ap-upload-go").disabled = false;
    }
  });

  async function boot() {
    try {
      await C.signedIn();
    } catch (e) {
      if (e && e.status === 401) return;
      showError(C.message(e));
      return;
    }
    await load();
  }

  boot();
})();
