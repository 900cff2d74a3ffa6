"""The staff softphone's WebRTC endpoint: an agent's or supervisor's browser joins the voice desk.

    POST   /api/softphone/offer  {"sdp": str, "type": "offer", "pc_id": str?} -> {"sdp", "type", "pc_id"}
    PATCH  /api/softphone/offer  {"pc_id": str, "candidates": [...]}         -> 204
    GET    /api/softphone        -> {"connected": bool, "bridge": {...} | null}
    DELETE /api/softphone        -> 204 (hang the line up)

Signed-in staff only (session cookie or bearer token), one line per user: a new offer
replaces the user's previous line and takes over its call (a page reload keeps the
call). When the peer goes, the voice desk gives the line a grace period, then sets the
agent not-ready and puts the caller back at the head of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    ConnectionMode,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)

from channels.webrtc.call import (
    CONNECT_TIMEOUT_S,
    OfferBody,
    PatchBody,
    _json_object,
    _negotiate,
    _parse,
    check_offer_sdp,
    patch_request,
    wait_connected,
)
from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from media.voice_desk import Line, voice_desk

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/softphone", tags=["softphone"])
STAFF = require_roles("agent", "supervisor", "admin")
RATE = 16000
HANDLER_KEY = "softphone_handler"
LINES_KEY = "softphone_connections"


def _handler(ctx: AppContext) -> SmallWebRTCRequestHandler:
    handler = ctx.extra.get(HANDLER_KEY)
    if handler is None:
        handler = SmallWebRTCRequestHandler(connection_mode=ConnectionMode.MULTIPLE)
        ctx.extra[HANDLER_KEY] = handler
    assert isinstance(handler, SmallWebRTCRequestHandler)
    return handler


def _connections(ctx: AppContext) -> dict[str, tuple[str, SmallWebRTCConnection, asyncio.Task[None]]]:
    """user id -> (pc id, connection, line task)."""
    found: dict[str, tuple[str, SmallWebRTCConnection, asyncio.Task[None]]] = ctx.extra.setdefault(
        LINES_KEY, {}
    )
    return found


def line_role(principal: Principal) -> str:
    return "agent" if principal.has_any("agent") else "supervisor"


@router.post("/offer")
async def offer(
    request: Request, principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)
) -> JSONResponse:
    body = _parse(OfferBody, await _json_object(request), "offer")
    connections = _connections(ctx)
    if body.pc_id:
        mine = connections.get(principal.user_id)
        if mine is None or mine[0] != body.pc_id:
            raise HTTPException(404, "unknown line")
        check_offer_sdp(body.sdp)
        answer, created = await _negotiate(
            _handler(ctx), SmallWebRTCRequest(sdp=body.sdp, type=body.type, pc_id=body.pc_id)
        )
        if created is not None:
            await created.disconnect()
            raise HTTPException(404, "unknown line")
        return JSONResponse(answer)
    check_offer_sdp(body.sdp)
    answer, connection = await _negotiate(_handler(ctx), SmallWebRTCRequest(sdp=body.sdp, type=body.type))
    if connection is None:
        raise HTTPException(500, "the line was lost during negotiation")
    line = Line(
        principal.user_id,
        principal.tenant_id,
        principal.name,
        "agent" if line_role(principal) == "agent" else "supervisor",
        rate=RATE,
    )
    task = asyncio.create_task(serve_line(ctx, line, connection), name=f"softphone-{principal.user_id}")
    old = connections.get(principal.user_id)
    connections[principal.user_id] = (answer["pc_id"], connection, task)
    if old is not None:  # the new line takes over; the old peer is closed when it has
        asyncio.get_running_loop().call_later(CONNECT_TIMEOUT_S, _close_later, old[1])
    log.info("softphone of %s: peer %s", principal.email, answer["pc_id"])
    return JSONResponse(answer)


def _close_later(connection: SmallWebRTCConnection) -> None:
    if connection.pc.connectionState != "closed":
        asyncio.get_running_loop().create_task(connection.disconnect())


@router.patch("/offer")
async def add_candidates(
    request: Request, principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)
) -> Response:
    body = _parse(PatchBody, await _json_object(request), "candidates")
    mine = _connections(ctx).get(principal.user_id)
    if mine is None or mine[0] != body.pc_id:
        raise HTTPException(404, "unknown line")
    patch = patch_request(body)
    try:
        await _handler(ctx).handle_patch_request(patch)
    except (ValueError, IndexError) as exc:
        raise HTTPException(400, f"invalid ICE candidate: {exc}") from None
    return Response(status_code=204)


@router.get("")
async def state(principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    return voice_desk(ctx).call_view_for(principal.user_id) or {"connected": False, "bridge": None}


@router.delete("")
async def hang_up_line(principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)) -> Response:
    mine = _connections(ctx).get(principal.user_id)
    if mine is not None:
        await mine[1].disconnect()
    return Response(status_code=204)


async def serve_line(ctx: AppContext, line: Line, connection: SmallWebRTCConnection) -> None:
    """Wait for media, register the line, run its audio until the peer goes."""
    from channels.webrtc.call import supervise
    from media.softphone import run_line

    desk = voice_desk(ctx)
    registered = False
    try:
        if not await wait_connected(connection, CONNECT_TIMEOUT_S):
            log.warning("softphone of %s never connected (%s)", line.user_id, connection.pc.connectionState)
            return
        runner = asyncio.create_task(run_line(connection, line))
        await desk.register_line(line)
        registered = True
        await supervise(connection, runner, f"softphone-{line.user_id}")
    except Exception:
        log.exception("softphone of %s failed", line.user_id)
    finally:
        with contextlib.suppress(Exception):
            if connection.pc.connectionState != "closed":
                await connection.disconnect()
        connections = _connections(ctx)
        if connections.get(line.user_id, (None, None, None))[1] is connection:
            del connections[line.user_id]
        if registered:
            desk.line_lost(line)
        log.info("softphone of %s ended", line.user_id)
