"""Articles and FAQ entries as editors keep them: content, the review workflow, revisions, diff,
rollback and attachments (docs/knowledge.md, "Collections" and "Editing").

Why the workflow looks like this: the bot, the help center and the agents read the top-level
content of a published article, so an edit to a published article goes into `draft` and the
live content stays until the draft is published; an unpublished article is edited in place.
When the tenant requires review (the default), an editor may publish only content that was
submitted for review and that someone else wrote (four eyes); an admin may always publish.

Every change bumps `rev_seq` with a conditional update (two editors saving at once: one wins,
the other gets a conflict) and then writes one immutable `kb_revisions` row: the history of
who changed what and when. A crash between the two loses that one row, never content.
"""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.errors import DuplicateKeyError

from hub.auth import Principal
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow
from knowledge.search import forget, index_fields

KINDS = ("article", "faq")
LOCALES = ("en", "zh")
STATUSES = ("draft", "in_review", "published", "archived")
CONTENT_FIELDS = ("title", "body", "questions", "category", "tags", "locale")
ATTACHMENT_BUCKET = "kb_attachments"
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS = 20
MAX_TITLE = 200
MAX_BODY = 100_000
MAX_QUESTIONS = 50
MAX_TAGS = 20
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}$")
# Fields a reader (agent, supervisor) may see: never the draft or who is writing it.
_READER_FIELDS = (
    "slug",
    "kind",
    *CONTENT_FIELDS,
    "status",
    "version",
    "published_at",
    "attachments",
    "updated_at",
)


class ArticleError(Exception):
    """A refused change; `status` is the HTTP status the API answers with."""

    status = 422


class NotFound(ArticleError):
    status = 404


class Conflict(ArticleError):
    status = 409


class Forbidden(ArticleError):
    status = 403


Content = dict[str, Any]


def _strings(value: Any, name: str, limit: int, each: int) -> list[str]:
    """A list of distinct non-empty strings, in order."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ArticleError(f"{name} must be a list of text")
    out = list(dict.fromkeys(v.strip() for v in value if v.strip()))
    if len(out) > limit:
        raise ArticleError(f"at most {limit} {name}")
    if any(len(v) > each for v in out):
        raise ArticleError(f"each of the {name} has at most {each} characters")
    return out


def clean_content(data: Mapping[str, Any], kind: str) -> Content:
    """The content fields of an article, checked; raises ArticleError saying what is wrong."""
    if kind not in KINDS:
        raise ArticleError(f"kind must be one of {', '.join(KINDS)}")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ArticleError("a title is needed")
    if len(title.strip()) > MAX_TITLE:
        raise ArticleError(f"the title has at most {MAX_TITLE} characters")
    body = data.get("body") or ""
    if not isinstance(body, str):
        raise ArticleError("the body must be text")
    if len(body) > MAX_BODY:
        raise ArticleError(f"the body has at most {MAX_BODY} characters")
    category = data.get("category") or None
    if category is not None and (not isinstance(category, str) or len(category.strip()) > 80):
        raise ArticleError("the category is text of at most 80 characters")
    locale = data.get("locale") or "en"
    if locale not in LOCALES:
        raise ArticleError(f"locale must be one of {', '.join(LOCALES)}")
    questions = _strings(data.get("questions"), "questions", MAX_QUESTIONS, 300)
    tags = _strings(data.get("tags"), "tags", MAX_TAGS, 50)
    if kind == "faq":
        if not questions:
            raise ArticleError("an FAQ entry needs at least one question phrasing")
        if not body.strip():
            raise ArticleError("an FAQ entry needs an answer")
    return {
        "title": title.strip(),
        "body": body.replace("\r\n", "\n").rstrip(),  # trailing blank space means nothing in Markdown
        "questions": questions,
        "category": category.strip() if category else None,
        "tags": tags,
        "locale": locale,
    }


def content_of(source: Mapping[str, Any]) -> Content:
    """The content fields of an article, a draft or a revision (old documents filled in)."""
    return {
        "title": source.get("title", ""),
        "body": source.get("body", ""),
        "questions": list(source.get("questions") or []),
        "category": source.get("category"),
        "tags": list(source.get("tags") or []),
        "locale": source.get("locale") or "en",
    }


def kind_of(article: Mapping[str, Any]) -> str:
    return str(article.get("kind") or "article")


def status_of(article: Mapping[str, Any]) -> str:
    return str(article.get("status") or "published")


def pending(article: Mapping[str, Any]) -> tuple[Content, int, str]:
    """The content an editor works on (the draft if any), its version and its status."""
    draft = article.get("draft")
    if draft:
        return content_of(draft), int(draft["version"]), str(draft["status"])
    return content_of(article), int(article.get("version") or 1), status_of(article)


def latest_version(article: Mapping[str, Any]) -> int:
    draft = article.get("draft") or {}
    return int(
        article.get("latest_version") or max(int(article.get("version") or 1), int(draft.get("version") or 0))
    )


def slugify(title: str) -> str:
    """A URL slug from a title (ASCII); titles without Latin letters get a short random one."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return slug or f"a-{new_id()[:8]}"


