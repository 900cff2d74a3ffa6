"""The knowledge base as the bot, the screen pop, email auto-answers and demo data use it:
publish an article in one call, search the published ones. Editing with revisions and review
lives in knowledge/articles.py; ranking in knowledge/search.py (docs/knowledge.md)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from knowledge.articles import latest_version
from knowledge.search import CONFIDENT, Hit, forget, index_fields
from knowledge.search import search as search_kb

__all__ = ["CONFIDENT", "Hit", "public_article", "search", "upsert_article"]


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80] or new_id()


async def upsert_article(
    ctx: AppContext,
    tenant_id: str,
    title: str,
    body: str,
    tags: list[str] | None = None,
    slug: str | None = None,
    *,
    kind: str = "article",
    questions: list[str] | None = None,
    category: str | None = None,
    locale: str = "en",
) -> Doc:
    """Create or replace a published article by slug in one call (demo data, tests).

    It skips the review workflow of knowledge/articles.py but still writes a revision, so the
    history an editor sees stays complete; title words and FAQ phrasings count double in search.
    """
    slug = slug or _slug(title)
    now = utcnow()
    content: Doc = {
        "title": title,
        "body": body,
        "questions": list(questions or []),
        "category": category,
        "tags": list(tags or []),
        "locale": locale,
    }
    existing = await ctx.db.kb_articles.find_one(
        {"tenant_id": tenant_id, "slug": slug}, {"latest_version": 1, "version": 1, "draft": 1, "rev_seq": 1}
    )
    version = latest_version(existing) + 1 if existing else 1
    seq = int(existing.get("rev_seq") or 0) + 1 if existing else 1
    fields: Doc = {
        **content,
        "kind": kind,
        "status": "published",
        "version": version,
        "latest_version": version,
        "published_version": version,
        "published_at": now,
        "draft": None,
        "authors": [],
        "rev_seq": seq,
        **await asyncio.to_thread(index_fields, title, body, content["questions"], content["tags"], locale),
        "updated_at": now,
    }
    forget(tenant_id)
    await ctx.db.kb_articles.update_one(
        {"tenant_id": tenant_id, "slug": slug},
        {
            "$set": fields,
            "$setOnInsert": {
                "_id": new_id(),
                "created_at": now,
                "attachments": [],
                "counters": {"views": 0, "bot_uses": 0, "helpful": 0, "not_helpful": 0},
            },
        },
        upsert=True,
    )
    article = await ctx.db.kb_articles.find_one({"tenant_id": tenant_id, "slug": slug})
    assert article is not None
    await ctx.db.kb_revisions.insert_one(
        {
            "_id": new_id(),
            "tenant_id": tenant_id,
            "article_id": article["_id"],
            "seq": seq,
            "version": version,
            "kind": kind,
            **content,
            "action": "published",
            "status": "published",
            "by": None,
            "by_name": "system",
            "at": now,
            "note": "published in one call (upsert_article)",
        }
    )
    return article


async def search(ctx: AppContext, tenant_id: str, query: str, limit: int = 5) -> list[Hit]:
    """The published articles best matching `query` (knowledge.search, hybrid ranking)."""
    return await search_kb(ctx, tenant_id, query, limit=limit)


def public_article(article: Doc, score: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": article["_id"],
        "slug": article["slug"],
        "title": article["title"],
        "body": article["body"],
        "tags": article.get("tags", []),
        "updated_at": iso(article.get("updated_at")),
    }
    if score is not None:
        out["score"] = round(score, 3)
    return out
