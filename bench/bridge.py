"""Bridged-call benchmark: concurrent caller <-> agent calls through the hub's mixer on this machine.

    python -m bench.bridge [--max 64] [--window 10] [--retries 1] [--quick]

It starts, on free ports in a temporary directory, the embedded database and one hub process
(no Rasa), a tenant with agents (skill general) and a supervisor, and a keys-only flow for one
number that says "Hello." and queues the caller at once (recording on: the default policy).
Then for a growing number of concurrent calls (1, 2, 4, 8, 12, 16, 24, 32, ... up to --max,
until a level is not sustained) it adds calls until that many are bridged: each is a synthetic
Twilio caller (signed webhook, Media Streams over a websocket, 8 kHz mu-law paced in real time)
answered by its own agent, whose softphone is an aiortc peer on /api/softphone/offer. Calls stay
up from one level to the next; each level is held for a steady window.

Both parties send a 600 Hz tone without pause and, every 1.0-1.4 s, switch it for 60 ms to a
burst tone (six, 1000 to 2600 Hz, in turn). Per level, over the window:

- underruns: the delta of the mixer's `underruns` and `late_ticks` (GET /api/calls/stats), and
  gaps heard by the receivers: each receiver's audio is laid on a playout timeline (a chunk plays
  when it arrives, or when the previous one ends; no jitter buffer beyond aiortc's own) and any
  stretch of more than 60 ms without the tone (silence or nothing received) is a gap;
- mouth-to-ear latency: from the send of a burst's first frame to its onset on the receiver's
  playout timeline (the burst tone's envelope crossing half its height), both directions;
- CPU: the hub's (and the database's, and this process's) CPU seconds from /proc over the window.

The same bursts also run, all through the run, over a path without the hub: two aiortc peers
connected to each other in this process (Opus both ways, the same jitter buffer and receiver code)
and a Twilio-style websocket to a local echo server (one way = half the round trip). Measured idle
before the first level (`baseline`) and during every window (`control`, under the same load);
added latency = hub path minus (websocket one way + WebRTC one way), the control's medians.

A level is sustained when the stats show no underrun and no late tick, no call dropped, and the
receivers heard at most one gap per call-minute. Readable figures go to stdout; its last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import audioop
import base64
import contextlib
import fractions
import itertools
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from websockets.asyncio.server import ServerConnection, serve

from bench.common import (
    HubStack,
    clean_up_run_dir,
    log,
    own_cpu_seconds,
    percentile,
    print_report,
    process_cpu_seconds,
    rounded,
    run_to_completion,
    thread_cpu_seconds,
)
from bench.voice_latency import host_busy_seconds, place_call
from hub.auth import decode_token
from hub.embedded_db import free_port
from hub.tenancy import create_tenant, create_user
from tests.desk_support import keys_flow
from tests.support import Agent
from tests.voice_support import TwilioCaller

DB_NAME = "bench_bridge"
NUMBER = "+15557770400"
PASSWORD = "password123"
LADDER = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128)

FRAME_S = 0.02
PHONE_RATE = 8000  # Twilio: mu-law
PEER_RATE = 48000  # aiortc / Opus
AMPLITUDE = 8000
CARRIER_HZ = 600.0  # 12 cycles per 20 ms frame: every frame starts at phase 0 ...
# ... and so do the burst tones (20 to 52 cycles): switching is phase-continuous. Bursts rotate
# through them, so a burst that arrives seconds late is not taken for a later one. All are 200 Hz
# multiples (see ENVELOPE_S) and none is a harmonic of the carrier (mu-law distortion makes those).
BURST_HZ = (1000.0, 1400.0, 1600.0, 2000.0, 2200.0, 2600.0)
BURST_FRAMES = 3  # 60 ms
CALL_PERIOD_S = (1.0, 1.4)  # between bursts on a hub call (longer than any plausible latency)
CONTROL_PERIOD_S = (0.5, 0.7)  # on the paths without the hub (latency well under 0.3 s)
ENVELOPE_S = 0.005  # burst envelope window: its sinc response nulls every other tone (200 Hz apart x k)
CALL_HORIZON_S = 5.0  # a burst heard later than this counts as not heard (same tone again >= 6 s later)
CONTROL_HORIZON_S = 2.5  # (>= 3 s later there)
MIN_BURST = 0.2 * AMPLITUDE  # a burst envelope below this was not heard
BLOCK_S = 0.005  # receiver audibility is judged per 5 ms block
AUDIBLE_RMS = 0.1 * AMPLITUDE  # the tone's RMS is 0.71 x AMPLITUDE; silence and dither sit far below
GAP_S = 0.06  # a receiver hearing nothing for longer than this heard a gap
GAPS_PER_CALL_MIN = 1.0  # tolerance for a sustained level (see README)
EARLIER_KEYS = (
    "why_not",
    "underruns",
    "late_ticks",
    "receiver_gaps",
    "longest_gap_ms",
    "latency_p50_ms",
    "client_late_frames_by_sender",
    "client_loop_lag_max_ms",
    "other_load_cores",
)
PREROLL_S = 0.5  # receivers record this long before the window (playout state, early arrivals)
TAIL_S = CALL_HORIZON_S  # and this long after it (bursts sent near the end may arrive late)


# -- the signal -----------------------------------------------------------------------------------


def sine(freq: float, rate: int, seconds: float = FRAME_S) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * AMPLITUDE).astype("<i2")


def ulaw_b64(samples: np.ndarray) -> str:
    return base64.b64encode(audioop.lin2ulaw(samples.astype("<i2").tobytes(), 2)).decode()


CARRIER_ULAW = ulaw_b64(sine(CARRIER_HZ, PHONE_RATE))
BURST_ULAW = [ulaw_b64(sine(hz, PHONE_RATE)) for hz in BURST_HZ]
CARRIER_PEER = sine(CARRIER_HZ, PEER_RATE).reshape(1, -1)
BURST_PEER = [sine(hz, PEER_RATE).reshape(1, -1) for hz in BURST_HZ]


class Bursts:
    """Which 20 ms frames of a sender carry a burst, and when each burst's first frame went out."""

    def __init__(self, rng: random.Random, period_s: tuple[float, float]) -> None:
        self.rng = rng
        self.period_s = period_s
        self.next_start = self._gap()
        self.count = 0  # bursts finished; burst k has the tone BURST_HZ[k % len(BURST_HZ)]
        self.sent: list[float] = []  # CLOCK_MONOTONIC of each burst's first frame

    def _gap(self) -> int:
        return max(BURST_FRAMES + 1, round(self.rng.uniform(*self.period_s) / FRAME_S))

    def frame(self, index: int) -> tuple[int | None, bool]:
        """(the tone of frame `index`: an index into BURST_HZ, None for the carrier; whether the
        frame starts a burst). Frames are asked for in order, one by one."""
        if index >= self.next_start + BURST_FRAMES:
            self.next_start += self._gap()
            self.count += 1
        if self.next_start <= index < self.next_start + BURST_FRAMES:
            return self.count % len(BURST_HZ), index == self.next_start
        return None, False