def reader_view(article: Doc) -> Doc:
    """What agents and supervisors see: the published content only."""
    return {"_id": article["_id"], **{k: article.get(k) for k in _READER_FIELDS}, "kind": kind_of(article)}


async def require_review(ctx: AppContext, tenant_id: str) -> bool:
    """Whether publishing needs a second editor (tenant setting `kb.require_review`, default yes)."""
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"kb": 1})
    return bool(((tenant or {}).get("kb") or {}).get("require_review", True))


async def set_require_review(ctx: AppContext, tenant_id: str, value: bool) -> None:
    await ctx.db.tenants.update_one({"_id": tenant_id}, {"$set": {"kb.require_review": bool(value)}})


async def get(ctx: AppContext, tenant_id: str, article_id: str) -> Doc:
    article = await ctx.db.kb_articles.find_one({"_id": article_id, "tenant_id": tenant_id})
    if article is None:
        raise NotFound("no such article")
    return article


async def _index(content: Content) -> Doc:
    return await asyncio.to_thread(
        index_fields,
        content["title"],
        content["body"],
        content["questions"],
        content["tags"],
        content["locale"],
    )


def _author(who: Principal) -> Doc:
    return {"id": who.user_id, "name": who.name}


async def _commit(
    ctx: AppContext,
    who: Principal,
    article: Doc,
    action: str,
    *,
    content: Content,
    version: int,
    status: str,
    set_fields: Doc | None = None,
    unset: Sequence[str] = (),
    reindex: bool = False,
    note: str = "",
    extra: Doc | None = None,
) -> Doc:
    """Apply one change if nobody changed the article meanwhile, then write its revision."""
    seq = article.get("rev_seq")
    now = utcnow()
    fields: Doc = {
        **(set_fields or {}),
        "rev_seq": (seq or 0) + 1,
        "updated_at": now,
        "updated_by": who.user_id,
    }
    if reindex:
        fields.update(await _index(content))
    update: Doc = {"$set": fields}
    if unset:
        update["$unset"] = dict.fromkeys(unset, "")
    if extra:
        update.update(extra)
    guard: Doc = {"_id": article["_id"], "tenant_id": article["tenant_id"]}
    guard["rev_seq"] = seq if seq is not None else {"$exists": False}
    result = await ctx.db.kb_articles.update_one(guard, update)
    if result.matched_count == 0:
        raise Conflict("someone else changed this article meanwhile; reload it")
    if seq is None:
        # written before revisions were kept: its content so far becomes revision 0, so the
        # first change can be compared with it and rolled back to it
        system = Principal("", article["tenant_id"], "", "", "", "system", ())
        old = content_of(article)
        version_0 = int(article.get("version") or 1)
        await _revision(ctx, system, article, 0, "imported", old, version_0, status_of(article), "", now)
    await _revision(ctx, who, article, fields["rev_seq"], action, content, version, status, note, now)
    forget(article["tenant_id"])
    return await get(ctx, article["tenant_id"], article["_id"])


async def _revision(
    ctx: AppContext,
    who: Principal,
    article: Doc,
    seq: int,
    action: str,
    content: Content,
    version: int,
    status: str,
    note: str,
    at: Any,
) -> None:
    await ctx.db.kb_revisions.insert_one(
        {
            "_id": new_id(),
            "tenant_id": article["tenant_id"],
            "article_id": article["_id"],
            "seq": seq,
            "version": version,
            "kind": kind_of(article),
            **content,
            "action": action,
            "status": status,
            "by": who.user_id,
            "by_name": who.name,
            "at": at,
            "note": note,
        }
    )


