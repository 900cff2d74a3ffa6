"""Bot analytics: how much the bot settles alone, why it hands over, what customers ask, how often
it does not understand, and how satisfied customers are with the bot and with agents.

Read straight from `contacts`, `messages` and `kb_events` with `$match` + `$group` pipelines
on indexed fields (tenant + opened_at / created_at / at), so the figures are exact for any
period without waiting for the fact updater. Inbound contacts only (outbound calls and
campaign messages never start with the bot). Definitions:

- started: inbound contacts opened in the period (every one starts with the bot).
- contained: closed without reaching a queue or an agent, or still with the bot but idle
  for `idle_min` minutes (a web chat the customer simply left is never closed). A phone
  call that hangs up while in the IVR is closed as "abandoned" by the router, but it never
  waited for an agent, so it counts as contained here; abandoned means left a queue.
- handed_off: reached a queue (`queued_at`); its `reason` is the handoff reason
  (customer_request, bot_fallback, faq_not_found, bot_unavailable, ...).
- abandoned: handed off, then closed before an agent took it.
- intents: the topic intent the bot's actions stored (`intent`), else what Rasa understood
  last (`last_intent`).
- fallback rate: bot replies that are bot/actions.py FALLBACK_TEXT or the domain's
  out-of-scope answer, over the visitor turns the bot handled (messages with bot_state
  done / handed_off).
- CSAT: `survey_score` (1-5) on contacts, split by channel and by who handled the contact
  (an agent when one was assigned, else the bot); plus the knowledge base's "Did that help?"
  votes (`kb_events` helpful / not_helpful) per channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bot.actions import FALLBACK_TEXT
from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, utcnow
from reports.workforce import day_intervals, tenant_zone

DEFAULT_IDLE_MIN = 30.0
DOMAIN = Path(__file__).resolve().parent.parent / "bot" / "rasa" / "domain.yml"


def fallback_texts() -> list[str]:
    """The replies that mean "I did not understand": ours and Rasa's out-of-scope answer."""
    texts = [FALLBACK_TEXT]
    try:
        domain = yaml.safe_load(DOMAIN.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return texts
    for name in ("utter_out_of_scope", "utter_default"):
        for variant in (domain.get("responses") or {}).get(name) or []:
            if isinstance(variant, dict) and variant.get("text"):
                texts.append(str(variant["text"]))
    return texts


def _rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class ChannelFigures:
    started: int = 0
    contained: int = 0
    handed_off: int = 0
    answered: int = 0
    abandoned: int = 0
    with_bot: int = 0

    def row(self, channel: str) -> dict[str, Any]:
        return {
            "channel": channel,
            "started": self.started,
            "contained": self.contained,
            "handed_off": self.handed_off,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "with_bot": self.with_bot,
            "containment_rate": _rate(self.contained, self.started),
            "handoff_rate": _rate(self.handed_off, self.started),
        }


@dataclass
class Scores:
    responses: int = 0
    total: float = 0.0
    by_channel: dict[str, list[float]] = field(default_factory=dict)

    def add(self, channel: str, responses: int, total: float) -> None:
        self.responses += responses
        self.total += total
        cell = self.by_channel.setdefault(channel, [0, 0.0])
        cell[0] += responses
        cell[1] += total

    def summary(self) -> dict[str, Any]:
        return {"responses": self.responses, "avg": _avg(self.total, self.responses)}


def _avg(total: float, n: int) -> float | None:
    return round(total / n, 3) if n else None


def _is_set(field: str) -> Doc:
    return {"$cond": [{"$gt": [f"${field}", None]}, 1, 0]}


def contact_pipeline(tenant_id: str, start: datetime, end: datetime, idle_cutoff: datetime) -> list[Doc]:
    """One pass over the period's contacts, grouped by everything the figures tell apart.

    Only the indexed fields (tenant, opened_at) are matched: the embedded database scans the
    whole collection as soon as a filter has anything else, so the rest is told apart in the
    group key and summed up in Python (a few hundred groups at most).
    """
    return [
        {"$match": {"tenant_id": tenant_id, "opened_at": {"$gte": start, "$lt": end}}},
        {
            "$group": {
                "_id": {
                    "channel": "$channel",
                    "direction": "$direction",
                    "status": "$status",
                    "reason": "$reason",
                    "intent": "$intent",
                    "last": "$last_intent",
                    "queued": _is_set("queued_at"),
                    "assigned": _is_set("assigned_at"),
                    "agent": _is_set("agent_id"),
                    "idle": {"$cond": [{"$lt": ["$updated_at", idle_cutoff]}, 1, 0]},
                    "scored": {"$cond": [{"$gte": ["$survey_score", 1]}, 1, 0]},
                },
                "n": {"$sum": 1},
                "scored_n": {"$sum": {"$cond": [{"$gte": ["$survey_score", 1]}, 1, 0]}},
                "score": {"$sum": "$survey_score"},
            }
        },
    ]


def period(tenant: Doc | None, start: date, end: date) -> tuple[datetime, datetime]:
    """From the first day's local midnight to the midnight after the last day, in UTC."""
    zone = tenant_zone(tenant)
    return day_intervals(start, zone)[0], day_intervals(end + timedelta(days=1), zone)[0]


async def bot_analytics(
    ctx: AppContext, tenant_id: str, start_day: date, end_day: date, idle_min: float = DEFAULT_IDLE_MIN
) -> dict[str, Any]:
    """Every figure of the module docstring for the days start_day..end_day (tenant time)."""
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"timezone": 1})
    start, end = period(tenant, start_day, end_day)
    idle_cutoff = utcnow() - timedelta(minutes=idle_min)
    channels: dict[str, ChannelFigures] = {}
    reasons: dict[str, int] = {}
    intents: dict[str, list[int]] = {}  # intent -> [contacts, handed off]
    bot_scores, agent_scores = Scores(), Scores()
    async for row in await ctx.db.contacts.aggregate(contact_pipeline(tenant_id, start, end, idle_cutoff)):
        key, n = row["_id"] or {}, int(row["n"])
        if key.get("direction") == "outbound":
            continue
        channel = str(key.get("channel"))
        one = channels.setdefault(channel, ChannelFigures())
        queued, assigned, agent, idle = (bool(key.get(k)) for k in ("queued", "assigned", "agent", "idle"))
        status = key.get("status")
        one.started += n
        if queued:
            one.handed_off += n
            reason = str(key.get("reason") or "unknown")
            reasons[reason] = reasons.get(reason, 0) + n
            if not assigned and status == "closed":
                one.abandoned += n
        elif not agent:
            if status == "closed" or (status == "bot" and idle):
                one.contained += n
            elif status == "bot":
                one.with_bot += n
        if assigned:
            one.answered += n
        cell = intents.setdefault(str(key.get("intent") or key.get("last") or "(none)"), [0, 0])
        cell[0] += n
        cell[1] += n if queued else 0
        if key.get("scored"):
            (agent_scores if assigned else bot_scores).add(channel, int(row["scored_n"]), float(row["score"]))

    fallback = await fallback_figures(ctx, tenant_id, start, end)
    votes = await kb_votes(ctx, tenant_id, start, end)
    total = ChannelFigures()
    for one in channels.values():
        for name in ("started", "contained", "handed_off", "answered", "abandoned", "with_bot"):
            setattr(total, name, getattr(total, name) + getattr(one, name))
    handed_total = sum(reasons.values())
    all_channels = sorted(set(bot_scores.by_channel) | set(agent_scores.by_channel))
    return {
        "from": start_day.isoformat(),
        "to": end_day.isoformat(),
        "timezone": str(tenant_zone(tenant)),
        "period": {"start": iso(start), "end": iso(end)},
        "idle_min": idle_min,
        "totals": total.row("all"),
        "by_channel": [channels[c].row(c) for c in sorted(channels)],
        "handoff_reasons": [
            {"reason": r, "contacts": n, "share": _rate(n, handed_total)}
            for r, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        ],
        "intents": [
            {"intent": name, "contacts": n, "handed_off": h, "handoff_rate": _rate(h, n)}
            for name, (n, h) in sorted(intents.items(), key=lambda item: (-item[1][0], item[0]))
        ],
        "fallback": fallback,
        "csat": {
            "bot": bot_scores.summary(),
            "agent": agent_scores.summary(),
            "by_channel": [
                {
                    "channel": c,
                    "bot_responses": int(bot_scores.by_channel.get(c, [0, 0.0])[0]),
                    "bot_avg": _avg(*_cell(bot_scores, c)),
                    "agent_responses": int(agent_scores.by_channel.get(c, [0, 0.0])[0]),
                    "agent_avg": _avg(*_cell(agent_scores, c)),
                }
                for c in all_channels
            ],
        },
        "kb_votes": votes,
    }


