"""Dialer benchmark: a discrete-event simulation of an outbound floor under four pacing policies.

    python -m bench.dialer [--hours 8] [--quick] [--seed 1] [--policies predictive,progressive]

Per scenario (agents, answer rate) and policy (`predictive`, `ratio_100`, `ratio_200`,
`progressive`) it simulates one shift: every second the dialer reads the live figures a real
dialer has (free agents; how long each agent on a call has talked and how much wrap-up each
agent in wrap-up has left; the ringing calls and how long they have rung; calls answered and
waiting; answer and machine rates, ring times and handle times measured so far; the
campaign's answered and abandoned counts) and places `routing.pacing.calls_to_place(...)`
calls: the very function the hub's dialer calls, not a copy.

A placed call is answered with the scenario's answer rate after a lognormal ring time (mean
9 s, sd 4 s), else it rings out at the 25 s ring timeout, or (15 % of those) fails fast as
busy after 2-6 s. An answer is a machine with the machine rate (20 % of answers), detected
after ~3 s and dropped, never given to an agent. A person is connected at once to the
longest-idle free agent, or waits; with no agent within 2 s the call is abandoned. Talk
times are lognormal (mean 120 s, sd 90 s), then a wrap-up of 5-15 s. Rates and times the
dialer sees are measured in the run itself (rates over calls placed more than a ring timeout
ago; the handle-time mean with `routing.pacing.censored_mean`), so the predictive policy
starts with no history. Everything is seeded (`random.Random`), event-driven (a heapq of
events) and in memory.

Figures per run: `occupancy` = talk time / logged-in time (wrap-up and waiting are not talk;
`occupancy_ceiling` = talk / (talk + wrap-up) is what agents who never wait would reach),
`abandon_rate` = abandoned / answered by a person, `contacts_per_agent_hour` = calls connected
to an agent per agent-hour, `wait_between_calls_s` = mean time an agent waits from the end of
a wrap-up to the next connected call.

Progress goes to stderr; stdout has a table and, as its last line, one JSON object with
`results` (a list of objects per scenario and policy), `hours`, `seed` and `elapsed_s`.
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import json
import math
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import log
from routing.pacing import (
    ABANDON_AFTER_S,
    PREDICTIVE,
    PROGRESSIVE,
    PacingStats,
    Policy,
    calls_to_place,
    censored_mean,
    fixed_ratio,
)

POLICIES: dict[str, Policy] = {
    "predictive": PREDICTIVE,
    "ratio_100": fixed_ratio(1.0),
    "ratio_200": fixed_ratio(2.0),
    "progressive": PROGRESSIVE,
}


@dataclass(frozen=True)
class Scenario:
    """One outbound floor; rates are fractions of 1, times in seconds."""

    agents: int
    answer_rate: float
    """Answered (by a person or a machine) / placed."""
    machine_rate: float = 0.2
    """Answered by a machine / answered."""
    handle_mean_s: float = 120.0
    handle_stdev_s: float = 90.0
    wrap_up_s: tuple[float, float] = (5.0, 15.0)
    ring_mean_s: float = 9.0
    ring_stdev_s: float = 4.0
    ring_timeout_s: float = 25.0
    busy_share: float = 0.15
    """Unanswered calls that end fast (busy, failed) instead of ringing out."""
    busy_s: tuple[float, float] = (2.0, 6.0)
    amd_s: tuple[float, float] = (2.5, 3.5)

    @property
    def name(self) -> str:
        return f"{self.agents} agents / {round(self.answer_rate * 100)} % answer"

    @property
    def occupancy_ceiling(self) -> float:
        """Talk / (talk + wrap-up): the occupancy of agents who never wait for a call."""
        wrap = sum(self.wrap_up_s) / 2
        return self.handle_mean_s / (self.handle_mean_s + wrap)


SCENARIOS = (Scenario(10, 0.20), Scenario(50, 0.30), Scenario(100, 0.50))

# event kinds
_TICK, _ANSWER, _RING_OUT, _ABANDON_CHECK, _TALK_END, _WRAP_END = range(6)
_FREE, _TALK, _WRAP = range(3)


def lognormal_params(mean: float, stdev: float) -> tuple[float, float]:
    """(mu, sigma) of the normal under a lognormal with this mean and standard deviation."""
    s2 = math.log1p((stdev / mean) ** 2)
    return math.log(mean) - s2 / 2, math.sqrt(s2)


class Running:
    """Mean and standard deviation of a stream (Welford), as a dialer measures them live."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self._m2 = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (value - self.mean)

    @property
    def stdev(self) -> float:
        return math.sqrt(self._m2 / (self.count - 1)) if self.count > 1 else 0.0


