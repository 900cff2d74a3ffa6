"""Router benchmark: the live router (`routing.assignment.Router`) against a naive full-scan matcher.

    python -m bench.router [--agents 1000] [--contacts 10000] [--quick]

Starts the embedded database in a temporary directory and seeds, from one seed, the
collections the hub runs on (`agents`, `queues`, `contacts`) in the hub's own format:
agents with mixed skills (levels 1-10), languages, presence states (mostly available;
some busy, in a wrap-up that ends after the run, not ready or offline) and capacities
(voice 1, chat 3, email 5; some 0), and waiting contacts (status `queued`, queued up to
an hour ago) over four queues (one strategy each: longest_idle, best_fit with a skill
relax step after 30 minutes, least_occupied, round_robin) with mixed channels (voice,
webcall, webchat, chat, email: three capacity kinds), priorities 0-2 and languages.
The contacts are inserted as they are stored once queued, so nothing is assigned before
the run; every time comes from the real clock, as in the hub.

1. Router: `Router.assign_waiting(tenant)` (one pass down the queue by priority then
   first come first served against a snapshot of the free agents, offers made until no
   agent has room left) again and again until a sweep offers nothing, or its time budget
   (`--router-seconds`) runs out (the output says which). Nothing accepts the offers,
   so every offer keeps one slot of its agent and the agents fill up to capacity.
   Decision latency is the wall time from the previous successful offer of the same
   sweep (or the start of the sweep, which includes reading the agents and the queue)
   to the end of this successful offer (`Router._offer`, in a subclass that only
   times it): so the time spent on contacts passed over because nobody can take them,
   the agent query, the choice, the slot reservation, the conditional contact update
   and the offer's view all count. The time a sweep spends after its last offer is
   reported apart (`router_tail_s`). Assignments per second is all offers over the
   wall time of the whole drain. The router's database commands are counted and timed
   per command and collection (PyMongo command monitoring: client-side round trips),
   and the CPU time of the database process and of this process is given too.
2. Baseline, on a fresh copy of the same data in another database: for each decision,
   load every queued contact and every agent, order the contacts (`order_waiting`),
   run `choose_agent` over all agents for each contact until one can be served, write
   the agent's slot and the contact's offer back in the live format. It is far slower,
   so it runs under a time budget (`--baseline-seconds`) and a decision cap
   (`--baseline-decisions`) and the output says how far it got; the router's figures
   over its first as many decisions are given beside it for a like-for-like comparison.

At the end the router's data is checked: no agent above capacity on any capacity kind
(`load <= capacity` and `free == capacity - load`), every offered contact offered to
exactly one agent (unless its queue is ring_all, on voice), each agent's load per kind
equal to the contacts offered to them, the offers equal to the ones timed; and how many
contacts left queued some agent could still take (`left_assignable`, from the pure
`eligible` on `agent_profile(doc)` and `Router.waiting_view(doc)`), with the queue
position of the first of them (the router only looks at the head of the queue).

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

from pymongo import monitoring

from bench.common import (
    HubStack,
    clean_up_run_dir,
    log,
    own_cpu_seconds,
    percentile,
    print_report,
    process_cpu_seconds,
    ratio,
    rounded,
    run_to_completion,
)
from hub.context import AppContext
from hub.db import Database, Doc
from hub.settings import Settings
from routing.assignment import QUEUE_ORDER, Router, agent_profile, offered_agents
from routing.model import AgentProfile, EscalationStep, PresenceState, Queue, capacity_channel
from routing.strategies import (
    RING_ALL_CHANNELS,
    choose_agent,
    effective_requirements,
    eligible,
    order_waiting,
)

TENANT = "bench"
CAPACITY = {"voice": 1, "chat": 3, "email": 5}  # per capacity kind
CHANNEL_WEIGHTS = {"voice": 0.3, "webcall": 0.1, "webchat": 0.3, "chat": 0.05, "email": 0.25}
STATE_WEIGHTS: dict[PresenceState, float] = {
    "available": 0.85,
    "busy": 0.03,
    "wrapup": 0.03,
    "not_ready": 0.05,
    "offline": 0.04,
}
QUEUES = [
    Queue(id="billing", tenant_id=TENANT, name="Billing", skills={"billing": 3}, strategy="longest_idle"),
    Queue(
        id="technical",
        tenant_id=TENANT,
        name="Technical",
        skills={"technical": 5},
        strategy="best_fit",
        escalation=[EscalationStep(after_s=1800, action="relax_skill_levels", relax_by=2)],
    ),
    Queue(id="sales", tenant_id=TENANT, name="Sales", skills={"sales": 2}, strategy="least_occupied"),
    Queue(id="support", tenant_id=TENANT, name="Support", skills={"support": 1}, strategy="round_robin"),
]
SKILLS = [next(iter(q.skills)) for q in QUEUES]
ROUTER_DB, NAIVE_DB = "router_bench", "router_bench_naive"


# -- data -----------------------------------------------------------------------------------------


def make_agents(n: int, rng: random.Random, now: datetime) -> list[Doc]:
    """Agent documents as `routing.presence` keeps them, nothing held yet."""
    agents = []
    states, weights = list(STATE_WEIGHTS), list(STATE_WEIGHTS.values())
    for i in range(n):
        capacity = {kind: (0 if rng.random() < 0.15 else cap) for kind, cap in CAPACITY.items()}
        state = rng.choices(states, weights)[0]
        agents.append(
            {
                "_id": f"a{i:05}",
                "tenant_id": TENANT,
                "name": f"Agent {i}",
                "skills": {s: rng.randint(1, 10) for s in rng.sample(SKILLS, rng.randint(1, 3))},
                "languages": ["en", "es"] if rng.random() < 0.2 else ["en"],
                "capacity": capacity,
                "load": {kind: 0 for kind in capacity},
                "free": dict(capacity),
                "state": state,
                "not_ready_reason": "break" if state == "not_ready" else None,
                # a wrap-up that outlasts the run: such an agent takes nothing
                "wrapup_until": now + timedelta(hours=6) if state == "wrapup" else None,
                "idle_since": now - timedelta(seconds=rng.randint(0, 3600)),
                "last_assigned_at": None,
                "slots_changed_at": now,
            }
        )
    return agents


def make_contacts(n: int, rng: random.Random, now: datetime) -> list[Doc]:
    """Contact documents as `Router.enqueue` leaves them (status queued), not yet offered."""
    contacts = []
    channels, weights = list(CHANNEL_WEIGHTS), list(CHANNEL_WEIGHTS.values())
    for i in range(n):
        queue = rng.choice(QUEUES)
        queued_at = now - timedelta(seconds=rng.uniform(0, 3600))
        doc: Doc = {
            "_id": f"c{i:06}",
            "tenant_id": TENANT,
            "channel": rng.choices(channels, weights)[0],
            "status": "queued",
            "opened_at": queued_at - timedelta(seconds=rng.uniform(5, 120)),
            "queued_at": queued_at,
            "updated_at": queued_at,
            "priority": rng.choices([0, 1, 2], [0.8, 0.15, 0.05])[0],
            "queue_id": queue.id,
            "queue_name": queue.name,
            "queue_path": [queue.id],
            "skill": next(iter(queue.skills)),
            "reason": "bench",
            "declines": [],
            "offer": None,
            "escalation_offers": [],
            "direct_agent_id": None,
            "customer_id": None,
            "next_seq": 0,
        }
        if rng.random() < 0.1:
            doc["language"] = "es"
        contacts.append(doc)
    return contacts


async def seed(ctx: AppContext, agents: list[Doc], contacts: list[Doc]) -> None:
    await ctx.db.ensure_indexes()
    await ctx.db.queues.insert_many([q.to_doc() for q in QUEUES])
    for docs, name in ((agents, "agents"), (contacts, "contacts")):
        for start in range(0, len(docs), 1000):
            await ctx.db.db[name].insert_many([dict(d) for d in docs[start : start + 1000]])


# -- measuring ------------------------------------------------------------------------------------


class BudgetSpent(Exception):
    """Raised right after a completed offer once the router's time budget is spent."""


