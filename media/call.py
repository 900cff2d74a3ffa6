"""One voice call: the pipecat pipeline and the processor that runs the IVR, the bot and the queue.

    transport in -> VAD -> Vosk STT -> user turns (barge-in) -> CallBrain -> Piper TTS -> transport out

CallBrain sits where an LLM would: it turns final transcripts and key presses into
IVR events, speaks prompts, sends free speech to Rasa (the contact id is the Rasa
sender), queues the caller with the router and plays hold music. Every caller
utterance and every prompt is stored on the contact as its transcript.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import wave
from collections.abc import Sequence
from typing import Any

from gridfs.asynchronous import AsyncGridFSBucket
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    TranscriptionFrame,
    TTSSpeakFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_processor import UserTurnProcessor
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from bot.actions import balance_text
from bot.ivr import (
    Action,
    CreateCallback,
    Enqueue,
    EnterBot,
    Hangup,
    IvrSession,
    LeaveQueue,
    Listen,
    Lookup,
    Play,
    Prompt,
    RecordVoicemail,
    StartHoldMusic,
    Survey,
    prompt_audio,
)
from bot.rasa_client import BotUnavailable
from hub.contacts import append_message, get_contact, open_contact, update_contact
from hub.context import AppContext
from hub.db import Doc
from hub.events import Event
from hub.ids import new_id, utcnow
from knowledge.customers import get_customer
from media.bridge import MIX_RATE, Leg
from media.hold_music import hold_music_pcm
from media.recording import Recorder, recording_settings
from media.timings import timing_observers

log = logging.getLogger(__name__)

BOT_DOWN_TEXT = "Sorry, our assistant is unavailable right now. Let me put you through to an agent."
QUEUE_TICK_S = 30.0
CHUNK_MS = 20
TRANSFER_TEXT = "Please hold while I transfer your call."
OPT_OUT_KEY = "9"  # robot and broadcast campaigns: this key stops all calls to the number
OPT_OUT_TEXT = "You will not be called again. Goodbye."
PROMPT_WAIT_MAX_S = 20.0
BRIDGE_AHEAD_S = 0.1  # what the caller's transport may hold of the bridge's audio


def agent_code(user_id: str) -> str:
    """A short spoken id for an agent ("agent 4821"), stable per user."""
    return f"{int(user_id[:8], 16) % 9000 + 1000}"


class PlayoutObserver(BaseObserver):
    """Counts the audio the output transport has actually sent (it pushes each frame on
    after writing it), so the bridge knows how much is still queued in front of the caller."""

    def __init__(self) -> None:
        super().__init__()
        self.played_s = 0.0

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        if isinstance(frame, OutputAudioRawFrame) and isinstance(data.source, BaseOutputTransport):
            self.played_s += len(frame.audio) / (2 * frame.sample_rate * max(1, frame.num_channels))


class BridgeTap(FrameProcessor):
    """First after the transport: the caller's audio goes straight to the agent bridge, so
    queues in the speech stages behind it (VAD, STT) never delay what the agent hears."""

    def __init__(self) -> None:
        super().__init__()
        self.leg: Leg | None = None
        self.keep_audio = True  # False: nothing behind needs the audio while bridged (no STT)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and self.leg is not None:
            self.leg.feed(frame.audio)
            if not self.keep_audio:
                return  # spares the VAD model's work on every frame of the conversation
        await self.push_frame(frame, direction)


class CallBrain(FrameProcessor):
    """Drives one call: IVR events in, prompts, bot turns, queueing and hold music out."""

    def __init__(
        self,
        ctx: AppContext,
        contact: Doc,
        session: IvrSession,
        *,
        sample_rate: int,
        stt: Any | None = None,
        queue_tick_s: float = QUEUE_TICK_S,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.contact_id: str = contact["_id"]
        self.tenant_id: str = contact["tenant_id"]
        self.session = session
        self.sample_rate = sample_rate
        self.stt = stt  # the Vosk service, for per-menu grammars (None: DTMF only)
        self.queue_tick_s = queue_tick_s
        self._listen: Listen | None = None
        self._timeout_task: asyncio.Task[None] | None = None
        self._hold_task: asyncio.Task[None] | None = None
        self._music: str | None = None  # the queue's hold music, else the IVR node's ("default": ours)
        self._watch_task: asyncio.Task[None] | None = None
        self._bot_lock = asyncio.Lock()
        self._recording: bytearray | None = None
        self._after_recording: list[Action] = []
        self._recording_task: asyncio.Task[None] | None = None
        self._speaking_prompt = False
        self._campaign_key: tuple[str, str | None, str | None] | None = None  # outbound opt-out
        self._questionnaire: tuple[Any, Any] | None = None  # (Questionnaire, QuestionnaireSession)
        self._keys = ""  # keys typed for a questionnaire answer, until '#'
        self._ended = False
        self._quiet = asyncio.Event()  # set while no prompt or music is playing out
        self._quiet.set()
        self._leg: Leg | None = None  # in the agent bridge (media/voice_desk.py)
        self._bridge_pump: asyncio.Task[None] | None = None
        self.playout = PlayoutObserver()
        self.tap = BridgeTap()

    # -- pipecat ------------------------------------------------------------------------------
    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self._watch_task = self.create_task(self._watch_contact(), "watch-contact")
            if not await self._start_questionnaire():
                await self._run(self.session.start())
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._caller_gone()
            await self.push_frame(frame, direction)
        elif isinstance(frame, InputDTMFFrame):
            await self._on_dtmf(str(frame.button.value))
        elif isinstance(frame, TranscriptionFrame):
            if frame.text.strip():
                await self._on_speech(frame.text.strip())
        elif isinstance(frame, InterimTranscriptionFrame):
            pass  # interim text is for latency metrics, not for the IVR
        elif isinstance(frame, InputAudioRawFrame):
            if self._recording is not None:
                self._recording.extend(frame.audio)
        elif isinstance(frame, InterruptionFrame) and self._leg is not None:
            pass  # talking over the agent must not cut the agent's audio (or send Twilio a clear)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._quiet.clear()
            await self.push_frame(frame, direction)
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._quiet.set()
            await self.push_frame(frame, direction)
            self._arm_timeout()
        else:
            await self.push_frame(frame, direction)

    # -- events -------------------------------------------------------------------------------
    async def _on_dtmf(self, digit: str) -> None:
        await self._store("visitor", f"[key {digit}]")
        if digit and digit == await self._opt_out_key():
            await self._opt_out()
            return
        if self._questionnaire is not None:
            await self._questionnaire_key(digit)
            return
        if self._recording is not None and digit in "#*":
            await self._finish_voicemail()
            return
        await self._run(self.session.on_dtmf(digit))

    # -- a questionnaire asked by a robot call (bot/questionnaire.py) ---------------------------
    async def _start_questionnaire(self) -> bool:
        """An outbound robot call with a questionnaire asks it instead of running the flow."""
        from bot.questionnaire import QuestionnaireSession
        from bot.questionnaire_store import questionnaire_for_contact

        contact = await get_contact(self.ctx, self.contact_id) or {}
        if contact.get("direction") != "outbound" or not contact.get("questionnaire_id"):
            return False
        questionnaire = await questionnaire_for_contact(self.ctx, contact)
        if questionnaire is None:
            log.error(
                "call %s: questionnaire %s is missing", self.contact_id, contact.get("questionnaire_id")
            )
            return False
        session = QuestionnaireSession(questionnaire)
        self._questionnaire = (questionnaire, session)
        if self.stt is not None:
            await self.stt.set_grammar(None)  # text answers are spoken
        await self._say(session.start().as_voice())
        return True

    async def _questionnaire_key(self, digit: str) -> None:
        """A choice is one key; numbers, dates and several choices are keys ended by '#'."""
        if self._questionnaire_kind() == "single" and digit != "#":
            await self._questionnaire_answer(digit)
        elif digit == "#":
            keys, self._keys = self._keys, ""
            await self._questionnaire_answer(keys)
        else:
            self._keys += digit

    def _questionnaire_kind(self) -> str | None:
        assert self._questionnaire is not None
        questionnaire, session = self._questionnaire
        if session.current is None or not questionnaire.has_question(session.current):
            return None
        return questionnaire.question(session.current).kind

    async def _questionnaire_answer(self, raw: str) -> None:
        from bot.questionnaire_store import save_session

        assert self._questionnaire is not None
        questionnaire, session = self._questionnaire
        step = session.answer(raw)
        if step.done:
            await self._say(step.end_text or "Thank you. Goodbye.")
            contact = await get_contact(self.ctx, self.contact_id)
            if contact is not None:
                await save_session(
                    self.ctx, questionnaire=questionnaire, contact=contact, session=session, channel="voice"
                )
            self._questionnaire = None
            self.session.state = "ended"
            await self._run([Hangup()])
            return
        if step.error:
            await self._say(step.error)
        if step.prompt is not None:
            await self._say(step.prompt.as_voice())

    async def _save_partial_questionnaire(self) -> None:
        """The callee hung up mid-way: what they answered still counts (started, not completed)."""
        from bot.questionnaire_store import save_session

        if self._questionnaire is None:
            return
        questionnaire, session = self._questionnaire
        self._questionnaire = None
        contact = await get_contact(self.ctx, self.contact_id)
        if contact is not None and session.answers:
            await save_session(
                self.ctx, questionnaire=questionnaire, contact=contact, session=session, channel="voice"
            )

    async def _opt_out_key(self) -> str | None:
        """The key that stops a campaign's robot or broadcast calls to this number, if any."""
        if self._campaign_key is None:
            contact = await get_contact(self.ctx, self.contact_id) or {}
            campaign = None
            if contact.get("direction") == "outbound" and contact.get("campaign_id"):
                campaign = await self.ctx.db.campaigns.find_one(
                    {"_id": contact["campaign_id"]}, {"type": 1, "opt_out_key": 1}
                )
            key = ""
            if campaign is not None and campaign.get("type") in ("robot", "broadcast"):
                key = str(campaign.get("opt_out_key") or OPT_OUT_KEY)
            self._campaign_key = (key, contact.get("campaign_id"), contact.get("to_number"))
        return self._campaign_key[0] or None

    async def _opt_out(self) -> None:
        """The callee pressed the opt-out key: never called again, from any campaign; now."""
        from knowledge.dnc import DncError, opt_out

        assert self._campaign_key is not None
        _, campaign_id, number = self._campaign_key
        try:
            await opt_out(self.ctx, self.tenant_id, str(number), "opt_out_key", campaign_id=campaign_id)
        except DncError as exc:
            log.warning("call %s: opt-out of %r failed: %s", self.contact_id, number, exc)
        self.session.state = "ended"
        await self._say(OPT_OUT_TEXT)
        await self._run([Hangup()])  # the goodbye is queued ahead of the end

    async def _on_speech(self, text: str) -> None:
        await self._store("visitor", text)
        if self._questionnaire is not None:
            await self._questionnaire_answer(text)
            return
        if self.session.state == "bot":
            await self._bot_turn(text)
        else:
            await self._run(self.session.on_speech(text))

    async def _bot_turn(self, text: str) -> None:
        """Free speech goes to Rasa; a handoff decided by Rasa's actions moves us to the queue."""
        async with self._bot_lock:
            if self.ctx.rasa is None:
                replies = None
            else:
                try:
                    replies = await self.ctx.rasa.send(self.contact_id, text)
                except BotUnavailable as exc:
                    log.warning("call %s: bot unavailable: %s", self.contact_id, exc)
                    replies = None
            if replies is None:
                await self._say(BOT_DOWN_TEXT)
                await self._run(self.session.on_bot_handoff("", "bot_unavailable"))
                return
            for reply in replies:
                if reply.get("text"):
                    await self._say(reply["text"])
            contact = await get_contact(self.ctx, self.contact_id)
            if contact is not None and contact["status"] != "bot":
                # Rasa's action_handoff already queued the contact; the IVR plays the queue part.
                await self._run(
                    self.session.on_bot_handoff(contact.get("skill") or "", contact.get("reason") or ""),
                    already_queued=True,
                )

    async def _watch_contact(self) -> None:
        """Agent accepted -> announce; agent wrapped up -> survey; and queue-position ticks."""
        async with self.ctx.bus.subscribe(f"contact:{self.contact_id}") as queue:
            while True:
                try:
                    event: Event = await asyncio.wait_for(queue.get(), self.queue_tick_s)
                except TimeoutError:
                    if self.session.state == "queued":
                        await self._run(self.session.on_queue_tick(await self._queue_position()))
                    continue
                if event["type"] == "queue_offer":
                    await self._run(self.session.on_queue_offer(list(event["offers"])))
                    continue
                if event["type"] == "call_control":
                    await self._call_control(event)
                    continue
                if event["type"] != "contact":
                    continue
                status = event["contact"]["status"]
                if status == "assigned" and self.session.state == "queued":
                    self._stop_hold_music()
                    code = agent_code(event["contact"].get("agent_id") or "0" * 8)
                    await self._run(self.session.on_agent_connected(code))
                    await self._join_agent()
                elif status in ("queued", "offered") and self.session.state == "agent":
                    await self._back_to_queue()
                elif status == "closed" and self.session.state in ("agent", "queued"):
                    self._stop_hold_music()
                    await self._leave_agent()
                    await self._run(self.session.on_call_end())

    # -- the agent part -------------------------------------------------------------------------
    async def _join_agent(self) -> None:
        """Through to the agent: the recording disclosure (if the tenant wants one), then the
        caller joins the agent's bridge and the recording starts."""
        from media.voice_desk import voice_desk

        policy = await recording_settings(self.ctx, self.tenant_id)
        if policy.enabled and policy.disclosure:
            await self._say(policy.disclosure_text)
        await self._wait_prompts()
        contact = await get_contact(self.ctx, self.contact_id)
        if contact is None or contact["status"] != "assigned" or self.session.state != "agent" or self._ended:
            return
        recorder = None
        if policy.enabled:
            recorder = Recorder(self.tenant_id, self.contact_id, 16000, disclosure_played=policy.disclosure)
        self._stop_hold_music()
        # Drop audio still queued for the caller (music pushed while a prompt played, Twilio's
        # buffer): the agent's voice must not wait behind it.
        await self.broadcast_interruption()
        leg = Leg("customer", self.sample_rate, name=contact.get("from_number") or "caller")
        self._leg = leg
        self.tap.leg = leg
        self.tap.keep_audio = self.stt is not None
        self._bridge_pump = self.create_task(self._play_bridge(leg), "bridge-out")
        music = await music_pcm(self.ctx, self.tenant_id, self._music, MIX_RATE)
        await voice_desk(self.ctx).customer_joins(contact, leg, recorder, hold_music=music)
        if self.stt is not None:
            await self.stt.set_grammar(None)  # free speech: the live transcript the agent sees

    async def _wait_prompts(self) -> None:
        """Until the announcement / disclosure has been played (the bridge would talk over it)."""
        await asyncio.sleep(0.5)  # the speech starts within this (Piper's first audio ~0.1 s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._quiet.wait(), PROMPT_WAIT_MAX_S)

    async def _play_bridge(self, leg: Leg) -> None:
        """The bridge's mix to the caller, with at most BRIDGE_AHEAD_S queued in the transport.

        The transport plays at its own pace (pipecat's websocket output even slips a little
        whenever the loop is late) and queues what it is given; audio queued behind would
        stay that late for the rest of the call. So what was pushed is weighed against what
        the transport has sent (`PlayoutObserver`) and what would queue too long is dropped.
        """
        played_at_start = self.playout.played_s
        pushed_s = 0.0
        while True:
            pcm = await leg.outbox.get()
            queued = pushed_s - (self.playout.played_s - played_at_start)
            if queued > BRIDGE_AHEAD_S:
                leg.dropped_ms += CHUNK_MS
                continue
            await self.push_frame(OutputAudioRawFrame(pcm, self.sample_rate, 1))
            pushed_s += len(pcm) / (2 * self.sample_rate)

    async def _leave_agent(self) -> None:
        from media.voice_desk import voice_desk

        if self._leg is None:
            return
        self._leg = None
        self.tap.leg = None
        if self._bridge_pump is not None:
            await self.cancel_task(self._bridge_pump)
            self._bridge_pump = None
        await voice_desk(self.ctx).customer_leaves(self.contact_id)

    async def _back_to_queue(self) -> None:
        """Transferred blind, or the agent's browser dropped: wait for the next agent."""
        await self._leave_agent()
        self.session.state = "queued"
        await self._say(TRANSFER_TEXT)
        await self._wait_prompts()  # music pushed during speech would queue behind it
        if self.session.state == "queued" and not self._ended:
            self._start_hold_music()

    async def _leave_message(self, prompt_id: str) -> None:
        """An answering machine took an outbound call: stop what runs, play the campaign's
        message after the beep, hang up."""
        self._stop_hold_music()
        self._cancel_timeout()
        self._questionnaire = None
        await self._leave_agent()
        await self.broadcast_interruption()  # nothing said so far is left to play
        self.session.state = "ended"
        await self._run([Play(Prompt(audio_id=prompt_id)), Hangup()])

    async def _follow_up_contact(self) -> None:
        """The agent's part is theirs to wrap up; what the caller does next (self-service, or
        another agent) is a new contact of the same call, linked by `follows_contact_id`."""
        old = await get_contact(self.ctx, self.contact_id)
        if old is None:
            return
        keep = ("from_number", "to_number", "flow_id", "web_visitor_id", "chat_contact_id", "answered_at")
        extra: Doc = {key: old.get(key) for key in keep if key in old}
        extra.update(
            follows_contact_id=old["_id"],
            call_ref=old.get("call_sid") or old.get("pc_id"),
            call_status="in-progress",
            ivr_path=list(self.session.path),
        )
        new = await open_contact(
            self.ctx, self.tenant_id, old["channel"], customer_id=old.get("customer_id"), extra=extra
        )
        self.contact_id = new["_id"]
        if self._watch_task is not None:
            self._watch_task.cancel()
        self._watch_task = self.create_task(self._watch_contact(), "watch-contact")

    async def _call_control(self, event: Event) -> None:
        """The agent hung up: the caller goes on to the survey, back to the IVR, or is let go."""
        if event.get("action") == "leave_message":
            await self._leave_message(str(event.get("prompt_id") or ""))
            return
        if event.get("action") != "agent_hangup" or self.session.state != "agent":
            return
        await self._leave_agent()
        after = event.get("after")
        if after == "ivr" and self.session.flow.start:
            await self._follow_up_contact()
            await self._run(self.session.goto(self.session.flow.start))
        elif after == "end":
            self.session.state = "ended"
            await self._run([Hangup()])
        else:
            await self._run(self.session.on_call_end())

    async def _queue_position(self) -> int:
        contact = await get_contact(self.ctx, self.contact_id)
        if contact is None or contact.get("queued_at") is None:
            return 0
        priority = contact.get("priority") or 0
        ahead = await self.ctx.db.contacts.count_documents(
            {
                "tenant_id": self.tenant_id,
                "queue_id": contact.get("queue_id"),
                "status": {"$in": ["queued", "offered"]},
                "$or": [
                    {"priority": {"$gt": priority}},
                    {"priority": priority, "queued_at": {"$lt": contact["queued_at"]}},
                ],
            }
        )
        return ahead + 1

    # -- actions ------------------------------------------------------------------------------
    async def _run(self, actions: Sequence[Action], *, already_queued: bool = False) -> None:
        for index, action in enumerate(actions):
            if isinstance(action, Play):
                await self._play(action.prompt)
            elif isinstance(action, Listen):
                await self._start_listening(action)
            elif isinstance(action, EnterBot):
                await self._save_path()
                if action.text:
                    await self._bot_turn(action.text)
            elif isinstance(action, Enqueue):
                await self._save_path()
                if not already_queued:
                    router = self.ctx.require_router()
                    queued = await router.enqueue(
                        self.contact_id,
                        action.skill,
                        action.reason,
                        queue_id=action.queue_id,
                        direct_agent_id=action.agent_id,
                    )
                    waiting = queued is not None and queued["status"] in ("queued", "offered")
                    queue_music = await router.hold_music(queued) if queued is not None else None
                    self._music = queue_music or self._music
                    if waiting and queue_music:
                        self._start_hold_music()  # the queue's music, where the IVR node set none
            elif isinstance(action, StartHoldMusic):
                self._music = self._music or action.name
                self._start_hold_music()
            elif isinstance(action, LeaveQueue):
                self._stop_hold_music()
                await self.ctx.require_router().abandon(self.contact_id, "caller_left_queue")
            elif isinstance(action, RecordVoicemail):
                # the recording lasts until '#', its time limit or a hang-up; then the rest runs
                self._after_recording = list(actions[index + 1 :])
                await self._start_voicemail(action.max_seconds)
                return
            elif isinstance(action, CreateCallback):
                await self._create_task("callback", None)
            elif isinstance(action, Lookup):
                await self._lookup(action.kind)
            elif isinstance(action, Survey):
                await self._save_path()
            elif isinstance(action, Hangup):
                await self._hang_up()

    async def _play(self, prompt: Prompt) -> None:
        if prompt.text:
            await self._say(prompt.text)
        elif prompt.audio_id:
            pcm = await load_prompt_pcm(self.ctx, self.tenant_id, prompt.audio_id, self.sample_rate)
            if pcm is None:
                log.warning("call %s: audio prompt %s missing", self.contact_id, prompt.audio_id)
                return
            await self._store("bot", "[audio prompt]")
            await self._push_audio(pcm)

    async def _say(self, text: str) -> None:
        await self._store("bot", text)
        await self.push_frame(TTSSpeakFrame(text))

    async def _push_audio(self, pcm: bytes) -> None:
        step = self.sample_rate * 2 * CHUNK_MS // 1000
        for offset in range(0, len(pcm), step):
            await self.push_frame(OutputAudioRawFrame(pcm[offset : offset + step], self.sample_rate, 1))

    async def _start_listening(self, listen: Listen) -> None:
        self._listen = listen
        if self.stt is not None and listen.mode in ("speech", "both"):
            await self.stt.set_grammar(listen.phrases)
        self._cancel_timeout()

    def _arm_timeout(self) -> None:
        """The no-input timer starts when the prompt has finished playing."""
        listen = self._listen
        if listen is None or listen.timeout_s is None or self._ended:
            return
        self._cancel_timeout()
        self._timeout_task = self.create_task(self._timeout(listen.timeout_s), "no-input")

    async def _timeout(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._timeout_task = None
        self._listen = None
        await self._run(self.session.on_timeout())

    def _cancel_timeout(self) -> None:
        if self._timeout_task is not None and self._timeout_task is not asyncio.current_task():
            self._timeout_task.cancel()
        self._timeout_task = None

    def _start_hold_music(self) -> None:
        if self._hold_task is None:
            self._hold_task = self.create_task(self._hold_music(), "hold-music")

    def _stop_hold_music(self) -> None:
        if self._hold_task is not None:
            self._hold_task.cancel()
            self._hold_task = None

    async def _hold_music(self) -> None:
        """Loop the music in real time so prompts (position announcements) can interleave."""
        loop = await music_pcm(self.ctx, self.tenant_id, self._music, self.sample_rate)
        step = self.sample_rate * 2 * CHUNK_MS // 1000
        clock = asyncio.get_running_loop()
        while True:
            start = clock.time()
            for index, offset in enumerate(range(0, len(loop), step)):
                await self.push_frame(OutputAudioRawFrame(loop[offset : offset + step], self.sample_rate, 1))
                delay = start + (index + 1) * CHUNK_MS / 1000 - clock.time()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def _lookup(self, kind: str) -> None:
        contact = await get_contact(self.ctx, self.contact_id)
        customer = None
        if contact is not None and contact.get("customer_id"):
            customer = await get_customer(self.ctx, contact["customer_id"], self.tenant_id)
        if kind == "balance" and customer is not None:
            await self._say(balance_text(customer))
        else:
            await self._say("Sorry, I could not find an account for the number you are calling from.")

    async def _start_voicemail(self, max_seconds: int) -> None:
        self._stop_hold_music()
        self._recording = bytearray()
        self._recording_task = self.create_task(self._voicemail_limit(max_seconds), "voicemail-limit")

    async def _voicemail_limit(self, max_seconds: int) -> None:
        await asyncio.sleep(max_seconds)
        self._recording_task = None
        await self._finish_voicemail()

    async def _finish_voicemail(self) -> None:
        """Store the recording in GridFS and give an agent a callback task for it."""
        if self._recording is None:
            return
        pcm, self._recording = bytes(self._recording), None
        if self._recording_task is not None and self._recording_task is not asyncio.current_task():
            self._recording_task.cancel()
        audio_id = await store_wav(
            self.ctx,
            "voicemail",
            pcm,
            self.sample_rate,
            {"tenant_id": self.tenant_id, "contact_id": self.contact_id},
        )
        await self._create_task("voicemail", audio_id)
        await update_contact(self.ctx, self.contact_id, {"voicemail_id": audio_id})
        rest, self._after_recording = self._after_recording, []
        if not self._ended:
            await self._say("Thank you. Your message has been recorded.")
            await self._run(rest)

    async def _create_task(self, kind: str, audio_id: str | None) -> None:
        contact = await get_contact(self.ctx, self.contact_id) or {}
        await self.ctx.db.tasks.insert_one(
            {
                "_id": new_id(),
                "tenant_id": self.tenant_id,
                "kind": kind,
                "contact_id": self.contact_id,
                "phone": contact.get("from_number"),
                "customer_id": contact.get("customer_id"),
                "audio_id": audio_id,
                "status": "open",
                "created_at": utcnow(),
            }
        )

    async def _hang_up(self) -> None:
        if self._ended:
            return
        self._ended = True
        await self._leave_agent()
        await self._finish_call(caller_hung_up=False)
        await self.push_frame(EndWorkerFrame(), FrameDirection.UPSTREAM)

    async def _caller_gone(self) -> None:
        """The caller hung up (or the pipeline ends): keep what we have, close what no one holds."""
        self._stop_hold_music()
        self._cancel_timeout()
        await self._leave_agent()
        await self._save_partial_questionnaire()
        if self._recording is not None:
            await self._finish_voicemail()
        if self._watch_task is not None:
            self._watch_task.cancel()
        if not self._ended:
            self._ended = True
            self.session.on_call_end(caller_hung_up=True)
            await self._finish_call(caller_hung_up=True)

    async def _finish_call(self, caller_hung_up: bool) -> None:
        await self._save_path()
        changes: Doc = {"ivr_state": self.session.to_dict()}
        if self.session.survey_score is not None:
            changes["survey_score"] = self.session.survey_score
        await update_contact(self.ctx, self.contact_id, changes)
        await self.ctx.require_router().abandon(
            self.contact_id, "caller_hung_up" if caller_hung_up else "ivr_end"
        )

    async def _save_path(self) -> None:
        await update_contact(self.ctx, self.contact_id, {"ivr_path": list(self.session.path)})

    async def _store(self, author: str, text: str) -> None:
        contact = await get_contact(self.ctx, self.contact_id)
        if contact is not None:
            await append_message(
                self.ctx, contact, author, text, author_name="Assistant" if author == "bot" else None
            )


async def store_wav(ctx: AppContext, bucket: str, pcm: bytes, sample_rate: int, metadata: Doc) -> str:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(pcm)
    file_id = new_id()
    grid = AsyncGridFSBucket(ctx.db.db, bucket_name=bucket)
    await grid.upload_from_stream_with_id(file_id, f"{file_id}.wav", buffer.getvalue(), metadata=metadata)
    return file_id


async def music_pcm(ctx: AppContext, tenant_id: str, name: str | None, sample_rate: int) -> bytes:
    """Hold music by name: "default" (or none) is our generated tune, anything else an
    uploaded audio prompt of the tenant; a missing prompt falls back to the tune."""
    if name and name != "default":
        pcm = await load_prompt_pcm(ctx, tenant_id, name, sample_rate)
        if pcm:
            return pcm
        log.warning("tenant %s: hold music %r not found; playing the default tune", tenant_id, name)
    return hold_music_pcm(sample_rate)


async def load_prompt_pcm(ctx: AppContext, tenant_id: str, audio_id: str, sample_rate: int) -> bytes | None:
    """An uploaded WAV prompt of this tenant as 16-bit mono PCM at `sample_rate`."""
    import audioop  # deprecated in 3.13, present in 3.11; pipecat uses it the same way

    found = await prompt_audio(ctx, tenant_id, audio_id)
    if found is None:
        return None
    with wave.open(io.BytesIO(found[1])) as wav:
        pcm = wav.readframes(wav.getnframes())
        if wav.getsampwidth() != 2:
            pcm = audioop.lin2lin(pcm, wav.getsampwidth(), 2)
        if wav.getnchannels() == 2:
            pcm = audioop.tomono(pcm, 2, 0.5, 0.5)
        rate = wav.getframerate()
    if rate != sample_rate:
        pcm, _ = audioop.ratecv(pcm, 2, 1, rate, sample_rate, None)
    return bytes(pcm)


def build_pipeline(
    transport: BaseTransport,
    brain: CallBrain,
    stt: Any | None,
    tts: Any,
    *,
    sample_rate: int,
    vad_analyzer: SileroVADAnalyzer | None = None,
) -> PipelineWorker:
    """transport -> VAD -> STT -> turns (barge-in) -> brain -> TTS -> transport."""
    vad = VADProcessor(vad_analyzer=vad_analyzer or SileroVADAnalyzer())
    turns = UserTurnProcessor(
        user_turn_strategies=UserTurnStrategies(
            start=[VADUserTurnStartStrategy()],
            stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.4)],
        )
    )
    stages: list[Any] = [transport.input(), brain.tap, vad]
    if stt is not None:
        stages.append(stt)
    stages += [turns, brain, tts, transport.output()]
    return PipelineWorker(
        Pipeline(stages),
        params=PipelineParams(audio_in_sample_rate=sample_rate, audio_out_sample_rate=sample_rate),
        idle_timeout_secs=None,
        enable_rtvi=False,
        observers=[brain.playout, *timing_observers(brain.contact_id)],
    )


