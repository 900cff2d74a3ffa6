"""The softphone in real browsers: headless Chromium agents and a supervisor whose fake
microphones play known tones, a synthetic Twilio caller humming 600 Hz, a real hub.

Asserted by frequency, on both ends: the page's level meter (an AnalyserNode on the line's
remote audio) and what the caller receives; then the stored recording's two channels.
"""

from __future__ import annotations

import asyncio
import audioop
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from hub.embedded_db import EmbeddedDatabase
from media.recording import read_channels
from tests.conftest import TenantFactory
from tests.desk_support import keep_playing, keys_flow, level_at, peak_level, tone_pcm
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.support import HubProcess
from tests.test_voice_twilio import contact_when, incoming, install_flow, wait_for
from tests.voice_support import TwilioCaller

pytestmark = [pytest.mark.e2e, pytest.mark.voice]

CALLER_HZ, ANN_HZ, SAM_HZ = 600.0, 1000.0, 1700.0
PASSWORD = "password123"
HEARD_DB = -62.0  # the analyser's dB at a tone that gets through (digital silence: below -150)
QUIET_DB = -75.0
HEARD = 1500.0  # the caller's own tone, sent at 8000 without processing
# a tone from a Chromium microphone: its noise suppression and gain control take a steady
# tone down by some 20 dB after a few seconds, still far above anything not sent (< 100)
HEARD_FROM_BROWSER = 300.0
SILENT = 150.0


def tone_wav(path: Path, freq: float) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48000)
        wav.writeframes(tone_pcm(freq, 48000, 10.0))  # whole cycles: Chromium loops it seamlessly
    return path


@pytest.fixture(scope="module")
async def browsers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Browser]]:
    """One Chromium per person: the fake microphone is a process-wide flag."""
    folder = tmp_path_factory.mktemp("tones")
    found: dict[str, Browser] = {}
    async with async_playwright() as pw:
        for name, freq in (("ann", ANN_HZ), ("sam", SAM_HZ)):
            args = [
                *CHROMIUM_ARGS,
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={tone_wav(folder / f'{name}.wav', freq)}",
                "--autoplay-policy=no-user-gesture-required",
            ]
            found[name] = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield found
        for browser in found.values():
            await browser.close()


async def signs_in(browser: Browser, hub: HubProcess, slug: str, email: str, landing: str) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{hub.url}/login")
    await page.locator("#login-tenant").fill(slug)
    await page.locator("#login-email").fill(email)
    await page.locator("#login-password").fill(PASSWORD)
    await page.locator("#login-submit").click()
    await expect(page).to_have_url(f"{hub.url}/agent")
    if landing != "/agent":
        await page.goto(f"{hub.url}{landing}")
    await expect(page.locator("#softphone-state")).to_have_text("on")
    page.errors = errors  # type: ignore[attr-defined]
    return page


async def hears(page: Page, freq: float, seconds: float = 1.5) -> float:
    """The loudest level (dB) of `freq` the page's softphone heard over `seconds`."""
    best = -200.0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        best = max(best, float(await page.evaluate("f => window.softphone.levelAt(f)", freq)))
        await asyncio.sleep(0.1)
    print(f"page hears {freq:.0f} Hz at {best:.0f} dB")
    return best


async def caller_hears(caller: TwilioCaller, freq: float, seconds: float = 1.5) -> float:
    start = len(caller.received)
    await asyncio.sleep(seconds)
    pcm = audioop.ulaw2lin(bytes(caller.received[start:]), 2)
    level = level_at(np.frombuffer(pcm, dtype="<i2"), 8000, freq)
    print(f"caller hears {freq:.0f} Hz at {level:.0f}")
    return level


