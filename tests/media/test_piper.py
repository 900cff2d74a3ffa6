"""Piper with the real joe voice: audible audio, plausible length, frames from the pipecat service."""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.frames.frames import TTSAudioRawFrame, TTSSpeakFrame, TTSStartedFrame, TTSStoppedFrame
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import SleepFrame, run_test

from media.piper_tts import (
    DEFAULT_VOICE,
    PiperTTSService,
    _resample,
    load_voice,
    synthesize_pcm,
    voice_load_count,
)

TEXT = "Hello, this is Northwind."


@pytest.fixture(scope="session")
def joe() -> None:
    """Load the voice once for the session (the module caches it per process)."""
    load_voice(DEFAULT_VOICE)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def test_synthesize_pcm_is_audible_speech_of_plausible_length(joe: None) -> None:
    pcm, rate = synthesize_pcm(TEXT)
    assert rate == 22050
    seconds = len(pcm) / 2 / rate
    assert 0.8 < seconds < 4.0  # five words
    assert rms(pcm) > 1000  # normalised speech is in the thousands; silence is 0


def test_synthesize_pcm_resamples_for_the_phone(joe: None) -> None:
    phone, rate = synthesize_pcm(TEXT, sample_rate=8000)
    assert rate == 8000
    assert 0.8 < len(phone) / 2 / rate < 4.0  # Piper's durations vary a little from run to run
    assert rms(phone) > 1000
    native, native_rate = synthesize_pcm(TEXT)
    resampled = _resample(native, native_rate, 8000)
    assert abs(len(resampled) / 2 - len(native) / 2 * 8000 / native_rate) <= 2


def test_unknown_voice_fails_at_construction() -> None:
    with pytest.raises(FileNotFoundError, match="not installed"):
        PiperTTSService(voice="xx_XX-nobody-low")


@pytest.mark.parametrize("rate", [8000, 22050])
async def test_service_yields_audio_frames_at_the_pipeline_rate(joe: None, rate: int) -> None:
    tts = PiperTTSService()
    down, _ = await run_test(
        tts,
        frames_to_send=[TTSSpeakFrame(TEXT), SleepFrame(0.5)],
        pipeline_params=PipelineParams(audio_out_sample_rate=rate),
    )
    audio = [f for f in down if isinstance(f, TTSAudioRawFrame)]
    assert audio, [type(f).__name__ for f in down]
    assert {f.sample_rate for f in audio} == {rate}
    pcm = b"".join(f.audio for f in audio)
    assert 0.8 < len(pcm) / 2 / rate < 4.0
    assert rms(pcm) > 1000
    kinds = [type(f) for f in down]
    assert kinds.index(TTSStartedFrame) < kinds.index(TTSAudioRawFrame) < kinds.index(TTSStoppedFrame)
    assert voice_load_count(DEFAULT_VOICE) == 1