# -- receivers ------------------------------------------------------------------------------------


class Capture:
    """What a receiver got while recording: (arrival time, audio) chunks; decoded after the window."""

    def __init__(self, decode: Callable[[Any], np.ndarray], rate: int) -> None:
        self.decode = decode
        self.rate = rate
        self.on = False
        self.chunks: list[tuple[float, Any]] = []

    def start(self) -> None:
        self.chunks = []
        self.on = True

    def stop(self) -> None:
        self.on = False

    def add(self, at: float, audio: Any) -> None:
        if self.on:
            self.chunks.append((at, audio))

    def timeline(self) -> Timeline:
        return Timeline([(at, self.decode(audio)) for at, audio in self.chunks], self.rate)


def decode_ulaw_b64(payload: Any) -> np.ndarray:
    return np.frombuffer(audioop.ulaw2lin(base64.b64decode(payload), 2), dtype="<i2")


def keep_pcm(samples: Any) -> np.ndarray:
    assert isinstance(samples, np.ndarray)
    return samples


class Timeline:
    """A receiver's audio as played: each chunk starts when it arrives or when the previous one
    ends, whichever is later (a playout clock without a jitter buffer of its own)."""

    def __init__(self, chunks: list[tuple[float, np.ndarray]], rate: int) -> None:
        self.rate = rate
        block = round(rate * BLOCK_S)
        audio: list[np.ndarray] = []
        times: list[np.ndarray] = []
        arrivals: list[np.ndarray] = []
        loud_starts: list[np.ndarray] = []
        play_end = -1.0
        self.queued_s: list[float] = []  # how long each chunk waited behind earlier audio
        for at, samples in chunks:
            begin = max(at, play_end)
            n = samples.size
            play_end = begin + n / rate
            self.queued_s.append(begin - at)
            audio.append(samples.astype(np.float64))
            offsets = np.arange(n) / rate
            times.append(begin + offsets)
            arrivals.append(at + offsets)
            whole = n - n % block
            if whole:
                blocks = samples[:whole].astype(np.float64).reshape(-1, block)
                loud = np.sqrt((blocks**2).mean(axis=1)) >= AUDIBLE_RMS
                loud_starts.append(begin + np.flatnonzero(loud) * block / rate)
        self.samples = np.concatenate(audio) if audio else np.zeros(0)
        self.times = np.concatenate(times) if times else np.zeros(0)
        self.arrivals = np.concatenate(arrivals) if arrivals else np.zeros(0)
        self.loud = np.concatenate(loud_starts) if loud_starts else np.zeros(0)
        self.block_s = block / rate

    def gaps(self, t0: float, t1: float) -> list[float]:
        """Stretches (seconds) of more than GAP_S within [t0, t1] with no audible 5 ms block."""
        inside = self.loud[(self.loud + self.block_s > t0) & (self.loud < t1)]
        begins = np.concatenate([[t0], np.minimum(inside + self.block_s, t1)])
        ends = np.concatenate([np.maximum(inside, t0), [t1]])
        holes = ends - begins
        return [float(h) for h in holes if h > GAP_S + 1e-6]

    def onsets(self, sent: list[float], horizon_s: float, *, arrival: bool = False) -> list[float | None]:
        """For each burst (its send time; burst k has the tone BURST_HZ[k % 6]), when its onset played
        here (None: not heard within `horizon_s`); with `arrival`, when the chunk holding it arrived
        (plus its place in the chunk), before any wait behind earlier audio. A burst is looked for
        only after the previous burst heard (paths keep order), so an old burst of the same tone
        arriving very late is not taken for a new one."""
        if self.samples.size == 0:
            return [None] * len(sent)
        w = round(self.rate * ENVELOPE_S)
        n = np.arange(self.samples.size)
        envelopes = []
        for hz in BURST_HZ:
            mixed = self.samples * np.exp(-2j * np.pi * hz * n / self.rate)
            summed = np.concatenate([[0], np.cumsum(mixed)])
            envelopes.append(np.abs(summed[w:] - summed[:-w]) / w * 2)  # [i]: samples i .. i + w - 1
        clock = self.arrivals if arrival else self.times
        out: list[float | None] = []
        after = 0  # audio paths keep order: a burst is looked for after the previous one's onset
        for k, at in enumerate(sent):
            envelope = envelopes[k % len(BURST_HZ)]
            lo, hi = np.searchsorted(self.times, [at, at + horizon_s])
            lo, hi = max(int(lo), after), min(int(hi), envelope.size)
            if hi <= lo:
                out.append(None)
                continue
            window = envelope[lo:hi]
            top = float(window.max())
            if top < MIN_BURST:
                out.append(None)
                continue
            first = lo + int(np.argmax(window >= top / 2))
            onset = min(first + w // 2, clock.size - 1)  # half-way up the envelope's ramp
            out.append(float(clock[onset]))
            after = onset + round(self.rate * BURST_FRAMES * FRAME_S / 2)
        return out


def latencies_ms(
    sent: list[float], heard: list[float | None], t0: float, t1: float
) -> tuple[list[float], int]:
    """Latencies of the bursts sent within [t0, t1], and how many of those were not heard."""
    values, lost = [], 0
    for at, got in zip(sent, heard, strict=True):
        if not t0 <= at <= t1:
            continue
        if got is None:
            lost += 1
        else:
            values.append((got - at) * 1000)
    return values, lost


# -- the parties ----------------------------------------------------------------------------------


class BenchCaller(TwilioCaller):
    """A Twilio caller that streams the tone with bursts in real time and records what it hears."""

    def __init__(self, ws_url: str, token: str, call_sid: str, bursts: Bursts) -> None:
        super().__init__(ws_url, token, call_sid, stream_sid="MZ" + uuid.uuid4().hex)
        self.bursts = bursts
        self.capture = Capture(decode_ulaw_b64, PHONE_RATE)
        self.late_frames = 0  # frames this process sent more than a frame late (client overload)
        self.media_in = 0
        self._stopping = False
        self._pump_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.connect()
        self._pump_task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        started = time.monotonic()
        index = 0
        while not self._stopping and not self.hung_up_by_hub:
            tone, first = self.bursts.frame(index)
            self._ts += 20
            message = {
                "event": "media",
                "streamSid": self.stream_sid,
                "media": {
                    "track": "inbound",
                    "chunk": str(index),
                    "timestamp": str(self._ts),
                    "payload": CARRIER_ULAW if tone is None else BURST_ULAW[tone],
                },
            }
            if first:
                self.bursts.sent.append(time.monotonic())
            await self._send(message)
            index += 1
            delay = started + index * FRAME_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -FRAME_S:
                self.late_frames += 1

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                now = time.monotonic()
                message = json.loads(raw)
                if message.get("event") == "media":
                    self.media_in += 1
                    self.capture.add(now, message["media"]["payload"])
        except websockets.ConnectionClosed:
            pass
        self.hung_up_by_hub = True

    async def finish(self) -> None:
        self._stopping = True
        if self._pump_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pump_task, 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.hang_up(), 10)


