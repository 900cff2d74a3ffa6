"""Pre-aggregated report sums (`fact_rollups`), kept incrementally beside the fact rows.

Why: the embedded database reads about 10,000-20,000 documents a second in an aggregation,
so a daily report straight from the facts of a busy day (tens of thousands of contacts)
takes seconds, and grows with the data. A rollup row holds the sums of one dimension value
(a queue, an agent, a channel, a dialled number, a campaign, or all: "none") over one
15-minute interval or one local day, so a daily agent report reads one row per agent, and a
15-minute queue report one row per queue and interval, however many contacts there were.

Each change of a fact row adds its difference (new sums minus old) to the rollups with
`$inc`, so the rollups always equal the sums of the facts: the fact updater applies a
difference only after its own conditional write of the fact won (`rev`), so two hub
processes never add the same change twice. `rebuild` recomputes a tenant's rollups from its
facts (after a crash between the two writes, or when the tenant's time zone changed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pymongo import InsertOne, UpdateOne

from hub.context import AppContext
from hub.db import Doc
from reports.agent_states import next_boundary
from reports.facts import aware, buckets

# the dimensions kept rolled up: name -> fact field (None: everything together)
ROLLUP_DIMS: dict[str, str | None] = {
    "queue": "queue",
    "agent": "agent_id",
    "channel": "channel",
    "number": "dialled_number",
    "campaign": "campaign_id",
    "none": None,
}
# the fact fields the reports sum (reports/historical.py computes every measure from them)
SUMMED = (
    "contacts",
    "offered",
    "answered",
    "abandoned",
    "answered_in_sl",
    "answer_wait_s",
    "talk_s",
    "talk_n",
    "hold_s",
    "hold_n",
    "wrapup_s",
    "wrapup_n",
    "handle_s",
    "transfers",
    "csat",
    "csat_n",
    "fcr",
    "fcr_n",
    "complaint",
    "bot_contained",
    "attempts",
    "valid_number",
    "connected",
    "success",
)
# seconds agents spent per state (from closed `agent_states` spells), in the agent and "none" rows
TIME_FIELDS = {"available": "t_available", "busy": "t_busy", "wrapup": "t_wrapup", "not_ready": "t_not_ready"}
GRANULARITIES = ("15m", "day")
Delta = dict[str, tuple[Doc, dict[str, float]]]
"""Increments per rollup row: {id: (identifying fields, {sum field: increment})}."""
BATCH = 1000


def day_start(day: str, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local day's midnight."""
    local = datetime.fromisoformat(day).replace(tzinfo=tz)
    return local.astimezone(ZoneInfo("UTC"))


def _row(tenant_id: str, gran: str, dim: str, key: Any, start: datetime, tz: ZoneInfo) -> tuple[str, Doc]:
    """A rollup row's id and identifying fields."""
    times = buckets(start, tz)
    if gran == "day":
        times["hour"] = None
    shown = "" if key is None else key
    ident = f"{tenant_id}|{gran}|{dim}|{shown}|{aware(start).isoformat()}"
    return ident, {"tenant_id": tenant_id, "gran": gran, "dim": dim, "key": key, **times}


def _keys(fact: Doc, tz: ZoneInfo) -> list[tuple[str, Doc]]:
    """The rollup rows a fact counts in: (id, identifying fields) per dimension and granularity."""
    out = []
    for gran in GRANULARITIES:
        start = fact["interval_start"] if gran == "15m" else day_start(fact["day"], tz)
        for dim, field in ROLLUP_DIMS.items():
            ident, fields = _row(fact["tenant_id"], gran, dim, fact.get(field) if field else None, start, tz)
            if dim == "agent":
                fields["label"] = fact.get("agent_name")
            out.append((ident, fields))
    return out


