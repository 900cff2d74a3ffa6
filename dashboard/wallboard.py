"""The supervisor wallboard: per queue the waiting contacts, longest wait, service level,
answered and abandoned today; per agent the state, time in it, contacts handled and
occupancy today ("today" in the tenant's time zone; see dashboard/wallboard_today.py).

Snapshots are computed from MongoDB, so every hub process shows the same figures; a
websocket pushes a fresh one within a second of any contact or presence change in the
tenant (changes are coalesced for 200 ms, and a snapshot is sent at least every 5 s so
waiting times keep counting and changes made by other hub processes show up too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pymongo.errors import PyMongoError

from dashboard.wallboard_today import (
    agent_time,
    handled_today,
    occupancy,
    queue_of,
    queue_today,
    today,
    zone_of,
)
from hub.auth import AuthError, Principal, require_roles, websocket_principal
from hub.context import AppContext, get_ctx, get_ws_ctx
from hub.db import Doc
from hub.ids import iso, utcnow
from routing.strategies import service_level

router = APIRouter()
SUPERVISOR = require_roles("supervisor", "admin")
SL_THRESHOLD_S = 20.0
COALESCE_S = 0.2
REFRESH_S = 5.0
STATE_ORDER = {s: i for i, s in enumerate(("available", "busy", "wrapup", "not_ready", "offline"))}


def _seconds(later: Any, earlier: Any) -> float:
    return float((later - earlier).total_seconds())


async def snapshot(ctx: AppContext, tenant_id: str) -> dict[str, Any]:
    """The tenant's board now: every read is by tenant on an indexed field, with a projection;
    today's totals come from `wallboard_today` (incremental after the day's first look)."""
    now = utcnow()
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"timezone": 1})
    zone = zone_of((tenant or {}).get("timezone"))
    tallies, waiting, thresholds, agents = await asyncio.gather(
        today(ctx, tenant_id, zone, now),
        _waiting(ctx, tenant_id),
        _thresholds(ctx, tenant_id),
        _agents(ctx, tenant_id),
    )
    # each agent document carries its open spell (routing/agent_states.py)
    open_spells = {a["_id"]: a["spell"] for a in agents if isinstance(a.get("spell"), dict)}
    queues: dict[str, dict[str, Any]] = {}
    for contact in waiting:
        queue = queues.setdefault(queue_of(contact), {"waiting": 0, "longest_wait_s": 0.0})
        queue["waiting"] += 1
        if contact.get("queued_at"):
            queue["longest_wait_s"] = max(
                queue["longest_wait_s"], round(_seconds(now, contact["queued_at"]), 1)
            )
    within = ended = answered = abandoned = 0
    for name, figures in queue_today(tallies).items():
        threshold = thresholds.get(name, SL_THRESHOLD_S)
        waits, gave_up = figures["waits"], figures["abandoned"]
        queue = queues.setdefault(name, {"waiting": 0, "longest_wait_s": 0.0})
        level = service_level(waits, gave_up, threshold)
        queue.update(
            service_level=None if level is None else round(level, 3),
            service_level_threshold_s=threshold,
            answered_today=len(waits),
            abandoned_today=gave_up,
        )
        within += sum(1 for w in waits if w <= threshold)
        ended += len(waits) + gave_up
        answered += len(waits)
        abandoned += gave_up
    for name, queue in queues.items():
        queue.setdefault("service_level", None)
        queue.setdefault("service_level_threshold_s", thresholds.get(name, SL_THRESHOLD_S))
        queue.setdefault("answered_today", 0)
        queue.setdefault("abandoned_today", 0)
    times = agent_time(tallies, open_spells, now)
    handled = handled_today(tallies)
    counts: dict[str, int] = {}
    not_ready: dict[str, int] = {}
    roster: list[dict[str, Any]] = []
    for agent in agents:
        state = shown_state(agent)
        if state == "not_ready":
            reason = agent.get("not_ready_reason") or "away"
            not_ready[reason] = not_ready.get(reason, 0) + 1
        counts[state] = counts.get(state, 0) + 1
        since = state_since(agent, state, open_spells.get(agent["_id"]))
        roster.append(
            {
                "id": agent["_id"],
                "name": agent.get("name") or agent["_id"],
                "state": state,
                "reason": agent.get("not_ready_reason") if state == "not_ready" else None,
                "since": iso(since),
                "in_state_s": None if since is None else round(max(0.0, _seconds(now, since)), 1),
                "handled_today": handled.get(agent["_id"], 0),
                "occupancy": occupancy(times.get(agent["_id"])),
            }
        )
    roster.sort(key=lambda a: (STATE_ORDER.get(a["state"], len(STATE_ORDER)), a["name"].lower()))
    return {
        "type": "wallboard",
        "at": iso(now),
        "day": now.astimezone(zone).date().isoformat(),
        "timezone": zone.key,
        "queues": queues,
        "waiting": len(waiting),
        "longest_wait_s": max((q["longest_wait_s"] for q in queues.values()), default=0.0),
        "service_level": None if ended == 0 else round(within / ended, 3),
        "service_level_threshold_s": SL_THRESHOLD_S,
        "answered_today": answered,
        "abandoned_today": abandoned,
        "agents": counts,
        "not_ready_reasons": not_ready,
        "roster": roster,
    }


def shown_state(agent: Doc) -> str:
    """The presence a supervisor sees: "busy" is available while holding a contact."""
    state = str(agent.get("state") or "offline")
    if state == "available" and any((agent.get("load") or {}).values()):
        return "busy"
    return state


def state_since(agent: Doc, state: str, spell: Doc | None) -> datetime | None:
    """When the agent entered the state shown: the open spell if it is that state (a switch
    may be a few milliseconds behind the state), else unknown."""
    if spell is not None and spell.get("state") == state and spell.get("start"):
        return _as_utc(spell["start"])
    return None


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def _waiting(ctx: AppContext, tenant_id: str) -> list[Doc]:
    return [
        c
        async for c in ctx.db.contacts.find(
            {"tenant_id": tenant_id, "status": {"$in": ["queued", "offered"]}},
            {"skill": 1, "queue_name": 1, "queued_at": 1},
        )
    ]


async def _thresholds(ctx: AppContext, tenant_id: str) -> dict[str, float]:
    return {
        q["name"]: float((q.get("service_level") or {}).get("threshold_s") or SL_THRESHOLD_S)
        async for q in ctx.db.queues.find({"tenant_id": tenant_id}, {"name": 1, "service_level": 1})
    }


async def _agents(ctx: AppContext, tenant_id: str) -> list[Doc]:
    return [
        a
        async for a in ctx.db.agents.find(
            {"tenant_id": tenant_id},
            {"name": 1, "state": 1, "load": 1, "not_ready_reason": 1, "spell": 1},
        )
    ]


@router.get("/api/wallboard")
async def wallboard(principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    return await snapshot(ctx, principal.tenant_id)


@router.websocket("/ws/wallboard")
async def wallboard_socket(ws: WebSocket) -> None:
    ctx = get_ws_ctx(ws)
    await ws.accept()
    try:
        principal = await websocket_principal(ws, ctx)
    except AuthError as exc:
        await ws.close(4401, str(exc))
        return
    if not principal.has_any("supervisor", "admin"):
        await ws.close(4403, "supervisors only")
        return
    async with ctx.bus.subscribe(f"tenant:{principal.tenant_id}") as queue:
        try:
            while True:
                await ws.send_text(json.dumps(await snapshot(ctx, principal.tenant_id)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(queue.get(), REFRESH_S)
                    await asyncio.sleep(COALESCE_S)  # let a burst of changes settle into one push
                    while not queue.empty():
                        queue.get_nowait()
        except (WebSocketDisconnect, PyMongoError, RuntimeError):
            pass
