"""Workforce planning over HTTP: the Erlang C calculator and a day's staffing (supervisors, admins).

`GET /api/reports/erlang` answers "how many agents for this load" with a table of what one
agent more or less would give; `GET /api/reports/staffing` puts each 15-minute interval's
required agents next to those logged in (reports/workforce.py). Both read only the caller's
tenant; a queue is a name within it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from reports import erlang, workforce

router = APIRouter(prefix="/api/reports")
SUPERVISOR = require_roles("supervisor", "admin")
TABLE_BELOW, TABLE_ABOVE = 3, 5  # rows around the answer in the calculator's table


@router.get("/erlang")
async def erlang_calculator(
    contacts: float = Query(..., ge=0, le=10_000_000, description="contacts offered in the interval"),
    aht_s: float = Query(..., gt=0, le=86_400, description="average handle time, seconds"),
    interval_min: float = Query(30, gt=0, le=1440),
    sl_target: float | None = Query(0.8, ge=0, lt=1, description="share answered within sl_seconds"),
    sl_seconds: float = Query(20, ge=0, le=3600),
    max_asa_s: float | None = Query(None, gt=0, le=86_400),
    max_occupancy: float | None = Query(None, gt=0, le=1),
    shrinkage: float = Query(0, ge=0, lt=1),
    agents: int | None = Query(None, ge=0, le=erlang.MAX_AGENTS, description="evaluate this staffing too"),
    principal: Principal = SUPERVISOR,
) -> dict[str, Any]:
    if sl_target is None and max_asa_s is None and max_occupancy is None:
        raise HTTPException(422, "give a service-level target, a maximum ASA or an occupancy cap")
    traffic = erlang.traffic_intensity(contacts, aht_s, interval_min * 60)
    try:
        need = erlang.agents_needed(
            traffic,
            aht_s,
            sl_target=sl_target,
            sl_seconds=sl_seconds,
            max_asa_s=max_asa_s,
            max_occupancy=max_occupancy,
            shrinkage=shrinkage,
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    low = max(int(traffic) + 1 if traffic > 0 else 0, need.agents - TABLE_BELOW, 0)
    table = [
        erlang.evaluate(n, traffic, aht_s, sl_seconds, shrinkage).to_dict()
        for n in range(low, need.agents + TABLE_ABOVE + 1)
        if n > 0 or traffic == 0
    ]
    return {
        "inputs": {
            "contacts": contacts,
            "aht_s": aht_s,
            "interval_min": interval_min,
            "sl_target": sl_target,
            "sl_seconds": sl_seconds,
            "max_asa_s": max_asa_s,
            "max_occupancy": max_occupancy,
            "shrinkage": shrinkage,
        },
        "traffic": round(traffic, 6),
        "required": need.to_dict(),
        "evaluated": None
        if agents is None
        else erlang.evaluate(agents, traffic, aht_s, sl_seconds, shrinkage).to_dict(),
        "table": table,
    }


@router.get("/staffing")
async def day_staffing(
    day: date | None = Query(None, description="YYYY-MM-DD in the tenant's time zone; today by default"),
    queue: str | None = Query(None, max_length=120),
    sl_target: float | None = Query(None, ge=0, lt=1),
    sl_seconds: float | None = Query(None, ge=0, le=3600),
    shrinkage: float = Query(0.3, ge=0, lt=1),
    max_occupancy: float | None = Query(None, gt=0, le=1),
    default_aht_s: float = Query(workforce.DEFAULT_AHT_S, gt=0, le=86_400),
    weeks: int = Query(0, ge=0, le=12, description="forecast from the same weekday of this many weeks"),
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    tenant_id = principal.tenant_id
    if day is None:
        tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"timezone": 1})
        day = workforce.today(workforce.tenant_zone(tenant))
    own = await workforce.queue_goal(ctx, tenant_id, queue or None)
    goal = workforce.Goal(
        sl_target=sl_target if sl_target is not None else (own[0] if own else 0.8),
        sl_seconds=sl_seconds if sl_seconds is not None else (own[1] if own else 20.0),
        shrinkage=shrinkage,
        max_occupancy=max_occupancy,
        default_aht_s=default_aht_s,
    )
    try:
        return await workforce.staffing(ctx, tenant_id, day, goal, queue or None, history_weeks=weeks)
    except ValueError as exc:  # goals no staffing within the search bound meets
        raise HTTPException(422, str(exc)) from exc
