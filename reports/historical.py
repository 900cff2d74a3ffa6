"""Historical reports: the measures of docs/reports.md by interval and dimension.

Aggregation pipelines of plain sums, `$match` on indexed fields first (tenant, the UTC range
of the requested local days, the filters), then one `$group` by (dimension, stored interval
bucket); every average and rate is computed here from those sums, so the totals row is exact
(sums add up, averages do not). The sums come from the rollups (reports/rollups.py: one row
per dimension value and 15 minutes or local day) when the query allows, else from the fact
rows (`contact_facts`). Agent time (occupancy, busy / idle rate, contacts per hour) comes
from the agent state spells: closed ones rolled up, open ones cut here
(reports/agent_states.py), for the agent dimension and for "none".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.context import AppContext
from hub.db import Doc
from hub.ids import utcnow
from reports import agent_states
from reports.agent_states import BUCKET_FIELD, INTERVALS
from reports.facts import aware, zone
from reports.rollups import ROLLUP_DIMS, SUMMED, TIME_FIELDS

DIMENSIONS: dict[str, str | None] = {
    "queue": "queue",
    "agent": "agent_id",
    "channel": "channel",
    "number": "dialled_number",
    "campaign": "campaign_id",
    "question": "answers",
    "none": None,
}
COLUMNS = [
    "contacts",
    "offered",
    "answered",
    "abandoned",
    "abandon_rate",
    "service_level",
    "asa_s",
    "aht_s",
    "avg_talk_s",
    "avg_hold_s",
    "avg_wrapup_s",
    "contacts_per_hour",
    "contact_rate",
    "occupancy",
    "busy_rate",
    "idle_rate",
    "logged_in_s",
    "transfers",
    "csat",
    "fcr_rate",
    "complaints",
    "bot_contained",
    "attempts",
    "valid_number_rate",
    "connect_rate",
    "success",
    "success_rate",
    "online_success_value",
]
COUNTS = (
    "contacts", "offered", "answered", "abandoned", "answered_in_sl", "talk_n", "hold_n", "wrapup_n",
    "transfers",
    "csat_n", "fcr_n", "complaint", "bot_contained", "attempts", "valid_number", "connected", "success",
)  # fmt: skip
MAX_DAYS = 400


class ReportError(ValueError):
    """A request the report cannot answer (shown as 422)."""


@dataclass(frozen=True)
class ReportQuery:
    """What to report: dimension, interval, local days (inclusive) and filters."""

    by: str = "none"
    interval: str = "day"
    start: date = field(default_factory=lambda: utcnow().date())
    end: date = field(default_factory=lambda: utcnow().date())
    queue: str | None = None
    agent: str | None = None
    channel: str | None = None
    campaign: str | None = None
    questionnaire: str | None = None
    source: str | None = None  # "facts": never the rollups (tests compare both)

    def filters(self) -> dict[str, str]:
        """The filters set, by dimension name."""
        named = {"queue": self.queue, "agent": self.agent, "channel": self.channel, "campaign": self.campaign}
        return {k: v for k, v in named.items() if v}

    def check(self) -> None:
        if self.by not in DIMENSIONS:
            raise ReportError(f"by must be one of {', '.join(DIMENSIONS)}")
        if self.interval not in INTERVALS:
            raise ReportError(f"interval must be one of {', '.join(INTERVALS)}")
        if self.end < self.start:
            raise ReportError("to is before from")
        if (self.end - self.start).days > MAX_DAYS:
            raise ReportError(f"at most {MAX_DAYS} days per report")
        if self.interval == "15m" and (self.end - self.start).days > 31:
            raise ReportError("15-minute intervals: at most 31 days")


def utc_range(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[local midnight of `start`, local midnight after `end`) in UTC."""
    first = datetime(start.year, start.month, start.day, tzinfo=tz).astimezone(UTC)
    after = end + timedelta(days=1)
    return first, datetime(after.year, after.month, after.day, tzinfo=tz).astimezone(UTC)


def _ratio(a: float | None, b: float | None, digits: int = 4) -> float | None:
    return round(a / b, digits) if a is not None and b else None


