"""The widget protocol against a real hub process and the embedded database.

This hub's Rasa is down, so every conversation goes to the agents: the protocol
is tested without depending on the bot's answers.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest
import websockets

from tests.support import TEST_SECRET, Agent, HubProcess, Widget, close_code


async def test_message_is_acked_with_id_and_seq_and_resend_is_idempotent(
    hub_nobot: HubProcess, tenant_in
) -> None:
    t = await tenant_in(hub_nobot)
    widget = Widget(hub_nobot.ws_url, t["slug"])
    welcome = await widget.connect()
    assert welcome["contact_id"] is None and welcome["status"] == "new"
    ack = await widget.say("hello there", client_id="same-id")
    assert ack["seq"] == 1 and len(ack["id"]) == 32 and ack["contact_id"]
    again = await widget.say("hello there", client_id="same-id")
    assert again["id"] == ack["id"] and again["seq"] == 1
    await widget.reply_from("bot", 1)
    await widget.close()
    # the transcript holds the message once
    agent = Agent(hub_nobot.url, t["slug"], "ann@t.test")
    await agent.login()
    await agent.available()
    await agent.wait_offer(ack["contact_id"])
    pop = (await agent.http.get(f"/api/contacts/{ack['contact_id']}")).json()
    assert [m["text"] for m in pop["messages"] if m["author"] == "visitor"] == ["hello there"]
    await agent.close()


async def test_rasa_down_tells_the_visitor_and_queues_for_an_agent(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    widget = Widget(hub_nobot.ws_url, t["slug"])
    await widget.connect()
    ack = await widget.say("my internet is down")
    bot = await widget.reply_from("bot", ack["seq"])
    assert "unavailable" in bot["text"]
    await widget.wait_status("queued")
    agent = Agent(hub_nobot.url, t["slug"], "ann@t.test")
    await agent.login()
    await agent.available()
    offer = await agent.wait_offer(ack["contact_id"])
    assert offer["reason"] == "bot_unavailable" and offer["preview"] == "my internet is down"
    await agent.close()
    await widget.close()


async def test_reconnect_replays_what_was_missed(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    widget = Widget(hub_nobot.ws_url, t["slug"])
    await widget.connect()
    ack = await widget.say("first")
    await widget.reply_from("bot", ack["seq"])
    seen = widget.last_seq
    await widget.close()
    # while the widget is away an agent answers
    agent = Agent(hub_nobot.url, t["slug"], "ann@t.test")
    await agent.login()
    await agent.available()
    await agent.wait_offer(ack["contact_id"])
    assert (await agent.http.post(f"/api/contacts/{ack['contact_id']}/accept")).status_code == 200
    sent = await agent.http.post(f"/api/contacts/{ack['contact_id']}/messages", json={"text": "Hi, Ann here"})
    assert sent.status_code == 200
    await agent.close()
    welcome = await widget.connect()
    assert welcome["contact_id"] == ack["contact_id"] and welcome["status"] == "assigned"
    assert welcome["agent_name"] == "Ann"
    reply = await widget.reply_from("agent", seen)
    assert reply["text"] == "Hi, Ann here" and reply["author_name"] == "Ann"
    replayed = [f for f in widget.frames if f["type"] == "message"]
    assert all(f["seq"] > seen for f in replayed[-2:])
    await widget.close()


async def test_first_frame_must_be_hello(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    async with websockets.connect(f"{hub_nobot.ws_url}/ws/chat?tenant={t['slug']}") as ws:
        await ws.send(json.dumps({"type": "message", "client_id": "x", "text": "hi"}))
        error = json.loads(await ws.recv())
        assert error["type"] == "error" and error["code"] == "bad_frame"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert close_code(closed.value) == 4400


async def test_malformed_frames_get_clear_errors_and_the_session_survives(
    hub_nobot: HubProcess, tenant_in
) -> None:
    t = await tenant_in(hub_nobot)
    widget = Widget(hub_nobot.ws_url, t["slug"])
    await widget.connect()
    await widget.ws.send("this is not json")
    assert (await widget.expect("error"))["code"] == "bad_frame"
    await widget.send({"type": "message", "text": "no client id"})
    assert (await widget.expect("error"))["code"] == "bad_frame"
    await widget.send({"type": "teleport"})
    assert "unknown frame type" in (await widget.expect("error"))["message"]
    await widget.send({"type": "message", "client_id": "long", "text": "x" * 4001})
    assert (await widget.expect("error"))["code"] == "text_too_long"
    await widget.send({"type": "identify", "email": "not-an-email"})
    assert (await widget.expect("error"))["code"] == "invalid_contact_detail"
    await widget.send({"type": "ping"})
    await widget.expect("pong")
    ack = await widget.say("still here")
    assert ack["seq"] == 1
    await widget.close()


async def test_oversized_frame_closes_with_1009(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    widget = Widget(hub_nobot.ws_url, t["slug"])
    await widget.connect()
    await widget.ws.send(json.dumps({"type": "message", "client_id": "big", "text": "x" * 40_000}))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await widget.recv()
    assert close_code(closed.value) == 1009


async def test_unknown_tenant_is_refused_with_4404(hub_nobot: HubProcess) -> None:
    async with websockets.connect(f"{hub_nobot.ws_url}/ws/chat?tenant=no-such-tenant") as ws:
        error = json.loads(await ws.recv())
        assert error == {"type": "error", "code": "unknown_tenant", "message": "unknown tenant"}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert close_code(closed.value) == 4404


async def test_expired_or_foreign_visitor_token_cannot_reattach(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    other = await tenant_in(hub_nobot)
    widget = Widget(hub_nobot.ws_url, t["slug"])
    await widget.connect()
    ack = await widget.say("private conversation")
    await widget.close()
    claims = jwt.decode(widget.token or "", TEST_SECRET, algorithms=["HS256"])
    # expired token: clear error, a new identity, and the old conversation is not shown
    expired = jwt.encode({**claims, "exp": int(time.time()) - 10}, TEST_SECRET, algorithm="HS256")
    thief = Widget(hub_nobot.ws_url, t["slug"])
    thief.token, thief.contact_id = expired, ack["contact_id"]
    thief_welcome = await _connect_expect_error(thief, "token_expired")
    assert thief_welcome["contact_id"] is None and thief_welcome["visitor_token"] != expired
    # a valid token of tenant A used on tenant B's widget is rejected as invalid
    foreign = Widget(hub_nobot.ws_url, other["slug"])
    foreign.token, foreign.contact_id = widget.token, ack["contact_id"]
    foreign_welcome = await _connect_expect_error(foreign, "token_invalid")
    assert foreign_welcome["contact_id"] is None
    assert not any(f.get("text") == "private conversation" for f in thief.frames + foreign.frames)


async def _connect_expect_error(widget: Widget, code: str) -> dict:
    widget.ws = await websockets.connect(widget.url)
    await widget.send(
        {"type": "hello", "visitor_token": widget.token, "contact_id": widget.contact_id, "last_seq": 0}
    )
    error = await widget.expect("error")
    assert error["code"] == code
    welcome = await widget.expect("welcome")
    await widget.ws.close()
    return welcome


async def test_identify_links_the_chat_to_a_customer_profile(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    widget = Widget(hub_nobot.ws_url, t["slug"])
    await widget.connect()
    ack = await widget.say("hello")
    await widget.send(
        {"type": "identify", "email": " Pat@Example.COM ", "phone": "(415) 555-0199", "name": "Pat"}
    )
    identified = await widget.expect("identified")
    assert identified["customer"] == {"name": "Pat", "email": "pat@example.com", "phone": "+14155550199"}
    agent = Agent(hub_nobot.url, t["slug"], "ann@t.test")
    await agent.login()
    await agent.available()
    offer = await agent.wait_offer(ack["contact_id"])
    assert offer["customer_name"] == "Pat"
    await agent.close()
    await widget.close()
