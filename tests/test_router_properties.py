"""Property-based tests of the live router's invariants over random event sequences.

Hypothesis draws sequences of what happens on a contact-center floor (contacts arrive on
chat and voice, agents change presence, accept, decline, miss offers, wrap up, pick up,
customers abandon, sweeps run) and after every step the database must satisfy:

- no agent above capacity on any channel, and `load` / `free` agree with the contacts
  the agent really holds (offers and assignments);
- a contact is offered to one agent, or to several only in a ring-all voice queue;
  assigned contacts have their agent and no offer; queued ones no offer;
- no queued contact is left while an agent who may take it is free: every action that
  frees a slot or adds a contact runs assignment at once (the router is work-conserving).

Each example runs on a fresh tenant in the real embedded database, through the same
`Router` the hub runs.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.contacts import open_contact
from hub.context import AppContext
from hub.ids import new_id, utcnow
from hub.tenancy import create_tenant
from routing.assignment import Router, RoutingError, agent_profile, offered_agents
from routing.model import Queue, capacity_channel
from routing.presence import ensure_agent, set_state
from routing.strategies import eligible

AGENTS = 3
SKILLS = ("general", "billing")
CHANNELS = ("webchat", "voice")

event = st.one_of(
    st.tuples(st.just("contact"), st.sampled_from(CHANNELS), st.sampled_from(SKILLS)),
    st.tuples(
        st.just("presence"),
        st.integers(0, AGENTS - 1),
        st.sampled_from(["available", "not_ready", "offline"]),
    ),
    st.tuples(st.just("accept"), st.integers(0, AGENTS - 1), st.integers(0, 5)),
    st.tuples(st.just("decline"), st.integers(0, AGENTS - 1), st.integers(0, 5)),
    st.tuples(st.just("wrapup"), st.integers(0, AGENTS - 1), st.integers(0, 5)),
    st.tuples(st.just("pickup"), st.integers(0, AGENTS - 1), st.integers(0, 5)),
    st.tuples(st.just("abandon"), st.integers(0, 5)),
    st.tuples(st.just("expire")),
    st.tuples(st.just("sweep")),
)
agent_skills = st.fixed_dictionaries({"general": st.integers(1, 10), "billing": st.integers(0, 10)})


class FloorModel:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.router = Router(ctx)
        self.tenant_id = ""
        self.agent_ids: list[str] = []
        self.ring_all_queue = ""

    async def setup(self, skills: list[dict[str, int]]) -> None:
        tenant = await create_tenant(self.ctx, f"p-{new_id()[:10]}", "Property floor")
        self.tenant_id = tenant["_id"]
        routing = {"capacity": {"voice": 1, "chat": 2}, "wrapup_s": {}, "sticky_days": 0}
        await self.ctx.db.tenants.update_one({"_id": self.tenant_id}, {"$set": {"routing": routing}})
        hotline = Queue(
            id=new_id(), tenant_id=self.tenant_id, name="voice", skills={"general": 1}, strategy="ring_all"
        )
        billing = Queue(id=new_id(), tenant_id=self.tenant_id, name="billing", skills={"billing": 3})
        await self.ctx.db.queues.insert_many([hotline.to_doc(), billing.to_doc()])
        self.ring_all_queue = hotline.id
        for i, levels in enumerate(skills):
            user: dict[str, Any] = {
                "_id": new_id(),
                "tenant_id": self.tenant_id,
                "name": f"agent{i}",
                "skill_levels": {k: v for k, v in levels.items() if v > 0},
            }
            await ensure_agent(self.ctx, user)
            await set_state(self.ctx, user["_id"], "available")
            self.agent_ids.append(user["_id"])

    async def contacts(self, *statuses: str, agent: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"tenant_id": self.tenant_id, "status": {"$in": list(statuses)}}
        return [c async for c in self.ctx.db.contacts.find(query).sort("opened_at", 1)]

    async def apply(self, step: tuple[Any, ...]) -> None:
        kind, *args = step
        r = self.router
        with contextlib.suppress(RoutingError):
            if kind == "contact":
                channel, skill = args
                contact = await open_contact(self.ctx, self.tenant_id, channel)
                queue_id = self.ring_all_queue if channel == "voice" else None
                await r.enqueue(contact["_id"], skill, "test", queue_id=queue_id)
            elif kind == "presence":
                await r.set_presence(
                    self.agent_ids[args[0]], args[1], "break" if args[1] == "not_ready" else None
                )
            elif kind in ("accept", "decline"):
                agent = self.agent_ids[args[0]]
                mine = [c for c in await self.contacts("offered") if agent in offered_agents(c)]
                if mine:
                    contact = mine[args[1] % len(mine)]
                    if kind == "accept":
                        await r.accept(contact["_id"], agent, "agent", self.tenant_id)
                    else:
                        await r.decline(contact["_id"], agent, self.tenant_id)
            elif kind == "wrapup":
                agent = self.agent_ids[args[0]]
                mine = [c for c in await self.contacts("assigned") if c["agent_id"] == agent]
                if mine:
                    contact = mine[args[1] % len(mine)]
                    await r.wrap_up(contact["_id"], agent, self.tenant_id, "resolved", "")
            elif kind == "pickup":
                waiting = await self.contacts("queued", "offered")
                if waiting:
                    contact = waiting[args[1] % len(waiting)]
                    await r.assign_to(contact["_id"], self.agent_ids[args[0]], self.tenant_id, by="test")
            elif kind == "abandon":
                waiting = await self.contacts("bot", "queued", "offered")
                if waiting:
                    await r.abandon(waiting[args[0] % len(waiting)]["_id"], "caller_left")
            elif kind == "expire":
                await self.ctx.db.contacts.update_many(
                    {"tenant_id": self.tenant_id, "status": "offered"},
                    {"$set": {"offer.expires_at": utcnow()}},
                )
                await r.expire_offers()
            elif kind == "sweep":
                await r.sweep()

    async def check(self) -> None:
        agents = {a["_id"]: a async for a in self.ctx.db.agents.find({"tenant_id": self.tenant_id})}
        held: Counter[tuple[str, str]] = Counter()
        queues = await self.router.queues(self.tenant_id)
        for c in await self.contacts("queued", "offered", "assigned", "closed"):
            kind = capacity_channel(c["channel"])
            ringing = offered_agents(c)
            if c["status"] == "offered":
                assert ringing, c
                if len(ringing) > 1:
                    assert c["queue_id"] == self.ring_all_queue and kind == "voice", c
                for a in ringing:
                    held[(a, kind)] += 1
            elif c["status"] == "assigned":
                assert c["agent_id"] and not c.get("offer"), c
                held[(c["agent_id"], kind)] += 1
            else:
                assert not c.get("offer"), c
        for agent_id, agent_doc in agents.items():
            name = agent_doc["name"]
            for kind, capacity in agent_doc["capacity"].items():
                load = agent_doc["load"].get(kind, 0)
                assert 0 <= load <= capacity, (name, kind, agent_doc)
                assert agent_doc["free"][kind] == capacity - load, (name, kind, agent_doc)
                assert load == held[(agent_id, kind)], (name, kind, load, held[(agent_id, kind)])
        now = utcnow()
        for c in await self.contacts("queued"):
            view = self.router.waiting_view(c)
            queue = self.router.queue_for(c, queues)
            takers = [a["name"] for a in agents.values() if eligible(agent_profile(a), view, queue, now)]
            assert not takers, f"{c['_id']} ({c['channel']}, {c['skill']}) waits while {takers} are free"


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    skills=st.lists(agent_skills, min_size=AGENTS, max_size=AGENTS),
    steps=st.lists(event, min_size=10, max_size=40),
)
async def test_router_invariants_hold_over_random_events(
    ctx: AppContext, skills: list[dict[str, int]], steps: list[tuple[Any, ...]]
) -> None:
    floor = FloorModel(ctx)
    await floor.setup(skills)
    for step in steps:
        await floor.apply(step)
        await floor.check()