def _cell(scores: Scores, channel: str) -> tuple[float, int]:
    n, total = scores.by_channel.get(channel, [0, 0.0])
    return float(total), int(n)


async def fallback_figures(ctx: AppContext, tenant_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Fallback replies over the visitor turns the bot handled, in the period."""
    window = {"$gte": start, "$lt": end}
    turns = 0
    visitor: list[Doc] = [  # the indexed fields alone in $match (see contact_pipeline)
        {"$match": {"tenant_id": tenant_id, "author": "visitor", "created_at": window}},
        {"$group": {"_id": "$bot_state", "n": {"$sum": 1}}},
    ]
    async for row in await ctx.db.messages.aggregate(visitor):
        turns += int(row["n"]) if row["_id"] in ("done", "handed_off") else 0
    fallbacks = 0
    contacts = 0
    is_fallback = {"$in": ["$text", fallback_texts()]}
    bot: list[Doc] = [
        {"$match": {"tenant_id": tenant_id, "author": "bot", "created_at": window}},
        {"$group": {"_id": {"$cond": [is_fallback, "$contact_id", None]}, "n": {"$sum": 1}}},
    ]
    async for row in await ctx.db.messages.aggregate(bot):
        if row["_id"] is not None:
            fallbacks += int(row["n"])
            contacts += 1
    return {
        "bot_turns": turns,
        "fallbacks": fallbacks,
        "fallback_rate": _rate(fallbacks, turns),
        "contacts_with_fallback": contacts,
    }


async def kb_votes(ctx: AppContext, tenant_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The knowledge base's "Did that help?" answers per channel (knowledge/usage.py events)."""
    cells: dict[str, dict[str, int]] = {}
    for kind in ("helpful", "not_helpful"):  # one equality each: the (tenant, type, at) index
        pipeline: list[Doc] = [
            {"$match": {"tenant_id": tenant_id, "type": kind, "at": {"$gte": start, "$lt": end}}},
            {"$group": {"_id": "$channel", "n": {"$sum": 1}}},
        ]
        async for row in await ctx.db.kb_events.aggregate(pipeline):
            cell = cells.setdefault(str(row["_id"]), {"helpful": 0, "not_helpful": 0})
            cell[kind] = int(row["n"])
    return [
        {"channel": c, **v, "helpful_ratio": _rate(v["helpful"], v["helpful"] + v["not_helpful"])}
        for c, v in sorted(cells.items())
    ]
