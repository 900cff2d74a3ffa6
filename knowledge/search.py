"""Knowledge-base search: the index fields of an article and its ranking (docs/knowledge.md).

Three modes over the articles that pass the filters (locale, category, status, kind):
- fulltext: BM25 over term frequencies stored on each article (`knowledge.text` terms; the
  embedded database has no text index);
- semantic: cosine similarity between the query's and the articles' MiniLM embeddings
  (`knowledge.embeddings`; without the model this mode returns nothing and hybrid is BM25);
- hybrid (default): weighted reciprocal-rank fusion (k=60) of both rankings, which needs no
  score calibration between the two; the embedding ranking counts only for the Latin-script
  part of a query (the model is English-only).

Ranking runs on a per-tenant in-memory index (postings, lengths, an embedding matrix, the
filter fields) built from one scan of the tenant's articles: semantic ranking needs every
article's vector for every query, and the embedded database decodes whole documents (with
their 384 floats) for anything it reads, so asking it per query is out (fetching BM25
candidates by `terms: {$in}` took 0.8 s for a three-term query, 2,750 candidates, at
10,000 articles, on a busy machine). The index is brought up to date incrementally: articles
whose `updated_at` is newer than the newest it holds are read again (one index range
lookup), at the next search after `forget` (an edit in this process) and at most every
CHECK_EVERY_S otherwise, so edits from other processes show within a second. The articles a
search returns are read fresh from the database and filtered again, so a stale index can
never surface an archived or deleted article.

`coverage` (the idf-weighted share of the query's terms an article holds) and `similarity`
do not depend on the corpus size, so one confidence rule (`confident`) suits every tenant.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from hub.context import AppContext
from hub.db import Doc
from knowledge import embeddings
from knowledge.text import terms

K1 = 1.2
B = 0.75
RRF_K = 60
# How much the embedding ranking counts against BM25's in hybrid fusion, for English queries:
# on the labelled set 1.5 beat 1.0 (recall@5 en 0.95 against 0.94 at 10,000 articles, 1.0
# against 0.98 alone) and higher weights changed nothing.
HYBRID_SEMANTIC_WEIGHT = 1.5
CONFIDENT = 0.5  # coverage from which the bot answers (see `confident`)
# ... or the cosine similarity from which it answers. Tuned on tests/data (hybrid, top hit):
# 75 % of the questions answered, 2 % answered wrongly, no off-topic question answered (the
# off-topic ones stay under 0.11); 0.5 answered more but wrongly more often.
CONFIDENT_SIMILARITY = 0.55
# Semantic-only hits (no query term in common) below this similarity are noise, not answers:
# without a floor every query, even "thanks", would return the nearest articles.
SEMANTIC_FLOOR = 0.3
EMBED_BODY_CHARS = 300  # the embedded text: title, FAQ phrasings and the start of the body
MODEL_LOCALES = frozenset({"en"})  # all-MiniLM-L6-v2 was trained on English only
Mode = Literal["hybrid", "fulltext", "semantic"]
_LATIN = re.compile(r"[A-Za-z]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_MARKUP = re.compile(r"[#*_`>\[\]()|~-]+|!\[[^\]]*\]\([^)]*\)")


def embedding_text(title: str, body: str, questions: Sequence[str] = ()) -> str:
    """What an article's embedding stands for: a short text, as MiniLM was trained on short ones."""
    start = " ".join(_MARKUP.sub(" ", body).split())[:EMBED_BODY_CHARS]
    return "\n".join([title, *questions, start])


def _term_fields(
    title: str, body: str, questions: Sequence[str], tags: Sequence[str], locale: str | None
) -> dict[str, Any]:
    words = (
        terms(title, locale) * 2
        + [t for q in questions for t in terms(q, locale)] * 2
        + terms(body, locale)
        + [t for tag in tags for t in terms(tag, locale)]
    )
    freq = Counter(words)
    return {"terms": sorted(freq), "term_freq": dict(freq), "length": len(words)}


def index_fields(
    title: str, body: str, questions: Sequence[str] = (), tags: Sequence[str] = (), locale: str = "en"
) -> dict[str, Any]:
    """The fields search reads, for `$set` on the article (CPU-bound: call it in a thread).

    Title and FAQ phrasings count double for BM25; `embedding` is absent without the model.
    """
    fields = _term_fields(title, body, questions, tags, locale)
    vector = embeddings.encode_one(embedding_text(title, body, questions))
    if vector is not None:
        fields["embedding"] = [round(float(x), 6) for x in vector]
    return fields


