"""The public help center of a tenant: `/help/{tenant_slug}` (no login).

Server-rendered HTML, so it works without JavaScript and search engines can read it: the
categories, a search box (hybrid search over published articles, English / Chinese switch),
article pages rendered from Markdown (raw HTML disabled, knowledge/render.py) with a "Was this
helpful?" vote. Only published content is ever shown; a draft or archived article is a 404 like
an unknown one, and so is an unknown tenant.

Votes are counted once per browser session (a random `hc_sid` cookie, SameSite=Lax so another
site cannot vote on the visitor's behalf) and rate-limited per client address. Views, votes and
searches (content gaps when there is no good result) go to knowledge/usage.py. The email
"Did this answer help?" links land here too (`/help/{slug}/feedback`) and ask for a click to
confirm, because mail scanners open links on their own.
"""

# ruff: noqa: RUF001 - Chinese texts use full-width punctuation on purpose

from __future__ import annotations

import html
import re
import secrets
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot import faq_answers
from hub.auth import AuthError
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ratelimit import RateLimiter  # one sliding window for the whole hub
from hub.tenancy import get_tenant_by_slug
from knowledge import articles, usage
from knowledge.render import render_markdown
from knowledge.search import confident, search

router = APIRouter(prefix="/help", include_in_schema=False)

SESSION_COOKIE = "hc_sid"
LOCALES = ("en", "zh")
PUBLISHED: Doc = {"$in": ["published", None]}  # documents from before the workflow have no status
MAX_QUERY_CHARS = 200
RESULTS = 10
SNIPPET_CHARS = 200
VOTES_PER_WINDOW = 20
VOTE_WINDOW_S = 600.0

UI: dict[str, dict[str, str]] = {
    "en": {
        "title": "Help center",
        "search": "Search",
        "placeholder": "How can we help?",
        "categories": "Categories",
        "all": "All articles",
        "results": "Results for “{q}”",
        "no_good": "We could not find a good answer to that. Try other words, or contact us.",
        "none": "No articles yet.",
        "helpful": "Was this helpful?",
        "yes": "Yes",
        "no": "No",
        "thanks": "Thanks for your feedback!",
        "again": "You already told us about this article. Thanks!",
        "nocookie": "Your vote could not be counted: please allow cookies for this site.",
        "back": "Back to the help center",
        "updated": "Updated",
        "not_found": "Page not found",
        "not_found_text": "There is no such page in this help center.",
        "confirm": "Please confirm your answer:",
        "confirm_yes": "Yes, the answer helped",
        "confirm_no": "No, I need more help",
        "vote_handoff": "Thanks. One of our agents will reply to your email.",
        "bad_link": "This link is not valid any more.",
        "slow_down": "Too many votes from your network. Please try again later.",
    },
    "zh": {
        "title": "帮助中心",
        "search": "搜索",
        "placeholder": "请输入您的问题",
        "categories": "分类",
        "all": "全部文章",
        "results": "“{q}” 的搜索结果",
        "no_good": "没有找到合适的答案。请换个说法，或联系我们。",
        "none": "暂无文章。",
        "helpful": "这篇文章有帮助吗？",
        "yes": "有帮助",
        "no": "没有帮助",
        "thanks": "感谢您的反馈！",
        "again": "您已经评价过这篇文章，谢谢！",
        "nocookie": "无法记录您的评价：请允许本站使用 Cookie。",
        "back": "返回帮助中心",
        "updated": "更新于",
        "not_found": "页面不存在",
        "not_found_text": "帮助中心中没有这个页面。",
        "confirm": "请确认您的回答：",
        "confirm_yes": "有帮助",
        "confirm_no": "没有，我需要更多帮助",
        "vote_handoff": "谢谢。我们的客服会回复您的邮件。",
        "bad_link": "此链接已失效。",
        "slow_down": "您所在网络的评价次数过多，请稍后再试。",
    },
}


def _limiter(ctx: AppContext) -> RateLimiter:
    limiter = ctx.extra.get("help_vote_limiter")
    if limiter is None:
        limiter = ctx.extra["help_vote_limiter"] = RateLimiter(VOTES_PER_WINDOW, VOTE_WINDOW_S)
    assert isinstance(limiter, RateLimiter)
    return limiter


