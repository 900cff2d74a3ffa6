"""Audio bridges: who hears whom on a call, and the mixer that makes it so.

A `Bridge` is one conversation (a customer call, or an internal call between agents)
with up to MAX_PARTIES `Leg`s. Each leg feeds its party's audio in at its own rate
(8 kHz phone, 16 kHz browser) and gets, every 20 ms, the mix of the parties it may
hear, at its rate. `hears()` is the whole policy (hold, mute, supervisor listen /
whisper / barge); the `Mixer` applies it to every bridge of the process on one clock
with one matrix product per bridge.

The mixer runs at MIX_RATE. Each leg keeps at most MAX_BUFFER_MS of unread input so
a fast sender cannot build up delay; a tick that finds less than a frame pads with
silence and counts an underrun if the party was sending (a stalled sender or a late
event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hub.ids import new_id
from media.hold_music import hold_music_pcm
from media.recording import Recorder

log = logging.getLogger(__name__)

MIX_RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = MIX_RATE * FRAME_MS // 1000
MAX_PARTIES = 8
MAX_BUFFER_MS = 120  # hard cap of a party's unread input
JITTER_MAX_FRAMES = 4  # more unread input than this at a tick (after a burst or a stall) ...
JITTER_KEEP_FRAMES = 2  # ... is cut back to this, oldest first, so delay cannot build up
OUTBOX_FRAMES = 10  # 200 ms of mixed audio waiting for a slow leg before the oldest goes
MAX_CATCH_UP_TICKS = 5
STALL_S = 2.0  # a party silent (no packets) for longer has hung up or paused, not underrun

Role = Literal["customer", "agent", "supervisor"]
Mode = Literal["talk", "listen", "whisper", "barge"]


class BridgeFull(Exception):
    """A conference has MAX_PARTIES parties already."""


# ----------------------------------------------------------------------------- resampling


class Resampler:
    """Streaming 8 <-> 16 kHz conversion with a windowed-sinc low-pass.

    Written here because soxr's filtered qualities buffer about 100 ms in streaming
    mode (they emit in large blocks) and audioop.ratecv does not filter, so the
    16 -> 8 kHz path would alias. Other ratios fall back to soxr's quick mode.
    """

    TAPS = 31

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        n = np.arange(self.TAPS) - (self.TAPS - 1) / 2
        cutoff = 0.5 * min(in_rate, out_rate) / max(in_rate, out_rate)  # of the higher rate's Nyquist
        taps = np.sinc(2 * cutoff * n) * np.hamming(self.TAPS)
        self.taps = taps / taps.sum()
        self.history = np.zeros(self.TAPS - 1)
        self._soxr = None
        if {in_rate, out_rate} != {8000, 16000} and in_rate != out_rate:
            import soxr

            self._soxr = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality="QQ")

    def _filter(self, samples: np.ndarray) -> np.ndarray:
        padded = np.concatenate([self.history, samples])
        self.history = padded[-(self.TAPS - 1) :]
        return np.convolve(padded, self.taps, mode="valid")

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """int16 in, int16 out."""
        if self.in_rate == self.out_rate:
            return samples
        if self._soxr is not None:
            out: np.ndarray = self._soxr.resample_chunk(samples)
            return out
        if self.out_rate > self.in_rate:  # up: zero-stuff, then low-pass (gain 2 restores level)
            stuffed = np.zeros(samples.size * 2)
            stuffed[0::2] = samples
            return np.clip(self._filter(stuffed) * 2, -32768, 32767).astype(np.int16)
        filtered = self._filter(samples.astype(np.float64))
        return np.clip(filtered[0::2], -32768, 32767).astype(np.int16)


# ----------------------------------------------------------------------------- legs


@dataclass(eq=False)
class Leg:
    """One party: audio in through `feed`, mixed audio out through `outbox`."""

    role: Role
    rate: int
    user_id: str | None = None
    name: str = ""
    mode: Mode = "talk"  # supervisors: listen, whisper or barge
    muted: bool = False
    held: bool = False
    id: str = field(default_factory=new_id)
    outbox: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(OUTBOX_FRAMES))
    underruns: int = 0
    dropped_ms: int = 0
    frames_out: int = 0

    def __post_init__(self) -> None:
        self._inbox = np.zeros(0, dtype=np.int16)
        self._up = Resampler(self.rate, MIX_RATE)
        self._down = Resampler(MIX_RATE, self.rate)
        self._hold_pos = 0
        self._last_fed = 0.0
        self._extra = np.zeros(0, dtype=np.int16)  # sounds this party sends besides its voice
        self._primed = False  # holds JITTER_KEEP_FRAMES before playing (again)
        self.on_frame: Callable[[bytes], None] | None = None  # optional direct sink (tests, bench)

    def feed(self, pcm: bytes) -> None:
        """The party's audio (16-bit mono at the leg's rate), any length."""
        samples = self._up(np.frombuffer(pcm, dtype="<i2"))
        inbox = np.concatenate([self._inbox, samples]) if self._inbox.size else samples
        limit = MIX_RATE * MAX_BUFFER_MS // 1000
        if inbox.size > limit:
            self.dropped_ms += (inbox.size - limit) * 1000 // MIX_RATE
            inbox = inbox[-limit:]
        self._inbox = inbox
        self._last_fed = time.monotonic()

    def play(self, pcm: bytes) -> None:
        """Send a sound as this party (key tones from the softphone keypad), mixed with its voice."""
        samples = Resampler(self.rate, MIX_RATE)(np.frombuffer(pcm, dtype="<i2"))
        self._extra = np.concatenate([self._extra, samples])

    def take_frame(self, now: float) -> np.ndarray:
        if self._inbox.size > JITTER_MAX_FRAMES * FRAME_SAMPLES:
            surplus = self._inbox.size - JITTER_KEEP_FRAMES * FRAME_SAMPLES
            self.dropped_ms += surplus * 1000 // MIX_RATE
            self._inbox = self._inbox[surplus:]
        if not self._primed and self._inbox.size >= JITTER_KEEP_FRAMES * FRAME_SAMPLES:
            self._primed = True  # a little in hand, so ordinary packet jitter is not a gap
        if self._primed and self._inbox.size >= FRAME_SAMPLES:
            frame, self._inbox = self._inbox[:FRAME_SAMPLES], self._inbox[FRAME_SAMPLES:]
        else:
            if self._primed and now - self._last_fed < STALL_S:  # sending, but ran dry: a gap
                self.underruns += 1
            self._primed = False
            frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        if self._extra.size:
            extra, self._extra = self._extra[:FRAME_SAMPLES], self._extra[FRAME_SAMPLES:]
            mixed = frame.astype(np.int32)
            mixed[: extra.size] += extra
            frame = np.clip(mixed, -32768, 32767).astype(np.int16)
        return frame

    def hold_frame(self, music: np.ndarray) -> np.ndarray:
        start = self._hold_pos % music.size
        frame = np.take(music, range(start, start + FRAME_SAMPLES), mode="wrap")
        self._hold_pos = start + FRAME_SAMPLES
        return frame

    def deliver(self, mixed: np.ndarray) -> None:
        pcm = self._down(mixed).astype("<i2").tobytes()
        self.frames_out += 1
        if self.on_frame is not None:
            self.on_frame(pcm)
            return
        if self.outbox.full():  # the leg's pipeline is behind: keep the newest audio
            with contextlib.suppress(asyncio.QueueEmpty):
                self.outbox.get_nowait()
        self.outbox.put_nowait(pcm)

    def clear_input(self) -> None:
        self._inbox = np.zeros(0, dtype=np.int16)


def hears(listener: Leg, speaker: Leg) -> bool:
    """Whether `listener` gets `speaker`'s audio. The policy of every call control:

    - nobody hears themselves, a muted or held party, and a held party hears only music;
    - a supervisor hears everyone; in `listen` mode nobody hears the supervisor, in
      `whisper` mode only the agents do (coaching), in `barge` mode everyone does.
    """
    if listener is speaker or speaker.muted or speaker.held or listener.held:
        return False
    if speaker.role == "supervisor":
        if speaker.mode == "barge":
            return True
        if speaker.mode == "whisper":
            return listener.role == "agent"
        return False
    return True


# ----------------------------------------------------------------------------- bridges


@dataclass(eq=False)
class Bridge:
    """One conversation's parties, its recording, and the hold music for held parties."""

    tenant_id: str
    contact_id: str | None = None  # None: an internal call between agents
    id: str = field(default_factory=new_id)
    legs: list[Leg] = field(default_factory=list)
    recorder: Recorder | None = None
    created_at: float = field(default_factory=time.time)
    hold_music: np.ndarray = field(default_factory=lambda: np.frombuffer(hold_music_pcm(MIX_RATE), "<i2"))

    def __post_init__(self) -> None:
        self._matrix: np.ndarray | None = None

    def add(self, leg: Leg) -> Leg:
        if len(self.legs) >= MAX_PARTIES:
            raise BridgeFull(f"a call has at most {MAX_PARTIES} parties")
        self.legs.append(leg)
        self.changed()
        return leg

    def remove(self, leg: Leg) -> None:
        if leg in self.legs:
            self.legs.remove(leg)
            self.changed()

    def changed(self) -> None:
        """Call after changing a leg's mode, mute or hold: the matrix is rebuilt next tick."""
        self._matrix = None

    def find(self, *, user_id: str | None = None, role: Role | None = None) -> list[Leg]:
        return [
            leg
            for leg in self.legs
            if (user_id is None or leg.user_id == user_id) and (role is None or leg.role == role)
        ]

    def matrix(self) -> np.ndarray:
        if self._matrix is None or self._matrix.shape[0] != len(self.legs):
            self._matrix = np.array(
                [
                    [1.0 if hears(listener, speaker) else 0.0 for speaker in self.legs]
                    for listener in self.legs
                ]
            ).reshape(len(self.legs), len(self.legs))
        return self._matrix

    def tick(self, now: float) -> None:
        """Mix one frame for every party and the recording."""
        if not self.legs:
            return
        frames = np.stack([leg.take_frame(now) for leg in self.legs]).astype(np.float32)
        mixed = self.matrix() @ frames
        for index, leg in enumerate(self.legs):
            if leg.held:
                leg.deliver(leg.hold_frame(self.hold_music))
            else:
                leg.deliver(np.clip(mixed[index], -32768, 32767).astype(np.int16))
        if self.recorder is not None:
            self._record(frames)

    def _record(self, frames: np.ndarray) -> None:
        assert self.recorder is not None
        customer = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        agent = np.zeros(FRAME_SAMPLES, dtype=np.float32)
        for index, leg in enumerate(self.legs):
            if leg.role == "customer" and not leg.held and not leg.muted:
                customer += frames[index]
            elif not leg.muted and (leg.role == "agent" or leg.mode == "barge"):
                agent += frames[index]
        self.recorder.write(
            np.clip(customer, -32768, 32767).astype(np.int16), np.clip(agent, -32768, 32767).astype(np.int16)
        )


