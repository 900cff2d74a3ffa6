"""The agent voice desk end to end, by frequency: a synthetic Twilio caller humming 600 Hz,
agents' and supervisors' softphones (aiortc) humming their own tones, a real hub."""

from __future__ import annotations

import asyncio
import io
import time
import wave
from typing import Any

import numpy as np
import pytest
from gridfs.asynchronous import AsyncGridFSBucket

from hub.embedded_db import EmbeddedDatabase
from media.recording import read_channels
from tests.conftest import context_for
from tests.desk_support import (
    ToneSoftphone,
    caller_level,
    keep_playing,
    keys_flow,
    level_at,
    peak_level,
    tone_pcm,
)
from tests.support import Agent, HubProcess
from tests.test_voice_twilio import contact_for, contact_when, incoming, install_flow, wait_for
from tests.voice_support import TwilioCaller

pytestmark = pytest.mark.voice

CALLER_HZ, ANN_HZ, BOB_HZ, SAM_HZ, MUSIC_HZ = 600.0, 1000.0, 1300.0, 1700.0, 440.0
HEARD = 1500.0  # amplitude of a tone that got through (sent at 8000, codecs and mixing cost some)
SILENT = 300.0


def token_of(agent: Agent) -> str:
    return agent.http.headers["Authorization"].split()[1]


async def signed_in(hub: HubProcess, slug: str, name: str, freq: float | None) -> tuple[Agent, ToneSoftphone]:
    agent = Agent(hub.url, slug, f"{name}@t.test")
    await agent.login()
    phone = ToneSoftphone(hub.url, token_of(agent), freq)
    await phone.connect()

    async def registered() -> bool:
        return bool((await agent.http.get("/api/softphone")).json()["connected"])

    await wait_for(registered, timeout=15)
    return agent, phone


async def call_in(
    hub: HubProcess, mongo: EmbeddedDatabase, tenant_id: str, number: str, sid: str
) -> tuple[TwilioCaller, asyncio.Task[None], dict[str, Any]]:
    await install_flow(mongo, hub, keys_flow(tenant_id, number))
    caller = TwilioCaller(hub.ws_url, incoming(hub, sid, to=number), sid)
    await caller.connect()
    hum = asyncio.create_task(keep_playing(caller, CALLER_HZ))
    contact = await contact_when(mongo, hub, sid, lambda c: c["status"] in ("queued", "offered"))
    return caller, hum, contact


async def answer(agent: Agent, contact_id: str) -> None:
    await agent.wait_offer(contact_id)
    assert (await agent.http.post(f"/api/contacts/{contact_id}/accept")).status_code == 200

    async def bridged() -> bool:
        bridge = (await agent.http.get("/api/softphone")).json()["bridge"]
        return bool(bridge and any(p["role"] == "customer" for p in bridge["parties"]))

    await wait_for(bridged, timeout=15)
    await asyncio.sleep(0.5)


async def contact_doc(mongo: EmbeddedDatabase, hub: HubProcess, contact_id: str) -> dict[str, Any]:
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        return await ctx.db.contacts.find_one({"_id": contact_id}) or {}
    finally:
        await ctx.db.close()


