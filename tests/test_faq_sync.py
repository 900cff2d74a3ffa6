"""The bot stays in step with the published FAQ: training data, debounce, lease, failure, swap.

The unit tests use their own database and a stand-in `rasa` executable (like
tests/test_rasa_project.py) for the lease and error paths; the end-to-end test trains with
the real Rasa into a temporary model cache and swaps the model of its own `rasa run` (its
own port), so the suite's cached model and shared Rasa server are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pymongo.errors import PyMongoError

from bot import faq_sync
from bot.rasa_server import RasaServer
from bot.training import default_model_cache, ensure_model, project_hash
from hub.auth import Principal
from hub.context import AppContext
from hub.embedded_db import EmbeddedDatabase, free_port
from hub.ids import new_id, utcnow
from hub.rasa_supervisor import RASA_BIN, RASA_PROJECT
from tests.conftest import TenantFactory, context_for
from tests.fake_rasa import fake_rasa
from tests.support import Agent, HubProcess


@pytest.fixture
async def own_db(mongo: EmbeddedDatabase) -> AsyncIterator[AppContext]:
    """A database of its own: the FAQ of other tests' tenants must not change our hashes."""
    name = f"faq_sync_{new_id()[:8]}"
    context = context_for(mongo.uri, name)
    yield context
    await context.db.client.drop_database(name)
    await context.db.close()


def faq(tenant_id: str, questions: list[str], status: str = "published", kind: str = "faq") -> dict[str, Any]:
    """A kb_articles document as docs/knowledge.md describes it (only what the sync reads)."""
    return {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "slug": new_id()[:10],
        "kind": kind,
        "status": status,
        "title": questions[0] if questions else "untitled",
        "body": "An answer.",
        "questions": questions,
        "locale": "en",
    }


def syncer(ctx: AppContext, tmp_path: Path, rasa_bin: Path, quiet_s: float = 0) -> faq_sync.FaqSync:
    timing = faq_sync.Timing(quiet_s=quiet_s)
    return faq_sync.FaqSync(
        ctx, None, RASA_PROJECT, rasa_bin, tmp_path / "cache", tmp_path / "work", timing=timing
    )


# --- training data --------------------------------------------------------------------------


def test_clean_phrasing_strips_markup_and_rasa_syntax() -> None:
    assert faq_sync.clean_phrasing("How do I **reset** my [password](https://x.test)?") == (
        "How do I reset my password?"
    )
    assert faq_sync.clean_phrasing('<b>Where</b> is   my\nparcel {"entity": "x"}') == (
        'Where is my parcel "entity": "x"'
    )
    assert faq_sync.clean_phrasing("- `roaming` fees") == "roaming fees"
    assert faq_sync.clean_phrasing("如何修改**密码**\uff1f") == "如何修改密码\uff1f"
    assert faq_sync.clean_phrasing("  ") is None
    assert faq_sync.clean_phrasing("?") is None
    long = faq_sync.clean_phrasing("word " * 100)
    assert long is not None and len(long) <= faq_sync.MAX_CHARS


def test_build_examples_dedupes_skips_known_and_shares_the_cap_fairly() -> None:
    base = faq_sync.base_example_keys(RASA_PROJECT)
    assert "how do i set up my router" in base and "hello" in base
    rows = [
        ("t2", ["Can I pay by PayPal?", "can i pay by paypal", "hello", "如何开具发票\uff1f"]),
        ("t1", ["can I pay by paypal?!", "How do I set up my router?", "Do you ship to Mars"]),
    ]
    examples, counts = faq_sync.build_examples(rows, base)
    # one "paypal" (t1 sorts first and keeps it), greetings and known FAQ phrasings left out
    assert examples == sorted(["can I pay by paypal?!", "Do you ship to Mars", "如何开具发票\uff1f"])
    assert counts == {"t1": 2, "t2": 1}
    big = [(f"t{i}", [f"tenant {i} question {j}" for j in range(50)]) for i in range(3)]
    capped, per = faq_sync.build_examples(big, set(), cap=30, per_tenant=20)
    assert len(capped) == 30 and per == {"t0": 10, "t1": 10, "t2": 10}


