/* Knowledge-base statistics (/kb/stats, GET /api/kb/stats): totals, per-article views, bot
 * uses and votes, content gaps (searches with no good result) and top searches.
 * Plain ES2020; all data goes into the page through textContent.
 */
(function () {
  "use strict";

  var D = window.HubDesk;
  var el = D.el, clear = D.clear, api = D.api;
  function $(id) { return document.getElementById(id); }

  function showError(text) {
    $("kbs-error").textContent = text || "";
    $("kbs-error").hidden = !text;
  }

  function when(iso) { return iso ? new Date(iso).toLocaleString() : "–"; }
  function pct(ratio) { return ratio == null ? "–" : Math.round(ratio * 100) + " %"; }

  function cell(text, cls) { return el("td", cls || null, text == null ? "" : String(text)); }

  function empty(tbody, cols, text) {
    var tr = el("tr");
    var td = el("td", "empty-note", text);
    td.colSpan = cols;
    tr.appendChild(td);
    tbody.appendChild(tr);
  }

  function renderTotals(t) {
    var box = $("kbs-totals");
    clear(box);
    [["Views", t.views], ["Bot answers", t.bot_uses], ["Helpful", t.helpful], ["Not helpful", t.not_helpful],
      ["Helpful %", pct(t.helpful_ratio)], ["Searches", t.searches],
      ["Searches without a good result", t.searches_without_result]].forEach(function (pair) {
      var node = el("div", "kbs-total");
      node.appendChild(el("div", "kbs-total-value", String(pair[1])));
      node.appendChild(el("div", "kbs-total-label", pair[0]));
      box.appendChild(node);
    });
  }

  function renderArticles(rows) {
    var tbody = $("kbs-article-rows");
    clear(tbody);
    if (!rows.length) { empty(tbody, 7, "No use of any article in this period."); return; }
    rows.forEach(function (r) {
      var tr = el("tr", "kbs-article");
      tr.setAttribute("data-id", r.article_id);
      var title = el("td");
      var link = el("a", null, r.title || r.slug || r.article_id);
      link.href = "/kb#" + encodeURIComponent(r.article_id);
      title.appendChild(link);
      if (r.kind === "faq") title.appendChild(el("span", "chip chip-muted", "FAQ"));
      tr.appendChild(title);
      tr.appendChild(cell(r.locale));
      tr.appendChild(cell(r.views, "num"));
      tr.appendChild(cell(r.bot_uses, "num"));
      tr.appendChild(cell(r.helpful, "num"));
      tr.appendChild(cell(r.not_helpful, "num"));
      tr.appendChild(cell(pct(r.helpful_ratio), "num" + (r.helpful_ratio != null && r.helpful_ratio < 0.5 ? " kbs-low" : "")));
      tbody.appendChild(tr);
    });
  }

  function renderGaps(rows) {
    var tbody = $("kbs-gap-rows");
    clear(tbody);
    if (!rows.length) { empty(tbody, 3, "Every search found a good answer."); return; }
    rows.forEach(function (g) {
      var tr = el("tr", "kbs-gap");
      tr.appendChild(cell(g.query));
      tr.appendChild(cell(g.count, "num"));
      tr.appendChild(cell(when(g.last_seen)));
      tbody.appendChild(tr);
    });
  }

  function renderTop(rows) {
    var tbody = $("kbs-top-rows");
    clear(tbody);
    if (!rows.length) { empty(tbody, 4, "No searches in this period."); return; }
    rows.forEach(function (s) {
      var tr = el("tr", "kbs-search");
      tr.appendChild(cell(s.query));
      tr.appendChild(cell(s.count, "num"));
      tr.appendChild(cell(s.good, "num"));
      tr.appendChild(cell(when(s.last_seen)));
      tbody.appendChild(tr);
    });
  }

  async function load() {
    showError("");
    try {
      var data = await api("GET", "/api/kb/stats?days=" + encodeURIComponent($("kbs-days").value));
      renderTotals(data.totals || {});
      renderArticles(data.articles || []);
      renderGaps(data.content_gaps || []);
      renderTop(data.top_searches || []);
    } catch (e) {
      if (e && e.status === 401) return;
      showError((e && e.message) || "Could not load the statistics");
    }
  }

  $("kbs-form").addEventListener("submit", function (ev) { ev.preventDefault(); load(); });
  $("kbs-days").addEventListener("change", load);
  api("GET", "/api/me").then(function (me) {
    $("user-name").textContent = me.name || me.email || "";
    $("tenant-name").textContent = me.tenant_name || me.tenant_slug || "";
    if (me.tenant_slug) $("kbs-help-link").href = "/help/" + encodeURIComponent(me.tenant_slug);
  }).catch(function () { /* api() redirects on 401 */ });
  load();
})();
