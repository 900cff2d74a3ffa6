"""A synthetic phone caller: speaks Twilio's Media Streams protocol over a real websocket.

It plays 8 kHz mu-law audio in real time (20 ms frames), sends DTMF events like
Twilio does, and records what the hub sends back (media, clear, mark).
"""

from __future__ import annotations

import asyncio
import audioop
import base64
import json
import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Any

import numpy as np
import soxr
import websockets

FRAME_MS = 20
RATE = 8000
FRAME_BYTES = RATE * FRAME_MS // 1000  # mu-law: one byte per sample


def espeak_pcm(text: str, voice: str = "ko", rate: int = RATE) -> bytes:
    """16-bit mono PCM of espeak-ng speaking `text`, resampled to `rate`."""
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav_path), text], check=True)
        with wave.open(str(wav_path)) as wav:
            source_rate = wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    # soxr, not audioop.ratecv: ratecv does not low-pass and the aliasing hurts recognition
    samples = np.frombuffer(pcm, dtype="<i2")
    return bytes(soxr.resample(samples, source_rate, rate, quality="VHQ").astype("<i2").tobytes())


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


class TwilioCaller:
    def __init__(self, ws_url: str, token: str, call_sid: str, stream_sid: str = "MZ" + "0" * 32) -> None:
        self.url = f"{ws_url}/twilio/media"
        self.token = token
        self.call_sid = call_sid
        self.stream_sid = stream_sid
        self.ws: Any = None
        self.received = bytearray()  # mu-law audio from the hub
        self.events: list[dict[str, Any]] = []
        self.clears = 0
        self._reader: asyncio.Task[None] | None = None
        self.hung_up_by_hub = False
        self._seq = 0
        self._ts = 0

    async def connect(self, token: str | None = None) -> None:
        self.ws = await websockets.connect(self.url)
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": "AC" + "1" * 32,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": {"token": token or self.token},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1},
                },
            }
        )
        self._reader = asyncio.create_task(self._read())

    async def _send(self, message: dict[str, Any]) -> None:
        """Send one message; once the hub has hung up, further audio goes nowhere (like a phone)."""
        if self.hung_up_by_hub:
            return
        self._seq += 1
        try:
            await self.ws.send(json.dumps({"sequenceNumber": str(self._seq), **message}))
        except websockets.ConnectionClosed:
            self.hung_up_by_hub = True

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                self.events.append(message)
                if message.get("event") == "media":
                    self.received.extend(base64.b64decode(message["media"]["payload"]))
                elif message.get("event") == "clear":
                    self.clears += 1
        except websockets.ConnectionClosed:
            pass
        self.hung_up_by_hub = True

    async def play(self, pcm: bytes) -> None:
        """Send 16-bit 8 kHz PCM as mu-law media frames, paced in real time."""
        ulaw = audioop.lin2ulaw(pcm, 2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, offset in enumerate(range(0, len(ulaw), FRAME_BYTES)):
            chunk = ulaw[offset : offset + FRAME_BYTES].ljust(FRAME_BYTES, b"\xff")
            self._ts += FRAME_MS
            await self._send(
                {
                    "event": "media",
                    "streamSid": self.stream_sid,
                    "media": {
                        "track": "inbound",
                        "chunk": str(index),
                        "timestamp": str(self._ts),
                        "payload": base64.b64encode(chunk).decode(),
                    },
                }
            )
            delay = start + (index + 1) * FRAME_MS / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def silence(self, seconds: float) -> None:
        await self.play(b"\x00\x00" * int(RATE * seconds))

    async def say(self, pcm: bytes, pause_s: float = 1.5) -> None:
        await self.silence(0.3)
        await self.play(pcm)
        await self.silence(pause_s)

    async def press(self, digit: str) -> None:
        await self._send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def received_pcm(self) -> bytes:
        return bytes(audioop.ulaw2lin(bytes(self.received), 2))

    async def hang_up(self) -> None:
        if self.ws is not None:
            await self._send(
                {
                    "event": "stop",
                    "streamSid": self.stream_sid,
                    "stop": {"accountSid": "AC" + "1" * 32, "callSid": self.call_sid},
                }
            )
            await self.ws.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=5)

    async def wait_audio(self, min_bytes: int, timeout: float = 20) -> None:
        """Until the hub has sent at least `min_bytes` of mu-law audio."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < min_bytes:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"only {len(self.received)} bytes of audio received")
            await asyncio.sleep(0.05)