class TimedRouter(Router):
    """The live router, timed: nothing about a decision is changed."""

    def __init__(self, ctx: AppContext, budget_s: float) -> None:
        super().__init__(ctx)
        self.budget_s = budget_s
        self.deadline = float("inf")
        self.latencies: list[float] = []  # ms per successful offer
        self.ringing: list[int] = []  # agents per offer (more than one only with ring_all)
        self.sweeps = 0
        self.tail_s = 0.0  # time within sweeps after their last offer
        self._mark = 0.0

    def start_clock(self) -> None:
        self.deadline = time.perf_counter() + self.budget_s

    async def _assign_tenant(self, tenant_id: str, escalate: bool) -> int:
        self.sweeps += 1
        self._mark = time.perf_counter()
        try:
            return await super()._assign_tenant(tenant_id, escalate)
        finally:
            self.tail_s += time.perf_counter() - self._mark

    async def _offer(self, doc: Doc, agents: list[AgentProfile], *, ring_all: bool) -> bool:
        offered = await super()._offer(doc, agents, ring_all=ring_all)
        if offered:
            now = time.perf_counter()
            self.latencies.append((now - self._mark) * 1000)
            self.ringing.append(len(agents))
            self._mark = now
            if len(self.latencies) % 1000 == 0:
                log(f"router: {len(self.latencies)} offers, sweep {self.sweeps}")
            if now > self.deadline:
                raise BudgetSpent
        return offered