def test_generated_project_is_a_copy_with_a_valid_nlu_file(tmp_path: Path) -> None:
    before = project_hash(RASA_PROJECT)
    examples = ["Do you ship to Mars", "如何开具发票\uff1f", 'a "quoted": phrase']
    project = faq_sync.write_project(RASA_PROJECT, tmp_path / "p", examples)
    data = yaml.safe_load((project / "data" / faq_sync.GENERATED_FILE).read_text())
    assert data["version"] == "3.1"
    [block] = data["nlu"]
    assert block["intent"] == "ask_faq"
    assert [line[2:] for line in block["examples"].splitlines()] == examples
    assert project_hash(project) != before
    assert project_hash(RASA_PROJECT) == before, "the repo's project must stay untouched"
    assert not (RASA_PROJECT / "data" / faq_sync.GENERATED_FILE).exists()
    # no FAQ: the generated project is the base project, so the cached base model is reused
    assert project_hash(faq_sync.write_project(RASA_PROJECT, tmp_path / "empty", [])) == before


def test_the_rasa_pipeline_tokenizes_chinese_by_whitespace() -> None:
    """What the module docstring relies on for Chinese phrasings (checked on config changes)."""
    config = yaml.safe_load((RASA_PROJECT / "config.yml").read_text())
    names = [step["name"] for step in config["pipeline"]]
    assert names[0] == "WhitespaceTokenizer"
    assert any(step.get("analyzer") == "char_wb" for step in config["pipeline"])


async def test_collect_examples_reads_published_faq_of_every_tenant(own_db: AppContext) -> None:
    await own_db.db.kb_articles.insert_many(
        [
            faq("a", ["Do you ship to Mars"]),
            faq("b", ["Is there a student discount"]),
            faq("a", ["draft question only"], status="draft"),
            faq("a", ["waiting for review"], status="in_review"),
            faq("b", ["old archived question"], status="archived"),
            faq("b", ["an article title"], kind="article"),
        ]
    )
    examples, counts = await faq_sync.collect_examples(own_db, set())
    assert examples == ["Do you ship to Mars", "Is there a student discount"]
    assert counts == {"a": 1, "b": 1}


# --- the loop with a stand-in rasa ----------------------------------------------------------


async def test_many_publishes_give_one_training_and_one_process_trains(
    own_db: AppContext, tmp_path: Path
) -> None:
    fake, calls = fake_rasa(tmp_path)
    one = syncer(own_db, tmp_path, fake, quiet_s=1.5)
    two = syncer(own_db, tmp_path, fake, quiet_s=1.5)
    await one._ensure_state()
    await one.tick()  # nothing published: in step with the base model
    assert one.trainings == 0
    for i in range(3):  # a burst of publishes inside the quiet period
        await own_db.db.kb_articles.insert_one(faq("a", [f"burst question number {i}"]))
        await asyncio.gather(one.tick(), two.tick())
        await asyncio.sleep(0.3)
    assert one.trainings + two.trainings == 0, "debounced: no training during the burst"
    await asyncio.sleep(1.6)
    await asyncio.gather(one.tick(), two.tick())  # both due; the lease lets one train
    assert one.trainings + two.trainings == 1
    assert len(calls.read_text().splitlines()) == 1
    state = await own_db.db.bot_sync.find_one({"_id": faq_sync.STATE_ID})
    assert state is not None
    assert state["examples"] == 3 and state["tenant_examples"] == {"a": 3}
    assert state["training"] is False and state["lease_owner"] is None and state["last_error"] is None
    assert await asyncio.to_thread(Path(state["model_file"]).read_bytes) == b"model"
    assert state["faq_hash"] == state["wanted_hash"]
    await asyncio.gather(one.tick(), two.tick())  # in step now: nothing more to train
    assert one.trainings + two.trainings == 1
    assert not list((tmp_path / "work").glob("faq-*")), "scratch projects are cleaned up"


async def test_a_failed_training_keeps_the_old_model_and_says_why(own_db: AppContext, tmp_path: Path) -> None:
    fake, calls = fake_rasa(tmp_path, failure=["InvalidConfigException: broken pipeline"])
    sync = syncer(own_db, tmp_path, fake)
    await sync._ensure_state()
    loaded = sync.loaded_hash
    await own_db.db.kb_articles.insert_one(faq("a", ["Do you ship to Mars"]))
    await sync.tick()
    assert sync.trainings == 1 and sync.loaded_hash == loaded
    state = await own_db.db.bot_sync.find_one({"_id": faq_sync.STATE_ID})
    assert state is not None and "InvalidConfigException: broken pipeline" in state["last_error"]
    assert state["training"] is False and state.get("model_file") is None
    await sync.tick()  # the same FAQ set is not retried at every poll
    assert sync.trainings == 1 and len(calls.read_text().splitlines()) == 1
    report = await faq_sync.status(own_db, "a")
    assert report["last_error"] == "InvalidConfigException: broken pipeline"
    assert report["in_step"] is False and report["training"] is False