async def create(
    ctx: AppContext,
    who: Principal,
    data: Mapping[str, Any],
    *,
    kind: str = "article",
    slug: str | None = None,
    action: str = "created",
) -> Doc:
    """A new article or FAQ entry, as a draft at version 1."""
    content = clean_content(data, kind)
    if slug is not None and not _SLUG.match(slug):
        raise ArticleError("a slug is 1-80 characters of a-z, 0-9 and '-'")
    now = utcnow()
    article: Doc = {
        "tenant_id": who.tenant_id,
        "kind": kind,
        **content,
        "status": "draft",
        "version": 1,
        "latest_version": 1,
        "published_version": None,
        "published_at": None,
        "draft": None,
        "authors": [_author(who)],
        "attachments": [],
        "created_at": now,
        "created_by": who.user_id,
        "updated_at": now,
        "updated_by": who.user_id,
        "counters": {"views": 0, "bot_uses": 0, "helpful": 0, "not_helpful": 0},
        "rev_seq": 1,
        **await _index(content),
    }
    base = slug or slugify(content["title"])
    for attempt in range(1, 51):
        article["_id"] = new_id()
        article["slug"] = base if attempt == 1 else f"{base[:70]}-{attempt}"
        try:
            await ctx.db.kb_articles.insert_one(article)
            break
        except DuplicateKeyError as exc:
            if slug is not None:
                raise Conflict(f"the slug {slug!r} is taken") from exc
    else:
        raise Conflict("could not find a free slug; give one")
    await _revision(ctx, who, article, 1, action, content, 1, "draft", "", now)
    forget(who.tenant_id)
    return article


async def update(
    ctx: AppContext,
    who: Principal,
    article_id: str,
    data: Mapping[str, Any],
    *,
    base_version: int | None = None,
    action: str = "edited",
    note: str = "",
) -> Doc:
    """Save new content: a published article gets a draft, others change in place.

    `data` may hold only some content fields; the rest stay. `base_version` (the version the
    editor started from) turns a silent overwrite of someone else's save into a conflict.
    Saving the same content again changes nothing.
    """
    article = await get(ctx, who.tenant_id, article_id)
    if status_of(article) == "archived":
        raise Conflict("restore the article before editing it")
    latest = latest_version(article)
    if base_version is not None and base_version != latest:
        raise Conflict(f"version {latest} was saved since you started from version {base_version}; reload")
    current, _, _ = pending(article)
    merged = {**current, **{k: v for k, v in data.items() if k in CONTENT_FIELDS}}
    content = clean_content(merged, kind_of(article))
    if content == current:
        return article
    version = latest + 1
    if status_of(article) == "published":
        authors = _add_author((article.get("draft") or {}).get("authors", []), who)
        draft = {**content, "version": version, "status": "draft", "by": who.user_id, "by_name": who.name}
        draft.update(at=utcnow(), authors=authors)
        return await _commit(
            ctx,
            who,
            article,
            action,
            content=content,
            version=version,
            status="draft",
            set_fields={"draft": draft, "latest_version": version},
            note=note,
        )
    return await _commit(
        ctx,
        who,
        article,
        action,
        content=content,
        version=version,
        status="draft",
        set_fields={
            **content,
            "version": version,
            "latest_version": version,
            "status": "draft",
            "authors": _add_author(article.get("authors", []), who),
        },
        reindex=True,
        note=note,
    )


def _add_author(authors: list[Doc], who: Principal) -> list[Doc]:
    if any(a.get("id") == who.user_id for a in authors):
        return authors
    return [*authors, _author(who)]


async def submit(ctx: AppContext, who: Principal, article_id: str) -> Doc:
    """Ask for review of the pending content."""
    article = await get(ctx, who.tenant_id, article_id)
    content, version, status = pending(article)
    if status == "in_review":
        raise Conflict("already in review")
    if status != "draft":
        raise Conflict("nothing to submit: edit the article first")
    fields = {"draft.status": "in_review"} if article.get("draft") else {"status": "in_review"}
    return await _commit(
        ctx,
        who,
        article,
        "submitted",
        content=content,
        version=version,
        status="in_review",
        set_fields=fields,
    )