def _locale(request: Request, asked: str | None, tenant: Doc) -> str:
    if asked in LOCALES:
        return str(asked)
    accept = request.headers.get("accept-language", "").lower()
    if accept.startswith("zh"):
        return "zh"
    default = tenant.get("default_locale")
    return default if default in LOCALES else "en"


def _e(text: Any) -> str:
    return html.escape(str(text if text is not None else ""), quote=True)


def _brand(tenant: Doc) -> tuple[str, str | None, str]:
    """(name, logo URL, colour) from the tenant's branding, with safe fallbacks."""
    branding = tenant.get("branding") or {}
    name = str(branding.get("name") or tenant.get("name") or tenant["slug"])
    logo = branding.get("logo_url")
    logo = logo if isinstance(logo, str) and re.match(r"^(https?://|/)[^\s\"'<>]*$", logo) else None
    color = branding.get("color")
    color = color if isinstance(color, str) and re.fullmatch(r"#[0-9a-fA-F]{3,8}", color) else "#1f6feb"
    return name, logo, color


def _page(tenant: Doc, locale: str, title: str, body: str, *, status_code: int = 200) -> HTMLResponse:
    name, logo, color = _brand(tenant)
    t = UI[locale]
    base = f"/help/{_e(tenant['slug'])}"
    switch = " · ".join(
        f'<a href="{base}?locale={code}" class="hc-locale{" hc-current" if code == locale else ""}" '
        f'lang="{code}">{label}</a>'
        for code, label in (("en", "English"), ("zh", "中文"))
    )
    logo_html = f'<img class="hc-logo" src="{_e(logo)}" alt="">' if logo else ""
    page = f"""<!DOCTYPE html>
<html lang="{"zh-CN" if locale == "zh" else "en"}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{_e(title)} – {_e(name)}</title>
  <link rel="stylesheet" href="/static/help_center.css">
  <style>:root {{ --hc-brand: {color}; }}</style>
</head>
<body class="hc">
  <header class="hc-header">
    <a class="hc-home" href="{base}?locale={locale}">{logo_html}<span class="hc-name">{_e(name)}</span>
      <span class="hc-sub">{_e(t["title"])}</span></a>
    <nav class="hc-locales">{switch}</nav>
  </header>
  <main class="hc-main">
{body}
  </main>
</body>
</html>
"""
    return HTMLResponse(page, status_code=status_code)


def _not_found(tenant: Doc | None, locale: str = "en") -> HTMLResponse:
    t = UI[locale]
    if tenant is None:
        return HTMLResponse(
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{t['not_found']}</title>"
            f"</head><body><h1>{t['not_found']}</h1><p>{t['not_found_text']}</p></body></html>",
            status_code=404,
        )
    body = f"<h1>{_e(t['not_found'])}</h1><p>{_e(t['not_found_text'])}</p>"
    return _page(tenant, locale, t["not_found"], body, status_code=404)


def _with_session(request: Request, response: Response) -> Response:
    """Give the browser a help-center session id (for counting its votes once)."""
    if not request.cookies.get(SESSION_COOKIE):
        response.set_cookie(
            SESSION_COOKIE, secrets.token_urlsafe(18), httponly=True, samesite="lax", path="/help"
        )
    return response


