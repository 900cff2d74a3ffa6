"""Admin API for routing configuration: queues, the tenant's routing settings, and each
agent's skill levels, languages and capacities.

Queues are stored as `routing.model.Queue` documents and settings as
`routing.model.TenantRouting` under `tenants.routing`; the live router reads both on
every pass, so changes apply at once. Skill levels, languages and capacity overrides are
kept on the user (`skill_levels` with `skills`, the names, in step) and copied into the
agent's routing document.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException
from pydantic import BaseModel, Field, ValidationError

from hub.auth import Principal, require_permission
from hub.context import AppContext, get_ctx
from hub.ids import new_id
from routing.model import Queue, TenantRouting
from routing.presence import ensure_agent, sync_capacity, tenant_routing

router = APIRouter(prefix="/api")
# supervisors and admins hold agents.manage by default; so does the technician role
SUPERVISOR = require_permission("agents.manage")


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def _queue(body: dict[str, Any], tenant_id: str, queue_id: str) -> Queue:
    try:
        return Queue.model_validate({**body, "id": queue_id, "tenant_id": tenant_id})
    except ValidationError as exc:
        raise HTTPException(422, _problems(exc)) from exc


async def _check_targets(ctx: AppContext, queue: Queue) -> None:
    """Overflow and caller-area targets must be queues of the same tenant."""
    targets = {s.queue_id for s in queue.escalation if s.queue_id} | {r.queue_id for r in queue.area_rules}
    if queue.overflow_queue_id:
        targets.add(queue.overflow_queue_id)
    targets.discard(queue.id)
    for target in sorted(targets):
        if not await ctx.db.queues.find_one({"_id": target, "tenant_id": queue.tenant_id}, {"_id": 1}):
            raise HTTPException(422, f"no queue {target!r} in this tenant to send contacts to")


def public_queue(doc: dict[str, Any]) -> dict[str, Any]:
    return Queue.from_doc(doc).model_dump(mode="json")


@router.get("/queues")
async def list_queues(
    principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    cursor = ctx.db.queues.find({"tenant_id": principal.tenant_id}).sort("name", 1)
    return [public_queue(doc) async for doc in cursor.limit(500)]


@router.post("/queues", status_code=201)
async def create_queue(
    body: dict[str, Any] = Body(...), principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    queue = _queue(body, principal.tenant_id, new_id())
    await _check_targets(ctx, queue)
    await ctx.db.queues.insert_one(queue.to_doc())
    return queue.model_dump(mode="json")


@router.put("/queues/{queue_id}")
async def replace_queue(
    queue_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    queue = _queue(body, principal.tenant_id, queue_id)
    await _check_targets(ctx, queue)
    result = await ctx.db.queues.replace_one(
        {"_id": queue_id, "tenant_id": principal.tenant_id}, queue.to_doc()
    )
    if result.matched_count == 0:
        raise HTTPException(404, "no such queue")
    return queue.model_dump(mode="json")


@router.delete("/queues/{queue_id}", status_code=204)
async def delete_queue(
    queue_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> None:
    result = await ctx.db.queues.delete_one({"_id": queue_id, "tenant_id": principal.tenant_id})
    if result.deleted_count == 0:
        raise HTTPException(404, "no such queue")


class SkillLevels(BaseModel):
    skills: dict[str, int] = Field(description="skill name -> level 1..10")


@router.get("/agents")
async def list_agents(
    principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    out = []
    async for user in ctx.db.users.find({"tenant_id": principal.tenant_id, "roles": "agent"}).sort("name", 1):
        presence = await ctx.db.agents.find_one({"_id": user["_id"]}) or {}
        levels = user.get("skill_levels") or {name: 5 for name in user.get("skills", [])}
        out.append(
            {
                "id": user["_id"],
                "name": user["name"],
                "email": user["email"],
                "skills": levels,
                "state": presence.get("state", "offline"),
                "reason": presence.get("not_ready_reason"),
                "free": presence.get("free") or {},
                "capacity": presence.get("capacity") or {},
                "own_capacity": user.get("capacity"),
                "languages": user.get("languages", []),
            }
        )
    return out


@router.put("/agents/{user_id}/skills")
async def set_skills(
    user_id: str, body: SkillLevels, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    bad = {name: level for name, level in body.skills.items() if not 1 <= level <= 10 or not name.strip()}
    if bad:
        raise HTTPException(422, f"skill levels must be 1-10 with a name: {bad}")
    user = await ctx.db.users.find_one_and_update(
        {"_id": user_id, "tenant_id": principal.tenant_id},
        {"$set": {"skill_levels": body.skills, "skills": sorted(body.skills)}},
        return_document=True,
    )
    if user is None:
        raise HTTPException(404, "no such agent")
    await ensure_agent(ctx, user)  # the live router reads skills from the agent document
    await ctx.require_router().assign_waiting(principal.tenant_id)
    return {"id": user_id, "skills": body.skills}


@router.get("/routing/settings")
async def get_routing_settings(
    principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    return (await tenant_routing(ctx, principal.tenant_id)).model_dump(mode="json")


@router.put("/routing/settings")
async def put_routing_settings(
    body: dict[str, Any] = Body(...), principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Replace the tenant's routing settings; agents' capacities follow at once."""
    try:
        settings = TenantRouting.model_validate(body)
    except ValidationError as exc:
        raise HTTPException(422, _problems(exc)) from exc
    await ctx.db.tenants.update_one(
        {"_id": principal.tenant_id}, {"$set": {"routing": settings.model_dump(mode="python")}}
    )
    await sync_capacity(ctx, principal.tenant_id)
    await ctx.require_router().assign_waiting(principal.tenant_id)
    return settings.model_dump(mode="json")


class AgentRouting(BaseModel):
    """An agent's own capacities per channel (None: the tenant's) and languages."""

    capacity: dict[str, int] | None = None
    languages: list[str] = Field(default_factory=list, max_length=20)


@router.put("/agents/{user_id}/routing")
async def set_agent_routing(
    user_id: str, body: AgentRouting, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    if body.capacity and any(not 0 <= n <= 50 for n in body.capacity.values()):
        raise HTTPException(422, "capacity per channel must be 0..50")
    languages = sorted({lang.strip().lower() for lang in body.languages if lang.strip()})
    user = await ctx.db.users.find_one_and_update(
        {"_id": user_id, "tenant_id": principal.tenant_id, "roles": "agent"},
        {"$set": {"capacity": body.capacity, "languages": languages}},
        return_document=True,
    )
    if user is None:
        raise HTTPException(404, "no such agent")
    agent = await ensure_agent(ctx, user)
    await ctx.require_router().assign_waiting(principal.tenant_id)
    return {"id": user_id, "capacity": agent["capacity"], "languages": agent["languages"]}
