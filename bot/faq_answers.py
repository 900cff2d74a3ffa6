"""The bot's answers from the knowledge base and their "Did that help?" follow-up.

An answer is given only when `knowledge.search.confident` says so; it records a `bot_use`
event and asks whether it helped, in the channel's own way: two quick-reply buttons in web
chat, "Reply YES or NO" by SMS, two links by email (they open a confirmation page of the help
center, because mail scanners fetch links on their own). The pending question is kept on the
contact (`kb_feedback`), and the customer's next chat or SMS message is checked here, in the
hub, before it would go to Rasa — so the vote needs no new intent and no retraining. "No"
hands the contact to an agent like the bot's handoff action.
"""

# ruff: noqa: RUF001 - Chinese texts use full-width punctuation on purpose

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from hub.auth import AuthError, decode_token, issue_token
from hub.contacts import append_message, update_contact
from hub.context import AppContext
from hub.db import Doc
from hub.ids import utcnow
from knowledge.usage import record
from routing.assignment import skill_for_intent

YES_PAYLOAD = "/kb_helpful"
NO_PAYLOAD = "/kb_not_helpful"
VOTE_TOKEN = "kb_vote"
VOTE_TOKEN_TTL_S = 30 * 24 * 3600
YES_WORDS = frozenset(
    {"yes", "y", "yeah", "yep", "yup", "ok", "it did", "yes it did", "yes it helped", "helpful", "thanks",
     "是", "是的", "有", "有用", "有帮助", "对", "好的", "好"}
)  # fmt: skip
NO_WORDS = frozenset(
    {"no", "n", "nope", "not really", "it didnt", "no it didnt", "not helpful", "no i need more help",
     "否", "不", "不是", "没有", "没用", "没有帮助", "不行"}
)  # fmt: skip
_PUNCTUATION = re.compile(r"[^\w\s]+")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "ask": "Did that help?",
        "ask_sms": "Did that help? Reply YES or NO.",
        "ask_email": "Did this answer help?\nYes: {yes}\nNo, I need more help: {no}",
        "yes": "Yes",
        "no": "No",
        "thanks": "Great, glad it helped! Is there anything else I can do for you?",
        "handoff": "Sorry that didn't help. I'm connecting you with one of our agents now; "
        "they will reply here.",
    },
    "zh": {
        "ask": "这有帮助吗？",
        "ask_sms": "这有帮助吗？请回复 YES 或 NO。",
        "ask_email": "这个回答有帮助吗？\n有帮助：{yes}\n没有，我需要更多帮助：{no}",
        "yes": "有帮助",
        "no": "没有",
        "thanks": "太好了！还有什么可以帮您的吗？",
        "handoff": "抱歉没能帮到您。正在为您转接人工客服，请稍候。",
    },
}


def texts(locale: str | None) -> dict[str, str]:
    return TEXTS.get((locale or "en").split("-")[0], TEXTS["en"])


def event_channel(contact: Doc) -> str:
    """The usage channel of a contact (a web call counts as voice)."""
    channel = str(contact.get("channel") or "webchat")
    return "voice" if channel in ("voice", "webcall") else channel


def vote_token(ctx: AppContext, contact: Doc, article_id: str) -> str:
    """A signed token for the email links: which contact voted on which article."""
    return issue_token(
        ctx.settings.secret,
        VOTE_TOKEN,
        contact["_id"],
        contact["tenant_id"],
        VOTE_TOKEN_TTL_S,
        aid=article_id,
    )


def read_vote_token(ctx: AppContext, token: str) -> tuple[str, str, str]:
    """(tenant_id, contact_id, article_id) of a vote token; AuthError when forged or expired."""
    claims = decode_token(ctx.settings.secret, token, VOTE_TOKEN)
    if not isinstance(claims.get("aid"), str):
        raise AuthError("invalid token")
    return str(claims["tid"]), str(claims["sub"]), claims["aid"]


def email_vote_links(ctx: AppContext, tenant_slug: str, contact: Doc, article_id: str) -> tuple[str, str]:
    token = vote_token(ctx, contact, article_id)
    base = f"{ctx.settings.public_url}/help/{tenant_slug}/feedback?"
    return base + urlencode({"token": token, "vote": "yes"}), base + urlencode({"token": token, "vote": "no"})


async def answer_with(ctx: AppContext, contact: Doc, article: Doc) -> list[dict[str, Any]]:
    """The bot's replies (Rasa's response format) answering with `article`, then asking for a
    vote; records the bot use and remembers the question on the contact."""
    channel = event_channel(contact)
    await record(ctx, contact["tenant_id"], "bot_use", article["_id"], channel, contact_id=contact["_id"])
    t = texts(article.get("locale"))
    replies: list[dict[str, Any]] = [{"text": article["body"]}]
    if channel == "voice":
        return replies  # spoken yes/no goes to the voice pipeline's own turns: no vote asked
    await update_contact(
        ctx,
        contact["_id"],
        {
            "kb_feedback": {
                "article_id": article["_id"],
                "locale": article.get("locale"),
                "asked_at": utcnow(),
            }
        },
    )
    if channel == "sms":
        replies.append({"text": t["ask_sms"]})
    else:
        replies.append(
            {
                "text": t["ask"],
                "buttons": [
                    {"title": t["yes"], "payload": YES_PAYLOAD},
                    {"title": t["no"], "payload": NO_PAYLOAD},
                ],
            }
        )
    return replies


def vote_of(text: str) -> bool | None:
    """True for a yes, False for a no, None for anything else (e.g. a new question)."""
    raw = text.strip().lower()
    if raw == YES_PAYLOAD:
        return True
    if raw == NO_PAYLOAD:
        return False
    words = " ".join(_PUNCTUATION.sub("", raw).split())
    if words in YES_WORDS:
        return True
    if words in NO_WORDS:
        return False
    return None


async def vote(
    ctx: AppContext, contact: Doc, article_id: str, helpful: bool, channel: str | None = None
) -> bool:
    """Count one vote of this contact on this article (a repeat is ignored: returns False)."""
    return await record(
        ctx,
        contact["tenant_id"],
        "helpful" if helpful else "not_helpful",
        article_id,
        channel or event_channel(contact),
        contact_id=contact["_id"],
        event_id=f"vote:{contact['_id']}:{article_id}",
    )


async def hand_over(ctx: AppContext, contact: Doc) -> None:
    """To an agent, with the skill of what the customer asked about."""
    await ctx.require_router().enqueue(
        contact["_id"], skill_for_intent(contact.get("intent") or "ask_faq"), "faq_not_helpful"
    )


async def take_vote(ctx: AppContext, contact: Doc, message: Doc) -> bool:
    """Handle the customer's reply to "Did that help?"; True when the message was the vote.

    Any other message drops the pending question and goes on to Rasa as usual.
    """
    pending = contact.get("kb_feedback")
    if not pending:
        return False
    await update_contact(ctx, contact["_id"], {"kb_feedback": None})
    helpful = vote_of(str(message.get("text") or ""))
    if helpful is None:
        return False
    await vote(ctx, contact, pending["article_id"], helpful)
    t = texts(pending.get("locale"))
    await append_message(
        ctx,
        contact,
        "bot",
        t["thanks"] if helpful else t["handoff"],
        client_id=f"bot:{message['_id']}:vote",
        author_name="Assistant",
    )
    if not helpful:
        await hand_over(ctx, contact)
    return True