class BenchPhone:
    """An aiortc peer playing the tone with bursts (like tests' ToneSoftphone) and recording what it
    hears: an agent's softphone on the hub, or one end of the direct pair."""

    def __init__(self, bursts: Bursts) -> None:
        from aiortc import RTCPeerConnection

        self.bursts = bursts
        self.capture = Capture(keep_pcm, PEER_RATE)
        self.late_frames = 0
        self.frames_in = 0
        self.ended = False
        self.pc = RTCPeerConnection()
        self.pc.addTrack(self._track())
        self._readers: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _track(self) -> Any:
        from aiortc.mediastreams import MediaStreamTrack
        from av import AudioFrame

        phone = self
        samples = CARRIER_PEER.shape[1]

        class BurstTone(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self.index = 0
                self.start: float | None = None

            async def recv(self) -> AudioFrame:
                if self.start is None:
                    self.start = time.monotonic()
                wait = self.start + self.index * FRAME_S - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif wait < -FRAME_S:
                    phone.late_frames += 1
                tone, first = phone.bursts.frame(self.index)
                if first:
                    phone.bursts.sent.append(time.monotonic())
                frame = AudioFrame.from_ndarray(
                    CARRIER_PEER if tone is None else BURST_PEER[tone], format="s16", layout="mono"
                )
                frame.sample_rate = PEER_RATE
                frame.pts = self.index * samples
                frame.time_base = fractions.Fraction(1, PEER_RATE)
                self.index += 1
                return frame

        return BurstTone()

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio":
            self._readers.append(asyncio.ensure_future(self._read(track)))

    async def _read(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                self.frames_in += 1
                if self.capture.on:
                    data = frame.to_ndarray()
                    channels = len(frame.layout.channels)
                    mono = data.reshape(-1, channels)[:, 0] if channels > 1 else data.reshape(-1)
                    if frame.sample_rate != PEER_RATE:
                        raise RuntimeError(f"expected {PEER_RATE} Hz from aiortc, got {frame.sample_rate}")
                    self.capture.add(now, mono.astype(np.int16))
        except MediaStreamError:
            pass
        self.ended = True

    async def connect_hub(self, base_url: str, token: str, http: httpx.AsyncClient) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setLocalDescription(await self.pc.createOffer())
        response = await http.post(
            f"{base_url}/api/softphone/offer",
            json={"sdp": self.pc.localDescription.sdp, "type": "offer"},
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"softphone offer answered {response.status_code}: {response.text[:200]}")
        answer = response.json()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), 10)
        for reader in self._readers:
            reader.cancel()


# -- the paths without the hub --------------------------------------------------------------------


