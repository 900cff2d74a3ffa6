"""Streaming Vosk speech-to-text for pipecat 1.14 (local, no cloud).

Why streaming and not `SegmentedSTTService`: decoding while the caller speaks means the
final transcript is ready a few tens of milliseconds after the turn ends, instead of
decoding the whole utterance afterwards (DESIGN.md: 0.36 s against 4.3 s).

One `KaldiRecognizer` per service instance (= per call); the `vosk.Model` (hundreds of MB)
is loaded once per process per path and shared by every call. Recognition runs on a
dedicated single worker thread per call, fed from a queue, so audio keeps flowing through
the pipeline (to the VAD, recordings, ...) even when the recognizer briefly falls behind,
and chunks are decoded strictly in order. The native Vosk calls release the GIL.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vosk
from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    StartFrame,
    TranscriptionFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import STTSettings
from pipecat.services.stt_service import STTService
from pipecat.transcriptions.language import Language
from pipecat.utils.time import time_now_iso8601
from pipecat.utils.types import NOT_GIVEN, NotGiven, is_given

# Speech end -> finalized transcript, P99, measured here with the Korean model: the VAD's
# stop_secs (0.2 s) plus draining the queue and FinalResult() (< 30 ms in grammar mode,
# up to ~0.1 s in free-vocabulary mode). Turn strategies wait at most this long after the
# VAD stop for the transcript; a finalized frame ends the wait earlier anyway.
VOSK_TTFS_P99 = 0.35

UNK = "[unk]"

_models: dict[str, vosk.Model] = {}
_load_counts: dict[str, int] = {}
_models_lock = threading.Lock()


def _key(model_path: str | Path) -> str:
    return str(Path(model_path).resolve())


def load_model(model_path: str | Path) -> vosk.Model:
    """The process-wide `vosk.Model` for a path, loaded on first use (blocking: call from a thread)."""
    key = _key(model_path)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            if not (Path(key) / "am" / "final.mdl").is_file():
                raise FileNotFoundError(f"no Vosk model at {key} (run: hub models pull NAME)")
            vosk.SetLogLevel(-1)  # Kaldi logs dozens of lines per load and warns per grammar
            logger.info(f"loading Vosk model {key}")
            model = vosk.Model(key)
            _models[key] = model
            _load_counts[key] = _load_counts.get(key, 0) + 1
        return model


def model_load_count(model_path: str | Path) -> int:
    """How many times the model at this path was loaded in this process (1 if sharing works)."""
    return _load_counts.get(_key(model_path), 0)


def has_word(model: vosk.Model, word: str) -> bool:
    """Vosk signals a missing word by returning -1 from `vosk_model_find_word`."""
    return int(model.vosk_model_find_word(word)) >= 0


def grammar_json(model: vosk.Model, phrases: Sequence[str]) -> str:
    """The grammar JSON for a phrase list, with "[unk]" only when the model has that word.

    "[unk]" lets the recogniser answer "none of these" instead of forcing the closest
    phrase; the Korean model has no such word, and Vosk would silently drop it anyway.
    Words missing from the model's vocabulary are also dropped by Vosk: we log them.
    """
    out: list[str] = []
    for phrase in phrases:
        text = " ".join(phrase.lower().split())
        if not text or text == UNK or text in out:
            continue
        missing = [w for w in text.split() if not has_word(model, w)]
        if missing:
            logger.warning(f"Vosk grammar: {missing} not in the model's vocabulary (in {text!r})")
        out.append(text)
    if has_word(model, UNK):
        out.append(UNK)
    return json.dumps(out, ensure_ascii=False)


def new_recognizer(
    model: vosk.Model, sample_rate: int, grammar: Sequence[str] | None
) -> vosk.KaldiRecognizer:
    """A recognizer at the pipeline's input rate (8 kHz phone, 16 kHz WebRTC); Vosk resamples features."""
    if grammar:
        return vosk.KaldiRecognizer(model, float(sample_rate), grammar_json(model, grammar))
    return vosk.KaldiRecognizer(model, float(sample_rate))


def _text(result_json: str, key: str = "text") -> str:
    return _clean(json.loads(result_json).get(key, ""))


def _clean(value: object) -> str:
    """Normalise spacing; a lone "[unk]" means "none of the phrases", i.e. nothing recognised."""
    text = " ".join(str(value or "").split())
    return "" if text == UNK else text


