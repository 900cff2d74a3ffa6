"""Web click-to-call: the widget's WebRTC offer in, pipecat's SmallWebRTC answer out, the IVR on the line.

The browser (channels/webchat/static/widget.js) gathers its ICE candidates, then posts
its offer with the chat widget's visitor token; the visitor token is the caller's
identity, as in the chat. Every accepted offer opens a contact on channel "webcall"
and runs the same voice pipeline as a phone call (media/call.py) at 16 kHz, with the
tenant's web flow (an `ivr_flows` document with `"web": true`) or, without one, the
demo flow built in memory.

    POST  /webrtc/offer?tenant=<slug>
          {"sdp": str, "type": "offer", "visitor_token": str, "contact_id": str?, "pc_id": str?}
          -> {"sdp": str, "type": "answer", "pc_id": str, "contact_id": str}
          `contact_id` in: the widget's chat contact (its customer is linked to the call);
          out: the call's contact. `pc_id` in: renegotiate one of this visitor's calls.
    PATCH /webrtc/offer?tenant=<slug>
          {"visitor_token": str, "pc_id": str,
           "candidates": [{"candidate": str, "sdp_mid": str, "sdp_mline_index": int}]}
          -> 204 (trickled ICE candidates; optional, the widget sends complete offers)

Errors (JSON `{"detail": str}`): 400 malformed body or SDP, 401 missing/invalid/expired
visitor token or a token of another tenant, 404 unknown tenant or call, 429 too many web
calls for the tenant or the visitor (`Retry-After`), 503 the web flow is invalid.
CORS is open (`*`): the widget is embedded on customers' sites and authenticates with the
token in the body, never with cookies.

The call ends when the peer goes (DTLS close or ICE consent failure: pipecat's
`on_client_disconnected` cancels the pipeline and CallBrain abandons the contact) or
when the IVR hangs up; a call that never connects is closed after CONNECT_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from aiortc.exceptions import InvalidAccessError, InvalidStateError
from aiortc.sdp import SessionDescription
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    ConnectionMode,
    IceCandidate,
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.ivr import DEFAULT_FLOW, FlowError, validate_flow
from channels.webchat.visitors import visitor_from_token
from hub.auth import AuthError
from hub.contacts import open_contact, update_contact
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import utcnow
from hub.tenancy import get_tenant_by_slug
from hub.validation import validation_problems
from media.models import resolve_asr

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webrtc", include_in_schema=False)

SAMPLE_RATE = 16000  # Vosk and Piper run at 16 kHz; Opus in the browser is resampled by aiortc
MAX_CALLS_PER_TENANT = 20
MAX_CALLS_PER_VISITOR = 2  # a reload may start a new call before the old one is noticed gone
LIMIT_OVERRIDE_KEY = "webrtc_max_calls_per_tenant"  # ctx.extra override (embedding, tests)
CONNECT_TIMEOUT_S = 30.0
ORPHAN_GRACE_S = 10.0  # the peer is gone but the pipeline still runs: cancel it after this
MAX_SDP_CHARS = 64_000
MAX_CANDIDATES = 50
RETRY_AFTER_S = "10"
WEB_FLOW_NUMBER = "+10000000000"
CORS = {"Access-Control-Allow-Origin": "*"}
CALLS_KEY = "webrtc_calls"

Model = TypeVar("Model", bound=BaseModel)


class OfferBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sdp: str = Field(min_length=1, max_length=MAX_SDP_CHARS)
    type: Literal["offer"]
    pc_id: str | None = Field(default=None, max_length=200)
    restart_pc: bool | None = None
    contact_id: str | None = Field(default=None, max_length=64)


class CandidateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    candidate: str = Field(default="", max_length=1000)
    sdp_mid: str = Field(default="0", max_length=64)
    sdp_mline_index: int = Field(default=0, ge=0, le=64)


class PatchBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    pc_id: str = Field(min_length=1, max_length=200)
    candidates: list[CandidateBody] = Field(max_length=MAX_CANDIDATES)


@dataclass(eq=False)
class WebCall:
    """One web call from reservation (before negotiation) to the end of its pipeline."""

    tenant_id: str
    visitor_id: str
    pc_id: str | None = None
    contact_id: str | None = None
    task: asyncio.Task[None] | None = None


class WebCalls:
    """The hub's web calls: pipecat's request handler and the per-tenant / per-visitor limits."""

    def __init__(self, per_tenant: int = MAX_CALLS_PER_TENANT, per_visitor: int = MAX_CALLS_PER_VISITOR):
        self.handler = SmallWebRTCRequestHandler(connection_mode=ConnectionMode.MULTIPLE)
        self.per_tenant = per_tenant
        self.per_visitor = per_visitor
        self.calls: set[WebCall] = set()  # also keeps the pipeline tasks referenced

    def active(self, tenant_id: str) -> int:
        return sum(1 for call in self.calls if call.tenant_id == tenant_id)

    def reserve(self, tenant_id: str, visitor_id: str) -> WebCall:
        """A slot for a new call, or 429: counted before negotiating so bursts cannot overshoot."""
        if self.active(tenant_id) >= self.per_tenant:
            raise http_error(429, "all lines are busy: too many web calls for this tenant, try again later")
        mine = sum(1 for c in self.calls if c.tenant_id == tenant_id and c.visitor_id == visitor_id)
        if mine >= self.per_visitor:
            raise http_error(429, "you already have a call in progress; hang it up first")
        call = WebCall(tenant_id, visitor_id)
        self.calls.add(call)
        return call

    def release(self, call: WebCall) -> None:
        self.calls.discard(call)

    def find(self, tenant_id: str, visitor_id: str, pc_id: str) -> WebCall | None:
        """Only the visitor who placed a call may renegotiate or trickle into it."""
        for call in self.calls:
            if call.pc_id == pc_id and call.tenant_id == tenant_id and call.visitor_id == visitor_id:
                return call
        return None


def web_calls(ctx: AppContext) -> WebCalls:
    calls = ctx.extra.get(CALLS_KEY)
    if calls is None:
        calls = WebCalls(per_tenant=int(ctx.extra.get(LIMIT_OVERRIDE_KEY, MAX_CALLS_PER_TENANT)))
        ctx.extra[CALLS_KEY] = calls
    assert isinstance(calls, WebCalls)
    return calls


def http_error(status: int, detail: str) -> HTTPException:
    headers = dict(CORS)
    if status == 429:
        headers["Retry-After"] = RETRY_AFTER_S
    return HTTPException(status, detail, headers=headers)


# ------------------------------------------------------------------------------- request parts


async def _tenant(ctx: AppContext, slug: str) -> Doc:
    tenant = await get_tenant_by_slug(ctx, slug) if slug.strip() else None
    if tenant is None:
        raise http_error(404, f"unknown tenant {slug!r}")
    return tenant


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_SDP_CHARS * 2:
        raise http_error(413, "request body too large")
    try:
        data = json.loads(raw)
    except ValueError:
        raise http_error(400, "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise http_error(400, "the body must be a JSON object")
    return data


def _visitor(ctx: AppContext, tenant: Doc, data: dict[str, Any]) -> str:
    token = data.get("visitor_token")
    if not isinstance(token, str) or not token:
        raise http_error(401, "visitor_token is required (connect the chat widget first)")
    try:
        return visitor_from_token(ctx.settings, tenant["_id"], token)
    except AuthError as exc:
        raise http_error(401, f"visitor {exc}") from None


def _parse(model: type[Model], data: dict[str, Any], what: str) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise http_error(400, f"invalid {what}: {validation_problems(exc)}") from None


def patch_request(body: PatchBody) -> SmallWebRTCPatchRequest:
    """pipecat's form of trickled candidates (browsers prefix them with "candidate:")."""
    return SmallWebRTCPatchRequest(
        pc_id=body.pc_id,
        candidates=[
            IceCandidate(
                candidate=c.candidate.removeprefix("candidate:"),
                sdp_mid=c.sdp_mid,
                sdp_mline_index=c.sdp_mline_index,
            )
            for c in body.candidates
        ],
    )


