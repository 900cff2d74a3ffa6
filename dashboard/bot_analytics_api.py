"""`GET /api/reports/bot`: the bot's containment, handoff reasons, intents, fallback rate and CSAT
(reports/bot_analytics.py) for the caller's tenant; supervisors and admins."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from reports import bot_analytics
from reports.workforce import tenant_zone, today

router = APIRouter(prefix="/api/reports")
SUPERVISOR = require_roles("supervisor", "admin")
DEFAULT_DAYS = 7
MAX_DAYS = 366


@router.get("/bot")
async def bot_report(
    from_: date | None = Query(None, alias="from", description="first day, YYYY-MM-DD (tenant time)"),
    to: date | None = Query(None, description="last day, YYYY-MM-DD; today by default"),
    idle_min: float = Query(bot_analytics.DEFAULT_IDLE_MIN, gt=0, le=10_080),
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    tenant = await ctx.db.tenants.find_one({"_id": principal.tenant_id}, {"timezone": 1})
    last = to or today(tenant_zone(tenant))
    first = from_ or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise HTTPException(422, "`from` is after `to`")
    if (last - first).days >= MAX_DAYS:
        raise HTTPException(422, f"at most {MAX_DAYS} days at a time")
    return await bot_analytics.bot_analytics(ctx, principal.tenant_id, first, last, idle_min)