class Control:
    """The same bursts over paths without the hub's bridge, running all through the run: two aiortc
    peers connected to each other (WebRTC one way, both directions) and a Twilio-style websocket to
    an echo server in this process (round trip; one way is half)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.a = BenchPhone(Bursts(random.Random(rng.random()), CONTROL_PERIOD_S))
        self.b = BenchPhone(Bursts(random.Random(rng.random()), CONTROL_PERIOD_S))
        self.echo: BenchCaller | None = None
        self._server: Any = None

    async def start(self) -> None:
        await self.a.pc.setLocalDescription(await self.a.pc.createOffer())
        await self.b.pc.setRemoteDescription(self.a.pc.localDescription)
        await self.b.pc.setLocalDescription(await self.b.pc.createAnswer())
        await self.a.pc.setRemoteDescription(self.b.pc.localDescription)
        port = free_port()
        self._server = await serve(self._echo, "127.0.0.1", port)
        self.echo = BenchCaller(
            f"ws://127.0.0.1:{port}",
            "none",
            "CA" + uuid.uuid4().hex,
            Bursts(random.Random(self.rng.random()), CONTROL_PERIOD_S),
        )
        await self.echo.start()
        deadline = time.monotonic() + 15
        while not (self.a.frames_in and self.b.frames_in and self.echo.media_in):
            if time.monotonic() > deadline:
                raise RuntimeError("the direct aiortc pair or the websocket echo carried no audio")
            await asyncio.sleep(0.1)

    @staticmethod
    async def _echo(ws: ServerConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                message = json.loads(raw)
                if message.get("event") == "media":
                    payload = message["media"]["payload"]
                    await ws.send(
                        json.dumps({"event": "media", "streamSid": "MZ", "media": {"payload": payload}})
                    )

    def captures(self) -> list[Capture]:
        assert self.echo is not None
        return [self.a.capture, self.b.capture, self.echo.capture]

    def measure(self, t0: float, t1: float) -> dict[str, Any]:
        """Latencies and gaps of the bursts sent within [t0, t1]."""
        assert self.echo is not None
        a, b, echo = self.a.capture.timeline(), self.b.capture.timeline(), self.echo.capture.timeline()
        ab, lost_ab = latencies_ms(
            self.a.bursts.sent, b.onsets(self.a.bursts.sent, CONTROL_HORIZON_S), t0, t1
        )
        ba, lost_ba = latencies_ms(
            self.b.bursts.sent, a.onsets(self.b.bursts.sent, CONTROL_HORIZON_S), t0, t1
        )
        rtt, lost_ws = latencies_ms(
            self.echo.bursts.sent, echo.onsets(self.echo.bursts.sent, CONTROL_HORIZON_S), t0, t1
        )
        webrtc = ab + ba
        ws = [v / 2 for v in rtt]
        webrtc_p50, ws_p50 = percentile(webrtc, 50), percentile(ws, 50)
        return {
            "webrtc_p50_ms": rounded(webrtc_p50),
            "webrtc_p95_ms": rounded(percentile(webrtc, 95)),
            "ws_one_way_p50_ms": rounded(ws_p50, 2),
            "ws_one_way_p95_ms": rounded(percentile(ws, 95), 2),
            "path_p50_ms": rounded(None if webrtc_p50 is None or ws_p50 is None else webrtc_p50 + ws_p50),
            "bursts": len(webrtc) + len(ws),
            "bursts_lost": lost_ab + lost_ba + lost_ws,
            "gaps": sum(len(t.gaps(t0, t1)) for t in (a, b, echo)),
        }

    async def close(self) -> None:
        if self.echo is not None:
            await self.echo.finish()
        await self.a.close()
        await self.b.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)


# -- the stack ------------------------------------------------------------------------------------


@dataclass
class Seat:
    """One agent: signed in, with a softphone once needed."""

    agent: Agent
    token: str
    phone: BenchPhone | None = None


@dataclass
class Call:
    caller: BenchCaller
    seat: Seat
    contact_id: str

    @property
    def phone(self) -> BenchPhone:
        assert self.seat.phone is not None
        return self.seat.phone


@dataclass
class Bench:
    stack: HubStack
    http: httpx.AsyncClient
    boss: Agent
    seats: list[Seat]
    rng: random.Random
    calls: list[Call] = field(default_factory=list)

    @property
    def hub_pid(self) -> int:
        assert self.stack.hub is not None and self.stack.hub.process is not None
        return self.stack.hub.process.pid

    @property
    def hub_url(self) -> str:
        assert self.stack.hub is not None
        return self.stack.hub.url

    async def stats(self) -> dict[str, Any]:
        response = await self.boss.http.get("/api/calls/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def cpu(self) -> dict[str, float]:
        assert self.stack.db is not None and self.stack.db.process is not None
        return {
            "hub": process_cpu_seconds(self.hub_pid),
            "hub_loop": thread_cpu_seconds(self.hub_pid, self.hub_pid),
            "db": process_cpu_seconds(self.stack.db.process.pid),
            "bench": own_cpu_seconds(),
            "host": host_busy_seconds(),
            "wall": time.monotonic(),
        }


async def start_bench(stack: HubStack, seats: int, rng: random.Random) -> Bench:
    await stack.start_database()
    ctx = await stack.open_context()
    slug = f"bridge-{uuid.uuid4().hex[:8]}"
    tenant = await create_tenant(ctx, slug, "Bridge benchmark")
    flow = keys_flow(tenant["_id"], NUMBER, survey=False)
    await ctx.db.ivr_flows.replace_one({"_id": flow["_id"]}, flow, upsert=True)
    log(f"creating {seats} agents and a supervisor")
    emails = [f"agent{i:03}@bench.test" for i in range(seats)]
    for i, email in enumerate(emails):
        await create_user(ctx, tenant["_id"], email, f"Agent {i}", PASSWORD, ["agent"], ["general"])
    await create_user(ctx, tenant["_id"], "boss@bench.test", "Boss", PASSWORD, ["supervisor"])
    hub = await stack.start_hub(f"http://127.0.0.1:{free_port()}")  # no Rasa: the flow never asks it
    log(f"hub on {hub.url}; log in {hub.var_dir}")
    boss = Agent(hub.url, slug, "boss@bench.test", PASSWORD)
    await boss.login()
    agents = [Agent(hub.url, slug, email, PASSWORD) for email in emails]
    for agent in agents:  # all before the first call: logins cost the hub CPU (argon2)
        await agent.login()
    found = [Seat(a, str(a.http.headers["Authorization"]).split()[1]) for a in agents]
    return Bench(stack, httpx.AsyncClient(timeout=30), boss, found, rng)


async def poll(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


async def add_calls(bench: Bench, target: int, timeout: float) -> None:
    """Bring the number of bridged calls up to `target`: softphones first, then the calls; each new
    agent answers whichever call it is offered."""
    new = bench.seats[len(bench.calls) : target]
    if len(new) < target - len(bench.calls):
        raise RuntimeError(f"only {len(bench.seats)} agents for {target} calls")

    async def sign_in(seat: Seat) -> None:
        seat.phone = BenchPhone(Bursts(random.Random(bench.rng.random()), CALL_PERIOD_S))
        await seat.phone.connect_hub(bench.hub_url, seat.token, bench.http)

        async def registered() -> bool:
            return bool((await seat.agent.http.get("/api/softphone")).json()["connected"])

        await poll(registered, timeout, "a softphone to register")
        await seat.agent.available()

    await asyncio.gather(*(sign_in(seat) for seat in new))
    callers: dict[str, BenchCaller] = {}

    async def dial(index: int) -> None:
        await asyncio.sleep(0.2 * index)  # Piper says "Hello." to each: do not start them all at once
        assert bench.stack.hub is not None
        call_sid = "CA" + uuid.uuid4().hex
        token = await place_call(bench.http, bench.hub_url, NUMBER, call_sid)
        contact_id = decode_token(bench.stack.secret, token, "media")["sub"]
        caller = BenchCaller(
            bench.stack.hub.ws_url, token, call_sid, Bursts(random.Random(bench.rng.random()), CALL_PERIOD_S)
        )
        callers[contact_id] = caller
        await caller.start()

    async def answer(seat: Seat) -> Call:
        async def offered() -> str | None:
            offers = (await seat.agent.http.get("/api/agent/contacts")).json()["offers"]
            return str(offers[0]["contact_id"]) if offers else None

        contact_id = await poll(offered, timeout, "an offer")
        accepted = await seat.agent.http.post(f"/api/contacts/{contact_id}/accept")
        if accepted.status_code != 200:
            raise RuntimeError(f"accept answered {accepted.status_code}: {accepted.text[:200]}")

        async def bridged() -> bool:
            bridge = (await seat.agent.http.get("/api/softphone")).json()["bridge"]
            return bool(bridge and any(p["role"] == "customer" for p in bridge["parties"]))

        await poll(bridged, timeout, "the agent's bridge")
        return Call(callers[contact_id], seat, contact_id)

    answering = asyncio.gather(*(answer(seat) for seat in new))
    try:
        await asyncio.gather(*(dial(i) for i in range(len(new))))
        bench.calls += await answering
    finally:
        answering.cancel()
        for caller in callers.values():  # calls that did not make it into the list still hang up
            if all(call.caller is not caller for call in bench.calls):
                await caller.finish()


async def close_bench(bench: Bench) -> None:
    await asyncio.gather(*(call.caller.finish() for call in bench.calls), return_exceptions=True)
    await asyncio.gather(
        *(seat.phone.close() for seat in bench.seats if seat.phone is not None), return_exceptions=True
    )
    for agent in [bench.boss, *(seat.agent for seat in bench.seats)]:
        await agent.close()
    await bench.http.aclose()


# -- a level --------------------------------------------------------------------------------------


class LoopLag:
    """How late this process's event loop wakes up (the client's own health)."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.lags_ms = []
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lags_ms.append((time.perf_counter() - before - 0.01) * 1000)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def client_late_frames(bench: Bench, control: Control) -> dict[str, int]:
    """Frames this process sent more than a frame late so far, by sender (client overload)."""
    assert control.echo is not None
    return {
        "callers": sum(call.caller.late_frames for call in bench.calls),
        "agents": sum(call.phone.late_frames for call in bench.calls),
        "control": control.a.late_frames + control.b.late_frames + control.echo.late_frames,
    }


