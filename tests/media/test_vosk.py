"""Vosk with the real Korean model: grammar recognition, streaming in a pipecat pipeline, model sharing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    STTMetadataFrame,
    TranscriptionFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.worker import PipelineParams
from pipecat.tests.utils import SleepFrame, run_test

from media.vosk_stt import (
    VOSK_TTFS_P99,
    VoskSTTService,
    grammar_json,
    has_word,
    load_model,
    model_load_count,
    transcribe_pcm,
)
from tests.media.conftest import PHRASES

RATE = 8000


def chunks(pcm: bytes, rate: int = RATE, ms: int = 20) -> list[InputAudioRawFrame]:
    """The audio as a transport would deliver it: 20 ms InputAudioRawFrames."""
    step = rate * ms // 1000 * 2
    return [
        InputAudioRawFrame(audio=pcm[i : i + step], sample_rate=rate, num_channels=1)
        for i in range(0, len(pcm), step)
    ]


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(int(rate * seconds) * 2)


def is_part_of(text: str, phrase: str) -> bool:
    """True when `text` is one or more of `phrase`'s words, in order."""
    words, wanted = text.split(), iter(phrase.split())
    return bool(words) and all(word in wanted for word in words)


def transcripts(frames: Sequence[Frame]) -> list[TranscriptionFrame]:
    return [f for f in frames if isinstance(f, TranscriptionFrame)]


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("phrase", PHRASES)
def test_grammar_hears_only_the_spoken_phrase(ko_model: Path, korean_speech, phrase: str, rate: int) -> None:
    """The grammar yields the spoken phrase's words and never the other choice's.

    espeak-ng's synthetic Korean sits at the edge of what the model hears: on another CPU
    the resampled samples differ in their last bits and the model may drop one word
    ("요금 조회" -> "요금"). A menu still matches on the word it heard, so the test asks for
    a non-empty sub-sequence of the phrase rather than every word.
    """
    text = transcribe_pcm(ko_model, korean_speech[(phrase, rate)], rate, grammar=[*PHRASES, "[unk]"])
    assert is_part_of(text, phrase), f"{text!r} is not part of {phrase!r}"


def test_korean_model_has_no_unk_so_grammar_leaves_it_out(ko_model: Path) -> None:
    model = load_model(ko_model)
    assert not has_word(model, "[unk]")
    assert has_word(model, "상담원") and has_word(model, "조회")
    assert json.loads(grammar_json(model, [*PHRASES, "[unk]", " 요금  조회 "])) == PHRASES


def test_silence_is_not_forced_into_a_menu_choice(ko_model: Path) -> None:
    assert transcribe_pcm(ko_model, silence(1.0), RATE, grammar=PHRASES) == ""


async def test_service_streams_and_finalizes_on_vad_stop(ko_model: Path, korean_speech) -> None:
    stt = VoskSTTService(model_path=ko_model, grammar=PHRASES)
    audio = silence(0.3) + korean_speech[("상담원 연결", RATE)] + silence(0.3)
    marker = InputAudioRawFrame(audio=silence(0.02), sample_rate=RATE, num_channels=1)
    frames: list[Frame] = [
        VADUserStartedSpeakingFrame(),
        *chunks(audio),
        VADUserStoppedSpeakingFrame(stop_secs=0.2),
        SleepFrame(0.3),
        marker,
    ]
    down, up = await run_test(
        stt, frames_to_send=frames, pipeline_params=PipelineParams(audio_in_sample_rate=RATE)
    )
    finals = transcripts(down)
    assert len(finals) == 1 and is_part_of(finals[0].text, "상담원 연결")
    assert finals[0].finalized
    # Finalized by the VAD stop, not by the end of the pipeline: it comes before the marker.
    assert down.index(finals[0]) < down.index(marker)
    assert any(isinstance(f, InterimTranscriptionFrame) for f in down)
    # Audio still flows on (recordings, VAD downstream need it).
    assert sum(isinstance(f, InputAudioRawFrame) for f in down) == len(chunks(audio)) + 1
    metadata = [f for f in [*down, *up] if isinstance(f, STTMetadataFrame)]
    assert metadata and metadata[0].ttfs_p99_latency == VOSK_TTFS_P99


async def test_service_finalizes_on_user_stopped_speaking_and_switches_grammar(
    ko_model: Path, korean_speech
) -> None:
    """No VAD frame reaches the service (external turn strategy): the turn end flushes it."""
    stt = VoskSTTService(model_path=ko_model, grammar=["상담원 연결"])
    await stt.set_grammar(PHRASES)  # before start: applied when the recognizer is built
    audio = korean_speech[("요금 조회", RATE)] + silence(0.3)
    down, _ = await run_test(
        stt,
        frames_to_send=[*chunks(audio), UserStoppedSpeakingFrame()],
        pipeline_params=PipelineParams(audio_in_sample_rate=RATE),
    )
    finals = transcripts(down)
    assert [f.text for f in finals] == ["요금 조회"]
    assert finals[0].finalized


async def test_model_is_loaded_once_for_two_services(ko_model: Path, korean_speech) -> None:
    first = VoskSTTService(model_path=ko_model, grammar=PHRASES)
    second = VoskSTTService(model_path=str(ko_model) + "/", grammar=PHRASES)
    params = PipelineParams(audio_in_sample_rate=RATE)
    for stt, phrase in ((first, "상담원 연결"), (second, "요금 조회")):
        frames = [*chunks(korean_speech[(phrase, RATE)] + silence(0.3)), VADUserStoppedSpeakingFrame()]
        down, _ = await run_test(stt, frames_to_send=frames, pipeline_params=params)
        assert [f.text for f in transcripts(down)] == [phrase]
    assert first.model is not None and first.model is second.model
    assert model_load_count(ko_model) == 1