def measures(sums: dict[str, float], times: dict[str, float] | None) -> dict[str, Any]:
    """The report's measures from one group's sums (and agent state seconds, if any)."""
    s = {k: sums.get(k) or 0 for k in SUMMED}
    for k in COUNTS:  # the rollups sum in floats
        s[k] = round(s[k])
    handled = s["answered"] + s["abandoned"]
    success_rate = _ratio(s["success"], s["connected"])
    out: dict[str, Any] = {
        "contacts": s["contacts"],
        "offered": s["offered"],
        "answered": s["answered"],
        "abandoned": s["abandoned"],
        "abandon_rate": _ratio(s["abandoned"], s["offered"]),
        "service_level": _ratio(s["answered_in_sl"], handled),
        "asa_s": _ratio(s["answer_wait_s"], s["answered"], 1),
        "aht_s": _ratio(s["handle_s"], s["talk_n"], 1),
        "avg_talk_s": _ratio(s["talk_s"], s["talk_n"], 1),
        "avg_hold_s": _ratio(s["hold_s"], s["hold_n"], 1),
        "avg_wrapup_s": _ratio(s["wrapup_s"], s["wrapup_n"], 1),
        "contacts_per_hour": None,
        "contact_rate": _ratio(s["answered"] + s["connected"], s["contacts"]),
        "transfers": s["transfers"],
        "csat": _ratio(s["csat"], s["csat_n"], 2),
        "fcr_rate": _ratio(s["fcr"], s["fcr_n"]),
        "complaints": s["complaint"],
        "bot_contained": s["bot_contained"],
        "attempts": s["attempts"],
        "valid_number_rate": _ratio(s["valid_number"], s["attempts"]),
        "connect_rate": _ratio(s["connected"], s["attempts"]),
        "success": s["success"],
        "success_rate": success_rate,
        "online_success_value": round(s["success"] * success_rate, 4) if success_rate is not None else None,
        **dict.fromkeys(("occupancy", "busy_rate", "idle_rate", "logged_in_s")),
    }
    if times is not None:
        out.update(agent_states.rates(times))
        hours = (out["logged_in_s"] or 0) / 3600
        out["contacts_per_hour"] = round(s["answered"] / hours, 2) if hours else None
    return out


def pipeline(query: ReportQuery, tenant_id: str, start: datetime, end: datetime) -> list[Doc]:
    """The aggregation: indexed `$match`, then one `$group` of sums (no `$project`: on the
    embedded database a projection stage makes the pipeline slower, not faster)."""
    match: Doc = {"tenant_id": tenant_id, "interval_start": {"$gte": start, "$lt": end}}
    for name, fact_field in (
        ("queue", "queue"),
        ("agent", "agent_id"),
        ("channel", "channel"),
        ("campaign", "campaign_id"),
    ):
        value = getattr(query, name)
        if value:
            match[fact_field] = value
    key_field = DIMENSIONS[query.by]
    bucket = BUCKET_FIELD.get(query.interval)
    stages: list[Doc] = [{"$match": match}]
    key: Any
    if query.by == "question":
        stages.append({"$unwind": "$answers"})
        if query.questionnaire:
            stages.append({"$match": {"answers.questionnaire_id": query.questionnaire}})
        key = {"q": "$answers.question", "a": "$answers.answer", "n": "$answers.questionnaire_id"}
    else:
        key = f"${key_field}" if key_field else None
    group: Doc = {"_id": {"k": key, "t": f"${bucket}" if bucket else None}}
    group.update({k: {"$sum": f"${k}"} for k in SUMMED})
    if query.by == "agent":
        group["label"] = {"$max": "$agent_name"}
    stages.append({"$group": group})
    return stages


def rollup_pipeline(query: ReportQuery, tenant_id: str, start: datetime, end: datetime) -> list[Doc] | None:
    """The same sums from `fact_rollups` (reports/rollups.py), when the query allows: a
    rolled-up dimension and at most one filter, on that dimension (or any, for "none")."""
    filters = query.filters()
    if query.source == "facts" or query.by not in ROLLUP_DIMS or len(filters) > 1:
        return None
    dim, key_value = query.by, None
    if filters:
        ((name, key_value),) = filters.items()
        if query.by == "none":
            dim = name
        elif name != query.by:
            return None
    gran = "15m" if query.interval in ("15m", "hour") else "day"
    match: Doc = {
        "tenant_id": tenant_id,
        "gran": gran,
        "dim": dim,
        "interval_start": {"$gte": start, "$lt": end},
    }
    if key_value is not None:
        match["key"] = key_value
    bucket = BUCKET_FIELD.get(query.interval)
    group: Doc = {"_id": {"k": None if query.by == "none" else "$key", "t": f"${bucket}" if bucket else None}}
    group.update({k: {"$sum": f"${k}"} for k in (*SUMMED, *TIME_FIELDS.values())})
    if query.by == "agent":
        group["label"] = {"$max": "$label"}
    return [{"$match": match}, {"$group": group}]