def check_offer_sdp(sdp: str) -> None:
    """Reject what is not an audio offer before aiortc sees it (it accepts garbage as an empty offer)."""
    if not sdp.lstrip().startswith("v=0"):
        raise http_error(400, "invalid SDP offer: it must start with 'v=0'")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # untrusted input: any parse failure is the caller's
        raise http_error(400, f"invalid SDP offer: {exc}") from None
    if not any(media.kind == "audio" for media in description.media):
        raise http_error(400, "invalid SDP offer: it has no audio (m=audio) section")


async def web_flow(ctx: AppContext, tenant_id: str) -> tuple[Doc, bool]:
    """The tenant's web-call flow and whether it is stored; else the demo flow, in memory only."""
    doc = await ctx.db.ivr_flows.find_one({"tenant_id": tenant_id, "web": True}, sort=[("updated_at", -1)])
    stored = doc is not None
    if doc is None:
        doc = DEFAULT_FLOW(tenant_id, WEB_FLOW_NUMBER)
        # A browser has no keypad: listen with the hub's default speech model when it is installed.
        model = ctx.settings.asr_model
        if model and resolve_asr(model, ctx.settings.models_dir) is not None:
            doc["asr_model"] = model
    try:
        validate_flow(doc)
    except FlowError as exc:
        log.error("tenant %s: web-call flow %s is invalid: %s", tenant_id, doc.get("_id"), exc)
        raise http_error(503, "web calls are not available right now (the call flow is invalid)") from None
    return doc, stored