async def test_a_lease_held_by_a_live_process_blocks_training(own_db: AppContext, tmp_path: Path) -> None:
    fake, calls = fake_rasa(tmp_path)
    sync = syncer(own_db, tmp_path, fake)
    await sync._ensure_state()
    until = utcnow().replace(year=utcnow().year + 1)
    await own_db.db.bot_sync.update_one(
        {"_id": faq_sync.STATE_ID}, {"$set": {"lease_owner": "other-host:1", "lease_until": until}}
    )
    await own_db.db.kb_articles.insert_one(faq("a", ["Do you ship to Mars"]))
    await sync.tick()
    assert sync.trainings == 0 and not calls.exists()
    await own_db.db.bot_sync.update_one({"_id": faq_sync.STATE_ID}, {"$set": {"lease_until": utcnow()}})
    await sync.tick()  # an expired lease is taken over
    assert sync.trainings == 1


# --- the status endpoint --------------------------------------------------------------------


async def test_bot_sync_status_is_for_editors_and_per_tenant(
    hub_nobot: HubProcess, tenant_in: TenantFactory
) -> None:
    t = await tenant_in(hub_nobot, agents={"eve": [], "ann": ["general"]}, roles={"eve": ["editor"]})
    tid = t["tenant"]["_id"]
    ctx = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    editor, agent = (
        Agent(hub_nobot.url, t["slug"], "eve@t.test"),
        Agent(hub_nobot.url, t["slug"], "ann@t.test"),
    )
    try:
        await ctx.db.kb_articles.insert_one(faq(tid, ["Do you ship to Mars"]))
        await ctx.db.bot_sync.update_one(
            {"_id": faq_sync.STATE_ID},
            {
                "$set": {
                    f"tenant_examples.{tid}": 1,
                    "faq_hash": "h1",
                    "wanted_hash": "h1",
                    "trained_at": utcnow(),
                    "polled_at": utcnow(),
                }
            },
            upsert=True,
        )
        await editor.login()
        await agent.login()
        assert (await agent.http.get("/api/kb/bot-sync")).status_code == 403
        resp = await editor.http.get("/api/kb/bot-sync")
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["faq_entries"] == 1 and body["faq_examples"] == 1
        assert body["in_step"] is True and body["trained_hash"] == "h1" and body["running"] is True
        assert body["trained_at"].endswith("+00:00") and body["training"] is False
    finally:
        await ctx.db.bot_sync.update_one(
            {"_id": faq_sync.STATE_ID}, {"$unset": {f"tenant_examples.{tid}": ""}}
        )
        await ctx.db.kb_articles.delete_many({"tenant_id": tid})
        await editor.close()
        await agent.close()
        await ctx.db.close()


# --- end to end with the real Rasa ----------------------------------------------------------

# Distinctive: nothing in data/nlu.yml is about parrots or cable cars.
NEW_FAQ = [
    "can my parrot ride the cable car with me",
    "are parrots allowed on the cable car",
    "may I take my pet parrot on the cable car",
    "is a parrot welcome aboard the cable car",
]
ASKED = NEW_FAQ[0]
NEW_FAQ_ZH = ["我的鹦鹉可以坐缆车吗", "缆车上可以带鹦鹉吗", "能不能带宠物鹦鹉乘坐缆车"]
UNSEEN = {"can I bring my parrot onto the cable car": "ask_faq", "鹦鹉可以上缆车吗": "ask_faq"}


async def parse(client: httpx.AsyncClient, url: str, text: str) -> tuple[str, float]:
    resp = await client.post(f"{url}/model/parse", json={"text": text})
    resp.raise_for_status()
    intent = resp.json()["intent"]
    return str(intent["name"]), float(intent["confidence"])


