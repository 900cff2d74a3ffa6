"""The supervisor wallboard: queue length, longest wait, service level and agents by state.

Snapshots are computed from MongoDB, so every hub process shows the same figures; a
websocket pushes a fresh one within a second of any contact or presence change in the
tenant (changes are coalesced for 200 ms, and a snapshot is sent at least every 5 s so
waiting times keep counting and changes made by other hub processes show up too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pymongo.errors import PyMongoError

from hub.auth import AuthError, Principal, require_roles, websocket_principal
from hub.context import AppContext, get_ctx, get_ws_ctx
from hub.ids import iso, utcnow
from routing.strategies import service_level

router = APIRouter()
SUPERVISOR = require_roles("supervisor", "admin")
SL_THRESHOLD_S = 20.0
COALESCE_S = 0.2
REFRESH_S = 5.0


def _seconds(later: Any, earlier: Any) -> float:
    return float((later - earlier).total_seconds())


async def snapshot(ctx: AppContext, tenant_id: str) -> dict[str, Any]:
    now = utcnow()
    waiting = [
        c
        async for c in ctx.db.contacts.find(
            {"tenant_id": tenant_id, "status": {"$in": ["queued", "offered"]}},
            {"skill": 1, "queue_name": 1, "queued_at": 1},
        )
    ]
    queues: dict[str, dict[str, Any]] = {}
    for contact in waiting:
        name = contact.get("queue_name") or contact.get("skill") or "general"
        queue = queues.setdefault(name, {"waiting": 0, "longest_wait_s": 0.0})
        queue["waiting"] += 1
        if contact.get("queued_at"):
            queue["longest_wait_s"] = max(
                queue["longest_wait_s"], round(_seconds(now, contact["queued_at"]), 1)
            )
    since = now - timedelta(hours=24)
    answered: list[float] = []
    abandoned = 0
    thresholds = {
        q["name"]: float((q.get("service_level") or {}).get("threshold_s") or SL_THRESHOLD_S)
        async for q in ctx.db.queues.find({"tenant_id": tenant_id}, {"name": 1, "service_level": 1})
    }
    per_queue: dict[str, tuple[list[float], list[int]]] = {}  # name -> (answer waits, [abandoned])
    async for contact in ctx.db.contacts.find(
        {"tenant_id": tenant_id, "queued_at": {"$gte": since}},
        {"status": 1, "queued_at": 1, "assigned_at": 1, "disposition": 1, "queue_name": 1, "skill": 1},
    ):
        name = contact.get("queue_name") or contact.get("skill") or "general"
        waits, gave_up = per_queue.setdefault(name, ([], [0]))
        if contact.get("assigned_at"):
            answered.append(_seconds(contact["assigned_at"], contact["queued_at"]))
            waits.append(answered[-1])
        elif contact.get("status") == "closed" and contact.get("disposition") == "abandoned":
            abandoned += 1
            gave_up[0] += 1
    for name, (waits, gave_up) in per_queue.items():
        threshold = thresholds.get(name, SL_THRESHOLD_S)
        queue = queues.setdefault(name, {"waiting": 0, "longest_wait_s": 0.0})
        level = service_level(waits, gave_up[0], threshold)
        queue.update(
            service_level=None if level is None else round(level, 3),
            service_level_threshold_s=threshold,
            answered_24h=len(waits),
            abandoned_24h=gave_up[0],
        )
    agents: dict[str, int] = {}
    not_ready: dict[str, int] = {}
    async for agent in ctx.db.agents.find(
        {"tenant_id": tenant_id}, {"state": 1, "load": 1, "not_ready_reason": 1}
    ):
        state = agent.get("state", "offline")
        if state == "available" and any((agent.get("load") or {}).values()):
            state = "busy"  # signed in and handling contacts
        if state == "not_ready":
            reason = agent.get("not_ready_reason") or "away"
            not_ready[reason] = not_ready.get(reason, 0) + 1
        agents[state] = agents.get(state, 0) + 1
    level = service_level(answered, abandoned, SL_THRESHOLD_S)
    return {
        "type": "wallboard",
        "at": iso(now),
        "queues": queues,
        "waiting": len(waiting),
        "longest_wait_s": max((q["longest_wait_s"] for q in queues.values()), default=0.0),
        "service_level": None if level is None else round(level, 3),
        "service_level_threshold_s": SL_THRESHOLD_S,
        "answered_24h": len(answered),
        "abandoned_24h": abandoned,
        "agents": agents,
        "not_ready_reasons": not_ready,
    }


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
