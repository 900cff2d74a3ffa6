/* The knowledge-base editor (dashboard/kb_api.py): list and filters, an editor for articles and
 * FAQ entries (several question phrasings, one answer) with a live Markdown preview rendered by
 * the server, the review workflow (which buttons show comes from the article's `actions`, computed
 * by the server for the caller), revision history with a diff and rollback, attachments, and
 * bulk import / export. Supervisors and agents get the same page read-only (published content).
 * Plain ES2020; data goes into the page through textContent / value, except the preview, which
 * is HTML the server rendered with raw HTML disabled.
 */
(function () {
  "use strict";

  var D = window.HubDesk, el = D.el, clear = D.clear, api = D.api;
  function $(id) { return document.getElementById(id); }
  var STATUS = { draft: "Draft", in_review: "In review", published: "Published", archived: "Archived" };

  var me = null, writer = false;
  var items = [];
  var current = null;     // the article open in the editor (API view), null for a new one
  var newKind = null;     // "article" | "faq" while writing a new one
  var dirty = false;
  var previewTimer = null, previewToken = 0, listToken = 0;

  function showError(text) { $("kb-error").textContent = text || ""; $("kb-error").hidden = !text; }
  function fail(e) { if (!e || e.status !== 401) showError(e && e.message ? e.message : String(e)); }
  function message(text) { $("kb-message").textContent = text || ""; }
  function when(iso) { if (!iso) return ""; var d = new Date(iso); return isNaN(d) ? iso : d.toLocaleString(); }

  async function upload(path, form) {
    var resp;
    try {
      resp = await fetch(path, { method: "POST", credentials: "same-origin", body: form,
        headers: HubDesk.csrfHeaders({ Accept: "application/json" }) });
    } catch (e) { throw new D.ApiError(0, "Cannot reach the server"); }
    if (resp.status === 401) { window.location.assign("/login"); throw new D.ApiError(401, "Not signed in"); }
    var data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) throw new D.ApiError(resp.status, (data && D.detailText(data.detail)) || "Request failed (" + resp.status + ")");
    return data;
  }

  // ------------------------------------------------------------------ list
  function filters() {
    var params = new URLSearchParams();
    [["q", "kb-filter-q"], ["status", "kb-filter-status"], ["kind", "kb-filter-kind"],
      ["locale", "kb-filter-locale"], ["category", "kb-filter-category"]].forEach(function (pair) {
      var value = $(pair[1]).value.trim();
      if (value) params.set(pair[0], value);
    });
    return params;
  }

  async function loadList() {
    var token = ++listToken;
    var params = filters();
    var data;
    try { data = await api("GET", "/api/kb/articles?" + params.toString()); } catch (e) { fail(e); return; }
    if (token !== listToken) return;
    items = data;
    ["csv", "xlsx", "md"].forEach(function (fmt) {
      var p = new URLSearchParams(params); p.delete("q"); p.set("format", fmt);
      $("kb-export-" + fmt).href = "/api/kb/export?" + p.toString();
    });
    renderList();
  }

  function renderList() {
    var list = $("kb-list");
    clear(list);
    $("kb-count").textContent = String(items.length);
    $("kb-list-empty").hidden = items.length > 0;
    items.forEach(function (item) {
      var node = el("button", "kb-item" + (current && current.id === item.id ? " selected" : ""));
      node.type = "button";
      node.setAttribute("data-id", item.id);
      node.setAttribute("role", "option");
      node.appendChild(el("span", "kb-item-title", item.title));
      var meta = el("span", "kb-item-meta");
      meta.appendChild(el("span", "chip chip-muted", item.kind === "faq" ? "FAQ" : "Article"));
      meta.appendChild(el("span", "chip kb-item-status kb-st-" + item.pending_status, STATUS[item.pending_status] || item.pending_status));
      if (item.has_draft) meta.appendChild(el("span", "chip chip-muted", "live: published"));
      meta.appendChild(el("span", "chip chip-muted", item.locale));
      if (item.category) meta.appendChild(el("span", "muted", item.category));
      node.appendChild(meta);
      node.addEventListener("click", function () { openArticle(item.id); });
      list.appendChild(node);
    });
  }

  async function loadCategories() {
    var cats;
    try { cats = await api("GET", "/api/kb/categories"); } catch (e) { return; }
    var select = $("kb-filter-category"), chosen = select.value;
    while (select.options.length > 1) select.remove(1);
    var datalist = $("kb-category-list");
    clear(datalist);
    cats.forEach(function (c) {
      var opt = el("option", null, c.name + " (" + c.count + ")"); opt.value = c.name; select.appendChild(opt);
      var o2 = el("option"); o2.value = c.name; datalist.appendChild(o2);
    });
    select.value = chosen;
  }

  // ------------------------------------------------------------------ editor
  function kindOf() { return current ? current.kind : newKind; }

  function questionRow(text) {
    var row = el("div", "kb-question-row");
    var input = el("input", "kb-question");
    input.type = "text"; input.maxLength = 300; input.value = text || "";
    input.setAttribute("aria-label", "Question phrasing");
    input.readOnly = !writer;
    input.addEventListener("input", changed);
    row.appendChild(input);
    if (writer) {
      var remove = el("button", "btn btn-ghost btn-small kb-question-remove", "Remove");
      remove.type = "button";
      remove.addEventListener("click", function () { row.remove(); changed(); });
      row.appendChild(remove);
    }
    return row;
  }

  function fillForm(content) {
    $("kb-title").value = content.title || "";
    $("kb-locale").value = content.locale || "en";
    $("kb-category").value = content.category || "";
    $("kb-tags").value = (content.tags || []).join(", ");
    $("kb-body").value = content.body || "";
    var box = $("kb-questions");
    clear(box);
    var faq = kindOf() === "faq";
    $("kb-questions-box").hidden = !faq;
    $("kb-body-label").textContent = faq ? "Answer (Markdown)" : "Body (Markdown)";
    if (faq) {
      var questions = content.questions && content.questions.length ? content.questions : [""];
      questions.forEach(function (q) { box.appendChild(questionRow(q)); });
    }
  }

  function formContent() {
    var questions = Array.prototype.map.call(document.querySelectorAll("#kb-questions .kb-question"),
      function (input) { return input.value.trim(); }).filter(Boolean);
    return {
      title: $("kb-title").value.trim(),
      locale: $("kb-locale").value,
      category: $("kb-category").value.trim() || null,
      tags: $("kb-tags").value.split(",").map(function (t) { return t.trim(); }).filter(Boolean),
      body: $("kb-body").value,
      questions: kindOf() === "faq" ? questions : [],
    };
  }

  function setReadOnly() {
    ["kb-title", "kb-category", "kb-tags", "kb-body"].forEach(function (id) { $(id).readOnly = !writer; });
    $("kb-locale").disabled = !writer;
    $("kb-add-question").hidden = !writer;
  }

  function renderHead() {
    var article = current;
    $("kb-kind").textContent = kindOf() === "faq" ? "FAQ" : "Article";
    var state = $("kb-state");
    var actions = article ? article.actions || [] : [];
    if (!article) {
      state.textContent = "New"; state.className = "chip";
      $("kb-slug").textContent = "";
    } else if (writer) {
      var p = article.pending;
      var text = (STATUS[p.status] || p.status) + " · version " + p.version;
      if (article.draft) text += " (version " + article.version + " is live)";
      state.textContent = text;
      state.className = "chip kb-st-" + p.status;
      $("kb-slug").textContent = "/" + article.slug;
    } else {
      state.textContent = "Published"; state.className = "chip kb-st-published";
      $("kb-slug").textContent = "/" + article.slug;
    }
    $("kb-save").hidden = !writer || (article !== null && actions.indexOf("edit") < 0);
    $("kb-submit").hidden = actions.indexOf("submit") < 0;
    $("kb-publish").hidden = actions.indexOf("publish") < 0;
    $("kb-discard").hidden = actions.indexOf("discard") < 0;
    $("kb-archive").hidden = actions.indexOf("archive") < 0;
    $("kb-restore").hidden = actions.indexOf("restore") < 0;
    var archived = article && article.status === "archived";
    ["kb-title", "kb-category", "kb-tags", "kb-body"].forEach(function (id) { $(id).readOnly = !writer || archived; });
    $("kb-attach").hidden = !writer || !article || archived;
    var hint = "";
    if (writer && article && article.require_review && actions.indexOf("publish") < 0) {
      if (article.pending.status === "in_review") hint = "Waiting for another editor to review and publish.";
      else if (article.pending.status === "draft") hint = "Submit for review: another editor publishes.";
    }
    $("kb-hint").textContent = hint;
    $("kb-hint").hidden = !hint;
  }

  function renderAttachments() {
    var list = $("kb-attachments");
    clear(list);
    var files = current ? current.attachments || [] : [];
    if (!files.length) list.appendChild(el("li", "muted", current ? "None." : "Save first to attach files."));
    files.forEach(function (f) {
      var li = el("li", "kb-attachment");
      var link = el("a", null, f.filename);
      link.href = "/api/kb/articles/" + encodeURIComponent(current.id) + "/attachments/" + encodeURIComponent(f.file_id);
      li.appendChild(link);
      li.appendChild(el("span", "muted", " " + Math.max(1, Math.round(f.size / 1024)) + " KB"));
      if (writer && current.status !== "archived") {
        var remove = el("button", "btn btn-ghost btn-small", "Remove");
        remove.type = "button";
        remove.addEventListener("click", async function () {
          try { show(await api("DELETE", link.pathname)); message("Removed " + f.filename); } catch (e) { fail(e); }
        });
        li.appendChild(remove);
      }
      list.appendChild(li);
    });
  }

  function show(article) {
    current = article;
    newKind = null;
    dirty = false;
    showError("");
    $("kb-empty").hidden = true;
    $("kb-form").hidden = false;
    fillForm(writer ? article.pending.content : article);
    renderHead();
    renderAttachments();
    renderList();
    schedulePreview(0);
    if (writer) loadHistory();
  }

  async function openArticle(id) {
    if (dirty && !window.confirm("Discard your unsaved changes?")) return;
    message("");
    try { show(await api("GET", "/api/kb/articles/" + encodeURIComponent(id))); } catch (e) { fail(e); }
  }

  function startNew(kind) {
    if (dirty && !window.confirm("Discard your unsaved changes?")) return;
    current = null;
    newKind = kind;
    dirty = false;
    showError(""); message("");
    $("kb-empty").hidden = true;
    $("kb-form").hidden = false;
    fillForm({ title: "", body: "", questions: [], tags: [], category: null, locale: $("kb-filter-locale").value || "en" });
    renderHead();
    renderAttachments();
    clear($("kb-revisions")); clear($("kb-diff"));
    renderList();
    schedulePreview(0);
    $("kb-title").focus();
  }

  function changed() {
    dirty = true;
    message("Not saved");
    schedulePreview(300);
  }

  async function save() {
    showError("");
    var content = formContent();
    try {
      var article;
      if (current) {
        content.base_version = current.latest_version;
        article = await api("PUT", "/api/kb/articles/" + encodeURIComponent(current.id), content);
      } else {
        content.kind = newKind;
        article = await api("POST", "/api/kb/articles", content);
      }
      show(article);
      message("Saved");
      loadList();
      loadCategories();
    } catch (e) { fail(e); }
  }

  async function act(action, confirmText) {
    if (!current) return;
    if (dirty) { showError("Save your changes first"); return; }
    if (confirmText && !window.confirm(confirmText)) return;
    try {
      show(await api("POST", "/api/kb/articles/" + encodeURIComponent(current.id) + "/" + action));
      message({ submit: "Submitted for review", publish: "Published", archive: "Archived",
        restore: "Restored as a draft", discard: "Draft discarded" }[action]);
      loadList();
    } catch (e) { fail(e); }
  }

  // ------------------------------------------------------------------ preview
  function schedulePreview(delay) {
    if (previewTimer) clearTimeout(previewTimer);
    previewTimer = setTimeout(renderPreview, delay);
  }

  async function renderPreview() {
    var token = ++previewToken;
    var content = formContent();
    $("kb-preview-title").textContent = content.title;
    var qs = $("kb-preview-questions");
    clear(qs);
    content.questions.forEach(function (q) { qs.appendChild(el("li", "kb-preview-question", q)); });
    var html;
    if (!writer && current && current.html != null) {
      html = current.html;
    } else {
      try { html = (await api("POST", "/api/kb/preview", { markdown: content.body })).html; } catch (e) { return; }
    }
    if (token !== previewToken) return;
    $("kb-preview").innerHTML = html; // server-rendered, raw HTML disabled (knowledge/render.py)
  }

  // ------------------------------------------------------------------ history
  var ACTION_TEXT = { created: "created", edited: "edited", submitted: "submitted for review",
    published: "published", archived: "archived", restored: "restored", rolled_back: "rolled back",
    imported: "imported", attached: "attached", detached: "removed attachment", discarded: "discarded draft" };

  async function loadHistory() {
    if (!current) return;
    var id = current.id, revs;
    try { revs = await api("GET", "/api/kb/articles/" + encodeURIComponent(id) + "/revisions"); } catch (e) { fail(e); return; }
    if (!current || current.id !== id) return;
    var list = $("kb-revisions");
    clear(list);
    var versions = [];
    revs.slice().reverse().forEach(function (r) {
      if (versions.indexOf(r.version) < 0) versions.push(r.version);
      var li = el("li", "kb-rev");
      li.setAttribute("data-version", String(r.version));
      li.appendChild(el("span", "chip chip-muted", "v" + r.version));
      li.appendChild(el("span", "kb-rev-action", " " + (ACTION_TEXT[r.action] || r.action)));
      li.appendChild(el("span", "muted", " by " + (r.by_name || "?") + ", " + when(r.at)));
      if (r.note) li.appendChild(el("span", "muted kb-rev-note", " – " + r.note));
      list.appendChild(li);
    });
    versions.sort(function (a, b) { return a - b; });
    var from = $("kb-diff-from"), to = $("kb-diff-to");
    [from, to].forEach(function (select) {
      clear(select);
      versions.forEach(function (v) { var o = el("option", null, "version " + v); o.value = String(v); select.appendChild(o); });
    });
    if (versions.length) {
      to.value = String(versions[versions.length - 1]);
      from.value = String(versions.length > 1 ? versions[versions.length - 2] : versions[0]);
    }
    // rollback: one button per version that is not the content being edited
    Array.prototype.forEach.call(list.querySelectorAll(".kb-rev"), function (li) {
      var v = Number(li.getAttribute("data-version"));
      if (v === current.pending.version || current.actions.indexOf("edit") < 0) return;
      if (li.previousElementSibling && li.previousElementSibling.getAttribute("data-version") === String(v)) return;
      var button = el("button", "btn btn-small kb-rev-rollback", "Roll back to v" + v);
      button.type = "button";
      button.addEventListener("click", function () { rollback(v); });
      li.appendChild(button);
    });
  }

  async function rollback(version) {
    if (dirty) { showError("Save your changes first"); return; }
    try {
      show(await api("POST", "/api/kb/articles/" + encodeURIComponent(current.id) + "/rollback", { version: version }));
      message("Rolled back to version " + version + " as a new version");
      loadList();
    } catch (e) { fail(e); }
  }

  function diffLines(title, lines) {
    var box = el("div", "kb-diff-field");
    box.appendChild(el("h4", "kb-diff-name", title));
    var pre = el("div", "kb-diff-lines");
    lines.forEach(function (l) {
      var cls = l.op === "+" ? " kb-add" : l.op === "-" ? " kb-del" : "";
      pre.appendChild(el("div", "kb-diff-line" + cls, l.op + " " + l.text));
    });
    box.appendChild(pre);
    return box;
  }

  async function showDiff() {
    if (!current) return;
    var a = $("kb-diff-from").value, b = $("kb-diff-to").value;
    var out = $("kb-diff");
    clear(out);
    var d;
    try {
      d = await api("GET", "/api/kb/articles/" + encodeURIComponent(current.id) + "/diff?a=" + encodeURIComponent(a) + "&b=" + encodeURIComponent(b));
    } catch (e) { fail(e); return; }
    var f = d.fields, any = false;
    ["title", "category", "locale"].forEach(function (name) {
      if (!f[name].changed) return;
      any = true;
      out.appendChild(diffLines(name, [{ op: "-", text: f[name].old || "" }, { op: "+", text: f[name].new || "" }]));
    });
    ["questions", "tags", "body"].forEach(function (name) {
      if (!f[name].changed) return;
      any = true;
      out.appendChild(diffLines(name, f[name].lines));
    });
    if (!any) out.appendChild(el("div", "empty-note", "Versions " + a + " and " + b + " have the same content."));
  }

  // ------------------------------------------------------------------ attachments, import
  async function attach(event) {
    event.preventDefault();
    var file = $("kb-attach-file").files[0];
    if (!file || !current) { showError("Choose a file to attach"); return; }
    var form = new FormData();
    form.append("file", file);
    try {
      show(await upload("/api/kb/articles/" + encodeURIComponent(current.id) + "/attachments", form));
      $("kb-attach-file").value = "";
      message("Attached " + file.name);
    } catch (e) { fail(e); }
  }

  async function importFile(event) {
    event.preventDefault();
    var file = $("kb-import-file").files[0];
    var out = $("kb-import-report");
    clear(out);
    if (!file) { showError("Choose a .csv, .xlsx or .zip file"); return; }
    var form = new FormData();
    form.append("file", file);
    form.append("publish", $("kb-import-publish").checked ? "true" : "false");
    var report;
    try { report = await upload("/api/kb/import", form); } catch (e) { fail(e); return; }
    var c = report.counts;
    out.appendChild(el("div", "kb-import-counts", c.created + " created, " + c.updated + " updated, " +
      c.unchanged + " unchanged, " + c.invalid + " invalid" + (c.published ? ", " + c.published + " published" : "")));
    report.invalid.forEach(function (r) { out.appendChild(el("div", "kb-import-invalid", r.row + ": " + r.reason)); });
    loadList();
    loadCategories();
  }

  // ------------------------------------------------------------------ boot
  function tabs() {
    Array.prototype.forEach.call(document.querySelectorAll(".kb-tab"), function (button) {
      button.addEventListener("click", function () {
        var name = button.getAttribute("data-tab");
        Array.prototype.forEach.call(document.querySelectorAll(".kb-tab"), function (b) {
          b.setAttribute("aria-selected", String(b === button));
        });
        $("tab-preview").hidden = name !== "preview";
        $("tab-history").hidden = name !== "history";
        if (name === "history") loadHistory();
      });
    });
  }

  async function boot() {
    try { me = await api("GET", "/api/me"); } catch (e) { fail(e); return; }
    $("user-name").textContent = me.name || me.email || "";
    $("tenant-name").textContent = me.tenant_name || me.tenant_slug || "";
    var roles = me.roles || [];
    writer = roles.indexOf("editor") >= 0 || roles.indexOf("admin") >= 0;
    $("kb-stats-link").hidden = !(writer || roles.indexOf("supervisor") >= 0);
    Array.prototype.forEach.call(document.querySelectorAll(".writer-only"), function (node) { node.hidden = !writer; });
    if (!writer) $("kb-filter-status").hidden = true;
    setReadOnly();
    tabs();
    $("kb-filters").addEventListener("submit", function (e) { e.preventDefault(); loadList(); });
    $("kb-filter-q").addEventListener("input", function () { clearTimeout(listTimer); listTimer = setTimeout(loadList, 250); });
    ["kb-filter-status", "kb-filter-kind", "kb-filter-locale", "kb-filter-category"].forEach(function (id) {
      $(id).addEventListener("change", loadList);
    });
    $("kb-new-article").addEventListener("click", function () { startNew("article"); });
    $("kb-new-faq").addEventListener("click", function () { startNew("faq"); });
    $("kb-add-question").addEventListener("click", function () {
      var row = questionRow(""); $("kb-questions").appendChild(row); row.querySelector("input").focus(); changed();
    });
    ["kb-title", "kb-category", "kb-tags", "kb-body"].forEach(function (id) { $(id).addEventListener("input", changed); });
    $("kb-locale").addEventListener("change", changed);
    $("kb-save").addEventListener("click", save);
    $("kb-submit").addEventListener("click", function () { act("submit"); });
    $("kb-publish").addEventListener("click", function () { act("publish"); });
    $("kb-discard").addEventListener("click", function () { act("discard", "Discard the draft? The live version stays."); });
    $("kb-archive").addEventListener("click", function () { act("archive", "Archive this article? It leaves search, the bot and the help center."); });
    $("kb-restore").addEventListener("click", function () { act("restore"); });
    $("kb-diff-show").addEventListener("click", showDiff);
    $("kb-attach").addEventListener("submit", attach);
    $("kb-import").addEventListener("submit", importFile);
    window.addEventListener("beforeunload", function (e) { if (dirty) { e.preventDefault(); e.returnValue = ""; } });
    await Promise.all([loadList(), loadCategories()]);
    var wanted = new URLSearchParams(window.location.search).get("article");
    if (wanted) openArticle(wanted);
  }

  var listTimer = null;
  boot();
})();
