"""Knowledge-base articles and their search (BM25 over stored term frequencies)."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from knowledge.text import terms

K1 = 1.2
B = 0.75
# Below this coverage of the question the bot hands over instead of answering.
CONFIDENT = 0.5


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:80] or new_id()


async def upsert_article(
    ctx: AppContext,
    tenant_id: str,
    title: str,
    body: str,
    tags: list[str] | None = None,
    slug: str | None = None,
) -> Doc:
    """Create or replace an article by slug; title words count double in search."""
    slug = slug or _slug(title)
    words = terms(title) * 2 + terms(body) + [t for tag in tags or [] for t in terms(tag)]
    freq = Counter(words)
    now = utcnow()
    fields: Doc = {
        "title": title,
        "body": body,
        "tags": tags or [],
        "terms": sorted(freq),
        "term_freq": dict(freq),
        "length": len(words),
        "updated_at": now,
    }
    _stats.pop(tenant_id, None)
    await ctx.db.kb_articles.update_one(
        {"tenant_id": tenant_id, "slug": slug},
        {"$set": fields, "$setOnInsert": {"_id": new_id(), "created_at": now}},
        upsert=True,
    )
    article = await ctx.db.kb_articles.find_one({"tenant_id": tenant_id, "slug": slug})
    assert article is not None
    return article


@dataclass(frozen=True)
class Hit:
    article: Doc
    score: float
    # Share of the query's information (idf-weighted terms) that the article contains:
    # 1.0 when every query term is in it. Unlike the BM25 score it does not depend on
    # how many articles the tenant has, so one threshold works for every tenant.
    coverage: float


async def search(ctx: AppContext, tenant_id: str, query: str, limit: int = 5) -> list[Hit]:
    """BM25 over the tenant's articles that share at least one term with the query."""
    query_terms = list(dict.fromkeys(terms(query)))
    if not query_terms:
        return []
    stats = await corpus_stats(ctx, tenant_id)
    total = stats.total
    if total == 0:
        return []
    candidates = [
        a async for a in ctx.db.kb_articles.find({"tenant_id": tenant_id, "terms": {"$in": query_terms}})
    ]
    if not candidates:
        return []
    avg_len = stats.avg_len or 1.0
    idf = {
        term: math.log(1 + (total - stats.df.get(term, 0) + 0.5) / (stats.df.get(term, 0) + 0.5))
        for term in query_terms
    }
    query_weight = sum(idf.values())
    hits: list[Hit] = []
    for article in candidates:
        score = 0.0
        covered = 0.0
        for term in query_terms:
            tf = article["term_freq"].get(term, 0)
            if not tf:
                continue
            covered += idf[term]
            score += idf[term] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * article["length"] / avg_len))
        hits.append(Hit(article, score, covered / query_weight if query_weight else 0.0))
    hits.sort(key=lambda hit: (hit.score, hit.coverage), reverse=True)
    return hits[:limit]


@dataclass(frozen=True)
class CorpusStats:
    total: int
    avg_len: float
    df: dict[str, int]  # articles containing each term
    expires: float


# Corpus statistics per tenant, kept briefly: recomputing them cost a dozen database
# requests per question (bench/chat.py showed the KB question as the slowest turn).
# Edits in this process drop the entry at once; other processes see them within the TTL,
# which only shifts rankings slightly.
STATS_TTL_S = 30.0
_stats: dict[str, CorpusStats] = {}


async def corpus_stats(ctx: AppContext, tenant_id: str) -> CorpusStats:
    now = time.monotonic()
    cached = _stats.get(tenant_id)
    if cached is not None and cached.expires > now:
        return cached
    df: Counter[str] = Counter()
    total = 0
    length = 0
    async for article in ctx.db.kb_articles.find({"tenant_id": tenant_id}, {"terms": 1, "length": 1}):
        total += 1
        length += article.get("length", 0)
        df.update(article.get("terms", []))
    stats = CorpusStats(total, length / total if total else 1.0, dict(df), now + STATS_TTL_S)
    _stats[tenant_id] = stats
    return stats


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
