"""The agent desktop's live socket: offers, presence and messages of held contacts."""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pymongo.errors import PyMongoError

from hub.auth import AuthError, websocket_principal
from hub.context import get_ws_ctx
from hub.events import Event

router = APIRouter()


@router.websocket("/ws/agent")
async def agent_socket(ws: WebSocket) -> None:
    ctx = get_ws_ctx(ws)
    await ws.accept()
    try:
        principal = await websocket_principal(ws, ctx)
    except AuthError as exc:
        await ws.send_text(json.dumps({"type": "error", "code": "unauthorized", "message": str(exc)}))
        await ws.close(4401, str(exc))
        return
    except PyMongoError:
        await ws.close(1013, "storage unavailable, retry shortly")
        return
    queue = ctx.bus.new_queue()
    user_topic = f"user:{principal.user_id}"
    ctx.bus.add(user_topic, queue)
    followed: set[str] = set()

    def follow(contact_id: str) -> None:
        if contact_id not in followed:
            followed.add(contact_id)
            ctx.bus.add(f"contact:{contact_id}", queue)

    def unfollow(contact_id: str) -> None:
        if contact_id in followed:
            followed.discard(contact_id)
            ctx.bus.remove(f"contact:{contact_id}", queue)

    async def pump() -> None:
        while True:
            event: Event = await queue.get()
            if event["type"] == "contact":
                contact = event["contact"]
                if contact.get("agent_id") == principal.user_id and contact["status"] == "assigned":
                    follow(contact["id"])
                elif contact["id"] in followed and contact["status"] != "assigned":
                    unfollow(contact["id"])
                if contact.get("agent_id") != principal.user_id:
                    continue
            await ws.send_text(json.dumps(event, default=str))

    async def listen() -> None:
        while True:
            raw = await ws.receive_text()
            if len(raw) > ctx.settings.max_ws_frame_bytes:
                await ws.close(1009, "frame too big")
                return
            with contextlib.suppress(ValueError):
                if json.loads(raw).get("type") == "ping":
                    await ws.send_text('{"type":"pong"}')

    try:
        async for contact in ctx.db.contacts.find(
            {"tenant_id": principal.tenant_id, "status": "assigned", "agent_id": principal.user_id},
            {"_id": 1},
        ):
            follow(contact["_id"])
        await ws.send_text(json.dumps({"type": "ready"}))
        tasks = [asyncio.create_task(pump()), asyncio.create_task(listen())]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
    except (WebSocketDisconnect, PyMongoError):
        pass
    finally:
        ctx.bus.remove(user_topic, queue)
        for contact_id in list(followed):
            unfollow(contact_id)
