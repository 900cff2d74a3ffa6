"""Web click-to-call end to end: the chat widget's "Call us" in headless Chromium against a real hub.

Chromium's fake microphone plays a WAV of espeak-ng saying "상담원 연결" (it loops the
file); the hub answers with pipecat SmallWebRTC, recognises the phrase with the real
Vosk Korean model (the menu's grammar), queues the call, and speaks with Piper. The
page measures the bot's audio with an AnalyserNode and WebRTC stats.

Without a browser: the offer endpoint's refusals, the per-tenant limit, and a Python
aiortc peer that links the chat's customer and hangs up.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, async_playwright, expect

from channels.webchat.visitors import new_visitor_token
from channels.webrtc import call as webrtc_call
from hub.embedded_db import EmbeddedDatabase
from tests.conftest import TenantFactory, context_for, make_tenant
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, OpenPage, console_errors
from tests.support import HubProcess, Widget
from tests.test_voice_twilio import flow_doc, install_flow
from tests.voice_support import espeak_pcm

PHRASE = "상담원 연결"
WAV_RATE = 48000
LEAD_SILENCE_S = 5.0  # the call connects and the menu listens well before the first phrase
TAIL_SILENCE_S = 5.0
# Enough of an audio offer for the endpoint's checks (the limit is tested before negotiating).
MINIMAL_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
)


def web_flow(tenant_id: str, number: str) -> dict[str, Any]:
    """The Korean menu of the phone tests as the tenant's web flow; "상담원 연결" -> the support queue.

    Korean menu grammars leave out the one-syllable digit words (bot/ivr.py): with "영"
    in the grammar the model heard espeak-ng's wideband "연결" as "영".
    """
    flow = flow_doc(tenant_id, number, _id=f"webflow-{tenant_id}", web=True, name="Korean web line")
    flow["survey"] = {"enabled": False}
    flow["nodes"]["main"].update(
        prompt="Welcome to our web line. Please tell me what you need.",
        timeout_s=15,
        retries=3,
        options=[
            {"key": "1", "phrases": ["요금 조회"], "next": "billing"},
            {"key": "2", "phrases": [PHRASE], "next": "support"},
        ],
    )
    flow["nodes"]["support"] = {
        "type": "queue",
        "skill": "support",
        "prompt": "Connecting you to an agent.",
        "hold_music": "default",
    }
    # "상담원" alone (agent) is an operator phrase: on a loaded machine the model sometimes
    # returns only that word; both roads lead to the support queue.
    flow["operator"] = "support"
    return flow


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


async def webcalls_of(mongo: EmbeddedDatabase, hub: HubProcess, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's web-call contacts, each with its transcript as (author, text) pairs."""
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        found = [c async for c in ctx.db.contacts.find({"tenant_id": tenant_id, "channel": "webcall"})]
        for contact in found:
            messages = ctx.db.messages.find({"contact_id": contact["_id"]}).sort("seq", 1)
            contact["messages"] = [(m["author"], m["text"]) async for m in messages]
        return found
    finally:
        await ctx.db.close()