@pytest.mark.rasa
@pytest.mark.timeout(900)
@pytest.mark.skipif(not RASA_BIN.exists(), reason="Rasa not installed (scripts/install_rasa.sh)")
async def test_publishing_an_faq_retrains_and_swaps_without_downtime(
    own_db: AppContext, tmp_path: Path
) -> None:
    from knowledge import articles

    base = await asyncio.to_thread(ensure_model, RASA_PROJECT, RASA_BIN, default_model_cache())
    base_bytes = base.stat().st_mtime_ns
    # Nothing listens at the action URL: greetings and /model/parse call no custom action.
    server = RasaServer(
        RASA_BIN, RASA_PROJECT, base, free_port(), f"http://127.0.0.1:{free_port()}/x", tmp_path / "rasa"
    )
    cache = tmp_path / "cache"  # a fresh cache: this test really trains, and never adds to the suite's
    sync = faq_sync.FaqSync(
        own_db,
        server,
        RASA_PROJECT,
        RASA_BIN,
        cache,
        tmp_path / "faq",
        timing=faq_sync.Timing(poll_s=1, quiet_s=2),
    )
    await server.start()
    stop = asyncio.Event()
    answers: list[tuple[float, str, float]] = []  # (time, intent or error, latency)

    async def keep_asking() -> None:
        """A customer chatting (REST channel) throughout the retrain and the swap."""
        async with httpx.AsyncClient(timeout=60) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    resp = await client.post(
                        f"{server.url}/webhooks/rest/webhook", json={"sender": "c1", "message": "hello"}
                    )
                    texts = [m.get("text", "") for m in resp.json()] if resp.status_code == 200 else []
                    answer = (
                        "greeted" if any("Northwind" in t for t in texts) else f"error: {resp.text[:200]}"
                    )
                except httpx.HTTPError as exc:
                    answer = f"error: {exc!r}"
                answers.append((started, answer, time.monotonic() - started))
                await asyncio.sleep(0.2)

    task: asyncio.Task[None] | None = None
    asker: asyncio.Task[None] | None = None
    try:
        assert await server.wait_ready(240), f"rasa did not start; see {server.log_path}"
        async with httpx.AsyncClient(timeout=60) as client:
            before, confidence = await parse(client, server.url, ASKED)
            assert before != "ask_faq", f"pick a phrasing the base model does not know ({confidence:.2f})"
            print(f"\nbefore: {ASKED!r} -> {before} ({confidence:.2f})")
            asker = asyncio.create_task(keep_asking())
            task = asyncio.create_task(sync.run())
            await asyncio.sleep(1.5)  # the loop sees no FAQ: nothing to do
            assert sync.trainings == 0
            tenant_id = new_id()
            admin = Principal(new_id(), tenant_id, "t", "T", "a@t.test", "Admin", ("admin",))
            entry = await articles.create(
                own_db,
                admin,
                {"title": NEW_FAQ[0], "body": "Yes, in a closed cage.", "questions": NEW_FAQ},
                kind="faq",
            )
            await articles.publish(own_db, admin, entry["_id"])
            zh_admin = Principal(new_id(), new_id(), "z", "Z", "z@t.test", "Admin", ("admin",))
            zh_data = {
                "title": NEW_FAQ_ZH[0],
                "body": "可以。请装笼。",
                "questions": NEW_FAQ_ZH,
                "locale": "zh",
            }
            zh_entry = await articles.create(own_db, zh_admin, zh_data, kind="faq")
            await articles.publish(own_db, zh_admin, zh_entry["_id"])  # within the quiet period
            published_at = time.monotonic()
            deadline = published_at + 600
            while sync.swaps == 0:
                assert time.monotonic() < deadline, "no retrain and swap within 10 minutes"
                state = await own_db.db.bot_sync.find_one({"_id": faq_sync.STATE_ID}) or {}
                assert not state.get("last_error"), state.get("last_error")
                await asyncio.sleep(1)
            swapped_at = time.monotonic()
            after, confidence = await parse(client, server.url, ASKED)
            assert after == "ask_faq", f"{ASKED!r} -> {after} ({confidence:.2f})"
            zh_intent, zh_conf = await parse(client, server.url, NEW_FAQ_ZH[0])
            assert zh_intent == "ask_faq", f"{NEW_FAQ_ZH[0]} -> {zh_intent} ({zh_conf:.2f})"
            state = await own_db.db.bot_sync.find_one({"_id": faq_sync.STATE_ID}) or {}
            assert state["examples"] == len(NEW_FAQ) + len(NEW_FAQ_ZH)
            print(
                f"after: {ASKED!r} -> {after} ({confidence:.2f}), {NEW_FAQ_ZH[0]} -> {zh_intent} "
                f"({zh_conf:.2f}); trained in {state.get('train_seconds')} s, swapped "
                f"{swapped_at - published_at:.1f} s after publishing"
            )
            for text in UNSEEN:  # not asserted: one model's generalisation, reported
                print(f"unseen: {text!r} -> {await parse(client, server.url, text)}")
            assert sync.trainings == 1 and server.model_path.parent == cache.resolve()
            await asyncio.sleep(1.5)  # answers keep coming after the swap
        stop.set()
        await asyncio.wait_for(asker, 70)
        errors = [a for a in answers if a[1].startswith("error")]
        assert not errors, errors[:3]
        assert all(answer == "greeted" for _, answer, _ in answers)
        assert any(at > swapped_at for at, _, _ in answers)
        slowest = max(latency for _, _, latency in answers)
        print(f"{len(answers)} questions during the retrain, none failed; slowest answer {slowest:.2f} s")
        assert base.stat().st_mtime_ns == base_bytes, "the suite's cached model is untouched"
    finally:
        stop.set()
        for pending in (task, asker):
            if pending is not None:
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
        await server.stop()
        shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.rasa
