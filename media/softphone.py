"""A softphone line's audio: the staff browser's WebRTC track in and out of the voice desk.

    transport in -> LineAudio -> transport out

`LineAudio` feeds the microphone to the line's current leg (nothing when the line is
in no call) and plays what the bridge mixes for it; with nothing to play, the
transport sends silence.
"""

from __future__ import annotations

import asyncio
import contextlib

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    OutputAudioRawFrame,
    StartFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import BaseTransport

from media.call import run_worker
from media.voice_desk import Line


class LineAudio(FrameProcessor):
    def __init__(self, line: Line) -> None:
        super().__init__()
        self.line = line
        self._pump: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.line.feed(frame.audio)
            return
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._pump = self.create_task(self._play(), "line-out")
            return
        if isinstance(frame, (EndFrame, CancelFrame)) and self._pump is not None:
            await self.cancel_task(self._pump)
            self._pump = None
        await self.push_frame(frame, direction)

    async def _play(self) -> None:
        while True:
            pcm = await self.line.outbox.get()
            await self.push_frame(OutputAudioRawFrame(pcm, self.line.rate, 1))


async def run_line(transport: BaseTransport, line: Line) -> None:
    """Run the line's pipeline until the peer goes or the task is cancelled."""
    worker = PipelineWorker(
        Pipeline([transport.input(), LineAudio(line), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=line.rate, audio_out_sample_rate=line.rate),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )

    @transport.event_handler("on_client_disconnected")
    async def _gone(_transport: object, _client: object) -> None:
        with contextlib.suppress(Exception):
            await worker.cancel()

    await run_worker(worker)