@dataclass
class Window:
    """One level's steady window: its times, the hub's stats and CPU at both ends, client health."""

    t0: float
    t1: float
    stats0: dict[str, Any]
    stats1: dict[str, Any]
    cpu0: dict[str, float]
    cpu1: dict[str, float]
    lags_ms: list[float]
    late_frames: dict[str, int]


async def hold_window(bench: Bench, control: Control, window_s: float) -> Window:
    """Record every receiver from PREROLL_S before the window to TAIL_S after it."""
    captures = control.captures()
    for call in bench.calls:
        captures += [call.caller.capture, call.phone.capture]
    for capture in captures:
        capture.start()
    lag = LoopLag()
    try:
        await asyncio.sleep(PREROLL_S)
        late0 = client_late_frames(bench, control)
        stats0 = await bench.stats()
        cpu0 = bench.cpu()
        t0 = time.monotonic()
        lag.start()
        await asyncio.sleep(window_s)
        t1 = time.monotonic()
        cpu1 = bench.cpu()
        await lag.stop()
        stats1 = await bench.stats()
        late1 = client_late_frames(bench, control)
        late = {k: late1[k] - late0.get(k, 0) for k in late1}
        await asyncio.sleep(TAIL_S)
    finally:
        await lag.stop()
        for capture in captures:
            capture.stop()
    return Window(t0, t1, stats0, stats1, cpu0, cpu1, lag.lags_ms, late)