async def _negotiate(
    handler: SmallWebRTCRequestHandler, request: SmallWebRTCRequest
) -> tuple[dict[str, str], SmallWebRTCConnection | None]:
    """pipecat's answer and the connection it created (None: it renegotiated an existing one).

    SDP the browser should not have sent is a 400 with aiortc's reason. The handler swallows
    errors raised in its callback, so the callback only records the connection and the call
    is set up after the handler returns.
    """
    created: list[SmallWebRTCConnection] = []

    async def record(connection: SmallWebRTCConnection) -> None:
        created.append(connection)

    try:
        answer = await handler.handle_web_request(request, record)
    except HTTPException as exc:
        raise http_error(exc.status_code, str(exc.detail)) from None
    except (ValueError, InvalidAccessError, InvalidStateError) as exc:
        raise http_error(400, f"cannot negotiate the call: {exc or type(exc).__name__}") from None
    connection = created[0] if created else None
    if answer is None:
        if connection is not None:
            await connection.disconnect()
        raise http_error(400, "cannot negotiate the call: no SDP answer")
    return answer, connection


async def _open_call(
    ctx: AppContext, tenant_id: str, visitor_id: str, body: OfferBody, flow: Doc, stored: bool, pc_id: str
) -> Doc:
    customer_id = None
    chat_contact_id = None
    if body.contact_id:
        chat = await ctx.db.contacts.find_one(
            {"_id": body.contact_id, "tenant_id": tenant_id, "visitor_id": visitor_id}
        )
        if chat is not None:
            chat_contact_id = chat["_id"]
            customer_id = chat.get("customer_id")
    # Not `visitor_id`: the chat socket resumes a visitor's open contact by that field, and
    # chat messages must not land on the call.
    return await open_contact(
        ctx,
        tenant_id,
        "webcall",
        customer_id=customer_id,
        extra={
            "web_visitor_id": visitor_id,
            "chat_contact_id": chat_contact_id,
            "flow_id": flow["_id"] if stored else None,
            "ivr_path": [],
            "call_status": "connecting",
            "pc_id": pc_id,
        },
    )


# ------------------------------------------------------------------------------- endpoints


