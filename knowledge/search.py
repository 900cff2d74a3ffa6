"""Knowledge-base search: the index fields of an article and its ranking (docs/knowledge.md).

Full text is BM25 over term frequencies stored on each article (the embedded database has
no text index). `coverage` — the idf-weighted share of the query's terms an article holds —
does not depend on the corpus size, so one confidence threshold suits every tenant.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hub.context import AppContext
from hub.db import Doc
from knowledge.text import terms

K1 = 1.2
B = 0.75
CONFIDENT = 0.5  # coverage below which the bot hands over instead of answering
Mode = Literal["hybrid", "fulltext", "semantic"]


def index_fields(
    title: str, body: str, questions: Sequence[str] = (), tags: Sequence[str] = (), locale: str = "en"
) -> dict[str, Any]:
    """The fields search reads, for `$set` on the article; title and FAQ phrasings count double."""
    words = (
        terms(title) * 2
        + [t for q in questions for t in terms(q)] * 2
        + terms(body)
        + [t for tag in tags for t in terms(tag)]
    )
    freq = Counter(words)
    return {"terms": sorted(freq), "term_freq": dict(freq), "length": len(words)}


@dataclass(frozen=True)
class Hit:
    article: Doc
    score: float
    coverage: float
    similarity: float = 0.0


def confident(hit: Hit) -> bool:
    """Whether a hit is good enough for the bot to answer with (and not a content gap)."""
    return hit.coverage >= CONFIDENT


def _filters(
    tenant_id: str,
    locale: str | None,
    category: str | None,
    statuses: Sequence[str] | None,
    kinds: Sequence[str] | None,
) -> Doc:
    query: Doc = {"tenant_id": tenant_id}
    if statuses:
        # documents from before the workflow have no status: they are published
        query["status"] = {"$in": [*statuses, None]} if "published" in statuses else {"$in": list(statuses)}
    if locale:
        query["locale"] = {"$in": [locale, None]} if locale == "en" else locale
    if category:
        query["category"] = category
    if kinds:
        query["kind"] = {"$in": [*kinds, None]} if "article" in kinds else {"$in": list(kinds)}
    return query


async def search(
    ctx: AppContext,
    tenant_id: str,
    query: str,
    *,
    mode: Mode = "hybrid",
    locale: str | None = None,
    category: str | None = None,
    statuses: Sequence[str] | None = ("published",),
    kinds: Sequence[str] | None = None,
    limit: int = 5,
) -> list[Hit]:
    """The best articles for `query` among those matching the filters, best first."""
    query_terms = list(dict.fromkeys(terms(query)))
    if not query_terms:
        return []
    stats = await corpus_stats(ctx, tenant_id)
    if stats.total == 0:
        return []
    match = {**_filters(tenant_id, locale, category, statuses, kinds), "terms": {"$in": query_terms}}
    candidates = [a async for a in ctx.db.kb_articles.find(match)]
    idf = {
        term: math.log(1 + (stats.total - stats.df.get(term, 0) + 0.5) / (stats.df.get(term, 0) + 0.5))
        for term in query_terms
    }
    query_weight = sum(idf.values())
    avg_len = stats.avg_len or 1.0
    hits: list[Hit] = []
    for article in candidates:
        score = covered = 0.0
        for term in query_terms:
            tf = article.get("term_freq", {}).get(term, 0)
            if not tf:
                continue
            covered += idf[term]
            score += idf[term] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * article.get("length", 0) / avg_len))
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
# Edits in this process drop the entry at once (`forget`); other processes see them within
# the TTL, which only shifts rankings slightly.
STATS_TTL_S = 30.0
_stats: dict[str, CorpusStats] = {}


def forget(tenant_id: str) -> None:
    """Drop the tenant's cached statistics after an edit."""
    _stats.pop(tenant_id, None)


async def corpus_stats(ctx: AppContext, tenant_id: str) -> CorpusStats:
    now = time.monotonic()
    cached = _stats.get(tenant_id)
    if cached is not None and cached.expires > now:
        return cached
    df: Counter[str] = Counter()
    total = length = 0
    async for article in ctx.db.kb_articles.find({"tenant_id": tenant_id}, {"terms": 1, "length": 1}):
        total += 1
        length += article.get("length", 0)
        df.update(article.get("terms", []))
    stats = CorpusStats(total, length / total if total else 1.0, dict(df), now + STATS_TTL_S)
    _stats[tenant_id] = stats
    return stats
