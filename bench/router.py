"""Router benchmark: the MongoDB-backed assignment engine against a naive full-scan matcher.

    python -m bench.router [--agents 1000] [--contacts 10000] [--quick]

Starts the embedded database in a temporary directory and seeds, from one seed, agents
with mixed skills (levels 1-10), languages, presence states and capacities (voice 1,
web chat 3, email 5, some without a channel), and waiting contacts over four queues
(one strategy each) with mixed channels, priorities, extra skill levels and languages.

1. Engine: `routing.engine.RoutingEngine.assign_next` over the queues in turn until a
   whole round assigns nothing, or its time budget (`--engine-seconds`) runs out (the
   output says which: on a loaded 2-core machine the full 10,000 take longer). Decision
   latency is one successful `assign_next` call (its reads, the choice and both
   conditional writes); assignments per second is the whole drain, end to end.
2. Baseline, on a fresh copy of the same data in another database: for each decision,
   load every waiting contact and every agent, order the contacts, run the same
   `choose_agent` over all agents for each contact until one can be served, write the
   agent's load and the contact's status back. It is far slower, so it runs under a time
   budget (`--baseline-seconds`) and the output says how far it got; the engine's figures
   over its first as many decisions are given beside it for a like-for-like comparison.

At the end the engine's data is checked: no agent above capacity on any channel, every
offered contact offered to one agent, and how many contacts left waiting some agent
could still take (`left_assignable`, from the pure `eligible`).

Readable figures go to stdout; its last line is one JSON object.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    HubStack,
    clean_up_run_dir,
    log,
    percentile,
    print_report,
    ratio,
    rounded,
    run_to_completion,
)
from hub.db import Database
from routing.engine import (
    AGENTS,
    CONTACTS,
    RoutingEngine,
    agent_doc,
    agent_from_doc,
    contact_doc,
    contact_from_doc,
)
from routing.model import AgentProfile, PresenceState, Queue, WaitingContact
from routing.strategies import choose_agent, eligible, order_waiting

TENANT = "bench"
NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
CAPACITY = {"voice": 1, "webchat": 3, "email": 5}
CHANNEL_WEIGHTS = {"voice": 0.4, "webchat": 0.35, "email": 0.25}
QUEUES = [
    Queue(id="billing", tenant_id=TENANT, name="Billing", skills={"billing": 3}, strategy="longest_idle"),
    Queue(id="technical", tenant_id=TENANT, name="Technical", skills={"technical": 5}, strategy="best_fit"),
    Queue(id="sales", tenant_id=TENANT, name="Sales", skills={"sales": 2}, strategy="least_occupied"),
    Queue(id="support", tenant_id=TENANT, name="Support", skills={"support": 1}, strategy="round_robin"),
]
SKILLS = [q.id for q in QUEUES]


# -- data -----------------------------------------------------------------------------------------


def make_agents(n: int, rng: random.Random) -> list[AgentProfile]:
    agents = []
    for i in range(n):
        skills = {s: rng.randint(1, 10) for s in rng.sample(SKILLS, rng.randint(1, 3))}
        capacity = {ch: (0 if rng.random() < 0.15 else cap) for ch, cap in CAPACITY.items()}
        states: list[PresenceState] = ["available", "not_ready", "offline"]
        state = rng.choices(states, [0.9, 0.05, 0.05])[0]
        agents.append(
            AgentProfile(
                id=f"a{i:05}",
                tenant_id=TENANT,
                name=f"Agent {i}",
                skills=skills,
                languages=["en", "es"] if rng.random() < 0.2 else ["en"],
                capacity=capacity,
                state=state,
                not_ready_reason="break" if state == "not_ready" else None,
                idle_since=NOW - timedelta(seconds=rng.randint(0, 3600)),
            )
        )
    return agents


def make_contacts(n: int, rng: random.Random) -> list[WaitingContact]:
    contacts = []
    channels, weights = list(CHANNEL_WEIGHTS), list(CHANNEL_WEIGHTS.values())
    for i in range(n):
        queue = rng.choice(QUEUES)
        (skill, level) = next(iter(queue.skills.items()))
        extra = {skill: min(10, level + rng.randint(1, 3))} if rng.random() < 0.15 else {}
        contacts.append(
            WaitingContact(
                id=f"c{i:06}",
                tenant_id=TENANT,
                channel=rng.choices(channels, weights)[0],
                queue_id=queue.id,
                priority=rng.choices([0, 1, 2], [0.8, 0.15, 0.05])[0],
                enqueued_at=NOW - timedelta(seconds=rng.uniform(0, 3600)),
                skills=extra,
                language="es" if rng.random() < 0.1 else None,
            )
        )
    return contacts


async def seed(db: Database, agents: list[AgentProfile], contacts: list[WaitingContact]) -> None:
    engine = RoutingEngine(db)
    await engine.ensure_indexes()
    for docs, name in (
        ([agent_doc(a) for a in agents], AGENTS),
        ([contact_doc(c) for c in contacts], CONTACTS),
    ):
        for start in range(0, len(docs), 1000):
            await db.db[name].insert_many(docs[start : start + 1000])


# -- the two matchers -----------------------------------------------------------------------------


async def run_engine(db: Database, budget_s: float) -> tuple[list[float], float, bool]:
    """Drain the queues with the engine (or stop after `budget_s`); latencies (ms), elapsed, finished."""
    engine = RoutingEngine(db, lambda: NOW)
    latencies: list[float] = []
    started = time.perf_counter()
    progress = True
    while progress:
        progress = False
        if time.perf_counter() - started > budget_s:
            return latencies, time.perf_counter() - started, False
        for queue in QUEUES:
            t0 = time.perf_counter()
            if await engine.assign_next(TENANT, queue) is not None:
                latencies.append((time.perf_counter() - t0) * 1000)
                progress = True
                if len(latencies) % 1000 == 0:
                    log(f"engine: {len(latencies)} assignments")
    return latencies, time.perf_counter() - started, True


async def naive_decision(db: Database, queues: dict[str, Queue], rr: dict[str, str]) -> bool:
    """One full-scan decision: load everything, choose in Python, write back."""
    contacts = [
        contact_from_doc(d) async for d in db.db[CONTACTS].find({"tenant_id": TENANT, "status": "waiting"})
    ]
    agents = [agent_from_doc(d) async for d in db.db[AGENTS].find({"tenant_id": TENANT})]
    for contact in order_waiting(contacts, NOW):
        queue = queues[contact.queue_id]
        choice = choose_agent(queue.strategy, agents, contact, queue, NOW, rr)
        if choice.agent is None:
            continue
        rr.update(choice.rr_state)
        ch = contact.channel
        await db.db[AGENTS].update_one(
            {"_id": choice.agent.id},
            {
                "$inc": {f"free.{ch}": -1, f"load.{ch}": 1},
                "$set": {"last_assigned_at": NOW, "idle_since": NOW},
            },
        )
        await db.db[CONTACTS].update_one(
            {"_id": contact.id},
            {"$set": {"status": "offered", "agent_id": choice.agent.id, "offered_at": NOW}},
        )
        return True
    return False


async def run_naive(db: Database, budget_s: float, max_decisions: int) -> tuple[list[float], float, bool]:
    """Run the baseline until done, `budget_s` or `max_decisions`; latencies, elapsed, finished."""
    queues = {q.id: q for q in QUEUES}
    rr: dict[str, str] = {}
    latencies: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < budget_s and len(latencies) < max_decisions:
        t0 = time.perf_counter()
        if not await naive_decision(db, queues, rr):
            return latencies, time.perf_counter() - started, True
        latencies.append((time.perf_counter() - t0) * 1000)
        if len(latencies) % 50 == 0:
            log(f"baseline: {len(latencies)} assignments")
    return latencies, time.perf_counter() - started, False


# -- checks ---------------------------------------------------------------------------------------


async def check(db: Database, assignments: int) -> dict[str, int]:
    """Capacity and single offers from the stored data; contacts someone could still take."""
    agents = [agent_from_doc(d) async for d in db.db[AGENTS].find({"tenant_id": TENANT})]
    raw_free = {d["_id"]: d["free"] async for d in db.db[AGENTS].find({"tenant_id": TENANT}, {"free": 1})}
    offered = [d async for d in db.db[CONTACTS].find({"tenant_id": TENANT, "status": "offered"})]
    held = Counter((d["agent_id"], d["channel"]) for d in offered)
    over = sum(
        1
        for a in agents
        for ch, cap in a.capacity.items()
        if a.load.get(ch, 0) > cap
        or a.load.get(ch, 0) != held[(a.id, ch)]
        or raw_free[a.id][ch] != a.free(ch)
    )
    waiting = [
        contact_from_doc(d) async for d in db.db[CONTACTS].find({"tenant_id": TENANT, "status": "waiting"})
    ]
    shapes: dict[tuple[Any, ...], list[WaitingContact]] = {}
    for c in waiting:
        shapes.setdefault((c.queue_id, c.channel, tuple(sorted(c.skills.items())), c.language), []).append(c)
    queues = {q.id: q for q in QUEUES}
    left_assignable = sum(
        len(group)
        for group in shapes.values()
        if any(eligible(a, group[0], queues[group[0].queue_id], NOW) for a in agents)
    )
    return {
        "offered": len(offered),
        "offered_mismatch": abs(len(offered) - assignments),
        "agent_channels_inconsistent": over,
        "left_waiting": len(waiting),
        "left_assignable": left_assignable,
    }


# -- the run --------------------------------------------------------------------------------------


def summary(latencies: list[float], elapsed: float) -> dict[str, Any]:
    return {
        "assignments": len(latencies),
        "elapsed_s": round(elapsed, 2),
        "assign_per_s": rounded(len(latencies) / elapsed if elapsed else None, 1),
        "p50_ms": rounded(percentile(latencies, 50), 2),
        "p99_ms": rounded(percentile(latencies, 99), 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    run_started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench-router-"))
    stack = HubStack(root, "router_bench")
    ok = False
    dbs: list[Database] = []
    try:
        mongo = await stack.start_database()
        rng = random.Random(args.seed)
        agents, contacts = make_agents(args.agents, rng), make_contacts(args.contacts, rng)
        engine_db, naive_db = Database(mongo.uri, "router_bench"), Database(mongo.uri, "router_bench_naive")
        dbs += [engine_db, naive_db]
        log(f"seeding {len(agents)} agents and {len(contacts)} contacts, twice")
        for db in dbs:
            await seed(db, agents, contacts)

        log("engine: draining the queues")
        engine_lat, engine_s, engine_done = await run_engine(engine_db, args.engine_seconds)
        engine = summary(engine_lat, engine_s)
        log(f"engine: {engine} ({'finished' if engine_done else 'stopped by its budget'})")
        checks = await check(engine_db, len(engine_lat))
        log(f"checks: {checks}")

        log(f"baseline: full-scan matcher, budget {args.baseline_seconds} s")
        naive_lat, naive_s, naive_done = await run_naive(
            naive_db, args.baseline_seconds, args.baseline_decisions
        )
        naive = summary(naive_lat, naive_s)
        log(f"baseline: {naive} ({'finished' if naive_done else 'stopped by its budget'})")
        first_n = engine_lat[: len(naive_lat)]

        result: dict[str, Any] = {
            "agents": len(agents),
            "contacts": len(contacts),
            "assignments": engine["assignments"],
            "assign_per_s": engine["assign_per_s"],
            "p50_decision_ms": engine["p50_ms"],
            "p99_decision_ms": engine["p99_ms"],
            "engine_elapsed_s": engine["elapsed_s"],
            "engine_finished": engine_done,
            "baseline_assignments": naive["assignments"],
            "baseline_finished": naive_done,
            "baseline_elapsed_s": naive["elapsed_s"],
            "baseline_assign_per_s": naive["assign_per_s"],
            "baseline_p50_decision_ms": naive["p50_ms"],
            "baseline_p99_decision_ms": naive["p99_ms"],
            "engine_first_n_p50_decision_ms": rounded(percentile(first_n, 50), 2),
            "engine_first_n_p99_decision_ms": rounded(percentile(first_n, 99), 2),
            "speedup_p50": ratio(naive["p50_ms"], rounded(percentile(first_n, 50), 2)),
            **checks,
            "total_s": round(time.perf_counter() - run_started, 1),
        }
        if checks["offered_mismatch"] or checks["agent_channels_inconsistent"]:
            raise RuntimeError(f"the engine's data is inconsistent: {checks}")
        ok = True
        return result
    finally:
        for db in dbs:
            await db.close()
        log("stopping the database")
        await stack.stop()
        clean_up_run_dir(root, succeeded=ok, keep=args.keep, contents="database and its log")


def report(result: dict[str, Any]) -> None:
    r = result
    n = r["baseline_assignments"]
    rows = [
        ("data", f"{r['agents']} agents, {r['contacts']} waiting contacts, 4 queues, 3 channels"),
        (
            "engine",
            f"{r['assignments']} assignments in {r['engine_elapsed_s']} s"
            f"{'' if r['engine_finished'] else ' (stopped by its time budget)'}: {r['assign_per_s']} per s; "
            f"decision p50 {r['p50_decision_ms']} ms, p99 {r['p99_decision_ms']} ms",
        ),
        (
            "naive full scan",
            f"{n} assignments in {r['baseline_elapsed_s']} s"
            f"{'' if r['baseline_finished'] else ' (stopped by its time budget)'}: "
            f"{r['baseline_assign_per_s']} per s; decision p50 {r['baseline_p50_decision_ms']} ms, "
            f"p99 {r['baseline_p99_decision_ms']} ms",
        ),
        (
            f"engine, first {n} decisions",
            f"p50 {r['engine_first_n_p50_decision_ms']} ms, p99 {r['engine_first_n_p99_decision_ms']} ms "
            f"(naive / engine p50: {r['speedup_p50']}x)",
        ),
        (
            "checks",
            f"{r['offered']} offered, over capacity or inconsistent: {r['agent_channels_inconsistent']}; "
            f"{r['left_waiting']} left waiting, {r['left_assignable']} of them assignable",
        ),
    ]
    print_report(f"bench.router ({r['total_s']} s)", rows, result, name_width=28, console_width=160)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.router", description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=1000, help="agents (1000)")
    p.add_argument("--contacts", type=int, default=10000, help="waiting contacts (10000)")
    p.add_argument(
        "--quick", action="store_true", help="a small run: 100 agents, 1000 contacts, 10 s baseline"
    )
    p.add_argument(
        "--engine-seconds", type=float, default=150.0, help="time budget of the engine's drain (150)"
    )
    p.add_argument(
        "--baseline-seconds", type=float, default=30.0, help="time budget of the naive matcher (30)"
    )
    p.add_argument(
        "--baseline-decisions", type=int, default=1000, help="at most this many naive decisions (1000)"
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the generated data (1)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (database, log)")
    args = p.parse_args(argv)
    if args.quick:
        args.agents, args.contacts, args.baseline_seconds, args.engine_seconds = 100, 1000, 10.0, 120.0
    if args.agents < 1 or args.contacts < 1:
        p.error("--agents and --contacts must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report(run_to_completion(lambda: run(args)))


if __name__ == "__main__":
    main()