def snippet(body: str, limit: int = SNIPPET_CHARS) -> str:
    """The start of a Markdown body as plain text."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", body)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = " ".join(re.sub(r"[#*_`>|~]+", " ", text).split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def _locale_match(locale: str) -> Doc:
    return {"$in": [locale, None]} if locale == "en" else {"$in": [locale]}


async def categories(ctx: AppContext, tenant_id: str, locale: str) -> list[tuple[str, int]]:
    pipeline: list[Doc] = [
        {"$match": {"tenant_id": tenant_id, "status": PUBLISHED, "locale": _locale_match(locale)}},
        {"$group": {"_id": "$category", "count": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ]
    return [
        (row["_id"], row["count"]) async for row in await ctx.db.kb_articles.aggregate(pipeline) if row["_id"]
    ]


def _article_link(tenant: Doc, article: Doc) -> str:
    return f"/help/{_e(tenant['slug'])}/a/{_e(article['slug'])}"


def _result_item(tenant: Doc, article: Doc) -> str:
    href, title = _article_link(tenant, article), _e(article.get("title"))
    text = _e(snippet(article.get("body") or ""))
    link = f'<a class="hc-result-title" href="{href}">{title}</a>'
    return f'<li class="hc-result">{link}<p class="hc-snippet">{text}</p></li>'


@router.get("/{tenant_slug}")
async def home(
    tenant_slug: str,
    request: Request,
    q: str = "",
    locale: str | None = None,
    category: str | None = None,
    ctx: AppContext = Depends(get_ctx),
) -> Response:
    tenant = await get_tenant_by_slug(ctx, tenant_slug)
    if tenant is None:
        return _not_found(None)
    lang = _locale(request, locale, tenant)
    t = UI[lang]
    query = " ".join(q.split())[:MAX_QUERY_CHARS]
    category = (category or "").strip()[:100] or None
    base = f"/help/{_e(tenant['slug'])}"
    cats = await categories(ctx, tenant["_id"], lang)
    cat_links = "".join(
        f'<li><a class="hc-category{" hc-current" if name == category else ""}" '
        f'href="{base}?{_e(urlencode({"locale": lang, "category": name}))}">{_e(name)}</a> '
        f'<span class="hc-count">{count}</span></li>'
        for name, count in cats
    )
    search_form = f"""    <form class="hc-search" method="get" action="{base}" role="search">
      <input type="hidden" name="locale" value="{lang}">
      {f'<input type="hidden" name="category" value="{_e(category)}">' if category else ""}
      <input type="search" name="q" value="{_e(query)}" placeholder="{_e(t["placeholder"])}"
             aria-label="{_e(t["search"])}" maxlength="{MAX_QUERY_CHARS}" id="hc-q">
      <button type="submit" class="hc-button">{_e(t["search"])}</button>
    </form>"""
    if query:
        hits = await search(
            ctx, tenant["_id"], query, locale=lang, category=category, statuses=("published",), limit=RESULTS
        )
        await usage.record_search(ctx, tenant["_id"], query, hits, "help_center")
        good = bool(hits) and confident(hits[0])
        items = "".join(_result_item(tenant, h.article) for h in hits)
        listing = f'<h2 class="hc-heading">{_e(t["results"].format(q=query))}</h2>' + (
            "" if good else f'<p class="hc-no-good" id="hc-no-good">{_e(t["no_good"])}</p>'
        )
        listing += f'<ul class="hc-results" id="hc-results">{items}</ul>' if items else ""
    else:
        match: Doc = {"tenant_id": tenant["_id"], "status": PUBLISHED, "locale": _locale_match(lang)}
        if category:
            match["category"] = category
        cursor = (
            ctx.db.kb_articles.find(match, {"title": 1, "slug": 1, "body": 1}).sort("title", 1).limit(200)
        )
        items = "".join([_result_item(tenant, a) async for a in cursor])
        heading = category or t["all"]
        listing = f'<h2 class="hc-heading">{_e(heading)}</h2>' + (
            f'<ul class="hc-results" id="hc-results">{items}</ul>' if items else f"<p>{_e(t['none'])}</p>"
        )
    body = f"""{search_form}
    <div class="hc-columns">
      <aside class="hc-aside"><h2 class="hc-heading">{_e(t["categories"])}</h2>
        <ul class="hc-categories">{cat_links}</ul></aside>
      <section class="hc-listing">{listing}</section>
    </div>"""
    return _with_session(request, _page(tenant, lang, t["title"], body))


async def _published(ctx: AppContext, tenant_id: str, slug: str) -> Doc | None:
    return await ctx.db.kb_articles.find_one({"tenant_id": tenant_id, "slug": slug, "status": PUBLISHED})


@router.get("/{tenant_slug}/a/{article_slug}")
async def article_page(
    tenant_slug: str, article_slug: str, request: Request, voted: str = "", ctx: AppContext = Depends(get_ctx)
) -> Response:
    tenant = await get_tenant_by_slug(ctx, tenant_slug)
    if tenant is None:
        return _not_found(None)
    article = await _published(ctx, tenant["_id"], article_slug)
    lang = _locale(request, None, tenant)
    if article is None:
        return _not_found(tenant, lang)
    lang = str(article["locale"]) if article.get("locale") in LOCALES else lang
    t = UI[lang]
    if not voted:  # the page shown again after a vote is the same visit
        await usage.record(ctx, tenant["_id"], "view", article["_id"], "help_center")
    base = f"/help/{_e(tenant['slug'])}"
    notices = {"yes": "thanks", "no": "thanks", "again": "again", "nocookie": "nocookie", "slow": "slow_down"}
    notice = t[notices[voted]] if voted in notices else None
    if notice:
        vote_html = f'<p class="hc-vote-done" id="hc-vote-done" role="status">{_e(notice)}</p>'
    else:
        vote_html = f"""<form class="hc-vote" method="post" action="{_article_link(tenant, article)}/vote">
        <span>{_e(t["helpful"])}</span>
        <button type="submit" name="vote" value="yes" class="hc-button"
                id="hc-vote-yes">{_e(t["yes"])}</button>
        <button type="submit" name="vote" value="no" class="hc-button hc-button-secondary"
                id="hc-vote-no">{_e(t["no"])}</button>
      </form>"""
    files = "".join(
        f'<li><a class="hc-file" href="{_article_link(tenant, article)}/files/{_e(a["file_id"])}">'
        f'{_e(a.get("filename"))}</a> <span class="hc-count">{_kb(a.get("size"))}</span></li>'
        for a in article.get("attachments") or []
        if isinstance(a, dict) and a.get("file_id")
    )
    files_html = f'<ul class="hc-files" id="hc-files">{files}</ul>' if files else ""
    updated = article.get("published_at") or article.get("updated_at")
    category = article.get("category")
    crumbs = f'<a href="{base}?locale={lang}">{_e(t["back"])}</a>' + (
        f' › <a href="{base}?{_e(urlencode({"locale": lang, "category": category}))}">{_e(category)}</a>'
        if category
        else ""
    )
    body = f"""    <nav class="hc-crumbs">{crumbs}</nav>
    <article class="hc-article" id="hc-article">
      <h1 class="hc-article-title">{_e(article.get("title"))}</h1>
      {f'<p class="hc-meta">{_e(t["updated"])} {updated:%Y-%m-%d}</p>' if updated else ""}
      <div class="hc-body">{render_markdown(article.get("body") or "")}</div>
      {files_html}
    </article>
    <section class="hc-feedback">{vote_html}</section>"""
    return _with_session(request, _page(tenant, lang, str(article.get("title") or ""), body))


@router.get("/{tenant_slug}/a/{article_slug}/files/{file_id}")
async def attachment(
    tenant_slug: str, article_slug: str, file_id: str, ctx: AppContext = Depends(get_ctx)
) -> Response:
    """A published article's attachment, always as a download (never rendered in our origin)."""
    tenant = await get_tenant_by_slug(ctx, tenant_slug)
    article = await _published(ctx, tenant["_id"], article_slug) if tenant is not None else None
    if tenant is None or article is None:
        return _not_found(tenant)
    try:
        item, data = await articles.load_attachment(ctx, tenant["_id"], article["_id"], file_id)
    except articles.NotFound:
        return _not_found(tenant)
    filename = quote(str(item.get("filename") or "file"))
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{filename}"},
    )


