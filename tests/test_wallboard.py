"""The supervisor wallboard: live queue and agent figures within a second of a change."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import websockets

from tests.support import Agent, HubProcess, Widget, close_code


async def next_board(ws: Any, condition: Any, timeout: float = 10) -> tuple[dict[str, Any], float]:
    """The first pushed snapshot satisfying `condition`, and when it arrived."""
    deadline = time.monotonic() + timeout
    while True:
        board = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if condition(board):
            return board, time.monotonic()


async def test_wallboard_pushes_queue_and_agent_changes(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]}
    )
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    await sam.login()
    token = sam.http.headers["Authorization"].split()[1]
    async with websockets.connect(f"{hub_nobot.ws_url}/ws/wallboard?token={token}") as ws:
        first, _ = await next_board(ws, lambda b: True)
        assert first["waiting"] == 0 and first["service_level"] is None
        widget = Widget(hub_nobot.ws_url, t["slug"])
        await widget.connect()
        await widget.say("I need help")
        changed = time.monotonic()
        board, arrived = await next_board(ws, lambda b: b["waiting"] == 1)
        assert arrived - changed < 3.0  # queued after the bot's retries (~1.5 s), pushed at once
        assert board["queues"]["general"]["waiting"] == 1
        ann = Agent(hub_nobot.url, t["slug"], "ann@t.test")
        await ann.login()
        changed = time.monotonic()
        await ann.available()
        board, arrived = await next_board(ws, lambda b: b["agents"].get("busy") == 1)
        assert arrived - changed < 1.0  # the offer takes ann's slot: she shows as busy within a second
        offer = (await ann.http.get("/api/agent/contacts")).json()["offers"][0]
        await ann.http.post(f"/api/contacts/{offer['contact_id']}/accept")
        board, _ = await next_board(ws, lambda b: b["answered_today"] == 1)
        assert board["waiting"] == 0 and board["service_level"] == 1.0
        general = board["queues"]["general"]  # per queue too, with the queue's threshold
        assert (general["waiting"], general["answered_today"], general["service_level"]) == (0, 1, 1.0)
        assert (await sam.http.get("/api/wallboard")).json()["answered_today"] == 1
        await widget.close()
        await ann.close()
    # agents are not supervisors
    ann = Agent(hub_nobot.url, t["slug"], "ann@t.test")
    await ann.login()
    assert (await ann.http.get("/api/wallboard")).status_code == 403
    agent_token = ann.http.headers["Authorization"].split()[1]
    async with websockets.connect(f"{hub_nobot.ws_url}/ws/wallboard?token={agent_token}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert close_code(closed.value) == 4403
    await ann.close()
    await sam.close()
