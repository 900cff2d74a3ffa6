"""Bot turns: every visitor message a contact receives while with the bot goes to Rasa.

Messages are stored first (bot_state "pending"); one worker per contact sends them
to Rasa in order and stores the replies with dedupe keys derived from the visitor
message, so a turn re-run after a crash does not duplicate replies. If Rasa is
down the visitor is told and queued for an agent: nothing is dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from bot import faq_answers, questionnaire_turns
from bot.actions import balance_text
from bot.rasa_client import BotUnavailable
from hub.contacts import append_message, get_contact, update_contact
from hub.context import AppContext
from hub.db import Doc
from knowledge.customers import get_customer
from routing.assignment import skill_for_intent

log = logging.getLogger(__name__)

UNAVAILABLE_TEXT = (
    "Sorry, our assistant is unavailable right now. I'm passing you to an agent, who will reply here."
)


class BotTurns:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()

    def schedule(self, contact_id: str) -> None:
        """Make sure a worker drains this contact's pending messages.

        A running worker re-reads pending messages before it exits, so it picks up
        messages stored after it started.
        """
        self._dirty.add(contact_id)
        worker = self._workers.get(contact_id)
        if worker is None or worker.done():
            task = asyncio.create_task(self._drain_contact(contact_id), name=f"bot:{contact_id}")
            self._workers[contact_id] = task
            task.add_done_callback(functools.partial(self._forget, contact_id))

    def _forget(self, contact_id: str, task: asyncio.Task[None]) -> None:
        if self._workers.get(contact_id) is task:
            del self._workers[contact_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("bot worker for %s failed", contact_id, exc_info=task.exception())

    async def _drain_contact(self, contact_id: str) -> None:
        while True:
            self._dirty.discard(contact_id)
            message = await self.ctx.db.messages.find_one(
                {"contact_id": contact_id, "bot_state": "pending"}, sort=[("seq", 1)]
            )
            if message is None:
                if contact_id in self._dirty:  # scheduled again while we were reading
                    continue
                return
            await self._handle(message)

    async def _handle(self, message: Doc) -> None:
        contact = await get_contact(self.ctx, message["contact_id"])
        if contact is None or contact["status"] != "bot":
            await self._mark(message, "skipped")
            return
        if await questionnaire_turns.answer(self.ctx, contact, message):  # an SMS survey's reply
            await self._mark(message, "done")
            return
        if await faq_answers.take_vote(self.ctx, contact, message):  # "Did that help?" answered
            await self._mark(message, "done")
            return
        try:
            replies = await self.ctx.rasa.send(contact["_id"], message["text"]) if self.ctx.rasa else None
            if replies is None:
                raise BotUnavailable("no Rasa configured")
        except BotUnavailable as exc:
            log.warning("bot unavailable for contact %s: %s", contact["_id"], exc)
            await append_message(
                self.ctx, contact, "bot", UNAVAILABLE_TEXT, client_id=f"bot:{message['_id']}:down"
            )
            await self._mark(message, "handed_off")
            await self.ctx.require_router().enqueue(
                contact["_id"], skill_for_intent(contact.get("intent")), "bot_unavailable"
            )
            return
        for index, reply in enumerate(replies):
            # web chat shows buttons as quick replies; other channels get them as text lines
            buttons = _buttons(reply) if contact.get("channel") == "webchat" else []
            text = _reply_text({**reply, "buttons": None} if buttons else reply)
            if text:
                await append_message(
                    self.ctx,
                    contact,
                    "bot",
                    text,
                    client_id=f"bot:{message['_id']}:{index}",
                    author_name="Assistant",
                    data={"buttons": buttons} if buttons else None,
                )
        await self._remember_intent(contact)
        await self._mark(message, "done")

    async def _remember_intent(self, contact: Doc) -> None:
        """Store what Rasa understood in this turn (`last_intent`) for the agent's screen pop.

        The REST channel's replies do not carry the intent and custom actions only see the
        turns they handle, so it is read from the tracker once the replies are stored."""
        if self.ctx.rasa is None:
            return
        intent = await self.ctx.rasa.latest_intent(contact["_id"])
        if intent and intent != contact.get("last_intent"):
            await update_contact(self.ctx, contact["_id"], {"last_intent": intent})

    async def _mark(self, message: Doc, state: str) -> None:
        await self.ctx.db.messages.update_one({"_id": message["_id"]}, {"$set": {"bot_state": state}})

    async def resume_awaiting(self, contact: Doc) -> None:
        """Answer the question the bot asked identification for, now that we know the customer."""
        if contact.get("awaiting") != "check_balance" or not contact.get("customer_id"):
            return
        customer = await get_customer(self.ctx, contact["customer_id"], contact["tenant_id"])
        if customer is None:
            return
        await update_contact(self.ctx, contact["_id"], {"awaiting": None})
        await append_message(self.ctx, contact, "bot", balance_text(customer), author_name="Assistant")

    async def recover(self) -> int:
        """After a restart: resume every contact that still has unanswered messages."""
        contact_ids = await self.ctx.db.messages.distinct("contact_id", {"bot_state": "pending"})
        for contact_id in contact_ids:
            self.schedule(contact_id)
        return len(contact_ids)

    async def drain(self) -> None:
        """Wait for every running worker (tests and shutdown)."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)


def _buttons(reply: dict[str, Any]) -> list[dict[str, str]]:
    """A reply's quick-reply buttons as {title, payload} (what the widget shows)."""
    out = []
    for button in reply.get("buttons") or []:
        if isinstance(button, dict) and button.get("title"):
            out.append(
                {"title": str(button["title"])[:60], "payload": str(button.get("payload") or "")[:100]}
            )
    return out[:6]


def _reply_text(reply: dict[str, Any]) -> str:
    parts = [reply.get("text") or ""]
    if reply.get("image"):
        parts.append(str(reply["image"]))
    for button in reply.get("buttons") or []:
        parts.append(f"• {button.get('title', '')}")
    return "\n".join(p for p in parts if p).strip()
