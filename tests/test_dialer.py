"""The dialer in a real hub, through the real `twilio` client and the local Twilio double:
pacing by free agents, dial-time compliance, answered calls put through to an agent within
2 s (or abandoned and hung up), retries per outcome."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id
from tests.conftest import context_for
from tests.support import Agent, HubProcess
from tests.test_voice_twilio import wait_for
from tests.twilio_double import TwilioDouble
from tests.voice_support import TwilioCaller

CALLER_ID = "+14155550199"
ALL_DAY = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


async def campaign_with_targets(
    hub: HubProcess, mongo: EmbeddedDatabase, sam: Agent, tenant_id: str, numbers: list[str], **settings: Any
) -> str:
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        await ctx.db.caller_ids.update_one(
            {"tenant_id": tenant_id, "number": CALLER_ID},
            {"$set": {"status": "approved"}, "$setOnInsert": {"_id": new_id()}},
            upsert=True,
        )
        body = {
            "name": "Renewals",
            "type": "progressive",
            "caller_id": CALLER_ID,
            "schedule": {"windows": ALL_DAY},
            **settings,
        }
        created = await sam.http.post("/api/campaigns", json=body)
        assert created.status_code == 201, created.text
        campaign_id = str(created.json()["id"])
        for index, number in enumerate(numbers):
            await ctx.db.campaign_targets.insert_one(
                {
                    "_id": f"{campaign_id}-{index}",
                    "tenant_id": tenant_id,
                    "campaign_id": campaign_id,
                    "number": number,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": None,
                    "callback_at": None,
                }
            )
    finally:
        await ctx.db.close()
    return campaign_id


async def supervisor_and_agent(
    hub: HubProcess, tenant_in: Any, admin: bool = False
) -> tuple[dict[str, Any], Agent, Agent]:
    """A fresh tenant with Sam (supervisor, `admin` too if asked) and Ann (agent), both signed in."""
    roles = ["supervisor", "admin"] if admin else ["supervisor"]
    t = await tenant_in(hub, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": roles})
    sam, ann = Agent(hub.url, t["slug"], "sam@t.test"), Agent(hub.url, t["slug"], "ann@t.test")
    await sam.login()
    await ann.login()
    return t, sam, ann


async def pick_up(
    twilio_double: TwilioDouble, hub: HubProcess, sid: str, answered_by: str = "human"
) -> TwilioCaller:
    """The callee answers: Twilio fetches the hub's TwiML and opens the media stream it names."""
    twiml = await twilio_double.answer(sid, answered_by=answered_by)
    token = re.search(r'name="token" value="([^"]+)"', twiml)
    assert token is not None, twiml
    callee = TwilioCaller(hub.ws_url, token.group(1), sid)
    await callee.connect()
    return callee


async def target(mongo: EmbeddedDatabase, hub: HubProcess, target_id: str) -> dict[str, Any]:
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        found = await ctx.db.campaign_targets.find_one({"_id": target_id})
        assert found is not None
        return found
    finally:
        await ctx.db.close()


async def attempts(mongo: EmbeddedDatabase, hub: HubProcess, campaign_id: str) -> list[dict[str, Any]]:
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        return [a async for a in ctx.db.dial_attempts.find({"campaign_id": campaign_id}).sort("placed_at", 1)]
    finally:
        await ctx.db.close()


