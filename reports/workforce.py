"""Staffing of a day: the agents Erlang C asks for per 15 minutes, next to those who were there.

For each 15-minute interval of a day (in the tenant's time zone):

- forecast: the contacts offered in that interval and their average handle time, or with
  `history_weeks` the average of the same weekday over the weeks before. They come
  from `contact_facts` (reports/facts.py: `interval_start`, `offered`, `answered`,
  `handle_s`) when the tenant has any, else straight from `contacts` (queued_at floored to
  15 minutes; handle time = assigned_at -> closed_at). An interval without handled contacts
  uses the day's AHT, or `default_aht_s`.
- required: reports/erlang.py for the queue's service-level goal (or the given one), then
  shrinkage -> agents to schedule.
- actual: the average number of agents logged in (any state but offline) and on the phones
  (available, busy or wrap-up) over the interval, from `agent_states` spells; without spells
  only the current interval can be filled, from the agents' present state.

An interval is under-staffed when fewer agents were logged in than the schedule needed.
Intervals are floored in UTC, which matches local 15-minute boundaries in every zone
(all offsets are multiples of 15 minutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, utcnow
from reports.erlang import agents_needed

INTERVAL = timedelta(minutes=15)
ON_PHONES = frozenset({"available", "busy", "wrapup"})
DEFAULT_AHT_S = 180.0
FLAG_SET = [True, 1]  # contact facts store flags as 0 / 1; booleans count too
SPELL_LOOKBACK = timedelta(days=2)  # a spell begun earlier and still running must be open


@dataclass(frozen=True)
class Goal:
    """What the staffing must achieve."""

    sl_target: float = 0.8
    sl_seconds: float = 20.0
    shrinkage: float = 0.3
    max_occupancy: float | None = None
    default_aht_s: float = DEFAULT_AHT_S


def tenant_zone(tenant: Doc | None) -> ZoneInfo:
    try:
        return ZoneInfo(str((tenant or {}).get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def today(zone: ZoneInfo) -> date:
    return utcnow().astimezone(zone).date()


def day_intervals(day: date, zone: ZoneInfo) -> list[datetime]:
    """The UTC starts of the day's 15-minute intervals (92 or 100 on a DST change)."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).astimezone(UTC)
    out = []
    while start < end:
        out.append(start)
        start += INTERVAL
    return out


def floor_interval(at: datetime) -> datetime:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    at = at.astimezone(UTC)
    return at.replace(minute=at.minute - at.minute % 15, second=0, microsecond=0)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@dataclass
class Demand:
    contacts: int = 0
    handled: int = 0
    handle_s: float = 0.0


async def demand_from_facts(
    ctx: AppContext, tenant_id: str, start: datetime, end: datetime, queue: str | None
) -> dict[datetime, Demand]:
    """Offered contacts and handle time per interval, from `contact_facts` (indexed on
    tenant_id + interval_start, or + queue)."""
    match: Doc = {"tenant_id": tenant_id, "interval_start": {"$gte": start, "$lt": end}}
    if queue:
        match["queue"] = queue
    out: dict[datetime, Demand] = {}
    # The indexed fields alone in $match (the embedded database scans the whole collection
    # when a filter has anything else); offered / answered (0 / 1 flags) are summed instead.
    handled = {"$and": [{"$in": ["$answered", FLAG_SET]}, {"$gt": ["$handle_s", 0]}]}
    pipeline: list[Doc] = [
        {"$match": match},
        {
            "$group": {
                "_id": "$interval_start",
                "offered": {"$sum": {"$cond": [{"$in": ["$offered", FLAG_SET]}, 1, 0]}},
                "handled": {"$sum": {"$cond": [handled, 1, 0]}},
                "handle_s": {"$sum": {"$cond": [handled, "$handle_s", 0]}},
            }
        },
    ]
    async for row in await ctx.db.contact_facts.aggregate(pipeline):
        out[_utc(row["_id"])] = Demand(int(row["offered"]), int(row["handled"]), float(row["handle_s"] or 0))
    return out


async def demand_from_contacts(
    ctx: AppContext, tenant_id: str, start: datetime, end: datetime, queue: str | None
) -> dict[datetime, Demand]:
    """The same from `contacts` directly, for tenants without facts yet: floored here
    because the embedded database has no $dateTrunc."""
    query: Doc = {"tenant_id": tenant_id, "queued_at": {"$gte": start, "$lt": end}}  # indexed only
    fields = {"queued_at": 1, "assigned_at": 1, "closed_at": 1, "queue_name": 1}
    out: dict[datetime, Demand] = {}
    async for contact in ctx.db.contacts.find(query, fields):
        if queue and contact.get("queue_name") != queue:
            continue
        demand = out.setdefault(floor_interval(contact["queued_at"]), Demand())
        demand.contacts += 1
        if contact.get("assigned_at") and contact.get("closed_at"):
            seconds = (_utc(contact["closed_at"]) - _utc(contact["assigned_at"])).total_seconds()
            if seconds > 0:
                demand.handled += 1
                demand.handle_s += seconds
    return out