async def test_caller_agent_hold_whisper_barge_and_recording(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]}
    )
    ann, ann_phone = await signed_in(hub_nobot, t["slug"], "ann", ANN_HZ)
    sam, sam_phone = await signed_in(hub_nobot, t["slug"], "sam", SAM_HZ)
    # the queue's own hold music: an uploaded prompt, a 440 Hz tone
    music = io.BytesIO()
    with wave.open(music, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(tone_pcm(MUSIC_HZ, 16000, 2.0))
    uploaded = await sam.http.post(
        "/api/ivr/prompts", files={"file": ("music.wav", music.getvalue(), "audio/wav")}
    )
    assert uploaded.status_code == 201, uploaded.text
    queue = await sam.http.post(
        "/api/queues", json={"name": "general", "skills": {"general": 1}, "hold_music": uploaded.json()["id"]}
    )
    assert queue.status_code == 201, queue.text
    await ann.available()
    caller, hum, contact = await call_in(
        hub_nobot, mongo, t["tenant"]["_id"], "+15557771001", "CA" + "a1" * 16
    )
    contact_id = contact["_id"]
    try:
        await answer(ann, contact_id)
        # both ways
        assert await ann_phone.level(CALLER_HZ) > HEARD
        assert await caller_level(caller, ANN_HZ) > HEARD

        # hold: the caller hears the music, not the agent; the agent no longer hears the caller
        assert (await ann.http.post(f"/api/calls/{contact_id}/hold", json={"on": True})).status_code == 200
        await asyncio.sleep(0.3)
        start = len(caller.received)
        agent_hears = await ann_phone.level(CALLER_HZ)
        held = np.frombuffer(__import__("audioop").ulaw2lin(bytes(caller.received[start:]), 2), dtype="<i2")
        assert level_at(held, 8000, ANN_HZ) < SILENT and agent_hears < SILENT
        assert level_at(held, 8000, MUSIC_HZ) > HEARD  # the queue's music
        assert (await ann.http.post(f"/api/calls/{contact_id}/hold", json={"on": False})).status_code == 200
        # the hold time is kept on the contact for the reports (reports/facts.py)
        held_s = 0.0
        for _ in range(50):
            held_s = float((await contact_doc(mongo, hub_nobot, contact_id)).get("hold_s") or 0.0)
            if held_s:
                break
            await asyncio.sleep(0.1)
        assert 0.3 <= held_s < 10

        # the supervisor sees the call, listens silently, then whispers, then barges in
        live = (await sam.http.get("/api/calls/live")).json()
        assert [c["contact_id"] for c in live] == [contact_id] and live[0]["agent_id"]
        assert (await ann.http.get("/api/calls/live")).status_code == 403
        listen = await sam.http.post(f"/api/calls/{contact_id}/monitor", json={"mode": "listen"})
        assert listen.status_code == 200, listen.text
        await asyncio.sleep(0.3)
        ann_level, sam_level = await asyncio.gather(ann_phone.level(SAM_HZ), sam_phone.level(CALLER_HZ))
        assert ann_level < SILENT and sam_level > HEARD
        assert await sam_phone.level(ANN_HZ) > HEARD

        await sam.http.post(f"/api/calls/{contact_id}/monitor", json={"mode": "whisper"})
        await asyncio.sleep(0.3)
        ann_level, caller_heard = await asyncio.gather(ann_phone.level(SAM_HZ), caller_level(caller, SAM_HZ))
        assert ann_level > HEARD and caller_heard < SILENT  # the agent only

        await sam.http.post(f"/api/calls/{contact_id}/monitor", json={"mode": "barge"})
        await asyncio.sleep(0.3)
        ann_level, caller_heard = await asyncio.gather(ann_phone.level(SAM_HZ), caller_level(caller, SAM_HZ))
        assert ann_level > HEARD and caller_heard > HEARD  # both
        assert (await sam.http.post("/api/calls/leave")).status_code == 200

        # the agent hangs up: the caller goes on to the survey, the agent wraps up
        bye = await ann.http.post(f"/api/calls/{contact_id}/hangup", json={"after": "survey"})
        assert bye.status_code == 200, bye.text

        async def surveyed() -> bool:
            found = await contact_for(mongo, hub_nobot, caller.call_sid)
            return any("rate this call" in text for author, text in found["messages"] if author == "bot")

        await wait_for(surveyed, timeout=15)
        wrapped = await ann.http.post(f"/api/contacts/{contact_id}/wrapup", json={"disposition": "resolved"})
        assert wrapped.status_code == 200
        await caller.press("5")
        done = await contact_when(mongo, hub_nobot, caller.call_sid, lambda c: c.get("survey_score") == 5)
        assert done["status"] == "closed"
    finally:
        hum.cancel()
        await caller.hang_up()
        for phone in (ann_phone, sam_phone):
            await phone.close()

    # the recording: left = the caller's 600 Hz, right = the agent's 1000 Hz (+ the barge)
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:

        async def stored() -> list[dict[str, Any]]:
            return [r async for r in ctx.db.recordings.find({"contact_id": contact_id})]

        recordings = await wait_for(stored, timeout=15)
        assert len(recordings) == 1
        recording = recordings[0]
        assert recording["channels"] == ["customer", "agent"] and recording["tenant_id"] == t["tenant"]["_id"]
        assert ann.email and recording["agent_ids"] and recording["duration_s"] > 5
        stream = await AsyncGridFSBucket(ctx.db.db, bucket_name="recordings").open_download_stream(
            recording["file_id"]
        )
        rate, customer, agent = read_channels(await stream.read())
        assert level_at(customer, rate, CALLER_HZ) > HEARD and level_at(customer, rate, ANN_HZ) < SILENT
        assert level_at(agent, rate, ANN_HZ) > HEARD and level_at(agent, rate, CALLER_HZ) < SILENT
        assert peak_level(agent, rate, SAM_HZ) > HEARD  # the barge is on the agent side
        assert peak_level(customer, rate, SAM_HZ) < SILENT
    finally:
        await ctx.db.close()
    await ann.close()
    await sam.close()


async def presence(agent: Agent) -> dict[str, Any]:
    result: dict[str, Any] = (await agent.http.get("/api/agent/presence")).json()
    return result


async def my_bridge(agent: Agent) -> dict[str, Any] | None:
    bridge: dict[str, Any] | None = (await agent.http.get("/api/softphone")).json()["bridge"]
    return bridge


async def accept_invite(agent: Agent) -> None:
    """Accept the invitation ringing this agent (taken from the inviter's bridge view)."""

    async def ringing() -> str | None:
        for call in (await agent.http.get("/api/calls/invites")).json():
            return str(call["id"])
        return None

    invite_id = await wait_for(ringing, timeout=10)
    accepted = await agent.http.post(f"/api/calls/invites/{invite_id}/accept")
    assert accepted.status_code == 200, accepted.text
    await asyncio.sleep(0.5)


async def test_a_pause_in_the_agents_packets_does_not_silence_the_line(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"ann": ["general"]})
    ann, ann_phone = await signed_in(hub_nobot, t["slug"], "ann", ANN_HZ)
    await ann.available()
    caller, hum, contact = await call_in(
        hub_nobot, mongo, t["tenant"]["_id"], "+15557771008", "CA" + "c8" * 16
    )
    try:
        await answer(ann, contact["_id"])
        assert await caller_level(caller, ANN_HZ) > HEARD
        ann_phone.paused_until = time.time() + 3.0  # the agent's network stalls for 3 s
        await asyncio.sleep(4.0)
        assert await caller_level(caller, ANN_HZ) > HEARD  # and the caller hears the agent again
        assert await ann_phone.level(CALLER_HZ) > HEARD
    finally:
        hum.cancel()
        await caller.hang_up()
        await ann_phone.close()
    await ann.close()