def _kb(size: Any) -> str:
    return f"{int(size or 0) // 1024 + 1} KB"


def _client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/{tenant_slug}/a/{article_slug}/vote")
async def vote(
    tenant_slug: str,
    article_slug: str,
    request: Request,
    vote: str = Form(""),
    ctx: AppContext = Depends(get_ctx),
) -> Response:
    tenant = await get_tenant_by_slug(ctx, tenant_slug)
    if tenant is None:
        return _not_found(None)
    article = await _published(ctx, tenant["_id"], article_slug)
    if article is None or vote not in ("yes", "no"):
        return _not_found(tenant, _locale(request, None, tenant))
    back = f"/help/{tenant['slug']}/a/{article['slug']}?voted="
    session = request.cookies.get(SESSION_COOKIE)
    if not session:
        return RedirectResponse(back + "nocookie", status_code=303)
    if not _limiter(ctx).allow(_client_key(request)):
        return RedirectResponse(back + "slow", status_code=303)
    counted = await usage.record(
        ctx,
        tenant["_id"],
        "helpful" if vote == "yes" else "not_helpful",
        article["_id"],
        "help_center",
        event_id=f"vote:{tenant['_id']}:{session[:64]}:{article['_id']}",
    )
    return RedirectResponse(back + (vote if counted else "again"), status_code=303)


