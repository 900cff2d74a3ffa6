"""Inbound mail -> contact: threading, attachments, bounces and the FAQ bot.

One path for every way mail arrives (the SMTP receiver, IMAP). A mail is threaded into the
contact of the message it answers (In-Reply-To, then References, over our own and the
customer's Message-IDs), else into the sender's open email contact, else a new one; a reply
into a closed contact opens a new one linked to it (`previous_contact_id`). The mail is
stored before the bot or an agent hears of it; a repeated Message-ID is stored once. The bot
answers when the knowledge base covers the question (the same confidence the chat
bot uses, `knowledge.search.confident`), otherwise the contact goes to the router.
"""

from __future__ import annotations

import hashlib
import logging

from bot import faq_answers
from channels.email import attachments
from channels.email.compose import reply_subject
from channels.email.config import address_of, tenant_of_address
from channels.email.parse import ParsedMail, parse, strip_quoted
from channels.email.relay import send_email
from hub.contacts import OPEN_STATUSES, append_message, open_contact
from hub.context import AppContext
from hub.db import Doc
from knowledge import usage
from knowledge.customers import InvalidContactDetail, find_or_create_customer, normalise_email
from knowledge.search import confident, search
from routing.assignment import skill_for_intent

log = logging.getLogger(__name__)
PENDING = "email_pending"  # not "pending": that state belongs to the Rasa turns of chat and SMS
MAX_REFERENCES = 20


def bounce_text(refused: list[attachments.Refused]) -> str:
    lines = [
        "We received your message, but we could not keep the following attachment(s):",
        *(f"- {r.filename} ({r.size / 1_048_576:.1f} MB): {r.reason}" for r in refused),
        "",
        "Attachments are limited to 10 MB each and 25 MB per message. Your message itself has "
        "reached us; please send large files another way or in smaller parts.",
    ]
    return "\n".join(lines)


async def _tenant_for(ctx: AppContext, mail: ParsedMail, recipients: list[str]) -> Doc | None:
    for address in [*recipients, *mail.recipients]:
        tenant = await tenant_of_address(ctx, address)
        if tenant is not None:
            return tenant
    return None


async def _thread(ctx: AppContext, tenant_id: str, mail: ParsedMail, customer: Doc, ours: str) -> Doc:
    """The contact this mail belongs to. A reply into a closed contact opens a new one linked to
    it (`previous_contact_id`): the closed contact keeps its wrap-up, and the follow-up is routed
    and shown with the earlier thread in the customer's timeline."""
    previous: Doc | None = None
    ids = mail.thread_ids()
    if ids:
        earlier = await ctx.db.messages.find_one(
            {
                "tenant_id": tenant_id,
                "$or": [{"data.message_id": {"$in": ids}}, {"email_message_id": {"$in": ids}}],
            },
            sort=[("created_at", -1)],
        )
        if earlier is not None:
            contact = await ctx.db.contacts.find_one({"_id": earlier["contact_id"], "tenant_id": tenant_id})
            if contact is not None and contact["status"] in OPEN_STATUSES:
                return contact
            if contact is not None:
                previous = contact
                follow_up = await ctx.db.contacts.find_one(
                    {
                        "tenant_id": tenant_id,
                        "previous_contact_id": contact["_id"],
                        "status": {"$in": list(OPEN_STATUSES)},
                    },
                    sort=[("opened_at", -1)],
                )
                if follow_up is not None:  # a second reply into the same closed thread
                    return follow_up
    if previous is None:
        contact = await ctx.db.contacts.find_one(
            {
                "tenant_id": tenant_id,
                "channel": "email",
                "customer_email": mail.sender,
                "status": {"$in": list(OPEN_STATUSES)},
            },
            sort=[("opened_at", -1)],
        )
        if contact is not None:
            return contact
    return await open_contact(
        ctx,
        tenant_id,
        "email",
        customer_id=customer["_id"],
        extra={
            "customer_email": mail.sender,
            "email_address": ours,
            "email_subject": mail.subject or None,
            "direction": "inbound",
            "previous_contact_id": previous["_id"] if previous is not None else None,
            # the follow-up answers in the customer's thread from its first reply on
            "email_references": list((previous or {}).get("email_references") or [])[-MAX_REFERENCES:],
        },
    )