async def _queue_agent_ids(ctx: AppContext, tenant_id: str, queue: str) -> set[str] | None:
    """Agents having any of the queue's skills (None when the queue names no skills)."""
    doc = await ctx.db.queues.find_one({"tenant_id": tenant_id, "name": queue}, {"skills": 1})
    skills = list(((doc or {}).get("skills") or {}).keys()) or [queue]
    query = {"tenant_id": tenant_id, "$or": [{f"skills.{s}": {"$exists": True}} for s in skills]}
    return {a["_id"] async for a in ctx.db.agents.find(query, {"_id": 1})}


async def staffed_from_spells(
    ctx: AppContext, tenant_id: str, starts: list[datetime], agent_ids: set[str] | None
) -> dict[datetime, tuple[float, float]] | None:
    """Average agents (logged in, on the phones) per interval from `agent_states` spells;
    None when the tenant has no spells at all."""
    if await ctx.db.agent_states.find_one({"tenant_id": tenant_id}, {"_id": 1}) is None:
        return None
    start, end = starts[0], starts[-1] + INTERVAL
    now = utcnow()
    seconds = {s: [0.0, 0.0] for s in starts}
    width = INTERVAL.total_seconds()
    fields = {"agent_id": 1, "state": 1, "start": 1, "end": 1}
    # Indexed queries only: spells begun in the day or the SPELL_LOOKBACK before it, and open
    # ones; overlap and state are checked here.
    spells: dict[str, Doc] = {}
    for query in (
        {"tenant_id": tenant_id, "start": {"$gte": start - SPELL_LOOKBACK, "$lt": end}},
        {"tenant_id": tenant_id, "end": None},
    ):
        async for one in ctx.db.agent_states.find(query, fields):
            spells[one["_id"]] = one
    for spell in spells.values():
        if spell.get("state") == "offline" or (agent_ids is not None and spell["agent_id"] not in agent_ids):
            continue
        if _utc(spell["start"]) >= end or (spell.get("end") and _utc(spell["end"]) <= start):
            continue
        a = max(_utc(spell["start"]), start)
        b = min(_utc(spell["end"]) if spell.get("end") else now, end)
        cursor = floor_interval(a)
        while cursor < b:
            overlap = (min(b, cursor + INTERVAL) - max(a, cursor)).total_seconds()
            if cursor in seconds and overlap > 0:
                seconds[cursor][0] += overlap
                if spell["state"] in ON_PHONES:
                    seconds[cursor][1] += overlap
            cursor += INTERVAL
    out = {}
    for at, (logged_in, on_phones) in seconds.items():
        elapsed = min(width, (now - at).total_seconds())  # the current interval: its elapsed part
        out[at] = (logged_in / elapsed, on_phones / elapsed) if elapsed > 0 else (0.0, 0.0)
    return out


async def staffed_now(ctx: AppContext, tenant_id: str, agent_ids: set[str] | None) -> tuple[float, float]:
    logged_in = on_phones = 0
    async for agent in ctx.db.agents.find({"tenant_id": tenant_id}, {"state": 1}):
        if agent_ids is not None and agent["_id"] not in agent_ids:
            continue
        state = agent.get("state", "offline")
        logged_in += state != "offline"
        on_phones += state in ON_PHONES
    return float(logged_in), float(on_phones)


async def queue_goal(ctx: AppContext, tenant_id: str, queue: str | None) -> tuple[float, float] | None:
    """The queue's own service-level goal (target, seconds), if it has one."""
    if not queue:
        return None
    doc = await ctx.db.queues.find_one({"tenant_id": tenant_id, "name": queue}, {"service_level": 1})
    level = (doc or {}).get("service_level")
    if not level:
        return None
    return float(level.get("target", 0.8)), float(level.get("threshold_s", 20))


@dataclass
class Forecast:
    """Contacts expected per interval (a float when averaged over weeks) and their handle time."""

    contacts: float = 0.0
    handled: int = 0
    handle_s: float = 0.0


async def forecast_by_label(
    ctx: AppContext,
    tenant_id: str,
    day: date,
    zone: ZoneInfo,
    queue: str | None,
    weeks: int,
    has_facts: bool,
) -> dict[str, Forecast]:
    """The average of the same weekday over the `weeks` weeks before `day`, by local "HH:MM"
    (so a DST change between the weeks still lines the quarters up)."""
    reader = demand_from_facts if has_facts else demand_from_contacts
    out: dict[str, Forecast] = {}
    for back in range(1, weeks + 1):
        past = day_intervals(day - timedelta(weeks=back), zone)
        for at, d in (await reader(ctx, tenant_id, past[0], past[-1] + INTERVAL, queue)).items():
            cell = out.setdefault(at.astimezone(zone).strftime("%H:%M"), Forecast())
            cell.contacts += d.contacts / weeks
            cell.handled += d.handled
            cell.handle_s += d.handle_s
    return out


