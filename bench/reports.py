"""Reports benchmark: daily agent and queue reports and the wallboard refresh at a million contacts.

    python -m bench.reports [--contacts 1000000] [--days 30] [--agents 200] [--quick]

Starts the embedded database in a temporary directory and generates, from one seed, one
tenant's history as the hub stores it: `--contacts` contacts spread over `--days` days up to
now (busier by day than by night; voice, web chat, email and SMS; 8 queues; 15 % closed by
the bot alone, 10 % of the offered abandoned, 10 % outbound campaign calls; waits, talk and
wrap-up times drawn from skewed distributions; today's last few contacts still waiting or
with an agent), each contact's fact row made by the real `reports.facts.fact_of`, the
rollups the fact updater keeps (`reports.rollups`), the agents with their state-spell
history (`agent_states`: shifts of available / busy / wrap-up / not-ready spells) and the
indexes of hub/db.py. Everything is inserted in large unordered batches.

Then it times, on the real code paths:
- the daily agent report: `reports.historical.historical(by="agent", interval="day")` for
  yesterday (a full day), from the rollups (as the API serves it) and, for comparison,
  straight from the fact rows (`source="facts"`);
- the daily queue report: the same with `by="queue"`, and per 15 minutes;
- the wallboard refresh: `dashboard.wallboard.snapshot` for the tenant, the day's first
  (which loads today) and then the steady refreshes (median of `--refreshes`).
Each timing is the median of `--repeats` runs. Readable figures go to stdout; the last line
is one JSON object with at least `contacts`, `daily_agent_report_s`, `daily_queue_report_s`
and `wallboard_refresh_ms`.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo.errors import BulkWriteError

from bench.common import (
    HubStack,
    clean_up_run_dir,
    log,
    print_report,
    rounded,
    run_to_completion,
)
from dashboard.wallboard import snapshot
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id
from reports import rollups
from reports.facts import fact_of, zone
from reports.historical import ReportQuery, historical

DB_NAME = "bench_reports"
DUPLICATE_KEY = 11000
LOADED = ("contacts", "contact_facts", "fact_rollups", "agent_states")
CHANNELS = (("voice", 0.5), ("webchat", 0.35), ("email", 0.1), ("sms", 0.05))
QUEUES = ("billing", "technical", "sales", "general", "vip", "retention", "orders", "complaints")
NUMBERS = ("+861065550001", "+861065550002", "+861065550003")
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 8, 14, 16, 16, 15, 12, 14, 16, 15, 14, 12, 9, 7, 5, 3, 2, 1]


def pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


def make_contact(
    rng: random.Random, tenant_id: str, opened: datetime, agents: list[Doc], now: datetime
) -> Doc:
    """One contact in the hub's stored shape, finished unless it opened in the last minutes."""
    channel = pick(rng, CHANNELS)
    outbound = channel == "voice" and rng.random() < 0.2
    contact: Doc = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "channel": channel,
        "status": "closed",
        "opened_at": opened,
        "updated_at": opened,
        "queued_at": None,
        "agent_id": None,
        "closed_at": None,
        "disposition": None,
        "customer_id": f"cust-{rng.randrange(200_000)}",
    }
    if channel == "voice":
        contact["to_number"] = rng.choice(NUMBERS)
    if outbound:
        contact.update(direction="outbound", campaign_id=f"camp-{rng.randrange(5)}", from_number=NUMBERS[0])
    bot_only = not outbound and rng.random() < 0.15
    cursor = opened + timedelta(seconds=rng.uniform(5, 90))
    if bot_only:
        contact.update(closed_at=cursor, disposition=None)
    else:
        queue = rng.choice(QUEUES)
        contact.update(
            queue_name=queue, queue_id=f"q-{queue}", queued_at=cursor, skill=queue, reason="handoff"
        )
        wait = rng.expovariate(1 / 25)
        if not outbound and rng.random() < 0.1:
            contact.update(closed_at=cursor + timedelta(seconds=wait), disposition="abandoned")
        else:
            agent = rng.choice(agents)
            assigned = cursor + timedelta(seconds=0 if outbound else wait)
            talk = rng.lognormvariate(math.log(240 if channel == "voice" else 420), 0.6)
            hung_up = assigned + timedelta(seconds=talk)
            contact.update(
                agent_id=agent["_id"],
                agent_name=agent["name"],
                assigned_at=assigned,
                closed_at=hung_up + timedelta(seconds=rng.uniform(5, 60)),
                disposition=rng.choice(("resolved", "resolved", "resolved", "follow_up", "complaint")),
                transfers=[{"reason": "blind"}] if rng.random() < 0.05 else [],
            )
            if channel == "voice":
                contact["agent_hung_up_at"] = hung_up
            if rng.random() < 0.3:
                contact["survey_score"] = rng.choice((3, 4, 4, 5, 5, 5))
    if contact["closed_at"] is not None and contact["closed_at"] > now:  # still going on
        contact.update(status="assigned" if contact.get("agent_id") else "queued", closed_at=None)
        if contact["status"] == "queued":
            contact["disposition"] = None
    contact["updated_at"] = contact["closed_at"] or opened
    return contact


