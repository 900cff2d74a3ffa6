"""Rasa custom actions, served by the hub itself (Rasa's action-server HTTP protocol).

Rasa POSTs {"next_action", "sender_id", "tracker", "domain"} and expects
{"events": [...], "responses": [...]}. The sender id is our contact id, so actions
reach the customer profile, the knowledge base and the router directly.
The endpoint URL carries an HMAC token so only our Rasa can call it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse

from bot.faq_answers import answer_with, event_channel
from hub.contacts import get_contact, update_contact
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import new_id, utcnow
from knowledge.customers import get_customer
from knowledge.search import confident, search
from knowledge.usage import record_search
from routing.assignment import skill_for_intent

router = APIRouter()

Response = dict[str, Any]
Action = Callable[[AppContext, Doc, dict[str, Any]], Awaitable[Response]]

HANDOFF_TEXT = (
    "I'm connecting you with one of our agents now. Please stay here; they will reply in this chat."
)
FALLBACK_TEXT = (
    "Sorry, I didn't understand that. Could you say it another way? You can also ask for an agent."
)
IDENTIFY_TEXT = (
    "I can check that for you. Please share the email address or phone number on your account "
    '(type it here or use "Share your email or phone").'
)


NON_TOPIC_INTENTS = frozenset(
    {"nlu_fallback", "talk_to_agent", "affirm", "deny", "thank_you", "greet", "goodbye", "out_of_scope"}
)


def action_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"rasa-actions", hashlib.sha256).hexdigest()[:32]


def action_url(ctx: AppContext) -> str:
    base = f"http://127.0.0.1:{ctx.settings.port}"
    return f"{base}/webhooks/actions?token={action_token(ctx.settings.secret)}"


def _text(*texts: str) -> Response:
    return {"events": [], "responses": [{"text": t} for t in texts]}


def _latest(tracker: dict[str, Any]) -> tuple[str | None, str]:
    latest = tracker.get("latest_message") or {}
    return (latest.get("intent") or {}).get("name"), latest.get("text") or ""


async def _handoff(ctx: AppContext, contact: Doc, reason: str, intent: str | None) -> Response:
    await ctx.require_router().enqueue(contact["_id"], skill_for_intent(intent), reason)
    return _text(HANDOFF_TEXT)


async def action_handoff(ctx: AppContext, contact: Doc, tracker: dict[str, Any]) -> Response:
    # The skill follows what the customer asked about before asking for a human.
    topic = last_topic_intent(tracker) or contact.get("intent")
    if topic and topic != contact.get("intent"):
        await update_contact(ctx, contact["_id"], {"intent": topic})
    return await _handoff(ctx, contact, "customer_request", topic)


def last_topic_intent(tracker: dict[str, Any]) -> str | None:
    """The most recent user intent that names a topic (not chit-chat or a request for a human)."""
    for event in reversed(tracker.get("events") or []):
        if event.get("event") == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if intent and intent not in NON_TOPIC_INTENTS:
                return str(intent)
    return None


async def action_fallback(ctx: AppContext, contact: Doc, tracker: dict[str, Any]) -> Response:
    """Two turns in a row that the bot could not help with hand the contact to an agent."""
    if consecutive_fallbacks(tracker) >= 2:
        return await _handoff(ctx, contact, "bot_fallback", contact.get("intent"))
    intent, _ = _latest(tracker)
    if intent == "out_of_scope":
        return {"events": [], "responses": [{"response": "utter_out_of_scope"}]}
    return _text(FALLBACK_TEXT)


FALLBACK_INTENTS = frozenset({"nlu_fallback", "out_of_scope"})


def consecutive_fallbacks(tracker: dict[str, Any]) -> int:
    """User turns at the end of the conversation the bot could not help with.

    Counted from the tracker's events, so no state of our own is needed.
    """
    count = 0
    for event in reversed(tracker.get("events") or []):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent not in FALLBACK_INTENTS:
            break
        count += 1
    return count


async def action_check_balance(ctx: AppContext, contact: Doc, tracker: dict[str, Any]) -> Response:
    customer = (
        await get_customer(ctx, contact["customer_id"], contact["tenant_id"])
        if contact.get("customer_id")
        else None
    )
    if customer is None:
        await update_contact(ctx, contact["_id"], {"awaiting": "check_balance"})
        return _text(IDENTIFY_TEXT)
    return _text(balance_text(customer))


def balance_text(customer: Doc) -> str:
    if customer.get("balance") is None:
        return (
            f"I found your profile{', ' + customer['name'] if customer.get('name') else ''}, but there is "
            "no account balance on it yet. An agent can help if you think that's wrong."
        )
    due = f", due on {customer['due_date']}" if customer.get("due_date") else ""
    return (
        f"Thanks{', ' + customer['name'].split()[0] if customer.get('name') else ''}. The balance on account "
        f"{customer.get('account_number') or '(no number)'} is ${customer['balance']:.2f}{due}."
    )


async def action_answer_faq(ctx: AppContext, contact: Doc, tracker: dict[str, Any]) -> Response:
    """Answer from the tenant's published knowledge base when confident (then ask whether it
    helped, bot/faq_answers.py); otherwise the question is a content gap and an agent takes it."""
    _, text = _latest(tracker)
    hits = await search(ctx, contact["tenant_id"], text, statuses=("published",), limit=1)
    channel = event_channel(contact)
    await record_search(ctx, contact["tenant_id"], text, hits, channel, contact_id=contact["_id"])
    if hits and confident(hits[0]):
        article = hits[0].article
        await update_contact(ctx, contact["_id"], {"last_article_id": article["_id"]})
        return {"events": [], "responses": await answer_with(ctx, contact, article)}
    return await _handoff(ctx, contact, "faq_not_found", "ask_faq")


async def action_report_outage(ctx: AppContext, contact: Doc, tracker: dict[str, Any]) -> Response:
    _, text = _latest(tracker)
    ticket = {
        "_id": new_id(),
        "tenant_id": contact["tenant_id"],
        "contact_id": contact["_id"],
        "customer_id": contact.get("customer_id"),
        "kind": "outage",
        "text": text,
        "status": "open",
        "created_at": utcnow(),
    }
    await ctx.db.tickets.insert_one(ticket)
    reference = ticket["_id"][:8].upper()
    return _text(
        f"I'm sorry about the outage. I've logged it as ticket {reference} and our technical team "
        "is notified. If you'd like to talk to a technician, just ask for an agent."
    )


ACTIONS: dict[str, Action] = {
    "action_handoff": action_handoff,
    "action_fallback": action_fallback,
    "action_check_balance": action_check_balance,
    "action_answer_faq": action_answer_faq,
    "action_report_outage": action_report_outage,
}


@router.post("/webhooks/actions", include_in_schema=False)
async def run_action(request: Request, token: str = "", ctx: AppContext = Depends(get_ctx)) -> JSONResponse:
    if not hmac.compare_digest(token, action_token(ctx.settings.secret)):
        raise HTTPException(403, "bad action token")
    try:
        body = await request.json()
        name = body["next_action"]
        sender = body["sender_id"]
        tracker = body.get("tracker") or {}
    except (ValueError, KeyError, TypeError) as exc:
        raise HTTPException(400, "malformed action request") from exc
    action = ACTIONS.get(name)
    if action is None:
        return JSONResponse({"error": f"no action {name!r}", "action_name": name}, status_code=404)
    contact = await get_contact(ctx, sender)
    if contact is None:
        return JSONResponse({"error": "unknown conversation", "action_name": name}, status_code=400)
    intent, _ = _latest(tracker)
    if intent and intent not in NON_TOPIC_INTENTS:
        await update_contact(ctx, contact["_id"], {"intent": intent})
        contact["intent"] = intent
    result = await action(ctx, contact, tracker)
    return JSONResponse(result)
