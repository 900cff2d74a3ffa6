"""A softphone line's audio: the staff browser's WebRTC track in and out of the voice desk.

No pipecat pipeline here, on purpose: pipecat's output track sends silence whenever its
queue is momentarily empty and then plays the late audio behind it, so with the bridge's
own 20 ms clock the delay toward the agent grew by every such gap (1.6 s after a few
minutes at 8 calls, bench.bridge). `LineTrack` is pulled by aiortc at its pace instead and
takes the newest audio the line holds (a few frames at most), so the delay cannot build up.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, AudioResampler
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection

from media.voice_desk import Line

log = logging.getLogger(__name__)

FRAME_MS = 20
RECV_TIMEOUT_S = 1.0
MAX_LATE_S = 0.2  # behind schedule by more than this (a stalled loop): restart the schedule


class LineTrack(MediaStreamTrack):
    """The audio the hub sends to the browser: 20 ms of the line's mix per frame, paced by
    its own timestamps; silence when the line has nothing (idle, or a gap)."""

    kind = "audio"

    def __init__(self, line: Line) -> None:
        super().__init__()
        self.line = line
        self.samples_per_frame = line.rate * FRAME_MS // 1000
        self._start: float | None = None
        self._sent = 0

    async def recv(self) -> AudioFrame:
        rate = self.line.rate
        if self._start is None:
            self._start = time.time()
        wait = self._start + self._sent / rate - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -MAX_LATE_S:
            self._start = time.time() - self._sent / rate
        pcm = self.line.pull(self.samples_per_frame * 2)
        frame = AudioFrame(format="s16", layout="mono", samples=self.samples_per_frame)
        frame.planes[0].update(pcm)
        frame.sample_rate = rate
        frame.pts = self._sent
        frame.time_base = fractions.Fraction(1, rate)
        self._sent += self.samples_per_frame
        return frame


async def feed_microphone(connection: SmallWebRTCConnection, line: Line) -> None:
    """The browser's microphone into the line, resampled to the line's rate."""
    resampler = AudioResampler(format="s16", layout="mono", rate=line.rate)
    while True:
        track = connection.audio_input_track()
        if track is None:
            await asyncio.sleep(0.05)
            continue
        try:
            # pipecat's track wrapper stops receiving when recv() has waited 2 s (it takes
            # that for an unread track): ask again within that, so a pause in the peer's
            # packets does not silence the line for good
            frame = await asyncio.wait_for(track.recv(), RECV_TIMEOUT_S)
        except TimeoutError:
            continue
        except MediaStreamError:
            return  # the peer is gone
        if frame is None:
            await asyncio.sleep(0.01)
            continue
        for resampled in resampler.resample(frame):
            line.feed(resampled.to_ndarray().tobytes())


async def run_line(connection: SmallWebRTCConnection, line: Line) -> None:
    """Send and receive the line's audio until the peer goes or the task is cancelled."""
    connection.replace_audio_track(LineTrack(line))
    await connection.connect()
    reader = asyncio.create_task(feed_microphone(connection, line), name=f"line-in-{line.user_id}")
    try:
        while connection.pc.connectionState not in ("closed", "failed") and not reader.done():
            await asyncio.wait({reader}, timeout=0.5)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
