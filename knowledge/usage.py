"""Knowledge-base usage: events (views, bot uses, votes, searches) and their statistics.

Every use is one `kb_events` document (docs/knowledge.md); the article's `counters` are bumped
at the same time so lists can sort by them cheaply, but the statistics editors see are
aggregated from the events, so they can be cut by period. Aggregation pipelines use only
`$match`, `$group` and `$sort` (what the embedded SecantusDB supports well); pivoting the
per-type counts into one row per article happens in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pymongo.errors import DuplicateKeyError

from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from knowledge.search import Hit, confident

EventType = Literal["view", "bot_use", "helpful", "not_helpful", "search"]
ARTICLE_EVENTS: tuple[EventType, ...] = ("view", "bot_use", "helpful", "not_helpful")
COUNTER_OF: dict[str, str] = {
    "view": "views",
    "bot_use": "bot_uses",
    "helpful": "helpful",
    "not_helpful": "not_helpful",
}
CHANNELS = ("help_center", "webchat", "sms", "email", "voice", "agent", "editor")
MAX_QUERY_CHARS = 200


def normalise_query(query: str) -> str:
    """One spelling per question, so "Reset  Password" and "reset password" count together."""
    return " ".join(query.split()).lower()[:MAX_QUERY_CHARS]


async def record(
    ctx: AppContext,
    tenant_id: str,
    kind: EventType,
    article_id: str,
    channel: str,
    *,
    contact_id: str | None = None,
    event_id: str | None = None,
) -> bool:
    """Store one article event and bump the article's counter.

    `event_id` makes the event idempotent (e.g. one vote per browser session and article):
    a second event with the same id is ignored and False is returned.
    """
    event: Doc = {
        "_id": event_id or new_id(),
        "tenant_id": tenant_id,
        "type": kind,
        "article_id": article_id,
        "channel": channel,
        "contact_id": contact_id,
        "at": utcnow(),
    }
    try:
        await ctx.db.kb_events.insert_one(event)
    except DuplicateKeyError:
        return False
    await ctx.db.kb_articles.update_one(
        {"_id": article_id, "tenant_id": tenant_id}, {"$inc": {f"counters.{COUNTER_OF[kind]}": 1}}
    )
    return True


async def record_search(
    ctx: AppContext,
    tenant_id: str,
    query: str,
    hits: Sequence[Hit],
    channel: str,
    *,
    contact_id: str | None = None,
) -> bool:
    """Store a search and whether it found a good result (a content gap when not); returns that."""
    good = bool(hits) and confident(hits[0])
    normalised = normalise_query(query)
    if not normalised:
        return good
    await ctx.db.kb_events.insert_one(
        {
            "_id": new_id(),
            "tenant_id": tenant_id,
            "type": "search",
            "article_id": None,
            "channel": channel,
            "query": normalised,
            "results": len(hits),
            "top_score": round(float(hits[0].score), 4) if hits else 0.0,
            "top_article_id": hits[0].article["_id"] if hits else None,
            "good": good,
            "contact_id": contact_id,
            "at": utcnow(),
        }
    )
    return good


def _since(days: int | None) -> datetime | None:
    return utcnow() - timedelta(days=days) if days else None


def _match(tenant_id: str, since: datetime | None, **fields: Any) -> Doc:
    match: Doc = {"tenant_id": tenant_id, **fields}
    if since is not None:
        match["at"] = {"$gte": since}
    return match


async def article_stats(
    ctx: AppContext, tenant_id: str, *, days: int | None = 30, limit: int = 100
) -> list[dict[str, Any]]:
    """Per article: views, bot uses, helpful / not helpful and the helpful ratio, busiest first."""
    pipeline = [
        {"$match": _match(tenant_id, _since(days), type={"$in": list(ARTICLE_EVENTS)})},
        {"$group": {"_id": {"article_id": "$article_id", "type": "$type"}, "n": {"$sum": 1}}},
    ]
    rows: dict[str, dict[str, Any]] = {}
    async for group in await ctx.db.kb_events.aggregate(pipeline):
        key = group["_id"]
        row = rows.setdefault(
            key["article_id"], {"article_id": key["article_id"], **dict.fromkeys(COUNTER_OF.values(), 0)}
        )
        row[COUNTER_OF[key["type"]]] = group["n"]
    articles = {
        a["_id"]: a
        async for a in ctx.db.kb_articles.find(
            {"tenant_id": tenant_id, "_id": {"$in": list(rows)}},
            {"title": 1, "slug": 1, "kind": 1, "locale": 1, "status": 1, "category": 1},
        )
    }
    out = []
    for article_id, row in rows.items():
        article = articles.get(article_id)
        if article is None:  # deleted since
            continue
        votes = row["helpful"] + row["not_helpful"]
        out.append(
            {
                **row,
                "title": article.get("title"),
                "slug": article.get("slug"),
                "kind": article.get("kind", "article"),
                "locale": article.get("locale", "en"),
                "status": article.get("status", "published"),
                "category": article.get("category"),
                "helpful_ratio": round(row["helpful"] / votes, 3) if votes else None,
            }
        )
    out.sort(key=lambda r: (-(r["views"] + r["bot_uses"]), -r["helpful"], r["title"] or ""))
    return out[:limit]


async def content_gaps(
    ctx: AppContext, tenant_id: str, *, days: int | None = 30, limit: int = 50
) -> list[dict[str, Any]]:
    """Searches with no good result: the query, how often it was asked, when last, best score."""
    pipeline: list[Doc] = [
        {"$match": _match(tenant_id, _since(days), type="search", good=False)},
        {
            "$group": {
                "_id": "$query",
                "count": {"$sum": 1},
                "last_seen": {"$max": "$at"},
                "best_score": {"$max": "$top_score"},
            }
        },
        {"$sort": {"count": -1, "last_seen": -1}},
        {"$limit": limit},
    ]
    return [
        {
            "query": g["_id"],
            "count": g["count"],
            "last_seen": iso(g["last_seen"]),
            "best_score": g.get("best_score") or 0.0,
        }
        async for g in await ctx.db.kb_events.aggregate(pipeline)
    ]


async def top_searches(
    ctx: AppContext, tenant_id: str, *, days: int | None = 30, limit: int = 20
) -> list[dict[str, Any]]:
    """The most asked queries, with how many of them found a good result."""
    pipeline = [
        {"$match": _match(tenant_id, _since(days), type="search")},
        {"$group": {"_id": {"query": "$query", "good": "$good"}, "n": {"$sum": 1}, "last": {"$max": "$at"}}},
    ]
    rows: dict[str, dict[str, Any]] = {}
    async for group in await ctx.db.kb_events.aggregate(pipeline):
        query = group["_id"]["query"]
        row = rows.setdefault(query, {"query": query, "count": 0, "good": 0, "last_seen": None})
        row["count"] += group["n"]
        row["good"] += group["n"] if group["_id"].get("good") else 0
        if row["last_seen"] is None or group["last"] > row["last_seen"]:
            row["last_seen"] = group["last"]
    ranked = sorted(rows.values(), key=lambda r: (-r["count"], r["query"]))[:limit]
    return [{**r, "last_seen": iso(r["last_seen"])} for r in ranked]


async def totals(ctx: AppContext, tenant_id: str, *, days: int | None = 30) -> dict[str, Any]:
    """Event counts by type (and searches without a good result) over the period."""
    pipeline = [
        {"$match": _match(tenant_id, _since(days))},
        {"$group": {"_id": {"type": "$type", "good": "$good"}, "n": {"$sum": 1}}},
    ]
    out: dict[str, Any] = {
        **dict.fromkeys(COUNTER_OF.values(), 0),
        "searches": 0,
        "searches_without_result": 0,
    }
    async for group in await ctx.db.kb_events.aggregate(pipeline):
        kind, n = group["_id"]["type"], group["n"]
        if kind == "search":
            out["searches"] += n
            if group["_id"].get("good") is False:
                out["searches_without_result"] += n
        elif kind in COUNTER_OF:
            out[COUNTER_OF[kind]] += n
    votes = out["helpful"] + out["not_helpful"]
    out["helpful_ratio"] = round(out["helpful"] / votes, 3) if votes else None
    return out


async def statistics(ctx: AppContext, tenant_id: str, *, days: int | None = 30) -> dict[str, Any]:
    """Everything the editors' statistics page shows, for the last `days` days (None: all time)."""
    return {
        "days": days,
        "totals": await totals(ctx, tenant_id, days=days),
        "articles": await article_stats(ctx, tenant_id, days=days),
        "content_gaps": await content_gaps(ctx, tenant_id, days=days),
        "top_searches": await top_searches(ctx, tenant_id, days=days),
    }
