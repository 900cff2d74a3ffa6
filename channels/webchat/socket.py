"""The web-chat widget's websocket (protocol in docs/protocol.md).

A visitor message is stored before it is acknowledged; on every (re)connect the
widget says which seq it has seen and gets everything after it, so nothing is lost
when the socket, the hub or the database restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pymongo.errors import PyMongoError

from bot import csat
from channels.webchat.visitors import new_visitor_token, visitor_from_token
from hub.auth import AuthError
from hub.contacts import (
    OPEN_STATUSES,
    append_message,
    get_contact,
    messages_after,
    open_contact,
    public_message,
    update_contact,
)
from hub.context import AppContext, get_ws_ctx
from hub.db import Doc
from hub.events import Event
from hub.tenancy import get_tenant_by_slug
from knowledge.customers import (
    InvalidContactDetail,
    find_or_create_customer,
    normalise_email,
    normalise_phone,
    public_customer,
)
from knowledge.detect import contact_details_in

log = logging.getLogger(__name__)
router = APIRouter()

CLOSE_BAD_FRAME = 4400
CLOSE_UNKNOWN_TENANT = 4404
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
HELLO_TIMEOUT_S = 15.0
MAX_CLIENT_ID = 100


class FrameError(Exception):
    """A frame the widget should not have sent; reported as an error frame."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def visitor_status(status: str) -> str:
    """The visitor does not see offers: an offered contact is still waiting for them."""
    return "queued" if status == "offered" else ("assigned" if status == "wrapup" else status)


