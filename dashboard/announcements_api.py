"""Broadcast announcements: a supervisor tells every agent, the agents of some queues, or
named agents something, now ("the billing system is down, don't promise refunds").

An announcement is stored with the ids of the users it targets (resolved when it is
sent) and pushed at once to each one's `user:<id>` topic, which the agent socket
forwards; an agent who connects later loads the active ones with `GET /api/announcements`.
Each reader marks it read; it stops showing when it expires.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field, model_validator

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from routing.model import Queue, aware
from routing.presence import skill_levels

router = APIRouter(prefix="/api")
SUPERVISOR = require_roles("supervisor", "admin")
READER = require_roles("agent", "supervisor", "admin", "editor")
MAX_TARGETS = 500
# "everyone" means the people on the floor: agents and their supervisors.
FLOOR_ROLES = ["agent", "supervisor"]


class Audience(BaseModel):
    """Exactly one of: everyone on the floor, the agents of some queues, named agents."""

    all: bool = False
    queue_ids: list[str] | None = Field(default=None, min_length=1, max_length=50)
    agent_ids: list[str] | None = Field(default=None, min_length=1, max_length=MAX_TARGETS)

    @model_validator(mode="after")
    def _exactly_one(self) -> Audience:
        chosen = [self.all, self.queue_ids is not None, self.agent_ids is not None]
        if sum(chosen) != 1:
            raise ValueError("audience needs exactly one of all: true, queue_ids or agent_ids")
        return self


class AnnouncementRequest(BaseModel):
    text: str = Field(min_length=1, max_length=500)
    level: Literal["info", "urgent"] = "info"
    audience: Audience
    expires_in_s: int = Field(default=3600, ge=1, le=7 * 24 * 3600)


def public_announcement(doc: Doc, user_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": doc["_id"],
        "text": doc["text"],
        "level": doc["level"],
        "from_name": doc.get("created_by_name"),
        "created_at": iso(doc.get("created_at")),
        "expires_at": iso(doc.get("expires_at")),
    }
    if user_id is not None:
        out["read"] = user_id in (doc.get("read_by") or [])
    return out


def _qualifies(user: Doc, queue: Queue) -> bool:
    """Whether the user has every skill the queue requires, at its level."""
    levels = skill_levels(user)
    return all(levels.get(skill, 0) >= level for skill, level in queue.skills.items())


async def _queue(ctx: AppContext, tenant_id: str, queue_id: str) -> Queue:
    """A configured queue, or a skill's implicit queue ("skill:<name>", as the router names it)."""
    if queue_id.startswith("skill:") and len(queue_id) > 6:
        return Queue(id=queue_id, tenant_id=tenant_id, name=queue_id[6:], skills={queue_id[6:]: 1})
    doc = await ctx.db.queues.find_one({"_id": queue_id, "tenant_id": tenant_id})
    if doc is None:
        raise HTTPException(422, f"no queue {queue_id!r} in this tenant")
    return Queue.from_doc(doc)


async def resolve_audience(ctx: AppContext, tenant_id: str, audience: Audience) -> list[str]:
    """The ids of the tenant's active users the announcement goes to."""
    if audience.agent_ids is not None:
        wanted = sorted(set(audience.agent_ids))
        found = {
            u["_id"]
            async for u in ctx.db.users.find(
                {"tenant_id": tenant_id, "_id": {"$in": wanted}, "active": True}, {"_id": 1}
            )
        }
        missing = [a for a in wanted if a not in found]
        if missing:
            raise HTTPException(422, f"no such agent in this tenant: {', '.join(missing[:5])}")
        return wanted
    if audience.all:
        query: Doc = {"tenant_id": tenant_id, "active": True, "roles": {"$in": FLOOR_ROLES}}
        return sorted({u["_id"] async for u in ctx.db.users.find(query, {"_id": 1})})
    queues = [await _queue(ctx, tenant_id, queue_id) for queue_id in audience.queue_ids or []]
    targets: set[str] = set()
    async for user in ctx.db.users.find(
        {"tenant_id": tenant_id, "active": True, "roles": "agent"}, {"skills": 1, "skill_levels": 1}
    ):
        if any(_qualifies(user, queue) for queue in queues):
            targets.add(user["_id"])
    return sorted(targets)


@router.post("/announcements", status_code=201)
async def announce(
    body: AnnouncementRequest, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    text = body.text.strip()
    if not text:
        raise HTTPException(422, "the announcement has no text")
    targets = await resolve_audience(ctx, principal.tenant_id, body.audience)
    if len(targets) > MAX_TARGETS:
        raise HTTPException(422, f"at most {MAX_TARGETS} recipients per announcement")
    now = utcnow()
    doc: Doc = {
        "_id": new_id(),
        "tenant_id": principal.tenant_id,
        "text": text,
        "level": body.level,
        "audience": body.audience.model_dump(exclude_none=True),
        "target_ids": targets,
        "read_by": [],
        "created_by": principal.user_id,
        "created_by_name": principal.name,
        "created_at": now,
        "expires_at": now + timedelta(seconds=body.expires_in_s),
    }
    await ctx.db.announcements.insert_one(doc)
    event = {"type": "announcement", "announcement": {**public_announcement(doc), "read": False}}
    for user_id in targets:
        ctx.bus.publish(f"user:{user_id}", event)
    return {**sent_view(doc), "recipients": len(targets)}


@router.get("/announcements")
async def my_announcements(
    principal: Principal = READER, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    """The caller's announcements that have not expired, newest first (read ones flagged)."""
    cursor = ctx.db.announcements.find(
        {"tenant_id": principal.tenant_id, "target_ids": principal.user_id, "expires_at": {"$gt": utcnow()}}
    ).sort("created_at", -1)
    return [public_announcement(doc, principal.user_id) async for doc in cursor.limit(100)]


@router.post("/announcements/{announcement_id}/read")
async def mark_read(
    announcement_id: str, principal: Principal = READER, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    result = await ctx.db.announcements.update_one(
        {"_id": announcement_id, "tenant_id": principal.tenant_id, "target_ids": principal.user_id},
        {"$addToSet": {"read_by": principal.user_id}},
    )
    if result.matched_count == 0:
        raise HTTPException(404, "no such announcement")
    # the user's other desks (tabs) drop it too
    ctx.bus.publish(f"user:{principal.user_id}", {"type": "announcement_read", "id": announcement_id})
    return {"id": announcement_id, "read": True}


def sent_view(doc: Doc) -> dict[str, Any]:
    return {
        **public_announcement(doc),
        "audience": doc.get("audience"),
        "recipients": len(doc.get("target_ids") or []),
        "read_count": len(doc.get("read_by") or []),
        "active": aware(doc["expires_at"]) > utcnow(),
    }


@router.get("/announcements/sent")
async def sent(principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)) -> list[dict[str, Any]]:
    """The tenant's announcements, newest first, with how many recipients read each."""
    cursor = ctx.db.announcements.find({"tenant_id": principal.tenant_id}).sort("created_at", -1)
    return [sent_view(doc) async for doc in cursor.limit(100)]
