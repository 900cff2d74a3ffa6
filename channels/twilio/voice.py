"""Twilio Programmable Voice: the incoming-call webhook, status callbacks, Media Streams.

Every webhook must carry a valid `X-Twilio-Signature` (HMAC-SHA1 of the public URL
and the form parameters with the account's auth token); anything else gets 403.
The media websocket cannot carry that signature, so the TwiML we answer passes a
short-lived signed token as a <Stream> parameter, checked on the `start` message.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

from channels.twilio import accounts
from hub.auth import issue_token
from hub.contacts import open_contact, update_contact
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import utcnow
from hub.secretbox import SecretUnreadable
from knowledge.customers import InvalidContactDetail, find_or_create_customer, normalise_phone

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio", include_in_schema=False)
MEDIA_TOKEN_TTL_S = 300
TWIML = "application/xml"


def public_url(ctx: AppContext, request: Request) -> str:
    """The URL Twilio signed: our public base URL plus the path and query it called."""
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{ctx.settings.public_url}{request.url.path}{query}"


async def signed_form(request: Request, ctx: AppContext) -> dict[str, str]:
    """The webhook's form parameters, only if Twilio signed them (else 403).

    A form whose AccountSid is a tenant's own account (channels.twilio.accounts) is checked
    with that account's token, and the request remembers the tenant: the handler must then
    call `require_account_tenant` with the tenant the request concerns. Any other form is
    checked with the hub's TWILIO_AUTH_TOKEN."""
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        raise HTTPException(403, "missing X-Twilio-Signature")
    try:
        form = {k: str(v) for k, v in (await request.form()).items()}
    except Exception as exc:  # malformed bodies are rejected, not crashed on
        raise HTTPException(400, "malformed form body") from exc
    try:
        account = await accounts.account_by_sid(ctx, form.get("AccountSid", ""))
    except SecretUnreadable as exc:
        log.error("twilio webhook for account %s: %s", form.get("AccountSid"), exc)
        raise HTTPException(403, "this account's auth token cannot be read") from exc
    token = account.auth_token if account is not None else ctx.settings.twilio_auth_token
    if not token:
        log.error("TWILIO_AUTH_TOKEN is not set: refusing Twilio webhooks")
        raise HTTPException(403, "twilio webhooks are not configured")
    if not RequestValidator(token).validate(public_url(ctx, request), form, signature):
        raise HTTPException(403, "invalid X-Twilio-Signature")
    request.state.twilio_tenant_id = account.tenant_id if account is not None else None
    return form


def require_account_tenant(request: Request, tenant_id: str | None) -> None:
    """403 when the webhook was signed by one tenant's own account but concerns another tenant
    (the hub's own account may speak for every tenant)."""
    signer = getattr(request.state, "twilio_tenant_id", None)
    if signer is not None and signer != tenant_id:
        log.warning("twilio webhook signed by tenant %s's account concerns tenant %s", signer, tenant_id)
        raise HTTPException(403, "signed by another tenant's Twilio account")


def twiml(response: VoiceResponse) -> Response:
    return Response(str(response), media_type=TWIML)


def say_and_hang_up(text: str) -> Response:
    response = VoiceResponse()
    response.say(text)
    response.hangup()
    return twiml(response)


def media_ws_url(ctx: AppContext) -> str:
    base = ctx.settings.public_url
    scheme = "wss" if base.startswith("https") else "ws"
    return f"{scheme}://{base.split('://', 1)[1]}/twilio/media"


@router.post("/voice")
async def incoming_call(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    """A call arrives: find the dialled number's flow, open a contact, connect the stream."""
    form = await signed_form(request, ctx)
    call_sid = form.get("CallSid", "")
    dialled = form.get("To", "")
    if not call_sid or not dialled:
        raise HTTPException(400, "CallSid and To are required")
    flow = await ctx.db.ivr_flows.find_one({"number": dialled})
    if flow is None:
        log.warning("call %s to unknown number %s", call_sid, dialled)
        return say_and_hang_up("Sorry, this number is not in service.")
    require_account_tenant(request, flow["tenant_id"])
    existing = await ctx.db.contacts.find_one({"call_sid": call_sid})
    contact = existing or await _open_call(ctx, flow, form)
    token = issue_token(
        ctx.settings.secret, "media", contact["_id"], flow["tenant_id"], MEDIA_TOKEN_TTL_S, call_sid=call_sid
    )
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=media_ws_url(ctx), status_callback=f"{ctx.settings.public_url}/twilio/status")
    stream.parameter(name="token", value=token)
    response.append(connect)
    return twiml(response)


async def _open_call(ctx: AppContext, flow: Doc, form: dict[str, str]) -> Doc:
    caller = form.get("From", "")
    customer_id = None
    try:
        phone = normalise_phone(caller)
        customer = await find_or_create_customer(ctx, flow["tenant_id"], phone=phone)
        customer_id = customer["_id"]
    except InvalidContactDetail:
        phone = None  # withheld or malformed caller id: the call goes on anonymously
    return await open_contact(
        ctx,
        flow["tenant_id"],
        "voice",
        customer_id=customer_id,
        extra={
            "call_sid": form["CallSid"],
            "from_number": phone or caller or None,
            "to_number": form["To"],
            "flow_id": flow["_id"],
            "ivr_path": [],
            "call_status": form.get("CallStatus", "ringing"),
        },
    )


@router.post("/status")
async def call_status(request: Request, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    """Status callbacks: a completed call closes a contact no agent holds."""
    form = await signed_form(request, ctx)
    call_sid = form.get("CallSid", "")
    status = form.get("CallStatus") or form.get("StreamEvent") or ""
    contact = await ctx.db.contacts.find_one({"call_sid": call_sid}) if call_sid else None
    if contact is None:
        return {"status": "ignored"}
    require_account_tenant(request, contact["tenant_id"])
    changes: Doc = {"call_status": status}
    if form.get("CallDuration", "").isdigit():
        changes["call_duration_s"] = int(form["CallDuration"])
    final = status in ("completed", "busy", "failed", "no-answer", "canceled")
    if final and not contact.get("call_ended_at"):
        changes["call_ended_at"] = utcnow()  # with Twilio's duration: billing/rater.py rates it
    await update_contact(ctx, contact["_id"], changes)
    if final:
        await close_call(ctx, contact["_id"], f"caller_{status}")
    return {"status": "ok"}


async def mark_call_ended(ctx: AppContext, contact_id: str) -> None:
    """Stamp the end of the call on the contact that holds its call sid, unless Twilio's
    status callback did first: inbound calls are billed from it (billing/rater.py)."""
    await ctx.db.contacts.update_one(
        {"_id": contact_id, "call_ended_at": None}, {"$set": {"call_ended_at": utcnow()}}
    )


async def close_call(ctx: AppContext, contact_id: str, reason: str) -> None:
    """The caller is gone: close the contact unless an agent is already working on it."""
    await ctx.require_router().abandon(contact_id, reason)