def summarise(
    bench: Bench, control: Control, window: Window, setup_s: float, new_from: int
) -> dict[str, Any]:
    """One level's figures; calls from `new_from` on were added for this level."""
    t0, t1, stats0, stats1 = window.t0, window.t1, window.stats0, window.stats1
    n = len(bench.calls)
    c2a: list[float] = []
    a2c: list[float] = []
    c2a_arrival: list[float] = []
    a2c_arrival: list[float] = []
    per_call: list[list[float | None]] = []  # [caller->agent p50, agent->caller p50] per call
    by_age: tuple[list[float], list[float]] = ([], [])  # both directions: older calls, new calls
    lost = 0
    caller_gaps: list[float] = []
    agent_gaps: list[float] = []
    dropped = 0
    for index, call in enumerate(bench.calls):
        heard_by_caller, heard_by_agent = call.caller.capture.timeline(), call.phone.capture.timeline()
        medians: list[float | None] = []
        for bursts, heard, played, arrived in (
            (call.caller.bursts.sent, heard_by_agent, c2a, c2a_arrival),
            (call.phone.bursts.sent, heard_by_caller, a2c, a2c_arrival),
        ):
            values, missed = latencies_ms(bursts, heard.onsets(bursts, CALL_HORIZON_S), t0, t1)
            early, _ = latencies_ms(bursts, heard.onsets(bursts, CALL_HORIZON_S, arrival=True), t0, t1)
            played += values
            by_age[index >= new_from].extend(values)
            arrived += early
            lost += missed
            medians.append(rounded(percentile(values, 50)))
        per_call.append(medians)
        caller_gaps += heard_by_caller.gaps(t0, t1)
        agent_gaps += heard_by_agent.gaps(t0, t1)
        dropped += call.caller.hung_up_by_hub or call.phone.ended
    sent = len(c2a) + len(a2c) + lost
    control_figures = control.measure(t0, t1)
    wall = t1 - t0
    cpu = {k: window.cpu1[k] - window.cpu0[k] for k in window.cpu0}
    call_min = n * wall / 60
    gaps = caller_gaps + agent_gaps
    tolerance = int(GAPS_PER_CALL_MIN * call_min)
    both = c2a + a2c
    path = control_figures["path_p50_ms"]
    underruns = stats1["underruns"] - stats0["underruns"]
    late_ticks = stats1["late_ticks"] - stats0["late_ticks"]
    why_not = []
    if underruns:
        why_not.append(f"{underruns} mixer underruns")
    if late_ticks:
        why_not.append(f"{late_ticks} late ticks")
    if len(gaps) > tolerance:
        why_not.append(f"{len(gaps)} receiver gaps (tolerance {tolerance})")
    if dropped:
        why_not.append(f"{dropped} calls dropped")
    if stats1["calls"] < n:
        why_not.append(f"the hub has {stats1['calls']} of {n} calls bridged")

    def added(value: float | None) -> float | None:
        return None if value is None or path is None else round(value - path, 1)

    other = cpu["host"] - cpu["hub"] - cpu["db"] - cpu["bench"]
    return {
        "calls": n,
        "stats_at_start": stats0,
        "stats_at_end": stats1,
        "sustained": not why_not,
        "why_not": why_not,
        "window_s": round(wall, 2),
        "setup_s": round(setup_s, 1),
        "underruns": underruns,
        "late_ticks": late_ticks,
        "ticks": stats1["ticks"] - stats0["ticks"],
        "mix_cpu_s": round(stats1["mix_cpu_s"] - stats0["mix_cpu_s"], 3),
        "hub_calls": stats1["calls"],
        "recording": stats1["recording"],
        "receiver_gaps": len(gaps),
        "gaps_heard_by_callers": len(caller_gaps),
        "gaps_heard_by_agents": len(agent_gaps),
        "gap_tolerance": tolerance,
        "gap_ms_total": round(sum(gaps) * 1000),
        "longest_gap_ms": rounded(max(gaps) * 1000 if gaps else None),
        "bursts": sent,
        "bursts_lost": lost,
        "latency_p50_ms": rounded(percentile(both, 50)),
        "latency_p95_ms": rounded(percentile(both, 95)),
        "caller_to_agent_p50_ms": rounded(percentile(c2a, 50)),
        "caller_to_agent_p95_ms": rounded(percentile(c2a, 95)),
        "agent_to_caller_p50_ms": rounded(percentile(a2c, 50)),
        "agent_to_caller_p95_ms": rounded(percentile(a2c, 95)),
        "caller_to_agent_arrival_p50_ms": rounded(percentile(c2a_arrival, 50)),
        "agent_to_caller_arrival_p50_ms": rounded(percentile(a2c_arrival, 50)),
        "per_call_p50_ms": per_call,
        "new_calls_latency_p50_ms": rounded(percentile(by_age[1], 50)),
        "older_calls_latency_p50_ms": rounded(percentile(by_age[0], 50)),
        "added_latency_p50_ms": added(percentile(both, 50)),
        "added_latency_p95_ms": added(percentile(both, 95)),
        "control": control_figures,
        "cpu_s_per_call_min": round(cpu["hub"] / call_min, 2) if call_min else None,
        "mix_cpu_s_per_call_min": round((stats1["mix_cpu_s"] - stats0["mix_cpu_s"]) / call_min, 3)
        if call_min
        else None,
        "bench_cpu_s_per_call_min": round(cpu["bench"] / call_min, 2) if call_min else None,
        "hub_cores": round(cpu["hub"] / wall, 2),
        "hub_loop_cores": round(cpu["hub_loop"] / wall, 2),
        "db_cores": round(cpu["db"] / wall, 2),
        "bench_cores": round(cpu["bench"] / wall, 2),
        "other_load_cores": round(max(0.0, other) / wall, 2),
        "client_late_frames": sum(window.late_frames.values()),
        "client_late_frames_by_sender": window.late_frames,
        "client_loop_lag_p95_ms": rounded(percentile(window.lags_ms, 95)),
        "client_loop_lag_max_ms": rounded(max(window.lags_ms, default=0.0)),
    }


