"""The agent desk's view of an email contact: each mail with its headers, body and attachments.

Why a view of its own: the chat transcript shows a message as one bubble, but an agent answering
mail needs the subject, who wrote to whom and when, what the customer quoted (collapsed), the
HTML part (rendered by the desk in a sandboxed iframe), the attachments with their size and a
download link, and whether our replies left the outbox.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

from channels.email.compose import reply_subject
from channels.email.config import address_of
from channels.email.parse import quote_blocks
from channels.email.relay import OUTGOING_AUTHORS
from hub.contacts import messages_after
from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso


def header_date(value: str | None) -> str | None:
    """A Date header as ISO-8601, or None when missing or unreadable."""
    if not value:
        return None
    try:
        return iso(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None


def _attachment(item: Doc) -> dict[str, Any]:
    return {
        "id": item["id"],
        "filename": item.get("filename") or "attachment",
        "content_type": item.get("content_type") or "application/octet-stream",
        "size": int(item.get("size") or 0),
        "url": f"/api/attachments/{item['id']}",
    }


def _blocks(text: str) -> list[dict[str, Any]]:
    return [{"quoted": quoted, "text": body} for quoted, body in quote_blocks(text)]


def _inbound(message: Doc, ours: str, customer: str) -> dict[str, Any]:
    data = message.get("data") or {}
    return {
        "direction": "in",
        "from": data.get("from") or customer,
        "from_name": message.get("author_name"),
        "to": list(data.get("to") or [ours]),
        "subject": data.get("subject") or "",
        "date": header_date(data.get("date")) or iso(message["created_at"]),
        "blocks": _blocks(message["text"]),
        "html": data.get("html"),
        "attachments": [_attachment(a) for a in data.get("attachments") or []],
        "refused_attachments": list(data.get("refused_attachments") or []),
        "note": data.get("note"),
    }


def _outbound(message: Doc, row: Doc | None, ours: str, customer: str, subject: str) -> dict[str, Any]:
    meta = (row or {}).get("meta") or {}
    return {
        "direction": "out",
        "from": meta.get("from") or ours,
        "from_name": message.get("author_name"),
        "to": [(row or {}).get("to") or customer],
        "subject": meta.get("subject") or subject,
        "date": iso(message["created_at"]),
        "blocks": _blocks(message["text"]),
        "html": None,  # we send the text part and an HTML copy built from it
        "attachments": [],
        "refused_attachments": [],
        "note": None,
        "delivery": (row or {}).get("state", "pending"),
        "error": (row or {}).get("error") if (row or {}).get("state") == "failed" else None,
    }


async def _previous(ctx: AppContext, contact: Doc) -> dict[str, Any] | None:
    previous_id = contact.get("previous_contact_id")
    if not previous_id:
        return None
    found = await ctx.db.contacts.find_one({"_id": previous_id, "tenant_id": contact["tenant_id"]})
    if found is None:
        return None
    return {
        "id": found["_id"],
        "subject": found.get("email_subject"),
        "opened_at": iso(found.get("opened_at")),
        "closed_at": iso(found.get("closed_at")),
        "agent_name": found.get("agent_name"),
        "disposition": found.get("disposition"),
    }


async def thread_view(ctx: AppContext, contact: Doc) -> dict[str, Any]:
    """Every mail of an email contact, oldest first (system lines as notes between them)."""
    tenant = await ctx.db.tenants.find_one({"_id": contact["tenant_id"]}, {"email": 1})
    ours = contact.get("email_address") or address_of(tenant or {}) or ""
    customer = contact.get("customer_email") or ""
    subject = reply_subject(contact.get("email_subject"))
    messages = await messages_after(ctx, contact["_id"])
    keys = [f"msg:{m['_id']}" for m in messages if m["author"] in OUTGOING_AUTHORS]
    rows: dict[str, Doc] = {}
    if keys:
        cursor = ctx.db.outbox.find({"tenant_id": contact["tenant_id"], "idempotency_key": {"$in": keys}})
        rows = {row["idempotency_key"]: row async for row in cursor}
    mails: list[dict[str, Any]] = []
    for message in messages:
        base = {"id": message["_id"], "seq": message["seq"], "author": message["author"]}
        if message["author"] == "visitor":
            mails.append({**base, **_inbound(message, ours, customer)})
        elif message["author"] in OUTGOING_AUTHORS:
            row = rows.get(f"msg:{message['_id']}")
            mails.append({**base, **_outbound(message, row, ours, customer, subject)})
        else:
            mails.append(
                {**base, "direction": "system", "text": message["text"], "date": iso(message["created_at"])}
            )
    return {
        "contact_id": contact["_id"],
        "subject": contact.get("email_subject") or "",
        "reply_subject": subject,
        "our_address": ours,
        "customer_address": customer,
        "previous_contact": await _previous(ctx, contact),
        "mails": mails,
    }
