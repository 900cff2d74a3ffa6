"""Agent presence and capacity per channel.

An agent document (collection `agents`) is the router's view of a user with the agent
role: skills with levels, languages, `capacity` / `load` / `free` per channel kind
(voice, chat, email, sms), and a presence `state` (available, busy, wrapup with an end,
not_ready with a reason, offline). `free` is kept beside `load` so that taking a slot
is one conditional update (`free.<channel> > 0` in the filter, no `$expr`, which the
embedded database lacks): no agent is ever above capacity, whatever runs concurrently.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hub.context import AppContext
from hub.db import Doc, update_then_read
from hub.ids import iso, utcnow
from routing.agent_states import record_spell
from routing.model import PRESENCE_STATES, TenantRouting, capacity_channel

DEFAULT_SKILL_LEVEL = 5


async def tenant_routing(ctx: AppContext, tenant_id: str) -> TenantRouting:
    """The tenant's routing settings; chat capacity defaults to HUB_CHAT_CAPACITY."""
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"routing": 1, "allow_pickup": 1})
    settings = TenantRouting.of(tenant)
    if "capacity" not in ((tenant or {}).get("routing") or {}):
        settings.capacity["chat"] = ctx.settings.chat_capacity
    return settings


def skill_levels(user: Doc) -> dict[str, int]:
    """A user's skill levels; skills given by name only count as the middle level."""
    levels = user.get("skill_levels")
    if levels:
        return dict(levels)
    return {name: DEFAULT_SKILL_LEVEL for name in user.get("skills", [])}


async def ensure_agent(ctx: AppContext, user: Doc) -> Doc:
    """The routing view of a user with the agent role: created on first use, skills and
    capacity brought in step with the user and the tenant's settings on every call."""
    settings = await tenant_routing(ctx, user["tenant_id"])
    now = utcnow()
    await ctx.db.agents.update_one(
        {"_id": user["_id"]},
        {
            "$set": {
                "name": user["name"],
                "tenant_id": user["tenant_id"],
                "skills": skill_levels(user),
                "languages": user.get("languages", []),
            },
            "$setOnInsert": {
                "state": "not_ready",
                "not_ready_reason": "away",
                "wrapup_until": None,
                "idle_since": now,
                "last_assigned_at": None,
                "slots_changed_at": now,
                "capacity": {},
                "load": {},
                "free": {},
            },
        },
        upsert=True,
    )
    agent = await ctx.db.agents.find_one({"_id": user["_id"]})
    assert agent is not None
    capacity = agent_capacity(settings, user)
    if agent.get("capacity") != capacity or "state" not in agent:
        agent = await _set_capacity(ctx, agent, capacity)
    if "spell" not in agent:  # the first spell of a new agent (or one from before the history)
        await record_spell(ctx, agent)
    return agent


async def sync_capacity(ctx: AppContext, tenant_id: str) -> int:
    """Bring every agent of the tenant to its capacities (after a settings change)."""
    changed = 0
    async for user in ctx.db.users.find({"tenant_id": tenant_id, "roles": "agent"}):
        before = await ctx.db.agents.find_one({"_id": user["_id"]}, {"capacity": 1})
        after = await ensure_agent(ctx, user)
        changed += int((before or {}).get("capacity") != after.get("capacity"))
    return changed


def agent_capacity(settings: TenantRouting, user: Doc) -> dict[str, int]:
    """The tenant's capacities, with the agent's own where a supervisor set them."""
    return {**settings.capacity, **(user.get("capacity") or {})}


async def _set_capacity(ctx: AppContext, agent: Doc, capacity: dict[str, int]) -> Doc:
    """Apply new capacities, keeping what the agent holds (`free` may not go below 0)."""
    load = dict(agent.get("load") or {})
    changes: Doc = {
        "capacity": capacity,
        "load": load,
        "free": {ch: max(0, n - load.get(ch, 0)) for ch, n in capacity.items()},
        "slots_changed_at": utcnow(),
    }
    if "state" not in agent:  # a document from the first router (status / free_slots)
        changes["state"] = "available" if agent.get("status") == "available" else "not_ready"
        changes["not_ready_reason"] = None if changes["state"] == "available" else "away"
    updated = await update_then_read(
        ctx.db.agents, {"_id": agent["_id"]}, {"$set": changes, "$unset": {"status": "", "free_slots": ""}}
    )
    assert updated is not None
    return updated


async def set_state(
    ctx: AppContext,
    agent_id: str,
    state: str,
    *,
    reason: str | None = None,
    wrapup_s: float | None = None,
    only_from: tuple[str, ...] | None = None,
) -> Doc | None:
    """Change an agent's presence; `only_from` makes it conditional on the current state
    (the system's own changes, e.g. a wrap-up, never override an agent's choice)."""
    if state not in PRESENCE_STATES:
        raise ValueError(f"presence must be one of {', '.join(PRESENCE_STATES)}")
    now = utcnow()
    changes: Doc = {"state": state, "not_ready_reason": reason if state == "not_ready" else None}
    changes["wrapup_until"] = now + timedelta(seconds=wrapup_s or 0) if state == "wrapup" else None
    if state == "available":
        changes["idle_since"] = now
    query: Doc = {"_id": agent_id}
    if only_from is not None:
        query["state"] = {"$in": list(only_from)}
    agent = await update_then_read(ctx.db.agents, query, {"$set": changes})
    if agent is not None:
        await presence_changed(ctx, agent)
    return agent