def spell_changes(spell: Doc, tz: ZoneInfo) -> Delta:
    """What a closed spell adds: its seconds, cut at 15-minute and local-day boundaries, to
    its agent's rows and the "none" rows."""
    out: Delta = {}
    field = TIME_FIELDS.get(spell.get("state") or "")
    if field is None or spell.get("end") is None:
        return out
    for gran in GRANULARITIES:
        interval = "15m" if gran == "15m" else "day"
        at, until = aware(spell["start"]), aware(spell["end"])
        while at < until:
            boundary = next_boundary(at, interval, tz)
            piece_end = until if boundary is None else min(boundary, until)
            start = (
                buckets(at, tz)["interval_start"] if gran == "15m" else day_start(buckets(at, tz)["day"], tz)
            )
            for dim, key in (("agent", spell["agent_id"]), ("none", None)):
                ident, fields = _row(spell["tenant_id"], gran, dim, key, start, tz)
                _, inc = out.setdefault(ident, (fields, {}))
                inc[field] = inc.get(field, 0.0) + (piece_end - at).total_seconds()
            at = piece_end
    return out


def _sums(fact: Doc | None) -> dict[str, float]:
    return {k: float((fact or {}).get(k) or 0) for k in SUMMED}


def changes(old: Doc | None, new: Doc | None, tz: ZoneInfo) -> Delta:
    """What a fact's change adds to each rollup row: {id: (identifying fields, increments)}."""
    out: Delta = {}
    for fact, sign in ((old, -1.0), (new, 1.0)):
        if fact is None:
            continue
        sums = _sums(fact)
        for ident, fields in _keys(fact, tz):
            _, inc = out.setdefault(ident, (fields, dict.fromkeys(SUMMED, 0.0)))
            if sign > 0:
                out[ident] = (fields, inc)  # the newest label (agent name) wins
            for k, v in sums.items():
                inc[k] += sign * v
    return {i: (f, {k: v for k, v in inc.items() if v}) for i, (f, inc) in out.items()}


def merge(into: Delta, more: Delta) -> None:
    for ident, (fields, inc) in more.items():
        _, total = into.setdefault(ident, (fields, {}))
        for k, v in inc.items():
            total[k] = total.get(k, 0.0) + v


async def apply(ctx: AppContext, delta: Delta) -> None:
    """Add the increments to the rollup rows (created on first use)."""
    ops: list[Any] = []
    for ident, (fields, inc) in delta.items():
        if not inc:
            continue
        label = {"label": fields["label"]} if fields.get("label") else {}
        ident_fields = {k: v for k, v in fields.items() if k != "label"}
        ops.append(UpdateOne({"_id": ident}, {"$inc": inc, "$set": {**ident_fields, **label}}, upsert=True))
    for i in range(0, len(ops), BATCH):
        await ctx.db.fact_rollups.bulk_write(ops[i : i + BATCH], ordered=False)


def rows_of(facts: list[Doc], tz: ZoneInfo) -> list[Doc]:
    """The complete rollup rows of these facts (for a rebuild or a bulk load)."""
    delta: Delta = {}
    for fact in facts:
        merge(delta, changes(None, fact, tz))
    zeros = dict.fromkeys(SUMMED, 0.0)
    return [{"_id": ident, **fields, **zeros, **inc} for ident, (fields, inc) in delta.items()]


async def rebuild(ctx: AppContext, tenant_id: str, tz: ZoneInfo) -> int:
    """Recompute a tenant's rollups from its facts and closed spells; returns the rows written.
    (Spells closed meanwhile may count twice or not at all: run it while the hub is quiet.)"""
    await ctx.db.fact_rollups.delete_many({"tenant_id": tenant_id})
    projection = {k: 1 for k in (*SUMMED, "tenant_id", "interval_start", "day", "agent_name")}
    projection.update({f: 1 for f in ROLLUP_DIMS.values() if f})
    delta: Delta = {}
    async for fact in ctx.db.contact_facts.find({"tenant_id": tenant_id}, projection).batch_size(BATCH):
        merge(delta, changes(None, fact, tz))
    spells = {"tenant_id": tenant_id, "end": {"$ne": None}}
    async for spell in ctx.db.agent_states.find(spells).batch_size(BATCH):
        merge(delta, spell_changes(spell, tz))
    await ctx.db.agent_states.update_many(spells, {"$set": {"rolled": True}})
    rows = [{"_id": ident, **fields, **inc} for ident, (fields, inc) in delta.items()]
    for i in range(0, len(rows), BATCH):
        await ctx.db.fact_rollups.bulk_write([InsertOne(r) for r in rows[i : i + BATCH]], ordered=False)
    return len(rows)