class ChatSession:
    """One widget connection: its tenant, visitor and current contact."""

    def __init__(self, ctx: AppContext, ws: WebSocket, tenant: Doc) -> None:
        self.ctx = ctx
        self.ws = ws
        self.tenant = tenant
        self.visitor_id = ""
        self.contact: Doc | None = None
        self.customer_id: str | None = None
        self.queue = ctx.bus.new_queue()
        self.sent_seq = 0  # highest seq sent on this connection
        self.sent_seqs: set[int] = set()
        self.shown_status: tuple[str, str | None] | None = None  # last status frame sent

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(frame))

    async def receive(self) -> dict[str, Any]:
        raw = await self.ws.receive_text()
        if len(raw.encode()) > self.ctx.settings.max_ws_frame_bytes:
            raise OverflowError
        try:
            frame = json.loads(raw)
        except ValueError as exc:
            raise FrameError("bad_frame", "frames must be JSON objects") from exc
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise FrameError("bad_frame", "frames must be JSON objects with a type")
        return frame

    # -- contact subscription -------------------------------------------------------------
    def follow(self, contact: Doc | None) -> None:
        if self.contact is not None:
            self.ctx.bus.remove(f"contact:{self.contact['_id']}", self.queue)
        self.contact = contact
        self.sent_seqs = set()
        self.sent_seq = 0
        if contact is not None:
            self.ctx.bus.add(f"contact:{contact['_id']}", self.queue)

    def close(self) -> None:
        self.follow(None)

    async def replay(self, after_seq: int) -> None:
        assert self.contact is not None
        for message in await messages_after(self.ctx, self.contact["_id"], after_seq):
            await self.send_message(public_message(message))

    async def send_message(self, message: dict[str, Any]) -> None:
        # Tracked as a set: two writers may store seq N+1 after N+2 has been published.
        if message["seq"] in self.sent_seqs:
            return
        self.sent_seqs.add(message["seq"])
        self.sent_seq = max(self.sent_seq, message["seq"])
        await self.send({"type": "message", **message})

    async def forward(self) -> None:
        """Push messages and status changes of the current contact to the widget."""
        while True:
            event: Event = await self.queue.get()
            if self.contact is None:
                continue
            if event["type"] == "message" and event["message"]["contact_id"] == self.contact["_id"]:
                if event["message"]["seq"] > self.sent_seq + 1:
                    # we missed events (slow consumer): fill the gap from the database
                    await self.replay(self.sent_seq)
                await self.send_message(event["message"])
            elif event["type"] == "contact" and event["contact"]["id"] == self.contact["_id"]:
                contact = event["contact"]
                self.contact["status"] = contact["status"]
                shown = (visitor_status(contact["status"]), contact.get("agent_name"))
                if shown == self.shown_status:
                    continue  # e.g. a customer was linked: nothing the visitor sees changed
                self.shown_status = shown
                await self.send(
                    {
                        "type": "status",
                        "contact_id": contact["id"],
                        "status": visitor_status(contact["status"]),
                        "agent_name": contact.get("agent_name"),
                    }
                )

    # -- frames ---------------------------------------------------------------------------
    async def hello(self, frame: dict[str, Any]) -> None:
        token = frame.get("visitor_token")
        visitor_id = None
        if isinstance(token, str) and token:
            try:
                visitor_id = visitor_from_token(self.ctx.settings, self.tenant["_id"], token)
            except AuthError as exc:
                await self.send(
                    {
                        "type": "error",
                        "code": "token_" + ("expired" if "expired" in str(exc) else "invalid"),
                        "message": f"visitor {exc}; starting a new conversation",
                    }
                )
        self.visitor_id, new_token = new_visitor_token(self.ctx.settings, self.tenant["_id"], visitor_id)
        contact = None
        contact_id = frame.get("contact_id")
        if visitor_id and isinstance(contact_id, str):
            contact = await self.ctx.db.contacts.find_one(
                {"_id": contact_id, "tenant_id": self.tenant["_id"], "visitor_id": visitor_id}
            )
        if visitor_id and contact is None:
            contact = await self.ctx.db.contacts.find_one(
                {
                    "tenant_id": self.tenant["_id"],
                    "visitor_id": visitor_id,
                    "status": {"$in": list(OPEN_STATUSES)},
                },
                sort=[("opened_at", -1)],
            )
        self.follow(contact)
        last_seq = frame.get("last_seq")
        last_seq = last_seq if isinstance(last_seq, int) and last_seq >= 0 else 0
        if contact is None or contact["_id"] != contact_id:
            last_seq = 0  # the widget's seq belongs to another conversation
        self.sent_seq = last_seq
        if contact is not None:
            self.customer_id = contact.get("customer_id")
            self.shown_status = (visitor_status(contact["status"]), contact.get("agent_name"))
        await self.send(
            {
                "type": "welcome",
                "visitor_token": new_token,
                "contact_id": contact["_id"] if contact else None,
                "status": visitor_status(contact["status"]) if contact else "new",
                "agent_name": contact.get("agent_name") if contact else None,
            }
        )
        if contact is not None:
            await self.replay(last_seq)

    async def message(self, frame: dict[str, Any]) -> None:
        text = frame.get("text")
        client_id = frame.get("client_id")
        if not isinstance(text, str) or not text.strip():
            raise FrameError("bad_frame", "a message needs non-empty text")
        if len(text) > self.ctx.settings.max_message_chars:
            raise FrameError(
                "text_too_long", f"messages are limited to {self.ctx.settings.max_message_chars} characters"
            )
        if not isinstance(client_id, str) or not 0 < len(client_id) <= MAX_CLIENT_ID:
            raise FrameError("bad_frame", "a message needs a client_id of 1-100 characters")
        if await self._survey_answer(text, client_id):
            return
        contact = await self._current_contact(client_id)
        email, phone = contact_details_in(text)
        if email or phone:
            await self._link_customer(email, phone, None, resume=False)
            contact = await get_contact(self.ctx, contact["_id"]) or contact
        with_bot = contact["status"] == "bot"
        # A visitor who was asked for their email or phone gets the answer from the hub
        # directly; sending the bare address to Rasa would only produce a fallback.
        answers_question = with_bot and bool(email or phone) and bool(contact.get("awaiting"))
        message, created = await append_message(
            self.ctx,
            contact,
            "visitor",
            text.strip(),
            client_id=client_id,
            author_id=self.visitor_id,
            bot_state=("pending" if not answers_question else "done") if with_bot else None,
        )
        await self.send(
            {
                "type": "ack",
                "client_id": client_id,
                "id": message["_id"],
                "seq": message["seq"],
                "contact_id": contact["_id"],
            }
        )
        if created and answers_question:
            await self.ctx.require_bot().resume_awaiting(contact)
        elif created and with_bot:
            self.ctx.require_bot().schedule(contact["_id"])

    async def _survey_answer(self, text: str, client_id: str) -> bool:
        """A 1-5 answer to the survey after an agent closed the chat (bot/csat.py): stored in
        that contact and acknowledged there, never sent to the bot or an agent."""
        answer = await csat.take_answer(
            self.ctx,
            self.tenant["_id"],
            {"visitor_id": self.visitor_id},
            text,
            client_id=client_id,
            author_id=self.visitor_id,
        )
        if answer is None:
            return False
        await self.send(
            {
                "type": "ack",
                "client_id": client_id,
                "id": answer["_id"],
                "seq": answer["seq"],
                "contact_id": answer["contact_id"],
            }
        )
        return True

    async def _current_contact(self, client_id: str) -> Doc:
        """The open contact, or a new one when there is none or the last one is closed."""
        if self.contact is not None:
            fresh = await get_contact(self.ctx, self.contact["_id"])
            if fresh is not None and fresh["status"] != "closed":
                return fresh
            if fresh is not None:
                # a resend of a message already stored in the closed contact stays there
                stored = await self.ctx.db.messages.find_one(
                    {"contact_id": fresh["_id"], "dedupe_key": f"c:{client_id}"}
                )
                if stored is not None:
                    return fresh
        contact = await open_contact(
            self.ctx, self.tenant["_id"], "webchat", visitor_id=self.visitor_id, customer_id=self.customer_id
        )
        self.follow(contact)
        self.shown_status = ("bot", None)
        await self.send({"type": "status", "contact_id": contact["_id"], "status": "bot", "agent_name": None})
        return contact

    async def identify(self, frame: dict[str, Any]) -> None:
        email = phone = None
        try:
            if isinstance(frame.get("email"), str) and frame["email"].strip():
                email = normalise_email(frame["email"])
            if isinstance(frame.get("phone"), str) and frame["phone"].strip():
                phone = normalise_phone(frame["phone"])
        except InvalidContactDetail as exc:
            raise FrameError("invalid_contact_detail", str(exc)) from exc
        if not email and not phone:
            raise FrameError("invalid_contact_detail", "give an email address or a phone number")
        name = frame.get("name") if isinstance(frame.get("name"), str) else None
        customer = await self._link_customer(email, phone, (name or "").strip()[:100] or None)
        info = public_customer(customer)
        await self.send(
            {
                "type": "identified",
                "customer": {"name": info["name"], "email": info["email"], "phone": info["phone"]},
            }
        )

    async def _link_customer(
        self, email: str | None, phone: str | None, name: str | None, *, resume: bool = True
    ) -> Doc:
        customer = await find_or_create_customer(
            self.ctx, self.tenant["_id"], email=email, phone=phone, name=name
        )
        self.customer_id = customer["_id"]
        if self.contact is not None and self.contact.get("customer_id") != customer["_id"]:
            contact = await update_contact(self.ctx, self.contact["_id"], {"customer_id": customer["_id"]})
            if contact is not None:
                self.contact = contact
                if resume and contact.get("awaiting") and contact["status"] == "bot":
                    await self.ctx.require_bot().resume_awaiting(contact)
        return customer


