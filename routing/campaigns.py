"""Outbound campaigns: what a campaign is, the states it moves through, and its results.

A campaign dials (or texts, or mails) the targets of its lists (`campaign_targets`, see
routing/lists.py) within its schedule, by priority against other campaigns, at its
pacing (routing/pacing.py), under the dial-time rules of routing/compliance.py. This
module is the model and the bookkeeping; routing/dialer.py does the dialling.

States: draft -> running <-> paused -> stopped; running -> completed when no target is
left to try. Settings can change in draft and paused only, so a running campaign's rules
are the ones it started (or resumed) with.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.context import AppContext
from hub.db import Doc, update_then_read
from hub.ids import new_id, utcnow

CampaignType = Literal["preview", "progressive", "predictive", "robot", "broadcast", "sms", "email"]
CampaignState = Literal["draft", "running", "paused", "stopped", "completed"]
VOICE_TYPES = ("preview", "progressive", "predictive", "robot", "broadcast")
AGENT_TYPES = ("preview", "progressive", "predictive")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WINDOW = ("08:00", "21:00")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

# Outcome classes of a finished target (the five of the issue), plus custom codes per tenant.
DISPOSITION_CLASSES = ("unreachable", "success", "strong_intent", "intent", "declined")
DEFAULT_DISPOSITIONS: list[dict[str, str]] = [
    {"code": "unreachable", "label": "Unreachable", "class": "unreachable"},
    {"code": "success", "label": "Success", "class": "success"},
    {"code": "strong_intent", "label": "Strong intent", "class": "strong_intent"},
    {"code": "intent", "label": "Intent", "class": "intent"},
    {"code": "declined", "label": "Declined", "class": "declined"},
]

TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    # action: (from states, to state)
    "start": (("draft",), "running"),
    "pause": (("running",), "paused"),
    "resume": (("paused",), "running"),
    "stop": (("running", "paused", "draft"), "stopped"),
}


class CampaignError(Exception):
    """A campaign action that is not possible now; the message is for the user."""


class RetryRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max: int = Field(default=2, ge=0, le=10, description="further attempts after this outcome")
    wait_s: int = Field(default=3600, ge=60, le=7 * 86400, description="wait before the next attempt")


class Retries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    busy: RetryRule = RetryRule(max=3, wait_s=600)
    no_answer: RetryRule = RetryRule(max=2, wait_s=3600)
    machine: RetryRule = RetryRule(max=1, wait_s=7200)
    failed: RetryRule = RetryRule(max=1, wait_s=1800)


class Amd(BaseModel):
    """Twilio's answering-machine detection; on a machine, optionally leave a message."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    message_prompt_id: str | None = Field(default=None, max_length=64)


class Schedule(BaseModel):
    """When targets may be called, in each target's own local time (routing/compliance.py)."""

    model_config = ConfigDict(extra="forbid")

    windows: dict[str, list[tuple[str, str]]] = Field(
        default_factory=lambda: {day: [DEFAULT_WINDOW] for day in WEEKDAYS}
    )
    holidays: list[str] = Field(default_factory=list, max_length=366)
    timezone_fallback: str = "UTC"  # a number whose region has no single time zone
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
        for day, spans in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} (use {', '.join(WEEKDAYS)})")
            for start, end in spans:
                if not (_HHMM.match(start) and (_HHMM.match(end) or end == "24:00")) or start >= end:
                    raise ValueError(
                        f"{day}: a window is HH:MM-HH:MM with the start first, not {start}-{end}"
                    )
        return value

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: list[str]) -> list[str]:
        for day in value:
            datetime.strptime(day, "%Y-%m-%d")  # raises ValueError with the bad date
        return sorted(set(value))