# ----------------------------------------------------------------------------- the clock


class Mixer:
    """One 20 ms clock for all bridges of the process.

    Ticks are scheduled on absolute times; a late loop catches up by mixing the
    missed frames at once (up to MAX_CATCH_UP_TICKS), so audio keeps its rate.
    `late_ticks` counts ticks that ran more than a frame late.
    """

    def __init__(self) -> None:
        self.bridges: set[Bridge] = set()
        self.late_ticks = 0
        self.ticks = 0
        self.tick_cpu_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def add(self, bridge: Bridge) -> None:
        self.bridges.add(bridge)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mixer")

    def discard(self, bridge: Bridge) -> None:
        self.bridges.discard(bridge)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = FRAME_MS / 1000
        next_at = loop.time()
        while self.bridges:
            now = loop.time()
            behind = int((now - next_at) / period)
            if behind > MAX_CATCH_UP_TICKS:
                self.late_ticks += behind
                next_at = now
                behind = 0
            else:
                self.late_ticks += behind
            started = time.thread_time()  # the loop's thread only: not the codecs' threads
            for _ in range(behind + 1):
                wall = time.monotonic()
                for bridge in list(self.bridges):
                    try:
                        bridge.tick(wall)
                    except Exception:  # one broken bridge must not silence the others
                        log.exception("bridge %s: mixing failed; removing it", bridge.id)
                        self.bridges.discard(bridge)
                self.ticks += 1
                next_at += period
            self.tick_cpu_s += time.thread_time() - started
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def stop(self) -> None:
        self.bridges.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
