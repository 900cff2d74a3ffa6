"""Faults: the database or the hub restarting mid-chat, ring-no-answer. Nothing may be lost."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from hub.embedded_db import EmbeddedDatabase, free_port
from tests.conftest import context_for, make_tenant
from tests.support import Agent, HubProcess, Widget, close_code


@pytest.fixture
async def own_db(tmp_path: Path) -> AsyncIterator[EmbeddedDatabase]:
    db = EmbeddedDatabase(tmp_path / "db", free_port())
    await db.start()
    yield db
    await db.stop()


def own_hub(tmp_path: Path, db: EmbeddedDatabase, **env: str) -> HubProcess:
    hub = HubProcess(tmp_path / "hub", db.uri, f"http://127.0.0.1:{free_port()}", env=env)
    hub.start()
    return hub


async def visitor_texts(db: EmbeddedDatabase, contact_id: str) -> list[str]:
    ctx = context_for(db.uri, "hubtest")
    try:
        return [
            m["text"] async for m in ctx.db.messages.find({"contact_id": contact_id, "author": "visitor"})
        ]
    finally:
        await ctx.db.close()


async def test_database_restart_mid_chat_loses_nothing(tmp_path: Path, own_db: EmbeddedDatabase) -> None:
    hub = own_hub(tmp_path, own_db)
    try:
        t = await make_tenant(own_db.uri, "hubtest")
        widget = Widget(hub.ws_url, t["slug"])
        await widget.connect()
        first = await widget.say("before the outage")
        await widget.reply_from("bot", first["seq"])
        await own_db.stop()
        health = httpx.get(f"{hub.url}/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["components"]["db"] == "down"
        # the message cannot be stored: a clear error, close 1013, and no ack
        await widget.send({"type": "message", "client_id": "during", "text": "during the outage"})
        error = await widget.expect("error", timeout=20)
        assert error["code"] == "storage_unavailable"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await widget.recv(20)
        assert close_code(closed.value) == 1013
        assert not [f for f in widget.frames if f["type"] == "ack" and f["client_id"] == "during"]
        await own_db.start()
        # the widget reconnects and resends the unacknowledged message with the same client id
        await widget.connect()
        resent = await widget.say("during the outage", client_id="during")
        assert resent["contact_id"] == first["contact_id"]
        again = await widget.say("during the outage", client_id="during")
        assert again["id"] == resent["id"]
        assert await visitor_texts(own_db, first["contact_id"]) == ["before the outage", "during the outage"]
        assert httpx.get(f"{hub.url}/healthz", timeout=10).json()["components"]["db"] == "ok"
        await widget.close()
    finally:
        hub.stop()


async def test_hub_killed_after_ack_replays_and_answers_once(
    tmp_path: Path, own_db: EmbeddedDatabase
) -> None:
    hub = own_hub(tmp_path, own_db)
    try:
        t = await make_tenant(own_db.uri, "hubtest")
        widget = Widget(hub.ws_url, t["slug"])
        await widget.connect()
        ack = await widget.say("please help")
        hub.stop(signal.SIGKILL)  # the bot turn (Rasa retries take >1 s) has not finished
        seen = widget.last_seq
        hub.start()
        welcome = await widget.connect()
        assert welcome["contact_id"] == ack["contact_id"]
        reply = await widget.reply_from("bot", seen, timeout=30)
        assert "unavailable" in reply["text"]
        await widget.wait_status("queued")
        # the queued contact keeps its place across the restart and reaches an agent
        agent = Agent(hub.url, t["slug"], "ann@t.test")
        await agent.login()
        await agent.available()
        await agent.wait_offer(ack["contact_id"])
        pop = (await agent.http.get(f"/api/contacts/{ack['contact_id']}")).json()
        texts = [(m["author"], m["text"]) for m in pop["messages"]]
        assert texts.count(("visitor", "please help")) == 1
        assert sum(1 for author, _ in texts if author == "bot") == 1
        assert [m["seq"] for m in pop["messages"]] == list(range(1, len(texts) + 1))
        await agent.close()
        await widget.close()
    finally:
        hub.stop()


async def test_ring_no_answer_moves_the_offer_and_sets_the_agent_not_ready(
    tmp_path: Path, own_db: EmbeddedDatabase
) -> None:
    hub = own_hub(tmp_path, own_db, HUB_OFFER_TIMEOUT_S="2", HUB_DECLINE_COOLDOWN_S="4")
    try:
        t = await make_tenant(own_db.uri, "hubtest", agents={"ann": ["general"], "ben": ["general"]})
        ann = Agent(hub.url, t["slug"], "ann@t.test")
        ben = Agent(hub.url, t["slug"], "ben@t.test")
        await ann.login()
        await ann.available()
        widget = Widget(hub.ws_url, t["slug"])
        await widget.connect()
        ack = await widget.say("anyone there?")
        await ann.wait_offer(ack["contact_id"])
        await ben.login()
        await ben.available()
        await ben.wait_offer(ack["contact_id"], timeout=10)  # Ann did not answer within 2 s
        presence = (await ann.http.get("/api/agent/presence")).json()
        assert (presence["state"], presence["reason"]) == ("not_ready", "missed_offer")
        assert presence["free"]["chat"] == presence["capacity"]["chat"] == 3
        assert (await ann.http.post(f"/api/contacts/{ack['contact_id']}/accept")).status_code == 409
        # Ben declines: back to the queue, not straight back to Ben; once the cool-down
        # has passed it is offered again rather than stranded
        assert (await ben.http.post(f"/api/contacts/{ack['contact_id']}/decline")).status_code == 200
        assert (await ben.http.get("/api/agent/contacts")).json()["offers"] == []
        await ann.available()
        offer_holder = None
        for _ in range(50):
            for agent in (ann, ben):
                if (await agent.http.get("/api/agent/contacts")).json()["offers"]:
                    offer_holder = agent
            if offer_holder:
                break
            await asyncio.sleep(0.2)
        assert offer_holder is not None
        for client in (ann, ben):
            await client.close()
        await widget.close()
    finally:
        hub.stop()


async def test_a_slot_counter_left_by_a_killed_process_is_repaired(
    tmp_path: Path, own_db: EmbeddedDatabase
) -> None:
    """A hub killed between reserving an agent's slot and writing the offer leaves the counter
    one short; the sweep notices the counter disagrees with the contacts and fixes it."""
    hub = own_hub(tmp_path, own_db, HUB_SLOT_REPAIR_S="2")
    try:
        t = await make_tenant(own_db.uri, "hubtest", agents={"ann": ["general"]})
        ann = Agent(hub.url, t["slug"], "ann@t.test")
        await ann.login()
        await ann.available()
        ctx = context_for(own_db.uri, "hubtest")
        agent_id = t["users"]["ann"]["_id"]
        # what a crash mid-assignment leaves: two slots taken, no contact offered
        from datetime import UTC, datetime, timedelta

        long_ago = datetime.now(UTC) - timedelta(minutes=5)
        await ctx.db.agents.update_one(
            {"_id": agent_id},
            {"$set": {"free.chat": 1, "load.chat": 2, "slots_changed_at": long_ago}},
        )
        for _ in range(50):
            agent = await ctx.db.agents.find_one({"_id": agent_id})
            if agent is not None and agent["free"]["chat"] == agent["capacity"]["chat"]:
                break
            await asyncio.sleep(0.2)
        assert agent is not None and agent["free"]["chat"] == agent["capacity"]["chat"] == 3
        assert agent["load"]["chat"] == 0
        # a counter that agrees with the contacts is left alone
        widget = Widget(hub.ws_url, t["slug"])
        await widget.connect()
        ack = await widget.say("hello?")
        await ann.wait_offer(ack["contact_id"])
        await asyncio.sleep(3)
        agent = await ctx.db.agents.find_one({"_id": agent_id})
        assert agent is not None and (agent["free"]["chat"], agent["load"]["chat"]) == (2, 1)
        await ctx.db.close()
        await ann.close()
        await widget.close()
    finally:
        hub.stop()