class Campaign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id)
    tenant_id: str
    name: str = Field(min_length=1, max_length=120)
    type: CampaignType
    state: CampaignState = "draft"
    priority: int = Field(
        default=0, ge=0, le=100, description="higher goes first when lines or agents are short"
    )
    schedule: Schedule = Schedule()
    pacing_ratio: float = Field(default=1.0, ge=0.5, le=5.0, description="1.0 = as many calls as free agents")
    interval_s: float = Field(default=0, ge=0, le=3600, description="pause between two placements")
    ring_timeout_s: int = Field(default=30, ge=15, le=120, description="let a call ring at least 15 s")
    retries: Retries = Retries()
    amd: Amd = Amd()
    caller_id: str | None = None
    recording: bool = True
    flow_id: str | None = Field(default=None, max_length=64)
    questionnaire_id: str | None = Field(default=None, max_length=64)
    prompt_id: str | None = Field(default=None, max_length=64)
    sms_text: str | None = Field(default=None, max_length=1600)
    email_subject: str | None = Field(default=None, max_length=200)
    email_body: str | None = Field(default=None, max_length=20000)
    queue_id: str | None = Field(default=None, max_length=64)
    agent_ids: list[str] = Field(default_factory=list, max_length=500)
    frequency_days: int = Field(default=30, ge=0, le=365, description="one contact per number per period")
    max_abandon_rate: float = Field(default=0.03, ge=0.0, le=0.1)
    lines: int = Field(default=10, ge=1, le=500, description="line capacity for robot and broadcast calls")
    default_region: str = Field(default="US", min_length=2, max_length=2)
    opt_out_key: str = Field(
        default="9", pattern=r"^[0-9*#]$", description="robot / broadcast: stop calling me"
    )

    @field_validator("caller_id")
    @classmethod
    def _caller_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException as exc:
            raise ValueError(f"caller id {value!r} is not a number in international form: {exc}") from None
        if not phonenumbers.is_valid_number(parsed):
            raise ValueError(f"caller id {value!r} is not a valid number")
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    @model_validator(mode="after")
    def _needs(self) -> Campaign:
        needs: dict[str, list[str]] = {
            "robot": ["flow_id or questionnaire_id"] if not (self.flow_id or self.questionnaire_id) else [],
            "broadcast": ["prompt_id"] if not self.prompt_id else [],
            "sms": ["sms_text or questionnaire_id"] if not (self.sms_text or self.questionnaire_id) else [],
            "email": [f for f in ("email_subject", "email_body") if not getattr(self, f)],
        }
        missing = needs.get(self.type, [])
        if missing:
            raise ValueError(f"a {self.type} campaign needs {', '.join(missing)}")
        return self

    def to_doc(self) -> Doc:
        doc = self.model_dump(mode="python")
        doc["_id"] = doc.pop("id")
        return doc

    @classmethod
    def from_doc(cls, doc: Doc) -> Campaign:
        data = {k: v for k, v in doc.items() if k in cls.model_fields or k == "_id"}
        data["id"] = data.pop("_id")
        return cls.model_validate(data)


# --------------------------------------------------------------------------- storage


SETTABLE = set(Campaign.model_fields) - {"id", "tenant_id", "state"}


def public_campaign(doc: Doc) -> dict[str, Any]:
    view = {k: v for k, v in doc.items() if k != "_id"}
    view["id"] = doc["_id"]
    for key in ("created_at", "updated_at", "started_at", "stopped_at", "completed_at"):
        if isinstance(view.get(key), datetime):
            view[key] = view[key].isoformat()
    return view


async def create_campaign(ctx: AppContext, tenant_id: str, data: dict[str, Any], by: str) -> Doc:
    campaign = Campaign.model_validate({**data, "tenant_id": tenant_id, "state": "draft"})
    now = utcnow()
    doc = {**campaign.to_doc(), "created_at": now, "updated_at": now, "created_by": by}
    await ctx.db.campaigns.insert_one(doc)
    return doc


async def get_campaign(ctx: AppContext, tenant_id: str, campaign_id: str) -> Doc | None:
    found: Doc | None = await ctx.db.campaigns.find_one({"_id": campaign_id, "tenant_id": tenant_id})
    return found


async def update_campaign(ctx: AppContext, tenant_id: str, campaign_id: str, changes: dict[str, Any]) -> Doc:
    """New settings, validated as a whole; only while the campaign is not running."""
    current = await get_campaign(ctx, tenant_id, campaign_id)
    if current is None:
        raise CampaignError("no such campaign")
    if current["state"] not in ("draft", "paused"):
        raise CampaignError(f"a {current['state']} campaign cannot be changed; pause it first")
    unknown = set(changes) - SETTABLE
    if unknown:
        raise CampaignError(f"these cannot be set: {', '.join(sorted(unknown))}")
    merged = {**{k: v for k, v in current.items() if k in Campaign.model_fields}, **changes}
    merged["id"] = current["_id"]
    campaign = Campaign.model_validate(merged)
    doc = campaign.to_doc()
    updated = await update_then_read(
        ctx.db.campaigns,
        {"_id": campaign_id, "tenant_id": tenant_id, "state": current["state"]},
        {"$set": {**{k: v for k, v in doc.items() if k != "_id"}, "updated_at": utcnow()}},
    )
    if updated is None:
        raise CampaignError("the campaign changed meanwhile; try again")
    return updated


async def transition(ctx: AppContext, tenant_id: str, campaign_id: str, action: str, by: str) -> Doc:
    """start / pause / resume / stop, conditional on the state it is in now."""
    if action not in TRANSITIONS:
        raise CampaignError(f"unknown action {action!r}")
    sources, target = TRANSITIONS[action]
    current = await get_campaign(ctx, tenant_id, campaign_id)
    if current is None:
        raise CampaignError("no such campaign")
    if current["state"] not in sources:
        raise CampaignError(f"cannot {action} a {current['state']} campaign")
    if target == "running":
        await _ready_to_run(ctx, current)
    now = utcnow()
    stamp = {"running": "started_at", "stopped": "stopped_at", "paused": "paused_at"}[target]
    updated = await update_then_read(
        ctx.db.campaigns,
        {"_id": campaign_id, "tenant_id": tenant_id, "state": current["state"]},
        {
            "$set": {"state": target, stamp: now, "updated_at": now},
            "$push": {"history": {"action": action, "by": by, "at": now}},
        },
    )
    if updated is None:
        raise CampaignError("the campaign changed meanwhile; try again")
    ctx.bus.publish(f"tenant:{tenant_id}", {"type": "campaign", "campaign": public_campaign(updated)})
    return updated


