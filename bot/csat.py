"""The satisfaction survey after an agent closes a web-chat or SMS conversation.

Phone calls get the IVR's key-press survey (bot/ivr.py); text channels had none, so CSAT by
channel was voice-only. When an agent wraps up a chat or SMS contact, `ask` sends one question
(five quick-reply buttons in web chat, "Reply 1-5" by SMS) and marks the closed contact
`csat_pending_until` (24 hours). The channel adapters call `take_answer` with each visitor
message before threading it: a score 1-5 is stored in the closed contact as `survey_score` /
`survey_at` (which bumps `updated_at`, so reports/facts.py refreshes the fact's `csat`) and
thanked, without reaching Rasa or an agent; anything else clears the question and goes on as
a normal new message. A tenant turns it off with `tenants.csat.enabled: false`.
"""

# ruff: noqa: RUF001 - Chinese texts use full-width punctuation on purpose

from __future__ import annotations

import re
from datetime import timedelta

from hub.contacts import append_message, update_contact
from hub.context import AppContext
from hub.db import Doc
from hub.ids import utcnow

CHANNELS = ("webchat", "sms")
ANSWER_WINDOW = timedelta(hours=24)
PAYLOAD_PREFIX = "/csat_"
_SCORE = re.compile(r"^\s*(?:/csat_)?([1-5])\s*(?:/\s*5)?\s*[.!]?\s*$", re.IGNORECASE)

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "ask": "How satisfied were you with this conversation? 1 (poor) to 5 (excellent)",
        "ask_sms": "How satisfied were you with this conversation? Reply 1-5: 1 (poor) to 5 (excellent).",
        "thanks": "Thank you for your feedback!",
    },
    "zh": {
        "ask": "您对本次服务满意吗？1（很差）到 5（非常满意）",
        "ask_sms": "您对本次服务满意吗？请回复 1-5：1（很差）到 5（非常满意）。",
        "thanks": "感谢您的评价！",
    },
}


def texts(locale: str | None) -> dict[str, str]:
    return TEXTS.get((locale or "en").split("-")[0], TEXTS["en"])


def score_of(text: str) -> int | None:
    """1-5 from a bare digit ("4", "4/5", "4.") or a button payload ("/csat_4"); else None."""
    found = _SCORE.match(text)
    return int(found.group(1)) if found else None


def enabled(tenant: Doc | None) -> bool:
    """On unless the tenant set `csat.enabled` to false."""
    return bool(((tenant or {}).get("csat") or {}).get("enabled", True))


async def ask(ctx: AppContext, contact: Doc) -> bool:
    """Send the survey for a contact an agent just closed; True when it was sent."""
    if contact.get("channel") not in CHANNELS or not contact.get("agent_id"):
        return False
    if contact["channel"] == "sms" and not contact.get("customer_number"):
        return False  # nobody to text
    tenant = await ctx.db.tenants.find_one({"_id": contact["tenant_id"]}, {"csat": 1, "locale": 1})
    if not enabled(tenant):
        return False
    marked = await update_contact(
        ctx,
        contact["_id"],
        {"csat_pending_until": utcnow() + ANSWER_WINDOW},
        expect={"status": "closed", "survey_score": None},
    )
    if marked is None:
        return False
    t = texts((tenant or {}).get("locale"))
    data: Doc | None = None
    if contact["channel"] == "webchat":
        buttons = [{"title": str(n), "payload": f"{PAYLOAD_PREFIX}{n}"} for n in range(1, 6)]
        data = {"buttons": buttons, "csat": True}
    await append_message(
        ctx,
        marked,
        "bot",
        t["ask_sms"] if contact["channel"] == "sms" else t["ask"],
        client_id=f"csat:{contact['_id']}:ask",
        author_name="Assistant",
        data=data,
    )
    return True


async def pending_for(ctx: AppContext, tenant_id: str, match: Doc) -> Doc | None:
    """The latest closed contact (of this visitor / number: `match`) still awaiting a score."""
    return await ctx.db.contacts.find_one(
        {"tenant_id": tenant_id, **match, "status": "closed", "csat_pending_until": {"$gt": utcnow()}},
        sort=[("closed_at", -1)],
    )


async def take_answer(
    ctx: AppContext,
    tenant_id: str,
    match: Doc,
    text: str,
    *,
    client_id: str | None,
    author_id: str | None,
    data: Doc | None = None,
) -> Doc | None:
    """Record a survey answer; the stored message when `text` was one, None to carry on as usual.

    `match` picks the customer's contacts (`{"visitor_id": ...}` or `{"channel": "sms",
    "customer_number": ...}`). A resend of an answer (same client id) returns the first one.
    """
    contact = await pending_for(ctx, tenant_id, match)
    if contact is None:
        return None
    if client_id:
        key = f"c:{client_id}"
        stored = await ctx.db.messages.find_one({"contact_id": contact["_id"], "dedupe_key": key})
        if stored is not None:  # a retry: finish what the first attempt may not have
            score = score_of(str(stored.get("text") or ""))
            if score is not None:
                await _record(ctx, contact, score)
            return dict(stored)
    score = score_of(text)
    if score is None or contact.get("survey_score") is not None:
        # not an answer (or already answered): drop the question; the message is a new one
        await update_contact(ctx, contact["_id"], {"csat_pending_until": None})
        return None
    message, _ = await append_message(
        ctx, contact, "visitor", text.strip(), client_id=client_id, author_id=author_id, data=data
    )
    await _record(ctx, contact, score)
    return message


async def _record(ctx: AppContext, contact: Doc, score: int) -> None:
    """Store the score once (the pending mark stays, so a resend still finds this contact) and
    thank the customer (idempotent by client id)."""
    await update_contact(
        ctx,
        contact["_id"],
        {"survey_score": score, "survey_at": utcnow()},
        expect={"survey_score": None},
    )
    tenant = await ctx.db.tenants.find_one({"_id": contact["tenant_id"]}, {"locale": 1})
    await append_message(
        ctx,
        contact,
        "bot",
        texts((tenant or {}).get("locale"))["thanks"],
        client_id=f"csat:{contact['_id']}:thanks",
        author_name="Assistant",
    )
