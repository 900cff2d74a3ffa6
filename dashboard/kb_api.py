"""Knowledge-base editor API (`/api/kb/...`): articles and FAQ entries, the review workflow,
revisions, diff, rollback, attachments, import / export and a Markdown preview.

Editors and admins write and see drafts; supervisors and agents read published content only
(never a draft, the authors or the history). Every lookup is by the caller's tenant, so
another tenant's ids answer 404. The rules themselves live in knowledge/articles.py; each
article carries `actions`, what the caller may do next, so the page shows only the buttons
that will work.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import iso
from knowledge import articles, kb_transfer
from knowledge.articles import ArticleError
from knowledge.render import render_markdown
from knowledge.search import search

router = APIRouter(prefix="/api/kb")
WRITER = require_roles("editor", "admin")
READER = require_roles("editor", "admin", "supervisor", "agent")
ADMIN = require_roles("admin")
_MULTIPART_SLACK = 64 * 1024
# revision numbers: a bigger one is a 422, not a BSON int64 overflow in the driver
MAX_VERSION = 2**31 - 1


class ArticleIn(BaseModel):
    kind: Literal["article", "faq"] = "article"
    slug: str | None = None
    title: str = ""
    body: str = ""
    questions: list[str] = Field(default_factory=list)
    category: str | None = None
    tags: list[str] = Field(default_factory=list)
    locale: str = "en"


class ArticleUpdate(BaseModel):
    title: str | None = None
    body: str | None = None
    questions: list[str] | None = None
    category: str | None = None
    tags: list[str] | None = None
    locale: str | None = None
    base_version: int | None = Field(default=None, ge=0, le=MAX_VERSION)


class RollbackIn(BaseModel):
    version: int = Field(ge=1, le=MAX_VERSION)


class PreviewIn(BaseModel):
    markdown: str = Field(default="", max_length=articles.MAX_BODY)


class SettingsIn(BaseModel):
    require_review: bool


def _fail(exc: ArticleError | kb_transfer.TransferError) -> HTTPException:
    return HTTPException(getattr(exc, "status", 422), str(exc))


def is_writer(principal: Principal) -> bool:
    return principal.has_any("editor", "admin")


def allowed_actions(article: Doc, principal: Principal, review: bool) -> list[str]:
    """What the caller may do next; mirrors the checks in knowledge/articles.py."""
    if not is_writer(principal):
        return []
    status = articles.status_of(article)
    _, _, pending_status = articles.pending(article)
    authors = (article.get("draft") or article).get("authors") or []
    out: list[str] = []
    if status == "archived":
        return ["restore"]
    out.append("edit")
    if pending_status == "draft":
        out.append("submit")
    if pending_status in ("draft", "in_review"):
        own = any(a.get("id") == principal.user_id for a in authors)
        if principal.has_any("admin") or not review or (pending_status == "in_review" and not own):
            out.append("publish")
    if article.get("draft"):
        out.append("discard")
    out.append("archive")
    return out


def editor_view(article: Doc, principal: Principal, review: bool) -> Doc:
    content, version, pending_status = articles.pending(article)
    draft = article.get("draft")
    return {
        "id": article["_id"],
        "slug": article["slug"],
        "kind": articles.kind_of(article),
        **articles.content_of(article),
        "status": articles.status_of(article),
        "version": int(article.get("version") or 1),
        "latest_version": articles.latest_version(article),
        "published_version": article.get("published_version"),
        "published_at": iso(article.get("published_at")),
        "pending": {"content": content, "version": version, "status": pending_status},
        "draft": None
        if not draft
        else {
            "version": draft["version"],
            "status": draft["status"],
            "by_name": draft.get("by_name"),
            "at": iso(draft.get("at")),
        },
        "authors": [a.get("name") for a in (draft or article).get("authors") or []],
        "attachments": article.get("attachments") or [],
        "counters": article.get("counters") or {},
        "created_at": iso(article.get("created_at")),
        "updated_at": iso(article.get("updated_at")),
        "actions": allowed_actions(article, principal, review),
        "require_review": review,
    }


def reader_out(article: Doc) -> Doc:
    view = articles.reader_view(article)
    return {
        "id": view.pop("_id"),
        **view,
        "published_at": iso(view.get("published_at")),
        "updated_at": iso(view.get("updated_at")),
        "html": render_markdown(view.get("body") or ""),
    }


def summary(article: Doc, score: float | None = None) -> Doc:
    content, version, pending_status = articles.pending(article)
    return {
        "id": article["_id"],
        "slug": article["slug"],
        "kind": articles.kind_of(article),
        "title": content["title"],
        "category": content["category"],
        "locale": content["locale"],
        "tags": content["tags"],
        "status": articles.status_of(article),
        "pending_status": pending_status,
        "version": version,
        "has_draft": bool(article.get("draft")),
        "updated_at": iso(article.get("updated_at")),
        **({"score": round(score, 4)} if score is not None else {}),
    }


async def _article(ctx: AppContext, principal: Principal, article_id: str) -> Doc:
    try:
        article = await articles.get(ctx, principal.tenant_id, article_id)
    except ArticleError as exc:
        raise _fail(exc) from exc
    if not is_writer(principal) and articles.status_of(article) != "published":
        raise HTTPException(404, "no such article")
    return article


async def _out(ctx: AppContext, principal: Principal, article: Doc) -> Doc:
    if not is_writer(principal):
        return reader_out(article)
    return editor_view(article, principal, await articles.require_review(ctx, principal.tenant_id))


def _matches(article: Doc, status: str | None) -> bool:
    if status is None:
        return True
    return articles.status_of(article) == status or articles.pending(article)[2] == status


def filter_query(status: str | None, locale: str | None, category: str | None, kind: str | None) -> Doc:
    """Filters for `kb_articles`; draft / in review also match a published article's draft."""
    query: Doc = {}
    if status in ("draft", "in_review"):
        query["$or"] = [{"status": status}, {"draft.status": status}]
    elif status == "published":
        query["status"] = {"$in": ["published", None]}
    elif status:
        query["status"] = status
    if locale:
        query["locale"] = {"$in": [locale, None]} if locale == "en" else locale
    if category:
        query["category"] = category
    if kind:
        query["kind"] = {"$in": [kind, None]} if kind == "article" else kind
    return query


