"""Readers of the agent state history (`agent_states`, written by routing/agent_states.py).

Logged-in, busy, wrap-up, idle and not-ready time per agent and report interval. The spells
overlapping a period are read with one indexed query each for closed and open spells, then
cut at the interval boundaries in Python: the cut depends on the tenant's time zone
(local days, weeks, months), and there are only a few spells per agent and hour, so this is
cheaper and clearer than date arithmetic inside an aggregation pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hub.context import AppContext
from hub.db import Doc
from reports.facts import aware, buckets

# A spell is found if it started at most this long before the period (a spell that lasted
# longer is cut short at that point); agents change state many times a day, so real spells
# are far shorter.
LONGEST_SPELL = timedelta(days=7)
LOGGED_IN = ("available", "busy", "wrapup", "not_ready")
INTERVALS = ("15m", "hour", "day", "week", "month", "total")
BUCKET_FIELD = {"15m": "interval_start", "hour": "hour", "day": "day", "week": "week", "month": "month"}


def next_boundary(at: datetime, interval: str, tz: ZoneInfo) -> datetime | None:
    """The first interval boundary after `at` (None for "total": no boundary)."""
    at = aware(at)
    if interval == "total":
        return None
    if interval == "15m":
        start = buckets(at, tz)["interval_start"]
        return start + timedelta(minutes=15)
    local = at.astimezone(tz)
    if interval == "hour":
        floor = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return floor + timedelta(hours=1)
    day = local.date()
    if interval == "day":
        following = day + timedelta(days=1)
    elif interval == "week":
        following = day + timedelta(days=7 - day.weekday())
    else:
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return datetime(following.year, following.month, following.day, tzinfo=tz).astimezone(UTC)


def bucket_key(at: datetime, interval: str, tz: ZoneInfo) -> Any:
    """The key a fact row stores for this instant and interval (None for "total")."""
    if interval == "total":
        return None
    return buckets(at, tz)[BUCKET_FIELD[interval]]


async def spells(
    ctx: AppContext, tenant_id: str, start: datetime, end: datetime, agent_id: str | None = None
) -> list[Doc]:
    """The spells of logged-in states that overlap [start, end)."""
    base: Doc = {"tenant_id": tenant_id, "state": {"$in": list(LOGGED_IN)}}
    if agent_id:
        base["agent_id"] = agent_id
    fields = {"agent_id": 1, "state": 1, "reason": 1, "start": 1, "end": 1}
    closed = ctx.db.agent_states.find(
        {**base, "start": {"$gte": start - LONGEST_SPELL, "$lt": end}, "end": {"$gt": start}}, fields
    )
    found = {s["_id"]: s async for s in closed}
    for spell in await open_spells(ctx, tenant_id, end, agent_id):
        found[spell["_id"]] = spell
    return list(found.values())


def split_time(
    rows: list[Doc],
    start: datetime,
    end: datetime,
    interval: str,
    tz: ZoneInfo,
    now: datetime,
    key_of: Callable[[Doc], Any] = lambda spell: spell["agent_id"],
) -> dict[tuple[Any, Any], dict[str, float]]:
    """Seconds per state, keyed by (key_of(spell), interval bucket), clipped to [start, min(end, now))."""
    out: dict[tuple[Any, Any], dict[str, float]] = {}
    stop = min(aware(end), aware(now))
    for spell in rows:
        at = max(aware(spell["start"]), aware(start))
        until = min(aware(spell["end"]) if spell.get("end") else stop, stop)
        while at < until:
            boundary = next_boundary(at, interval, tz)
            piece_end = until if boundary is None else min(boundary, until)
            times = out.setdefault((key_of(spell), bucket_key(at, interval, tz)), {})
            times[spell["state"]] = times.get(spell["state"], 0.0) + (piece_end - at).total_seconds()
            at = piece_end
    return out


def rates(times: dict[str, float]) -> dict[str, float | None]:
    """Logged-in time and the shares of it: occupancy (busy: handling contacts), busy rate
    (busy + wrap-up), idle rate (available with nothing to do), not-ready rate."""
    logged_in = sum(times.get(s, 0.0) for s in LOGGED_IN)

    def share(value: float) -> float | None:
        return round(value / logged_in, 4) if logged_in else None

    return {
        "logged_in_s": round(logged_in, 1),
        "occupancy": share(times.get("busy", 0.0)),
        "busy_rate": share(times.get("busy", 0.0) + times.get("wrapup", 0.0)),
        "idle_rate": share(times.get("available", 0.0)),
        "not_ready_rate": share(times.get("not_ready", 0.0)),
    }


async def open_spells(
    ctx: AppContext, tenant_id: str, end: datetime, agent_id: str | None = None
) -> list[Doc]:
    """The spells still going on (logged-in states) that started before `end`: read from the
    agents, which carry their open spell (routing/agent_states.py): one indexed read by
    tenant, where a query for `end: None` on the spells finds no index use here."""
    query: Doc = {"tenant_id": tenant_id}
    if agent_id:
        query["_id"] = agent_id
    out = []
    async for agent in ctx.db.agents.find(query, {"spell": 1}):
        spell = agent.get("spell") or {}
        if spell.get("state") in LOGGED_IN and spell.get("start") and aware(spell["start"]) < aware(end):
            out.append({**spell, "_id": spell.get("id"), "agent_id": agent["_id"], "end": None})
    return out