class Floor:
    """One simulated shift: agents, calls in flight and the dialer's live figures."""

    def __init__(self, scenario: Scenario, policy: Policy, hours: float, seed: int, tick_s: float) -> None:
        self.sc = scenario
        self.policy = policy
        self.end = hours * 3600.0
        self.tick_s = tick_s
        self.rng = random.Random(seed)
        self.events: list[tuple[float, int, int, int]] = []
        self._seq = 0
        n = scenario.agents
        self.state = [_FREE] * n
        self.since = [0.0] * n  # start of the current talk, wrap-up or idle spell
        self.had_call = [False] * n
        self.free: deque[int] = deque(range(n))  # longest idle first
        self.waiting: deque[tuple[int, float]] = deque()  # (call id, answered at)
        self.waiting_ids: set[int] = set()
        self.ringing: dict[int, float] = {}  # call id -> placed at
        self._next_call = 0
        self.placed_at: dict[int, float] = {}
        self.talk_mu, self.talk_sigma = lognormal_params(scenario.handle_mean_s, scenario.handle_stdev_s)
        self.ring_mu, self.ring_sigma = lognormal_params(scenario.ring_mean_s, scenario.ring_stdev_s)
        # what the dialer has measured so far: calls count once placed more than a ring timeout
        # ago, when their outcome is final (counting outcomes as they come would over-weigh
        # fast failures and fast answers early on)
        self.maturing: deque[int] = deque()  # call ids in the order placed
        self.ring_result: dict[int, tuple[float, bool] | None] = {}  # (ring seconds, machine)
        self.outcomes = 0  # calls whose ringing ended (answered or not)
        self.answered = 0  # by a person or a machine
        self.machines = 0
        self.ring_times = Running()
        self.handle_times = Running()
        self.wrap_times = Running()
        self.human_answered = 0
        self.abandoned = 0
        # figures
        self.placed = 0
        self.connected = 0
        self.talk_s = 0.0
        self.gaps = Running()

    def _push(self, at: float, kind: int, what: int) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at, self._seq, kind, what))

    def run(self) -> dict[str, Any]:
        """Run the shift to its end and return its figures."""
        self._push(0.0, _TICK, 0)
        while self.events:
            now, _, kind, what = heapq.heappop(self.events)
            if now > self.end:
                break
            if kind == _TICK:
                self._dial(now)
                self._push(now + self.tick_s, _TICK, 0)
            elif kind == _ANSWER:
                self._answer(now, what)
            elif kind == _RING_OUT:
                del self.ringing[what]
                self.ring_result[what] = None
            elif kind == _ABANDON_CHECK:
                if what in self.waiting_ids:  # still waiting: abandoned (its queue entry goes stale)
                    self.waiting_ids.discard(what)
                    self.abandoned += 1
            elif kind == _TALK_END:
                self._talk_end(now, what)
            else:
                self._wrap_end(now, what)
        # talk still going at the end of the shift counts up to the end
        for agent, state in enumerate(self.state):
            if state == _TALK:
                self.talk_s += self.end - self.since[agent]
        return self._figures()

    # -- the dialer ---------------------------------------------------------------------------

    def _mature(self, now: float) -> None:
        """Count the outcomes of the calls placed more than a ring timeout ago."""
        horizon = now - self.sc.ring_timeout_s - 0.01
        while self.maturing and self.placed_at[self.maturing[0]] < horizon:
            call = self.maturing.popleft()
            del self.placed_at[call]
            result = self.ring_result.pop(call, None)
            self.outcomes += 1
            if result is not None:
                self.answered += 1
                self.ring_times.add(result[0])
                self.machines += result[1]

    def stats(self, now: float) -> PacingStats:
        """The live figures a real dialer has at `now`."""
        self._mature(now)
        talking: list[float] = []
        soon: list[float] = []
        handle_mean: float | None = None
        wrap_mean = self.wrap_times.mean if self.wrap_times.count else 10.0
        if self.policy.kind == "predictive":  # the other policies never look at busy agents
            talking = [now - self.since[a] for a, state in enumerate(self.state) if state == _TALK]
            handle_mean = censored_mean(
                self.handle_times.mean * self.handle_times.count, self.handle_times.count, sum(talking)
            )
            soon = [
                max(0.0, wrap_mean - (now - self.since[a])) for a, st in enumerate(self.state) if st == _WRAP
            ]
        return PacingStats(
            free_agents=len(self.free),
            agents_talking_s=tuple(talking),
            agents_soon_free=tuple(soon),
            calls_ringing=len(self.ringing),
            ringing_ages_s=tuple(now - placed for placed in self.ringing.values())
            if self.policy.kind == "predictive"
            else (),
            calls_waiting=len(self.waiting_ids),
            answer_rate=self.answered / self.outcomes if self.outcomes else None,
            machine_rate=self.machines / self.answered if self.answered else 0.0,
            mean_ring_s=self.ring_times.mean if self.ring_times.count else None,
            ring_stdev_s=self.ring_times.stdev if self.ring_times.count > 1 else None,
            ring_timeout_s=self.sc.ring_timeout_s,
            handle_mean_s=handle_mean,
            handle_stdev_s=self.handle_times.stdev if self.handle_times.count > 1 else None,
            wrap_up_s=wrap_mean,
            answered_so_far=self.human_answered,
            abandoned_so_far=self.abandoned,
        )

    def _dial(self, now: float) -> None:
        for _ in range(calls_to_place(self.stats(now), self.policy)):
            self._place(now)

    def _place(self, now: float) -> None:
        sc, rng = self.sc, self.rng
        self.placed += 1
        self._next_call += 1
        call = self._next_call
        self.placed_at[call] = now
        self.ringing[call] = now
        self.maturing.append(call)
        if rng.random() < sc.answer_rate:
            ring = rng.lognormvariate(self.ring_mu, self.ring_sigma)
            ring = min(max(ring, 1.0), sc.ring_timeout_s - 0.5)
            machine = rng.random() < sc.machine_rate
            self._push(now + ring, _ANSWER, -call if machine else call)
        elif rng.random() < sc.busy_share:
            self._push(now + rng.uniform(*sc.busy_s), _RING_OUT, call)
        else:
            self._push(now + sc.ring_timeout_s, _RING_OUT, call)

    # -- calls and agents ---------------------------------------------------------------------

    def _answer(self, now: float, signed_call: int) -> None:
        call = abs(signed_call)
        del self.ringing[call]
        self.ring_result[call] = (now - self.placed_at[call], signed_call < 0)
        if signed_call < 0:  # a machine: detected after a few seconds and dropped
            return
        self.human_answered += 1
        if self.free:
            self._connect(now, self.free.popleft())
        else:
            self.waiting.append((signed_call, now))
            self.waiting_ids.add(signed_call)
            self._push(now + ABANDON_AFTER_S, _ABANDON_CHECK, signed_call)

    def _connect(self, now: float, agent: int) -> None:
        if self.had_call[agent]:
            self.gaps.add(now - self.since[agent])
        self.had_call[agent] = True
        self.connected += 1
        self.state[agent] = _TALK
        self.since[agent] = now
        talk = self.rng.lognormvariate(self.talk_mu, self.talk_sigma)
        self._push(now + talk, _TALK_END, agent)

    def _talk_end(self, now: float, agent: int) -> None:
        talk = now - self.since[agent]
        self.talk_s += talk
        self.handle_times.add(talk)
        self.state[agent] = _WRAP
        self.since[agent] = now
        self._push(now + self.rng.uniform(*self.sc.wrap_up_s), _WRAP_END, agent)

    def _wrap_end(self, now: float, agent: int) -> None:
        self.wrap_times.add(now - self.since[agent])
        self.state[agent] = _FREE
        self.since[agent] = now
        while self.waiting:
            call, _ = self.waiting.popleft()
            if call in self.waiting_ids:
                self.waiting_ids.discard(call)
                self._connect(now, agent)
                return
        self.free.append(agent)

    def _figures(self) -> dict[str, Any]:
        agent_hours = self.sc.agents * self.end / 3600.0
        return {
            "occupancy": round(self.talk_s / (self.sc.agents * self.end), 4),
            "abandon_rate": round(self.abandoned / self.human_answered, 4) if self.human_answered else 0.0,
            "contacts_per_agent_hour": round(self.connected / agent_hours, 2),
            "wait_between_calls_s": round(self.gaps.mean, 1) if self.gaps.count else None,
            "placed": self.placed,
            "answered_by_person": self.human_answered,
            "abandoned": self.abandoned,
            "connected": self.connected,
        }