async def publish(ctx: AppContext, who: Principal, article_id: str) -> Doc:
    """Make the pending content live (the four-eyes rule applies unless the caller is an admin)."""
    article = await get(ctx, who.tenant_id, article_id)
    content, version, status = pending(article)
    if status not in ("draft", "in_review"):
        raise Conflict("nothing to publish")
    draft = article.get("draft")
    authors = (draft or article).get("authors") or []
    if not who.has_any("admin"):
        if not who.has_any("editor"):
            raise Forbidden("only editors and admins publish")
        if await require_review(ctx, who.tenant_id):
            if status != "in_review":
                raise Conflict("submit it for review first")
            if any(a.get("id") == who.user_id for a in authors):
                raise Forbidden("another editor must review and publish changes you wrote")
    now = utcnow()
    fields: Doc = {
        "status": "published",
        "version": version,
        "published_version": version,
        "published_at": now,
        "published_by": who.user_id,
        "draft": None,
        "authors": [],
    }
    if draft:
        fields.update(content)
    return await _commit(
        ctx,
        who,
        article,
        "published",
        content=content,
        version=version,
        status="published",
        set_fields=fields,
        reindex=bool(draft),
    )


async def archive(ctx: AppContext, who: Principal, article_id: str) -> Doc:
    """Take the article out of search, the bot and the help center (a pending draft is dropped;
    it stays in the revisions)."""
    article = await get(ctx, who.tenant_id, article_id)
    if status_of(article) == "archived":
        raise Conflict("already archived")
    return await _commit(
        ctx,
        who,
        article,
        "archived",
        content=content_of(article),
        version=int(article.get("version") or 1),
        status="archived",
        set_fields={"status": "archived", "draft": None},
    )


async def restore(ctx: AppContext, who: Principal, article_id: str) -> Doc:
    """Bring an archived article back as a draft; it goes through review again."""
    article = await get(ctx, who.tenant_id, article_id)
    if status_of(article) != "archived":
        raise Conflict("only archived articles are restored")
    return await _commit(
        ctx,
        who,
        article,
        "restored",
        content=content_of(article),
        version=int(article.get("version") or 1),
        status="draft",
        set_fields={"status": "draft", "authors": [_author(who)]},
    )


async def discard_draft(ctx: AppContext, who: Principal, article_id: str) -> Doc:
    """Drop the pending draft of a published article (it stays in the revisions)."""
    article = await get(ctx, who.tenant_id, article_id)
    if not article.get("draft"):
        raise Conflict("no draft to discard")
    return await _commit(
        ctx,
        who,
        article,
        "discarded",
        content=content_of(article),
        version=int(article.get("version") or 1),
        status=status_of(article),
        set_fields={"draft": None},
    )


async def revisions(ctx: AppContext, tenant_id: str, article_id: str) -> list[Doc]:
    """Every saved change, oldest first."""
    await get(ctx, tenant_id, article_id)
    cursor = ctx.db.kb_revisions.find({"tenant_id": tenant_id, "article_id": article_id}).sort("seq", 1)
    return [r async for r in cursor]


async def revision(ctx: AppContext, tenant_id: str, article_id: str, version: int) -> Doc:
    """The content of one version (every row of a version holds the same content)."""
    row = await ctx.db.kb_revisions.find_one(
        {"tenant_id": tenant_id, "article_id": article_id, "version": version}
    )
    if row is None:
        raise NotFound(f"no version {version}")
    return row


async def rollback(ctx: AppContext, who: Principal, article_id: str, version: int) -> Doc:
    """A new version with the content of an earlier one, through the same workflow as an edit."""
    old = await revision(ctx, who.tenant_id, article_id, version)
    article = await get(ctx, who.tenant_id, article_id)
    current, _, _ = pending(article)
    if content_of(old) == current:
        raise Conflict(f"the content is already that of version {version}")
    return await update(
        ctx, who, article_id, content_of(old), action="rolled_back", note=f"rolled back to version {version}"
    )


def _lines(old: list[str], new: list[str]) -> list[Doc]:
    """Lines marked kept (" "), removed ("-") or added ("+"), in reading order."""
    out: list[Doc] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out += [{"op": " ", "text": line} for line in old[i1:i2]]
            continue
        out += [{"op": "-", "text": line} for line in old[i1:i2]]
        out += [{"op": "+", "text": line} for line in new[j1:j2]]
    return out


def diff_content(old: Content, new: Content) -> Doc:
    """Per field: title / category / locale as old and new, body by lines, lists as added/removed."""
    fields: Doc = {}
    for name in ("title", "category", "locale"):
        fields[name] = {"old": old[name], "new": new[name], "changed": old[name] != new[name]}
    body_old, body_new = old["body"].splitlines(), new["body"].splitlines()
    fields["body"] = {
        "changed": old["body"] != new["body"],
        "lines": _lines(body_old, body_new),
        "unified": "\n".join(difflib.unified_diff(body_old, body_new, "old", "new", lineterm="")),
    }
    for name in ("questions", "tags"):
        before, after = old[name], new[name]
        fields[name] = {
            "changed": before != after,
            "added": [x for x in after if x not in before],
            "removed": [x for x in before if x not in after],
            "lines": _lines(before, after),
        }
    return fields


