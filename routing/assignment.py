"""The live router (ACD): queues, skills, strategies and escalation for every channel.

The decisions come from the pure core (`routing.strategies`); this module reads the
contacts and agents, asks the core, and makes each decision atomic in MongoDB:

1. an agent's slot is taken with one conditional update (`routing.presence.reserve`:
   available and `free.<channel> > 0`), so nobody is ever above capacity;
2. the contact moves queued -> offered with a conditional update on its status, so it
   is never offered twice; a slot whose offer lost that race is given back at once.

Both hold with several hub processes on one database. Queued contacts live in MongoDB
with their queue, priority and `queued_at`, so they keep their place and their wait
(and so the escalation steps they reached) across a restart. A sweep re-runs
assignment, applies escalation, ends wrap-ups and expires unanswered offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from hub.contacts import append_message, get_contact, messages_after, update_contact
from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, utcnow
from routing.model import (
    CAPACITY_CHANNEL,
    MIN_LEVEL,
    AgentProfile,
    Queue,
    WaitingContact,
    aware,
    capacity_channel,
)
from routing.presence import end_wrapups, release, repair_slots, reserve, set_state, tenant_routing
from routing.strategies import (
    RING_ALL_CHANNELS,
    choose_agent,
    effective_requirements,
    queue_open,
    select_queue_by_area,
    sticky_active,
)

log = logging.getLogger(__name__)

INTENT_SKILLS = {
    "check_balance": "billing",
    "pay_bill": "billing",
    "report_outage": "technical",
}
DEFAULT_SKILL = "general"
# Agents may set these themselves; "busy" and "wrapup" are set by the system.
AGENT_STATES = ("available", "not_ready", "offline")
# Priority, then first come first served; the id settles contacts queued in the same millisecond.
QUEUE_ORDER = [("priority", -1), ("queued_at", 1), ("_id", 1)]
CANDIDATES = 50  # at most this many agents ring at once (ring-all)
CALLBACK_TEXT = (
    "All our agents are still busy. You can keep waiting, or leave your phone number or "
    "email here and we will get back to you."
)


CLOSED_TEXT = (
    "We are outside our opening hours, so an answer may take longer. You can keep waiting, "
    "or leave your phone number or email here and we will get back to you."
)


def skill_for_intent(intent: str | None) -> str:
    return INTENT_SKILLS.get(intent or "", DEFAULT_SKILL)


def implicit_queue(tenant_id: str, skill: str) -> Queue:
    """A skill with no configured queue still routes: to anyone with that skill."""
    return Queue(id=f"skill:{skill}", tenant_id=tenant_id, name=skill, skills={skill: MIN_LEVEL})


def agent_profile(doc: Doc) -> AgentProfile:
    return AgentProfile(
        id=doc["_id"],
        tenant_id=doc.get("tenant_id"),
        name=doc.get("name", ""),
        skills=doc.get("skills") or {},
        languages=doc.get("languages") or [],
        capacity=doc.get("capacity") or {},
        load=doc.get("load") or {},
        state=doc.get("state", "offline"),
        wrapup_until=doc.get("wrapup_until"),
        not_ready_reason=doc.get("not_ready_reason"),
        idle_since=doc.get("idle_since"),
        last_assigned_at=doc.get("last_assigned_at"),
    )


def offered_agents(contact: Doc) -> list[str]:
    offer = contact.get("offer") or {}
    return list(offer.get("agent_ids") or ([offer["agent_id"]] if offer.get("agent_id") else []))


def channels_of(kinds: set[str]) -> list[str]:
    """Every contact channel that takes one of these capacity kinds."""
    return sorted({ch for ch, kind in CAPACITY_CHANNEL.items() if kind in kinds} | kinds)


class FreeAgents:
    """A pass's snapshot of the available agents, kept in step with the slots it takes."""

    def __init__(self, agents: list[AgentProfile]) -> None:
        self.agents = agents  # longest idle first

    def kinds(self) -> set[str]:
        return {kind for a in self.agents for kind in a.capacity if a.free(kind) > 0}

    def with_room(self, kind: str) -> list[AgentProfile]:
        return [a for a in self.agents if a.free(kind) > 0]

    def took(self, agent: AgentProfile, kind: str, now: datetime) -> None:
        agent.load[kind] = agent.load.get(kind, 0) + 1
        agent.idle_since = now  # as `reserve` wrote it: longest idle rotates
        self.agents = [a for a in self.agents if a is not agent] + [agent]

    def gave_back(self, agent: AgentProfile, kind: str) -> None:
        agent.load[kind] = max(0, agent.load.get(kind, 0) - 1)

    def drop(self, agent: AgentProfile) -> None:
        """Its document changed under us (state, or slots taken elsewhere): leave it out."""
        self.agents = [a for a in self.agents if a is not agent]