async def run_worker(worker: PipelineWorker) -> None:
    runner = WorkerRunner(handle_sigint=False)
    with contextlib.suppress(asyncio.CancelledError):
        await runner.run(worker)


async def preload_speech(ctx: AppContext) -> None:
    """Background starter: load the voice and the ASR models the flows use, so the first
    call does not wait a second for them (each is loaded once per process)."""
    from media.models import ModelsConfig, resolve_asr
    from media.piper_tts import load_voice
    from media.vosk_stt import load_model

    try:
        await asyncio.to_thread(load_voice, ctx.settings.tts_voice)
        names = {ctx.settings.asr_model} | set(await ctx.db.ivr_flows.distinct("asr_model"))
        for name in sorted(n for n in names if n):
            path = resolve_asr(name, ModelsConfig(ctx.settings.models_dir))
            if path is not None:
                await asyncio.to_thread(load_model, path)
    except Exception:  # a missing model must not stop the hub; calls report it themselves
        log.exception("preloading speech models failed")


async def run_call(
    ctx: AppContext, transport: BaseTransport, contact: Doc, flow_doc: Doc, *, sample_rate: int
) -> None:
    """Build the speech services for the flow's models and run the call to its end."""
    from bot.ivr import validate_flow
    from media.models import resolve_asr
    from media.piper_tts import PiperTTSService
    from media.vosk_stt import VoskSTTService

    flow = validate_flow(flow_doc)
    session = IvrSession(flow, utcnow())
    tenant = await ctx.db.tenants.find_one({"_id": contact["tenant_id"]}, {"voice": 1}) or {}
    defaults = tenant.get("voice") or {}
    # the number's flow decides, then the tenant, then the hub's default
    asr_model = flow.asr_model or defaults.get("asr_model") or ctx.settings.asr_model
    tts_voice = flow.tts_voice or defaults.get("tts_voice") or ctx.settings.tts_voice
    model_path = resolve_asr(asr_model, ctx.settings.models_dir) if asr_model else None
    stt = None
    if model_path is not None:
        stt = VoskSTTService(model_path=model_path, sample_rate=sample_rate)
    else:
        log.warning(
            "call %s: no speech model %r on this hub: the flow runs on key presses only "
            "(install one with: hub models pull NAME)",
            contact["_id"],
            asr_model,
        )
    tts = PiperTTSService(voice=tts_voice, sample_rate=sample_rate)
    brain = CallBrain(
        ctx, contact, session, sample_rate=sample_rate, stt=stt, queue_tick_s=ctx.settings.queue_announce_s
    )
    # loading the VAD model takes 20-30 ms: not on the event loop that mixes live calls
    vad_analyzer = await asyncio.to_thread(SileroVADAnalyzer)
    worker = build_pipeline(transport, brain, stt, tts, sample_rate=sample_rate, vad_analyzer=vad_analyzer)

    @transport.event_handler("on_client_disconnected")
    async def _gone(_transport: Any, _client: Any) -> None:
        await worker.cancel()

    await run_worker(worker)