async def _email_vote(ctx: AppContext, tenant: Doc, token: str) -> tuple[Doc, Doc] | None:
    """The contact and the article of an email vote link, when valid for this tenant."""
    try:
        tenant_id, contact_id, article_id = faq_answers.read_vote_token(ctx, token)
    except AuthError:
        return None
    if tenant_id != tenant["_id"]:
        return None
    contact = await ctx.db.contacts.find_one({"_id": contact_id, "tenant_id": tenant_id})
    article = await ctx.db.kb_articles.find_one({"_id": article_id, "tenant_id": tenant_id})
    return (contact, article) if contact is not None and article is not None else None


@router.get("/{tenant_slug}/feedback")
async def email_feedback_page(
    tenant_slug: str, request: Request, token: str = "", vote: str = "", ctx: AppContext = Depends(get_ctx)
) -> Response:
    """The landing page of the email links: one click confirms the answer."""
    tenant = await get_tenant_by_slug(ctx, tenant_slug)
    if tenant is None:
        return _not_found(None)
    found = await _email_vote(ctx, tenant, token)
    asked = found[1].get("locale") if found else None
    lang = str(asked) if asked in LOCALES else _locale(request, None, tenant)
    t = UI[lang]
    if found is None:
        return _page(tenant, lang, t["title"], f"<p>{_e(t['bad_link'])}</p>", status_code=404)
    _, article = found
    chosen = "yes" if vote != "no" else "no"
    body = f"""    <h1 class="hc-article-title">{_e(article.get("title"))}</h1>
    <form class="hc-vote" method="post" action="/help/{_e(tenant["slug"])}/feedback">
      <p>{_e(t["confirm"])}</p>
      <input type="hidden" name="token" value="{_e(token)}">
      <button type="submit" name="vote" value="{chosen}" class="hc-button" id="hc-confirm">
        {_e(t["confirm_yes"] if chosen == "yes" else t["confirm_no"])}</button>
    </form>"""
    return _page(tenant, lang, t["title"], body)


@router.post("/{tenant_slug}/feedback")
async def email_feedback(
    tenant_slug: str,
    request: Request,
    token: str = Form(""),
    vote: str = Form(""),
    ctx: AppContext = Depends(get_ctx),
) -> Response:
    tenant = await get_tenant_by_slug(ctx, tenant_slug)
    if tenant is None:
        return _not_found(None)
    found = await _email_vote(ctx, tenant, token)
    if found is None or vote not in ("yes", "no"):
        return _page(tenant, "en", UI["en"]["title"], f"<p>{_e(UI['en']['bad_link'])}</p>", status_code=404)
    contact, article = found
    lang = str(article["locale"]) if article.get("locale") in LOCALES else "en"
    t = UI[lang]
    if not _limiter(ctx).allow(_client_key(request)):
        return _page(tenant, lang, t["title"], f"<p>{_e(t['slow_down'])}</p>", status_code=429)
    counted = await faq_answers.vote(ctx, contact, article["_id"], vote == "yes", "email")
    message = t["thanks"] if counted else t["again"]
    if counted and vote == "no" and contact.get("status") == "bot":
        await faq_answers.hand_over(ctx, contact)
        message = t["vote_handoff"]
    return _page(tenant, lang, t["title"], f'<p class="hc-vote-done" id="hc-vote-done">{_e(message)}</p>')