class RoutingError(Exception):
    """A request that does not fit the contact's current state (shown as 409)."""


class Router:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._wake = asyncio.Event()
        self._last_repair = 0.0
        self.rr_state: dict[str, str] = {}  # round-robin: {queue id: last agent}, per process

    # -- queues -------------------------------------------------------------------------------
    async def queues(self, tenant_id: str) -> dict[str, Queue]:
        out: dict[str, Queue] = {}
        async for doc in self.ctx.db.queues.find({"tenant_id": tenant_id}):
            with contextlib.suppress(ValueError):  # a queue stored by an older version
                queue = Queue.from_doc(doc)
                out[queue.id] = queue
        return out

    @staticmethod
    def queue_for(contact: Doc, queues: dict[str, Queue]) -> Queue:
        queue = queues.get(contact.get("queue_id") or "")
        return queue or implicit_queue(contact["tenant_id"], contact.get("skill") or DEFAULT_SKILL)

    @staticmethod
    def pick_queue(tenant_id: str, queues: dict[str, Queue], skill: str, queue_id: str | None) -> Queue:
        """By id; else a queue named after the skill; else the highest-priority queue that
        requires the skill; else the skill's implicit queue."""
        if queue_id and queue_id in queues:
            return queues[queue_id]
        by_name = [q for q in queues.values() if q.name == skill]
        needing = sorted((q for q in queues.values() if skill in q.skills), key=lambda q: -q.priority)
        return (by_name or needing or [implicit_queue(tenant_id, skill)])[0]

    # -- queueing -----------------------------------------------------------------------------
    async def enqueue(
        self,
        contact_id: str,
        skill: str,
        reason: str,
        *,
        queue_id: str | None = None,
        direct_agent_id: str | None = None,
        priority: int = 0,
    ) -> Doc | None:
        """bot -> queued; idempotent (a contact already with a human stays where it is).

        The queue: `queue_id`, or the one for `skill`, then the caller-area rules of that
        queue on the caller's number. A customer served lately waits a while for the same
        agent (sticky); `direct_agent_id` waits for that agent only.
        """
        contact = await get_contact(self.ctx, contact_id)
        if contact is None or contact["status"] != "bot":
            return contact
        tenant_id = contact["tenant_id"]
        settings = await tenant_routing(self.ctx, tenant_id)
        queues = await self.queues(tenant_id)
        queue = self.pick_queue(tenant_id, queues, skill, queue_id)
        area_target = select_queue_by_area(
            contact.get("from_number"), queue.area_rules, queue.id, settings.default_region
        )
        queue = queues.get(area_target, queue)
        now = utcnow()
        changes: Doc = {
            "status": "queued",
            "skill": skill,
            "reason": reason,
            "queued_at": now,
            "queue_id": queue.id,
            "queue_name": queue.name,
            "queue_path": [queue.id],
            "priority": queue.priority + priority + await self._customer_priority(contact),
            "direct_agent_id": direct_agent_id,
            "escalation_offers": [],
        }
        sticky = None if direct_agent_id else await self._sticky_agent(contact, settings.sticky_days)
        if sticky and settings.sticky_wait_s > 0:
            changes["preferred_agent_id"] = sticky
            changes["preferred_until"] = now + timedelta(seconds=settings.sticky_wait_s)
        queued = await update_contact(self.ctx, contact_id, changes, expect={"status": "bot"})
        if queued is not None:
            if not queue_open(queue, now):
                await self._closed(queued)
            await self.assign_waiting(tenant_id)
        return await get_contact(self.ctx, contact_id)

    async def _closed(self, contact: Doc) -> None:
        """Outside the queue's business hours the contact still waits (an agent may be on
        late), and is offered a way out at once: a callback, or voicemail for callers."""
        offers = (
            ["callback", "voicemail"] if capacity_channel(contact["channel"]) == "voice" else ["callback"]
        )
        updated = await update_contact(self.ctx, contact["_id"], {"escalation_offers": offers})
        self.ctx.bus.publish(
            f"contact:{contact['_id']}",
            {"type": "queue_offer", "contact_id": contact["_id"], "offers": offers},
        )
        if updated is not None and capacity_channel(contact["channel"]) == "chat":
            await append_message(self.ctx, updated, "system", CLOSED_TEXT, client_id="router:closed")

    async def hold_music(self, contact: Doc) -> str | None:
        """The hold music of the queue the contact waits in, if that queue names one."""
        queues = await self.queues(contact["tenant_id"])
        return self.queue_for(contact, queues).hold_music

    async def _customer_priority(self, contact: Doc) -> int:
        if not contact.get("customer_id"):
            return 0
        customer = await self.ctx.db.customers.find_one({"_id": contact["customer_id"]}, {"priority": 1})
        return int((customer or {}).get("priority") or 0)

    async def _sticky_agent(self, contact: Doc, days: float) -> str | None:
        """The agent who last served this customer within `days`, if still an agent here."""
        if not contact.get("customer_id") or days <= 0:
            return None
        since = utcnow() - timedelta(days=days)
        cursor = self.ctx.db.contacts.find(
            {
                "tenant_id": contact["tenant_id"],
                "customer_id": contact["customer_id"],
                "opened_at": {"$gte": since},
                "agent_id": {"$ne": None},
                "_id": {"$ne": contact["_id"]},
            },
            {"agent_id": 1},
        ).sort("opened_at", -1)
        async for previous in cursor.limit(1):
            agent = await self.ctx.db.agents.find_one(
                {"_id": previous["agent_id"], "tenant_id": contact["tenant_id"]}, {"_id": 1}
            )
            return agent["_id"] if agent else None
        return None

    def waiting_view(self, contact: Doc) -> WaitingContact:
        """The router core's view of a queued contact."""
        return WaitingContact(
            id=contact["_id"],
            tenant_id=contact["tenant_id"],
            channel=capacity_channel(contact["channel"]),
            queue_id=contact.get("queue_id") or f"skill:{contact.get('skill') or DEFAULT_SKILL}",
            priority=contact.get("priority") or 0,
            enqueued_at=contact.get("queued_at") or contact["opened_at"],
            language=contact.get("language"),
            preferred_agent_id=contact.get("preferred_agent_id"),
            preferred_until=contact.get("preferred_until"),
            caller_number=contact.get("from_number"),
            direct_agent_id=contact.get("direct_agent_id"),
            direct_group=contact.get("direct_group"),
            excluded_agents=self._recently_declined(contact),
        )

    def _recently_declined(self, contact: Doc) -> list[str]:
        """Agents who declined or missed this contact lately are skipped; after the
        cool-down they may get it again, so a contact is never stranded because every
        agent once declined it."""
        cutoff = utcnow() - timedelta(seconds=self.ctx.settings.decline_cooldown_s)
        return sorted({d["agent_id"] for d in contact.get("declines", []) if aware(d["at"]) > cutoff})

    # -- assignment ---------------------------------------------------------------------------
    async def try_assign(self, contact: Doc) -> bool:
        """Assignment for this contact's tenant (head first); True if anything was offered."""
        if contact["status"] != "queued":
            return False
        return await self.assign_waiting(contact["tenant_id"]) > 0

    async def assign_waiting(self, tenant_id: str | None = None, *, escalate: bool = False) -> int:
        """Offer queued contacts while agents are free: priority, then first come first served.

        Event-driven calls (a contact queued, a slot freed) stop as soon as no agent has
        room; the periodic sweep passes `escalate=True` and looks at every queued contact,
        so overflow and callback steps happen also when nobody is free.
        """
        if tenant_id is None:
            query: Doc = {"status": "queued"}
            tenants = {d["tenant_id"] async for d in self.ctx.db.contacts.find(query, {"tenant_id": 1})}
        else:
            tenants = {tenant_id}
        assigned = 0
        for tenant in sorted(tenants):
            assigned += await self._assign_tenant(tenant, escalate)
        return assigned

    async def _assign_tenant(self, tenant_id: str, escalate: bool) -> int:
        """One pass down the tenant's queue against a snapshot of its free agents.

        The agents are read once (longest idle first) and kept up to date in memory as
        slots are taken; the database still decides every reservation, so a stale snapshot
        only costs a failed conditional update. Reading agents before contacts keeps first
        come first served across hub processes: a slot freed after the snapshot is not in
        it, and the process that freed it starts its own pass from the head.
        """
        now = utcnow()
        room = FreeAgents(
            [
                agent_profile(a)
                async for a in self.ctx.db.agents.find({"tenant_id": tenant_id, "state": "available"}).sort(
                    [("idle_since", 1), ("_id", 1)]
                )
            ]
        )
        if not escalate and not room.kinds():
            return 0
        queues = await self.queues(tenant_id)
        query: Doc = {"tenant_id": tenant_id, "status": "queued"}
        if not escalate:
            query["channel"] = {"$in": channels_of(room.kinds())}
        hopeless: set[tuple[Any, ...]] = set()  # conditions no free agent meets, this pass
        assigned = 0
        async for doc in self.ctx.db.contacts.find(query).sort(QUEUE_ORDER).batch_size(500):
            if not escalate and not room.kinds():
                break
            escalated = await self._escalate(doc, queues, now) if escalate else doc
            if escalated is None or capacity_channel(escalated["channel"]) not in room.kinds():
                continue
            contact, queue = self.waiting_view(escalated), self.queue_for(escalated, queues)
            key = self._conditions(contact, queue, now)
            if key in hopeless:
                continue
            outcome = await self._try_contact(escalated, contact, queue, room, now)
            if outcome == "offered":
                assigned += 1
            elif outcome == "nobody":
                hopeless.add(key)
        return assigned

    @staticmethod
    def _conditions(contact: WaitingContact, queue: Queue, now: datetime) -> tuple[Any, ...]:
        """What decides who may take a contact (the hard conditions of `eligible`): two
        contacts with equal conditions have the same takers, so one that found nobody
        spares the others the search."""
        reqs = effective_requirements(queue, contact, contact.waited_s(now))
        only = contact.direct_agent_id or (
            contact.preferred_agent_id if sticky_active(contact, now) else None
        )
        levels = {} if contact.direct_agent_id is not None else dict(reqs.skills)
        return (
            contact.channel,
            tuple(contact.excluded_agents),
            only,
            contact.language,
            contact.direct_group,
            tuple(sorted(levels.items())),
        )

    async def _try_contact(
        self, doc: Doc, contact: WaitingContact, queue: Queue, room: FreeAgents, now: datetime
    ) -> str:
        """Choose, reserve and offer: "offered", "nobody" (no agent fits) or "taken" (lost a race)."""
        ring_all = queue.strategy == "ring_all" and contact.channel in RING_ALL_CHANNELS
        while True:
            pool = room.with_room(contact.channel)
            choice = choose_agent(queue.strategy, pool, contact, queue, now, self.rr_state)
            if not choice.agents:
                return "nobody"
            reserved: list[AgentProfile] = []
            for agent in choice.agents[:CANDIDATES]:
                if await reserve(self.ctx, agent.id, contact.channel):
                    room.took(agent, contact.channel, now)
                    reserved.append(agent)
                    if not ring_all:
                        break
                else:  # another process was faster, or the agent changed state
                    room.drop(agent)
            if not reserved:
                continue
            if await self._offer(doc, reserved, ring_all=ring_all):
                self.rr_state = dict(choice.rr_state)
                return "offered"
            for agent in reserved:  # another process offered the contact meanwhile
                await release(self.ctx, agent.id, contact.channel)
                room.gave_back(agent, contact.channel)
            return "taken"

    async def _offer(self, doc: Doc, agents: list[AgentProfile], *, ring_all: bool) -> bool:
        expires_at = utcnow() + timedelta(seconds=self.ctx.settings.offer_timeout_s)
        offer = {
            "agent_id": agents[0].id,
            "agent_ids": [a.id for a in agents],
            "agent_name": agents[0].name,
            "expires_at": expires_at,
            "ring_all": ring_all,
        }
        offered = await update_contact(
            self.ctx, doc["_id"], {"status": "offered", "offer": offer}, expect={"status": "queued"}
        )
        if offered is None:
            return False
        view = await self.offer_view(offered)
        for agent in agents:
            self.ctx.bus.publish(f"user:{agent.id}", {"type": "offer", "offer": view})
        log.info("offered contact %s to %s", offered["_id"], ", ".join(a.name for a in agents))
        return True

    # -- escalation ---------------------------------------------------------------------------
    async def _escalate(self, doc: Doc, queues: dict[str, Queue], now: datetime) -> Doc | None:
        """Apply the queue's escalation steps the wait has reached: an overflow moves the
        contact (never back into a queue it came from); callback / voicemail offers are
        made once. Level relaxing needs no write: it is computed from the wait."""
        queue, waiting = self.queue_for(doc, queues), self.waiting_view(doc)
        reqs = effective_requirements(queue, waiting, waiting.waited_s(now))
        path = doc.get("queue_path") or [queue.id]
        if reqs.queue_id != queue.id and reqs.queue_id in queues and reqs.queue_id not in path:
            target = queues[reqs.queue_id]
            moved = await update_contact(
                self.ctx,
                doc["_id"],
                {"queue_id": target.id, "queue_name": target.name, "queue_path": [*path, target.id]},
                expect={"status": "queued", "queue_id": doc.get("queue_id")},
            )
            if moved is None:
                return None
            log.info("contact %s overflowed from %s to %s", doc["_id"], queue.name, target.name)
            return await self._escalate(moved, queues, now)
        new_offers = sorted(set(reqs.offers) - set(doc.get("escalation_offers") or []))
        if new_offers:
            offered = await update_contact(
                self.ctx,
                doc["_id"],
                {"escalation_offers": sorted(set(reqs.offers))},
                expect={"status": "queued", "updated_at": doc["updated_at"]},
            )
            if offered is None:
                return None
            event = {"type": "queue_offer", "contact_id": doc["_id"], "offers": new_offers}
            self.ctx.bus.publish(f"contact:{doc['_id']}", event)
            if capacity_channel(doc["channel"]) == "chat" and "callback" in new_offers:
                await append_message(self.ctx, offered, "system", CALLBACK_TEXT, client_id="router:callback")
            return offered
        return doc

    # -- agent actions ------------------------------------------------------------------------
    async def accept(self, contact_id: str, agent_id: str, agent_name: str, tenant_id: str) -> Doc:
        """offered -> assigned, only by an agent the contact rings; with ring-all the
        others stop ringing. The update is conditional on the exact set of ringing agents,
        so a concurrent decline by one of them is never released twice."""
        for _ in range(10):
            offered = await get_contact(self.ctx, contact_id, tenant_id)
            ringing = offered_agents(offered) if offered and offered["status"] == "offered" else []
            if offered is None or agent_id not in ringing:
                raise RoutingError("this offer is no longer available")
            contact = await update_contact(
                self.ctx,
                contact_id,
                {
                    "status": "assigned",
                    "agent_id": agent_id,
                    "agent_name": agent_name,
                    "offer": None,
                    "assigned_at": utcnow(),
                },
                expect={"status": "offered", "offer.agent_ids": ringing},
            )
            if contact is not None:
                break
        else:
            raise RoutingError("this offer is changing; try again")
        others = [other for other in ringing if other != agent_id]
        for other in others:
            await self._revoke(other, contact)
        await append_message(self.ctx, contact, "system", f"{agent_name} joined the conversation.")
        if others:  # their slots are free again
            await self.assign_waiting(tenant_id)
        await self.ctx.db.agents.update_one({"_id": agent_id}, {"$set": {"last_contact_at": utcnow()}})
        return contact

    async def _revoke(self, agent_id: str, contact: Doc) -> None:
        await release(self.ctx, agent_id, contact["channel"])
        self.ctx.bus.publish(f"user:{agent_id}", {"type": "offer_revoked", "contact_id": contact["_id"]})

    async def decline(self, contact_id: str, agent_id: str, tenant_id: str) -> None:
        if not await self._withdraw(contact_id, [agent_id], tenant_id):
            raise RoutingError("this offer is no longer available")

    async def _withdraw(self, contact_id: str, agent_ids: list[str], tenant_id: str | None = None) -> bool:
        """Take the offer back from these agents; with nobody left ringing, the contact goes
        back to the queue in its old place. Declines are remembered for the cool-down."""
        for _ in range(10):  # a concurrent change to the offer: read and try again
            contact = await get_contact(self.ctx, contact_id, tenant_id)
            ringing = offered_agents(contact) if contact and contact["status"] == "offered" else []
            leaving = [a for a in agent_ids if a in ringing]
            if contact is None or not leaving:
                return False
            remaining = [a for a in ringing if a not in leaving]
            now = utcnow()
            changes: Doc = {"status": "queued", "offer": None}
            if remaining:
                changes = {"offer.agent_ids": remaining, "offer.agent_id": remaining[0]}
            updated = await update_contact(
                self.ctx,
                contact_id,
                changes,
                expect={"status": "offered", "offer.agent_ids": ringing},
                extra_update={
                    "$push": {"declines": {"$each": [{"agent_id": a, "at": now} for a in leaving]}}
                },
            )
            if updated is None:
                continue
            for agent in leaving:
                await self._revoke(agent, contact)
            await self.assign_waiting(updated["tenant_id"])  # the contact, or the freed slots
            return True
        return False

    async def wrap_up(
        self, contact_id: str, agent_id: str, tenant_id: str, disposition: str, note: str
    ) -> Doc:
        tenant = await self.ctx.db.tenants.find_one({"_id": tenant_id})
        codes = {d["code"] for d in (tenant or {}).get("dispositions", [])}
        if disposition not in codes:
            raise ValueError(f"unknown disposition {disposition!r}")
        contact = await update_contact(
            self.ctx,
            contact_id,
            {
                "status": "closed",
                "disposition": disposition,
                "note": note.strip()[:2000],
                "closed_at": utcnow(),
            },
            expect={"status": "assigned", "agent_id": agent_id, "tenant_id": tenant_id},
        )
        if contact is None:
            raise RoutingError("this conversation is not assigned to you")
        await append_message(self.ctx, contact, "system", "The agent closed this conversation. Thank you!")
        # e.g. the chat / SMS satisfaction survey (bot/csat.py, wired in by hub/app.py: the
        # router does not import the bot)
        for hook in self.ctx.extra.get("agent_closed_hooks", ()):
            await hook(self.ctx, contact)
        await release(self.ctx, agent_id, contact["channel"])
        settings = await tenant_routing(self.ctx, tenant_id)
        wrapup_s = settings.wrapup_s.get(capacity_channel(contact["channel"]), 0)
        if wrapup_s > 0:  # after-contact work; only from available, never over the agent's own choice
            await set_state(self.ctx, agent_id, "wrapup", wrapup_s=wrapup_s, only_from=("available",))
        await self.assign_waiting(tenant_id)
        return contact

    async def abandon(self, contact_id: str, reason: str) -> Doc | None:
        """The customer left before an agent took the contact: close it, free any offer."""
        now = utcnow()
        contact = await get_contact(self.ctx, contact_id)
        if contact is None or contact["status"] not in ("bot", "queued", "offered"):
            return contact
        closed = await update_contact(
            self.ctx,
            contact_id,
            {"status": "closed", "closed_at": now, "disposition": "abandoned", "note": reason, "offer": None},
            expect={"status": contact["status"], "updated_at": contact["updated_at"]},
        )
        if closed is None:  # it moved on meanwhile (e.g. accepted): look again
            return await self.abandon(contact_id, reason)
        if contact["status"] == "offered":
            for agent in offered_agents(contact):
                await self._revoke(agent, contact)
            await self.assign_waiting(contact["tenant_id"])
        return closed

    async def assign_to(self, contact_id: str, agent_id: str, tenant_id: str, *, by: str) -> Doc:
        """A waiting contact goes straight to a given agent: an agent picking up a contact
        from any queue, or a supervisor assigning one. The agent's capacity still holds."""
        contact = await get_contact(self.ctx, contact_id, tenant_id)
        if contact is None or contact["status"] not in ("queued", "offered"):
            raise RoutingError("this contact is not waiting")
        agent = await reserve(self.ctx, agent_id, contact["channel"], any_state=True)
        if agent is None or agent["tenant_id"] != tenant_id:
            if agent is not None:
                await release(self.ctx, agent_id, contact["channel"])
            raise RoutingError("that agent has no free slot for this channel")
        assigned = await update_contact(
            self.ctx,
            contact_id,
            {
                "status": "assigned",
                "agent_id": agent_id,
                "agent_name": agent["name"],
                "offer": None,
                "assigned_at": utcnow(),
                "assigned_by": by,
            },
            expect={"status": contact["status"], "updated_at": contact["updated_at"]},
        )
        if assigned is None:
            await release(self.ctx, agent_id, contact["channel"])
            raise RoutingError("this contact changed meanwhile; try again")
        await append_message(self.ctx, assigned, "system", f"{agent['name']} joined the conversation.")
        if contact["status"] == "offered":
            for previous in offered_agents(contact):
                await self._revoke(previous, contact)
            await self.assign_waiting(tenant_id)
        return assigned

    async def requeue(
        self,
        contact_id: str,
        agent_id: str,
        tenant_id: str,
        *,
        reason: str,
        head: bool = False,
        queue_id: str | None = None,
        skill: str | None = None,
        to_agent_id: str | None = None,
    ) -> Doc:
        """An assigned contact goes back to waiting: a blind transfer to a queue, a skill or
        one agent, or (`head`) the agent's connection dropped and the customer must be next.
        The agent's slot is freed; the contact keeps its first `queued_at`."""
        contact = await get_contact(self.ctx, contact_id, tenant_id)
        if contact is None or contact["status"] != "assigned" or contact.get("agent_id") != agent_id:
            raise RoutingError("this contact is not assigned to that agent")
        queues = await self.queues(tenant_id)
        if queue_id is not None and queue_id not in queues:
            raise RoutingError("no such queue")
        now = utcnow()
        changes: Doc = {
            "status": "queued",
            "agent_id": None,
            "agent_name": None,
            "offer": None,
            "direct_agent_id": to_agent_id,
            "preferred_agent_id": None,
            "requeued_at": now,
            "requeue_reason": reason,
            "queued_at": contact.get("queued_at") or now,
        }
        if skill or queue_id:
            queue = self.pick_queue(tenant_id, queues, skill or "", queue_id)
            changes.update(queue_id=queue.id, queue_name=queue.name, skill=skill or contact.get("skill"))
            changes["queue_path"] = [*(contact.get("queue_path") or []), queue.id]
        if head:  # ahead of everyone waiting in that queue: top priority, earliest time
            first = await self.ctx.db.contacts.find_one(
                {
                    "tenant_id": tenant_id,
                    "queue_id": changes.get("queue_id", contact.get("queue_id")),
                    "status": {"$in": ["queued", "offered"]},
                },
                sort=QUEUE_ORDER,
            )
            if first is not None:
                changes["priority"] = max(contact.get("priority") or 0, first.get("priority") or 0)
                changes["queued_at"] = min(
                    changes["queued_at"], first["queued_at"] - timedelta(milliseconds=1)
                )
        moved = await update_contact(
            self.ctx,
            contact_id,
            changes,
            expect={"status": "assigned", "agent_id": agent_id},
            extra_update={"$push": {"transfers": {"from": agent_id, "reason": reason, "at": now}}},
        )
        if moved is None:
            raise RoutingError("this contact changed meanwhile; try again")
        await release(self.ctx, agent_id, contact["channel"])
        await append_message(self.ctx, moved, "system", "The conversation was transferred.")
        await self.assign_waiting(tenant_id)
        return await get_contact(self.ctx, contact_id) or moved

    async def hand_over(self, contact_id: str, from_agent: str, to_agent: str, tenant_id: str) -> Doc:
        """A consulted transfer completes: the contact is the second agent's now. The caller
        reserved `to_agent`'s slot when that agent joined; `from_agent`'s slot is freed."""
        target = await self.ctx.db.agents.find_one({"_id": to_agent, "tenant_id": tenant_id})
        if target is None:
            raise RoutingError("no such agent")
        user = await self.ctx.db.users.find_one({"_id": to_agent}, {"name": 1}) or {}
        now = utcnow()
        moved = await update_contact(
            self.ctx,
            contact_id,
            {"agent_id": to_agent, "agent_name": user.get("name") or to_agent, "assigned_at": now},
            expect={"status": "assigned", "agent_id": from_agent, "tenant_id": tenant_id},
            extra_update={
                "$push": {"transfers": {"from": from_agent, "to": to_agent, "reason": "consult", "at": now}}
            },
        )
        if moved is None:
            raise RoutingError("this contact is not assigned to you")
        await release(self.ctx, from_agent, moved["channel"])
        await append_message(self.ctx, moved, "system", f"{moved['agent_name']} took over the conversation.")
        await self.assign_waiting(tenant_id)
        return moved

    async def move(
        self,
        contact_id: str,
        tenant_id: str,
        *,
        skill: str | None = None,
        queue_id: str | None = None,
        agent_id: str | None = None,
    ) -> Doc:
        """A supervisor moves a waiting contact to another queue or skill group, or routes it
        to one agent only (direct routing); it keeps its place in time."""
        contact = await get_contact(self.ctx, contact_id, tenant_id)
        if contact is None or contact["status"] not in ("queued", "offered"):
            raise RoutingError("this contact is not waiting")
        queues = await self.queues(tenant_id)
        if queue_id is not None and queue_id not in queues:
            raise RoutingError("no such queue")
        if contact["status"] == "offered":
            await self._withdraw(contact_id, offered_agents(contact), tenant_id)
        changes: Doc = {"direct_agent_id": agent_id, "preferred_agent_id": None}
        if skill or queue_id:
            queue = self.pick_queue(tenant_id, queues, skill or "", queue_id)
            changes.update(queue_id=queue.id, queue_name=queue.name, skill=skill or contact.get("skill"))
            changes["queue_path"] = [*(contact.get("queue_path") or []), queue.id]
        moved = await update_contact(self.ctx, contact_id, changes, expect={"status": "queued"})
        if moved is None:
            raise RoutingError("this contact changed meanwhile; try again")
        await self.try_assign(moved)
        return await get_contact(self.ctx, contact_id) or moved

    async def set_presence(self, agent_id: str, state: str, reason: str | None = None) -> Doc | None:
        """An agent's own presence change; leaving `available` takes back their pending offers."""
        if state not in AGENT_STATES:
            raise ValueError(f"presence must be one of {', '.join(AGENT_STATES)}")
        current = await self.ctx.db.agents.find_one({"_id": agent_id})
        if current is None:
            return None
        if state == "not_ready":
            allowed = (await tenant_routing(self.ctx, current["tenant_id"])).not_ready_reasons
            reason = reason or "away"
            if reason not in allowed:
                raise ValueError(f"not-ready reason must be one of {', '.join(allowed)}")
        agent = await set_state(self.ctx, agent_id, state, reason=reason)
        if agent is None:
            return None
        if state == "available":
            await self.assign_waiting(agent["tenant_id"])
        else:
            async for contact in self.ctx.db.contacts.find(
                {"status": "offered", "offer.agent_ids": agent_id}
            ):
                await self._withdraw(contact["_id"], [agent_id])
        return await self.ctx.db.agents.find_one({"_id": agent_id})

    # -- time-driven --------------------------------------------------------------------------
    async def expire_offers(self) -> int:
        """Ring-no-answer: the offer moves on; an agent who missed a personal offer is set
        not-ready (reason missed_offer), so callers are not offered to an empty desk."""
        expired = 0
        async for contact in self.ctx.db.contacts.find(
            {"status": "offered", "offer.expires_at": {"$lt": utcnow()}}
        ):
            ringing = offered_agents(contact)
            if await self._withdraw(contact["_id"], ringing):
                expired += 1
                if not (contact.get("offer") or {}).get("ring_all"):
                    for agent_id in ringing:
                        await set_state(
                            self.ctx, agent_id, "not_ready", reason="missed_offer", only_from=("available",)
                        )
        return expired

    async def sweep(self) -> None:
        await self.expire_offers()
        await end_wrapups(self.ctx)
        now = asyncio.get_running_loop().time()
        if now - self._last_repair >= self.ctx.settings.slot_repair_s:
            self._last_repair = now
            if await repair_slots(self.ctx, self.ctx.settings.slot_repair_s):
                log.warning("repaired agent slot counters left by an interrupted assignment")
        await self.assign_waiting(escalate=True)

    async def run(self, interval_s: float = 1.0) -> None:
        """Background loop; errors (e.g. a database restart) are logged and retried."""
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("routing sweep failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval_s)
            self._wake.clear()

    # -- views --------------------------------------------------------------------------------
    async def offer_view(self, contact: Doc) -> dict[str, Any]:
        """What the agent sees in an offer: who, why, and the last thing the customer said."""
        customer_name = customer_tier = None
        previous_contacts = 0
        if contact.get("customer_id"):
            customer = await self.ctx.db.customers.find_one(
                {"_id": contact["customer_id"]}, {"name": 1, "tier": 1, "segment": 1}
            )
            customer_name = (customer or {}).get("name")
            customer_tier = (customer or {}).get("tier") or (customer or {}).get("segment")
            previous_contacts = await self.ctx.db.contacts.count_documents(
                {
                    "tenant_id": contact["tenant_id"],
                    "customer_id": contact["customer_id"],
                    "_id": {"$ne": contact["_id"]},
                }
            )
        preview = ""
        for message in reversed(await messages_after(self.ctx, contact["_id"])):
            if message["author"] == "visitor":
                preview = message["text"][:200]
                break
        offer = contact.get("offer") or {}
        return {
            "contact_id": contact["_id"],
            "channel": contact["channel"],
            "skill": contact.get("skill"),
            "queue": contact.get("queue_name"),
            "reason": contact.get("reason"),
            "intent": contact.get("intent"),
            "last_intent": contact.get("last_intent"),
            "customer_name": customer_name,
            "customer_tier": customer_tier,
            "previous_contacts": previous_contacts,
            "preview": preview,
            "ring_all": bool(offer.get("ring_all")),
            "expires_at": iso(offer.get("expires_at")),
        }
