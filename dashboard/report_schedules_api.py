"""Scheduled reports over HTTP: list, create, delete and "send now" (reports/schedule.py).

Supervisors and admins of the tenant only; another tenant's schedule is a 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.ids import utcnow
from reports import schedule

router = APIRouter(prefix="/api/reports/schedules")
SUPERVISOR = require_roles("supervisor", "admin")
MAX_PER_TENANT = 200


@router.get("")
async def list_schedules(
    principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    found = ctx.db.report_schedules.find({"tenant_id": principal.tenant_id}).sort("created_at", 1)
    return [schedule.public(doc) async for doc in found]


@router.post("", status_code=201)
async def create_schedule(
    body: Any = Body(...), principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    if await ctx.db.report_schedules.count_documents({"tenant_id": principal.tenant_id}) >= MAX_PER_TENANT:
        raise HTTPException(422, f"at most {MAX_PER_TENANT} schedules per tenant")
    try:
        doc = await schedule.create(ctx, principal.tenant_id, principal.user_id, body)
    except schedule.ScheduleError as exc:
        raise HTTPException(422, str(exc)) from exc
    return schedule.public(doc)


@router.delete("/{schedule_id}")
async def delete_schedule(
    schedule_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, bool]:
    result = await ctx.db.report_schedules.delete_one({"_id": schedule_id, "tenant_id": principal.tenant_id})
    if result.deleted_count == 0:
        raise HTTPException(404, "no such schedule")
    return {"deleted": True}


@router.post("/{schedule_id}/send")
async def send_now(
    schedule_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Run the schedule now (its last period, as if due now); the regular runs go on after."""
    now = utcnow()
    result = await ctx.db.report_schedules.update_one(
        {"_id": schedule_id, "tenant_id": principal.tenant_id}, {"$set": {"next_at": now}}
    )
    if result.matched_count == 0:
        raise HTTPException(404, "no such schedule")
    schedule.wake(ctx)
    doc = await ctx.db.report_schedules.find_one({"_id": schedule_id})
    return schedule.public(doc or {"_id": schedule_id, "report": "", "every": "", "at": "", "format": ""})