def _rolled_times(groups: list[Doc]) -> dict[tuple[Any, Any], dict[str, float]]:
    """Agent seconds per state from rollup groups (closed spells)."""
    out: dict[tuple[Any, Any], dict[str, float]] = {}
    for g in groups:
        per_state = {state: float(g.get(field) or 0) for state, field in TIME_FIELDS.items() if g.get(field)}
        if per_state:
            out[(g["_id"]["k"], g["_id"].get("t"))] = per_state
    return out


def _bucket_label(value: Any, interval: str, tz: ZoneInfo) -> str | None:
    """The interval's start as local ISO text (the stored buckets are UTC or local text)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return aware(value).astimezone(tz).isoformat()
    return str(value) + (":00" if interval == "hour" else "")


async def _labels(ctx: AppContext, tenant_id: str, by: str, keys: set[Any]) -> dict[Any, str]:
    if by == "campaign":
        ids = [k for k in keys if k]
        return {
            c["_id"]: c.get("name") or c["_id"]
            async for c in ctx.db.campaigns.find({"_id": {"$in": ids}, "tenant_id": tenant_id}, {"name": 1})
        }
    return {}


async def historical(ctx: AppContext, tenant_id: str, query: ReportQuery) -> dict[str, Any]:
    """The report as `{by, interval, from, to, timezone, columns, rows, totals}` (docs/reports.md)."""
    query.check()
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"timezone": 1}) or {}
    tz = zone(tenant.get("timezone"))
    start, end = utc_range(query.start, query.end, tz)
    from_rollups = rollup_pipeline(query, tenant_id, start, end)
    if from_rollups is not None:
        cursor = await ctx.db.fact_rollups.aggregate(from_rollups)
    else:
        cursor = await ctx.db.contact_facts.aggregate(pipeline(query, tenant_id, start, end))
    groups = [g async for g in cursor]
    with_time = query.by in ("agent", "none") and not (query.queue or query.channel or query.campaign)
    times: dict[tuple[Any, Any], dict[str, float]] = {}
    if with_time:
        key_of = (lambda s: s["agent_id"]) if query.by == "agent" else (lambda s: None)
        now = utcnow()
        if from_rollups is None:
            spells = await agent_states.spells(ctx, tenant_id, start, end, query.agent)
        else:  # closed spells are in the rollups: only the open ones are cut here
            spells = await agent_states.open_spells(ctx, tenant_id, end, query.agent)
            times = _rolled_times(groups)
        for time_key, per_state in agent_states.split_time(
            spells, start, end, query.interval, tz, now, key_of
        ).items():
            into = times.setdefault(time_key, {})
            for state, seconds in per_state.items():
                into[state] = into.get(state, 0.0) + seconds
    sums: dict[tuple[Any, Any], Doc] = {}
    labels: dict[Any, str] = {}
    for g in groups:
        k = g["_id"]["k"]
        key = (k["n"], k["q"], k["a"]) if isinstance(k, dict) else k
        sums[(key, g["_id"].get("t"))] = g
        if g.get("label"):
            labels[key] = g["label"]
    for time_key in times:  # agents logged in without contacts still get their row
        sums.setdefault(time_key, {})
    labels.update(await _labels(ctx, tenant_id, query.by, {k for k, _ in sums}))
    if query.by == "agent":
        missing = [k for k, _ in sums if k and k not in labels]
        async for a in ctx.db.agents.find({"_id": {"$in": missing}, "tenant_id": tenant_id}, {"name": 1}):
            labels[a["_id"]] = a.get("name") or a["_id"]
    rows = []
    for (key, bucket), group in sorted(sums.items(), key=lambda kv: (str(kv[0][1]), str(kv[0][0]))):
        label = labels.get(key)
        if isinstance(key, tuple):
            label = f"{key[1]} = {key[2]}"
        rows.append(
            {
                "key": list(key) if isinstance(key, tuple) else key,
                "label": label if label is not None else key,
                "interval_start": _bucket_label(bucket, query.interval, tz),
                **measures(group, times.get((key, bucket)) if with_time else None),
            }
        )
    all_sums = {k: sum(g.get(k) or 0 for g in groups) for k in SUMMED}
    all_times: dict[str, float] | None = None
    if with_time:
        all_times = {}
        for per_state in times.values():
            for state, seconds in per_state.items():
                all_times[state] = all_times.get(state, 0.0) + seconds
    totals = measures(all_sums, all_times)
    if query.by == "question":  # a contact counts once per answer: only the row sums add up
        totals = {k: totals[k] for k in ("contacts",)}
    return {
        "by": query.by,
        "interval": query.interval,
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "timezone": str(tz),
        "source": "facts" if from_rollups is None else "rollups",
        "columns": COLUMNS,
        "rows": rows,
        "totals": totals,
    }