@router.options("/offer")
async def offer_preflight() -> Response:
    return Response(
        status_code=204,
        headers={
            **CORS,
            "Access-Control-Allow-Methods": "POST, PATCH, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        },
    )


@router.post("/offer")
async def offer(request: Request, tenant: str = "", ctx: AppContext = Depends(get_ctx)) -> JSONResponse:
    """Answer the browser's offer and start the call's pipeline in the background."""
    tenant_doc = await _tenant(ctx, tenant)
    data = await _json_object(request)
    visitor_id = _visitor(ctx, tenant_doc, data)
    body = _parse(OfferBody, data, "offer")
    calls = web_calls(ctx)
    if body.pc_id:
        return await _renegotiate(calls, tenant_doc["_id"], visitor_id, body)
    check_offer_sdp(body.sdp)
    call = calls.reserve(tenant_doc["_id"], visitor_id)
    connection: SmallWebRTCConnection | None = None
    try:
        flow, stored = await web_flow(ctx, tenant_doc["_id"])
        answer, connection = await _negotiate(calls.handler, SmallWebRTCRequest(sdp=body.sdp, type=body.type))
        if connection is None:
            raise http_error(500, "the call was lost during negotiation")
        contact = await _open_call(ctx, tenant_doc["_id"], visitor_id, body, flow, stored, answer["pc_id"])
    except BaseException:
        calls.release(call)
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect()
        raise
    call.pc_id = answer["pc_id"]
    call.contact_id = contact["_id"]
    call.task = asyncio.create_task(
        serve_call(ctx, calls, call, connection, contact, flow), name=f"webcall-{contact['_id']}"
    )
    log.info("web call %s: tenant %s, peer %s", contact["_id"], tenant_doc["slug"], answer["pc_id"])
    return JSONResponse({**answer, "contact_id": contact["_id"]}, headers=CORS)


async def _renegotiate(calls: WebCalls, tenant_id: str, visitor_id: str, body: OfferBody) -> JSONResponse:
    assert body.pc_id is not None
    call = calls.find(tenant_id, visitor_id, body.pc_id)
    if call is None:
        raise http_error(404, "unknown call")
    if body.restart_pc:
        raise http_error(400, "restarting a call is not supported: hang up and call again")
    check_offer_sdp(body.sdp)
    request = SmallWebRTCRequest(sdp=body.sdp, type=body.type, pc_id=body.pc_id)
    answer, created = await _negotiate(calls.handler, request)
    if created is not None:  # the call ended meanwhile: the handler made a new, unowned peer
        await created.disconnect()
        raise http_error(404, "unknown call")
    return JSONResponse({**answer, "contact_id": call.contact_id}, headers=CORS)


@router.patch("/offer")
async def add_candidates(request: Request, tenant: str = "", ctx: AppContext = Depends(get_ctx)) -> Response:
    """Trickled ICE candidates for one of this visitor's calls."""
    tenant_doc = await _tenant(ctx, tenant)
    data = await _json_object(request)
    visitor_id = _visitor(ctx, tenant_doc, data)
    body = _parse(PatchBody, data, "candidates")
    calls = web_calls(ctx)
    if calls.find(tenant_doc["_id"], visitor_id, body.pc_id) is None:
        raise http_error(404, "unknown call")
    patch = patch_request(body)
    try:
        await calls.handler.handle_patch_request(patch)
    except HTTPException as exc:
        raise http_error(exc.status_code, str(exc.detail)) from None
    except (ValueError, IndexError) as exc:
        raise http_error(400, f"invalid ICE candidate: {exc}") from None
    return Response(status_code=204, headers=CORS)


# ------------------------------------------------------------------------------- the call


async def wait_connected(connection: SmallWebRTCConnection, timeout_s: float) -> bool:
    """Start the pipeline only once media flows, so the greeting is not spoken into the void."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        state = connection.pc.connectionState
        if state == "connected":
            return True
        if state in ("closed", "failed") or loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)


async def serve_call(
    ctx: AppContext,
    calls: WebCalls,
    call: WebCall,
    connection: SmallWebRTCConnection,
    contact: Doc,
    flow: Doc,
) -> None:
    """One web call: wait for media, run the IVR pipeline, and always free the slot and the contact."""
    from media.call import run_call  # the speech stack loads only when a call arrives

    contact_id = contact["_id"]
    status = "failed"
    try:
        if not await wait_connected(connection, CONNECT_TIMEOUT_S):
            log.warning(
                "web call %s: the browser never connected (%s)", contact_id, connection.pc.connectionState
            )
            return
        await update_contact(ctx, contact_id, {"call_status": "in-progress", "answered_at": utcnow()})
        if connection.pc.connectionState != "connected":
            return  # gone while we stored that; no await from here until run_call watches the peer
        status = "completed"
        transport = SmallWebRTCTransport(
            webrtc_connection=connection,
            params=TransportParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                audio_in_sample_rate=SAMPLE_RATE,
                audio_out_sample_rate=SAMPLE_RATE,
            ),
        )
        runner = asyncio.create_task(run_call(ctx, transport, contact, flow, sample_rate=SAMPLE_RATE))
        await supervise(connection, runner, contact_id)
    except Exception:
        log.exception("web call %s failed", contact_id)
    finally:
        calls.release(call)
        with contextlib.suppress(Exception):
            if connection.pc.connectionState != "closed":
                await connection.disconnect()
        try:
            await update_contact(ctx, contact_id, {"call_status": status, "call_ended_at": utcnow()})
            # CallBrain closes the contact itself when the pipeline ends; this covers calls that
            # never got that far. A contact an agent holds is left alone by `abandon`.
            reason = "caller_hung_up" if status == "completed" else "webcall_not_connected"
            await ctx.require_router().abandon(contact_id, reason)
        except Exception:
            log.exception("web call %s: could not close the contact", contact_id)
        log.info("web call %s ended (%s)", contact_id, status)


async def supervise(connection: SmallWebRTCConnection, runner: asyncio.Task[None], contact_id: str) -> None:
    """Wait for the pipeline; cancel it if the peer is gone and it did not notice (no orphan calls)."""
    loop = asyncio.get_running_loop()
    gone_since: float | None = None
    while not runner.done():
        await asyncio.wait({runner}, timeout=1.0)
        if runner.done():
            break
        if connection.pc.connectionState in ("closed", "failed"):
            gone_since = gone_since if gone_since is not None else loop.time()
            if loop.time() - gone_since > ORPHAN_GRACE_S:
                log.warning("web call %s: peer gone but the pipeline still runs; cancelling it", contact_id)
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
                return
    await runner