# -- the runs and the report --------------------------------------------------------------------


def simulate(
    scenario: Scenario, policy_name: str, hours: float, seed: int, tick_s: float = 1.0
) -> dict[str, Any]:
    """One scenario under one policy: its figures, keyed as in the JSON line."""
    figures = Floor(scenario, POLICIES[policy_name], hours, seed, tick_s).run()
    return {
        "scenario": scenario.name,
        "agents": scenario.agents,
        "answer_rate": scenario.answer_rate,
        "machine_rate": scenario.machine_rate,
        "policy": policy_name,
        **figures,
        "occupancy_ceiling": round(scenario.occupancy_ceiling, 4),
    }


def print_table(results: Sequence[dict[str, Any]], hours: float) -> None:
    """The figures as a table (rich when installed), on stdout."""
    headers = [
        "scenario",
        "policy",
        "occupancy",
        "ceiling",
        "abandon",
        "contacts/agent-h",
        "wait s",
        "placed",
    ]
    rows = [
        [
            r["scenario"],
            r["policy"],
            f"{r['occupancy'] * 100:.1f} %",
            f"{r['occupancy_ceiling'] * 100:.1f} %",
            f"{r['abandon_rate'] * 100:.2f} %",
            f"{r['contacts_per_agent_hour']:.1f}",
            "-" if r["wait_between_calls_s"] is None else f"{r['wait_between_calls_s']:.0f}",
            str(r["placed"]),
        ]
        for r in results
    ]
    title = f"dialer simulation, {hours:g} h per run"
    if importlib.util.find_spec("rich") is not None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for header in headers:
            table.add_column(header)
        for row in rows:
            table.add_row(*row)
        Console(width=120).print(table)
    else:
        print(title)
        for row in [headers, *rows]:
            print("  ".join(f"{cell:>16}" for cell in row))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.dialer", description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=float, default=8.0, help="simulated shift per run (8)")
    p.add_argument("--quick", action="store_true", help="a 1-hour shift per run")
    p.add_argument("--seed", type=int, default=1, help="seed of every run (1)")
    p.add_argument("--policies", default=",".join(POLICIES), help="comma-separated subset of the policies")
    args = p.parse_args(argv)
    if args.quick:
        args.hours = 1.0
    for name in args.policies.split(","):
        if name not in POLICIES:
            p.error(f"unknown policy {name!r} (one of {', '.join(POLICIES)})")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    results = []
    for scenario in SCENARIOS:
        for name in args.policies.split(","):
            log(f"{scenario.name}: {name}, {args.hours:g} h")
            results.append(simulate(scenario, name, args.hours, args.seed))
    print_table(results, args.hours)
    summary = {
        "results": results,
        "hours": args.hours,
        "seed": args.seed,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
