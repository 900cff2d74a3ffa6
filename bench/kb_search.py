"""Knowledge-base search benchmark: full text, semantic and hybrid over 10,000 articles.

    python -m bench.kb_search [--articles 10000] [--keep]

Starts the embedded database in a temporary directory and fills one tenant with the labelled
corpus of tests/data/kb_corpus.json (English and Chinese telecom help articles and FAQ
entries) plus generated filler articles up to `--articles` (two thirds English, one third
Chinese, drawn from a telecom vocabulary so they compete with the real ones for the same
words). Articles are indexed as the product indexes them (`knowledge.search.index_fields_many`:
terms and MiniLM embeddings in numpy) and the indexing time is reported, split into terms,
embeddings and database writes.

Then every question of tests/data/kb_labelled.json that has an answer is asked in each mode
(`knowledge.search.search`, filtered to the question's locale, top 5): recall@5 is the share
whose labelled article is among the five; latency is the wall time of the whole call
(query embedding, ranking on the tenant's in-memory index, reading the five articles back),
with the index already built (its build time is reported apart, and so is the first search
after one article was edited, which folds the change into the index). The questions without an
answer and the top hit of each answered one give the bot's confidence figures: how often
`confident` answers correctly, answers wrongly, and answers an off-topic question.

Readable figures go to stdout; its last line is one JSON object with `fulltext`, `semantic`
and `hybrid`, each with `recall_at_5`, `p50_ms` and `p99_ms`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    HubStack,
    Result,
    clean_up_run_dir,
    log,
    percentile,
    print_report,
    rounded,
    run_to_completion,
)
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow
from knowledge import embeddings
from knowledge.search import Mode, confident, forget, index_fields_many, search, tenant_index

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
MODES: tuple[Mode, ...] = ("fulltext", "semantic", "hybrid")
BATCH = 250
SEED = 8

EN_WORDS = (
    "account bill payment router modem fibre broadband wifi signal mobile phone sim card data plan roaming "
    "contract upgrade device store order delivery installation engineer appointment network coverage "
    "outage speed password login app portal invoice charge credit refund discount bundle tv box channel "
    "remote recording voicemail call text message number port transfer address moving business line "
    "landline security fraud scam insurance repair warranty return eSIM 5G 4G roaming travel abroad "
    "usage allowance limit fee monthly annual renewal notice cancel upgrade offer loyalty reward"
).split()
EN_VERBS = "check change update activate block restore review manage renew connect order set book".split()
ZH_WORDS = (
    "账户 账单 缴费 话费 余额 充值 宽带 光猫 路由器 无线 信号 手机 号码 套餐 流量 漫游 合约 升级 "
    "设备 营业厅 订单 配送 安装 预约 网络 覆盖 故障 网速 密码 登录 发票 扣费 退款 优惠 电视 机顶盒 "
    "频道 遥控器 语音信箱 短信 携号转网 过户 地址 搬家 企业 固话 安全 诈骗 保险 维修 保修 退货 "
    "积分 副卡 实名 工单 报修 续费 资费 合同 通知 到期 活动"
).split()
ZH_VERBS = "查询 办理 变更 开通 取消 恢复 修改 申请 预约 升级 绑定 激活".split()
CATEGORIES = "billing internet mobile devices tv account security outages landline".split()


def load_labelled() -> tuple[list[Doc], list[Doc]]:
    """The labelled corpus and its questions (tests/data)."""
    corpus = json.loads((DATA / "kb_corpus.json").read_text())
    questions = json.loads((DATA / "kb_labelled.json").read_text())
    return corpus, questions


def filler(count: int, rng: random.Random) -> list[Doc]:
    """Generated articles: a title and two or three sentences from the vocabulary."""
    out: list[Doc] = []
    for i in range(count):
        zh = rng.random() < 1 / 3
        words, verbs, sep, stop = (ZH_WORDS, ZH_VERBS, "", "。") if zh else (EN_WORDS, EN_VERBS, " ", ".")

        def sentence(n: int, words: list[str] = words, verbs: list[str] = verbs, sep: str = sep) -> str:
            return sep.join([rng.choice(verbs), *rng.sample(words, n)])

        title = sentence(3)
        body = sep.join(sentence(rng.randint(5, 8)) + stop for _ in range(rng.randint(2, 3)))
        out.append(
            {
                "slug": f"filler-{i}",
                "kind": "faq" if rng.random() < 0.3 else "article",
                "title": title,
                "body": body,
                "questions": [],
                "category": rng.choice(CATEGORIES),
                "locale": "zh" if zh else "en",
                "tags": rng.sample(words, 2),
            }
        )
    return out


async def fill(ctx: AppContext, tenant_id: str, articles: list[Doc]) -> dict[str, float]:
    """Index and insert the articles in batches; seconds spent on each part."""
    spent = {"index_s": 0.0, "insert_s": 0.0}
    now = utcnow()
    for start in range(0, len(articles), BATCH):
        batch = articles[start : start + BATCH]
        began = time.perf_counter()
        fields = await asyncio.to_thread(index_fields_many, batch)
        spent["index_s"] += time.perf_counter() - began
        docs = [
            {
                "_id": new_id(),
                "tenant_id": tenant_id,
                **article,
                "status": "published",
                "version": 1,
                "published_version": 1,
                "created_at": now,
                "updated_at": now,
                **index,
            }
            for article, index in zip(batch, fields, strict=True)
        ]
        began = time.perf_counter()
        await ctx.db.kb_articles.insert_many(docs)
        spent["insert_s"] += time.perf_counter() - began
        if (start // BATCH) % 8 == 0:
            log(f"indexed {start + len(batch)} / {len(articles)}")
    return spent


async def measure(ctx: AppContext, tenant_id: str, questions: list[Doc], mode: Mode) -> Result:
    """recall@5 and latency of one mode over the answered questions; confidence figures."""
    latencies: list[float] = []
    found = {"en": [0, 0], "zh": [0, 0]}
    answered_right = answered_wrong = off_topic_answered = off_topic = 0
    for q in questions:
        began = time.perf_counter()
        hits = await search(ctx, tenant_id, q["query"], mode=mode, locale=q["locale"], limit=5)
        latencies.append((time.perf_counter() - began) * 1000)
        if q["slug"] is None:
            off_topic += 1
            off_topic_answered += bool(hits) and confident(hits[0])
            continue
        slugs = [h.article["slug"] for h in hits]
        found[q["locale"]][0] += q["slug"] in slugs
        found[q["locale"]][1] += 1
        if hits and confident(hits[0]):
            if slugs[0] == q["slug"]:
                answered_right += 1
            else:
                answered_wrong += 1
    total = sum(n for _, n in found.values())
    return {
        "recall_at_5": round(sum(f for f, _ in found.values()) / total, 3),
        "recall_at_5_en": round(found["en"][0] / max(1, found["en"][1]), 3),
        "recall_at_5_zh": round(found["zh"][0] / max(1, found["zh"][1]), 3),
        "p50_ms": rounded(percentile(latencies, 50), 2),
        "p99_ms": rounded(percentile(latencies, 99), 2),
        "queries": len(latencies),
        "bot_answers_right": round(answered_right / total, 3),
        "bot_answers_wrong": round(answered_wrong / total, 3),
        "bot_answers_off_topic": round(off_topic_answered / max(1, off_topic), 3),
    }


async def run(args: argparse.Namespace) -> Result:
    root = Path(tempfile.mkdtemp(prefix="bench-kb-"))
    stack = HubStack(root, "kb_bench")
    succeeded = False
    try:
        began = time.perf_counter()
        await stack.start_database()
        ctx = await stack.open_context()
        corpus, questions = load_labelled()
        articles = corpus + filler(max(0, args.articles - len(corpus)), random.Random(SEED))
        model = await asyncio.to_thread(embeddings.available)
        log(f"indexing {len(articles)} articles (embedding model: {'yes' if model else 'missing'})")
        tenant_id = new_id()
        indexed = time.perf_counter()
        spent = await fill(ctx, tenant_id, articles)
        index_total = time.perf_counter() - indexed
        built = time.perf_counter()
        await tenant_index(ctx, tenant_id)
        build_s = time.perf_counter() - built
        result: Result = {"articles": len(articles), "embedding_model": model}
        for mode in MODES:
            log(f"querying: {mode}")
            await search(ctx, tenant_id, "warm up", mode=mode)
            result[mode] = await measure(ctx, tenant_id, questions, mode)
        # one article edited (in this process): the next search folds it into the index
        edited = await ctx.db.kb_articles.find_one({"tenant_id": tenant_id, "slug": corpus[0]["slug"]})
        assert edited is not None
        await ctx.db.kb_articles.update_one({"_id": edited["_id"]}, {"$set": {"updated_at": utcnow()}})
        forget(tenant_id)
        began_edit = time.perf_counter()
        await search(ctx, tenant_id, corpus[0]["title"], mode="hybrid")
        edit_ms = (time.perf_counter() - began_edit) * 1000
        result["indexing"] = {
            "total_s": round(index_total, 1),
            "terms_and_embeddings_s": round(spent["index_s"], 1),
            "insert_s": round(spent["insert_s"], 1),
            "per_article_ms": round(spent["index_s"] / len(articles) * 1000, 2),
            "search_index_build_s": round(build_s, 2),
            "search_after_one_edit_ms": round(edit_ms, 1),
        }
        result["questions"] = {
            "answered_en": sum(1 for q in questions if q["slug"] and q["locale"] == "en"),
            "answered_zh": sum(1 for q in questions if q["slug"] and q["locale"] == "zh"),
            "off_topic": sum(1 for q in questions if not q["slug"]),
        }
        result["total_s"] = round(time.perf_counter() - began, 1)
        succeeded = True
        return result
    finally:
        await stack.stop()
        clean_up_run_dir(root, succeeded=succeeded, keep=args.keep, contents="database")


def report(result: Result) -> None:
    rows: list[tuple[str, str]] = []
    for mode in MODES:
        r: dict[str, Any] = result[mode]
        rows.append(
            (
                mode,
                f"recall@5 {r['recall_at_5']} (en {r['recall_at_5_en']}, zh {r['recall_at_5_zh']}); "
                f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms over {r['queries']} queries",
            )
        )
        rows.append(
            (
                f"  {mode}: bot",
                f"answers right {r['bot_answers_right']}, wrong {r['bot_answers_wrong']}, "
                f"off-topic answered {r['bot_answers_off_topic']}",
            )
        )
    i = result["indexing"]
    rows.append(("articles", f"{result['articles']} (embedding model: {result['embedding_model']})"))
    rows.append(
        (
            "indexing",
            f"{i['total_s']} s: terms + embeddings {i['terms_and_embeddings_s']} s "
            f"({i['per_article_ms']} ms / article), inserts {i['insert_s']} s; "
            f"search index build {i['search_index_build_s']} s; "
            f"first search after one edit {i['search_after_one_edit_ms']} ms",
        )
    )
    q = result["questions"]
    rows.append(
        ("labelled questions", f"en {q['answered_en']}, zh {q['answered_zh']}, off-topic {q['off_topic']}")
    )
    print_report(f"bench.kb_search ({result['total_s']} s)", rows, result, name_width=22, console_width=160)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--articles", type=int, default=10_000, help="articles in the tenant (default 10000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary database directory")
    args = parser.parse_args(argv)
    report(run_to_completion(lambda: run(args)))


if __name__ == "__main__":
    main()
