"""Typed data of the skills-based router (ACD), in the spirit of Twilio TaskRouter.

Three separate things, as in TaskRouter's workers / tasks / workflows:

- `AgentProfile` (a worker): skills with levels, languages, capacity and load per
  channel, presence state;
- `WaitingContact` (a task): channel, queue, priority, enqueue time and what it needs;
- `Queue` (a task queue plus its workflow): required skills, strategy, service level,
  business hours, caller-area selector rules and escalation steps as data.

Everything here is plain data: no I/O and no clock. `to_doc()` / `from_doc()` map to
and from MongoDB documents (`id` <-> `_id`; datetimes stay datetimes, which PyMongo
stores natively). The decisions live in `routing.strategies`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.ivr import Schedule

Strategy = Literal["longest_idle", "least_occupied", "best_fit", "round_robin", "ring_all"]
STRATEGIES: tuple[Strategy, ...] = ("longest_idle", "least_occupied", "best_fit", "round_robin", "ring_all")
PresenceState = Literal["available", "busy", "wrapup", "not_ready", "offline"]
PRESENCE_STATES: tuple[PresenceState, ...] = ("available", "busy", "wrapup", "not_ready", "offline")
EscalationAction = Literal["relax_skill_levels", "overflow_to", "offer_callback", "offer_voicemail"]
LineType = Literal["mobile", "fixed"]

MIN_LEVEL = 1
MAX_LEVEL = 10


def aware(value: datetime) -> datetime:
    """Naive datetimes (as PyMongo returns them by default) are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_levels(value: dict[str, int]) -> dict[str, int]:
    for skill, level in value.items():
        if not skill:
            raise ValueError("a skill needs a name")
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise ValueError(f"skill {skill!r}: level {level} must be {MIN_LEVEL}..{MAX_LEVEL}")
    return value


SkillLevels = Annotated[dict[str, int], AfterValidator(_check_levels)]


class _Doc(BaseModel):
    """Pydantic base with the Mongo mapping: the model's `id` is the document's `_id`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str

    def to_doc(self) -> dict[str, Any]:
        doc = self.model_dump(mode="python")
        doc["_id"] = doc.pop("id")
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Self:
        data = {k: v for k, v in doc.items() if k != "_id"}
        if "_id" in doc:
            data["id"] = doc["_id"]
        return cls.model_validate(data)


# --------------------------------------------------------------------------- queues


class ServiceLevelTarget(BaseModel):
    """E.g. 80 % of contacts answered within 20 s."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold_s: float = Field(default=20, gt=0)
    target: float = Field(default=0.8, ge=0, le=1)


class EscalationStep(BaseModel):
    """One step of a queue's workflow, taken once the contact has waited `after_s`.

    - `relax_skill_levels`: lower every required level by `relax_by`, or cap it at
      `relax_to` (never below 1: the skill itself stays required);
    - `overflow_to`: the contact should move to `queue_id`;
    - `offer_callback` / `offer_voicemail`: the caller may be offered that.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    after_s: float = Field(ge=0)
    action: EscalationAction
    relax_by: int | None = Field(default=None, ge=1, le=MAX_LEVEL)
    relax_to: int | None = Field(default=None, ge=MIN_LEVEL, le=MAX_LEVEL)
    queue_id: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.action == "relax_skill_levels":
            if (self.relax_by is None) == (self.relax_to is None):
                raise ValueError("relax_skill_levels needs exactly one of relax_by or relax_to")
        elif self.relax_by is not None or self.relax_to is not None:
            raise ValueError(f"{self.action} takes no relax_by / relax_to")
        if (self.action == "overflow_to") != bool(self.queue_id):
            raise ValueError("overflow_to needs queue_id (and only overflow_to takes one)")
        return self


class AreaRule(BaseModel):
    """Caller-area selector: a number matching every given field goes to `queue_id`.

    `country` is an ISO region code ("US", "GB", "KR"); `region` is compared with the
    offline geocoder's description ("San Francisco, CA" matches "CA", "California" or
    "San Francisco"); `prefix` is an E.164 prefix ("+1415"); `line` is mobile or fixed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_id: str
    country: str | None = None
    region: str | None = None
    prefix: str | None = None
    line: LineType | None = None

    @field_validator("country")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @field_validator("prefix")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return value
        digits = value.replace(" ", "").replace("-", "")
        if not digits.startswith("+") or not digits[1:].isdigit():
            raise ValueError(f"prefix {value!r} must look like +1415")
        return digits


class Queue(_Doc):
    tenant_id: str
    name: str
    skills: SkillLevels = Field(default_factory=dict)
    priority: int = 0
    strategy: Strategy = "longest_idle"
    max_wait_s: float | None = Field(default=None, gt=0)
    overflow_queue_id: str | None = None
    service_level: ServiceLevelTarget = ServiceLevelTarget()
    schedule: Schedule | None = None
    timezone: str = "UTC"
    hold_music: str | None = None
    area_rules: list[AreaRule] = Field(default_factory=list)
    escalation: list[EscalationStep] = Field(default_factory=list)

    @field_validator("escalation")
    @classmethod
    def _in_order(cls, value: list[EscalationStep]) -> list[EscalationStep]:
        return sorted(value, key=lambda step: step.after_s)  # stable: equal times keep their order


# --------------------------------------------------------------------------- agents


