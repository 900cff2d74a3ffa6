"""Twilio Messaging webhooks: inbound SMS (`POST /twilio/sms`) and status callbacks.

Both must carry a valid X-Twilio-Signature (403 otherwise; a malformed body is 400).
A tenant owns an SMS number by listing it in its `sms_numbers` field, or by having an IVR
flow on that number (one number serves voice and SMS); a message to a number nobody owns is
answered with an empty TwiML and logged. Messages are threaded by the customer's number into
the open "sms" contact of that tenant (a new one when none is open), stored before the bot or
an agent hears of them; Twilio's MessageSid is the client id, so Twilio's retries store once.
Replies never go in the TwiML: every outbound SMS goes through the outbox (`channels.sms.relay`).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from bot import csat
from channels.sms import relay
from channels.sms.keywords import HELP_TEXT, START_TEXT, keyword_of, set_opt_out
from channels.sms.segments import count_segments
from channels.twilio.voice import require_account_tenant, signed_form
from hub import outbox
from hub.contacts import OPEN_STATUSES, append_message, open_contact
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.numbers import sms_tenant_of
from knowledge.customers import InvalidContactDetail, find_or_create_customer, normalise_phone

log = logging.getLogger(__name__)
router = APIRouter(prefix="/twilio/sms", include_in_schema=False)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_INBOUND_CHARS = 1600


def empty_twiml() -> Response:
    return Response(EMPTY_TWIML, media_type="application/xml")


async def tenant_of_number(ctx: AppContext, number: str) -> str | None:
    """The tenant owning this SMS number (the number inventory, its `sms_numbers`, else an IVR
    flow's number)."""
    held = await sms_tenant_of(ctx, number)
    if held is not None:
        return held
    tenant = await ctx.db.tenants.find_one({"sms_numbers": number}, {"_id": 1})
    if tenant is not None:
        return str(tenant["_id"])
    flow = await ctx.db.ivr_flows.find_one({"number": number}, {"tenant_id": 1})
    return str(flow["tenant_id"]) if flow is not None else None


async def thread_contact(ctx: AppContext, tenant_id: str, customer: Doc, number: str, our_number: str) -> Doc:
    """The customer's open SMS conversation, or a new one."""
    contact = await ctx.db.contacts.find_one(
        {
            "tenant_id": tenant_id,
            "channel": "sms",
            "customer_number": number,
            "status": {"$in": list(OPEN_STATUSES)},
        },
        sort=[("opened_at", -1)],
    )
    if contact is not None:
        return contact
    return await open_contact(
        ctx,
        tenant_id,
        "sms",
        customer_id=customer["_id"],
        extra={"customer_number": number, "sms_number": our_number, "direction": "inbound"},
    )


@router.post("")
async def inbound_sms(request: Request, ctx: AppContext = Depends(get_ctx)) -> Response:
    form = await signed_form(request, ctx)
    sid, sender, to = form.get("MessageSid", ""), form.get("From", ""), form.get("To", "")
    body = form.get("Body")
    if not sid or not sender or not to or body is None:
        raise HTTPException(400, "MessageSid, From, To and Body are required")
    tenant_id = await tenant_of_number(ctx, to)
    if tenant_id is None:
        log.warning("SMS %s to unknown number %s from %s: ignored", sid, to, sender)
        return empty_twiml()
    require_account_tenant(request, tenant_id)
    try:
        number = normalise_phone(sender)
    except InvalidContactDetail:
        log.warning("SMS %s from an invalid number %r: ignored", sid, sender)
        return empty_twiml()
    customer = await find_or_create_customer(ctx, tenant_id, phone=number)
    text = body.strip()[:MAX_INBOUND_CHARS]
    keyword = keyword_of(text)
    if keyword == "start" and not customer.get("sms_opt_out"):
        keyword = None  # "yes" from someone who never opted out is an answer (a survey), not START
    if keyword is not None:
        await _keyword(ctx, tenant_id, customer, number, to, keyword, sid)
        return empty_twiml()
    if not text:
        return empty_twiml()
    info = count_segments(text)
    data = {"segments": info.segments, "encoding": info.encoding, "message_sid": sid}
    survey = {"channel": "sms", "customer_number": number}
    answer = await csat.take_answer(
        ctx, tenant_id, survey, text, client_id=sid, author_id=customer["_id"], data=data
    )
    if answer is not None:
        return empty_twiml()  # a 1-5 answer to the survey after an agent closed the last conversation
    contact = await thread_contact(ctx, tenant_id, customer, number, to)
    with_bot = contact["status"] == "bot"
    _, created = await append_message(
        ctx,
        contact,
        "visitor",
        text,
        client_id=sid,
        author_id=customer["_id"],
        bot_state="pending" if with_bot else None,
        data=data,
    )
    if created and with_bot:
        ctx.require_bot().schedule(contact["_id"])
    return empty_twiml()


async def _keyword(
    ctx: AppContext, tenant_id: str, customer: Doc, number: str, our_number: str, keyword: str, sid: str
) -> None:
    """Honour STOP / START / HELP; answered (START, HELP) through the outbox, never by the bot."""
    if keyword in ("stop", "start"):
        await set_opt_out(ctx, tenant_id, customer["_id"], number, keyword == "stop")
        log.info("SMS %s: %s from %s for tenant %s", sid, keyword.upper(), number, tenant_id)
    answer = {"start": START_TEXT, "help": HELP_TEXT}.get(keyword)
    if answer:
        await relay.send_sms(
            ctx,
            tenant_id=tenant_id,
            to=number,
            from_=our_number,
            body=answer,
            key=f"sms-keyword:{sid}",
            transactional=True,
        )


@router.post("/status")
async def sms_status(request: Request, ctx: AppContext = Depends(get_ctx)) -> dict[str, str]:
    """Twilio's status callback for an outbound message (queued/sent/delivered/undelivered/failed)."""
    form = await signed_form(request, ctx)
    sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
    if not sid or not status:
        raise HTTPException(400, "MessageSid and MessageStatus are required")
    if getattr(request.state, "twilio_tenant_id", None) is not None:
        sent = await ctx.db.outbox.find_one({"provider_id": sid, "channel": "sms"}, {"tenant_id": 1})
        outbox_id = request.query_params.get("outbox", "")
        if sent is None and outbox_id:
            sent = await ctx.db.outbox.find_one({"_id": outbox_id, "channel": "sms"}, {"tenant_id": 1})
        if sent is not None:
            require_account_tenant(request, sent["tenant_id"])
    row = await outbox.update_status(ctx, sid, status, form.get("ErrorCode") or None)
    if row is None:
        outbox_id = request.query_params.get("outbox", "")
        # the callback may beat our own write of the sid (or follow a crash before it)
        found = await ctx.db.outbox.find_one({"_id": outbox_id, "channel": "sms"}) if outbox_id else None
        if found is None:
            raise HTTPException(404, "unknown message")
        await ctx.db.outbox.update_one(
            {"_id": outbox_id, "provider_id": None}, {"$set": {"provider_id": sid, "provider_status": status}}
        )
    return {"status": "ok"}