@pytest.mark.timeout(900)
@pytest.mark.skipif(not RASA_BIN.exists(), reason="Rasa not installed (scripts/install_rasa.sh)")
async def test_hub_serve_keeps_its_rasa_in_step_and_restarts_with_the_faq_model(
    tmp_path: Path, mongo: EmbeddedDatabase, tenant_in: TenantFactory
) -> None:
    """`hub serve` runs the loop next to the Rasa it supervises; a restart needs no retrain."""
    rasa_port = free_port()
    db_name = f"faq_hub_{new_id()[:8]}"
    hub = HubProcess(
        tmp_path / "hub",
        mongo.uri,
        f"http://127.0.0.1:{rasa_port}",
        with_rasa=True,
        env={
            "RASA_PORT": str(rasa_port),
            "RASA_AUTOSTART": "true",
            "HUB_DB_NAME": db_name,
            "CONTACT_HUB_CACHE": str(tmp_path / "cache"),  # trains here, not in the suite's cache
            "HUB_FAQ_SYNC_POLL_S": "1",
            "HUB_FAQ_SYNC_QUIET_S": "1",
        },
    )
    rasa_url = f"http://127.0.0.1:{rasa_port}"
    hub.start()
    ctx = context_for(mongo.uri, db_name)
    editor: Agent | None = None
    try:
        t = await tenant_in(hub, agents={"eve": []}, roles={"eve": ["editor"]})
        editor = Agent(hub.url, t["slug"], "eve@t.test")
        await editor.login()
        await ctx.db.kb_articles.insert_one(faq(t["tenant"]["_id"], NEW_FAQ))
        deadline = time.monotonic() + 600
        body: dict[str, Any] = {}
        while not (body.get("in_step") and body.get("faq_examples") == len(NEW_FAQ)):
            assert time.monotonic() < deadline, f"bot not in step: {body}"
            assert not body.get("last_error"), body
            await asyncio.sleep(1)
            body = (await editor.http.get("/api/kb/bot-sync")).json()
        async with httpx.AsyncClient(timeout=30) as client:
            while (await client.get(f"{rasa_url}/status")).json().get("model_file") != body["model"]:
                # the record is written before this process swaps; give it a poll or two
                assert time.monotonic() < deadline, "the hub's rasa never got the new model"
                await asyncio.sleep(0.5)
            assert (await parse(client, rasa_url, ASKED))[0] == "ask_faq"
        trained_at = body["trained_at"]
        hub.stop()
        hub.start()
        await editor.login()
        async with httpx.AsyncClient(timeout=30) as client:
            deadline = time.monotonic() + 240
            while True:
                assert time.monotonic() < deadline, "rasa did not come back"
                try:
                    status = (await client.get(f"{rasa_url}/status")).json()
                    if status.get("model_file"):
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(1)
            print(f"\nafter restart rasa runs {status.get('model_file')}")
            assert (await parse(client, rasa_url, ASKED))[0] == "ask_faq", "restarted with the FAQ model"
        await asyncio.sleep(3)  # a few polls: nothing to retrain
        again = (await editor.http.get("/api/kb/bot-sync")).json()
        assert again["in_step"] and again["trained_at"] == trained_at and not again["training"]
    finally:
        if editor is not None:
            await editor.close()
        hub.stop()
        with contextlib.suppress(PyMongoError):
            await ctx.db.client.drop_database(db_name)
        await ctx.db.close()