@router.get("/articles")
async def list_articles(
    status: Literal["draft", "in_review", "published", "archived"] | None = None,
    locale: str | None = None,
    category: str | None = None,
    kind: Literal["article", "faq"] | None = None,
    q: str | None = Query(default=None, max_length=500),
    limit: int = Query(default=200, ge=1, le=1000),
    principal: Principal = READER,
    ctx: AppContext = Depends(get_ctx),
) -> list[Doc]:
    """Articles by filters; with `q`, ranked by the hybrid search over every status (editors)."""
    if not is_writer(principal):
        status = "published"
    if q and q.strip():
        hits = await search(
            ctx,
            principal.tenant_id,
            q,
            locale=locale or None,
            category=category or None,
            statuses=("published",) if status == "published" and not is_writer(principal) else None,
            kinds=(kind,) if kind else None,
            limit=limit,
        )
        return [summary(h.article, h.score) for h in hits if _matches(h.article, status)]
    query = {"tenant_id": principal.tenant_id, **filter_query(status, locale, category, kind)}
    cursor = (
        ctx.db.kb_articles.find(query, {"terms": 0, "term_freq": 0, "embedding": 0})
        .sort("updated_at", -1)
        .limit(limit)
    )
    return [summary(a) async for a in cursor]


@router.post("/articles", status_code=201)
async def create_article(
    body: ArticleIn, principal: Principal = WRITER, ctx: AppContext = Depends(get_ctx)
) -> Doc:
    try:
        article = await articles.create(
            ctx, principal, body.model_dump(exclude={"kind", "slug"}), kind=body.kind, slug=body.slug or None
        )
    except ArticleError as exc:
        raise _fail(exc) from exc
    return await _out(ctx, principal, article)


