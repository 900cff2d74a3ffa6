"""Agent presence and capacity.

An agent document holds `free_slots`; taking a slot is one atomic
find_one_and_update with `free_slots > 0` in its filter, so no agent is ever
offered more contacts than their capacity, whatever runs concurrently.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument

from hub.context import AppContext
from hub.db import Doc
from hub.ids import utcnow

PRESENCE = ("available", "away", "offline")


async def ensure_agent(ctx: AppContext, user: Doc) -> Doc:
    """The routing view of a user with the agent role (created on first use)."""
    capacity = ctx.settings.chat_capacity
    await ctx.db.agents.update_one(
        {"_id": user["_id"]},
        {
            "$set": {"name": user["name"], "skills": user.get("skills", []), "tenant_id": user["tenant_id"]},
            "$setOnInsert": {
                "slots_changed_at": utcnow(),
                "status": "away",
                "capacity": capacity,
                "free_slots": capacity,
                "idle_since": utcnow(),
            },
        },
        upsert=True,
    )
    agent = await ctx.db.agents.find_one({"_id": user["_id"]})
    assert agent is not None
    return agent


async def set_status(ctx: AppContext, agent_id: str, status: str) -> Doc | None:
    if status not in PRESENCE:
        raise ValueError(f"presence must be one of {', '.join(PRESENCE)}")
    changes: Doc = {"status": status}
    if status == "available":
        changes["idle_since"] = utcnow()
    agent = await ctx.db.agents.find_one_and_update(
        {"_id": agent_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
    )
    if agent is not None:
        publish_presence(ctx, agent)
    return agent


async def reserve_slot(ctx: AppContext, tenant_id: str, skill: str, exclude: list[str]) -> Doc | None:
    """Take one slot of the longest-idle available agent with the skill, or None."""
    agent = await ctx.db.agents.find_one_and_update(
        {
            "tenant_id": tenant_id,
            "status": "available",
            "skills": skill,
            "free_slots": {"$gt": 0},
            "_id": {"$nin": exclude},
        },
        {"$inc": {"free_slots": -1}, "$set": {"slots_changed_at": utcnow()}},
        sort=[("idle_since", 1)],
        return_document=ReturnDocument.AFTER,
    )
    if agent is not None:
        publish_presence(ctx, agent)
    return agent


async def release_slot(ctx: AppContext, agent_id: str) -> None:
    """Give a slot back (capped at capacity) and restart the agent's idle clock."""
    agent = await ctx.db.agents.find_one_and_update(
        {"_id": agent_id},
        {"$inc": {"free_slots": 1}, "$set": {"idle_since": utcnow(), "slots_changed_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )
    if agent is not None and agent["free_slots"] > agent["capacity"]:
        await ctx.db.agents.update_one({"_id": agent_id}, {"$set": {"free_slots": agent["capacity"]}})
        agent["free_slots"] = agent["capacity"]
    if agent is not None:
        publish_presence(ctx, agent)


def publish_presence(ctx: AppContext, agent: Doc) -> None:
    event = {"type": "presence", **public_presence(agent)}
    ctx.bus.publish(f"user:{agent['_id']}", event)
    ctx.bus.publish(f"tenant:{agent['tenant_id']}", event)


def public_presence(agent: Doc) -> dict[str, Any]:
    return {"status": agent["status"], "free_slots": agent["free_slots"], "capacity": agent["capacity"]}


# A reservation is written within milliseconds; a counter untouched this long while it
# disagrees with the contacts was left behind by a process killed mid-assignment.
SLOT_REPAIR_AFTER_S = 30.0


async def repair_slots(ctx: AppContext, older_than_s: float = SLOT_REPAIR_AFTER_S) -> int:
    """Make free_slots agree with the contacts an agent holds, where it has drifted.

    Only agents whose counter has not changed for a while are touched, and the write is
    conditional on the counter being unchanged, so a reservation in flight is never undone.
    """
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    repaired = 0
    async for agent in ctx.db.agents.find({"slots_changed_at": {"$lt": cutoff}}):
        held = await ctx.db.contacts.count_documents(
            {
                "$or": [
                    {"status": "offered", "offer.agent_id": agent["_id"]},
                    {"status": "assigned", "agent_id": agent["_id"]},
                ]
            }
        )
        should_be = max(0, agent["capacity"] - held)
        if agent["free_slots"] == should_be:
            continue
        fixed = await ctx.db.agents.update_one(
            {
                "_id": agent["_id"],
                "free_slots": agent["free_slots"],
                "slots_changed_at": agent["slots_changed_at"],
            },
            {"$set": {"free_slots": should_be, "slots_changed_at": utcnow()}},
        )
        repaired += fixed.modified_count
    return repaired


async def take_slot(ctx: AppContext, tenant_id: str, agent_id: str) -> Doc | None:
    """Take one slot of a specific agent (pickups and supervisor assignments), if free."""
    agent = await ctx.db.agents.find_one_and_update(
        {"_id": agent_id, "tenant_id": tenant_id, "free_slots": {"$gt": 0}},
        {"$inc": {"free_slots": -1}, "$set": {"slots_changed_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
    )
    if agent is not None:
        publish_presence(ctx, agent)
    return agent