def index_fields_many(articles: Sequence[Doc]) -> list[dict[str, Any]]:
    """`index_fields` for many articles (`title`, `body`, `questions`, `tags`, `locale` keys),
    with the embeddings computed in batches: imports and the benchmark use it."""
    out = [
        _term_fields(a["title"], a["body"], a.get("questions") or (), a.get("tags") or (), a.get("locale"))
        for a in articles
    ]
    vectors = embeddings.encode(
        [embedding_text(a["title"], a["body"], a.get("questions") or ()) for a in articles]
    )
    if vectors is not None:
        for fields, vector in zip(out, vectors, strict=True):
            fields["embedding"] = [round(float(x), 6) for x in vector]
    return out


@dataclass(frozen=True)
class Hit:
    article: Doc
    score: float
    coverage: float
    similarity: float = 0.0


def confident(hit: Hit) -> bool:
    """Whether a hit is good enough for the bot to answer with (and not a content gap):
    most of the query's weighted terms are in the article, or its meaning is very close (for
    articles in a language the embedding model knows)."""
    if hit.coverage >= CONFIDENT:
        return True
    return hit.similarity >= CONFIDENT_SIMILARITY and (hit.article.get("locale") or "en") in MODEL_LOCALES


# -- filters ----------------------------------------------------------------------------------------


def _passes(
    article: Doc,
    locale: str | None,
    category: str | None,
    statuses: Sequence[str] | None,
    kinds: Sequence[str] | None,
) -> bool:
    """The filters on one article, with the defaults of old documents (published, en, article)."""
    return (
        (not statuses or (article.get("status") or "published") in statuses)
        and (not locale or (article.get("locale") or "en") == locale)
        and (not category or article.get("category") == category)
        and (not kinds or (article.get("kind") or "article") in kinds)
    )


# -- the per-tenant index ---------------------------------------------------------------------------

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class TenantIndex:
    """Everything ranking needs for one tenant's articles, row i = ids[i]."""

    docs: dict[str, Doc]  # the indexed fields per article id, `embedding` as a float32 array
    latest: datetime  # the newest `updated_at` among them
    ids: list[str]
    status: npt.NDArray[np.object_]
    locale: npt.NDArray[np.object_]
    category: npt.NDArray[np.object_]
    kind: npt.NDArray[np.object_]
    lengths: Floats
    avg_len: float
    postings: dict[str, tuple[Ints, Floats]]  # term -> (rows, term frequencies)
    df: dict[str, int]  # articles containing each term
    vectors: Floats  # (n, 384), zero rows for articles without an embedding
    has_vector: npt.NDArray[np.bool_]
    scanned: float  # when the tenant's articles were last all read
    checked: float = 0.0
    stale: bool = False

    @property
    def total(self) -> int:
        return len(self.ids)

    def mask(
        self,
        locale: str | None,
        category: str | None,
        statuses: Sequence[str] | None,
        kinds: Sequence[str] | None,
    ) -> npt.NDArray[np.bool_]:
        keep = np.ones(self.total, dtype=bool)
        if statuses:
            keep &= np.isin(self.status, list(statuses))
        if locale:
            keep &= self.locale == locale
        if category:
            keep &= self.category == category
        if kinds:
            keep &= np.isin(self.kind, list(kinds))
        return keep

    def idf(self, term: str) -> float:
        n = self.df.get(term, 0)
        return math.log(1 + (self.total - n + 0.5) / (n + 0.5))

    def bm25(self, query_terms: Sequence[str]) -> tuple[Floats, Floats]:
        """BM25 scores and coverage (0..1) of every article for the query's distinct terms."""
        scores = np.zeros(self.total, dtype=np.float32)
        covered = np.zeros(self.total, dtype=np.float32)
        weights = {term: self.idf(term) for term in query_terms}
        total_weight = sum(weights.values())
        for term, weight in weights.items():
            if term not in self.postings:
                continue
            rows, tf = self.postings[term]
            norm = K1 * (1 - B + B * self.lengths[rows] / self.avg_len)
            scores[rows] += weight * tf * (K1 + 1) / (tf + norm)
            covered[rows] += weight
        return scores, covered / total_weight if total_weight else covered


def _prepared(doc: Doc) -> Doc:
    """A scanned article with its embedding as an array, converted once."""
    vector = doc.get("embedding")
    doc["embedding"] = (
        np.asarray(vector, dtype=np.float32) if vector is not None and len(vector) == embeddings.DIM else None
    )
    return doc


