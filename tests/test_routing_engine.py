"""The MongoDB-backed assignment engine (routing.engine) against the real embedded database."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.context import AppContext
from hub.db import Database
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id
from routing.engine import AGENTS, CONTACTS, RoutingEngine
from routing.model import AgentProfile, Queue, WaitingContact
from tests.conftest import context_for

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
CAPACITY = {"voice": 1, "webchat": 3, "email": 5}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def ctx(mongo: EmbeddedDatabase) -> AsyncIterator[AppContext]:
    context = context_for(mongo.uri, "router_engine_test")
    await context.db.db[AGENTS].delete_many({})
    await context.db.db[CONTACTS].delete_many({})
    await RoutingEngine(context.db).ensure_indexes()
    yield context
    await context.db.close()


@pytest.fixture
def tenant() -> str:
    return f"t-{new_id()[:8]}"


def agent(tenant: str, aid: str, **kw: Any) -> AgentProfile:
    data: dict[str, Any] = {
        "id": aid,
        "tenant_id": tenant,
        "skills": {"billing": 5},
        "languages": ["en"],
        "capacity": dict(CAPACITY),
        "state": "available",
        "idle_since": T0,
    }
    data.update(kw)
    return AgentProfile(**data)


def contact(tenant: str, cid: str, **kw: Any) -> WaitingContact:
    data: dict[str, Any] = {
        "id": cid,
        "tenant_id": tenant,
        "channel": "webchat",
        "queue_id": "q1",
        "enqueued_at": T0,
    }
    data.update(kw)
    return WaitingContact(**data)


def queue(tenant: str, **kw: Any) -> Queue:
    data: dict[str, Any] = {"id": "q1", "tenant_id": tenant, "name": "Billing", "skills": {"billing": 3}}
    data.update(kw)
    return Queue(**data)


async def seed(engine: RoutingEngine, agents: list[AgentProfile], contacts: list[WaitingContact]) -> None:
    for a in agents:
        await engine.put_agent(a)
    for c in contacts:
        await engine.enqueue(c)


async def drain(engine: RoutingEngine, tenant: str, q: Queue) -> list[tuple[str, str]]:
    out = []
    while (pair := await engine.assign_next(tenant, q)) is not None:
        out.append(pair)
    return out


async def test_skills_and_levels_decide_who_may_take_a_contact(ctx: AppContext, tenant: str) -> None:
    engine = RoutingEngine(ctx.db, FakeClock(at(5)))
    q = queue(tenant, skills={"billing": 3})
    await seed(
        engine,
        [
            agent(tenant, "low", skills={"billing": 2}, idle_since=at(-100)),  # level too low
            agent(tenant, "other", skills={"sales": 9}, idle_since=at(-90)),  # wrong skill
            agent(tenant, "away", state="not_ready", idle_since=at(-80)),  # not available
            agent(tenant, "es", skills={"billing": 9}, languages=["es"], idle_since=at(-70)),
            agent(tenant, "ok", skills={"billing": 3}, idle_since=at(-10)),
            agent("other-tenant", "foreign", skills={"billing": 9}, idle_since=at(-200)),
        ],
        [
            contact(tenant, "c-en", language="en"),
            contact(tenant, "c-expert", skills={"billing": 7}, enqueued_at=at(1)),
        ],
    )
    assert await engine.assign_next(tenant, q) == ("c-en", "ok")
    # the contact's own level (7) raises the queue's 3: only "es" has it (no language needed here)
    assert await engine.assign_next(tenant, q) == ("c-expert", "es")
    assert await engine.assign_next(tenant, q) is None
    doc = await engine.find_contact("c-en")
    assert doc is not None and doc["status"] == "offered" and doc["agent_id"] == "ok"
    assert await engine.accept("c-en", "es") is False  # not offered to "es"
    assert await engine.accept("c-en", "ok") is True
    doc = await engine.find_contact("c-en")
    assert doc is not None and doc["status"] == "assigned"


async def test_escalation_relaxes_the_level_in_the_agent_query(ctx: AppContext, tenant: str) -> None:
    clock = FakeClock(at(10))
    engine = RoutingEngine(ctx.db, clock)
    q = queue(
        tenant,
        skills={"billing": 8},
        escalation=[{"after_s": 30, "action": "relax_skill_levels", "relax_to": 4}],
    )
    await seed(engine, [agent(tenant, "mid", skills={"billing": 5})], [contact(tenant, "c1")])
    assert await engine.assign_next(tenant, q) is None
    clock.now = at(31)
    assert await engine.assign_next(tenant, q) == ("c1", "mid")


async def test_capacity_per_channel_is_never_exceeded(ctx: AppContext, tenant: str) -> None:
    engine = RoutingEngine(ctx.db, FakeClock(at(100)))
    q = queue(tenant)
    contacts = [
        contact(tenant, f"{ch}-{i}", channel=ch, enqueued_at=at(i)) for ch in CAPACITY for i in range(8)
    ]
    await seed(engine, [agent(tenant, "a1")], contacts)
    pairs = await drain(engine, tenant, q)
    assert Counter(cid.split("-")[0] for cid, _ in pairs) == CAPACITY
    a1 = await engine.get_agent("a1")
    assert a1 is not None and a1.load == CAPACITY
    raw = await ctx.db.db[AGENTS].find_one({"_id": "a1"})
    assert raw is not None and raw["free"] == {"voice": 0, "webchat": 0, "email": 0}
    # a released slot is taken by the next waiting contact of that channel, first come first served
    assert await engine.release("a1", "webchat") is True
    assert await engine.assign_next(tenant, q) == ("webchat-3", "a1")
    assert await engine.release("a1", "sms") is False  # nothing to give back


async def test_priority_then_first_come_first_served(ctx: AppContext, tenant: str) -> None:
    engine = RoutingEngine(ctx.db, FakeClock(at(100)))
    q = queue(tenant)
    await seed(
        engine,
        [agent(tenant, "a1", capacity={"email": 5})],
        [
            contact(tenant, "old", channel="email", enqueued_at=at(1)),
            contact(tenant, "newer", channel="email", enqueued_at=at(2)),
            contact(tenant, "vip", channel="email", enqueued_at=at(50), priority=5),
            contact(tenant, "later", channel="email", enqueued_at=at(200)),  # not waiting yet at 100
            contact(tenant, "urgent", channel="email", enqueued_at=at(60), priority=9),
        ],
    )
    assert [cid for cid, _ in await drain(engine, tenant, q)] == ["urgent", "vip", "old", "newer"]


async def test_a_head_nobody_can_serve_does_not_block_the_queue(ctx: AppContext, tenant: str) -> None:
    engine = RoutingEngine(ctx.db, FakeClock(at(100)), head_window=2)
    q = queue(tenant)
    blocked = [contact(tenant, f"voice-{i}", channel="voice", enqueued_at=at(i)) for i in range(5)]
    await seed(
        engine,
        [agent(tenant, "a1", capacity={"webchat": 1})],
        [*blocked, contact(tenant, "chat", channel="webchat", enqueued_at=at(50))],
    )
    assert await engine.assign_next(tenant, q) == ("chat", "a1")


async def test_strategies_pick_among_the_candidates(ctx: AppContext, tenant: str) -> None:
    engine = RoutingEngine(ctx.db, FakeClock(at(100)))
    await seed(
        engine,
        [
            agent(tenant, "idle", skills={"billing": 3}, idle_since=at(-50)),
            agent(tenant, "expert", skills={"billing": 9}, idle_since=at(-10)),
        ],
        [contact(tenant, "c1"), contact(tenant, "c2", enqueued_at=at(1))],
    )
    assert await engine.assign_next(tenant, queue(tenant, strategy="best_fit")) == ("c1", "expert")
    assert await engine.assign_next(tenant, queue(tenant, strategy="longest_idle")) == ("c2", "idle")


async def test_a_failed_contact_claim_gives_the_slot_back(ctx: AppContext, tenant: str) -> None:
    class Raced(RoutingEngine):
        """Another engine offers the contact between our slot reservation and our claim."""

        async def _offer(self, contact_id: str, agent_id: str, now: datetime) -> bool:
            if contact_id == "c1":
                await self.contacts.update_one(
                    {"_id": contact_id}, {"$set": {"status": "offered", "agent_id": "elsewhere"}}
                )
            return await super()._offer(contact_id, agent_id, now)

    engine = Raced(ctx.db, FakeClock(at(100)))
    await seed(
        engine,
        [agent(tenant, "a1", capacity={"voice": 1})],
        [contact(tenant, "c1", channel="voice"), contact(tenant, "c2", channel="voice", enqueued_at=at(1))],
    )
    # c1 is lost to the other engine; the slot came back, so c2 gets it in the same call
    assert await engine.assign_next(tenant, queue(tenant)) == ("c2", "a1")
    c1 = await engine.find_contact("c1")
    assert c1 is not None and c1["agent_id"] == "elsewhere"
    raw = await ctx.db.db[AGENTS].find_one({"_id": "a1"})
    assert raw is not None and raw["load"] == {"voice": 1} and raw["free"] == {"voice": 0}


async def test_two_engines_on_one_database_never_double_offer(
    mongo: EmbeddedDatabase, ctx: AppContext, tenant: str
) -> None:
    rng = random.Random(4)
    q = queue(tenant, skills={"billing": 2})
    agents = [
        agent(
            tenant,
            f"a{i:02}",
            skills={"billing": rng.randint(1, 10)},
            capacity={"voice": 1, "webchat": rng.randint(1, 3), "email": rng.randint(0, 5)},
            idle_since=at(-rng.randint(0, 600)),
        )
        for i in range(20)
    ]
    contacts = [
        contact(
            tenant,
            f"c{i:03}",
            channel=rng.choice(list(CAPACITY)),
            priority=rng.randint(0, 2),
            enqueued_at=at(rng.randint(0, 60)),
        )
        for i in range(150)
    ]
    second = Database(mongo.uri, "router_engine_test")
    try:
        clock = FakeClock(at(100))
        engines = [RoutingEngine(ctx.db, clock), RoutingEngine(second, clock)]
        await seed(engines[0], agents, contacts)

        async def worker(engine: RoutingEngine) -> list[tuple[str, str]]:
            done: list[tuple[str, str]] = []
            while (pair := await engine.assign_next(tenant, q)) is not None:
                done.append(pair)
                await asyncio.sleep(0)
            return done

        results = await asyncio.gather(*(worker(e) for e in engines for _ in range(3)))
    finally:
        await second.close()

    pairs = [p for r in results for p in r]
    assert len({cid for cid, _ in pairs}) == len(pairs), "a contact was offered twice"
    assert any(results[:3]) and any(results[3:]), "both engines took part"
    offered = [d async for d in ctx.db.db[CONTACTS].find({"tenant_id": tenant, "status": "offered"})]
    assert sorted((d["_id"], d["agent_id"]) for d in offered) == sorted(pairs)
    by_agent_channel = Counter((d["agent_id"], d["channel"]) for d in offered)
    eligible_left = 0
    async for doc in ctx.db.db[AGENTS].find({"tenant_id": tenant}):
        for ch, cap in doc["capacity"].items():
            assert doc["load"].get(ch, 0) == by_agent_channel[(doc["_id"], ch)] <= cap
            assert doc["free"][ch] == cap - doc["load"].get(ch, 0) >= 0
            if doc["skills"]["billing"] >= 2 and doc["free"][ch] > 0:
                eligible_left += sum(
                    1 for c in contacts if c.channel == ch and c.id not in {cid for cid, _ in pairs}
                )
    assert eligible_left == 0, "the engines stopped while someone could still take a contact"
