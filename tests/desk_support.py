"""Test parts for the voice desk: a Python softphone (aiortc) playing a tone, frequency checks,
and a keys-only call flow that queues the caller at once (no speech model needed)."""

from __future__ import annotations

import asyncio
import fractions
import time
from typing import Any

import httpx
import numpy as np

TONE_AMPLITUDE = 8000


def level_at(samples: np.ndarray, rate: int, freq: float) -> float:
    """The amplitude of `freq` in the audio, as a sine's peak amplitude (Hann-windowed FFT)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.size < rate // 20:
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    freqs = np.fft.rfftfreq(samples.size, 1 / rate)
    band = (freqs > freq - 20) & (freqs < freq + 20)
    return float(spectrum[band].max() * 4 / samples.size)


def peak_level(samples: np.ndarray, rate: int, freq: float, window_s: float = 1.0) -> float:
    """The loudest `freq` over any one-second stretch (a tone heard for a part of a call)."""
    step = int(rate * window_s)
    levels = [
        level_at(samples[i : i + step], rate, freq)
        for i in range(0, max(1, samples.size - step + 1), step // 2)
    ]
    return max(levels, default=0.0)


def tone_pcm(freq: float, rate: int, seconds: float, amplitude: float = TONE_AMPLITUDE) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude).astype("<i2").tobytes()


def keys_flow(tenant_id: str, number: str, *, skill: str = "general", survey: bool = True) -> dict[str, Any]:
    """Answer, say one line, queue: the caller reaches an agent without speech recognition."""
    return {
        "_id": f"flow-{tenant_id}-{number}",
        "tenant_id": tenant_id,
        "number": number,
        "name": "desk test line",
        "timezone": "UTC",
        "language": "en",
        "start": "welcome",
        "operator": "queue",
        "announce_agent": False,
        "survey": {"enabled": survey, "prompt": "Please rate this call from one to five.", "scale": 5},
        "nodes": {
            "welcome": {"type": "say", "prompt": "Hello.", "next": "queue"},
            "queue": {"type": "queue", "skill": skill, "hold_music": "default"},
        },
    }


class ToneSoftphone:
    """An agent's or supervisor's softphone in Python: sends a sine (or silence) over
    WebRTC to /api/softphone/offer and keeps what it hears with arrival times."""

    def __init__(self, base_url: str, token: str, freq: float | None) -> None:
        self.base_url = base_url
        self.token = token
        self.freq = freq
        self.heard: list[tuple[float, np.ndarray]] = []  # (monotonic time, 48 kHz mono samples)
        self.rate = 48000
        self.pc: Any = None
        self.paused_until = 0.0
        self._readers: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        from aiortc import RTCPeerConnection, RTCSessionDescription
        from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
        from av import AudioFrame

        phone = self

        class Tone(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self.samples = 0
                self.start: float | None = None

            async def recv(self) -> AudioFrame:
                rate, n = 48000, 960
                if phone.paused_until > time.time():  # no packets at all (a network stall)
                    await asyncio.sleep(phone.paused_until - time.time())
                    self.start = time.time() - self.samples / rate
                if self.start is None:
                    self.start = time.time()
                wait = self.start + self.samples / rate - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                t = (np.arange(n) + self.samples) / rate
                wave = np.sin(2 * np.pi * phone.freq * t) * TONE_AMPLITUDE if phone.freq else np.zeros(n)
                frame = AudioFrame.from_ndarray(
                    wave.astype("<i2").reshape(1, -1), format="s16", layout="mono"
                )
                frame.sample_rate = rate
                frame.pts = self.samples
                frame.time_base = fractions.Fraction(1, rate)
                self.samples += n
                return frame

        self.pc = RTCPeerConnection()
        self.pc.addTrack(Tone())

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            async def read() -> None:
                try:
                    while True:
                        frame = await track.recv()
                        data = frame.to_ndarray().astype(np.float64)
                        channels = len(frame.layout.channels)
                        mono = data.reshape(-1, channels).mean(axis=1) if channels > 1 else data.reshape(-1)
                        self.rate = frame.sample_rate
                        self.heard.append((time.monotonic(), mono))
                except MediaStreamError:
                    pass

            self._readers.append(asyncio.ensure_future(read()))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(
                f"{self.base_url}/api/softphone/offer",
                json={"sdp": self.pc.localDescription.sdp, "type": "offer"},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        assert response.status_code == 200, response.text
        answer = response.json()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        self.pc_id = answer["pc_id"]

    def since(self, t0: float, seconds: float | None = None) -> np.ndarray:
        chunks = [s for at, s in self.heard if at >= t0 and (seconds is None or at < t0 + seconds)]
        return np.concatenate(chunks) if chunks else np.zeros(0)

    async def level(self, freq: float, seconds: float = 1.5) -> float:
        """Listen for `seconds` from now and measure `freq`."""
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        return level_at(self.since(t0), self.rate, freq)

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        for reader in self._readers:
            reader.cancel()


async def caller_level(caller: Any, freq: float, seconds: float = 1.5) -> float:
    """What a TwilioCaller heard of `freq` over the next `seconds` (8 kHz)."""
    start = len(caller.received)
    await asyncio.sleep(seconds)
    import audioop

    pcm = audioop.ulaw2lin(bytes(caller.received[start:]), 2)
    return level_at(np.frombuffer(pcm, dtype="<i2"), 8000, freq)


async def keep_playing(caller: Any, freq: float) -> None:
    """The caller hums `freq` until cancelled (real-time paced)."""
    chunk = tone_pcm(freq, 8000, 1.0)
    while True:
        await caller.play(chunk)