class AgentProfile(_Doc):
    """The routing view of an agent.

    `state` is what the agent (or the system) set; `load` counts the contacts the agent
    holds per channel (offers included), `capacity` how many they may hold. A wrap-up
    always has an end (`wrapup_until`), so no agent stays in wrap-up forever; past it,
    the agent counts as available. "busy" means not taking anything new on any channel
    (e.g. an outbound call); being full on one channel is expressed by load, not state.
    """

    tenant_id: str | None = None
    name: str = ""
    skills: SkillLevels = Field(default_factory=dict)
    languages: list[str] = Field(default_factory=list)
    capacity: dict[str, int] = Field(default_factory=dict)
    load: dict[str, int] = Field(default_factory=dict)
    state: PresenceState = "offline"
    wrapup_until: datetime | None = None
    not_ready_reason: str | None = None
    idle_since: datetime | None = None
    last_assigned_at: datetime | None = None

    @field_validator("capacity", "load")
    @classmethod
    def _non_negative(cls, value: dict[str, int]) -> dict[str, int]:
        for channel, n in value.items():
            if n < 0:
                raise ValueError(f"{channel}: {n} must not be negative")
        return value

    @model_validator(mode="after")
    def _state_fields(self) -> Self:
        if self.state == "wrapup" and self.wrapup_until is None:
            raise ValueError("a wrap-up needs wrapup_until, so it always ends")
        return self

    def free(self, channel: str) -> int:
        return max(0, self.capacity.get(channel, 0) - self.load.get(channel, 0))


# --------------------------------------------------------------------------- contacts


class WaitingContact(_Doc):
    """A contact waiting for an agent.

    `skills` adds to (or raises) the queue's requirements. `preferred_agent_id` is the
    sticky agent, who alone may take the contact until `preferred_until`. A direct
    route goes to one agent (`direct_agent_id`) or a skill group (`direct_group`: any
    agent with that skill). `excluded_agents` are agents not to offer it to now (e.g.
    who declined or missed it within the cool-down), computed by the caller.
    """

    tenant_id: str | None = None
    channel: str
    queue_id: str
    priority: int = 0
    enqueued_at: datetime
    skills: SkillLevels = Field(default_factory=dict)
    language: str | None = None
    preferred_agent_id: str | None = None
    preferred_until: datetime | None = None
    caller_number: str | None = None
    direct_agent_id: str | None = None
    direct_group: str | None = None
    excluded_agents: list[str] = Field(default_factory=list)

    def waited_s(self, now: datetime) -> float:
        return max(0.0, (aware(now) - aware(self.enqueued_at)).total_seconds())


# --------------------------------------------------------------------------- tenant settings

# Contacts of these channels count against the agent's capacity of that kind: a web
# call is a voice call for the agent, whatever carried it.
CAPACITY_CHANNEL = {
    "voice": "voice",
    "webcall": "voice",
    "webchat": "chat",
    "chat": "chat",
    "email": "email",
    "sms": "sms",
}
DEFAULT_NOT_READY_REASONS = ["break", "lunch", "training", "meeting", "away", "missed_offer"]


def capacity_channel(channel: str) -> str:
    """The capacity a contact of `channel` takes (unknown channels count as their own)."""
    return CAPACITY_CHANNEL.get(channel, channel)


class TenantRouting(BaseModel):
    """A tenant's routing settings, stored as `tenants.routing`.

    `capacity`: how many contacts of each kind an agent holds at once (one voice call,
    three chats, five emails, ...); `wrapup_s`: after-contact work per channel, during
    which the agent gets nothing new (0: none); `sticky_days` / `sticky_wait_s`: a
    customer served by an agent within that many days waits that long for the same
    agent, then goes to anyone (0 switches it off); `allow_pickup`: agents may take a
    contact waiting in any queue; `default_region`: for national caller numbers.
    """

    model_config = ConfigDict(extra="forbid")

    capacity: dict[str, int] = Field(default_factory=lambda: {"voice": 1, "chat": 3, "email": 5, "sms": 3})
    wrapup_s: dict[str, float] = Field(default_factory=lambda: {"voice": 10.0})
    not_ready_reasons: list[str] = Field(default_factory=lambda: list(DEFAULT_NOT_READY_REASONS))
    sticky_days: float = Field(default=7, ge=0)
    sticky_wait_s: float = Field(default=20, ge=0)
    allow_pickup: bool = True
    default_region: str | None = None

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, value: dict[str, int]) -> dict[str, int]:
        for channel, n in value.items():
            if not 0 <= n <= 50:
                raise ValueError(f"capacity for {channel} must be 0..50")
        return value

    @field_validator("wrapup_s")
    @classmethod
    def _wrapup(cls, value: dict[str, float]) -> dict[str, float]:
        for channel, seconds in value.items():
            if not 0 <= seconds <= 3600:
                raise ValueError(f"wrap-up for {channel} must be 0..3600 s")
        return value

    @classmethod
    def of(cls, tenant: dict[str, Any] | None) -> TenantRouting:
        """The tenant's settings; a legacy top-level `allow_pickup` still counts."""
        stored = dict((tenant or {}).get("routing") or {})
        if tenant and "allow_pickup" in tenant and "allow_pickup" not in stored:
            stored["allow_pickup"] = tenant["allow_pickup"]
        return cls.model_validate(stored)