# -- the run --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    run_started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="bench-bridge-"))
    stack = HubStack(root, DB_NAME)
    rng = random.Random(args.seed)
    bench: Bench | None = None
    control: Control | None = None
    ok = False
    try:
        bench = await start_bench(stack, max(args.levels), rng)
        control = Control(random.Random(rng.random()))
        await control.start()
        log(f"baseline: the paths without the hub, idle, {args.baseline} s")
        captures = control.captures()
        for capture in captures:
            capture.start()
        await asyncio.sleep(PREROLL_S)
        t0 = time.monotonic()
        await asyncio.sleep(args.baseline)
        t1 = time.monotonic()
        await asyncio.sleep(TAIL_S)
        for capture in captures:
            capture.stop()
        baseline = control.measure(t0, t1)
        log(f"baseline: {baseline}")
        levels: list[dict[str, Any]] = []
        stopped_by = "the last level"
        for target in args.levels:
            if time.monotonic() - run_started > args.budget:
                stopped_by = f"the time budget ({args.budget:.0f} s)"
                break
            log(f"level {target}: adding {target - len(bench.calls)} calls")
            setup_started = time.monotonic()
            new_from = len(bench.calls)
            before_setup = await bench.stats()
            try:
                await add_calls(bench, target, timeout=30 + target)
            except (RuntimeError, OSError, httpx.HTTPError, websockets.InvalidHandshake) as exc:
                log(f"level {target}: setting up the calls failed: {exc}")
                levels.append({"calls": target, "sustained": False, "why_not": [f"set-up failed: {exc}"]})
                stopped_by = f"a failed set-up at {target} calls"
                break
            setup_s = time.monotonic() - setup_started
            attempts: list[dict[str, Any]] = []
            for attempt in range(args.retries + 1):
                await asyncio.sleep(args.settle)
                log(f"level {target}: {target} bridged calls; holding {args.window} s")
                window = await hold_window(bench, control, args.window)
                level = summarise(bench, control, window, setup_s, new_from)
                attempts.append(level)
                log(
                    f"level {target}: {'sustained' if level['sustained'] else 'NOT sustained'} "
                    f"{level['why_not'] or ''}; latency p50 {level['latency_p50_ms']} ms "
                    f"(added {level['added_latency_p50_ms']}), hub {level['cpu_s_per_call_min']} CPU "
                    f"s/call-min, hub {level['hub_cores']} cores, bench {level['bench_cores']} cores, "
                    f"client late frames {level['client_late_frames_by_sender']}"
                )
                if level["sustained"] or attempt == args.retries:
                    break
                log(f"level {target}: measuring it again (--retries {args.retries})")
            first = attempts[0]
            level["setup_underruns"] = first["stats_at_start"]["underruns"] - before_setup["underruns"]
            level["setup_late_ticks"] = first["stats_at_start"]["late_ticks"] - before_setup["late_ticks"]
            for earlier, later in itertools.pairwise(attempts):
                # the settle time and pre-roll before a repeated window: the stats did not see them
                later["between_windows_underruns"] = (
                    later["stats_at_start"]["underruns"] - earlier["stats_at_end"]["underruns"]
                )
                later["between_windows_late_ticks"] = (
                    later["stats_at_start"]["late_ticks"] - earlier["stats_at_end"]["late_ticks"]
                )
            for attempt_level in attempts:
                del attempt_level["stats_at_start"], attempt_level["stats_at_end"]
            level["windows"] = len(attempts)
            level["earlier_windows"] = [{k: a[k] for k in EARLIER_KEYS} for a in attempts[:-1]]
            levels.append(level)
            if not level["sustained"]:
                stopped_by = f"the first level not sustained ({target} calls)"
                break
        sustained = [level for level in levels if level.get("sustained")]
        top = sustained[-1] if sustained else (levels[0] if levels and "latency_p50_ms" in levels[0] else {})
        cpu_values = [level["cpu_s_per_call_min"] for level in sustained]
        result = {
            "max_calls": top["calls"] if sustained else 0,
            "figures_level": top.get("calls"),
            "added_latency_p50_ms": top.get("added_latency_p50_ms"),
            "added_latency_p95_ms": top.get("added_latency_p95_ms"),
            "latency_p50_ms": top.get("latency_p50_ms"),
            "latency_p95_ms": top.get("latency_p95_ms"),
            "cpu_s_per_call_min": top.get("cpu_s_per_call_min"),
            "cpu_s_per_call_min_median_sustained": rounded(statistics.median(cpu_values), 2)
            if cpu_values
            else None,
            "bench_cpu_s_per_call_min": top.get("bench_cpu_s_per_call_min"),
            "figures_from": "the highest sustained level (the first level when none was sustained)",
            "stopped_by": stopped_by,
            "levels": levels,
            "baseline": baseline,
            "window_s": args.window,
            "gap_ms": GAP_S * 1000,
            "gaps_per_call_min_tolerated": GAPS_PER_CALL_MIN,
            "total_s": round(time.monotonic() - run_started, 1),
        }
        ok = True
        return result
    finally:
        log("hanging up and stopping the hub and the database")
        if bench is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close_bench(bench), 60)
        if control is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(control.close(), 20)
        await stack.stop()
        clean_up_run_dir(root, succeeded=ok, keep=args.keep, contents="hub log and database")