async def _ready_to_run(ctx: AppContext, campaign: Doc) -> None:
    """What must hold before dialling: something to dial, an approved caller id for calls,
    approved audio prompts (the broadcast, the answering-machine message)."""
    if not await ctx.db.campaign_targets.find_one({"campaign_id": campaign["_id"]}, {"_id": 1}):
        raise CampaignError("import a list first: the campaign has no targets")
    problem = await approval_problem(ctx, campaign) or await outbound_block(ctx, campaign["tenant_id"])
    if problem:
        raise CampaignError(problem)


async def outbound_block(ctx: AppContext, tenant_id: str) -> str | None:
    """Why the tenant may place no outbound call or campaign message now (None: it may).

    The hub installs guards (async callables `(ctx, tenant_id) -> reason | None`) in
    `ctx.extra["outbound_guards"]`, e.g. billing's low-balance stop, so routing needs no
    import of what decides; the first reason wins."""
    for guard in ctx.extra.get("outbound_guards", []):
        reason: str | None = await guard(ctx, tenant_id)
        if reason:
            return reason
    return None


async def approval_problem(ctx: AppContext, campaign: Doc) -> str | None:
    """Why the campaign's caller id or prompts may not be used now (None: they may). Checked
    when it starts and again before each call, so a revoked approval stops it at once."""
    from routing.approvals import approved_caller_id, approved_prompt

    if campaign["type"] not in (*VOICE_TYPES, "sms"):  # an SMS sender number is a caller id too
        return None
    if not campaign.get("caller_id"):
        return "set an approved caller id first"
    if not await approved_caller_id(ctx, campaign["tenant_id"], campaign["caller_id"]):
        return f"caller id {campaign['caller_id']} is not approved for this tenant"
    prompts = [campaign.get("prompt_id"), (campaign.get("amd") or {}).get("message_prompt_id")]
    for prompt_id in [p for p in prompts if p]:
        if not await approved_prompt(ctx, campaign["tenant_id"], prompt_id):
            return f"audio prompt {prompt_id} is not approved for outbound use"
    return None


# --------------------------------------------------------------------------- results


def next_attempt_after(campaign: Campaign, outcome: str, attempts: int, now: datetime) -> datetime | None:
    """When to try a target again after `outcome` (None: no more tries for it)."""
    rule = getattr(campaign.retries, outcome, None)
    if not isinstance(rule, RetryRule):
        return None
    used = attempts - 1  # the first attempt is not a retry
    if used >= rule.max:
        return None
    return now + timedelta(seconds=rule.wait_s)


async def dispositions(ctx: AppContext, tenant_id: str) -> list[dict[str, str]]:
    """The tenant's outbound result codes: the five classes plus its own codes."""
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"outbound_dispositions": 1}) or {}
    custom = [d for d in tenant.get("outbound_dispositions") or [] if d.get("class") in DISPOSITION_CLASSES]
    codes = {d["code"] for d in DEFAULT_DISPOSITIONS}
    return [*DEFAULT_DISPOSITIONS, *[d for d in custom if d["code"] not in codes]]


async def progress(ctx: AppContext, campaign_id: str) -> dict[str, Any]:
    """Live figures: targets by status and by result class, attempts and their outcomes."""
    by_status = {
        row["_id"]: row["n"]
        async for row in await ctx.db.campaign_targets.aggregate(
            [{"$match": {"campaign_id": campaign_id}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        )
    }
    by_class = {
        row["_id"]: row["n"]
        async for row in await ctx.db.campaign_targets.aggregate(
            [
                {"$match": {"campaign_id": campaign_id, "disposition_class": {"$ne": None}}},
                {"$group": {"_id": "$disposition_class", "n": {"$sum": 1}}},
            ]
        )
    }
    outcomes = {
        row["_id"]: row["n"]
        async for row in await ctx.db.dial_attempts.aggregate(
            [{"$match": {"campaign_id": campaign_id}}, {"$group": {"_id": "$outcome", "n": {"$sum": 1}}}]
        )
    }
    answered = outcomes.get("answered", 0) + outcomes.get("abandoned", 0)
    total = sum(by_status.values())
    return {
        "targets": total,
        "by_status": by_status,
        "done_fraction": round(by_status.get("done", 0) / total, 4) if total else 0.0,
        "by_class": by_class,
        "attempts": sum(outcomes.values()),
        "outcomes": outcomes,
        "abandon_rate": round(outcomes.get("abandoned", 0) / answered, 4) if answered else 0.0,
    }