async def consult_in_progress(ann: Agent, bob: Agent, bob_id: str, contact_id: str) -> None:
    """Ann answers the call and consults Bob, who accepts: the caller is on hold."""
    await answer(ann, contact_id)
    await bob.available()
    consult = await ann.http.post(f"/api/calls/{contact_id}/consult", json={"agent_id": bob_id})
    assert consult.status_code == 200, consult.text
    await accept_invite(bob)


async def test_consult_complete_then_conference(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"ann": ["general"], "bob": ["general"]})
    ann, ann_phone = await signed_in(hub_nobot, t["slug"], "ann", ANN_HZ)
    bob, bob_phone = await signed_in(hub_nobot, t["slug"], "bob", BOB_HZ)
    await ann.available()
    caller, hum, contact = await call_in(
        hub_nobot, mongo, t["tenant"]["_id"], "+15557771002", "CA" + "b2" * 16
    )
    contact_id = contact["_id"]
    try:
        await consult_in_progress(ann, bob, t["users"]["bob"]["_id"], contact_id)
        # the agents talk; the caller is held (music, neither agent)
        ann_hears, bob_hears, caller_hears = await asyncio.gather(
            ann_phone.level(BOB_HZ), bob_phone.level(ANN_HZ), caller_level(caller, ANN_HZ)
        )
        assert ann_hears > HEARD and bob_hears > HEARD and caller_hears < SILENT
        assert await bob_phone.level(CALLER_HZ) < SILENT
        done = await ann.http.post(f"/api/calls/{contact_id}/consult/complete")
        assert done.status_code == 200 and done.json()["agent_id"] == t["users"]["bob"]["_id"], done.text
        assert await my_bridge(ann) is None
        assert (await presence(ann))["load"].get("voice", 0) == 0
        bob_hears, caller_hears = await asyncio.gather(
            bob_phone.level(CALLER_HZ), caller_level(caller, BOB_HZ)
        )
        assert bob_hears > HEARD and caller_hears > HEARD

        # bob brings ann back as a third party: everyone hears everyone
        conf = await bob.http.post(
            f"/api/calls/{contact_id}/conference", json={"agent_id": t["users"]["ann"]["_id"]}
        )
        assert conf.status_code == 200, conf.text
        await accept_invite(ann)
        bridge = await my_bridge(bob)
        assert bridge is not None and len(bridge["parties"]) == 3
        ann_hears, caller_ann, caller_bob = await asyncio.gather(
            ann_phone.level(CALLER_HZ), caller_level(caller, ANN_HZ), caller_level(caller, BOB_HZ, 1.5)
        )
        assert ann_hears > HEARD and caller_ann > HEARD and caller_bob > HEARD
        assert (await presence(ann))["load"].get("voice") == 1  # a conference party holds a slot
        assert (await ann.http.post("/api/calls/leave")).status_code == 200
        assert (await presence(ann))["load"].get("voice", 0) == 0
        after = await contact_for(mongo, hub_nobot, caller.call_sid)
        assert after["agent_id"] == t["users"]["bob"]["_id"] and after["status"] == "assigned"
        assert [x.get("reason") for x in after["transfers"]] == ["consult"]
    finally:
        hum.cancel()
        await caller.hang_up()
        for phone in (ann_phone, bob_phone):
            await phone.close()
    await ann.close()
    await bob.close()