def fmt(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def spread(pairs: list[list[float | None]], side: int) -> str:
    values = [v for v in (p[side] for p in pairs) if v is not None]
    return f"{min(values)}-{max(values)}" if values else "-"


def level_rows(level: dict[str, Any]) -> list[tuple[str, str]]:
    head = f"{level['calls']} calls"
    if "latency_p50_ms" not in level:
        return [(head, f"NOT sustained: {'; '.join(level['why_not'])}")]
    c = level["control"]
    verdict = "sustained" if level["sustained"] else f"NOT sustained: {'; '.join(level['why_not'])}"
    earlier = [
        (
            "  an earlier window",
            f"NOT sustained: {'; '.join(e['why_not'])}; "
            f"client late frames {e['client_late_frames_by_sender']}, "
            f"other processes {e['other_load_cores']} cores",
        )
        for e in level.get("earlier_windows", [])
    ]
    if "between_windows_underruns" in level:
        earlier.append(
            (
                "  before this window",
                f"{level['between_windows_underruns']} underruns, {level['between_windows_late_ticks']} "
                "late ticks (settle time and pre-roll after the earlier window)",
            )
        )
    return [
        (head, f"{verdict} ({level['window_s']} s window, set-up {level['setup_s']} s)"),
        *earlier,
        (
            "  mixer",
            f"underruns {level['underruns']}, late ticks {level['late_ticks']} of {level['ticks']}, "
            f"mix CPU {level['mix_cpu_s']} s; {level['hub_calls']} calls, {level['recording']} recording; "
            f"while adding calls: {level['setup_underruns']} underruns, "
            f"{level['setup_late_ticks']} late ticks",
        ),
        (
            "  receiver gaps > 60 ms",
            f"{level['receiver_gaps']} (callers {level['gaps_heard_by_callers']}, agents "
            f"{level['gaps_heard_by_agents']}; tolerated {level['gap_tolerance']}), "
            f"{level['gap_ms_total']} ms in all, longest {fmt(level['longest_gap_ms'], ' ms')}",
        ),
        (
            "  mouth-to-ear p50/p95 ms",
            f"caller->agent {fmt(level['caller_to_agent_p50_ms'])}/{fmt(level['caller_to_agent_p95_ms'])}, "
            f"agent->caller {fmt(level['agent_to_caller_p50_ms'])}/{fmt(level['agent_to_caller_p95_ms'])}; "
            f"{level['bursts']} bursts, {level['bursts_lost']} not heard",
        ),
        (
            "  on arrival; per call",
            f"caller->agent {fmt(level['caller_to_agent_arrival_p50_ms'])}, agent->caller "
            f"{fmt(level['agent_to_caller_arrival_p50_ms'])} ms before waiting behind earlier audio; "
            f"per-call p50s {spread(level['per_call_p50_ms'], 0)} and "
            f"{spread(level['per_call_p50_ms'], 1)} ms; calls added for this level "
            f"{fmt(level['new_calls_latency_p50_ms'])}, older calls "
            f"{fmt(level['older_calls_latency_p50_ms'])} ms",
        ),
        (
            "  added by the hub p50/p95",
            f"{fmt(level['added_latency_p50_ms'])}/{fmt(level['added_latency_p95_ms'])} ms over the control "
            f"path (WebRTC {fmt(c['webrtc_p50_ms'])} + websocket {fmt(c['ws_one_way_p50_ms'])} ms; "
            f"control gaps {c['gaps']})",
        ),
        (
            "  CPU",
            f"hub {fmt(level['cpu_s_per_call_min'])} s per call-minute ({level['hub_cores']} cores, "
            f"event loop {level['hub_loop_cores']}), bench {fmt(level['bench_cpu_s_per_call_min'])} s "
            f"({level['bench_cores']} cores), db {level['db_cores']}, "
            f"other processes {level['other_load_cores']} cores",
        ),
        (
            "  client health",
            f"late frames {level['client_late_frames_by_sender']}, loop lag p95 "
            f"{fmt(level['client_loop_lag_p95_ms'])} "
            f"ms, max {fmt(level['client_loop_lag_max_ms'])} ms",
        ),
    ]


def report(result: dict[str, Any]) -> None:
    b = result["baseline"]
    rows: list[tuple[str, str]] = [
        (
            "baseline (no hub, idle)",
            f"WebRTC peer to peer p50 {fmt(b['webrtc_p50_ms'])} ms, p95 {fmt(b['webrtc_p95_ms'])} ms; "
            f"websocket one way p50 {fmt(b['ws_one_way_p50_ms'])} ms; path {fmt(b['path_p50_ms'])} ms; "
            f"gaps {b['gaps']}, {b['bursts_lost']} of {b['bursts'] + b['bursts_lost']} bursts not heard",
        )
    ]
    for level in result["levels"]:
        rows += level_rows(level)
    rows.append(
        (
            "result",
            f"max sustained {result['max_calls']} calls ({result['stopped_by']}); "
            f"at {result['figures_level']} calls: added latency p50 "
            f"{fmt(result['added_latency_p50_ms'])} ms, p95 "
            f"{fmt(result['added_latency_p95_ms'])} ms; hub {fmt(result['cpu_s_per_call_min'])} CPU s per "
            f"call-minute (median over sustained levels "
            f"{fmt(result['cpu_s_per_call_min_median_sustained'])})",
        )
    )
    print_report(f"bench.bridge ({result['total_s']} s)", rows, result, name_width=28, console_width=200)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.bridge", description=__doc__.split("\n\n")[0])
    p.add_argument("--max", type=int, default=64, help="the most concurrent calls to try (64)")
    p.add_argument("--window", type=float, default=10.0, help="seconds each level is measured (10)")
    p.add_argument("--settle", type=float, default=2.0, help="seconds between set-up and the window (2)")
    p.add_argument("--baseline", type=float, default=8.0, help="seconds of the idle baseline (8)")
    p.add_argument(
        "--budget", type=float, default=480.0, help="start no new level after this many seconds (480)"
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="measure a level that was not sustained again, up to this many times; the last window "
        "decides (1)",
    )
    p.add_argument("--quick", action="store_true", help="levels 1, 2, 4 with 4 s windows")
    p.add_argument("--seed", type=int, default=1, help="seed of the burst timing (1)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (hub log, database)")
    args = p.parse_args(argv)
    if args.quick:
        args.max, args.window, args.settle, args.baseline = min(args.max, 4), 4.0, 1.5, 4.0
    if args.max < 1 or args.window <= 0:
        p.error("--max must be at least 1 and --window positive")
    args.levels = [n for n in LADDER if n < args.max] + [args.max]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report(run_to_completion(lambda: run(args)))


if __name__ == "__main__":
    main()