def _build(docs: dict[str, Doc], scanned: float) -> TenantIndex:
    """The index of these articles (CPU-bound, ~0.2 s for 10,000: run it in a thread)."""
    rows = list(docs.values())
    postings: dict[str, tuple[list[int], list[float]]] = {}
    lengths = np.zeros(len(rows), dtype=np.float32)
    vectors = np.zeros((len(rows), embeddings.DIM), dtype=np.float32)
    has_vector = np.zeros(len(rows), dtype=bool)
    latest = NEVER
    for row, doc in enumerate(rows):
        lengths[row] = doc.get("length", 0)
        for term, tf in (doc.get("term_freq") or {}).items():
            entry = postings.setdefault(term, ([], []))
            entry[0].append(row)
            entry[1].append(tf)
        if doc.get("embedding") is not None:
            vectors[row] = doc["embedding"]
            has_vector[row] = True
        updated = doc.get("updated_at")
        if isinstance(updated, datetime) and updated > latest:
            latest = updated

    def column(name: str, default: str | None) -> npt.NDArray[np.object_]:
        return np.array([d.get(name) or default for d in rows], dtype=object)

    return TenantIndex(
        docs=docs,
        latest=latest,
        ids=[d["_id"] for d in rows],
        status=column("status", "published"),
        locale=column("locale", "en"),
        category=column("category", None),
        kind=column("kind", "article"),
        lengths=lengths,
        avg_len=float(lengths.mean()) if rows and lengths.mean() > 0 else 1.0,
        postings={
            t: (np.array(r, dtype=np.int64), np.array(f, dtype=np.float32)) for t, (r, f) in postings.items()
        },
        df={t: len(r) for t, (r, _) in postings.items()},
        vectors=vectors,
        has_vector=has_vector,
        scanned=scanned,
    )


# How long an index is trusted without asking the database for articles changed since (one
# index range lookup), and how often all the tenant's articles are read again (which also
# drops deleted ones; 10,000 articles take seconds: the embedded database decodes each vector).
CHECK_EVERY_S = 1.0
RESCAN_EVERY_S = 3600.0
_INDEX_FIELDS = {
    "term_freq": 1,
    "length": 1,
    "embedding": 1,
    "status": 1,
    "locale": 1,
    "category": 1,
    "kind": 1,
    "updated_at": 1,
}
_indexes: dict[tuple[str, str], TenantIndex] = {}
_locks: dict[tuple[str, str, int], asyncio.Lock] = {}


def _key(ctx: AppContext, tenant_id: str) -> tuple[str, str]:
    return (ctx.db.db.name, tenant_id)


def forget(tenant_id: str) -> None:
    """After an edit: the next search looks for changed articles at once (not within a second)."""
    for key, index in _indexes.items():
        if key[1] == tenant_id:
            index.stale = True


def _differs(old: Doc, new: Doc) -> bool:
    """Whether a re-read article changed in anything the index holds."""
    for field in _INDEX_FIELDS:
        a, b = old.get(field), new.get(field)
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            if a is None or b is None or not np.array_equal(a, b):
                return True
        elif a != b:
            return True
    return False


async def _scan(ctx: AppContext, query: Doc) -> dict[str, Doc]:
    return {d["_id"]: _prepared(d) async for d in ctx.db.kb_articles.find(query, _INDEX_FIELDS)}


async def tenant_index(ctx: AppContext, tenant_id: str) -> TenantIndex:
    """The tenant's search index, brought up to date with the articles changed since it was built.

    Changes are found by `updated_at` (index range lookup), so writers must set it; edits from
    other processes show within CHECK_EVERY_S. Deleted articles leave the index at the next
    full scan; until then they are dropped when search reads its results back.
    """
    key = _key(ctx, tenant_id)
    cached = _indexes.get(key)
    if cached is not None and not cached.stale and time.monotonic() - cached.checked < CHECK_EVERY_S:
        return cached
    lock = _locks.setdefault((*key, id(asyncio.get_running_loop())), asyncio.Lock())
    async with lock:
        cached = _indexes.get(key)
        now = time.monotonic()
        if cached is not None and not cached.stale and now - cached.checked < CHECK_EVERY_S:
            return cached
        if cached is None or now - cached.scanned > RESCAN_EVERY_S:
            index = await asyncio.to_thread(_build, await _scan(ctx, {"tenant_id": tenant_id}), now)
        else:
            # `$gt`, not `$gte`: imports stamp thousands of articles with one time, and re-reading
            # them all after each edit took 2 s at 10,000 (a write in the very millisecond of
            # the newest indexed one waits for the next full scan)
            cached.stale = False  # an edit from here on marks it again
            changed = await _scan(ctx, {"tenant_id": tenant_id, "updated_at": {"$gt": cached.latest}})
            changed = {
                i: d for i, d in changed.items() if i not in cached.docs or _differs(cached.docs[i], d)
            }
            if not changed:
                cached.checked = now
                return cached
            index = await asyncio.to_thread(_build, {**cached.docs, **changed}, cached.scanned)
        index.checked = now
        if index.total:  # an empty tenant costs nothing to scan again, and may be filling up
            _indexes[key] = index
        return index


