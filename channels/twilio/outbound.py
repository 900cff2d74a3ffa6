"""Outbound calls through Twilio: placing them, their answer / status / AMD webhooks, hanging up.

The dialer (routing/) decides whom to call; this module is the only place that speaks
Twilio's REST API for it. `place_call` creates the call with the real `twilio` client
and returns its sid; Twilio then reports the call's life to three signed webhooks, all
naming the `dial_attempts` document they belong to (`?attempt=ID`):

- `/twilio/outbound/status`: initiated, ringing, answered, completed / busy / no-answer /
  failed / canceled. Each (CallSid, CallStatus) is applied once, however often Twilio
  repeats it: the key is pushed to the attempt's `call_events` by a conditional update.
- `/twilio/outbound/amd`: the asynchronous answering-machine detection result.
- `/twilio/outbound/answer`: the callee picked up. A new outbound voice contact is
  opened and the TwiML connects the call's audio to `/twilio/media` with a signed
  token naming the contact and the attempt.

What runs on that stream is the dialer's decision: it registers
`ctx.extra["outbound_on_answer"]` (see `OnAnswer`), which returns an IVR flow document
for media/call.py's `run_call` (a robot call, a broadcast prompt, or a `queue` node that
hands the callee to an agent) or None to hang up. Without a dialer the call is hung up
cleanly. `outbound_on_status` / `outbound_on_amd` (see `OnCallEvent`) hear every new
status and AMD result; the same events go to the bus topic `tenant:<id>`.

The REST client is `twilio.rest.Client` over its aiohttp-based `AsyncTwilioHttpClient`
(`create_async` / `update_async`) rather than the sync client in a thread: a predictive
dialer places many calls at once, and one pooled aiohttp session per process costs no
thread per call. `TWILIO_API_BASE` rewrites the API host (tests point it at a local
double). Twilio's errors and network failures become `PlacementError` /
`TwilioCallError` with Twilio's message and code; retrying is the caller's decision.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from fastapi import APIRouter, Depends, HTTPException, Request, WebSocket
from fastapi.responses import Response
from pipecat.transports.base_transport import BaseTransport
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, VoiceResponse

from channels.twilio import accounts
from channels.twilio.voice import MEDIA_TOKEN_TTL_S, media_ws_url, require_account_tenant, signed_form, twiml
from hub.auth import issue_token
from hub.contacts import get_contact, open_contact, update_contact
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import utcnow
from hub.secretbox import SecretUnreadable
from knowledge.customers import InvalidContactDetail, find_or_create_customer, normalise_phone

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio/outbound", include_in_schema=False)
# Twilio's client logs ~10 INFO lines per request (headers, bodies): a dialer placing calls
# all day would drown the hub's log, so its wire log starts at WARNING (lower it to debug).
wire_log = logging.getLogger(f"{__name__}.wire")
wire_log.setLevel(logging.WARNING)

# The statuses we ask Twilio to report ("completed" is always sent).
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
# A call that ended without being answered: Twilio's CallStatus -> dial_attempts.outcome.
# "canceled" is a call we withdrew while it rang: for retries it counts as no answer.
UNANSWERED = {"busy": "busy", "no-answer": "no_answer", "failed": "failed", "canceled": "no_answer"}
TERMINAL = {"completed", *UNANSWERED}
MACHINE_RESULTS = {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
# Regulators want a call to ring at least 15 s (Ofcom); Twilio accepts at most 600 s.
MIN_RING_S, MAX_RING_S = 15, 600
REQUEST_TIMEOUT_S = 10.0
TWILIO_DOMAIN = "twilio.com"
CLIENT_KEY = "twilio_rest"
ACCOUNT_CLIENTS_KEY = "twilio_rest_accounts"  # tenants' own accounts: {sid: (loop, token, client)}

# ctx.extra["outbound_on_answer"](contact, attempt) -> an IVR flow document to run, or None
# (hang up). To hand the callee to an agent, return a flow whose start node is a `queue` node.
OnAnswer = Callable[[Doc, Doc], Awaitable[Doc | None]]
# ctx.extra["outbound_on_status"] / ["outbound_on_amd"](attempt, event): after each new
# callback was stored; `event` is what was published on the bus.
OnCallEvent = Callable[[Doc, Doc], Awaitable[None]]


class TwilioCallError(Exception):
    """Twilio refused a request or could not be reached. `retryable`: worth trying again
    later (network trouble, Twilio's 5xx or 429), as opposed to a request Twilio rejects."""

    def __init__(
        self, message: str, *, status: int | None = None, code: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable


class PlacementError(TwilioCallError):
    """A call could not be placed."""


# ------------------------------------------------------------------------------ the REST client


class _ApiBaseHttpClient(AsyncTwilioHttpClient):
    """Twilio's own async HTTP client, sending to `api_base` instead of *.twilio.com.

    The client builds absolute https://api.twilio.com URLs and has no base-URL option,
    so the host is swapped here, just before the request leaves."""

    def __init__(self, api_base: str | None) -> None:
        super().__init__(pool_connections=True, logger=wire_log)
        self.api_base = api_base.rstrip("/") if api_base else None

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        parts = urlsplit(url)
        if self.api_base and (parts.hostname or "").endswith(TWILIO_DOMAIN):
            url = f"{self.api_base}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        if auth is not None:  # as a header: aiohttp 3.14 deprecates the auth= the base class passes
            credentials = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers = {**(headers or {}), "Authorization": f"Basic {credentials}"}
        return await super().request(method, url, params, data, headers, None, timeout, allow_redirects)


def rest_client(ctx: AppContext, error: type[TwilioCallError] = TwilioCallError) -> Client:
    """One client (one pooled aiohttp session) per process and event loop."""
    settings = ctx.settings
    if not settings.twilio_account_sid or not settings.twilio_auth_token:
        raise error("Twilio is not configured: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    loop = asyncio.get_running_loop()
    cached = ctx.extra.get(CLIENT_KEY)
    if cached is not None and cached[0] is loop:
        client: Client = cached[1]
        return client
    client = Client(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        http_client=_ApiBaseHttpClient(settings.twilio_api_base),
    )
    ctx.extra[CLIENT_KEY] = (loop, client)
    return client


async def client_for(
    ctx: AppContext, tenant_id: str | None, error: type[TwilioCallError] = TwilioCallError
) -> Client:
    """The client for a tenant: its own Twilio account when it has one (channels.twilio.accounts),
    else the hub's. One client per account SID and event loop, replaced when the token changes."""
    try:
        account = await accounts.tenant_account(ctx, tenant_id) if tenant_id else None
    except SecretUnreadable as exc:
        raise error(f"the tenant's Twilio account: {exc}") from None
    if account is None:
        return rest_client(ctx, error)
    loop = asyncio.get_running_loop()
    cache: dict[str, tuple[Any, str, Client]] = ctx.extra.setdefault(ACCOUNT_CLIENTS_KEY, {})
    cached = cache.get(account.account_sid)
    if cached is not None and cached[0] is loop and cached[1] == account.auth_token:
        return cached[2]
    client = Client(
        account.account_sid, account.auth_token, http_client=_ApiBaseHttpClient(ctx.settings.twilio_api_base)
    )
    cache[account.account_sid] = (loop, account.auth_token, client)
    if cached is not None and cached[0] is loop:
        with contextlib.suppress(Exception):
            await cached[2].http_client.close()
    return client


async def close_rest_client(ctx: AppContext) -> None:
    """Close the pooled sessions (at shutdown)."""
    cached = ctx.extra.pop(CLIENT_KEY, None)
    clients = [cached[1]] if cached is not None else []
    clients += [entry[2] for entry in (ctx.extra.pop(ACCOUNT_CLIENTS_KEY, None) or {}).values()]
    for client in clients:
        with contextlib.suppress(Exception):
            await client.http_client.close()


async def _call_twilio(what: str, request: Awaitable[Any], error: type[TwilioCallError]) -> Any:
    """Await one REST request; every failure becomes `error` with Twilio's own words."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            return await request
    except TwilioRestException as exc:
        message = re.sub(r"^Unable to \w+ record: ", "", str(exc.msg))
        raise error(
            f"{what}: Twilio answered HTTP {exc.status} (code {exc.code}): {message}",
            status=exc.status,
            code=exc.code,
            retryable=exc.status >= 500 or exc.status == 429,
        ) from None
    except TwilioServiceException as exc:
        status = int(exc.status)
        detail = f"{exc.title} {exc.detail or ''}".strip()
        raise error(
            f"{what}: Twilio answered HTTP {status} (code {exc.code}): {detail}",
            status=status,
            code=exc.code,
            retryable=status >= 500 or status == 429,
        ) from None
    except TimeoutError:
        raise error(
            f"{what}: Twilio did not answer within {REQUEST_TIMEOUT_S:.0f} s", retryable=True
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise error(f"{what}: cannot reach Twilio ({exc})", retryable=True) from None
    except (TwilioException, ValueError) as exc:  # malformed answers, bad arguments
        raise error(f"{what}: {exc}") from None


# ------------------------------------------------------------------------------ placing calls


def webhook_url(ctx: AppContext, kind: str, attempt_id: str) -> str:
    return f"{ctx.settings.public_url}/twilio/outbound/{kind}?{urlencode({'attempt': attempt_id})}"


async def place_call(
    ctx: AppContext,
    *,
    tenant_id: str,
    to: str,
    from_: str,
    attempt_id: str,
    ring_timeout_s: int,
    amd: bool,
    record: bool,
    leave_message: bool = False,
) -> str:
    """Ask Twilio to call `to` from `from_` for a `dial_attempts` document; returns the call sid.

    AMD runs asynchronously (the callee is connected at once, the verdict comes to the amd
    webhook); `leave_message` waits for the greeting's beep so a message can follow it.
    The sid is also stored on the attempt. Raises PlacementError, never retries itself."""
    client = await client_for(ctx, tenant_id, PlacementError)
    options: dict[str, Any] = {}
    if amd:
        options = {
            "machine_detection": "DetectMessageEnd" if leave_message else "Enable",
            "async_amd": "true",
            "async_amd_status_callback": webhook_url(ctx, "amd", attempt_id),
            "async_amd_status_callback_method": "POST",
        }
    call = await _call_twilio(
        f"calling {to}",
        client.calls.create_async(
            to=to,
            from_=from_,
            url=webhook_url(ctx, "answer", attempt_id),
            method="POST",
            status_callback=webhook_url(ctx, "status", attempt_id),
            status_callback_event=STATUS_EVENTS,
            status_callback_method="POST",
            timeout=min(max(int(ring_timeout_s), MIN_RING_S), MAX_RING_S),
            record=record,
            **options,
        ),
        PlacementError,
    )
    sid = str(getattr(call, "sid", "") or "")
    if not sid.startswith("CA"):
        raise PlacementError(f"calling {to}: Twilio answered without a call sid")
    await ctx.db.dial_attempts.update_one(
        {"_id": attempt_id, "tenant_id": tenant_id, "call_sid": None}, {"$set": {"call_sid": sid}}
    )
    return sid


async def hang_up(ctx: AppContext, call_sid: str, tenant_id: str | None = None) -> None:
    """End a call (ringing or live) through the REST API of the account that placed it (the
    tenant's, found from the call's attempt or contact when not given). Raises TwilioCallError."""
    if tenant_id is None:
        owner = await ctx.db.dial_attempts.find_one({"call_sid": call_sid}, {"tenant_id": 1})
        owner = owner or await ctx.db.contacts.find_one({"call_sid": call_sid}, {"tenant_id": 1})
        tenant_id = owner["tenant_id"] if owner is not None else None
    client = await client_for(ctx, tenant_id)
    await _call_twilio(
        f"hanging up {call_sid}", client.calls(call_sid).update_async(status="completed"), TwilioCallError
    )


# ------------------------------------------------------------------------------ webhooks


async def _attempt_for(ctx: AppContext, request: Request, form: dict[str, str]) -> Doc | None:
    """The attempt the webhook names, if the CallSid is (or can become) its call."""
    attempt_id = request.query_params.get("attempt", "")
    call_sid = form.get("CallSid", "")
    if not attempt_id or not call_sid:
        raise HTTPException(400, "attempt and CallSid are required")
    attempt = await ctx.db.dial_attempts.find_one({"_id": attempt_id})
    if attempt is None:
        log.warning("twilio callback for unknown dial attempt %s (call %s)", attempt_id, call_sid)
        return None
    if attempt.get("call_sid") not in (None, call_sid):
        log.warning("twilio callback: call %s is not attempt %s's call", call_sid, attempt_id)
        return None
    require_account_tenant(request, attempt["tenant_id"])
    return attempt


async def _claim(ctx: AppContext, attempt: Doc, key: str, call_sid: str) -> bool:
    """Record `key` on the attempt once; False if it was already there (a repeated callback)."""
    result = await ctx.db.dial_attempts.update_one(
        {"_id": attempt["_id"], "call_events": {"$ne": key}},
        {"$push": {"call_events": key}, "$set": {"call_sid": call_sid}},
    )
    return result.matched_count == 1


async def _set_if_unset(ctx: AppContext, attempt_id: str, field: str, value: Any) -> None:
    await ctx.db.dial_attempts.update_one({"_id": attempt_id, field: None}, {"$set": {field: value}})


def attempt_event(kind: str, attempt: Doc, **extra: Any) -> Doc:
    """The bus event for one change of a dial attempt."""
    return {
        "type": "dial_attempt",
        "event": kind,
        "attempt_id": attempt["_id"],
        "campaign_id": attempt.get("campaign_id"),
        "target_id": attempt.get("target_id"),
        "call_sid": attempt.get("call_sid"),
        "call_status": attempt.get("call_status"),
        "outcome": attempt.get("outcome"),
        "answered_by": attempt.get("answered_by"),
        "contact_id": attempt.get("contact_id"),
        **extra,
    }


async def _announce(ctx: AppContext, hook_name: str, attempt: Doc, event: Doc) -> None:
    """Publish on the bus and run the dialer's hook; a failing hook is logged, not raised
    (Twilio would only see a 500 and the call's state is already stored)."""
    ctx.bus.publish(f"tenant:{attempt['tenant_id']}", event)
    hook: OnCallEvent | None = ctx.extra.get(hook_name)
    if hook is None:
        return
    try:
        await hook(attempt, event)
    except Exception:
        log.exception("%s failed for dial attempt %s", hook_name, attempt["_id"])


@router.post("/status")
async def call_status(request: Request, ctx: AppContext = Depends(get_ctx)) -> dict[str, str]:
    """Twilio's progress callbacks: store each new status on the attempt, once."""
    form = await signed_form(request, ctx)
    attempt = await _attempt_for(ctx, request, form)
    status = form.get("CallStatus", "")
    if attempt is None or not status:
        return {"status": "ignored"}
    call_sid = form["CallSid"]
    if not await _claim(ctx, attempt, f"{call_sid}:{status}", call_sid):
        return {"status": "duplicate"}
    now = utcnow()
    attempt_id = attempt["_id"]
    if status in TERMINAL:
        changes: Doc = {"call_status": status, "ended_at": now}
        if form.get("CallDuration", "").isdigit():
            changes["duration"] = int(form["CallDuration"])
        await ctx.db.dial_attempts.update_one({"_id": attempt_id}, {"$set": changes})
        await _set_if_unset(ctx, attempt_id, "outcome", UNANSWERED.get(status, "answered"))
    else:
        # a late "ringing" must not hide that the call already ended
        await ctx.db.dial_attempts.update_one(
            {"_id": attempt_id, "ended_at": None}, {"$set": {"call_status": status}}
        )
        if status == "in-progress":
            await _set_if_unset(ctx, attempt_id, "answered_at", now)
            await _set_if_unset(ctx, attempt_id, "outcome", "answered")
    current = await ctx.db.dial_attempts.find_one({"_id": attempt_id}) or attempt
    await _announce(ctx, "outbound_on_status", current, attempt_event("status", current, status=status))
    return {"status": "ok"}


def answered_by(result: str) -> str | None:
    """Twilio's AnsweredBy -> dial_attempts.answered_by ("unknown": AMD could not tell)."""
    if result == "human":
        return "human"
    if result in MACHINE_RESULTS:
        return "machine"
    return None


@router.post("/amd")
async def amd_result(request: Request, ctx: AppContext = Depends(get_ctx)) -> dict[str, str]:
    """The asynchronous answering-machine verdict for an answered call."""
    form = await signed_form(request, ctx)
    attempt = await _attempt_for(ctx, request, form)
    result = form.get("AnsweredBy", "")
    if attempt is None or not result:
        return {"status": "ignored"}
    call_sid = form["CallSid"]
    if not await _claim(ctx, attempt, f"{call_sid}:amd", call_sid):
        return {"status": "duplicate"}
    await _store_amd(ctx, attempt["_id"], result, form.get("MachineDetectionDuration", ""))
    current = await ctx.db.dial_attempts.find_one({"_id": attempt["_id"]}) or attempt
    await _announce(ctx, "outbound_on_amd", current, attempt_event("amd", current, amd_result=result))
    return {"status": "ok"}


async def _store_amd(ctx: AppContext, attempt_id: str, result: str, duration_ms: str) -> None:
    changes: Doc = {"amd_result": result, "answered_by": answered_by(result)}
    if duration_ms.isdigit():
        changes["amd_duration_ms"] = int(duration_ms)
    await ctx.db.dial_attempts.update_one({"_id": attempt_id}, {"$set": changes})
    if changes["answered_by"] == "machine":
        await ctx.db.dial_attempts.update_one(
            {"_id": attempt_id, "outcome": {"$in": [None, "answered"]}}, {"$set": {"outcome": "machine"}}
        )


@router.post("/answer")
async def answered(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """The callee picked up: open (once) the outbound contact and connect the media stream."""
    form = await signed_form(request, ctx)
    attempt = await _attempt_for(ctx, request, form)
    if attempt is None:
        response = VoiceResponse()
        response.hangup()
        return twiml(response)
    call_sid = form["CallSid"]
    now = utcnow()
    await ctx.db.dial_attempts.update_one({"_id": attempt["_id"]}, {"$set": {"call_sid": call_sid}})
    await _set_if_unset(ctx, attempt["_id"], "answered_at", now)
    await _set_if_unset(ctx, attempt["_id"], "outcome", "answered")
    if form.get("AnsweredBy"):  # synchronous AMD puts its verdict on this request
        await _store_amd(ctx, attempt["_id"], form["AnsweredBy"], form.get("MachineDetectionDuration", ""))
    contact = await _contact_for(ctx, attempt, form)
    token = issue_token(
        ctx.settings.secret,
        "media",
        contact["_id"],
        attempt["tenant_id"],
        MEDIA_TOKEN_TTL_S,
        call_sid=call_sid,
        attempt=attempt["_id"],
    )
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=media_ws_url(ctx))
    stream.parameter(name="token", value=token)
    response.append(connect)
    return twiml(response)


async def _contact_for(ctx: AppContext, attempt: Doc, form: dict[str, str]) -> Doc:
    """The attempt's contact; a repeated answer webhook finds the one opened before."""
    call_sid = form["CallSid"]
    existing = await ctx.db.contacts.find_one({"call_sid": call_sid, "tenant_id": attempt["tenant_id"]})
    if existing is not None:
        return existing
    to_number = attempt.get("number") or form.get("To", "")
    customer_id = attempt.get("customer_id")
    if customer_id is None:
        with contextlib.suppress(InvalidContactDetail):
            phone = normalise_phone(to_number)
            customer_id = (await find_or_create_customer(ctx, attempt["tenant_id"], phone=phone))["_id"]
    contact = await open_contact(
        ctx,
        attempt["tenant_id"],
        "voice",
        customer_id=customer_id,
        extra={
            "direction": "outbound",
            "campaign_id": attempt.get("campaign_id"),
            "target_id": attempt.get("target_id"),
            "attempt_id": attempt["_id"],
            "call_sid": call_sid,
            "to_number": to_number,
            "from_number": form.get("From") or None,
            "ivr_path": [],
            "call_status": "in-progress",
        },
    )
    await ctx.db.dial_attempts.update_one({"_id": attempt["_id"]}, {"$set": {"contact_id": contact["_id"]}})
    current = await ctx.db.dial_attempts.find_one({"_id": attempt["_id"]}) or attempt
    ctx.bus.publish(f"tenant:{attempt['tenant_id']}", attempt_event("answer", current))
    return contact


# ------------------------------------------------------------------------------ the media stream


async def default_on_answer(contact: Doc, attempt: Doc) -> Doc | None:
    """Without a dialer nothing may talk to the callee: hang up at once."""
    return None


async def run_outbound_stream(
    ctx: AppContext,
    ws: WebSocket,
    contact: Doc,
    attempt_id: str,
    make_transport: Callable[[], BaseTransport],
) -> None:
    """An answered outbound call's media stream (called by channels/twilio/media.py once the
    token checked out): the dialer's hook decides the flow; no flow means hang up."""
    from bot.ivr import FlowError, validate_flow
    from channels.twilio.media import PHONE_RATE

    attempt = await ctx.db.dial_attempts.find_one({"_id": attempt_id, "tenant_id": contact["tenant_id"]})
    if attempt is None:
        await _end_call(ctx, ws, contact, "unknown_attempt")
        return
    hook: OnAnswer = ctx.extra.get("outbound_on_answer") or default_on_answer
    try:
        flow = await hook(contact, attempt)
    except Exception:
        log.exception("outbound_on_answer failed for attempt %s: hanging up", attempt_id)
        flow = None
    if flow is None:
        await _end_call(ctx, ws, contact, "no_outbound_flow")
        return
    try:
        validate_flow(flow)
    except FlowError as exc:
        log.error("attempt %s: the outbound flow is invalid, hanging up: %s", attempt_id, exc)
        await _end_call(ctx, ws, contact, "invalid_flow")
        return
    from media.call import run_call  # the speech stack loads only when a call needs it

    log.info("outbound call %s (attempt %s): stream started", contact["_id"], attempt_id)
    await run_call(ctx, make_transport(), contact, flow, sample_rate=PHONE_RATE)


async def _end_call(ctx: AppContext, ws: WebSocket, contact: Doc, reason: str) -> None:
    """Close the stream and the contact, then hang the call up at Twilio."""
    with contextlib.suppress(Exception):
        await ws.close(1000, "call ended")
    current = await get_contact(ctx, contact["_id"])
    if current is not None and current["status"] == "bot":
        await update_contact(
            ctx,
            contact["_id"],
            {"status": "closed", "closed_at": utcnow(), "note": reason},
            expect={"status": "bot"},
        )
    try:
        await hang_up(ctx, contact["call_sid"], contact["tenant_id"])
    except TwilioCallError as exc:
        log.warning("outbound call %s: %s", contact["_id"], exc)
