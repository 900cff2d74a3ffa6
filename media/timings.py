"""Per-turn voice timings for benchmarks: a pipecat observer that appends JSON lines to a file.

Off unless `HUB_VOICE_TIMINGS=/path/to/file.jsonl` is set in the hub's environment; then
every call pipeline gets one `VoiceTimingObserver`, which writes one line per event:

    {"contact_id": "...", "event": "vad_stop", "t": 12345.678901, ...}

`t` is CLOCK_MONOTONIC in seconds (Python's `time.monotonic()`), which every process on
the host shares, so a benchmark can set it against its own send and receive times.
Events: `vad_start` / `vad_stop` (VADUserStarted/StoppedSpeakingFrame), `transcript`
(TranscriptionFrame, with `text` and `finalized`), `turn_start` / `turn_stop`
(UserStarted/StoppedSpeakingFrame), `tts_speak` (TTSSpeakFrame pushed, with `text`),
`tts_audio` (the first TTSAudioRawFrame after each TTSSpeakFrame), `bot_started`
(BotStartedSpeakingFrame: the output transport started sending audio).

Observers run off the pipeline's path (pipecat queues their events), so the timestamps
come from the pipeline clock at the moment a frame was pushed, not from when the
observer got to it. Writes are one short line each to a file opened in append mode.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    Frame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.processors.frame_processor import FrameDirection

ENV_VAR = "HUB_VOICE_TIMINGS"

_EVENTS: tuple[tuple[type[Frame], str], ...] = (
    (VADUserStartedSpeakingFrame, "vad_start"),
    (VADUserStoppedSpeakingFrame, "vad_stop"),
    (TranscriptionFrame, "transcript"),
    (UserStartedSpeakingFrame, "turn_start"),
    (UserStoppedSpeakingFrame, "turn_stop"),
    (TTSSpeakFrame, "tts_speak"),
    (BotStartedSpeakingFrame, "bot_started"),
)


class VoiceTimingObserver(BaseObserver):
    """Appends the turn-relevant frame events of one call to a JSON-lines file."""

    def __init__(self, path: str | Path, contact_id: str) -> None:
        super().__init__(observe_every_push=False)  # a frame's first push is the moment it happened
        self.path = Path(path)
        self.contact_id = contact_id
        self._file: IO[str] | None = None
        self._awaiting_audio = False

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if data.direction != FrameDirection.DOWNSTREAM:
            return  # broadcast frames go both ways: count each event once
        if isinstance(frame, TTSAudioRawFrame):
            if self._awaiting_audio:
                self._awaiting_audio = False
                self._write("tts_audio", data)
            return
        for cls, event in _EVENTS:
            if isinstance(frame, cls):
                extra: dict[str, Any] = {}
                if isinstance(frame, TranscriptionFrame):
                    extra = {"text": frame.text, "finalized": bool(frame.finalized)}
                elif isinstance(frame, TTSSpeakFrame):
                    extra = {"text": frame.text}
                    self._awaiting_audio = True
                self._write(event, data, extra)
                return

    def _write(self, event: str, data: FramePushed, extra: dict[str, Any] | None = None) -> None:
        t = round(_pushed_at(data), 6)
        line = {"contact_id": self.contact_id, "event": event, "t": t, **(extra or {})}
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._file is not None:
            self._file.close()
            self._file = None


def _pushed_at(data: FramePushed) -> float:
    """CLOCK_MONOTONIC seconds when the frame was pushed: the pipeline clock's start + its reading."""
    started = getattr(data.source.get_clock(), "_time", 0)  # pipecat's SystemClock: monotonic_ns at start
    if isinstance(started, int) and started > 0:
        return (started + data.timestamp) / 1e9
    return time.monotonic()


def timing_observers(contact_id: str) -> list[BaseObserver]:
    """`[VoiceTimingObserver]` when HUB_VOICE_TIMINGS names a file, else `[]` (no cost per call)."""
    path = os.environ.get(ENV_VAR)
    return [VoiceTimingObserver(path, contact_id)] if path else []