async def test_agent_and_supervisor_softphones_in_chromium(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase, browsers: dict[str, Browser]
) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]}
    )
    ann = await signs_in(browsers["ann"], hub_nobot, t["slug"], "ann@t.test", "/agent")
    sam = await signs_in(browsers["sam"], hub_nobot, t["slug"], "sam@t.test", "/wallboard")
    await ann.locator("#presence").select_option("available")
    await expect(ann.locator("#presence")).to_have_attribute("data-status", "available")

    number = "+15557772001"
    await install_flow(mongo, hub_nobot, keys_flow(t["tenant"]["_id"], number))
    sid = "CA" + "e2" * 16
    caller = TwilioCaller(hub_nobot.ws_url, incoming(hub_nobot, sid, to=number), sid)
    await caller.connect()
    hum = asyncio.create_task(keep_playing(caller, CALLER_HZ))
    try:
        contact = await contact_when(mongo, hub_nobot, sid, lambda c: c["status"] in ("queued", "offered"))
        await ann.locator(f".offer[data-contact-id='{contact['_id']}'] .offer-accept").click()
        await expect(ann.locator(".softphone-parties li")).to_have_count(2)
        await asyncio.sleep(0.5)
        # audio both ways
        assert await hears(ann, CALLER_HZ) > HEARD_DB
        assert await caller_hears(caller, ANN_HZ) > HEARD_FROM_BROWSER
        # hold from the softphone panel: the caller hears music instead of the agent
        await ann.locator(".softphone-controls button", has_text="Hold").click()
        await expect(ann.locator(".softphone-controls button", has_text="Resume")).to_be_visible()
        await asyncio.sleep(1.0)  # what the browser's jitter buffer still holds plays out
        start = len(caller.received)
        agent_level = await hears(ann, CALLER_HZ)
        held = np.frombuffer(audioop.ulaw2lin(bytes(caller.received[start:]), 2), dtype="<i2")
        assert level_at(held, 8000, ANN_HZ) < SILENT and agent_level < QUIET_DB
        assert float(np.sqrt(np.mean(held.astype(np.float64) ** 2))) > 300  # the music
        await ann.locator(".softphone-controls button", has_text="Resume").click()
        await expect(ann.locator(".softphone-controls button", has_text="Hold")).to_be_visible()

        # the supervisor finds the call on the wallboard and whispers: the agent hears it, the caller not
        row = sam.locator(f"#wb-calls tr[data-contact-id='{contact['_id']}']")
        await row.locator("button[data-mode='whisper']").click()
        await expect(sam.locator(".softphone-parties li")).to_have_count(3)
        await asyncio.sleep(0.5)
        ann_level, caller_level, sam_level = await asyncio.gather(
            hears(ann, SAM_HZ), caller_hears(caller, SAM_HZ), hears(sam, CALLER_HZ)
        )
        assert ann_level > HEARD_DB and caller_level < SILENT and sam_level > HEARD_DB
        # barge in: both hear the supervisor
        await row.locator("button[data-mode='barge']").click()
        await asyncio.sleep(0.6)
        ann_level, caller_level = await asyncio.gather(hears(ann, SAM_HZ), caller_hears(caller, SAM_HZ))
        assert ann_level > HEARD_DB and caller_level > HEARD_FROM_BROWSER
        await sam.locator("#softphone button", has_text="Stop monitoring").click()
        await expect(sam.locator(".softphone-parties")).to_have_count(0)

        # the agent hangs up, the caller is let go; the agent wraps up as after any call
        await ann.locator(".softphone-after").select_option("end")
        await ann.locator(".softphone-hangup button", has_text="Hang up").click()
        await asyncio.wait_for(caller._reader, 15)  # type: ignore[arg-type]
        assert caller.hung_up_by_hub
    finally:
        hum.cancel()
        await caller.hang_up()

    # the recording has the caller on the left, the agent (and the barge) on the right
    async def listed() -> Any:
        response = await sam.request.get(f"{hub_nobot.url}/api/recordings?contact_id={contact['_id']}")
        assert response.status == 200
        found = await response.json()
        return found if found else None

    recordings = await wait_for(listed, timeout=15)
    assert len(recordings) == 1
    audio = await sam.request.get(f"{hub_nobot.url}/api/recordings/{recordings[0]['id']}/download")
    assert audio.status == 200
    rate, left, right = read_channels(await audio.body())
    assert level_at(left, rate, CALLER_HZ) > HEARD and peak_level(left, rate, ANN_HZ) < SILENT
    assert level_at(right, rate, ANN_HZ) > HEARD_FROM_BROWSER and peak_level(right, rate, CALLER_HZ) < SILENT
    assert peak_level(right, rate, SAM_HZ) > HEARD_FROM_BROWSER and peak_level(left, rate, SAM_HZ) < SILENT
    assert not ann.errors and not sam.errors  # type: ignore[attr-defined]
