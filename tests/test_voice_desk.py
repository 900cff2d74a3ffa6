"""The agent voice desk end to end, by frequency: a synthetic Twilio caller humming 600 Hz,
agents' and supervisors' softphones (aiortc) humming their own tones, a real hub."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from gridfs.asynchronous import AsyncGridFSBucket

from hub.embedded_db import EmbeddedDatabase
from media.recording import read_channels
from tests.conftest import context_for
from tests.desk_support import ToneSoftphone, caller_level, keep_playing, keys_flow, level_at, peak_level
from tests.support import Agent, HubProcess
from tests.test_voice_twilio import contact_for, contact_when, incoming, install_flow, wait_for
from tests.voice_support import TwilioCaller

pytestmark = pytest.mark.voice

CALLER_HZ, ANN_HZ, BOB_HZ, SAM_HZ = 600.0, 1000.0, 1300.0, 1700.0
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


async def test_caller_agent_hold_whisper_barge_and_recording(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]}
    )
    ann, ann_phone = await signed_in(hub_nobot, t["slug"], "ann", ANN_HZ)
    sam, sam_phone = await signed_in(hub_nobot, t["slug"], "sam", SAM_HZ)
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
        assert float(np.sqrt(np.mean(held.astype(np.float64) ** 2))) > 300  # music, not silence
        assert (await ann.http.post(f"/api/calls/{contact_id}/hold", json={"on": False})).status_code == 200

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
