"""Today's running figures for the wallboard, kept incrementally per tenant in the process.

Why incremental: the embedded database scans roughly 25,000 documents a second, so reading
all of a busy day's contacts and agent-state spells on every push (several a second) would
make the wallboard lag by seconds. Instead the first snapshot of a day loads the day once,
and every later one reads only what changed since: contacts by `updated_at` (every status
change sets it, hub/contacts.py `update_contact`) and spells by `end` (a spell is final
once closed). Both reads go back `MARGIN` before the last one, so a write stamped just before
it but committed just after (another hub process) is still seen; contacts are keyed by id
and closed spells are remembered for that margin, so nothing counts twice.

"Today" is the tenant's calendar day (`tenants.timezone`, default UTC). A contact counts for
the day it entered the queue (answered, abandoned, service level) and, for the agent's
"handled", the day it was assigned; spells are clipped to the day.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.context import AppContext
from hub.db import Doc

MARGIN = timedelta(seconds=5)
IDLE_EVICT = timedelta(hours=1)
DEFAULT_QUEUE = "general"
LOGGED_OUT = "offline"
TALK_STATES = ("busy",)  # busy (holding a contact) counts as talk until calls report talk time
CONTACT_FIELDS = {
    "queue_name": 1,
    "skill": 1,
    "status": 1,
    "disposition": 1,
    "queued_at": 1,
    "assigned_at": 1,
    "agent_id": 1,
    "updated_at": 1,
}
SPELL_FIELDS = {"agent_id": 1, "state": 1, "start": 1, "end": 1}


def zone_of(name: str | None) -> ZoneInfo:
    """The tenant's zone; an unknown or empty name is UTC rather than an error on the board."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def day_start(now: datetime, zone: ZoneInfo) -> datetime:
    """Midnight of `now`'s local day in `zone`, as UTC."""
    local = now.astimezone(zone).date()
    return datetime.combine(local, time(0), tzinfo=zone).astimezone(UTC)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def queue_of(contact: Doc) -> str:
    return str(contact.get("queue_name") or contact.get("skill") or DEFAULT_QUEUE)


@dataclass
class ContactTally:
    """What one contact adds to today's figures."""

    queue: str | None  # None: did not enter a queue today
    wait_s: float | None  # answered today: seconds from queued to assigned
    abandoned: bool
    handled_by: str | None  # the agent it was assigned to today


def tally_contact(contact: Doc, start: datetime) -> ContactTally | None:
    """The contact's share of the day beginning at `start`, or None if it has none."""
    queued, assigned = _utc(contact.get("queued_at")), _utc(contact.get("assigned_at"))
    in_queue_today = queued is not None and queued >= start
    handled_by = contact.get("agent_id") if assigned is not None and assigned >= start else None
    if not in_queue_today and handled_by is None:
        return None
    wait = None
    abandoned = False
    if in_queue_today and queued is not None:
        if assigned is not None:
            wait = max(0.0, (assigned - queued).total_seconds())
        elif contact.get("status") == "closed" and contact.get("disposition") == "abandoned":
            abandoned = True
    return ContactTally(queue_of(contact) if in_queue_today else None, wait, abandoned, handled_by)


def clipped_s(start: datetime, end: datetime, lo: datetime, hi: datetime) -> float:
    """Seconds of [start, end] inside [lo, hi]."""
    return max(0.0, (min(end, hi) - max(start, lo)).total_seconds())


@dataclass
class AgentTime:
    logged_in_s: float = 0.0
    talk_s: float = 0.0

    def add(self, state: str, seconds: float) -> None:
        if state != LOGGED_OUT:
            self.logged_in_s += seconds
        if state in TALK_STATES:
            self.talk_s += seconds