def opened_times(rng: random.Random, count: int, days: int, now: datetime) -> list[datetime]:
    """`count` instants over the last `days` days, busier by day (UTC hours), none in the future."""
    first_day = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    out: list[datetime] = []
    while len(out) < count:
        day = rng.randrange(days)
        hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
        at = first_day + timedelta(days=day, hours=hour, seconds=rng.uniform(0, 3600))
        if at < now:
            out.append(at)
    out.sort()
    return out


def make_spells(rng: random.Random, tenant_id: str, agent_id: str, days: int, now: datetime) -> list[Doc]:
    """A shift a day (8 hours from 08:00 or 12:00 UTC) of state spells, offline in between."""
    spells: list[Doc] = []
    first_day = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(days):
        at = first_day + timedelta(days=day, hours=rng.choice((8, 12)))
        end_of_shift = at + timedelta(hours=8)
        while at < end_of_shift and at < now:
            state = rng.choices(("available", "busy", "wrapup", "not_ready"), (3, 6, 1, 1))[0]
            until = min(at + timedelta(minutes=rng.uniform(3, 30)), end_of_shift)
            spells.append(
                {
                    "_id": new_id(),
                    "tenant_id": tenant_id,
                    "agent_id": agent_id,
                    "state": state,
                    "reason": "break" if state == "not_ready" else None,
                    "start": at,
                    "end": until if until < now else None,
                }
            )
            at = until
    return spells


async def insert(ctx: AppContext, collection: str, docs: list[Doc]) -> None:
    """insert_many that accepts duplicate-key errors only: a batch the driver re-sent after a
    lost connection (retryable writes) finds its first attempt's documents already there."""
    try:
        await ctx.db.db[collection].insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            raise RuntimeError(f"inserting into {collection} failed") from None


async def insert_all(ctx: AppContext, collection: str, docs: list[Doc], batch: int) -> None:
    for i in range(0, len(docs), batch):
        await insert(ctx, collection, docs[i : i + batch])