@router.get("/articles/{article_id}")
async def get_article(
    article_id: str, principal: Principal = READER, ctx: AppContext = Depends(get_ctx)
) -> Doc:
    return await _out(ctx, principal, await _article(ctx, principal, article_id))


@router.put("/articles/{article_id}")
async def update_article(
    article_id: str, body: ArticleUpdate, principal: Principal = WRITER, ctx: AppContext = Depends(get_ctx)
) -> Doc:
    data = body.model_dump(exclude={"base_version"}, exclude_unset=True)
    try:
        article = await articles.update(ctx, principal, article_id, data, base_version=body.base_version)
    except ArticleError as exc:
        raise _fail(exc) from exc
    return await _out(ctx, principal, article)


def _revision_out(row: Doc) -> Doc:
    return {
        "seq": row["seq"],
        "version": row["version"],
        "action": row["action"],
        "status": row["status"],
        "by_name": row.get("by_name"),
        "at": iso(row.get("at")),
        "note": row.get("note") or "",
        **articles.content_of(row),
    }


@router.get("/articles/{article_id}/revisions")
async def list_revisions(
    article_id: str, principal: Principal = WRITER, ctx: AppContext = Depends(get_ctx)
) -> list[Doc]:
    try:
        rows = await articles.revisions(ctx, principal.tenant_id, article_id)
    except ArticleError as exc:
        raise _fail(exc) from exc
    return [_revision_out(r) for r in rows]


@router.get("/articles/{article_id}/diff")
async def diff_versions(
    article_id: str,
    a: int = Query(ge=1, le=MAX_VERSION),
    b: int = Query(ge=1, le=MAX_VERSION),
    principal: Principal = WRITER,
    ctx: AppContext = Depends(get_ctx),
) -> Doc:
    try:
        return await articles.diff(ctx, principal.tenant_id, article_id, a, b)
    except ArticleError as exc:
        raise _fail(exc) from exc


@router.post("/articles/{article_id}/rollback")
async def rollback(
    article_id: str, body: RollbackIn, principal: Principal = WRITER, ctx: AppContext = Depends(get_ctx)
) -> Doc:
    try:
        article = await articles.rollback(ctx, principal, article_id, body.version)
    except ArticleError as exc:
        raise _fail(exc) from exc
    return await _out(ctx, principal, article)


@router.post("/articles/{article_id}/attachments", status_code=201)
async def upload_attachment(
    article_id: str, request: Request, principal: Principal = WRITER, ctx: AppContext = Depends(get_ctx)
) -> Doc:
    """One file in the multipart field `file` (10 MB at most)."""
    await _article(ctx, principal, article_id)
    limit = articles.MAX_ATTACHMENT_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + _MULTIPART_SLACK:
        raise HTTPException(413, f"an attachment has at most {limit // (1024 * 1024)} MB")
    form = await request.form(max_files=1, max_fields=4, max_part_size=limit + 1)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise HTTPException(422, "send the file as the multipart field 'file'")
        data = await upload.read(limit + 1)
        name, content_type = upload.filename, upload.content_type or ""
    finally:
        await form.close()
    try:
        article = await articles.add_attachment(ctx, principal, article_id, name, content_type, data)
    except ArticleError as exc:
        raise _fail(exc) from exc
    return await _out(ctx, principal, article)


@router.get("/articles/{article_id}/attachments/{file_id}")
async def download_attachment(
    article_id: str, file_id: str, principal: Principal = READER, ctx: AppContext = Depends(get_ctx)
) -> Response:
    await _article(ctx, principal, article_id)
    try:
        item, data = await articles.load_attachment(ctx, principal.tenant_id, article_id, file_id)
    except ArticleError as exc:
        raise _fail(exc) from exc
    return Response(
        data,
        media_type=item["content_type"],
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(item['filename'])}",
            "Content-Security-Policy": "sandbox",
        },
    )