async def test_caller_hanging_up_during_a_consult_ends_both_legs(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"ann": ["general"], "bob": ["general"]})
    ann, ann_phone = await signed_in(hub_nobot, t["slug"], "ann", ANN_HZ)
    bob, bob_phone = await signed_in(hub_nobot, t["slug"], "bob", BOB_HZ)
    await ann.available()
    caller, hum, contact = await call_in(
        hub_nobot, mongo, t["tenant"]["_id"], "+15557771003", "CA" + "c3" * 16
    )
    contact_id = contact["_id"]
    try:
        await consult_in_progress(ann, bob, t["users"]["bob"]["_id"], contact_id)
        assert (await presence(bob))["load"].get("voice") == 1
        hum.cancel()
        await caller.hang_up()

        async def both_free() -> bool:
            return await my_bridge(ann) is None and await my_bridge(bob) is None

        await wait_for(both_free, timeout=15)
        assert (await presence(bob))["load"].get("voice", 0) == 0  # the consulted agent's slot is back
        assert (await presence(bob))["state"] == "available"
        assert (await ann.http.post(f"/api/calls/{contact_id}/consult/complete")).status_code == 409
        # the owner still wraps the contact up as after any call
        wrapped = await ann.http.post(f"/api/contacts/{contact_id}/wrapup", json={"disposition": "resolved"})
        assert wrapped.status_code == 200
        assert (await presence(ann))["load"].get("voice", 0) == 0
        assert (await ann_phone.level(BOB_HZ)) < SILENT and (await bob_phone.level(ANN_HZ)) < SILENT
    finally:
        hum.cancel()
        for phone in (ann_phone, bob_phone):
            await phone.close()
    await ann.close()
    await bob.close()


async def test_agent_browser_drop_sends_the_caller_to_the_queue_head(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"ann": ["general"], "bob": ["general"]})
    ann, ann_phone = await signed_in(hub_nobot, t["slug"], "ann", ANN_HZ)
    await ann.available()
    first, hum1, contact = await call_in(
        hub_nobot, mongo, t["tenant"]["_id"], "+15557771004", "CA" + "d4" * 16
    )
    await answer(ann, contact["_id"])
    second, hum2, later = await call_in(
        hub_nobot, mongo, t["tenant"]["_id"], "+15557771005", "CA" + "e5" * 16
    )
    try:
        assert later["status"] == "queued"
        await ann_phone.close()  # the browser is gone (tab closed, network lost)
        requeued = await contact_when(mongo, hub_nobot, first.call_sid, lambda c: c["status"] == "queued")
        assert requeued["requeue_reason"] == "agent_connection_lost" and requeued["agent_id"] is None
        assert requeued["queued_at"] < later["queued_at"]
        state = await presence(ann)
        assert state["state"] == "not_ready" and state["reason"] == "connection_lost"
        assert state["load"].get("voice", 0) == 0
        # the caller hears hold music again, and the next agent gets the first caller first
        assert await caller_level(first, ANN_HZ) < SILENT
        bob, bob_phone = await signed_in(hub_nobot, t["slug"], "bob", BOB_HZ)
        await bob.available()
        offer = await bob.wait_offer(contact["_id"])
        assert offer["contact_id"] == contact["_id"]
        assert (await bob.http.post(f"/api/contacts/{contact['_id']}/accept")).status_code == 200

        async def bridged() -> bool:
            bridge = await my_bridge(bob)
            return bool(bridge and bridge["contact_id"] == contact["_id"])

        await wait_for(bridged, timeout=15)
        assert await caller_level(first, BOB_HZ) > HEARD
        await bob_phone.close()
        await bob.close()
    finally:
        hum1.cancel()
        hum2.cancel()
        await first.hang_up()
        await second.hang_up()
    await ann.close()


