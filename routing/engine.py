"""MongoDB-backed assignment on top of the pure decision core (`routing.strategies`).

Not used by the hub yet (it still runs `routing.assignment`). Two collections:

- `router_agents`: `AgentProfile` documents plus `free: {channel: capacity - load}`,
  kept alongside `load`, so a slot is taken with one conditional update (no `$expr`);
- `router_contacts`: `WaitingContact` documents plus `status` (waiting, offered,
  assigned) and, once offered, `agent_id` and `offered_at`.

`RoutingEngine.assign_next` picks the head of a queue (priority, then first come first
served), asks MongoDB for a bounded set of candidate agents that already pass the hard
filters (tenant, available, a free slot on the channel, skill levels, language), lets
`choose_agent` decide, then claims in two conditional steps:

1. the agent's slot: `{_id, state: available, free.<ch> > 0}` -> `free -1, load +1`;
2. the contact: `{_id, status: waiting}` -> `offered`; if that fails (another engine
   took it), the slot is given back.

So a contact is offered at most once and `free` never goes below zero, also with
several engines (hub processes) on one database. A crash between steps 1 and 2 leaves
one slot taken with no contact; a reconciler can recompute `free` from the contacts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING

from hub.db import Database, Doc
from routing.model import MIN_LEVEL, AgentProfile, Queue, WaitingContact
from routing.strategies import choose_agent, effective_requirements, order_waiting, sticky_active

ContactStatus = Literal["waiting", "offered", "assigned"]
Clock = Callable[[], datetime]

AGENTS = "router_agents"
CONTACTS = "router_contacts"
_CONTACT_EXTRA = ("status", "agent_id", "offered_at", "assigned_at")

INDEXES: list[tuple[str, list[tuple[str, int]]]] = [
    (
        CONTACTS,
        [
            ("tenant_id", ASCENDING),
            ("queue_id", ASCENDING),
            ("status", ASCENDING),
            ("priority", DESCENDING),
            ("enqueued_at", ASCENDING),
        ],
    ),
    (AGENTS, [("tenant_id", ASCENDING), ("state", ASCENDING), ("idle_since", ASCENDING)]),
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def agent_doc(agent: AgentProfile) -> Doc:
    """The stored agent: the profile plus its `free` slots per channel."""
    doc = agent.to_doc()
    doc["free"] = {ch: agent.free(ch) for ch in agent.capacity}
    return doc


def agent_from_doc(doc: Mapping[str, Any]) -> AgentProfile:
    return AgentProfile.from_doc({k: v for k, v in doc.items() if k != "free"})


def contact_doc(contact: WaitingContact, status: ContactStatus = "waiting") -> Doc:
    doc = contact.to_doc()
    doc["status"] = status
    return doc


def contact_from_doc(doc: Mapping[str, Any]) -> WaitingContact:
    return WaitingContact.from_doc({k: v for k, v in doc.items() if k not in _CONTACT_EXTRA})


class RoutingEngine:
    """Assigns waiting contacts to agents through MongoDB; one per process is enough.

    `head_window`: waiting contacts read per page from the head of a queue;
    `max_scan`: how deep into the queue one call looks for a contact someone can take
    (a head nobody can serve doesn't block the contacts behind it, up to this depth);
    `candidates`: agents read per decision (longest idle first) for `choose_agent`.
    Round-robin state is kept per engine (per process).
    """

    def __init__(
        self,
        db: Database,
        clock: Clock = utcnow,
        *,
        head_window: int = 20,
        max_scan: int = 200,
        candidates: int = 50,
    ) -> None:
        self.agents = db.db[AGENTS]
        self.contacts = db.db[CONTACTS]
        self.clock = clock
        self.head_window = head_window
        self.max_scan = max_scan
        self.candidates = candidates
        self.rr_state: dict[str, str] = {}

    async def ensure_indexes(self) -> None:
        for collection, keys in INDEXES:
            await self.agents.database[collection].create_index(keys)

    # -- data in -----------------------------------------------------------------------------

    async def put_agent(self, agent: AgentProfile) -> None:
        await self.agents.replace_one({"_id": agent.id}, agent_doc(agent), upsert=True)

    async def enqueue(self, contact: WaitingContact) -> None:
        await self.contacts.insert_one(contact_doc(contact))

    # -- the decision ------------------------------------------------------------------------

    async def assign_next(self, tenant_id: str, queue: Queue) -> tuple[str, str] | None:
        """Offer the first contact of `queue` that an agent can take; (contact, agent) or None."""
        now = self.clock()
        hopeless: set[str] = set()  # agent filters that found nobody in this call
        # equality only, so the index serves it; not-yet-due contacts are dropped by order_waiting
        query = {"tenant_id": tenant_id, "queue_id": queue.id, "status": "waiting"}
        for skip in range(0, self.max_scan, self.head_window):
            cursor = (
                self.contacts.find(query)
                .sort([("priority", DESCENDING), ("enqueued_at", ASCENDING)])
                .skip(skip)
                .limit(self.head_window)
            )
            page = [contact_from_doc(doc) async for doc in cursor]
            for contact in order_waiting(page, now):
                flt = self._agent_filter(contact, queue, now)
                key = json.dumps(flt, sort_keys=True, default=str)
                if key in hopeless:
                    continue
                result = await self._try_contact(flt, contact, queue, now)
                if isinstance(result, tuple):
                    return result
                if result == "nobody":
                    hopeless.add(key)
            if len(page) < self.head_window:
                break
        return None

    def _agent_filter(self, contact: WaitingContact, queue: Queue, now: datetime) -> Doc:
        """The hard conditions of `eligible`, as a MongoDB query (wrap-ups must have ended: a
        presence sweeper sets them back to available)."""
        reqs = effective_requirements(queue, contact, contact.waited_s(now))
        flt: Doc = {
            "tenant_id": contact.tenant_id,
            "state": "available",
            f"free.{contact.channel}": {"$gt": 0},
        }
        ids: Doc = {}
        if contact.excluded_agents:
            ids["$nin"] = sorted(contact.excluded_agents)
        if contact.direct_agent_id is not None:
            ids["$eq"] = contact.direct_agent_id
        elif sticky_active(contact, now):
            ids["$eq"] = contact.preferred_agent_id
        if ids:
            flt["_id"] = ids
        if contact.language:
            flt["languages"] = contact.language
        levels = {} if contact.direct_agent_id is not None else dict(reqs.skills)
        if contact.direct_group is not None:
            levels[contact.direct_group] = max(MIN_LEVEL, levels.get(contact.direct_group, 0))
        for skill, level in sorted(levels.items()):
            flt[f"skills.{skill}"] = {"$gte": level}
        return flt

    async def _try_contact(
        self, flt: Doc, contact: WaitingContact, queue: Queue, now: datetime
    ) -> tuple[str, str] | Literal["nobody", "taken"]:
        """Choose and claim an agent for `contact`: (contact, agent), or why not."""
        cursor = self.agents.find(flt).sort([("idle_since", ASCENDING), ("_id", ASCENDING)])
        pool = [agent_from_doc(doc) async for doc in cursor.limit(self.candidates)]
        while pool:
            choice = choose_agent(queue.strategy, pool, contact, queue, now, self.rr_state)
            if not choice.agents:
                return "nobody"
            for agent in choice.agents:  # ring-all: the longest idle one that is still free
                if not await self._reserve(agent.id, contact.channel, now):
                    pool = [a for a in pool if a.id != agent.id]  # another engine was faster
                    continue
                if await self._offer(contact.id, agent.id, now):
                    self.rr_state = dict(choice.rr_state)
                    return contact.id, agent.id
                await self.release(agent.id, contact.channel)
                return "taken"  # another engine offered the contact meanwhile
        return "nobody"

    # -- the two conditional writes ----------------------------------------------------------

    async def _reserve(self, agent_id: str, channel: str, now: datetime) -> bool:
        """Take one slot on `channel`; restarts the agent's idle clock (longest idle rotates)."""
        doc = await self.agents.find_one_and_update(
            {"_id": agent_id, "state": "available", f"free.{channel}": {"$gt": 0}},
            {
                "$inc": {f"free.{channel}": -1, f"load.{channel}": 1},
                "$set": {"last_assigned_at": now, "idle_since": now},
            },
            projection={"_id": 1},
        )
        return doc is not None

    async def _offer(self, contact_id: str, agent_id: str, now: datetime) -> bool:
        result = await self.contacts.update_one(
            {"_id": contact_id, "status": "waiting"},
            {"$set": {"status": "offered", "agent_id": agent_id, "offered_at": now}},
        )
        return result.modified_count == 1

    # -- after the offer ---------------------------------------------------------------------

    async def accept(self, contact_id: str, agent_id: str) -> bool:
        """The agent took the offer: offered -> assigned (only by the agent it was offered to)."""
        result = await self.contacts.update_one(
            {"_id": contact_id, "status": "offered", "agent_id": agent_id},
            {"$set": {"status": "assigned", "assigned_at": self.clock()}},
        )
        return result.modified_count == 1

    async def release(self, agent_id: str, channel: str) -> bool:
        """Give one slot on `channel` back (the contact ended, or its offer did not go through)."""
        result = await self.agents.update_one(
            {"_id": agent_id, f"load.{channel}": {"$gt": 0}},
            {"$inc": {f"free.{channel}": 1, f"load.{channel}": -1}},
        )
        return result.modified_count == 1

    async def get_agent(self, agent_id: str) -> AgentProfile | None:
        doc = await self.agents.find_one({"_id": agent_id})
        return agent_from_doc(doc) if doc else None

    async def find_contact(self, contact_id: str) -> Doc | None:
        return await self.contacts.find_one({"_id": contact_id})