async def receive(ctx: AppContext, raw: bytes, recipients: list[str] | None = None) -> Doc | None:
    """Store one inbound mail; returns the stored message, or None when nobody here owns it."""
    mail = parse(raw)
    tenant = await _tenant_for(ctx, mail, recipients or [])
    if tenant is None:
        log.warning("mail from %s to %s: no tenant has that address", mail.sender, recipients)
        return None
    tenant_id, ours = str(tenant["_id"]), address_of(tenant) or ""
    try:
        sender = normalise_email(mail.sender)
    except InvalidContactDetail:
        log.warning("mail for tenant %s with no usable sender (%r): ignored", tenant_id, mail.sender)
        return None
    mail.sender = sender
    client_id = mail.message_id or "sha:" + hashlib.sha256(raw).hexdigest()
    seen = await ctx.db.messages.find_one({"tenant_id": tenant_id, "data.message_id": client_id})
    if seen is not None:
        return seen  # a redelivery (IMAP re-fetch, SMTP retry)
    customer = await find_or_create_customer(ctx, tenant_id, email=sender, name=mail.sender_name)
    contact = await _thread(ctx, tenant_id, mail, customer, ours)
    kept, refused = attachments.within_limits(mail.attachments)
    stored = [await attachments.store(ctx, tenant_id, contact["_id"], item) for item in kept]
    with_bot = contact["status"] == "bot"
    message, created = await append_message(
        ctx,
        contact,
        "visitor",
        mail.text or mail.subject or "(empty mail)",
        client_id=client_id,
        author_id=customer["_id"],
        author_name=mail.sender_name,
        bot_state=PENDING if with_bot else None,
        data={
            "message_id": client_id,
            "subject": mail.subject,
            "from": mail.sender,
            "to": mail.recipients,
            "date": mail.date,
            "html": mail.html,
            "attachments": stored,
            "refused_attachments": [r.__dict__ for r in refused],
            "note": mail.note,
        },
    )
    references = [*(contact.get("email_references") or []), *(mail.references or [])]
    if mail.message_id:
        references.append(mail.message_id)
    await ctx.db.contacts.update_one(
        {"_id": contact["_id"]},
        {
            "$set": {
                "email_last_message_id": mail.message_id,
                "email_references": list(dict.fromkeys(references))[-MAX_REFERENCES:],
            }
        },
    )
    if refused and created:
        await send_email(
            ctx,
            tenant_id=tenant_id,
            from_=ours,
            to=sender,
            subject=reply_subject(mail.subject),
            body=bounce_text(refused),
            key=f"bounce:{message['_id']}",
            contact_id=contact["_id"],
            in_reply_to=mail.message_id,
            references=mail.references,
        )
    if created and with_bot:
        await answer(ctx, message)
    return message


async def answer(ctx: AppContext, message: Doc) -> None:
    """The FAQ bot: answer from the published knowledge base when confident (with two links
    asking whether it helped, bot/faq_answers.py), else hand to the router."""
    contact = await ctx.db.contacts.find_one({"_id": message["contact_id"]})
    if contact is None or contact["status"] != "bot":
        await _mark(ctx, message, "skipped")
        return
    question = strip_quoted(message["text"]) or str((message.get("data") or {}).get("subject") or "")
    hits = await search(ctx, contact["tenant_id"], question, statuses=("published",), limit=1)
    await usage.record_search(ctx, contact["tenant_id"], question, hits, "email", contact_id=contact["_id"])
    if hits and confident(hits[0]):
        article = hits[0].article
        await usage.record(
            ctx, contact["tenant_id"], "bot_use", article["_id"], "email", contact_id=contact["_id"]
        )
        tenant = await ctx.db.tenants.find_one({"_id": contact["tenant_id"]}, {"slug": 1})
        yes, no = faq_answers.email_vote_links(ctx, (tenant or {}).get("slug", ""), contact, article["_id"])
        ask = faq_answers.texts(article.get("locale"))["ask_email"].format(yes=yes, no=no)
        await append_message(
            ctx,
            contact,
            "bot",
            f"{article['title']}\n\n{article['body']}\n\n{ask}",
            client_id=f"bot:{message['_id']}",
            author_name="Assistant",
            data={"kb_article_id": article["_id"], "coverage": hits[0].coverage},
        )
        await _mark(ctx, message, "answered")
        return
    await _mark(ctx, message, "handed_off")
    await ctx.require_router().enqueue(contact["_id"], skill_for_intent(None), "email")


async def _mark(ctx: AppContext, message: Doc, state: str) -> None:
    await ctx.db.messages.update_one({"_id": message["_id"]}, {"$set": {"bot_state": state}})


async def recover(ctx: AppContext) -> int:
    """After a restart: answer (or hand off) mails stored just before a crash."""
    count = 0
    async for message in ctx.db.messages.find({"bot_state": PENDING}):
        await answer(ctx, message)
        count += 1
    return count