async def end_wrapups(ctx: AppContext) -> list[Doc]:
    """Wrap-ups whose timer ran out become available again (conditional, so an agent who
    chose another state meanwhile keeps it)."""
    ended = []
    async for agent in ctx.db.agents.find({"state": "wrapup", "wrapup_until": {"$lte": utcnow()}}):
        done = await update_then_read(
            ctx.db.agents,
            {"_id": agent["_id"], "state": "wrapup", "wrapup_until": agent["wrapup_until"]},
            {"$set": {"state": "available", "wrapup_until": None, "idle_since": utcnow()}},
        )
        if done is not None:
            await presence_changed(ctx, done)
            ended.append(done)
    return ended


async def reserve(ctx: AppContext, agent_id: str, channel: str, *, any_state: bool = False) -> Doc | None:
    """Take one slot on the contact's channel kind: only from an available agent, unless
    `any_state` (a pickup or a supervisor's assignment: anyone signed in)."""
    kind = capacity_channel(channel)
    query: Doc = {"_id": agent_id, f"free.{kind}": {"$gt": 0}}
    query["state"] = {"$ne": "offline"} if any_state else "available"
    now = utcnow()
    agent = await update_then_read(
        ctx.db.agents,
        query,
        {
            "$inc": {f"free.{kind}": -1, f"load.{kind}": 1},
            "$set": {"slots_changed_at": now, "last_assigned_at": now, "idle_since": now},
        },
    )
    if agent is not None:
        await presence_changed(ctx, agent)
    return agent


async def release(ctx: AppContext, agent_id: str, channel: str) -> Doc | None:
    """Give one slot back; guarded by `load > 0`, so a double release cannot exceed capacity."""
    kind = capacity_channel(channel)
    now = utcnow()
    agent = await update_then_read(
        ctx.db.agents,
        {"_id": agent_id, f"load.{kind}": {"$gt": 0}},
        {
            "$inc": {f"free.{kind}": 1, f"load.{kind}": -1},
            "$set": {"idle_since": now, "slots_changed_at": now},
        },
    )
    if agent is not None:
        await presence_changed(ctx, agent)
    return agent


async def presence_changed(ctx: AppContext, agent: Doc) -> None:
    """After any write to an agent's state or slots: the state history, then the push."""
    await record_spell(ctx, agent)
    publish_presence(ctx, agent)


def publish_presence(ctx: AppContext, agent: Doc) -> None:
    event = {"type": "presence", "agent_id": agent["_id"], **public_presence(agent)}
    ctx.bus.publish(f"user:{agent['_id']}", event)
    ctx.bus.publish(f"tenant:{agent['tenant_id']}", event)


def public_presence(agent: Doc) -> dict[str, Any]:
    return {
        "state": agent.get("state", "offline"),
        "reason": agent.get("not_ready_reason"),
        "wrapup_until": iso(agent.get("wrapup_until")),
        "capacity": dict(agent.get("capacity") or {}),
        "load": dict(agent.get("load") or {}),
        "free": dict(agent.get("free") or {}),
    }


# A reservation is written within milliseconds; a counter untouched this long while it
# disagrees with the contacts was left behind by a process killed mid-assignment.
SLOT_REPAIR_AFTER_S = 30.0


async def held_contacts(ctx: AppContext, agent_id: str) -> dict[str, int]:
    """What an agent holds per channel kind: offers (ring-all included) and assignments."""
    held: dict[str, int] = {}
    async for contact in ctx.db.contacts.find(
        {
            "$or": [
                {"status": "offered", "offer.agent_ids": agent_id},
                {"status": "assigned", "agent_id": agent_id},
            ]
        },
        {"channel": 1},
    ):
        kind = capacity_channel(contact["channel"])
        held[kind] = held.get(kind, 0) + 1
    return held


async def repair_slots(ctx: AppContext, older_than_s: float = SLOT_REPAIR_AFTER_S) -> int:
    """Make load / free agree with the contacts an agent holds, where they drifted.

    Only agents whose counters have not changed for a while are touched, and the write
    is conditional on them being unchanged, so a reservation in flight is never undone.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    repaired = 0
    async for agent in ctx.db.agents.find({"slots_changed_at": {"$lt": cutoff}}):
        held = await held_contacts(ctx, agent["_id"])
        capacity = agent.get("capacity") or {}
        load = {ch: held.get(ch, 0) for ch in set(capacity) | set(held)}
        free = {ch: max(0, n - load.get(ch, 0)) for ch, n in capacity.items()}
        stored = agent.get("load") or {}
        if all(stored.get(ch, 0) == n for ch, n in load.items()) and free == agent.get("free"):
            continue
        fixed = await ctx.db.agents.update_one(  # every reserve / release moves slots_changed_at
            {"_id": agent["_id"], "slots_changed_at": agent["slots_changed_at"]},
            {"$set": {"load": load, "free": free, "slots_changed_at": utcnow()}},
        )
        repaired += fixed.modified_count
        if fixed.modified_count:  # the slots changed, so "busy" may have too
            repaired_doc = await ctx.db.agents.find_one({"_id": agent["_id"]})
            if repaired_doc is not None:
                await record_spell(ctx, repaired_doc)
    return repaired