class CommandTimes(monitoring.CommandListener):
    """Database commands of one database, counted and timed per command and collection."""

    def __init__(self, db_name: str) -> None:
        self.db_name = db_name
        self.enabled = False
        self.calls: Counter[str] = Counter()
        self.micros: Counter[str] = Counter()
        self._pending: dict[tuple[Any, int], str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.enabled and event.database_name == self.db_name:
            name = event.command_name
            collection = event.command.get("collection" if name == "getMore" else name)
            self._pending[(event.connection_id, event.request_id)] = f"{name} {collection}"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        key = self._pending.pop((event.connection_id, event.request_id), None)
        if key is not None:
            self.calls[key] += 1
            self.micros[key] += event.duration_micros

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._pending.pop((event.connection_id, event.request_id), None)

    def breakdown(self, offers: int) -> dict[str, dict[str, float | None]]:
        """Per command and collection, most time first: calls, total ms, ms per call and per offer."""
        out: dict[str, dict[str, float | None]] = {}
        for key, micros in self.micros.most_common():
            ms = micros / 1000
            out[key] = {
                "calls": self.calls[key],
                "total_ms": round(ms),
                "ms_per_call": round(ms / self.calls[key], 3),
                "ms_per_offer": rounded(ms / offers if offers else None, 3),
            }
        return out


# -- the two matchers -----------------------------------------------------------------------------


async def run_router(router: TimedRouter) -> tuple[float, bool]:
    """Sweep until a sweep offers nothing (or the budget is spent); elapsed, finished."""
    started = time.perf_counter()
    router.start_clock()
    try:
        while await router.assign_waiting(TENANT) > 0:
            if time.perf_counter() > router.deadline:
                return time.perf_counter() - started, False
    except BudgetSpent:
        return time.perf_counter() - started, False
    return time.perf_counter() - started, True


async def naive_decision(ctx: AppContext, view: Router, queues: dict[str, Queue], rr: dict[str, str]) -> bool:
    """One full-scan decision: load everything, choose in Python, write back in the live format."""
    now = datetime.now(UTC)
    docs = {d["_id"]: d async for d in ctx.db.contacts.find({"tenant_id": TENANT, "status": "queued"})}
    agents = [agent_profile(d) async for d in ctx.db.agents.find({"tenant_id": TENANT})]
    for contact in order_waiting((view.waiting_view(d) for d in docs.values()), now):
        queue = Router.queue_for(docs[contact.id], queues)
        choice = choose_agent(queue.strategy, agents, contact, queue, now, rr)
        if not choice.agents:
            continue
        rr.update(choice.rr_state)
        ring_all = queue.strategy == "ring_all" and contact.channel in RING_ALL_CHANNELS
        chosen = list(choice.agents) if ring_all else list(choice.agents[:1])
        kind = contact.channel  # the capacity kind
        for agent in chosen:
            await ctx.db.agents.update_one(
                {"_id": agent.id},
                {
                    "$inc": {f"free.{kind}": -1, f"load.{kind}": 1},
                    "$set": {"last_assigned_at": now, "idle_since": now, "slots_changed_at": now},
                },
            )
        offer = {
            "agent_id": chosen[0].id,
            "agent_ids": [a.id for a in chosen],
            "agent_name": chosen[0].name,
            "expires_at": now + timedelta(seconds=ctx.settings.offer_timeout_s),
            "ring_all": ring_all,
        }
        await ctx.db.contacts.update_one(
            {"_id": contact.id}, {"$set": {"status": "offered", "offer": offer, "updated_at": now}}
        )
        return True
    return False


async def run_naive(ctx: AppContext, budget_s: float, max_decisions: int) -> tuple[list[float], float, bool]:
    """Run the baseline until done, `budget_s` or `max_decisions`; latencies, elapsed, finished."""
    view = Router(ctx)
    queues = await view.queues(TENANT)
    rr: dict[str, str] = {}
    latencies: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < budget_s and len(latencies) < max_decisions:
        t0 = time.perf_counter()
        if not await naive_decision(ctx, view, queues, rr):
            return latencies, time.perf_counter() - started, True
        latencies.append((time.perf_counter() - t0) * 1000)
        if len(latencies) % 50 == 0:
            log(f"baseline: {len(latencies)} assignments")
    return latencies, time.perf_counter() - started, False


# -- checks ---------------------------------------------------------------------------------------


async def check(router: Router, offers: int) -> dict[str, Any]:
    """Capacity, single offers and slot counts from the stored data; contacts someone could
    still take, and the queue position of the first of them."""
    db, now = router.ctx.db, datetime.now(UTC)
    queues = await router.queues(TENANT)
    agent_docs = [d async for d in db.agents.find({"tenant_id": TENANT})]
    offered = [d async for d in db.contacts.find({"tenant_id": TENANT, "status": "offered"})]
    held: Counter[tuple[str, str]] = Counter()
    not_single = 0
    for c in offered:
        ids = offered_agents(c)
        ring_all = (
            Router.queue_for(c, queues).strategy == "ring_all"
            and capacity_channel(c["channel"]) in RING_ALL_CHANNELS
        )
        if not ids or len(set(ids)) != len(ids) or (len(ids) != 1 and not ring_all):
            not_single += 1
        for agent_id in set(ids):
            held[(agent_id, capacity_channel(c["channel"]))] += 1
    over = inconsistent = 0
    for d in agent_docs:
        capacity, load, free = d.get("capacity") or {}, d.get("load") or {}, d.get("free") or {}
        kinds = set(capacity) | set(load) | {k for (a, k) in held if a == d["_id"]}
        for kind in kinds:
            cap, n = capacity.get(kind, 0), load.get(kind, 0)
            over += n > cap
            inconsistent += n > cap or free.get(kind, 0) != cap - n or n != held[(d["_id"], kind)]

    agents = [agent_profile(d) for d in agent_docs]
    cursor = db.contacts.find({"tenant_id": TENANT, "status": "queued"}).sort(QUEUE_ORDER)
    waiting = [d async for d in cursor]
    verdicts: dict[tuple[Any, ...], bool] = {}
    assignable: Counter[str] = Counter()
    first_rank = None
    for rank, doc in enumerate(waiting):
        contact, queue = router.waiting_view(doc), Router.queue_for(doc, queues)
        reqs = effective_requirements(queue, contact, contact.waited_s(now))
        shape = (queue.id, contact.channel, contact.language, tuple(sorted(reqs.skills.items())))
        if shape not in verdicts:  # every contact of one shape fits the same agents here
            verdicts[shape] = any(eligible(a, contact, queue, now, reqs) for a in agents)
        if verdicts[shape]:
            assignable[contact.channel] += 1
            first_rank = rank if first_rank is None else first_rank
    return {
        "offered": len(offered),
        "offered_mismatch": abs(len(offered) - offers),
        "offers_not_single": not_single,
        "agent_channels_over_capacity": over,
        "agent_channels_inconsistent": inconsistent,
        "left_waiting": len(waiting),
        "left_assignable": sum(assignable.values()),
        "left_assignable_by_kind": dict(sorted(assignable.items())),
        "first_assignable_queue_position": None if first_rank is None else first_rank + 1,
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
    stack = HubStack(root, ROUTER_DB)
    ok = False
    naive_ctx: AppContext | None = None
    commands = CommandTimes(ROUTER_DB)
    monitoring.register(commands)  # before the clients are made: they copy the listeners
    try:
        mongo = await stack.start_database()
        assert mongo.process is not None
        ctx = await stack.open_context()
        naive_ctx = AppContext(
            settings=Settings(secret=stack.secret, db_name=NAIVE_DB), db=Database(mongo.uri, NAIVE_DB)
        )
        rng, now = random.Random(args.seed), datetime.now(UTC)
        agents, contacts = make_agents(args.agents, rng, now), make_contacts(args.contacts, rng, now)
        log(f"seeding {len(agents)} agents and {len(contacts)} contacts, twice")
        for c in (ctx, naive_ctx):
            await seed(c, agents, contacts)

        log(f"router: draining the queues, budget {args.router_seconds} s")
        router = TimedRouter(ctx, args.router_seconds)
        cpu0, db_cpu0 = own_cpu_seconds(), process_cpu_seconds(mongo.process.pid)
        commands.enabled = True
        router_s, router_done = await run_router(router)
        commands.enabled = False
        client_cpu = own_cpu_seconds() - cpu0
        db_cpu = process_cpu_seconds(mongo.process.pid) - db_cpu0
        router_lat = router.latencies
        routed = summary(router_lat, router_s)
        log(f"router: {routed} ({'finished' if router_done else 'stopped by its budget'})")
        offers = len(router_lat)
        db_breakdown = commands.breakdown(offers)
        db_calls, db_ms = sum(commands.calls.values()), sum(commands.micros.values()) / 1000
        checks = await check(router, offers)
        log(f"checks: {checks}")

        log(f"baseline: full-scan matcher, budget {args.baseline_seconds} s")
        naive_lat, naive_s, naive_done = await run_naive(
            naive_ctx, args.baseline_seconds, args.baseline_decisions
        )
        naive = summary(naive_lat, naive_s)
        log(f"baseline: {naive} ({'finished' if naive_done else 'stopped by its budget'})")
        first_n = router_lat[: len(naive_lat)]

        result: dict[str, Any] = {
            "agents": len(agents),
            "contacts": len(contacts),
            "assignments": routed["assignments"],
            "assign_per_s": routed["assign_per_s"],
            "p50_decision_ms": routed["p50_ms"],
            "p90_decision_ms": rounded(percentile(router_lat, 90), 2),
            "p99_decision_ms": routed["p99_ms"],
            "max_decision_ms": rounded(max(router_lat, default=None), 2),
            "router_elapsed_s": routed["elapsed_s"],
            "router_finished": router_done,
            "sweeps": router.sweeps,
            "router_tail_s": round(router.tail_s, 2),
            "ring_all_offers": sum(1 for n in router.ringing if n > 1),
            "router_db_calls_per_offer": rounded(db_calls / offers if offers else None, 2),
            "router_db_ms_per_offer": rounded(db_ms / offers if offers else None, 2),
            "router_db_share": rounded(db_ms / 1000 / router_s if router_s else None, 2),
            "router_db_cpu_s": round(db_cpu, 1),
            "router_client_cpu_s": round(client_cpu, 1),
            "router_db_breakdown": db_breakdown,
            "baseline_assignments": naive["assignments"],
            "baseline_finished": naive_done,
            "baseline_elapsed_s": naive["elapsed_s"],
            "baseline_assign_per_s": naive["assign_per_s"],
            "baseline_p50_decision_ms": naive["p50_ms"],
            "baseline_p99_decision_ms": naive["p99_ms"],
            "router_first_n_p50_decision_ms": rounded(percentile(first_n, 50), 2),
            "router_first_n_p99_decision_ms": rounded(percentile(first_n, 99), 2),
            "speedup_p50": ratio(naive["p50_ms"], rounded(percentile(first_n, 50), 2)),
            **checks,
            "total_s": round(time.perf_counter() - run_started, 1),
        }
        bad = ("offered_mismatch", "offers_not_single", "agent_channels_inconsistent")
        if any(checks[k] for k in bad):
            raise RuntimeError(f"the router's data is inconsistent: {checks}")
        ok = True
        return result
    finally:
        commands.enabled = False
        if naive_ctx is not None:
            await naive_ctx.db.close()
        log("stopping the database")
        await stack.stop()
        clean_up_run_dir(root, succeeded=ok, keep=args.keep, contents="database and its log")


def report(result: dict[str, Any]) -> None:
    r = result
    n = r["baseline_assignments"]
    top = list(r["router_db_breakdown"].items())[:4]
    rows = [
        (
            "data",
            f"{r['agents']} agents, {r['contacts']} queued contacts, 4 queues, 3 capacity kinds",
        ),
        (
            "router",
            f"{r['assignments']} offers in {r['router_elapsed_s']} s, {r['sweeps']} sweeps"
            f"{'' if r['router_finished'] else ' (stopped by its time budget)'}: {r['assign_per_s']} per s; "
            f"decision p50 {r['p50_decision_ms']} ms, p90 {r['p90_decision_ms']} ms, "
            f"p99 {r['p99_decision_ms']} ms, max {r['max_decision_ms']} ms; "
            f"{r['router_tail_s']} s after the sweeps' last offers",
        ),
        (
            "router database",
            f"{r['router_db_calls_per_offer']} commands, {r['router_db_ms_per_offer']} ms per offer "
            f"({r['router_db_share']} of the wall time); CPU: database {r['router_db_cpu_s']} s, "
            f"this process {r['router_client_cpu_s']} s",
        ),
        (
            "router, most database time",
            "; ".join(f"{k}: {v['calls']} x {v['ms_per_call']} ms" for k, v in top),
        ),
        (
            "naive full scan",
            f"{n} assignments in {r['baseline_elapsed_s']} s"
            f"{'' if r['baseline_finished'] else ' (stopped by its time budget)'}: "
            f"{r['baseline_assign_per_s']} per s; decision p50 {r['baseline_p50_decision_ms']} ms, "
            f"p99 {r['baseline_p99_decision_ms']} ms",
        ),
        (
            f"router, first {n} decisions",
            f"p50 {r['router_first_n_p50_decision_ms']} ms, p99 {r['router_first_n_p99_decision_ms']} ms "
            f"(naive / router p50: {r['speedup_p50']}x)",
        ),
        (
            "checks",
            f"{r['offered']} offered; over capacity {r['agent_channels_over_capacity']}, "
            f"inconsistent {r['agent_channels_inconsistent']}, not single {r['offers_not_single']}; "
            f"{r['left_waiting']} left waiting, {r['left_assignable']} of them assignable "
            f"{r['left_assignable_by_kind']}, the first at queue position "
            f"{r['first_assignable_queue_position']}",
        ),
    ]
    print_report(f"bench.router ({r['total_s']} s)", rows, result, name_width=28, console_width=160)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.router", description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=1000, help="agents (1000)")
    p.add_argument("--contacts", type=int, default=10000, help="queued contacts (10000)")
    p.add_argument(
        "--quick", action="store_true", help="a small run: 100 agents, 1000 contacts, 10 s baseline"
    )
    p.add_argument(
        "--router-seconds",
        "--engine-seconds",
        dest="router_seconds",
        type=float,
        default=300.0,
        help="time budget of the router's drain (300)",
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
        args.agents, args.contacts, args.baseline_seconds, args.router_seconds = 100, 1000, 10.0, 120.0
    if args.agents < 1 or args.contacts < 1:
        p.error("--agents and --contacts must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report(run_to_completion(lambda: run(args)))


if __name__ == "__main__":
    main()
