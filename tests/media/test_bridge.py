"""The bridge's hearing policy and mixing, by frequency (no network, real clock)."""

from __future__ import annotations

import asyncio

import numpy as np

from media.bridge import FRAME_SAMPLES, MIX_RATE, Bridge, Leg, Mixer, Resampler, hears
from tests.desk_support import level_at
from tests.desk_support import tone_pcm as tone


def test_hearing_policy() -> None:
    customer, agent, other = Leg("customer", 8000), Leg("agent", 16000), Leg("agent", 16000)
    supervisor = Leg("supervisor", 16000, mode="listen")
    assert hears(agent, customer) and hears(customer, agent) and not hears(agent, agent)
    assert hears(supervisor, customer) and hears(supervisor, agent)
    assert not hears(customer, supervisor) and not hears(agent, supervisor)
    supervisor.mode = "whisper"
    assert hears(agent, supervisor) and hears(other, supervisor) and not hears(customer, supervisor)
    supervisor.mode = "barge"
    assert hears(agent, supervisor) and hears(customer, supervisor)
    customer.held = True
    assert not hears(agent, customer) and not hears(customer, agent) and hears(other, agent)
    customer.held, agent.muted = False, True
    assert not hears(customer, agent) and hears(agent, customer)


def test_resampler_keeps_tones_and_filters_aliases() -> None:
    up, down = Resampler(8000, 16000), Resampler(16000, 8000)
    pcm = np.frombuffer(tone(600, 8000, 1.0), "<i2")
    out = np.concatenate([up(pcm[i : i + 160]) for i in range(0, pcm.size, 160)])
    assert out.size == 16000 and level_at(out, 16000, 600) > 6000
    high = np.frombuffer(tone(6000, 16000, 1.0), "<i2")  # above 8 kHz's Nyquist: must not alias to 2 kHz
    out = np.concatenate([down(high[i : i + 320]) for i in range(0, high.size, 320)])
    assert out.size == 8000 and level_at(out, 8000, 2000) < 800


def test_bridge_mixes_by_policy() -> None:
    bridge = Bridge("t1", "c1")
    customer = bridge.add(Leg("customer", 8000))
    agent = bridge.add(Leg("agent", 16000))
    supervisor = bridge.add(Leg("supervisor", 16000, mode="whisper"))
    got: dict[str, bytearray] = {leg.role: bytearray() for leg in bridge.legs}
    for leg in bridge.legs:
        leg.on_frame = got[leg.role].extend
    c, a, s = tone(600, 8000, 1), tone(1000, 16000, 1), tone(1500, 16000, 1)
    for i in range(50):
        customer.feed(c[i * 320 : (i + 1) * 320])
        agent.feed(a[i * 640 : (i + 1) * 640])
        supervisor.feed(s[i * 640 : (i + 1) * 640])
        bridge.tick(0.0)
    heard = {role: np.frombuffer(bytes(pcm), "<i2") for role, pcm in got.items()}
    assert level_at(heard["customer"], 8000, 1000) > 4000
    assert level_at(heard["customer"], 8000, 1500) < 300  # whisper: not to the caller
    assert level_at(heard["agent"], MIX_RATE, 600) > 4000
    assert level_at(heard["agent"], MIX_RATE, 1500) > 4000
    assert level_at(heard["supervisor"], MIX_RATE, 600) > 4000
    assert level_at(heard["supervisor"], MIX_RATE, 1000) > 4000
    assert len(got["agent"]) == 50 * FRAME_SAMPLES * 2


async def test_mixer_clock_keeps_real_time() -> None:
    bridge = Bridge("t1", "c1")
    leg = bridge.add(Leg("agent", 16000))
    mixer = Mixer()
    mixer.add(bridge)
    await asyncio.sleep(1.0)
    await mixer.stop()
    assert 45 <= leg.frames_out <= 55


def test_a_conference_has_at_most_eight_parties() -> None:
    import pytest

    from media.bridge import MAX_PARTIES, BridgeFull

    bridge = Bridge("t1", "c1")
    for _ in range(MAX_PARTIES):
        bridge.add(Leg("agent", 16000))
    with pytest.raises(BridgeFull):
        bridge.add(Leg("agent", 16000))
    assert len(bridge.legs) == 8