async def staffing(
    ctx: AppContext,
    tenant_id: str,
    day: date,
    goal: Goal,
    queue: str | None = None,
    *,
    history_weeks: int = 0,
) -> dict[str, Any]:
    """Required against actual agents for each 15-minute interval of `day`.

    With `history_weeks` the requirement comes from the average of the same weekday over
    that many weeks before (a forecast, so future days can be planned); otherwise from the
    day's own contacts. The day's actual contacts are reported either way.
    """
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"timezone": 1})
    zone = tenant_zone(tenant)
    starts = day_intervals(day, zone)
    start, end = starts[0], starts[-1] + INTERVAL
    has_facts = await ctx.db.contact_facts.find_one({"tenant_id": tenant_id}, {"_id": 1}) is not None
    reader = demand_from_facts if has_facts else demand_from_contacts
    demand = await reader(ctx, tenant_id, start, end, queue)
    # keyed by local "HH:MM" when averaged over weeks, else by the interval's UTC start (a day
    # when clocks go back has two 01:00 quarters)
    expected: dict[Any, Forecast] = (
        await forecast_by_label(ctx, tenant_id, day, zone, queue, history_weeks, has_facts)
        if history_weeks > 0
        else {at: Forecast(float(d.contacts), d.handled, d.handle_s) for at, d in demand.items()}
    )
    agent_ids = await _queue_agent_ids(ctx, tenant_id, queue) if queue else None
    spells = await staffed_from_spells(ctx, tenant_id, starts, agent_ids)
    now = utcnow()
    current = floor_interval(now)
    present = await staffed_now(ctx, tenant_id, agent_ids) if spells is None and start <= now < end else None
    handled = sum(f.handled for f in expected.values())
    day_aht = sum(f.handle_s for f in expected.values()) / handled if handled else goal.default_aht_s
    rows: list[dict[str, Any]] = []
    required: list[tuple[int, int]] = []
    for at in starts:
        label = at.astimezone(zone).strftime("%H:%M")
        d = demand.get(at, Demand())
        f = expected.get(label if history_weeks > 0 else at, Forecast())
        aht = f.handle_s / f.handled if f.handled else day_aht
        traffic = f.contacts * aht / INTERVAL.total_seconds()
        need = agents_needed(
            traffic,
            aht,
            sl_target=goal.sl_target,
            sl_seconds=goal.sl_seconds,
            max_occupancy=goal.max_occupancy,
            shrinkage=goal.shrinkage,
        )
        staffed: tuple[float, float] | None = None
        if spells is not None:
            staffed = spells[at] if at <= now else None
        elif present is not None and at == current:
            staffed = present
        logged_in = None if staffed is None else round(staffed[0], 2)
        required.append((need.agents, need.scheduled))
        rows.append(
            {
                "start": iso(at),
                "label": label,
                "contacts": d.contacts,
                "forecast": round(f.contacts, 2),
                "aht_s": round(aht, 1),
                "traffic": round(traffic, 3),
                "required": need.agents,
                "scheduled": need.scheduled,
                "service_level": round(need.service_level, 4) if f.contacts else None,
                "asa_s": need.to_dict()["asa_s"] if f.contacts else None,
                "occupancy": round(need.occupancy, 4) if f.contacts else None,
                "logged_in": logged_in,
                "on_phones": None if staffed is None else round(staffed[1], 2),
                "gap": None if logged_in is None else round(logged_in - need.scheduled, 2),
                "understaffed": None if logged_in is None else logged_in < need.scheduled,
            }
        )
    return {
        "day": day.isoformat(),
        "queue": queue,
        "timezone": str(zone),
        "interval_min": 15,
        "goal": {
            "sl_target": goal.sl_target,
            "sl_seconds": goal.sl_seconds,
            "shrinkage": goal.shrinkage,
            "max_occupancy": goal.max_occupancy,
        },
        "history_weeks": history_weeks,
        "sources": {
            "forecast": "contact_facts" if has_facts else "contacts",
            "actual": "agent_states" if spells is not None else "agents",
        },
        "aht_s": round(day_aht, 1),
        "intervals": rows,
        "totals": {
            "contacts": sum(r["contacts"] for r in rows),
            "forecast": round(sum(f.contacts for f in expected.values()), 2),
            "peak_required": max((r for r, _ in required), default=0),
            "peak_scheduled": max((s for _, s in required), default=0),
            "understaffed_intervals": sum(1 for r in rows if r["understaffed"]),
        },
    }
