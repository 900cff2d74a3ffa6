"""IVR flows as data, and the state machine a call pipeline drives.

A flow (collection `ivr_flows`, one per dialled number) is a graph of nodes:
`say`, `menu`, `bot`, `queue`, `voicemail`, `hangup` and `lookup`. `IvrSession`
walks it: every caller event (`on_dtmf`, `on_speech`, `on_timeout`, ...) returns
the list of `Action`s the pipeline must perform, in order. The session itself
does no I/O and never touches audio, so every rule (business hours, "0 for an
agent" anywhere, hand-off after two failures, queue exit keys, the survey) is
tested with a fake clock, and its state can be stored between events
(`to_dict` / `from_dict`).

Rules the pipeline relies on:
- Actions run in order; `RecordVoicemail` lasts until the recording ends.
- While `session.state == "bot"` caller speech goes to Rasa, not to the session;
  the bot's hand-off comes back as `on_bot_handoff`.
- `Enqueue` puts the contact in the router's queue; `LeaveQueue` takes it out
  (the caller chose voicemail or a callback with an exit key).
- `Lookup(kind)` asks the pipeline to read the answer (e.g. the balance) from the
  customer record and speak it; the flow continues with the actions after it.

The storage helpers at the end (`find_flow`, `prompt_audio`) are the only I/O here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.ids import new_id

if TYPE_CHECKING:
    from hub.context import AppContext

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DTMF_KEYS = "123456789*#"
OPERATOR_KEY = "0"
STATES = ("idle", "menu", "bot", "queued", "agent", "voicemail", "survey", "ended")
PROMPTS_BUCKET = "prompts"
_TIME = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Keys a stored flow document may carry besides the flow itself.
_STORAGE_KEYS = ("created_at", "updated_at", "created_by", "updated_by")

# Spoken digits. Korean has two number systems (일 이 삼 / 하나 둘 셋) and says
# "1번" ("number one"); English callers say "press one" or "option two".
_DIGIT_WORDS: dict[str, str] = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9",
    "영": "0", "공": "0", "일": "1", "이": "2", "삼": "3", "사": "4", "오": "5", "육": "6",
    "륙": "6", "칠": "7", "팔": "8", "구": "9", "하나": "1", "둘": "2", "셋": "3", "넷": "4",
    "다섯": "5", "여섯": "6", "일곱": "7", "여덟": "8", "아홉": "9",
}  # fmt: skip
_EN_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_KO_DIGITS = ("영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구")
_FILLERS = frozenset(
    "press option number the please uh um er key button 번 번을 번이요 번요 눌러 눌러주세요 주세요".split()
)


class FlowError(ValueError):
    """A flow document is invalid; the message says where and why, for the flow editor."""


# --------------------------------------------------------------------------- flow model


class Prompt(BaseModel):
    """What to play: TTS text or an uploaded audio prompt (GridFS id in bucket `prompts`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str | None = Field(default=None, max_length=2000)
    audio_id: str | None = Field(default=None, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _plain_string(cls, value: Any) -> Any:
        return {"text": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _exactly_one(self) -> Prompt:
        has_text = bool(self.text and self.text.strip())
        if has_text == bool(self.audio_id):
            raise ValueError("a prompt needs either non-empty 'text' or an 'audio_id', not both")
        return self


def text(value: str) -> Prompt:
    """A TTS prompt (shorthand used by the defaults and tests)."""
    return Prompt(text=value)


def _key(value: str, allowed: str = DTMF_KEYS) -> str:
    if value == OPERATOR_KEY:
        raise ValueError("key '0' is reserved for 'talk to an agent'")
    if len(value) != 1 or value not in allowed:
        raise ValueError(f"key {value!r} must be one of 1-9, * or #")
    return value


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SayNode(_Node):
    type: Literal["say"]
    prompt: Prompt
    next: str


class MenuOption(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str | None = None
    phrases: list[str] = Field(default_factory=list)
    next: str

    @field_validator("key")
    @classmethod
    def _valid_key(cls, value: str | None) -> str | None:
        return None if value is None else _key(value)

    @field_validator("phrases")
    @classmethod
    def _clean_phrases(cls, value: list[str]) -> list[str]:
        cleaned = [normalize(p) for p in value]
        if any(not p for p in cleaned):
            raise ValueError("phrases must not be empty")
        return cleaned

    @model_validator(mode="after")
    def _reachable(self) -> MenuOption:
        if self.key is None and not self.phrases:
            raise ValueError("an option needs a key, phrases or both")
        return self


class MenuNode(_Node):
    type: Literal["menu"]
    prompt: Prompt
    options: list[MenuOption] = Field(min_length=1, max_length=11)
    timeout_s: float = Field(default=6.0, ge=1, le=60)
    # Consecutive failed attempts (invalid or no input) before the caller goes to an
    # agent: with the default 2 the second failure hands off ("fails twice").
    retries: int = Field(default=2, ge=1, le=5)
    invalid_prompt: Prompt = text("Sorry, that is not one of the choices.")
    no_input_prompt: Prompt = text("Sorry, I did not hear your choice.")
    speech: bool = True
    # Speech that matches no option goes here (e.g. a `bot` node) instead of failing.
    free_speech_next: str | None = None

    @model_validator(mode="after")
    def _unique(self) -> MenuNode:
        keys: set[str] = set()
        phrases: set[str] = set()
        for option in self.options:
            if option.key is not None:
                if option.key in keys:
                    raise ValueError(f"key {option.key!r} is used by two options")
                keys.add(option.key)
            for phrase in option.phrases:
                if phrase in phrases:
                    raise ValueError(f"phrase {phrase!r} is used by two options")
                phrases.add(phrase)
        return self


class BotNode(_Node):
    type: Literal["bot"]
    prompt: Prompt | None = None


class QueueNode(_Node):
    """Hand the caller to the router: the queue `queue_id` if given, else the queue for
    `skill`; `agent_id` routes to that agent only (direct routing)."""

    type: Literal["queue"]
    skill: str = Field(min_length=1, max_length=60)
    queue_id: str | None = Field(default=None, max_length=64)
    agent_id: str | None = Field(default=None, max_length=64)
    prompt: Prompt | None = None
    hold_music: str | None = Field(default=None, max_length=100)
    position_announcements: bool = False
    position_prompt: str = "You are number {position} in line."
    exit_keys: dict[str, Literal["voicemail", "callback"]] = Field(default_factory=dict)
    voicemail_prompt: Prompt = text("Please leave your message after the tone.")
    voicemail_max_seconds: int = Field(default=120, ge=5, le=600)
    callback_prompt: Prompt = text("Thank you. We will call you back as soon as an agent is free.")
    # Played when the queue's escalation steps offer a way out; {keys} lists them.
    escalation_prompt: str = "All our agents are still busy. {keys}"
    reason: str = "ivr_selection"

    @field_validator("exit_keys")
    @classmethod
    def _valid_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            _key(key)
        return value


class VoicemailNode(_Node):
    type: Literal["voicemail"]
    prompt: Prompt
    max_seconds: int = Field(default=120, ge=5, le=600)


class HangupNode(_Node):
    type: Literal["hangup"]
    prompt: Prompt | None = None


class LookupNode(_Node):
    type: Literal["lookup"]
    kind: Literal["balance", "bill", "order_status"]
    next: str


Node = Annotated[
    SayNode | MenuNode | BotNode | QueueNode | VoicemailNode | HangupNode | LookupNode,
    Field(discriminator="type"),
]


class ClosedBehaviour(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Prompt = text("We are closed right now. Please leave a message after the tone.")
    action: Literal["voicemail", "hangup"] = "voicemail"
    max_seconds: int = Field(default=120, ge=5, le=600)


class Schedule(BaseModel):
    """Opening hours per weekday in the flow's time zone; a missing or empty day is closed.

    A range whose end is not after its start runs past midnight (["22:00", "02:00"]);
    it belongs to the day it starts on. Holidays close their whole local date.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hours: dict[str, list[tuple[str, str]]] = Field(default_factory=dict)
    holidays: list[str] = Field(default_factory=list)
    closed: ClosedBehaviour = ClosedBehaviour()

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
        for day, ranges in value.items():
            if day not in DAYS:
                raise ValueError(f"unknown day {day!r}; use {', '.join(DAYS)}")
            for start, end in ranges:
                for t in (start, end):
                    if not _TIME.match(t):
                        raise ValueError(f"{day}: time {t!r} must be HH:MM (00:00-23:59, or 24:00 as an end)")
                if start == "24:00" or start == end:
                    raise ValueError(f"{day}: range {start}-{end} is empty")
        return value

    @field_validator("holidays")
    @classmethod
    def _valid_holidays(cls, value: list[str]) -> list[str]:
        out = []
        for day in value:
            try:
                out.append(date.fromisoformat(day).isoformat())
            except (TypeError, ValueError):
                raise ValueError(f"holiday {day!r} is not a date (YYYY-MM-DD)") from None
        return sorted(set(out))


class SurveyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    prompt: Prompt = text("Please rate our service from 1, poor, to 5, excellent.")
    scale: int = Field(default=5, ge=2, le=9)
    invalid_prompt: Prompt | None = None
    thanks_prompt: Prompt = text("Thank you for your feedback. Goodbye.")
    timeout_s: float = Field(default=8.0, ge=1, le=60)


class Flow(BaseModel):
    """One dialled number's IVR. Build it with `validate_flow` to get readable errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str | None = Field(default=None, alias="_id")
    tenant_id: str = Field(min_length=1)
    number: str
    name: str = Field(default="", max_length=200)
    # This flow also answers the tenant's web calls (click-to-call in the chat widget).
    web: bool = False
    timezone: str = "UTC"
    language: str = Field(default="en", max_length=20)
    asr_model: str | None = None
    tts_voice: str | None = None
    schedule: Schedule | None = None  # None: always open
    start: str | None = None
    nodes: dict[str, Node]
    survey: SurveyConfig = SurveyConfig()
    announce_agent: bool = False
    agent_prompt: str = "You are connected to agent {agent}."
    transfer_prompt: Prompt = text("Please hold while I connect you to an agent.")
    default_skill: str = Field(default="general", min_length=1, max_length=60)
    # A `queue` node used for "0", failed menus and bot hand-offs (hold music, exit keys).
    operator: str | None = None
    operator_phrases: list[str] = Field(
        default_factory=lambda: ["agent", "operator", "representative", "human", "상담원"]
    )

    @field_validator("number")
    @classmethod
    def _e164(cls, value: str) -> str:
        compact = re.sub(r"[\s().-]", "", value)
        if not _E164.match(compact):
            raise ValueError(f"number {value!r} must be in E.164 format, e.g. +12125550100")
        return compact

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name like America/New_York)"
            ) from None
        return value

    @field_validator("operator_phrases")
    @classmethod
    def _phrases(cls, value: list[str]) -> list[str]:
        return [p for p in (normalize(v) for v in value) if p]

    @model_validator(mode="after")
    def _graph(self) -> Flow:
        if not self.nodes:
            raise ValueError("flow has no nodes")
        names = ", ".join(sorted(self.nodes))
        for node_id in self.nodes:
            if not _NODE_ID.match(node_id):
                raise ValueError(f"node id {node_id!r} may only use letters, digits, '_' and '-'")
        if not self.start:
            raise ValueError(f"flow has no start node (set 'start' to one of: {names})")
        if self.start not in self.nodes:
            raise ValueError(f"start node {self.start!r} is not defined (nodes: {names})")
        for node_id, node in self.nodes.items():
            for where, target in _targets(node):
                if target not in self.nodes:
                    raise ValueError(f"node {node_id!r} {where}: next node {target!r} is not defined")
        if self.operator is not None:
            if self.operator not in self.nodes:
                raise ValueError(f"operator node {self.operator!r} is not defined")
            if not isinstance(self.nodes[self.operator], QueueNode):
                raise ValueError(f"operator node {self.operator!r} must be a queue node")
        for node_id in self.nodes:
            cycle = self._silent_cycle(node_id)
            if cycle:
                raise ValueError(f"nodes loop without waiting for the caller: {' -> '.join(cycle)}")
        return self

    def _silent_cycle(self, node_id: str) -> list[str]:
        """say/lookup nodes advance on their own: a loop of them would never stop."""
        seen: list[str] = []
        node: Any = self.nodes[node_id]
        while isinstance(node, SayNode | LookupNode):
            if node_id in seen:
                return [*seen[seen.index(node_id) :], node_id]
            seen.append(node_id)
            node_id = node.next
            node = self.nodes[node_id]
        return []

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def to_doc(self) -> dict[str, Any]:
        """The normalised document to store (prompts as objects, `_id` as the key)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def audio_ids(self) -> set[str]:
        """Every uploaded prompt the flow plays (the API checks they belong to the tenant)."""
        found: set[str] = set()

        def walk(value: Any) -> None:
            if isinstance(value, Prompt):
                if value.audio_id:
                    found.add(value.audio_id)
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name))
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list | tuple):
                for item in value:
                    walk(item)

        walk(self)
        return found


def _targets(node: Any) -> list[tuple[str, str]]:
    if isinstance(node, SayNode | LookupNode):
        return [("next", node.next)]
    if isinstance(node, MenuNode):
        out = [(f"option {o.key or o.phrases[0]!r}", o.next) for o in node.options]
        if node.free_speech_next:
            out.append(("free_speech_next", node.free_speech_next))
        return out
    return []


def validate_flow(doc: Mapping[str, Any]) -> Flow:
    """Parse a flow document; raises FlowError with one line per problem."""
    data = {k: v for k, v in doc.items() if k not in _STORAGE_KEYS}
    try:
        return Flow.model_validate(data)
    except ValidationError as exc:
        raise FlowError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False)[:10]:
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


# --------------------------------------------------------------------------- business hours


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _aware(now: datetime) -> datetime:
    """Naive datetimes are UTC, as everywhere in the hub."""
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def is_open(schedule: Schedule | Mapping[str, Any] | None, tz: str | tzinfo, now: datetime) -> bool:
    """Whether `now` falls in the opening hours, judged on the wall clock of `tz`."""
    if schedule is None:
        return True
    sched = schedule if isinstance(schedule, Schedule) else Schedule.model_validate(schedule)
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    local = _aware(now).astimezone(zone)
    today = local.date()
    minute = local.hour * 60 + local.minute
    holidays = set(sched.holidays)
    if today.isoformat() in holidays:
        return False
    for start, end in sched.hours.get(DAYS[today.weekday()], []):
        s, e = _minutes(start), _minutes(end)
        if (s < e and s <= minute < e) or (e <= s and minute >= s):
            return True
    yesterday = today - timedelta(days=1)
    if yesterday.isoformat() not in holidays:
        for start, end in sched.hours.get(DAYS[yesterday.weekday()], []):
            s, e = _minutes(start), _minutes(end)
            if e <= s and minute < e:
                return True
    return False


# --------------------------------------------------------------------------- speech matching


def normalize(phrase: str) -> str:
    """Lower case, punctuation removed, single spaces: how phrases and transcripts compare."""
    folded = unicodedata.normalize("NFKC", phrase).casefold()
    cleaned = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in folded)
    return " ".join(cleaned.split())


def _has_hangul(value: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in value)


def _contains(utterance: str, phrase: str) -> bool:
    """Whole words for Latin scripts; substrings for Korean, where particles attach to words."""
    if _has_hangul(phrase):
        return phrase in utterance
    return f" {phrase} " in f" {utterance} "


def spoken_digit(utterance: str) -> str | None:
    """A single spoken key ("one", "press two", "삼번", "1번") or None."""
    tokens = []
    for token in normalize(utterance).split():
        if token in _FILLERS:
            continue
        if _has_hangul(token) and token.endswith("번") and len(token) > 1:
            token = token[:-1]
        elif token[:-1].isdigit() and token.endswith("번"):
            token = token[:-1]
        tokens.append(token)
    if len(tokens) != 1:
        return None
    token = tokens[0]
    if len(token) == 1 and token in "0123456789":
        return token
    return _DIGIT_WORDS.get(token)


def match_option(options: list[MenuOption], utterance: str) -> MenuOption | None:
    """The option whose phrase the caller said (longest phrase wins), else a spoken key."""
    said = normalize(utterance)
    if not said:
        return None
    best: tuple[int, MenuOption] | None = None
    for option in options:
        for phrase in option.phrases:
            if _contains(said, phrase) and (best is None or len(phrase) > best[0]):
                best = (len(phrase), option)
    if best is not None:
        return best[1]
    digit = spoken_digit(said)
    if digit is not None:
        for option in options:
            if option.key == digit:
                return option
    return None


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Play:
    """Speak (TTS) or play (uploaded audio) a prompt."""

    prompt: Prompt


@dataclass(frozen=True)
class Listen:
    """Collect input. phrases=None means free speech; a list suits a recognizer grammar."""

    mode: Literal["dtmf", "speech", "both"]
    phrases: list[str] | None = None
    timeout_s: float | None = None  # None: no timeout (e.g. exit keys while queued)


@dataclass(frozen=True)
class EnterBot:
    """Route caller speech to Rasa from now on; `text` is what the caller already said."""

    text: str | None = None


@dataclass(frozen=True)
class Enqueue:
    skill: str
    reason: str
    queue_id: str | None = None
    agent_id: str | None = None


@dataclass(frozen=True)
class LeaveQueue:
    """Take the contact out of the queue (the caller chose voicemail or a callback)."""


@dataclass(frozen=True)
class StartHoldMusic:
    name: str


@dataclass(frozen=True)
class RecordVoicemail:
    max_seconds: int


@dataclass(frozen=True)
class CreateCallback:
    """Schedule a call back to the caller's number."""


@dataclass(frozen=True)
class Lookup:
    """Self-service: read `kind` (e.g. balance) from the customer record and speak it."""

    kind: str


@dataclass(frozen=True)
class Survey:
    """Marker: the satisfaction survey starts (the Play and Listen that follow ask it)."""

    prompt: Prompt
    scale: int


@dataclass(frozen=True)
class Hangup:
    pass


Action = (
    Play
    | Listen
    | EnterBot
    | Enqueue
    | LeaveQueue
    | StartHoldMusic
    | RecordVoicemail
    | CreateCallback
    | Lookup
    | Survey
    | Hangup
)


# --------------------------------------------------------------------------- the session


class IvrSession:
    """One call's walk through a flow. Events return actions; nothing here blocks or does I/O.

    `state` is one of STATES; `node` is the current node id (None before start, when
    closed, or in the built-in operator queue); `path` lists every node entered.
    """

    FORMAT: ClassVar[int] = 1
    SURVEY_ATTEMPTS: ClassVar[int] = 2

    def __init__(self, flow: Flow, now: datetime) -> None:
        self.flow = flow
        self.started_at = _aware(now)
        self.state: str = "idle"
        self.node: str | None = None
        self.path: list[str] = []
        self.failures = 0
        self.closed = False
        self.skill: str | None = None
        self.reason: str | None = None
        self.queue_node: str | None = None
        self.escalation_keys: dict[str, Literal["voicemail", "callback"]] = {}
        self.agent_code: str | None = None
        self.survey_score: int | None = None
        self.survey_attempts = 0

    # ---- events

    def start(self) -> list[Action]:
        """Answer the call: closed handling outside business hours, else the start node."""
        if self.state != "idle":
            return []
        schedule = self.flow.schedule
        if schedule is not None and not is_open(schedule, self.flow.zone, self.started_at):
            self.closed = True
            closed = schedule.closed
            if closed.action == "voicemail":
                self.state = "voicemail"
                return [Play(closed.prompt), RecordVoicemail(closed.max_seconds), Hangup()]
            self.state = "ended"
            return [Play(closed.prompt), Hangup()]
        assert self.flow.start is not None  # validated
        return self._enter(self.flow.start)

    def on_dtmf(self, digit: str) -> list[Action]:
        digit = (digit or "").strip()
        if self.state == "survey":
            return self._survey_answer(digit)
        if self.state == "queued":
            return self._queue_key(digit)
        if self.state in ("menu", "bot") and digit == OPERATOR_KEY:
            return self._to_operator("caller_pressed_0")
        if self.state == "menu":
            menu = self._menu()
            for option in menu.options:
                if option.key is not None and option.key == digit:
                    return self._enter(option.next)
            return self._failed(menu, menu.invalid_prompt)
        return []

    def on_speech(self, utterance: str) -> list[Action]:
        said = normalize(utterance or "")
        if self.state == "survey":
            digit = spoken_digit(said)
            return self._survey_answer(digit) if digit else self._survey_retry()
        if self.state != "menu":
            return []  # in the bot the pipeline sends speech to Rasa
        menu = self._menu()
        if not said:
            return self._failed(menu, menu.no_input_prompt)
        option = match_option(menu.options, said)
        if option is not None:
            return self._enter(option.next)
        if spoken_digit(said) == OPERATOR_KEY:
            return self._to_operator("caller_pressed_0")
        if any(_contains(said, p) for p in self.flow.operator_phrases):
            return self._to_operator("caller_asked_for_agent")
        if menu.free_speech_next:
            return self._enter(menu.free_speech_next, said=utterance.strip())
        return self._failed(menu, menu.invalid_prompt)

    def on_timeout(self) -> list[Action]:
        if self.state == "menu":
            menu = self._menu()
            return self._failed(menu, menu.no_input_prompt)
        if self.state == "survey":
            return self._survey_retry()
        return []

    def on_bot_handoff(self, skill: str, reason: str) -> list[Action]:
        """Rasa asked for a human: queue with the queue node for that skill, if the flow has one."""
        if self.state != "bot":
            return []
        skill = skill or self.flow.default_skill
        for node_id, node in self.flow.nodes.items():
            if isinstance(node, QueueNode) and node.skill == skill:
                return self._queue(node_id, node, skill, reason or "bot_handoff")
        return self._operator_queue(reason or "bot_handoff", skill)

    def on_queue_tick(self, position: int) -> list[Action]:
        if self.state != "queued" or position < 1:
            return []
        node = self._queue_config()
        if not node.position_announcements:
            return []
        return [Play(text(node.position_prompt.format(position=position)))]

    def on_agent_connected(self, agent_code: str) -> list[Action]:
        """Announce the agent's id (if the flow says so) before the pipeline bridges the call."""
        if self.state in ("ended", "survey", "voicemail", "idle"):
            return []
        self.state = "agent"
        self.agent_code = str(agent_code)
        if not self.flow.announce_agent:
            return []
        return [Play(text(self.flow.agent_prompt.format(agent=self.agent_code)))]

    def on_call_end(self, caller_hung_up: bool = False) -> list[Action]:
        """The agent's part ended: survey (if on) with the caller still on the line, else hang up."""
        if self.state == "ended":
            return []
        if caller_hung_up:
            self.state = "ended"
            return []
        survey = self.flow.survey
        if self.state == "agent" and survey.enabled:
            self.state = "survey"
            self.survey_attempts = 0
            return [Survey(survey.prompt, survey.scale), Play(survey.prompt), self._survey_listen()]
        self.state = "ended"
        return [Hangup()]

    def goto(self, node_id: str) -> list[Action]:
        """Jump to a node, e.g. an agent sends the caller back to self-service."""
        if node_id not in self.flow.nodes:
            raise ValueError(f"no node {node_id!r} in flow")
        return self._enter(node_id)

    # ---- internals

    def _menu(self) -> MenuNode:
        node = self.flow.nodes[self.node] if self.node else None
        assert isinstance(node, MenuNode)
        return node

    def _listen(self, menu: MenuNode) -> Listen:
        if not menu.speech:
            return Listen("dtmf", None, menu.timeout_s)
        if menu.free_speech_next:
            return Listen("both", None, menu.timeout_s)
        phrases = [p for o in menu.options for p in o.phrases]
        if not self.flow.language.lower().startswith("ko"):
            # Spoken digits help in English; in Korean the one-syllable digit words
            # ("영", "일", "이") swallow parts of real phrases ("연결" heard as "영"), so
            # Korean menus take digits by key only.
            phrases += [_EN_DIGITS[int(o.key)] for o in menu.options if o.key and o.key.isdigit()]
            phrases.append(_EN_DIGITS[0])
        phrases += self.flow.operator_phrases
        return Listen("both", list(dict.fromkeys(phrases)), menu.timeout_s)

    def _enter(self, node_id: str, said: str | None = None) -> list[Action]:
        actions: list[Action] = []
        for _ in range(len(self.flow.nodes) + 1):  # validation forbids silent loops
            node = self.flow.nodes[node_id]
            self.path.append(node_id)
            self.node = node_id
            if isinstance(node, SayNode):
                actions.append(Play(node.prompt))
                node_id = node.next
            elif isinstance(node, LookupNode):
                actions.append(Lookup(node.kind))
                node_id = node.next
            elif isinstance(node, MenuNode):
                self.state = "menu"
                self.failures = 0
                return [*actions, Play(node.prompt), self._listen(node)]
            elif isinstance(node, BotNode):
                self.state = "bot"
                prompt = [Play(node.prompt)] if node.prompt else []
                return [*actions, *prompt, EnterBot(said)]
            elif isinstance(node, QueueNode):
                return [*actions, *self._queue(node_id, node, node.skill, node.reason)]
            elif isinstance(node, VoicemailNode):
                self.state = "voicemail"
                return [*actions, Play(node.prompt), RecordVoicemail(node.max_seconds), Hangup()]
            else:
                self.state = "ended"
                prompt = [Play(node.prompt)] if node.prompt else []
                return [*actions, *prompt, Hangup()]
        return [*actions, *self._to_operator("ivr_loop")]

    def _failed(self, menu: MenuNode, prompt: Prompt) -> list[Action]:
        self.failures += 1
        if self.failures >= menu.retries:
            return self._to_operator("ivr_failed")
        return [Play(prompt), Play(menu.prompt), self._listen(menu)]

    def _operator_node(self) -> QueueNode:
        if self.flow.operator is not None:
            node = self.flow.nodes[self.flow.operator]
            assert isinstance(node, QueueNode)
            return node
        return QueueNode(type="queue", skill=self.flow.default_skill, prompt=self.flow.transfer_prompt)

    def _to_operator(self, reason: str) -> list[Action]:
        return self._operator_queue(reason, None)

    def _operator_queue(self, reason: str, skill: str | None) -> list[Action]:
        node = self._operator_node()
        if self.flow.operator is not None:
            self.path.append(self.flow.operator)
        return self._queue(self.flow.operator, node, skill or node.skill, reason)

    def _queue(self, node_id: str | None, node: QueueNode, skill: str, reason: str) -> list[Action]:
        self.state = "queued"
        self.node = node_id
        self.queue_node = node_id
        self.skill = skill
        self.reason = reason
        actions: list[Action] = [Play(node.prompt)] if node.prompt else []
        actions.append(Enqueue(skill, reason, node.queue_id, node.agent_id))
        if node.hold_music:
            actions.append(StartHoldMusic(node.hold_music))
        if node.exit_keys:
            actions.append(Listen("dtmf", None, None))
        return actions

    def _queue_config(self) -> QueueNode:
        if self.queue_node is not None:
            node = self.flow.nodes[self.queue_node]
            assert isinstance(node, QueueNode)
            return node
        return self._operator_node()

    # Keys offered by the router's escalation steps when the queue node has none of its own.
    ESCALATION_KEYS: ClassVar[dict[str, Literal["voicemail", "callback"]]] = {
        "1": "callback",
        "2": "voicemail",
    }
    ESCALATION_WORDS: ClassVar[dict[str, str]] = {
        "callback": "Press {key} and we will call you back.",
        "voicemail": "Press {key} to leave a message.",
    }

    def on_queue_offer(self, offers: list[str]) -> list[Action]:
        """The queue's escalation reached a callback or voicemail step: tell the caller the
        keys (the queue node's own exit keys, else 1 and 2) and start listening for them."""
        if self.state != "queued":
            return []
        keys = self._exit_keys()
        added = {k: v for k, v in self.ESCALATION_KEYS.items() if v in offers and v not in keys.values()}
        self.escalation_keys.update(added)
        keys = self._exit_keys()
        spoken = " ".join(
            self.ESCALATION_WORDS[choice].format(key=key)
            for key, choice in sorted(keys.items())
            if choice in offers
        )
        if not spoken:
            return []
        prompt = self._queue_config().escalation_prompt.format(keys=spoken)
        return [Play(text(prompt)), Listen("dtmf", None, None)]

    def _exit_keys(self) -> dict[str, Literal["voicemail", "callback"]]:
        return {**self.escalation_keys, **self._queue_config().exit_keys}

    def _queue_key(self, digit: str) -> list[Action]:
        node = self._queue_config()
        choice = self._exit_keys().get(digit)
        if choice == "voicemail":
            self.state = "voicemail"
            return [
                LeaveQueue(),
                Play(node.voicemail_prompt),
                RecordVoicemail(node.voicemail_max_seconds),
                Hangup(),
            ]
        if choice == "callback":
            self.state = "ended"
            return [LeaveQueue(), CreateCallback(), Play(node.callback_prompt), Hangup()]
        return []

    def _survey_listen(self) -> Listen:
        return Listen("dtmf", None, self.flow.survey.timeout_s)

    def _survey_answer(self, digit: str) -> list[Action]:
        survey = self.flow.survey
        if len(digit) == 1 and digit.isdigit() and 1 <= int(digit) <= survey.scale:
            self.survey_score = int(digit)
            self.state = "ended"
            return [Play(survey.thanks_prompt), Hangup()]
        return self._survey_retry()

    def _survey_retry(self) -> list[Action]:
        self.survey_attempts += 1
        if self.survey_attempts >= self.SURVEY_ATTEMPTS:
            self.state = "ended"
            return [Hangup()]
        survey = self.flow.survey
        again = survey.invalid_prompt or text(f"Please press a number from 1 to {survey.scale}.")
        return [Play(again), self._survey_listen()]

    # ---- storage

    def to_dict(self) -> dict[str, Any]:
        """BSON/JSON-safe state, with a snapshot of the flow so an edit mid-call cannot break it."""
        return {
            "format": self.FORMAT,
            "flow": self.flow.to_doc(),
            "started_at": self.started_at.isoformat(),
            "state": self.state,
            "node": self.node,
            "path": list(self.path),
            "failures": self.failures,
            "closed": self.closed,
            "skill": self.skill,
            "reason": self.reason,
            "queue_node": self.queue_node,
            "escalation_keys": dict(self.escalation_keys),
            "agent_code": self.agent_code,
            "survey_score": self.survey_score,
            "survey_attempts": self.survey_attempts,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], flow: Flow | None = None) -> IvrSession:
        if data.get("format") != cls.FORMAT:
            raise ValueError(f"unsupported IVR session format {data.get('format')!r}")
        if data.get("state") not in STATES:
            raise ValueError(f"unknown IVR state {data.get('state')!r}")
        session = cls(flow or validate_flow(data["flow"]), datetime.fromisoformat(data["started_at"]))
        session.state = data["state"]
        session.node = data.get("node")
        session.path = list(data.get("path", []))
        session.failures = int(data.get("failures", 0))
        session.closed = bool(data.get("closed", False))
        session.skill = data.get("skill")
        session.reason = data.get("reason")
        session.queue_node = data.get("queue_node")
        session.escalation_keys = {
            k: v for k, v in (data.get("escalation_keys") or {}).items() if v in ("voicemail", "callback")
        }
        session.agent_code = data.get("agent_code")
        session.survey_score = data.get("survey_score")
        session.survey_attempts = int(data.get("survey_attempts", 0))
        for node_id in (session.node, session.queue_node):
            if node_id is not None and node_id not in session.flow.nodes:
                raise ValueError(f"IVR state refers to node {node_id!r}, which the flow does not have")
        if session.state == "menu" and not (
            session.node is not None and isinstance(session.flow.nodes[session.node], MenuNode)
        ):
            raise ValueError("IVR state 'menu' needs a menu node")
        return session


# --------------------------------------------------------------------------- demo flow


def DEFAULT_FLOW(tenant_id: str, number: str) -> dict[str, Any]:  # the name is part of the spec
    """Northwind's demo IVR as a storable document (validate_flow accepts it)."""
    exits = {"1": "voicemail", "2": "callback"}
    wait = "While you wait, press 1 to leave a voicemail, or 2 and we will call you back."
    return {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "number": number,
        "name": "Northwind main line",
        "timezone": "America/New_York",
        "language": "en",
        "asr_model": None,
        "tts_voice": "en_US-joe-medium",
        "schedule": {
            "hours": {
                "mon": [["08:00", "20:00"]],
                "tue": [["08:00", "20:00"]],
                "wed": [["08:00", "20:00"]],
                "thu": [["08:00", "20:00"]],
                "fri": [["08:00", "20:00"]],
                "sat": [["09:00", "17:00"]],
                "sun": [],
            },
            "holidays": ["2026-01-01", "2026-07-03", "2026-11-26", "2026-12-25", "2027-01-01"],
            "closed": {
                "prompt": "Thank you for calling Northwind. We are closed right now. We are open Monday "
                "to Friday from 8 AM to 8 PM and Saturday from 9 AM to 5 PM, Eastern time. Please "
                "leave a message after the tone and we will call you back.",
                "action": "voicemail",
                "max_seconds": 120,
            },
        },
        "start": "welcome",
        "nodes": {
            "welcome": {"type": "say", "prompt": "Thank you for calling Northwind.", "next": "main"},
            "main": {
                "type": "menu",
                "prompt": "For billing, press 1 or say billing. To report an outage, press 2. "
                "For our opening hours, press 3. To hear your balance, press 4. To talk to an agent, "
                "press 0 at any time. Or just tell me how I can help.",
                "options": [
                    {"key": "1", "phrases": ["billing", "bill", "payment", "invoice"], "next": "billing"},
                    {"key": "2", "phrases": ["outage", "power cut", "no power", "no gas"], "next": "outage"},
                    {"key": "3", "phrases": ["opening hours", "hours", "open"], "next": "hours"},
                    {"key": "4", "phrases": ["balance", "how much do i owe"], "next": "balance"},
                ],
                "timeout_s": 6,
                "retries": 2,
                "free_speech_next": "assistant",
            },
            "billing": {
                "type": "queue",
                "skill": "billing",
                "prompt": f"Connecting you to our billing team. {wait}",
                "hold_music": "default",
                "position_announcements": True,
                "exit_keys": exits,
            },
            "outage": {
                "type": "bot",
                "prompt": "Sorry to hear that. Please tell me the address where the outage is.",
            },
            "assistant": {"type": "bot"},
            "hours": {
                "type": "say",
                "prompt": "We are open Monday to Friday from 8 AM to 8 PM and Saturday from 9 AM to "
                "5 PM, Eastern time.",
                "next": "main",
            },
            "balance": {"type": "lookup", "kind": "balance", "next": "main"},
            "agent": {
                "type": "queue",
                "skill": "general",
                "prompt": f"Connecting you to an agent. {wait}",
                "hold_music": "default",
                "position_announcements": True,
                "exit_keys": exits,
            },
        },
        "operator": "agent",
        "default_skill": "general",
        "survey": {
            "enabled": True,
            "prompt": "Before you go: how satisfied were you with our service today? Press 1 for "
            "very dissatisfied, up to 5 for very satisfied.",
            "scale": 5,
        },
        "announce_agent": True,
    }


# --------------------------------------------------------------------------- storage helpers


async def find_flow(ctx: AppContext, number: str) -> Flow | None:
    """The flow of a dialled number (numbers are unique across tenants), or None."""
    compact = re.sub(r"[\s().-]", "", number)
    doc = await ctx.db.ivr_flows.find_one({"number": compact})
    return validate_flow(doc) if doc is not None else None


async def prompt_audio(ctx: AppContext, tenant_id: str, audio_id: str) -> tuple[dict[str, Any], bytes] | None:
    """An uploaded prompt's file document and WAV bytes, only if it belongs to `tenant_id`."""
    from bson import ObjectId
    from bson.errors import InvalidId
    from gridfs.asynchronous import AsyncGridFSBucket

    try:
        oid = ObjectId(audio_id)
    except (InvalidId, TypeError):
        return None
    files = ctx.db.db[f"{PROMPTS_BUCKET}.files"]
    meta = await files.find_one({"_id": oid, "metadata.tenant_id": tenant_id})
    if meta is None:
        return None
    stream = await AsyncGridFSBucket(ctx.db.db, bucket_name=PROMPTS_BUCKET).open_download_stream(oid)
    return meta, await stream.read()