async def test_progressive_campaign_dials_within_the_rules_and_puts_callees_through(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, twilio_double: TwilioDouble, tenant_in
) -> None:
    t, sam, ann = await supervisor_and_agent(hub_nobot, tenant_in)
    ann_id = t["users"]["ann"]["_id"]
    good, blocked, busy = "+14155550101", "+14155550102", "+14155550103"
    cid = await campaign_with_targets(
        hub_nobot,
        mongo,
        sam,
        t["tenant"]["_id"],
        [good, blocked, busy],
        agent_ids=[ann_id],
        retries={"busy": {"max": 1, "wait_s": 600}},
    )
    listed = await sam.http.post(
        "/api/dnc", json={"number": blocked, "list": "black", "reason": "asked not to be called"}
    )
    assert listed.status_code in (200, 201), listed.text
    assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200

    # no agent free: progressive pacing places nothing
    assert not [c for c in twilio_double.creates() if c.get("From") == CALLER_ID]
    await ann.available()
    await twilio_double.wait_for(lambda: [c for c in twilio_double.creates() if c.get("From") == CALLER_ID])
    placed = [c for c in twilio_double.creates() if c.get("From") == CALLER_ID]
    assert len(placed) == 1 and placed[0].get("To") in (good, busy)  # one call for one free agent
    assert placed[0].get("Timeout") == "30" and placed[0].get("Record") in ("true", "True")
    first = placed[0]
    sid = str((await attempts(mongo, hub_nobot, cid))[0]["call_sid"])

    # the callee answers: put through to ann at once (no ringing her desk for it)
    await twilio_double.ring(sid)
    callee = await pick_up(twilio_double, hub_nobot, sid)

    async def put_through() -> dict[str, Any] | None:
        found = await attempts(mongo, hub_nobot, cid)
        return found[0] if found and found[0].get("agent_id") == ann_id else None

    attempt = await wait_for(put_through, timeout=10)
    assert attempt["outcome"] == "answered"
    await twilio_double.complete(sid, 42)

    async def finished() -> dict[str, Any] | None:
        found = await target(mongo, hub_nobot, attempt["target_id"])
        return found if found["status"] == "done" else None

    done = await wait_for(finished, timeout=10)
    assert done["last_outcome"] == "answered" and done["last_agent_id"] == ann_id
    await callee.hang_up()
    # the black-listed number is never dialled: skipped with the reason
    skipped = await target(mongo, hub_nobot, f"{cid}-1")
    assert skipped["status"] == "skipped" and skipped["last_block"] == "black_list"
    assert all(c.get("To") != blocked for c in twilio_double.creates())
    assert first.get("To") != blocked
    await sam.http.post(f"/api/campaigns/{cid}/stop")
    await sam.close()
    await ann.close()


async def test_busy_is_retried_later_and_an_answer_without_an_agent_is_abandoned(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, twilio_double: TwilioDouble, tenant_in
) -> None:
    t, sam, ann = await supervisor_and_agent(hub_nobot, tenant_in)
    numbers = ["+14155550111", "+14155550112"]
    cid = await campaign_with_targets(
        hub_nobot,
        mongo,
        sam,
        t["tenant"]["_id"],
        numbers,
        agent_ids=[t["users"]["ann"]["_id"]],
        retries={"busy": {"max": 1, "wait_s": 900}},
    )
    assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200
    await ann.available()

    async def placed(n: int) -> list[dict[str, Any]] | None:
        found = [a for a in await attempts(mongo, hub_nobot, cid) if a.get("call_sid")]
        return found if len(found) >= n else None

    first = (await wait_for(lambda: placed(1), timeout=15))[0]
    await twilio_double.ring(first["call_sid"])
    await twilio_double.busy(first["call_sid"])

    async def rescheduled() -> dict[str, Any] | None:
        found = await target(mongo, hub_nobot, first["target_id"])
        return found if found["status"] == "pending" and found.get("next_attempt_at") else None

    retry = await wait_for(rescheduled, timeout=10)
    wait = retry["next_attempt_at"].replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(seconds=800) < wait <= timedelta(seconds=900) and retry["last_outcome"] == "busy"

    # ann becomes busy elsewhere; the next number answers and nobody takes it within 2 s
    second = (await wait_for(lambda: placed(2), timeout=15))[1]
    await ann.http.post("/api/agent/presence", json={"state": "not_ready", "reason": "break"})
    callee = await pick_up(twilio_double, hub_nobot, second["call_sid"])

    async def abandoned() -> dict[str, Any] | None:
        found = next(a for a in await attempts(mongo, hub_nobot, cid) if a["_id"] == second["_id"])
        return found if found["outcome"] == "abandoned" else None

    await wait_for(abandoned, timeout=10)
    hung_up = await twilio_double.wait_for(lambda: twilio_double.updates(second["call_sid"]), timeout=10)
    assert hung_up[0].get("Status") == "completed"
    figures = (await sam.http.get(f"/api/campaigns/{cid}/progress")).json()
    assert figures["outcomes"].get("abandoned") == 1 and figures["outcomes"].get("busy") == 1
    await callee.hang_up()
    await sam.http.post(f"/api/campaigns/{cid}/stop")
    await sam.close()
    await ann.close()


