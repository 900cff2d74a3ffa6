"""Outbound pacing: how many calls a campaign places now. Pure (no I/O, no clock).

The dialer (`routing.dialer`) fills a `PacingStats` from live figures every tick and asks
`calls_to_place(stats, policy)`; `bench.dialer` runs the same function in a simulation.

Policies
--------
- `progressive`: one call per free agent. Calls in flight (ringing, or answered and waiting
  for an agent) never exceed the free agents, so an answered call always finds one.
- `ratio` (the campaign's pacing ratio r; 1.0 = 100 %): at most r x free agents in flight.
  At r = 1 it places exactly what progressive places; above 1 it bets that most calls go
  unanswered, and abandons whatever answers exceed the agents free within 2 s.
- `line_capacity` (robot and broadcast campaigns, no agent involved): every free line.
- `predictive`: the model below, never fewer calls than progressive (those cannot abandon).

The predictive model
--------------------
A call placed now reaches a person with h = answer_rate x (1 - machine_rate) (machines are
detected and dropped, never given to an agent), after a ring time drawn from the answered
calls' ring times (lognormal with `mean_ring_s` / `ring_stdev_s`, cut at `ring_timeout_s`).
It is abandoned if, when the person answers at t, the people who answered before it already
take every agent free by t + 2 s. At checkpoints t every CHECKPOINT_S over the ring timeout:

- X(t), people answered by t from the calls already placed: each ringing call with the
  chance that a person answers it within t given how long it has already rung (plus the
  calls waiting for an agent), and the other new calls.
- A(t), agents free by t + 2 s: the free agents, each agent on a call with the chance that
  its call ends by then given how long it has run (handle times lognormal with the measured
  mean and spread, then the mean wrap-up), and the agents whose time to free is known
  (`agents_soon_free`, e.g. in wrap-up).
- The last of N new calls is abandoned with chance sum_t w(t) P(X(t) + 1 > A(t)), w(t) being
  the chance that its answer falls at t. The policy places the largest N whose last call's
  chance stays within the risk it may take now, so no call placed carries more than that
  risk. The chance grows with N; a doubling search then a bisection find N.
- X and A are sums of independent yes/no events. Large ones are taken as normal; below
  SMALL_COUNT people X is taken as Poisson, whose tail is heavier: with a normal tail the
  10-agent simulation abandoned three times the risk the model took.

The risk it may take comes from an error budget over the whole campaign: with r = abandoned /
answered so far and target T (3 %), risk = T x min(MAX_SPEND, GAIN x (1 - r / T)). As r nears
T the margin tightens to nothing and the policy is progressive (which cannot abandon); while
r is low it takes more. If the model is off by a factor b (real abandons = b x risk), the
campaign settles where b x T x GAIN x (1 - r / T) = r, i.e. r / T = b GAIN / (1 + b GAIN) < 1
whatever b is: a model that is wrong by a constant factor still keeps the campaign under its
target, and the better the model, the closer to the target (and the busier the agents) it
runs. In the simulation (bench.dialer) b is about 0.9-1.5 and campaigns settle at 2.2-2.6 %.
r counts the next abandon already ((abandoned + 1) / answered), which keeps a young campaign,
where one abandon moves r a lot, from ending just over the target. With no history (fewer
than WARMUP_ANSWERS people answered) the policy is progressive; it grows bolder until twice
that many, as the rates and handle times become known.

What the dialer should feed it, for the model to be right: the rates over calls placed more
than a ring timeout ago (see `PacingStats`), the ages of the ringing calls, each talking
agent's elapsed talk time, the handle-time mean from `censored_mean` (early in a campaign the
plain mean of the calls finished so far is far too short) and the mean wrap-up. Without the
busy agents' figures the policy still works and stays safe, on the free agents alone.

The 3 % is a campaign-wide figure (the US rule over 30 days). A per-24-hours reading (Ofcom)
is the same controller fed with the last 24 hours' counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

PolicyKind = Literal["predictive", "ratio", "progressive", "line_capacity"]

ABANDON_AFTER_S = 2.0
"""An answered call that finds no agent within this many seconds counts as abandoned."""
DEFAULT_TARGET_ABANDON_RATE = 0.03
WARMUP_ANSWERS = 30
"""People answered before the predictive policy starts to trust its figures."""
GAIN = 3.0
"""How boldly the unused abandon budget is spent (see the module docstring)."""
MAX_SPEND = 1.0
"""The risk one call may carry, as a multiple of the target, at most."""
SMALL_COUNT = 25.0
"""Below this many people expected, the model counts them with a Poisson tail, not a normal."""
CHECKPOINT_S = 2.0
"""Spacing of the moments at which the predictive model weighs people against agents."""
DEFAULT_RING_CV = 0.5
"""Spread of ring times (standard deviation / mean) until it is measured."""
DEFAULT_HANDLE_CV = 0.75
"""Spread of handle times until it is measured."""
KNOWN_FREE_CV = 0.3
"""Spread around an `agents_soon_free` figure (a wrap-up's end is fairly well known)."""


@dataclass(frozen=True)
class Policy:
    """How a campaign paces its calls; `ratio` matters only for the `ratio` kind."""

    kind: PolicyKind
    ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.ratio <= 0:
            raise ValueError(f"pacing ratio must be above 0, not {self.ratio}")


PREDICTIVE = Policy("predictive")
PROGRESSIVE = Policy("progressive")
LINE_CAPACITY = Policy("line_capacity")


def fixed_ratio(ratio: float) -> Policy:
    """A fixed pacing ratio: 1.0 = as many calls as free agents, 2.0 = twice as many."""
    return Policy("ratio", ratio)


def policy_for_campaign(campaign_type: str, pacing_ratio: float = 1.0) -> Policy:
    """The policy a campaign type dials with (preview, SMS and email are not paced here).

    A progressive campaign with a pacing ratio other than 100 % dials at that fixed ratio
    (below 1: fewer calls than free agents); predictive campaigns ignore the ratio."""
    if campaign_type == "predictive":
        return PREDICTIVE
    if campaign_type == "progressive":
        return PROGRESSIVE if pacing_ratio == 1.0 else fixed_ratio(pacing_ratio)
    if campaign_type in ("robot", "broadcast"):
        return LINE_CAPACITY
    raise ValueError(f"campaign type {campaign_type!r} is not paced by the dialer")


@dataclass(frozen=True)
class PacingStats:
    """What the dialer knows at one instant about one campaign.

    Rates are fractions of 1 and None while unknown. Measure them over calls whose ringing
    is over for sure (placed more than a ring timeout ago): counting outcomes as they come in
    over-weighs the fast ones (quick answers, busy signals) early in a campaign.
    `answered_so_far` and `abandoned_so_far` count calls answered by a person over the whole
    campaign (the abandon rate's denominator and numerator).
    """

    free_agents: int
    agents_talking_s: tuple[float, ...] = ()
    """Seconds each agent on a call of the campaign has been talking."""
    agents_soon_free: tuple[float, ...] = ()
    """Expected seconds until free of the other busy agents (in wrap-up: the wrap-up left)."""
    calls_ringing: int = 0
    ringing_ages_s: tuple[float, ...] = ()
    """Seconds each ringing call has rung, when known; calls without one count as just placed."""
    calls_waiting: int = 0
    """Answered by a person, waiting (under 2 s) for an agent."""
    answer_rate: float | None = None
    """Answered (by a person or a machine) / placed."""
    machine_rate: float = 0.0
    """Answered by a machine / answered."""
    mean_ring_s: float | None = None
    """Mean time from placing a call to its answer, over answered calls."""
    ring_stdev_s: float | None = None
    ring_timeout_s: float = 30.0
    handle_mean_s: float | None = None
    """Mean talk time (see `censored_mean`); None: agents on a call are not counted on."""
    handle_stdev_s: float | None = None
    wrap_up_s: float = 0.0
    """Mean wrap-up after a call."""
    answered_so_far: int = 0
    abandoned_so_far: int = 0
    target_abandon_rate: float = DEFAULT_TARGET_ABANDON_RATE
    lines_available: int | None = None
    """Free telephone lines; None = no limit (required by `line_capacity`)."""

    @property
    def ringing(self) -> int:
        return max(self.calls_ringing, len(self.ringing_ages_s))

    @property
    def in_flight(self) -> int:
        """Calls placed that have not reached an agent or ended."""
        return self.ringing + self.calls_waiting

    @property
    def human_rate(self) -> float | None:
        """Chance that a placed call reaches a person."""
        if self.answer_rate is None:
            return None
        return self.answer_rate * (1.0 - self.machine_rate)

    @property
    def abandon_rate(self) -> float:
        """The campaign's running abandon rate (0 before any answer)."""
        return self.abandoned_so_far / self.answered_so_far if self.answered_so_far else 0.0


def calls_to_place(stats: PacingStats, policy: Policy) -> int:
    """How many new calls to place now (never negative, never above the free lines)."""
    if policy.kind == "line_capacity":
        if stats.lines_available is None:
            raise ValueError("line_capacity pacing needs lines_available")
        wanted = stats.lines_available
    elif policy.kind == "progressive":
        wanted = _progressive(stats)
    elif policy.kind == "ratio":
        wanted = math.floor(policy.ratio * stats.free_agents + 1e-9) - stats.in_flight
    else:
        wanted = max(_progressive(stats), _predictive(stats))
    if stats.lines_available is not None:
        wanted = min(wanted, stats.lines_available)
    return max(0, wanted)


def _progressive(stats: PacingStats) -> int:
    """One call per free agent not already covered by a call in flight."""
    return stats.free_agents - stats.in_flight


def abandon_budget(stats: PacingStats) -> float:
    """The abandon risk the next call may carry (0 = behave progressively)."""
    target = stats.target_abandon_rate
    if target <= 0 or stats.answered_so_far <= 0:
        return 0.0
    # share of the budget not yet used, counting the next abandon already: one abandon weighs
    # heavily on a young campaign, and this keeps its figure from ending just over the target
    left = 1.0 - (stats.abandoned_so_far + 1) / (stats.answered_so_far * target)
    # progressive for the first WARMUP_ANSWERS answers, then bolder up to twice as many
    confidence = min(1.0, max(0.0, stats.answered_so_far / WARMUP_ANSWERS - 1.0))
    return max(0.0, min(MAX_SPEND, GAIN * left)) * target * confidence


def _predictive(stats: PacingStats) -> int:
    risk = abandon_budget(stats)
    if risk <= 0 or not stats.human_rate or stats.mean_ring_s is None:
        return 0
    outlook = _Outlook(stats, stats.human_rate)
    if outlook.agents_at_end <= 0 or outlook.last_call_risk(1) > risk:
        return 0
    low, high = 1, 2  # invariant: `low` calls are within the risk; find a `high` that is not
    cap = stats.lines_available if stats.lines_available is not None else 100_000
    while high <= cap and outlook.last_call_risk(high) <= risk:
        low, high = high, high * 2
    if high > cap:
        if outlook.last_call_risk(cap) <= risk:
            return cap
        high = cap
    while high - low > 1:
        mid = (low + high) // 2
        if outlook.last_call_risk(mid) > risk:
            high = mid
        else:
            low = mid
    return low


class _Outlook:
    """People answered and agents free at checkpoints over the next ring timeout.

    Per checkpoint: the chance that a new call has reached a person by then (`reach`), and
    the mean and variance of the people answered from the calls already placed (`people`,
    beyond those already waiting) and of the busy agents free by then + 2 s (`freeing`).
    """

    def __init__(self, stats: PacingStats, human_rate: float) -> None:
        assert stats.mean_ring_s is not None
        self.waiting = stats.calls_waiting
        self.free = stats.free_agents
        timeout = max(stats.ring_timeout_s, 1.0)
        ring_mean = min(max(stats.mean_ring_s, 0.5), timeout)
        ring_sd = stats.ring_stdev_s or ring_mean * DEFAULT_RING_CV
        ring = _LogNormal(ring_mean, max(ring_sd, 0.05 * ring_mean))
        by_timeout = ring.cdf(timeout)
        answer_rate = stats.answer_rate or 0.0

        def answered_within(s: float) -> float:  # of the calls answered, the share within s
            return min(1.0, ring.cdf(min(s, timeout)) / by_timeout)

        unknown_ages = max(0, stats.calls_ringing - len(stats.ringing_ages_s))
        ages = _counts([*stats.ringing_ages_s, *[0.0] * unknown_ages])
        soon = _counts(stats.agents_soon_free)
        handle: _LogNormal | None = None
        talking: dict[float, int] = {}
        if stats.handle_mean_s:
            handle_sd = stats.handle_stdev_s or stats.handle_mean_s * DEFAULT_HANDLE_CV
            handle = _LogNormal(stats.handle_mean_s, max(handle_sd, 0.05 * stats.handle_mean_s))
            talking = _counts(stats.agents_talking_s)
        ongoing = {e: 1.0 - handle.cdf(e) for e in talking} if handle else {}

        self.reach: list[float] = []
        self.people: list[tuple[float, float]] = []
        self.freeing: list[tuple[float, float]] = []
        self._pmfs: dict[int, tuple[int, list[float]]] = {}
        steps = max(1, math.ceil(timeout / CHECKPOINT_S))
        for k in range(steps):
            t = timeout * (k + 1) / steps
            people = _Sum()
            for age, count in ages.items():
                still_ringing = max(1e-9, 1.0 - answer_rate * answered_within(age))
                q = human_rate * (answered_within(age + t) - answered_within(age)) / still_ringing
                people.add(min(1.0, max(0.0, q)), count)
            freeing = _Sum()
            free_by = t + ABANDON_AFTER_S
            for seconds, count in soon.items():
                freeing.add(
                    1.0 if seconds <= 0 else _LogNormal(seconds, KNOWN_FREE_CV * seconds).cdf(free_by), count
                )
            if handle is not None:
                talk_by = free_by - stats.wrap_up_s  # the call must end before the wrap-up
                for elapsed, count in talking.items():
                    survive = ongoing[elapsed]
                    ends = handle.cdf(elapsed + talk_by) - (1.0 - survive) if talk_by > 0 else 0.0
                    freeing.add(min(1.0, max(0.0, ends / survive)) if survive > 1e-12 else 1.0, count)
            self.reach.append(human_rate * answered_within(t))
            self.people.append((people.mean, people.var))
            self.freeing.append((freeing.mean, freeing.var))
        self.agents_at_end = self.free + self.freeing[-1][0]

    def last_call_risk(self, new_calls: int) -> float:
        """The chance that the last of `new_calls` placed now is abandoned, should a person answer:
        sum over t of P(its answer falls at t) x P(the people before it take every agent)."""
        others = new_calls - 1
        total_reach = self.reach[-1]
        if total_reach <= 0:
            return 0.0
        risk, before = 0.0, 0.0
        for k, q in enumerate(self.reach):
            weight, before = (q - before) / total_reach, q
            if weight <= 0:
                continue
            people_mean = self.people[k][0] + others * q
            if people_mean < SMALL_COUNT:
                risk += weight * self._small_risk(k, people_mean)
                continue
            # waiting + X >= free + B, all integers: a normal with a continuity correction
            excess = self.waiting + people_mean - self.free - self.freeing[k][0] + 0.5
            stdev = math.sqrt(self.people[k][1] + others * q * (1.0 - q) + self.freeing[k][1])
            risk += weight * (_cdf(excess / stdev) if stdev > 0 else float(excess > 0))
        return risk

    def _small_risk(self, k: int, people_mean: float) -> float:
        """P(waiting + X >= free + B) at checkpoint k with X Poisson: at small counts a normal's
        tail is far too thin (it made the small teams abandon three times the risk taken)."""
        start, probs = self._freeing_pmf(k)
        need = max(0, self.free + start + len(probs) - 1 - self.waiting)
        survival = [1.0] * (need + 1)  # P(X >= n)
        pmf, below = math.exp(-people_mean), 0.0
        for n in range(need):
            below += pmf
            survival[n + 1] = max(0.0, 1.0 - below)
            pmf *= people_mean / (n + 1)
        risk = 0.0
        for offset, p_b in enumerate(probs):
            n = self.free + start + offset - self.waiting
            risk += p_b * (1.0 if n <= 0 else survival[n])
        return risk

    def _freeing_pmf(self, k: int) -> tuple[int, list[float]]:
        """B at checkpoint k: a normal discretised on the integers, as (first value, chances)."""
        if k not in self._pmfs:
            mean, var = self.freeing[k]
            sd = math.sqrt(var)
            if sd <= 1e-9:
                self._pmfs[k] = (max(0, round(mean)), [1.0])
            else:
                lo, hi = max(0, math.floor(mean - 5 * sd)), max(0, math.ceil(mean + 5 * sd))
                edges = [_cdf((b + 0.5 - mean) / sd) for b in range(lo - 1, hi + 1)]
                probs = [edges[i + 1] - (edges[i] if b > 0 else 0.0) for i, b in enumerate(range(lo, hi + 1))]
                total = sum(probs)
                self._pmfs[k] = (lo, [p / total for p in probs])
        return self._pmfs[k]


class _Sum:
    """Mean and variance of a sum of independent yes/no events."""

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0

    def add(self, p: float, count: int = 1) -> None:
        self.mean += count * p
        self.var += count * p * (1.0 - p)


def censored_mean(finished_total_s: float, finished: int, running_elapsed_s: float) -> float | None:
    """A mean duration that counts the calls still running, for `handle_mean_s`.

    Early in a campaign only the short calls have ended, so their plain mean is far too low
    and the dialer would count every busy agent as about to be free. Dividing all the time
    observed (finished calls plus the elapsed part of those still running) by the finished
    count (the "total time on test" estimate, exact for exponential durations) starts high
    and converges to the true mean as calls finish. None before any call has finished.
    """
    if finished <= 0:
        return None
    return (finished_total_s + running_elapsed_s) / finished


def _counts(values: tuple[float, ...] | list[float]) -> dict[float, int]:
    """Values rounded to a tenth of a second, counted: the same figure is worked out once."""
    out: dict[float, int] = {}
    for value in values:
        key = round(max(0.0, value), 1)
        out[key] = out.get(key, 0) + 1
    return out


class _LogNormal:
    """A lognormal distribution given by its mean and standard deviation."""

    def __init__(self, mean: float, stdev: float) -> None:
        s2 = math.log1p((stdev / mean) ** 2)
        self.sigma = math.sqrt(s2)
        self.mu = math.log(mean) - s2 / 2

    def cdf(self, x: float) -> float:
        return _cdf((math.log(x) - self.mu) / self.sigma) if x > 0 else 0.0


def _cdf(z: float) -> float:
    """The standard normal distribution function."""
    return 0.5 * math.erfc(-z / math.sqrt(2))