@dataclass(frozen=True)
class CorpusStats:
    total: int
    avg_len: float
    df: dict[str, int]  # articles containing each term


async def corpus_stats(ctx: AppContext, tenant_id: str) -> CorpusStats:
    """Article count, average length and document frequencies of the tenant's articles."""
    index = await tenant_index(ctx, tenant_id)
    return CorpusStats(index.total, index.avg_len, index.df)


# -- ranking ----------------------------------------------------------------------------------------


def _ranked(scores: Floats, eligible: npt.NDArray[np.bool_]) -> Ints:
    """Rows with eligible[row], best score first."""
    rows = np.flatnonzero(eligible)
    return rows[np.argsort(-scores[rows], kind="stable")]


def _fuse(rankings: Iterable[tuple[Ints, float]], depth: int) -> dict[int, float]:
    """Reciprocal-rank fusion: sum of weight / (k + rank) over the rankings (rank from 1)."""
    fused: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, row in enumerate(ranking[:depth].tolist(), start=1):
            fused[row] = fused.get(row, 0.0) + weight / (RRF_K + rank)
    return fused


def semantic_weight(query: str) -> float:
    """How much the embedding ranking counts in hybrid search: the share of the query written
    in Latin script. The model is English-only: on Chinese its similarities are noise (recall@5
    0.59 against 1.0 for BM25 on the labelled set), so Chinese queries rank by full text."""
    latin = len(_LATIN.findall(query))
    han = len(_HAN.findall(query))
    return latin / (latin + han) if latin + han else 0.0


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
    weight = 1.0 if mode == "semantic" else semantic_weight(query) if mode == "hybrid" else 0.0
    vector = None
    if weight > 0 and query.strip():
        vectors = await embeddings.encode_async([query]) if embeddings.available() else None
        vector = None if vectors is None else vectors[0]
    if not query_terms and vector is None:
        return []
    index = await tenant_index(ctx, tenant_id)
    if index.total == 0:
        return []
    keep = index.mask(locale, category, statuses, kinds)
    bm25, coverage = index.bm25(query_terms)
    similarity = np.zeros(index.total, dtype=np.float32)
    if vector is not None:
        similarity = np.clip(index.vectors @ vector, 0.0, 1.0)
    lexical = _ranked(bm25, keep & (bm25 > 0)) if mode != "semantic" else None
    semantic = (
        _ranked(similarity, keep & index.has_vector & (similarity >= SEMANTIC_FLOOR))
        if vector is not None
        else None
    )
    depth = max(limit * 4, 20)  # a few spare: returned articles are re-read and re-filtered
    if mode == "hybrid" and lexical is not None and semantic is not None:
        fused = _fuse([(lexical, 1.0), (semantic, weight * HYBRID_SEMANTIC_WEIGHT)], depth * 2)
        rows = sorted(fused, key=lambda r: (-fused[r], -bm25[r]))[:depth]
        score_of = fused
    else:
        ranking = lexical if lexical is not None else semantic
        if ranking is None:
            return []
        rows = ranking[:depth].tolist()
        source = bm25 if lexical is not None else similarity
        score_of = {r: float(source[r]) for r in rows}
    if not rows:
        return []
    wanted = [index.ids[r] for r in rows]
    fresh = {
        a["_id"]: a
        async for a in ctx.db.kb_articles.find(
            {"_id": {"$in": wanted}, "tenant_id": tenant_id}, {"embedding": 0}
        )
    }
    hits: list[Hit] = []
    for row, article_id in zip(rows, wanted, strict=True):
        article = fresh.get(article_id)
        if article is None or not _passes(article, locale, category, statuses, kinds):
            continue
        hits.append(Hit(article, float(score_of[row]), float(coverage[row]), float(similarity[row])))
        if len(hits) == limit:
            break
    return hits