async def diff(ctx: AppContext, tenant_id: str, article_id: str, a: int, b: int) -> Doc:
    old = await revision(ctx, tenant_id, article_id, a)
    new = await revision(ctx, tenant_id, article_id, b)
    return {"from": a, "to": b, "fields": diff_content(content_of(old), content_of(new))}


def _bucket(ctx: AppContext) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(ctx.db.db, bucket_name=ATTACHMENT_BUCKET)


def _filename(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = re.sub(r"[\x00-\x1f\x7f\"]", "", name)[:200]
    return name or "attachment"


async def add_attachment(
    ctx: AppContext, who: Principal, article_id: str, filename: str, content_type: str, data: bytes
) -> Doc:
    """Store a file with the article (GridFS, tagged with the tenant); limits in size and count."""
    article = await get(ctx, who.tenant_id, article_id)
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise ArticleError(f"an attachment has at most {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB")
    if not data:
        raise ArticleError("the file is empty")
    if len(article.get("attachments") or []) >= MAX_ATTACHMENTS:
        raise ArticleError(f"at most {MAX_ATTACHMENTS} attachments per article")
    name = _filename(filename)
    content_type = content_type if re.match(r"^[\w.+-]+/[\w.+-]+$", content_type or "") else ""
    content_type = content_type or "application/octet-stream"
    file_id = await _bucket(ctx).upload_from_stream(
        name,
        data,
        metadata={"tenant_id": who.tenant_id, "article_id": article_id, "content_type": content_type},
    )
    item = {"file_id": str(file_id), "filename": name, "size": len(data), "content_type": content_type}
    content, version, status = pending(article)
    try:
        return await _commit(
            ctx,
            who,
            article,
            "attached",
            content=content,
            version=version,
            status=status,
            extra={"$push": {"attachments": item}},
            note=name,
        )
    except ArticleError:
        await _bucket(ctx).delete(file_id)
        raise


def _oid(file_id: str) -> ObjectId:
    try:
        return ObjectId(file_id)
    except (InvalidId, TypeError) as exc:
        raise NotFound("no such attachment") from exc


async def load_attachment(
    ctx: AppContext, tenant_id: str, article_id: str, file_id: str
) -> tuple[Doc, bytes]:
    """The attachment's entry and bytes, only if it belongs to this article of this tenant."""
    article = await get(ctx, tenant_id, article_id)
    item = next((a for a in article.get("attachments") or [] if a["file_id"] == file_id), None)
    oid = _oid(file_id)
    info = await ctx.db.db[f"{ATTACHMENT_BUCKET}.files"].find_one(
        {"_id": oid, "metadata.tenant_id": tenant_id, "metadata.article_id": article_id}
    )
    if item is None or info is None:
        raise NotFound("no such attachment")
    try:
        stream = await _bucket(ctx).open_download_stream(oid)
        data = await stream.read()
    except NoFile as exc:
        raise NotFound("no such attachment") from exc
    return item, data


async def remove_attachment(ctx: AppContext, who: Principal, article_id: str, file_id: str) -> Doc:
    article = await get(ctx, who.tenant_id, article_id)
    item = next((a for a in article.get("attachments") or [] if a["file_id"] == file_id), None)
    if item is None:
        raise NotFound("no such attachment")
    content, version, status = pending(article)
    updated = await _commit(
        ctx,
        who,
        article,
        "detached",
        content=content,
        version=version,
        status=status,
        extra={"$pull": {"attachments": {"file_id": file_id}}},
        note=item["filename"],
    )
    try:
        await _bucket(ctx).delete(_oid(file_id))
    except NoFile:
        pass
    return updated


async def categories(ctx: AppContext, tenant_id: str, published_only: bool = False) -> list[Doc]:
    """The categories in use with their article counts."""
    match: Doc = {"tenant_id": tenant_id, "category": {"$ne": None}}
    if published_only:
        match["status"] = {"$in": ["published", None]}
    pipeline: list[Doc] = [
        {"$match": match},
        {"$group": {"_id": "$category", "count": {"$sum": 1}}},
        {"$sort": {"_id": 1}},
    ]
    cursor = await ctx.db.kb_articles.aggregate(pipeline)
    return [{"name": row["_id"], "count": row["count"]} async for row in cursor if row["_id"]]