@router.delete("/articles/{article_id}/attachments/{file_id}")
async def delete_attachment(
    article_id: str, file_id: str, principal: Principal = WRITER, ctx: AppContext = Depends(get_ctx)
) -> Doc:
    try:
        article = await articles.remove_attachment(ctx, principal, article_id, file_id)
    except ArticleError as exc:
        raise _fail(exc) from exc
    return await _out(ctx, principal, article)


@router.post("/preview")
async def preview(body: PreviewIn, principal: Principal = READER) -> Doc:
    """The Markdown as the help center and the agents will see it (raw HTML disabled)."""
    return {"html": render_markdown(body.markdown)}


@router.get("/categories")
async def list_categories(principal: Principal = READER, ctx: AppContext = Depends(get_ctx)) -> list[Doc]:
    return await articles.categories(ctx, principal.tenant_id, published_only=not is_writer(principal))


@router.get("/settings")
async def get_settings(principal: Principal = READER, ctx: AppContext = Depends(get_ctx)) -> Doc:
    return {
        "require_review": await articles.require_review(ctx, principal.tenant_id),
        "locales": list(articles.LOCALES),
        "max_attachment_bytes": articles.MAX_ATTACHMENT_BYTES,
    }


@router.put("/settings")
async def put_settings(
    body: SettingsIn, principal: Principal = ADMIN, ctx: AppContext = Depends(get_ctx)
) -> Doc:
    await articles.set_require_review(ctx, principal.tenant_id, body.require_review)
    return await get_settings(principal, ctx)


@router.post("/import")
async def import_file(
    request: Request, principal: Principal = WRITER, ctx: AppContext = Depends(get_ctx)
) -> Doc:
    """A .csv, .xlsx or .zip of Markdown files in `file`; `publish=true` publishes (if allowed)."""
    limit = kb_transfer.MAX_IMPORT_BYTES
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + _MULTIPART_SLACK:
        raise HTTPException(413, "the file is larger than 20 MB; split it")
    form = await request.form(max_files=1, max_fields=4, max_part_size=limit + 1)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise HTTPException(422, "send the file as the multipart field 'file'")
        data = await upload.read(limit + 1)
        filename = upload.filename
        publish = str(form.get("publish") or "").lower() in ("1", "true", "yes", "on")
    finally:
        await form.close()
    try:
        report = await kb_transfer.import_articles(ctx, principal, data, filename, publish=publish)
    except (ArticleError, kb_transfer.TransferError) as exc:
        raise _fail(exc) from exc
    return report.to_dict()


@router.get("/export")
async def export_file(
    format: Literal["csv", "xlsx", "md"] = "csv",
    status: Literal["draft", "in_review", "published", "archived"] | None = None,
    locale: str | None = None,
    category: str | None = None,
    kind: Literal["article", "faq"] | None = None,
    principal: Principal = WRITER,
    ctx: AppContext = Depends(get_ctx),
) -> Response:
    query = filter_query(status, locale, category, kind)
    data = await kb_transfer.export_articles(ctx, principal.tenant_id, format, query)
    extension = {"csv": "csv", "xlsx": "xlsx", "md": "zip"}[format]
    return Response(
        data,
        media_type=kb_transfer.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="knowledge-base.{extension}"'},
    )


# Last: the generic path would otherwise catch POST .../rollback and .../attachments.
ACTIONS = {
    "submit": articles.submit,
    "publish": articles.publish,
    "archive": articles.archive,
    "restore": articles.restore,
    "discard": articles.discard_draft,
}


@router.post("/articles/{article_id}/{action}")
async def workflow_action(
    article_id: str,
    action: Literal["submit", "publish", "archive", "restore", "discard"],
    principal: Principal = WRITER,
    ctx: AppContext = Depends(get_ctx),
) -> Doc:
    try:
        article = await ACTIONS[action](ctx, principal, article_id)
    except ArticleError as exc:
        raise _fail(exc) from exc
    return await _out(ctx, principal, article)