async def test_blind_transfer_keys_internal_call_and_refusals(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "bob": ["general"], "cy": ["general"]}, roles={}
    )
    other = await tenant_in(hub_nobot, agents={"zed": ["general"]}, roles={"zed": ["supervisor"]})
    ann, ann_phone = await signed_in(hub_nobot, t["slug"], "ann", ANN_HZ)
    bob, bob_phone = await signed_in(hub_nobot, t["slug"], "bob", BOB_HZ)
    cy, cy_phone = await signed_in(hub_nobot, t["slug"], "cy", None)
    zed = Agent(hub_nobot.url, other["slug"], "zed@t.test")
    await zed.login()
    await ann.available()
    caller, hum, contact = await call_in(
        hub_nobot, mongo, t["tenant"]["_id"], "+15557771006", "CA" + "f6" * 16
    )
    contact_id = contact["_id"]
    try:
        await answer(ann, contact_id)
        # refusals: another tenant's supervisor cannot see or monitor the call;
        # a colleague not on the call cannot hold it
        assert (
            await zed.http.post(f"/api/calls/{contact_id}/monitor", json={"mode": "listen"})
        ).status_code == 404
        assert all(c["contact_id"] != contact_id for c in (await zed.http.get("/api/calls/live")).json())
        assert (await bob.http.post(f"/api/calls/{contact_id}/hold", json={"on": True})).status_code == 409
        assert (await ann.http.post("/api/calls/dtmf", json={"digits": "12x"})).status_code == 422
        # keys from the agent's keypad reach the caller as DTMF tones (1 = 697 + 1209 Hz)
        start = len(caller.received)
        assert (await ann.http.post("/api/calls/dtmf", json={"digits": "1111"})).status_code == 200
        await asyncio.sleep(1.0)
        import audioop

        tones = np.frombuffer(audioop.ulaw2lin(bytes(caller.received[start:]), 2), dtype="<i2")
        assert peak_level(tones, 8000, 697, 0.5) > 800 and peak_level(tones, 8000, 1209, 0.5) > 800
        # blind transfer to the skill group: bob gets the caller, ann is free at once
        await bob.available()
        moved = await ann.http.post(f"/api/calls/{contact_id}/transfer", json={"skill": "general"})
        assert moved.status_code == 200, moved.text
        assert await my_bridge(ann) is None or (await my_bridge(ann) or {}).get("contact_id") != contact_id
        await answer(bob, contact_id)
        assert await caller_level(caller, BOB_HZ) > HEARD
        # ann calls cy (on a break, but signed in) on an internal line
        await cy.http.post("/api/agent/presence", json={"state": "not_ready", "reason": "break"})
        call = await ann.http.post("/api/calls/internal", json={"agent_id": t["users"]["cy"]["_id"]})
        assert call.status_code == 200, call.text
        await accept_invite(cy)
        cy_phone.freq = 1900.0
        assert await cy_phone.level(ANN_HZ) > HEARD and await ann_phone.level(1900.0) > HEARD
        assert await caller_level(caller, ANN_HZ) < SILENT
        assert (await cy.http.post("/api/calls/leave")).status_code == 200

        async def internal_over() -> bool:
            return await my_bridge(ann) is None

        await wait_for(internal_over, timeout=10)
    finally:
        hum.cancel()
        await caller.hang_up()
        for phone in (ann_phone, bob_phone, cy_phone):
            await phone.close()
    for agent in (ann, bob, cy, zed):
        await agent.close()