@router.websocket("/ws/chat")
async def chat_socket(ws: WebSocket) -> None:
    ctx = get_ws_ctx(ws)
    await ws.accept()
    slug = ws.query_params.get("tenant", "")
    try:
        tenant = await get_tenant_by_slug(ctx, slug) if slug else None
    except PyMongoError:
        await ws.close(CLOSE_TRY_AGAIN, "storage unavailable, retry shortly")
        return
    if tenant is None:
        await ws.send_text(
            json.dumps({"type": "error", "code": "unknown_tenant", "message": "unknown tenant"})
        )
        await ws.close(CLOSE_UNKNOWN_TENANT, "unknown tenant")
        return
    session = ChatSession(ctx, ws, tenant)
    forwarder: asyncio.Task[None] | None = None
    try:
        first = await asyncio.wait_for(session.receive(), HELLO_TIMEOUT_S)
        if first.get("type") != "hello":
            await session.send(
                {"type": "error", "code": "bad_frame", "message": "the first frame must be hello"}
            )
            await ws.close(CLOSE_BAD_FRAME, "expected hello")
            return
        await session.hello(first)
        forwarder = asyncio.create_task(session.forward())
        while True:
            try:
                frame = await session.receive()
                kind = frame["type"]
                if kind == "message":
                    await session.message(frame)
                elif kind == "identify":
                    await session.identify(frame)
                elif kind == "ping":
                    await session.send({"type": "pong"})
                elif kind == "hello":
                    raise FrameError("bad_frame", "hello was already received")
                else:
                    raise FrameError("bad_frame", f"unknown frame type {kind!r}")
            except FrameError as exc:
                await session.send({"type": "error", "code": exc.code, "message": str(exc)})
    except OverflowError:
        await ws.close(CLOSE_TOO_BIG, "frame too big")
    except (TimeoutError, FrameError):
        with contextlib.suppress(Exception):
            await ws.close(CLOSE_BAD_FRAME, "expected hello")
    except PyMongoError as exc:
        log.warning("chat socket: database unavailable: %s", exc)
        with contextlib.suppress(Exception):
            await session.send(
                {
                    "type": "error",
                    "code": "storage_unavailable",
                    "message": "We could not save that; reconnecting and resending.",
                }
            )
            await ws.close(CLOSE_TRY_AGAIN, "storage unavailable, retry shortly")
    except WebSocketDisconnect:
        pass
    finally:
        if forwarder is not None:
            forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await forwarder
        session.close()