@dataclass
class TodayTallies:
    """One tenant's day: contacts by id, closed spell time by agent, and the read marks."""

    start: datetime
    contacts: dict[str, ContactTally] = field(default_factory=dict)
    closed_time: dict[str, AgentTime] = field(default_factory=dict)
    recent_spells: dict[str, datetime] = field(default_factory=dict)  # counted id -> end
    contacts_mark: datetime | None = None
    spells_mark: datetime | None = None
    used_at: datetime | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def refresh(self, ctx: AppContext, tenant_id: str, now: datetime) -> None:
        async with self.lock:
            await asyncio.gather(self._contacts(ctx, tenant_id, now), self._spells(ctx, tenant_id, now))
            self.used_at = now

    async def _contacts(self, ctx: AppContext, tenant_id: str, now: datetime) -> None:
        if self.contacts_mark is None:  # the day's first look: everything queued or assigned today
            queries: list[Doc] = [
                {"tenant_id": tenant_id, "queued_at": {"$gte": self.start}},
                {"tenant_id": tenant_id, "assigned_at": {"$gte": self.start}},
            ]
        else:
            queries = [{"tenant_id": tenant_id, "updated_at": {"$gte": self.contacts_mark - MARGIN}}]
        for query in queries:
            async for contact in ctx.db.contacts.find(query, CONTACT_FIELDS):
                tally = tally_contact(contact, self.start)
                if tally is None:
                    self.contacts.pop(contact["_id"], None)
                else:
                    self.contacts[contact["_id"]] = tally
        self.contacts_mark = now

    async def _spells(self, ctx: AppContext, tenant_id: str, now: datetime) -> None:
        since = self.start if self.spells_mark is None else max(self.start, self.spells_mark - MARGIN)
        async for spell in ctx.db.agent_states.find(
            {"tenant_id": tenant_id, "end": {"$gte": since}}, SPELL_FIELDS
        ):
            if spell["_id"] in self.recent_spells:
                continue
            end = _utc(spell["end"])
            begin = _utc(spell.get("start"))
            if end is None or begin is None:
                continue
            seconds = clipped_s(begin, end, self.start, now)
            self.closed_time.setdefault(spell["agent_id"], AgentTime()).add(spell.get("state", ""), seconds)
            self.recent_spells[spell["_id"]] = end
        self.spells_mark = now
        forget_before = now - 2 * MARGIN
        self.recent_spells = {k: v for k, v in self.recent_spells.items() if v >= forget_before}


def _cache(ctx: AppContext) -> dict[str, TodayTallies]:
    cache: dict[str, TodayTallies] = ctx.extra.setdefault("wallboard_today", {})
    return cache


async def today(ctx: AppContext, tenant_id: str, zone: ZoneInfo, now: datetime) -> TodayTallies:
    """The tenant's tallies for the local day of `now`, brought up to date."""
    cache = _cache(ctx)
    start = day_start(now, zone)
    tallies = cache.get(tenant_id)
    if tallies is None or tallies.start != start:
        tallies = cache[tenant_id] = TodayTallies(start)
    await tallies.refresh(ctx, tenant_id, now)
    for other, held in list(cache.items()):  # boards nobody watches any more
        if held.used_at is not None and now - held.used_at > IDLE_EVICT:
            cache.pop(other, None)
    return tallies


def agent_time(tallies: TodayTallies, open_spells: dict[str, Doc], now: datetime) -> dict[str, AgentTime]:
    """Logged-in and talk time today per agent: closed spells plus the open one so far."""
    out = {agent: AgentTime(t.logged_in_s, t.talk_s) for agent, t in tallies.closed_time.items()}
    for agent_id, spell in open_spells.items():
        begin = _utc(spell.get("start"))
        if begin is not None:
            seconds = clipped_s(begin, now, tallies.start, now)
            out.setdefault(agent_id, AgentTime()).add(spell.get("state", ""), seconds)
    return out


def occupancy(time_: AgentTime | None) -> float | None:
    """Talk time / logged-in time; None before the agent logged in today."""
    if time_ is None or time_.logged_in_s <= 0:
        return None
    return round(min(1.0, time_.talk_s / time_.logged_in_s), 3)


def handled_today(tallies: TodayTallies) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tally in tallies.contacts.values():
        if tally.handled_by:
            counts[tally.handled_by] = counts.get(tally.handled_by, 0) + 1
    return counts


def queue_today(tallies: TodayTallies) -> dict[str, dict[str, Any]]:
    """Per queue: answer waits and the abandoned count of contacts queued today."""
    out: dict[str, dict[str, Any]] = {}
    for tally in tallies.contacts.values():
        if tally.queue is None:
            continue
        queue = out.setdefault(tally.queue, {"waits": [], "abandoned": 0})
        if tally.wait_s is not None:
            queue["waits"].append(tally.wait_s)
        elif tally.abandoned:
            queue["abandoned"] += 1
    return out
