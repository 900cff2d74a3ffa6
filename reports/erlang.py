"""Erlang C: how many agents an interval needs, and what a given staffing gives (pure, no I/O).

The M/M/N queue behind workforce planning: contacts arrive at random (Poisson), handle
times are exponential, nobody abandons, and a waiting contact takes the next free agent.

- traffic intensity A = contacts x AHT / interval length (in Erlangs: agents' worth of work)
- P(wait) = Erlang C(N, A), the chance a contact has to queue at all
- service level SL(t) = 1 - P(wait) x exp(-(N - A) x t / AHT)
- average speed of answer ASA = P(wait) x AHT / (N - A)
- occupancy = A / N

Erlang C is computed from Erlang B with the usual recurrence B(0) = 1,
B(n) = A B(n-1) / (n + A B(n-1)), then C = N B / (N - A (1 - B)): every step stays in
[0, 1], so it is exact to float precision for thousands of agents, where the textbook
form's A^N / N! overflows. Written here rather than taken from a package (pyworkforce,
erlangccmath) because the whole model is these few lines and those packages pull in
pandas / OR-tools or are unmaintained; tests/test_erlang.py checks it against published
figures and an exact rational evaluation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

MAX_AGENTS = 100_000  # a search bound, far beyond any single queue


def traffic_intensity(contacts: float, aht_s: float, interval_s: float) -> float:
    """Offered load in Erlangs: the number of agents that would be busy all the time."""
    if interval_s <= 0:
        raise ValueError("the interval must be longer than zero")
    if contacts < 0 or aht_s < 0:
        raise ValueError("contacts and handle time cannot be negative")
    return contacts * aht_s / interval_s


def erlang_b(agents: int, traffic: float) -> float:
    """Blocking probability of N servers with no queue (the stable recurrence)."""
    if agents < 0 or traffic < 0:
        raise ValueError("agents and traffic cannot be negative")
    b = 1.0
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return b


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a contact waits; 1 when the agents cannot keep up (N <= A)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    b = erlang_b(agents, traffic)
    return min(1.0, agents * b / (agents - traffic * (1.0 - b)))


def service_level(agents: int, traffic: float, aht_s: float, target_s: float) -> float:
    """Share of contacts answered within `target_s` seconds (0 when the queue grows forever)."""
    if traffic <= 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    if aht_s <= 0:
        return 1.0
    p_wait = erlang_c(agents, traffic)
    return max(0.0, 1.0 - p_wait * math.exp(-(agents - traffic) * target_s / aht_s))


def average_speed_of_answer(agents: int, traffic: float, aht_s: float) -> float:
    """Mean wait in seconds over all contacts (infinite when the queue grows forever)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * aht_s / (agents - traffic)


def occupancy(agents: int, traffic: float) -> float:
    """Share of the agents' time spent handling contacts."""
    if agents <= 0:
        return 0.0 if traffic <= 0 else 1.0
    return min(1.0, traffic / agents)


def with_shrinkage(agents: int, shrinkage: float) -> int:
    """Agents to schedule so that `agents` are on the phones: breaks, training, absence."""
    if not 0 <= shrinkage < 1:
        raise ValueError("shrinkage must be in [0, 1)")
    # round first so 14 / 0.7 = 20.000000000000004 does not become 21
    return math.ceil(round(agents / (1.0 - shrinkage), 9))


@dataclass(frozen=True)
class Staffing:
    """The answer for one interval: raw agents, scheduled agents and what they achieve."""

    traffic: float
    agents: int  # on the phones (raw)
    scheduled: int  # with shrinkage
    p_wait: float
    service_level: float
    asa_s: float
    occupancy: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("traffic", "p_wait", "service_level", "occupancy"):
            out[key] = round(out[key], 6)
        out["asa_s"] = None if math.isinf(self.asa_s) else round(self.asa_s, 3)
        return out


def evaluate(agents: int, traffic: float, aht_s: float, target_s: float, shrinkage: float = 0.0) -> Staffing:
    """What N agents give for this load."""
    return Staffing(
        traffic=traffic,
        agents=agents,
        scheduled=with_shrinkage(agents, shrinkage),
        p_wait=erlang_c(agents, traffic),
        service_level=service_level(agents, traffic, aht_s, target_s),
        asa_s=average_speed_of_answer(agents, traffic, aht_s),
        occupancy=occupancy(agents, traffic),
    )


def agents_needed(
    traffic: float,
    aht_s: float,
    *,
    sl_target: float | None = 0.8,
    sl_seconds: float = 20.0,
    max_asa_s: float | None = None,
    max_occupancy: float | None = None,
    shrinkage: float = 0.0,
) -> Staffing:
    """The fewest agents meeting every given goal: service level, ASA and occupancy cap.

    Service level and ASA improve with every agent added and occupancy falls, so the first
    N that meets all goals is the minimum. No load needs no agents.
    """
    if sl_target is not None and not 0 <= sl_target < 1:
        raise ValueError("the service-level target is a share in [0, 1)")
    if max_asa_s is not None and max_asa_s <= 0:
        raise ValueError("the ASA goal must be longer than zero")
    if max_occupancy is not None and not 0 < max_occupancy <= 1:
        raise ValueError("the occupancy cap is a share in (0, 1]")
    if traffic <= 0:
        return evaluate(0, 0.0, aht_s, sl_seconds, shrinkage)
    if traffic >= MAX_AGENTS:
        raise ValueError(f"more than {MAX_AGENTS} Erlangs: split the load into queues")
    agents = max(1, math.floor(traffic) + 1)  # the fewest with a stable queue
    if max_occupancy is not None:
        floor = traffic / max_occupancy  # a tiny cap makes this huge (or inf): beyond the search
        if floor > MAX_AGENTS:
            raise ValueError(f"an occupancy cap of {max_occupancy:g} needs more than {MAX_AGENTS} agents")
        agents = max(agents, math.ceil(round(floor, 9)))
    b = erlang_b(agents, traffic)
    while agents <= MAX_AGENTS:  # B carried along, so the search is linear in N
        p_wait = min(1.0, agents * b / (agents - traffic * (1.0 - b)))
        level = (
            max(0.0, 1.0 - p_wait * math.exp(-(agents - traffic) * sl_seconds / aht_s)) if aht_s > 0 else 1.0
        )
        asa = p_wait * aht_s / (agents - traffic)
        if (sl_target is None or level >= sl_target) and (max_asa_s is None or asa <= max_asa_s):
            return evaluate(agents, traffic, aht_s, sl_seconds, shrinkage)
        agents += 1
        b = traffic * b / (agents + traffic * b)
    raise ValueError("no staffing up to the search bound meets these goals")