async def test_preview_agent_sees_the_record_confirms_a_grey_number_and_is_put_through(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, twilio_double: TwilioDouble, tenant_in
) -> None:
    t, sam, ann = await supervisor_and_agent(hub_nobot, tenant_in)
    grey = "+14155550121"
    cid = await campaign_with_targets(hub_nobot, mongo, sam, t["tenant"]["_id"], [grey], type="preview")
    listed = await sam.http.post(
        "/api/dnc", json={"number": grey, "list": "grey", "reason": "complained once"}
    )
    assert listed.status_code in (200, 201), listed.text
    assert (await ann.http.get(f"/api/campaigns/{cid}/next")).status_code == 409  # not running yet
    assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200
    await ann.available()
    record = (await ann.http.get(f"/api/campaigns/{cid}/next")).json()
    assert record["target"]["number"] == grey and record["needs_confirmation"] and not record["may_dial"]
    assert (await sam.http.get(f"/api/campaigns/{cid}/next")).json()["target"] is None  # held for ann
    refused = await ann.http.post(f"/api/campaigns/{cid}/targets/{record['target']['id']}/dial", json={})
    assert refused.status_code == 409 and "grey_list" in refused.json()["detail"]
    dialled = await ann.http.post(
        f"/api/campaigns/{cid}/targets/{record['target']['id']}/dial", json={"confirm": True}
    )
    assert dialled.status_code == 200, dialled.text
    sid = dialled.json()["call_sid"]
    assert sid and twilio_double.call(sid).get("To") == grey
    callee = await pick_up(twilio_double, hub_nobot, sid)

    async def with_ann() -> dict[str, Any] | None:
        ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
        try:
            return await ctx.db.contacts.find_one(
                {"call_sid": sid, "status": "assigned", "agent_id": t["users"]["ann"]["_id"]}
            )
        finally:
            await ctx.db.close()

    try:
        await wait_for(with_ann, timeout=10)
    except TimeoutError:
        ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
        found = await ctx.db.contacts.find_one({"call_sid": sid})
        tries = [a async for a in ctx.db.dial_attempts.find({"call_sid": sid})]
        await ctx.db.close()
        raise AssertionError(f"contact {found} attempts {tries}") from None
    await callee.hang_up()
    await sam.http.post(f"/api/campaigns/{cid}/stop")
    await sam.close()
    await ann.close()