async def test_disclosure_before_recording_back_to_menu_and_supervisor_release(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]}
    )
    tenant_id = t["tenant"]["_id"]
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        disclosure = "This call is recorded for training."
        await ctx.db.tenants.update_one(
            {"_id": tenant_id},
            {"$set": {"recording": {"enabled": True, "disclosure": True, "disclosure_text": disclosure}}},
        )
    finally:
        await ctx.db.close()
    ann, ann_phone = await signed_in(hub_nobot, t["slug"], "ann", ANN_HZ)
    sam, sam_phone = await signed_in(hub_nobot, t["slug"], "sam", None)
    await ann.available()
    number = "+15557771007"
    flow = keys_flow(tenant_id, number)
    flow["start"] = "menu"
    flow["nodes"]["menu"] = {
        "type": "menu",
        "prompt": "Press one for our hours, two for an agent.",
        "timeout_s": 20,
        "retries": 3,
        "options": [{"key": "1", "next": "hours"}, {"key": "2", "next": "queue"}],
    }
    flow["nodes"]["hours"] = {"type": "say", "prompt": "We are open every day.", "next": "menu"}
    await install_flow(mongo, hub_nobot, flow)
    sid = "CA" + "a7" * 16
    caller = TwilioCaller(hub_nobot.ws_url, incoming(hub_nobot, sid, to=number), sid)
    await caller.connect()
    hum = asyncio.create_task(keep_playing(caller, CALLER_HZ))
    try:
        await caller.press("2")
        contact = await contact_when(mongo, hub_nobot, sid, lambda c: c["status"] in ("queued", "offered"))
        contact_id = contact["_id"]
        await answer(ann, contact_id)
        said = [
            text for author, text in (await contact_for(mongo, hub_nobot, sid))["messages"] if author == "bot"
        ]
        assert said[-1] == disclosure  # played before the caller was put through (and recorded)
        assert await caller_level(caller, ANN_HZ) > HEARD
        # the agent sends the caller back to the menu; the caller picks the hours
        bye = await ann.http.post(f"/api/calls/{contact_id}/hangup", json={"after": "ivr"})
        assert bye.status_code == 200
        await asyncio.sleep(4.0)
        await caller.press("1")

        async def heard_hours() -> bool:
            ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
            try:
                follow_up = await ctx.db.contacts.find_one({"follows_contact_id": contact_id})
                if follow_up is None:
                    return False
                said = [m["text"] async for m in ctx.db.messages.find({"contact_id": follow_up["_id"]})]
                return "We are open every day." in said and follow_up["status"] == "bot"
            finally:
                await ctx.db.close()

        # the caller's self-service after the agent is a new contact of the same call
        await wait_for(heard_hours, timeout=20)
        assert await my_bridge(ann) is None
        await caller.press("2")  # ... and asks for an agent again: queued as the new contact

        async def queued_again() -> bool:
            ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
            try:
                found = await ctx.db.contacts.find_one({"follows_contact_id": contact_id})
                return found is not None and found["status"] in ("queued", "offered")
            finally:
                await ctx.db.close()

        await wait_for(queued_again, timeout=15)
        assert (
            await ann.http.post(f"/api/contacts/{contact_id}/wrapup", json={"disposition": "resolved"})
        ).status_code == 200
    finally:
        hum.cancel()
        await caller.hang_up()

    # a second call: the supervisor listens in and force-releases it; the caller is let go
    sid2 = "CA" + "b7" * 16
    caller = TwilioCaller(hub_nobot.ws_url, incoming(hub_nobot, sid2, to=number), sid2)
    await caller.connect()
    hum = asyncio.create_task(keep_playing(caller, CALLER_HZ))
    try:
        await caller.press("2")
        second = await contact_when(mongo, hub_nobot, sid2, lambda c: c["status"] in ("queued", "offered"))
        await answer(ann, second["_id"])
        assert (await ann.http.post(f"/api/calls/{second['_id']}/release")).status_code == 403
        listen = await sam.http.post(f"/api/calls/{second['_id']}/monitor", json={"mode": "listen"})
        assert listen.status_code == 200
        released = await sam.http.post(f"/api/calls/{second['_id']}/release")
        assert released.status_code == 200
        await asyncio.wait_for(caller._reader, 15)  # type: ignore[arg-type]
        assert caller.hung_up_by_hub

        async def all_free() -> bool:
            return await my_bridge(ann) is None and await my_bridge(sam) is None

        await wait_for(all_free, timeout=10)
        after = await contact_for(mongo, hub_nobot, sid2)
        assert after["released_by"] == t["users"]["sam"]["_id"] and after["status"] == "assigned"
    finally:
        hum.cancel()
        await caller.hang_up()
        for phone in (ann_phone, sam_phone):
            await phone.close()

    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:

        async def recorded() -> list[dict[str, Any]]:
            return [r async for r in ctx.db.recordings.find({"tenant_id": tenant_id})]

        recordings = await wait_for(recorded, timeout=15)
        assert all(r["disclosure_played"] for r in recordings)
    finally:
        await ctx.db.close()
    await ann.close()
    await sam.close()