async def wait_for(
    predicate: Any, timeout: float = 30, interval: float = 0.3, what: str = "condition"
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        await asyncio.sleep(interval)


# ------------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def caller_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    speech = espeak_pcm(PHRASE, rate=WAV_RATE)
    silence = b"\x00\x00"
    pcm = silence * int(WAV_RATE * LEAD_SILENCE_S) + speech + silence * int(WAV_RATE * TAIL_SILENCE_S)
    path = tmp_path_factory.mktemp("webcall") / "caller.wav"
    write_wav(path, pcm, WAV_RATE)
    return path


@pytest.fixture(scope="module")
async def browser(caller_wav: Path) -> AsyncIterator[Browser]:
    """This module's Chromium: a fake microphone playing the caller's WAV, permission granted."""
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={caller_wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield chromium
        await chromium.close()


# Installed in the page once the call is up: the loudest 50 ms of the bot's audio, from the
# remote stream the widget plays.
MEASURE_REMOTE_AUDIO = """
() => {
  const audio = document.getElementById("hub-chat-call-audio");
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaStreamSource(audio.srcObject).connect(analyser);
  const buffer = new Float32Array(analyser.fftSize);
  window.__remote = { rms: 0, peak: 0, context: context.state };
  setInterval(() => {
    analyser.getFloatTimeDomainData(buffer);
    let sum = 0, peak = 0;
    for (const v of buffer) { sum += v * v; peak = Math.max(peak, Math.abs(v)); }
    window.__remote.rms = Math.max(window.__remote.rms, Math.sqrt(sum / buffer.length));
    window.__remote.peak = Math.max(window.__remote.peak, peak);
    window.__remote.context = context.state;
  }, 50);
}
"""

RECORD_CALL_STATUS = """
() => {
  window.__callTexts = [];
  const node = document.getElementById("hub-chat-call-status");
  new MutationObserver(() => {
    const text = node.textContent;
    if (window.__callTexts[window.__callTexts.length - 1] !== text) window.__callTexts.push(text);
  }).observe(node, { childList: true, characterData: true, subtree: true });
}
"""


@pytest.mark.e2e
@pytest.mark.voice
async def test_visitor_calls_from_the_widget_and_is_queued_by_voice(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase, open_page: OpenPage
) -> None:
    t = await tenant_in(hub_nobot)
    tenant_id = t["tenant"]["_id"]
    await install_flow(mongo, hub_nobot, web_flow(tenant_id, "+15557770180"))

    page = await open_page("caller")
    await page.goto(f"{hub_nobot.url}/demo?tenant={t['slug']}")
    await page.locator("#hub-chat-launcher").click()
    call_button = page.locator("#hub-chat-call")
    await expect(call_button).to_be_visible()
    await expect(call_button).to_have_attribute("aria-label", "Call us")
    await expect(page.locator("#hub-chat-call-bar")).to_be_hidden()
    assert await page.evaluate("window.HubChat.callState().state") == "idle"

    await page.evaluate(RECORD_CALL_STATUS)
    await call_button.click()
    status = page.locator("#hub-chat-call-status")
    await expect(status).to_have_text("Connected")
    await expect(page.locator("#hub-chat-hangup")).to_be_visible()
    await expect(call_button).to_be_disabled()
    assert (await page.evaluate("window.__callTexts"))[:2] == ["Calling…", "Connected"]
    state = await page.evaluate("window.HubChat.callState()")
    assert state["state"] == "connected" and state["contact_id"], state
    await page.evaluate(MEASURE_REMOTE_AUDIO)

    # ---- the hub hears "상담원 연결" (Vosk, Korean, menu grammar) and queues the call for support
    async def queued() -> dict[str, Any] | None:
        calls = await webcalls_of(mongo, hub_nobot, tenant_id)
        return calls[0] if calls and calls[0]["status"] in ("queued", "offered") else None

    contact = await wait_for(queued, timeout=45, what="the web call queued")
    assert contact["_id"] == state["contact_id"]
    heard = [text for author, text in contact["messages"] if author == "visitor"]
    # Chromium loops the WAV: the call may start listening mid-phrase ("연결" alone, which
    # the menu rejects), so the phrase is asked for again and recognised on a later loop
    assert {PHRASE, "상담원"} & set(heard), contact["messages"]
    assert contact["skill"] == "support" and contact["ivr_path"] == ["main", "support"]
    assert contact["call_status"] == "in-progress" and contact["flow_id"] == f"webflow-{tenant_id}"
    assert contact["web_visitor_id"] and contact["visitor_id"] is None
    bot_lines = [text for author, text in contact["messages"] if author == "bot"]
    assert bot_lines[:1] == ["Welcome to our web line. Please tell me what you need."], bot_lines

    # ---- the browser received the bot's voice (and hold music): not silence
    await page.wait_for_timeout(1500)
    remote = await page.evaluate("window.__remote")
    stats = await page.evaluate("window.HubChat.callStats()")
    assert remote["context"] == "running", remote
    assert remote["rms"] > 0.01 and remote["peak"] > 0.05, remote
    assert stats["inbound_audio_energy"] > 0.001 and stats["inbound_samples"] > 48000, stats
    assert stats["outbound_packets"] > 100, stats

    # ---- hang up: the widget says so and the hub closes the queued contact at once
    await page.locator("#hub-chat-hangup").click()
    await expect(status).to_have_text("Call ended")
    await expect(page.locator("#hub-chat-hangup")).to_be_hidden()
    await expect(call_button).to_be_enabled()
    assert await page.evaluate("window.HubChat.callState().state") == "ended"

    async def closed() -> dict[str, Any] | None:
        calls = await webcalls_of(mongo, hub_nobot, tenant_id)
        return calls[0] if calls[0]["status"] == "closed" else None

    contact = await wait_for(closed, timeout=15, what="the web call closed")
    assert contact["disposition"] == "abandoned" and contact["note"] == "caller_hung_up"
    assert console_errors(open_page) == {}


# ------------------------------------------------------------------------------- no browser


async def test_offer_refusals_are_clear(hub_nobot: HubProcess, tenant_in: TenantFactory) -> None:
    t = await tenant_in(hub_nobot)
    other = await tenant_in(hub_nobot)
    widget = Widget(hub_nobot.ws_url, t["slug"])
    await widget.connect()
    stranger = Widget(hub_nobot.ws_url, other["slug"])
    await stranger.connect()
    url = f"{hub_nobot.url}/webrtc/offer"
    offer = {"sdp": MINIMAL_OFFER, "type": "offer"}
    async with httpx.AsyncClient(timeout=20) as http:
        missing = await http.post(url, params={"tenant": "no-such-tenant"}, json=offer)
        assert missing.status_code == 404 and "unknown tenant" in missing.json()["detail"]

        params = {"tenant": t["slug"]}
        no_token = await http.post(url, params=params, json=offer)
        assert no_token.status_code == 401 and "visitor_token" in no_token.json()["detail"]
        forged = await http.post(url, params=params, json={**offer, "visitor_token": "not.a.token"})
        assert forged.status_code == 401
        foreign = await http.post(url, params=params, json={**offer, "visitor_token": stranger.token})
        assert foreign.status_code == 401  # a token of another tenant

        token = widget.token
        garbage = await http.post(
            url, params=params, json={"sdp": "garbage", "type": "offer", "visitor_token": token}
        )
        assert garbage.status_code == 400
        assert garbage.json()["detail"] == "invalid SDP offer: it must start with 'v=0'"
        no_audio = MINIMAL_OFFER.replace("m=audio", "m=video")
        silent = await http.post(
            url, params=params, json={"sdp": no_audio, "type": "offer", "visitor_token": token}
        )
        assert silent.status_code == 400 and "no audio" in silent.json()["detail"]
        no_ice = await http.post(url, params=params, json={**offer, "visitor_token": token})
        assert no_ice.status_code == 400 and "cannot negotiate" in no_ice.json()["detail"]
        answer = await http.post(url, params=params, json={**offer, "type": "answer", "visitor_token": token})
        assert answer.status_code == 400 and "type" in answer.json()["detail"]
        not_json = await http.post(
            url, params=params, content=b"sdp=1", headers={"Content-Type": "text/plain"}
        )
        assert not_json.status_code == 400 and "JSON" in not_json.json()["detail"]

        trickle: dict[str, Any] = {
            "visitor_token": token,
            "pc_id": "SmallWebRTCConnection#0-x",
            "candidates": [],
        }
        assert (await http.patch(url, params=params, json=trickle)).status_code == 404
        assert (
            await http.patch(url, params=params, json={**trickle, "visitor_token": None})
        ).status_code == 401

        preflight = await http.options(url, params=params)
        assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
        assert no_token.headers["access-control-allow-origin"] == "*"
    await widget.close()
    await stranger.close()


async def test_too_many_web_calls_for_a_tenant_get_429(mongo: EmbeddedDatabase) -> None:
    db_name = "hub_webrtc_limit"
    t = await make_tenant(mongo.uri, db_name)
    ctx = context_for(mongo.uri, db_name)
    ctx.extra[webrtc_call.LIMIT_OVERRIDE_KEY] = 0
    app = FastAPI()
    app.include_router(webrtc_call.router)
    app.state.ctx = ctx
    _, token = new_visitor_token(ctx.settings, t["tenant"]["_id"])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as http:
            busy = await http.post(
                "/webrtc/offer",
                params={"tenant": t["slug"]},
                json={"sdp": MINIMAL_OFFER, "type": "offer", "visitor_token": token},
            )
        assert busy.status_code == 429 and busy.headers["retry-after"] == webrtc_call.RETRY_AFTER_S
        assert "too many web calls" in busy.json()["detail"]
    finally:
        await ctx.db.close()


@pytest.mark.voice
async def test_python_peer_call_links_the_chat_customer_and_closes_on_hang_up(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase
) -> None:
    """No web flow: the demo flow answers (in memory); the chat's customer is on the call."""
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, MediaStreamError

    t = await tenant_in(hub_nobot)
    tenant_id = t["tenant"]["_id"]
    widget = Widget(hub_nobot.ws_url, t["slug"])
    await widget.connect()
    await widget.say("Hello, my email is ada.webcall@example.com")
    chat_ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        chat = await chat_ctx.db.contacts.find_one({"_id": widget.contact_id})
    finally:
        await chat_ctx.db.close()
    assert chat is not None and chat["customer_id"]

    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())  # silence from the "caller"
    heard: list[np.ndarray] = []
    readers: list[asyncio.Task[None]] = []

    @pc.on("track")
    def on_track(track: Any) -> None:
        async def read() -> None:
            try:
                while True:
                    frame = await track.recv()
                    heard.append(frame.to_ndarray().astype(np.float64))
            except MediaStreamError:
                pass

        readers.append(asyncio.ensure_future(read()))

    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{hub_nobot.url}/webrtc/offer",
            params={"tenant": t["slug"]},
            json={
                "sdp": pc.localDescription.sdp,
                "type": pc.localDescription.type,
                "visitor_token": widget.token,
                "contact_id": widget.contact_id,
            },
        )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["type"] == "answer" and answer["pc_id"] and answer["contact_id"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

    async def in_progress() -> dict[str, Any] | None:
        calls = await webcalls_of(mongo, hub_nobot, tenant_id)
        return calls[0] if calls and calls[0]["call_status"] == "in-progress" else None

    contact = await wait_for(in_progress, timeout=20, what="the call connected")
    assert contact["_id"] == answer["contact_id"] and contact["pc_id"] == answer["pc_id"]
    assert contact["customer_id"] == chat["customer_id"] and contact["chat_contact_id"] == chat["_id"]
    assert contact["flow_id"] is None  # the demo flow, built in memory, not stored

    async def spoken() -> bool:  # some 20 ms frame of the greeting is clearly not silence
        return any(float(np.sqrt(np.mean(frame**2))) > 300 for frame in list(heard))

    await wait_for(spoken, timeout=20, what="the greeting heard")
    await pc.close()  # hang up

    async def closed() -> dict[str, Any] | None:
        calls = await webcalls_of(mongo, hub_nobot, tenant_id)
        done = calls[0]["status"] == "closed" and calls[0]["call_status"] == "completed"
        return calls[0] if done else None

    contact = await wait_for(closed, timeout=20, what="the call closed")
    assert contact["disposition"] == "abandoned" and contact["call_status"] == "completed"
    assert [text for author, text in contact["messages"] if author == "bot"], contact["messages"]
    await widget.close()