async def test_a_robot_call_opt_out_key_stops_every_campaign_at_once(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, twilio_double: TwilioDouble, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": ["general"]}, roles={"sam": ["supervisor"]})
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    await sam.login()
    tenant_id = t["tenant"]["_id"]
    number = "+14155550131"
    flow_id = f"robot-{tenant_id}"
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        await ctx.db.ivr_flows.insert_one(
            {
                "_id": flow_id,
                "tenant_id": tenant_id,
                "number": f"+1415555{tenant_id[:4].encode().hex()[:4]}",
                "name": "reminder",
                "start": "remind",
                "nodes": {
                    "remind": {
                        "type": "menu",
                        "prompt": "Your bill is due. Press one to hear it again, nine to stop these calls.",
                        "timeout_s": 20,
                        "retries": 2,
                        "options": [{"key": "1", "next": "remind"}],
                    }
                },
            }
        )
    finally:
        await ctx.db.close()
    robot = await campaign_with_targets(
        hub_nobot, mongo, sam, tenant_id, [number], type="robot", flow_id=flow_id
    )
    other = await campaign_with_targets(hub_nobot, mongo, sam, tenant_id, [number], type="preview")
    assert (await sam.http.post(f"/api/campaigns/{robot}/start")).status_code == 200
    placed = await twilio_double.wait_for(
        lambda: [c for c in twilio_double.creates() if c.get("To") == number]
    )
    sid = next(a["call_sid"] for a in await attempts(mongo, hub_nobot, robot) if a.get("call_sid"))
    assert placed[0].get("From") == CALLER_ID
    callee = await pick_up(twilio_double, hub_nobot, sid)
    await callee.wait_audio(4000)  # the reminder is playing
    await callee.press("9")
    await callee.silence(3.0)

    async def opted_out() -> dict[str, Any] | None:
        entries = (await sam.http.get("/api/dnc", params={"number": number})).json()["entries"]
        return entries[0] if entries else None

    entry = await wait_for(opted_out, timeout=10)
    assert entry["list"] == "black" and entry["source"] == "opt_out_key"
    assert (await target(mongo, hub_nobot, f"{other}-0"))["status"] == "skipped"  # the other campaign too
    await asyncio.wait_for(callee._reader, 15)  # type: ignore[arg-type]
    assert callee.hung_up_by_hub
    for campaign_id in (robot, other):
        await sam.http.post(f"/api/campaigns/{campaign_id}/stop")
    await sam.close()


async def test_a_robot_call_asks_a_questionnaire_by_keys_and_stores_the_answers(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, twilio_double: TwilioDouble, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": ["general"]}, roles={"sam": ["supervisor"]})
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    await sam.login()
    survey = {
        "name": "Satisfaction",
        "questions": [
            {"key": "happy", "text": "Are you happy with us?", "kind": "single", "options": ["Yes", "No"]},
            {"key": "score", "text": "Your score from 0 to 10?", "kind": "number", "min": 0, "max": 10},
        ],
        "end_text": "Thank you for your answers.",
    }
    created = await sam.http.post("/api/questionnaires", json=survey)
    assert created.status_code == 201, created.text
    qid = created.json()["id"]
    number = "+14155550141"
    cid = await campaign_with_targets(
        hub_nobot,
        mongo,
        sam,
        t["tenant"]["_id"],
        [number],
        type="robot",
        questionnaire_id=qid,
        opt_out_key="*",
    )
    assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200
    await twilio_double.wait_for(lambda: [c for c in twilio_double.creates() if c.get("To") == number])
    sid = next(a["call_sid"] for a in await attempts(mongo, hub_nobot, cid) if a.get("call_sid"))
    callee = await pick_up(twilio_double, hub_nobot, sid)
    await callee.wait_audio(4000)  # the first question
    await callee.press("1")
    await callee.silence(1.0)
    for key in ("7", "#"):
        await callee.press(key)
    await asyncio.wait_for(callee._reader, 20)  # type: ignore[arg-type]
    assert callee.hung_up_by_hub  # thanked and hung up

    async def answered() -> dict[str, Any] | None:
        ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
        try:
            return await ctx.db.contacts.find_one({"call_sid": sid, f"answers.{qid}": {"$exists": True}})
        finally:
            await ctx.db.close()

    contact = await wait_for(answered, timeout=10)
    assert contact["answers"][qid] == {"happy": "1", "score": 7}
    stats = (await sam.http.get(f"/api/questionnaires/{qid}/stats")).json()
    assert stats["completed"] == 1, stats
    await sam.http.post(f"/api/campaigns/{cid}/stop")
    await sam.close()


async def test_withdrawing_the_caller_id_approval_pauses_a_running_campaign(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": ["general"]}, roles={"sam": ["supervisor"]})
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    await sam.login()
    cid = await campaign_with_targets(hub_nobot, mongo, sam, t["tenant"]["_id"], ["+14155550151"])
    assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        await ctx.db.caller_ids.update_one(
            {"tenant_id": t["tenant"]["_id"], "number": CALLER_ID}, {"$set": {"status": "rejected"}}
        )
    finally:
        await ctx.db.close()

    async def paused() -> dict[str, Any] | None:
        found = (await sam.http.get(f"/api/campaigns/{cid}")).json()
        return found if found["state"] == "paused" else None

    campaign = await wait_for(paused, timeout=10)
    assert "not approved" in campaign["paused_because"]
    assert (await sam.http.post(f"/api/campaigns/{cid}/resume")).status_code == 409
    await sam.close()


async def test_an_answering_machine_gets_the_campaigns_message_and_the_number_is_retried(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, twilio_double: TwilioDouble, tenant_in
) -> None:
    import io
    import wave

    import numpy as np

    from tests.desk_support import level_at, tone_pcm

    t, sam, ann = await supervisor_and_agent(hub_nobot, tenant_in, admin=True)
    message = io.BytesIO()
    with wave.open(message, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(tone_pcm(440, 8000, 2.0))
    uploaded = await sam.http.post(
        "/api/ivr/prompts", files={"file": ("msg.wav", message.getvalue(), "audio/wav")}
    )
    assert uploaded.status_code == 201, uploaded.text
    prompt_id = uploaded.json()["id"]
    number = "+14155550161"
    cid = await campaign_with_targets(
        hub_nobot,
        mongo,
        sam,
        t["tenant"]["_id"],
        [number],
        agent_ids=[t["users"]["ann"]["_id"]],
        amd={"enabled": True, "message_prompt_id": prompt_id},
    )
    refused = await sam.http.post(f"/api/campaigns/{cid}/start")
    assert (
        refused.status_code == 409 and "not approved" in refused.json()["detail"]
    )  # the message needs approval
    assert (await sam.http.post(f"/api/ivr/prompts/{prompt_id}/approve")).status_code == 200
    assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200
    await ann.available()
    placed = await twilio_double.wait_for(
        lambda: [c for c in twilio_double.creates() if c.get("To") == number]
    )
    assert placed[0].get("MachineDetection") == "DetectMessageEnd"
    sid = next(a["call_sid"] for a in await attempts(mongo, hub_nobot, cid) if a.get("call_sid"))
    machine = await pick_up(twilio_double, hub_nobot, sid, answered_by="machine_end_beep")
    await asyncio.wait_for(machine._reader, 20)  # type: ignore[arg-type]
    heard = np.frombuffer(machine.received_pcm(), dtype="<i2")
    assert level_at(heard, 8000, 440) > 1000  # the message was left
    await twilio_double.complete(sid, 9)

    async def retried() -> dict[str, Any] | None:
        found = await target(mongo, hub_nobot, f"{cid}-0")
        return found if found["status"] == "pending" and found.get("last_outcome") == "machine" else None

    await wait_for(retried, timeout=10)
    await sam.http.post(f"/api/campaigns/{cid}/stop")
    await sam.close()
    await ann.close()


async def test_an_sms_campaign_texts_each_allowed_target_once_through_the_outbox(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, twilio_double: TwilioDouble, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": ["general"]}, roles={"sam": ["supervisor"]})
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    await sam.login()
    good, blocked = "+14155550181", "+14155550182"
    cid = await campaign_with_targets(
        hub_nobot,
        mongo,
        sam,
        t["tenant"]["_id"],
        [good, blocked],
        type="sms",
        sms_text="Hi {name}, your {plan} renews soon.",
    )
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        await ctx.db.campaign_targets.update_one(
            {"_id": f"{cid}-0"}, {"$set": {"name": "Grace", "fields": {"plan": "Fibre 500"}}}
        )
    finally:
        await ctx.db.close()
    await sam.http.post("/api/dnc", json={"number": blocked, "list": "red", "reason": "complaint"})
    assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200
    texts = await twilio_double.wait_for(lambda: twilio_double.sent_messages(good), timeout=20)
    assert texts[0]["body"] == "Hi Grace, your Fibre 500 renews soon." and texts[0]["from"] == CALLER_ID

    async def completed() -> dict[str, Any] | None:
        found = (await sam.http.get(f"/api/campaigns/{cid}")).json()
        return found if found["state"] == "completed" else None

    await wait_for(completed, timeout=15)
    assert not twilio_double.sent_messages(blocked) and len(twilio_double.sent_messages(good)) == 1
    assert (await target(mongo, hub_nobot, f"{cid}-1"))["status"] == "skipped"
    await sam.close()
