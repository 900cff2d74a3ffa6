"""Outbound email: bot and agent messages in an email contact leave through the outbox.

`on_message` is a message hook (hub/contacts.py calls it after each new message). The outbox
key is the message id, the Message-ID is derived from it, and In-Reply-To / References point
at the customer's last mail so the reply lands in the customer's thread. `resend_pending`
enqueues, at start-up, replies stored just before a crash whose outbox row was never written.
"""

from __future__ import annotations

from datetime import timedelta

from channels.email.compose import message_id_for, reply_subject
from channels.email.config import address_of
from hub import outbox
from hub.contacts import resend_unqueued
from hub.context import AppContext
from hub.db import Doc

OUTGOING_AUTHORS = ("bot", "agent")  # "Ann joined" system lines are chat noise in a mailbox
RESEND_WINDOW = timedelta(hours=24)
MAX_REFERENCES = 20


async def send_email(
    ctx: AppContext,
    *,
    tenant_id: str,
    from_: str,
    to: str,
    subject: str,
    body: str,
    key: str,
    contact_id: str | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    html: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[Doc] | None = None,
) -> Doc:
    """Queue one mail (once per `key`); returns the outbox row. Its Message-ID comes from `key`.
    `attachments`: `{filename, content_type, data}` each, kept in the row (small files only,
    such as a report)."""
    refs = list(references or [])
    if in_reply_to and in_reply_to not in refs:
        refs.append(in_reply_to)
    return await outbox.enqueue(
        ctx,
        tenant_id=tenant_id,
        channel="email",
        to=to,
        body=body,
        idempotency_key=key,
        contact_id=contact_id,
        meta={
            "from": from_,
            "subject": subject,
            "message_id": message_id_for(key.replace(":", "."), from_),
            "in_reply_to": in_reply_to,
            "references": refs[-MAX_REFERENCES:],
            "html": html,
            "headers": headers or {},
            "attachments": attachments or [],
        },
    )


async def send_report_mail(
    ctx: AppContext,
    *,
    tenant_id: str,
    to: str,
    subject: str,
    body: str,
    key: str,
    attachments: list[Doc],
) -> Doc | None:
    """A scheduled report from the tenant's own address (reports/schedule.py `Mailer`);
    None when the tenant has no address."""
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"email": 1})
    ours = address_of(tenant or {})
    if ours is None:
        return None
    return await send_email(
        ctx,
        tenant_id=tenant_id,
        from_=ours,
        to=to,
        subject=subject,
        body=body,
        key=key,
        attachments=attachments,
    )


async def on_message(ctx: AppContext, contact: Doc, message: Doc) -> None:
    """A bot / agent message in an email contact is mailed to the customer, threaded."""
    if contact.get("channel") != "email" or message.get("author") not in OUTGOING_AUTHORS:
        return
    if (message.get("data") or {}).get("outbox_key"):
        return  # queued by whoever wrote it (a campaign mail, channels/email/campaign.py)
    if not contact.get("customer_email"):
        return
    tenant = await ctx.db.tenants.find_one({"_id": contact["tenant_id"]}, {"email": 1})
    ours = address_of(tenant or {})
    if ours is None:
        return
    fresh = await ctx.db.contacts.find_one({"_id": contact["_id"]}) or contact  # latest thread ids
    row = await send_email(
        ctx,
        tenant_id=contact["tenant_id"],
        from_=ours,
        to=fresh["customer_email"],
        subject=reply_subject(fresh.get("email_subject")),
        body=message["text"],
        key=f"msg:{message['_id']}",
        contact_id=contact["_id"],
        in_reply_to=fresh.get("email_last_message_id"),
        references=fresh.get("email_references") or [],
    )
    # written after the enqueue: resend_pending looks for messages without it
    await ctx.db.messages.update_one(
        {"_id": message["_id"]}, {"$set": {"email_message_id": row["meta"]["message_id"]}}
    )


async def resend_pending(ctx: AppContext) -> int:
    """Enqueue outgoing messages of open email contacts that have no outbox row (crash window)."""
    return await resend_unqueued(
        ctx, "email", OUTGOING_AUTHORS, "email_message_id", on_message, RESEND_WINDOW
    )
