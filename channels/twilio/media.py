"""Twilio Media Streams: the call's audio over a websocket, 8 kHz mu-law both ways.

Twilio sends `connected` and `start` first; the `start` message carries the signed
media token we put into the TwiML, which names the contact. Anything else (a
missing or forged token, an unknown stream, garbage before `start`) is closed
with a clear reason and logged; no pipeline is started for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

from channels.twilio.voice import mark_call_ended
from hub.auth import AuthError, decode_token
from hub.contacts import get_contact
from hub.context import get_ws_ctx

log = logging.getLogger(__name__)
router = APIRouter()
PHONE_RATE = 8000  # run phone pipelines at Twilio's rate: no resampling in the serializer
HANDSHAKE_TIMEOUT_S = 10.0


@router.websocket("/twilio/media")
async def media_stream(ws: WebSocket) -> None:
    ctx = get_ws_ctx(ws)
    await ws.accept()
    try:
        kind, call = await asyncio.wait_for(parse_telephony_websocket(ws), HANDSHAKE_TIMEOUT_S)
    except (ValueError, TimeoutError) as exc:
        log.warning("media stream: no valid handshake (%s)", exc)
        await _close(ws, 4400, "expected Twilio connected/start messages")
        return
    if kind != "twilio" or not call.get("stream_id") or not call.get("call_id"):
        log.warning("media stream: not a Twilio stream (%s)", kind)
        await _close(ws, 4400, "expected a Twilio media stream")
        return
    body = call.get("body") or {}
    try:
        claims = decode_token(ctx.settings.secret, str(body.get("token", "")), "media")
    except AuthError as exc:
        log.warning("media stream %s: %s", call["stream_id"], exc)
        await _close(ws, 4401, f"media token: {exc}")
        return
    contact = await get_contact(ctx, claims["sub"], claims["tid"])
    if (
        contact is None
        or claims.get("call_sid") != call["call_id"]
        or contact.get("call_sid") != call["call_id"]
    ):
        log.warning("media stream %s: unknown call %s", call["stream_id"], call["call_id"])
        await _close(ws, 4404, "unknown call")
        return
    if contact.get("direction") == "outbound":  # a call the dialer placed: its hook decides the flow
        from channels.twilio.outbound import run_outbound_stream

        await run_outbound_stream(
            ctx, ws, contact, str(claims.get("attempt") or ""), lambda: phone_transport(ws, call)
        )
        return
    flow = await ctx.db.ivr_flows.find_one({"_id": contact.get("flow_id"), "tenant_id": contact["tenant_id"]})
    if flow is None:
        await _close(ws, 4404, "the number's flow was removed")
        return
    transport = phone_transport(ws, call)
    from bot.ivr import FlowError, validate_flow
    from media.call import run_call  # the speech stack loads only when a call arrives

    try:
        validate_flow(flow)
    except FlowError as exc:
        log.error(
            "call %s: the flow of %s is invalid, hanging up: %s", contact["_id"], flow.get("number"), exc
        )
        await ctx.require_router().abandon(contact["_id"], "invalid_flow")
        await _close(ws, 1011, "this number's flow is misconfigured")
        return

    log.info("call %s: stream %s started", contact["_id"], call["stream_id"])
    try:
        await run_call(ctx, transport, contact, flow, sample_rate=PHONE_RATE)
    finally:  # the call is over even when the pipeline failed: its time is billable
        await mark_call_ended(ctx, contact["_id"])
    log.info("call %s: stream ended", contact["_id"])


def phone_transport(ws: WebSocket, call: dict[str, Any]) -> FastAPIWebsocketTransport:
    """The pipecat transport for a Twilio stream whose handshake was read already."""
    serializer = TwilioFrameSerializer(
        stream_sid=call["stream_id"],
        call_sid=call["call_id"],
        # auto_hang_up would call Twilio's REST API when the pipeline ends (also after a transfer)
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    return FastAPIWebsocketTransport(
        websocket=ws,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
            allowed_origins=[],  # Twilio sends no Origin header
        ),
    )


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code, reason)
