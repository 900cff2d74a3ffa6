"""The live router (routing.assignment) on the real embedded database, channel by channel.

Each test builds its own tenant, agents and queues, and drives the same `Router` the hub
runs. Waiting is simulated by moving a contact's `queued_at` back in time (the router
reads waits from it, which is also why waits survive a restart).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from bot.ivr import Schedule
from hub.contacts import get_contact, messages_after, open_contact
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow
from hub.tenancy import create_tenant, create_user
from routing.assignment import Router, RoutingError
from routing.model import AreaRule, EscalationStep, Queue
from routing.presence import ensure_agent, held_contacts, set_state, sync_capacity


@dataclass
class Floor:
    """One tenant with its router, agents and queues."""

    ctx: AppContext
    router: Router
    tenant_id: str
    agents: dict[str, str] = field(default_factory=dict)  # name -> id

    async def agent(self, name: str, skills: dict[str, int], *, state: str = "available") -> str:
        user = await create_user(
            self.ctx, self.tenant_id, f"{name}@{self.tenant_id[:6]}.test", name, "pw-123456", ["agent"]
        )
        await self.ctx.db.users.update_one({"_id": user["_id"]}, {"$set": {"skill_levels": skills}})
        user["skill_levels"] = skills
        await ensure_agent(self.ctx, user)
        await set_state(self.ctx, user["_id"], state, reason="break" if state == "not_ready" else None)
        self.agents[name] = user["_id"]
        return str(user["_id"])

    async def queue(self, **fields: Any) -> Queue:
        queue = Queue(id=fields.pop("id", new_id()), tenant_id=self.tenant_id, **fields)
        await self.ctx.db.queues.insert_one(queue.to_doc())
        return queue

    async def routing(self, **settings: Any) -> None:
        await self.ctx.db.tenants.update_one({"_id": self.tenant_id}, {"$set": {"routing": settings}})
        await sync_capacity(self.ctx, self.tenant_id)

    async def contact(self, skill: str = "general", channel: str = "webchat", **kwargs: Any) -> str:
        extra = {k: v for k, v in kwargs.items() if k in ("from_number",)}
        contact = await open_contact(
            self.ctx, self.tenant_id, channel, customer_id=kwargs.get("customer_id"), extra=extra
        )
        enqueue_args = {k: v for k, v in kwargs.items() if k in ("queue_id", "direct_agent_id", "priority")}
        await self.router.enqueue(contact["_id"], skill, "test", **enqueue_args)
        return str(contact["_id"])

    async def get(self, contact_id: str) -> Doc:
        contact = await get_contact(self.ctx, contact_id)
        assert contact is not None
        return contact

    async def ringing(self, contact_id: str) -> list[str]:
        contact = await self.get(contact_id)
        if contact["status"] != "offered":
            return []
        return sorted(contact["offer"]["agent_ids"])

    async def age(self, contact_id: str, seconds: float) -> None:
        """As if the contact had been waiting `seconds` longer."""
        contact = await self.get(contact_id)
        await self.ctx.db.contacts.update_one(
            {"_id": contact_id}, {"$set": {"queued_at": contact["queued_at"] - timedelta(seconds=seconds)}}
        )

    async def agent_doc(self, name: str) -> Doc:
        doc = await self.ctx.db.agents.find_one({"_id": self.agents[name]})
        assert doc is not None
        return doc


@pytest.fixture
async def floor(ctx: AppContext) -> AsyncIterator[Floor]:
    tenant = await create_tenant(ctx, f"r-{new_id()[:10]}", "Routing floor")
    yield Floor(ctx, Router(ctx), tenant["_id"])


async def test_capacity_is_per_channel(floor: Floor) -> None:
    await floor.routing(capacity={"voice": 1, "chat": 2})
    ann = await floor.agent("ann", {"general": 5})
    chats = [await floor.contact() for _ in range(3)]
    calls = [await floor.contact(channel="voice") for _ in range(2)]
    assert [await floor.ringing(c) for c in chats] == [[ann], [ann], []]
    assert [await floor.ringing(c) for c in calls] == [[ann], []]
    doc = await floor.agent_doc("ann")
    assert (doc["load"], doc["free"]) == ({"chat": 2, "voice": 1}, {"chat": 0, "voice": 0})
    # a web call takes the voice slot too
    webcall = await floor.contact(channel="webcall")
    assert await floor.ringing(webcall) == []


async def test_required_levels_then_relaxed_after_the_escalation_step(floor: Floor) -> None:
    junior = await floor.agent("junior", {"billing": 4})
    queue = await floor.queue(
        name="billing-expert",
        skills={"billing": 8},
        escalation=[EscalationStep(after_s=30, action="relax_skill_levels", relax_to=3)],
    )
    cid = await floor.contact("billing", queue_id=queue.id)
    assert (await floor.get(cid))["queue_name"] == "billing-expert"
    await floor.router.assign_waiting(floor.tenant_id)
    assert await floor.ringing(cid) == []  # level 4 < 8
    await floor.age(cid, 31)
    await floor.router.assign_waiting(floor.tenant_id)
    assert await floor.ringing(cid) == [junior]


async def test_overflow_moves_the_contact_and_callback_is_offered(floor: Floor) -> None:
    backup = await floor.agent("backup", {"general": 5})
    overflow = await floor.queue(name="general-overflow", skills={"general": 1})
    sales = await floor.queue(
        name="sales",
        skills={"sales": 5},
        escalation=[
            EscalationStep(after_s=20, action="offer_callback"),
            EscalationStep(after_s=60, action="overflow_to", queue_id=overflow.id),
        ],
    )
    cid = await floor.contact("sales", queue_id=sales.id)
    async with floor.ctx.bus.subscribe(f"contact:{cid}") as events:
        await floor.age(cid, 25)
        await floor.router.sweep()
        offered = await _next_event(events, "queue_offer")
    assert offered["offers"] == ["callback"]
    texts = [m["text"] for m in await messages_after(floor.ctx, cid)]
    assert any("call you back" in t or "get back to you" in t for t in texts)
    assert await floor.ringing(cid) == []
    await floor.age(cid, 40)
    await floor.router.sweep()
    contact = await floor.get(cid)
    assert contact["queue_id"] == overflow.id and contact["queue_path"] == [sales.id, overflow.id]
    assert await floor.ringing(cid) == [backup]
    # the callback offer was made once, not at every sweep
    assert sum("get back to you" in t for t in [m["text"] for m in await messages_after(floor.ctx, cid)]) == 1


async def _next_event(events: asyncio.Queue[Any], kind: str) -> dict[str, Any]:
    while True:
        event = await asyncio.wait_for(events.get(), 5)
        if event["type"] == kind:
            return dict(event)


async def test_priority_before_first_come_first_served(floor: Floor) -> None:
    await floor.routing(capacity={"chat": 1})
    first = await floor.contact()
    vip = await floor.contact(priority=5)
    assert await floor.ringing(first) == await floor.ringing(vip) == []
    ann = await floor.agent("ann", {"general": 5})
    await floor.router.assign_waiting(floor.tenant_id)
    assert (await floor.ringing(vip), await floor.ringing(first)) == ([ann], [])


async def test_sticky_agent_waits_then_anyone(floor: Floor) -> None:
    await floor.routing(sticky_days=7, sticky_wait_s=30)
    ann = await floor.agent("ann", {"general": 5})
    customer_id = new_id()
    await floor.ctx.db.customers.insert_one({"_id": customer_id, "tenant_id": floor.tenant_id, "name": "C"})
    earlier = await floor.contact(customer_id=customer_id)
    await floor.router.accept(earlier, ann, "ann", floor.tenant_id)
    await floor.router.wrap_up(earlier, ann, floor.tenant_id, "resolved", "")
    await set_state(floor.ctx, ann, "not_ready", reason="break")
    ben = await floor.agent("ben", {"general": 5})
    again = await floor.contact(customer_id=customer_id)
    contact = await floor.get(again)
    assert contact["preferred_agent_id"] == ann
    assert await floor.ringing(again) == []  # Ben is free, but the customer waits for Ann
    await floor.ctx.db.contacts.update_one({"_id": again}, {"$set": {"preferred_until": utcnow()}})
    await floor.router.assign_waiting(floor.tenant_id)
    assert await floor.ringing(again) == [ben]


async def test_caller_area_selects_the_queue(floor: Floor) -> None:
    london = await floor.agent("london", {"uk": 5})
    await floor.agent("generalist", {"general": 5})
    uk = await floor.queue(name="uk", skills={"uk": 1})
    await floor.queue(
        name="general", skills={"general": 1}, area_rules=[AreaRule(queue_id=uk.id, country="GB")]
    )
    call = await floor.contact(channel="voice", from_number="+442079460000")
    assert (await floor.get(call))["queue_id"] == uk.id
    assert await floor.ringing(call) == [london]
    us_call = await floor.contact(channel="voice", from_number="+14155550100")
    assert (await floor.get(us_call))["queue_name"] == "general"


async def test_direct_routing_to_an_agent(floor: Floor) -> None:
    await floor.agent("ann", {"general": 9})
    ben = await floor.agent("ben", {"other": 1}, state="not_ready")
    cid = await floor.contact(direct_agent_id=ben)
    assert await floor.ringing(cid) == []  # only Ben, who is not ready
    await floor.router.set_presence(ben, "available")
    assert await floor.ringing(cid) == [ben]


async def test_ring_all_rings_every_free_agent_and_the_first_accept_wins(floor: Floor) -> None:
    queue = await floor.queue(name="hotline", skills={"general": 1}, strategy="ring_all")
    ids = [await floor.agent(name, {"general": 5}) for name in ("ann", "ben", "cat")]
    call = await floor.contact(channel="voice", queue_id=queue.id)
    assert await floor.ringing(call) == sorted(ids)
    await floor.router.decline(call, ids[2], floor.tenant_id)
    assert await floor.ringing(call) == sorted(ids[:2])
    await floor.router.accept(call, ids[1], "ben", floor.tenant_id)
    with pytest.raises(RoutingError):
        await floor.router.accept(call, ids[0], "ann", floor.tenant_id)
    for name, agent_id in zip(("ann", "ben", "cat"), ids, strict=True):
        doc = await floor.agent_doc(name)
        assert doc["load"].get("voice", 0) == (1 if name == "ben" else 0)
        assert await held_contacts(floor.ctx, agent_id) == ({"voice": 1} if name == "ben" else {})
    # chats in a ring-all queue go to one agent (ring-all is for calls)
    chat = await floor.contact(queue_id=queue.id)
    assert len(await floor.ringing(chat)) == 1


async def test_strategies_pick_the_agent(floor: Floor) -> None:
    best = await floor.queue(name="best", skills={"tech": 1}, strategy="best_fit")
    await floor.agent("novice", {"tech": 2})
    expert = await floor.agent("expert", {"tech": 9})
    cid = await floor.contact("tech", queue_id=best.id)
    assert await floor.ringing(cid) == [expert]
    least = await floor.queue(name="least", skills={"tech": 1}, strategy="least_occupied")
    cid2 = await floor.contact("tech", queue_id=least.id)
    assert await floor.ringing(cid2) == [floor.agents["novice"]]  # expert holds one chat already


async def test_wrapup_timer_then_available_again(floor: Floor) -> None:
    await floor.routing(wrapup_s={"voice": 1})
    ann = await floor.agent("ann", {"general": 5})
    call = await floor.contact(channel="voice")
    await floor.router.accept(call, ann, "ann", floor.tenant_id)
    await floor.router.wrap_up(call, ann, floor.tenant_id, "resolved", "")
    doc = await floor.agent_doc("ann")
    assert doc["state"] == "wrapup" and doc["wrapup_until"] is not None
    chat = await floor.contact()
    assert await floor.ringing(chat) == []  # nothing new during wrap-up
    await asyncio.sleep(1.1)
    await floor.router.sweep()
    assert (await floor.agent_doc("ann"))["state"] == "available"
    assert await floor.ringing(chat) == [ann]


async def test_not_ready_reasons_and_leaving_takes_back_offers(floor: Floor) -> None:
    ann = await floor.agent("ann", {"general": 5})
    cid = await floor.contact()
    assert await floor.ringing(cid) == [ann]
    with pytest.raises(ValueError, match="reason"):
        await floor.router.set_presence(ann, "not_ready", "nap")
    doc = await floor.router.set_presence(ann, "not_ready", "lunch")
    assert doc is not None and (doc["state"], doc["not_ready_reason"]) == ("not_ready", "lunch")
    assert (await floor.get(cid))["status"] == "queued"
    assert (await floor.agent_doc("ann"))["load"].get("chat", 0) == 0
    with pytest.raises(ValueError):
        await floor.router.set_presence(ann, "wrapup")  # set by the system only


async def test_ring_no_answer_sets_not_ready_and_moves_on(floor: Floor) -> None:
    ann = await floor.agent("ann", {"general": 5})
    cid = await floor.contact()
    assert await floor.ringing(cid) == [ann]
    ben = await floor.agent("ben", {"general": 5})
    await floor.ctx.db.contacts.update_one({"_id": cid}, {"$set": {"offer.expires_at": utcnow()}})
    await floor.router.sweep()
    doc = await floor.agent_doc("ann")
    assert (doc["state"], doc["not_ready_reason"]) == ("not_ready", "missed_offer")
    assert await floor.ringing(cid) == [ben]


async def test_pickup_and_move_between_queues(floor: Floor) -> None:
    billing = await floor.queue(name="billing", skills={"billing": 1})
    tech = await floor.queue(name="tech", skills={"tech": 1})
    cid = await floor.contact("billing", queue_id=billing.id)
    techie = await floor.agent("techie", {"tech": 5})
    assert await floor.ringing(cid) == []
    moved = await floor.router.move(cid, floor.tenant_id, queue_id=tech.id)
    assert moved["queue_id"] == tech.id and moved["queued_at"] == (await floor.get(cid))["queued_at"]
    assert await floor.ringing(cid) == [techie]
    # another billing contact picked up by the techie (allowed), above capacity refused
    await floor.routing(capacity={"chat": 2})
    other = await floor.contact("billing", queue_id=billing.id)
    assert (await floor.router.assign_to(other, techie, floor.tenant_id, by=techie))["agent_id"] == techie
    third = await floor.contact("billing", queue_id=billing.id)
    with pytest.raises(RoutingError, match="no free slot"):
        await floor.router.assign_to(third, techie, floor.tenant_id, by=techie)


async def test_a_new_router_continues_where_the_old_one_stopped(floor: Floor) -> None:
    """Queued contacts keep queue, place and wait in the database: a restarted hub (a new
    Router) applies the escalation the wait has reached and serves the head first."""
    queue = await floor.queue(
        name="expert",
        skills={"general": 9},
        escalation=[EscalationStep(after_s=60, action="relax_skill_levels", relax_by=8)],
    )
    first = await floor.contact(queue_id=queue.id)
    second = await floor.contact(queue_id=queue.id)
    before = await floor.get(first)
    await floor.age(first, 61)
    await floor.age(second, 61)
    await floor.routing(capacity={"chat": 1})
    restarted = Router(floor.ctx)
    ann = await floor.agent("ann", {"general": 2})
    await restarted.sweep()
    assert (await floor.ringing(first), await floor.ringing(second)) == ([ann], [])
    assert (await floor.get(first))["queued_at"] == before["queued_at"] - timedelta(seconds=61)


async def test_an_agent_becoming_available_takes_the_backlog_up_to_capacity(floor: Floor) -> None:
    ann = await floor.agent("ann", {"general": 5}, state="not_ready")
    waiting = [await floor.contact() for _ in range(4)]
    await floor.router.set_presence(ann, "available")
    assert [await floor.ringing(c) for c in waiting] == [[ann], [ann], [ann], []]  # capacity 3


async def test_a_closed_queue_offers_a_callback_at_once(floor: Floor) -> None:
    closed = Schedule(hours={}, holidays=[])  # no opening hours at all
    queue = await floor.queue(name="weekdays", skills={"general": 1}, schedule=closed)
    cid = await floor.contact(queue_id=queue.id)
    contact = await floor.get(cid)
    assert contact["status"] == "queued" and contact["escalation_offers"] == ["callback"]
    assert any("opening hours" in m["text"] for m in await messages_after(floor.ctx, cid))
    ann = await floor.agent("ann", {"general": 5})  # an agent working late still gets it
    await floor.router.assign_waiting(floor.tenant_id)
    assert await floor.ringing(cid) == [ann]


async def test_hold_music_comes_from_the_queue(floor: Floor) -> None:
    with_music = await floor.queue(name="music", skills={"general": 1}, hold_music="default")
    silent = await floor.queue(name="silent", skills={"general": 1})
    assert (
        await floor.router.hold_music(await floor.get(await floor.contact(queue_id=with_music.id)))
        == "default"
    )
    assert await floor.router.hold_music(await floor.get(await floor.contact(queue_id=silent.id))) is None