async def timed(call: Callable[[], Awaitable[Any]], repeats: int) -> tuple[float, Any]:
    """Median seconds of `repeats` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def generate(ctx: AppContext, args: argparse.Namespace, now: datetime) -> tuple[str, dict[str, Any]]:
    """The tenant, its agents and queues, contacts, facts, rollups and spells; insert timings."""
    rng = random.Random(args.seed)
    tenant_id = new_id()
    await ctx.db.tenants.insert_one({"_id": tenant_id, "slug": f"bench-{tenant_id[:8]}", "name": "Bench"})
    agents = [{"_id": new_id(), "tenant_id": tenant_id, "name": f"Agent {i:03d}"} for i in range(args.agents)]
    await ctx.db.queues.insert_many(
        [
            {"_id": f"q-{q}", "tenant_id": tenant_id, "name": q, "service_level": {"threshold_s": 20}}
            for q in QUEUES
        ]
    )
    tz = zone("UTC")
    tenant = {"timezone": "UTC"}
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    delta: rollups.Delta = {}
    done = 0
    insert_s = 0.0
    times = opened_times(rng, args.contacts, args.days, now)
    for i in range(0, len(times), args.batch):
        contacts = [make_contact(rng, tenant_id, at, agents, now) for at in times[i : i + args.batch]]
        facts = [
            fact_of(c, {}, tenant, outcome_class="success" if rng.random() < 0.2 else "declined")
            for c in contacts
        ]
        for fact in facts:
            rollups.merge(delta, rollups.changes(None, fact, tz))
        t0 = time.perf_counter()
        await insert(ctx, "contacts", contacts)
        await insert(ctx, "contact_facts", [{**f, "rev": 1} for f in facts])
        insert_s += time.perf_counter() - t0
        done += len(contacts)
        if done % 100_000 < args.batch or done == len(times):
            log(f"{done} contacts and facts inserted ({time.perf_counter() - started:.0f} s)")
    agent_docs = []
    spells: list[Doc] = []
    for agent in agents:
        history = make_spells(rng, tenant_id, agent["_id"], args.days, now)
        for closed in history:
            if closed["end"] is not None:  # as the fact updater adds them
                rollups.merge(delta, rollups.spell_changes(closed, tz))
                closed["rolled"] = True
        spells += history
        last = history[-1] if history else None
        is_on = last is not None and last["end"] is None
        state = last["state"] if is_on and last else "offline"
        agent_docs.append(
            {
                **agent,
                "state": "available" if state == "busy" else state,
                "not_ready_reason": "break" if state == "not_ready" else None,
                "load": {"voice": 1} if state == "busy" else {},
                "capacity": {"voice": 1, "chat": 3},
                "spell": {"id": last["_id"], "state": state, "reason": last["reason"], "start": last["start"]}
                if is_on and last
                else None,
            }
        )
    zeros = dict.fromkeys(rollups.SUMMED, 0.0)
    rows = [{"_id": ident, **fields, **zeros, **inc} for ident, (fields, inc) in delta.items()]
    await insert_all(ctx, "fact_rollups", rows, args.batch)
    await ctx.db.agents.insert_many(agent_docs)
    await insert_all(ctx, "agent_states", spells, args.batch)
    figures.update(
        generate_s=round(time.perf_counter() - started, 1),
        insert_s=round(insert_s, 1),
        rollup_rows=len(rows),
        agent_state_spells=len(spells),
    )
    log(f"generated in {figures['generate_s']} s: {len(rows)} rollup rows, {len(spells)} spells")
    return tenant_id, figures


async def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    stack = HubStack(root, DB_NAME)
    ok = False
    try:
        await stack.start_database()
        ctx = await stack.open_context()
        for name in LOADED:  # a bulk load goes faster into unindexed collections
            await ctx.db.db[name].drop_indexes()
        now = datetime.now(UTC)
        tenant_id, figures = await generate(ctx, args, now)
        index_started = time.perf_counter()
        await ctx.db.ensure_indexes()
        figures["index_build_s"] = round(time.perf_counter() - index_started, 1)
        log(f"indexes built in {figures['index_build_s']} s")
        yesterday = (now - timedelta(days=1)).date()
        agent_q = ReportQuery(by="agent", interval="day", start=yesterday, end=yesterday)
        queue_q = replace(agent_q, by="queue")
        quarter_q = replace(queue_q, interval="15m")
        agent_s, agent_report = await timed(lambda: historical(ctx, tenant_id, agent_q), args.repeats)
        queue_s, queue_report = await timed(lambda: historical(ctx, tenant_id, queue_q), args.repeats)
        quarter_s, _ = await timed(lambda: historical(ctx, tenant_id, quarter_q), args.repeats)
        facts_agent_q, facts_queue_q = replace(agent_q, source="facts"), replace(queue_q, source="facts")
        agent_facts_s, from_facts = await timed(lambda: historical(ctx, tenant_id, facts_agent_q), 1)
        queue_facts_s, _ = await timed(lambda: historical(ctx, tenant_id, facts_queue_q), 1)
        assert from_facts["totals"] == agent_report["totals"], "rollups and facts disagree"
        first_started = time.perf_counter()
        board = await snapshot(ctx, tenant_id)
        first_ms = (time.perf_counter() - first_started) * 1000
        refresh_s, board = await timed(lambda: snapshot(ctx, tenant_id), args.refreshes)
        day_contacts = agent_report["totals"]["contacts"]
        result = {
            "contacts": args.contacts,
            "days": args.days,
            "agents": args.agents,
            "contacts_in_report_day": day_contacts,
            "daily_agent_report_s": round(agent_s, 3),
            "daily_queue_report_s": round(queue_s, 3),
            "queue_report_15m_s": round(quarter_s, 3),
            "daily_agent_report_from_facts_s": round(agent_facts_s, 3),
            "daily_queue_report_from_facts_s": round(queue_facts_s, 3),
            "wallboard_refresh_ms": rounded(refresh_s * 1000, 1),
            "wallboard_first_ms": rounded(first_ms, 1),
            "agent_rows": len(agent_report["rows"]),
            "queue_rows": len(queue_report["rows"]),
            "wallboard_waiting": board.get("waiting"),
            **figures,
        }
        ok = True
        return result
    finally:
        await stack.stop()
        clean_up_run_dir(root, succeeded=ok, keep=args.keep, contents="database and its log")


def report(result: dict[str, Any]) -> None:
    rows = [
        (
            "contacts (days, agents)",
            f"{result['contacts']} ({result['days']} days, {result['agents']} agents)",
        ),
        ("contacts on the report day", str(result["contacts_in_report_day"])),
        ("daily agent report", f"{result['daily_agent_report_s']} s ({result['agent_rows']} rows)"),
        ("daily queue report", f"{result['daily_queue_report_s']} s ({result['queue_rows']} rows)"),
        ("queue report per 15 min", f"{result['queue_report_15m_s']} s"),
        ("same agent report from facts", f"{result['daily_agent_report_from_facts_s']} s"),
        ("same queue report from facts", f"{result['daily_queue_report_from_facts_s']} s"),
        ("wallboard refresh (median)", f"{result['wallboard_refresh_ms']} ms"),
        ("wallboard first of the day", f"{result['wallboard_first_ms']} ms"),
        ("generation (of it inserts)", f"{result['generate_s']} s ({result['insert_s']} s)"),
        ("index build after the load", f"{result['index_build_s']} s"),
        ("rollup rows / spells", f"{result['rollup_rows']} / {result['agent_state_spells']}"),
    ]
    print_report("Reports benchmark", rows, result, name_width=32)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__.split("\n\n")[0])
    p.add_argument("--contacts", type=int, default=1_000_000, help="contacts to generate (1,000,000)")
    p.add_argument("--days", type=int, default=30, help="days they spread over, up to now (30)")
    p.add_argument("--agents", type=int, default=200, help="agents (200)")
    p.add_argument("--batch", type=int, default=2000, help="documents per insert (2000)")
    p.add_argument("--repeats", type=int, default=3, help="runs per report timing; the median counts (3)")
    p.add_argument("--refreshes", type=int, default=20, help="wallboard refreshes timed (20)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated data (1)")
    p.add_argument("--quick", action="store_true", help="100,000 contacts over 10 days, 50 agents")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (database, log)")
    args = p.parse_args(argv)
    if args.quick:
        args.contacts, args.days, args.agents = 100_000, 10, 50
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report(run_to_completion(lambda: run(args)))


if __name__ == "__main__":
    main()
