"""Outbound SMS: what the bot or an agent writes in an SMS conversation goes out through the outbox.

`on_message` is installed as a message hook (hub/contacts.py calls it after each new message);
its idempotency key is the message id, so a repeat never sends twice. Bodies over Twilio's
1600-character limit become several outbox rows; each stored message records its segment
count. `resend_pending` enqueues, at start-up, replies stored just before a crash whose
outbox row was never written.
"""

from __future__ import annotations

from datetime import timedelta

from channels.sms.segments import count_segments, split_body
from hub import outbox
from hub.contacts import resend_unqueued
from hub.context import AppContext
from hub.db import Doc

OUTGOING_AUTHORS = ("bot", "agent", "system")
RESEND_WINDOW = timedelta(hours=24)


async def send_sms(
    ctx: AppContext,
    *,
    tenant_id: str,
    to: str,
    from_: str,
    body: str,
    key: str,
    contact_id: str | None = None,
    transactional: bool = False,
) -> list[Doc]:
    """Queue an SMS (split when over 1600 characters); one outbox row per part, keyed `key#n`."""
    rows = []
    for index, part in enumerate(split_body(body)):
        info = count_segments(part)
        rows.append(
            await outbox.enqueue(
                ctx,
                tenant_id=tenant_id,
                channel="sms",
                to=to,
                body=part,
                idempotency_key=f"{key}#{index}",
                contact_id=contact_id,
                meta={
                    "from": from_,
                    "segments": info.segments,
                    "encoding": info.encoding,
                    "transactional": transactional,
                },
            )
        )
    return rows


async def on_message(ctx: AppContext, contact: Doc, message: Doc) -> None:
    """A new message in a contact: an SMS contact's bot / agent message is sent to the customer."""
    if contact.get("channel") != "sms" or message.get("author") not in OUTGOING_AUTHORS:
        return
    if not contact.get("customer_number") or not contact.get("sms_number"):
        return
    if (message.get("data") or {}).get("outbox_key"):
        return  # queued by whoever wrote it (a campaign text, routing/dialer.py)
    await send_sms(
        ctx,
        tenant_id=contact["tenant_id"],
        to=contact["customer_number"],
        from_=contact["sms_number"],
        body=message["text"],
        key=f"msg:{message['_id']}",
        contact_id=contact["_id"],
    )
    info = count_segments(message["text"])  # written after the enqueue: resend_pending looks for it
    await ctx.db.messages.update_one(
        {"_id": message["_id"]}, {"$set": {"segments": info.segments, "encoding": info.encoding}}
    )


async def resend_pending(ctx: AppContext) -> int:
    """Enqueue outgoing messages of open sms contacts that have no outbox row (crash window)."""
    return await resend_unqueued(ctx, "sms", OUTGOING_AUTHORS, "segments", on_message, RESEND_WINDOW)
