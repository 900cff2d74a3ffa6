"""Contacts and their transcript: the one concept every channel turns into.

A message is stored before anyone is told about it. Each gets a per-contact
sequence number (from an atomic $inc on the contact) so a reconnecting client can
ask for "everything after seq N"; a client-supplied id makes resends idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from hub.context import AppContext
from hub.db import Doc, update_then_read
from hub.ids import iso, new_id, utcnow

STATUSES = ("bot", "queued", "offered", "assigned", "wrapup", "closed")
OPEN_STATUSES = ("bot", "queued", "offered", "assigned", "wrapup")
AUTHORS = ("visitor", "bot", "agent", "system")


async def open_contact(
    ctx: AppContext,
    tenant_id: str,
    channel: str,
    *,
    visitor_id: str | None = None,
    customer_id: str | None = None,
    extra: Doc | None = None,
) -> Doc:
    """A new contact with the bot; `extra` holds channel data (e.g. a call's sid and numbers)."""
    now = utcnow()
    contact: Doc = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "channel": channel,
        "status": "bot",
        "visitor_id": visitor_id,
        "customer_id": customer_id,
        "next_seq": 0,
        "opened_at": now,
        "updated_at": now,
        "closed_at": None,
        "skill": None,
        "reason": None,
        "intent": None,
        "agent_id": None,
        "agent_name": None,
        "offer": None,
        "declines": [],
        "queued_at": None,
        "disposition": None,
        "note": None,
        **(extra or {}),
    }
    await ctx.db.contacts.insert_one(contact)
    return contact


async def get_contact(ctx: AppContext, contact_id: str, tenant_id: str | None = None) -> Doc | None:
    query: Doc = {"_id": contact_id}
    if tenant_id is not None:
        query["tenant_id"] = tenant_id
    return await ctx.db.contacts.find_one(query)


async def append_message(
    ctx: AppContext,
    contact: Doc,
    author: str,
    text: str,
    *,
    client_id: str | None = None,
    author_id: str | None = None,
    author_name: str | None = None,
    bot_state: str | None = None,
    data: Doc | None = None,
) -> tuple[Doc, bool]:
    """Store a message; returns (message, created). A repeated client_id returns the original."""
    assert author in AUTHORS
    contact_id = contact["_id"]
    message_id = new_id()
    dedupe_key = f"c:{client_id}" if client_id else f"m:{message_id}"
    if client_id:
        existing = await ctx.db.messages.find_one({"contact_id": contact_id, "dedupe_key": dedupe_key})
        if existing is not None:
            return existing, False
    updated = await ctx.db.contacts.find_one_and_update(
        {"_id": contact_id},
        {"$inc": {"next_seq": 1}, "$set": {"updated_at": utcnow()}},
        return_document=ReturnDocument.AFTER,
        projection={"next_seq": 1},
    )
    if updated is None:
        raise LookupError(f"contact {contact_id} not found")
    message: Doc = {
        "_id": message_id,
        "tenant_id": contact["tenant_id"],
        "contact_id": contact_id,
        "seq": updated["next_seq"],
        "dedupe_key": dedupe_key,
        "client_id": client_id,
        "author": author,
        "author_id": author_id,
        "author_name": author_name,
        "text": text,
        "data": data,
        "created_at": utcnow(),
    }
    if bot_state is not None:
        message["bot_state"] = bot_state
    try:
        await ctx.db.messages.insert_one(message)
    except DuplicateKeyError:
        # A concurrent resend of the same client_id won the race: theirs is the message.
        existing = await ctx.db.messages.find_one({"contact_id": contact_id, "dedupe_key": dedupe_key})
        if existing is None:
            raise
        return existing, False
    ctx.bus.publish(f"contact:{contact_id}", {"type": "message", "message": public_message(message)})
    for hook in ctx.extra.get("message_hooks", ()):  # e.g. channels/sms/relay.py sends SMS replies
        await hook(ctx, contact, message)
    return message, True


async def messages_after(
    ctx: AppContext, contact_id: str, after_seq: int = 0, limit: int = 1000
) -> list[Doc]:
    cursor = ctx.db.messages.find({"contact_id": contact_id, "seq": {"$gt": after_seq}}).sort("seq", 1)
    return [m async for m in cursor.limit(limit)]


async def update_contact(
    ctx: AppContext,
    contact_id: str,
    changes: Doc,
    *,
    expect: Doc | None = None,
    extra_update: Doc | None = None,
) -> Doc | None:
    """Conditional update (`expect` guards state transitions); publishes the new state."""
    query: Doc = {"_id": contact_id, **(expect or {})}
    update: Doc = {"$set": {**changes, "updated_at": utcnow()}, **(extra_update or {})}
    contact = await update_then_read(ctx.db.contacts, query, update)
    if contact is not None:
        publish_contact(ctx, contact)
    return contact


def publish_contact(ctx: AppContext, contact: Doc) -> None:
    event = {"type": "contact", "contact": public_contact(contact)}
    ctx.bus.publish(f"contact:{contact['_id']}", event)
    ctx.bus.publish(f"tenant:{contact['tenant_id']}", event)
    if contact.get("agent_id"):
        ctx.bus.publish(f"user:{contact['agent_id']}", event)


def public_message(message: Doc) -> dict[str, Any]:
    out = {
        "id": message["_id"],
        "seq": message["seq"],
        "contact_id": message["contact_id"],
        "author": message["author"],
        "author_name": message.get("author_name"),
        "text": message["text"],
        "client_id": message.get("client_id"),
        "created_at": iso(message["created_at"]),
    }
    buttons = (message.get("data") or {}).get("buttons")
    if buttons:  # quick replies of a bot message (e.g. "Did that help?"), shown by the widget
        out["buttons"] = buttons
    return out


def public_contact(contact: Doc) -> dict[str, Any]:
    return {
        "id": contact["_id"],
        "channel": contact["channel"],
        "status": contact["status"],
        "skill": contact.get("skill"),
        "reason": contact.get("reason"),
        "intent": contact.get("intent"),
        "customer_id": contact.get("customer_id"),
        "agent_id": contact.get("agent_id"),
        "agent_name": contact.get("agent_name"),
        "opened_at": iso(contact.get("opened_at")),
        "closed_at": iso(contact.get("closed_at")),
        "disposition": contact.get("disposition"),
        "note": contact.get("note"),
        "previous_contact_id": contact.get("previous_contact_id"),  # a follow-up of a closed contact
    }


async def resend_unqueued(
    ctx: AppContext,
    channel: str,
    authors: Sequence[str],
    queued_marker: str,
    send: Callable[[AppContext, Doc, Doc], Awaitable[None]],
    window: timedelta = timedelta(hours=24),
) -> int:
    """At start-up: replies in open `channel` contacts stored just before a crash, before their
    channel relay wrote `queued_marker` (its proof of an outbox row), go to `send` again (the
    outbox key makes a repeat harmless). Messages queued by their writer (`data.outbox_key`)
    are left alone."""
    count = 0
    since = utcnow() - window
    contacts = ctx.db.contacts.find({"channel": channel, "status": {"$in": list(OPEN_STATUSES)}})
    async for contact in contacts:
        messages = ctx.db.messages.find(
            {
                "contact_id": contact["_id"],
                "author": {"$in": list(authors)},
                "created_at": {"$gte": since},
                queued_marker: None,
                "data.outbox_key": None,
            }
        )
        async for message in messages:
            await send(ctx, contact, message)
            count += 1
    return count