def transcribe_pcm(
    model_path: str | Path,
    pcm16: bytes,
    sample_rate: int,
    grammar: Sequence[str] | None = None,
    chunk_ms: int = 20,
) -> str:
    """Recognise 16-bit mono PCM synchronously, as the service would when streamed (tests, benchmarks)."""
    rec = new_recognizer(load_model(model_path), sample_rate, grammar)
    step = max(2, sample_rate * chunk_ms // 1000 * 2)
    parts: list[str] = []
    for i in range(0, len(pcm16), step):
        if rec.AcceptWaveform(pcm16[i : i + step]):
            parts.append(_text(rec.Result()))
    parts.append(_text(rec.FinalResult()))
    return " ".join(p for p in parts if p)


@dataclass
class VoskSTTSettings(STTSettings):
    """Runtime-updatable settings; `grammar` (phrase list or None for free speech) switches per IVR menu."""

    grammar: list[str] | NotGiven | None = field(default_factory=lambda: NOT_GIVEN)


class _Finalize:
    """Queue marker: the user's turn ended, flush the recognizer."""


class _Regrammar:
    """Queue marker: rebuild the recognizer with a new phrase list (ordered with the audio)."""

    def __init__(self, grammar: list[str] | None) -> None:
        self.grammar = grammar


_Item = bytes | _Finalize | _Regrammar | None


@dataclass
class _Decoded:
    """What one step of the worker produced."""

    final: str = ""
    partial: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


class VoskSTTService(STTService):
    """Streaming Vosk STT: interim frames while speaking, a finalized `TranscriptionFrame` per turn.

    The turn ends on `VADUserStoppedSpeakingFrame` (broadcast upstream by the user
    aggregator's VAD or a `VADProcessor`); `UserStoppedSpeakingFrame` also finalizes when no
    VAD stop reached this service during the turn (e.g. an external turn strategy).
    """

    Settings = VoskSTTSettings
    _settings: VoskSTTSettings

    def __init__(
        self,
        *,
        model_path: str | Path,
        grammar: Sequence[str] | None = None,
        language: Language | str | None = None,
        sample_rate: int | None = None,
        interim_results: bool = True,
        ttfs_p99_latency: float | None = VOSK_TTFS_P99,
        settings: VoskSTTSettings | None = None,
        **kwargs: Any,
    ) -> None:
        """`model_path`: a Vosk model folder (see media.models.resolve_asr); `grammar`: phrases or None."""
        self._model_path = Path(model_path).resolve()
        defaults = VoskSTTSettings(
            model=self._model_path.name,
            language=language,
            grammar=list(grammar) if grammar else None,
        )
        if settings is not None:
            defaults.apply_update(settings)
        super().__init__(
            sample_rate=sample_rate,
            ttfs_p99_latency=ttfs_p99_latency,
            settings=defaults,
            **kwargs,
        )
        self._interim_results = interim_results
        self._model: vosk.Model | None = None
        self._recognizer: vosk.KaldiRecognizer | None = None
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task[None] | None = None
        self._last_partial = ""
        self._fed = False  # audio reached the recognizer since its last flush
        self._vad_finalized = False  # a VAD stop already flushed this turn

    def can_generate_metrics(self) -> bool:
        return True

    @property
    def model(self) -> vosk.Model | None:
        """The shared model (None before start)."""
        return self._model

    # ---- lifecycle ----

    async def start(self, frame: StartFrame) -> None:
        """Start the worker; it loads (or reuses) the model off the StartFrame's path.

        The call starts (and its greeting plays) at once even when the model is not loaded
        yet; audio queues meanwhile and is decoded as soon as the recognizer exists.
        Preload the model at hub start-up (`load_model`) so this never waits.
        """
        await super().start(frame)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"vosk-{self.name}")
        self._worker = self.create_task(self._worker_loop(), name="vosk_worker")

    async def _ensure_recognizer(self) -> bool:
        """Build this call's recognizer at the pipeline's input rate (known only after setup)."""
        if self._recognizer is not None:
            return True
        try:
            if self._model is None:
                self._model = await self._run(load_model, self._model_path)
            grammar = self._current_grammar()
            self._recognizer = await self._run(new_recognizer, self._model, self.sample_rate, grammar)
        except Exception as exc:
            await self.push_error(f"{self}: cannot load Vosk model {self._model_path}: {exc}", exception=exc)
            return False
        return True

    async def stop(self, frame: EndFrame) -> None:
        """Graceful end: decode what is queued and flush the last words before EndFrame moves on."""
        if self._worker is not None:
            self._queue.put_nowait(_Finalize())
            self._queue.put_nowait(None)
            await self._worker
            self._worker = None
        self._shutdown_executor()
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._stop_worker()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self._stop_worker()

    async def _stop_worker(self) -> None:
        if self._worker is not None:
            await self.cancel_task(self._worker)
            self._worker = None
        self._shutdown_executor()

    def _shutdown_executor(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # ---- frames ----

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Queue the chunk for the worker thread; transcripts are pushed from the worker task."""
        if self._worker is not None and not self._worker.done():
            self._queue.put_nowait(audio)
        yield None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._vad_finalized = False
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._vad_finalized = True
            self.finalize()
        elif isinstance(frame, UserStoppedSpeakingFrame):
            if not self._vad_finalized:
                self.finalize()
            self._vad_finalized = False

    def finalize(self) -> None:
        """End the current utterance now (also usable by IVR code, e.g. on a timeout)."""
        if self._worker is not None:
            self._queue.put_nowait(_Finalize())

    async def set_grammar(self, phrases: Sequence[str] | None) -> None:
        """Switch the phrase list (None = free speech) from the next chunk on, e.g. per IVR menu."""
        await self._update_settings(VoskSTTSettings(grammar=list(phrases) if phrases else None))

    async def _update_settings(self, delta: STTSettings) -> dict[str, Any]:  # type: ignore[override]
        changed = await super()._update_settings(delta)
        if "grammar" in changed and self._worker is not None:
            self._queue.put_nowait(_Regrammar(self._current_grammar()))
        unhandled = set(changed) - {"grammar"}
        if unhandled:
            self._warn_unhandled_updated_settings(unhandled)
        return changed

    def _current_grammar(self) -> list[str] | None:
        grammar = self._settings.grammar
        return list(grammar) if is_given(grammar) and grammar else None

    def _language(self) -> Language | None:
        language = self._settings.language
        return language if isinstance(language, Language) else None

    # ---- worker ----

    async def _run(self, fn: Any, *args: Any) -> Any:
        if self._executor is None:
            raise RuntimeError("Vosk worker is not running")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _worker_loop(self) -> None:
        """Consume the queue in order; consecutive audio chunks are decoded in one call to catch up."""
        if not await self._ensure_recognizer():
            return
        pending: _Item = None
        have_pending = False
        while True:
            item = pending if have_pending else await self._queue.get()
            have_pending = False
            if item is None:
                return
            if isinstance(item, bytes):
                audio = bytearray(item)
                while not self._queue.empty():
                    nxt = self._queue.get_nowait()
                    if isinstance(nxt, bytes):
                        audio += nxt
                    else:
                        pending, have_pending = nxt, True
                        break
                await self._decode(bytes(audio))
            elif isinstance(item, _Finalize):
                await self._flush()
            elif isinstance(item, _Regrammar):
                await self._flush()
                self._recognizer = await self._run(
                    new_recognizer, self._model, self.sample_rate, item.grammar
                )

    def _accept(self, audio: bytes) -> _Decoded:
        rec = self._recognizer
        assert rec is not None
        if rec.AcceptWaveform(audio):
            raw = json.loads(rec.Result())
            return _Decoded(final=_clean(raw.get("text")), raw=raw)
        if not self._interim_results:
            return _Decoded()
        return _Decoded(partial=_text(rec.PartialResult(), "partial"))

    def _final(self) -> _Decoded:
        rec = self._recognizer
        assert rec is not None
        raw = json.loads(rec.FinalResult())
        rec.Reset()
        return _Decoded(final=_clean(raw.get("text")), raw=raw)

    async def _decode(self, audio: bytes) -> None:
        try:
            decoded: _Decoded = await self._run(self._accept, audio)
        except Exception as exc:  # a native failure must not kill the call's audio path
            await self.push_error(f"{self}: Vosk failed to decode audio: {exc}", exception=exc)
            return
        self._fed = True
        if decoded.final:
            # Vosk's own endpointer closed a segment (a long pause inside the turn).
            self._last_partial = ""
            await self.emit_stt_usage_metrics()
            await self.push_frame(
                TranscriptionFrame(
                    decoded.final, self._user_id, time_now_iso8601(), self._language(), result=decoded.raw
                )
            )
        elif decoded.partial and decoded.partial != self._last_partial:
            self._last_partial = decoded.partial
            await self.push_frame(
                InterimTranscriptionFrame(
                    decoded.partial, self._user_id, time_now_iso8601(), self._language()
                )
            )

    async def _flush(self) -> None:
        """FinalResult() at the end of a turn; pushes a finalized frame when there are words."""
        if not self._fed or self._recognizer is None:
            return
        self._fed = False
        self._last_partial = ""
        try:
            decoded: _Decoded = await self._run(self._final)
        except Exception as exc:
            await self.push_error(f"{self}: Vosk failed to finalize: {exc}", exception=exc)
            return
        if decoded.final:
            await self.emit_stt_usage_metrics()
            await self.push_frame(
                TranscriptionFrame(
                    decoded.final,
                    self._user_id,
                    time_now_iso8601(),
                    self._language(),
                    result=decoded.raw,
                    finalized=True,
                )
            )
