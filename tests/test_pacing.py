"""Outbound pacing (routing.pacing): the policies' edge cases, properties of the predictive
model, and the model run in the dialer simulation (bench.dialer) against its target."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.dialer import POLICIES, Scenario, simulate
from bench.dialer import main as bench_main
from routing.pacing import (
    LINE_CAPACITY,
    PREDICTIVE,
    PROGRESSIVE,
    WARMUP_ANSWERS,
    PacingStats,
    Policy,
    abandon_budget,
    calls_to_place,
    censored_mean,
    fixed_ratio,
    policy_for_campaign,
)


def live(**kw: Any) -> PacingStats:
    """A campaign well under way: rates known, plenty of history, no abandons yet."""
    data: dict[str, Any] = {
        "free_agents": 0,
        "answer_rate": 0.25,
        "machine_rate": 0.2,
        "mean_ring_s": 9.0,
        "ring_stdev_s": 4.0,
        "ring_timeout_s": 25.0,
        "handle_mean_s": 120.0,
        "handle_stdev_s": 90.0,
        "wrap_up_s": 10.0,
        "answered_so_far": 1000,
        "abandoned_so_far": 0,
    }
    data.update(kw)
    return PacingStats(**data)


# -- policies and their edge cases ------------------------------------------------------------


def test_policy_for_campaign_types() -> None:
    assert policy_for_campaign("predictive") == PREDICTIVE
    assert policy_for_campaign("progressive") == PROGRESSIVE
    assert policy_for_campaign("progressive", 2.0) == fixed_ratio(2.0)
    assert policy_for_campaign("progressive", 0.5) == fixed_ratio(0.5)
    assert policy_for_campaign("predictive", 3.0) == PREDICTIVE
    assert policy_for_campaign("robot") == LINE_CAPACITY
    assert policy_for_campaign("broadcast", 3.0) == LINE_CAPACITY
    for kind in ("preview", "sms", "email", "nonsense"):
        with pytest.raises(ValueError, match="not paced"):
            policy_for_campaign(kind)
    with pytest.raises(ValueError, match="above 0"):
        Policy("ratio", 0)


def test_no_agents_means_no_calls() -> None:
    stats = live(free_agents=0)
    for policy in (PREDICTIVE, PROGRESSIVE, fixed_ratio(1.0), fixed_ratio(3.0)):
        assert calls_to_place(stats, policy) == 0
    # nobody logged in but calls still ringing from before: certainly nothing more
    assert calls_to_place(live(free_agents=0, calls_ringing=5), PREDICTIVE) == 0


def test_progressive_and_ratio_count_calls_in_flight() -> None:
    stats = PacingStats(free_agents=5, calls_ringing=2, calls_waiting=1)
    assert calls_to_place(stats, PROGRESSIVE) == 2
    assert calls_to_place(stats, fixed_ratio(1.0)) == 2
    assert calls_to_place(stats, fixed_ratio(2.0)) == 7
    assert calls_to_place(stats, fixed_ratio(1.5)) == 4  # floor(7.5) - 3
    assert calls_to_place(PacingStats(free_agents=1, calls_ringing=4), fixed_ratio(2.0)) == 0
    assert calls_to_place(PacingStats(free_agents=4), fixed_ratio(0.5)) == 2


def test_no_history_starts_progressive() -> None:
    fresh = PacingStats(free_agents=8, calls_ringing=3)  # no rates at all yet
    assert calls_to_place(fresh, PREDICTIVE) == 5
    # rates known but only a handful of people reached: still progressive
    young = live(free_agents=8, calls_ringing=3, answered_so_far=WARMUP_ANSWERS)
    assert abandon_budget(young) == 0
    assert calls_to_place(young, PREDICTIVE) == 5


def test_warm_up_ramps_up() -> None:
    budgets = [abandon_budget(live(answered_so_far=n)) for n in (30, 40, 50, 60, 1000)]
    assert budgets[0] == 0
    assert budgets == sorted(budgets)
    assert budgets[-1] == pytest.approx(0.03)


def test_exhausted_budget_is_progressive() -> None:
    # 3 % abandoned already: no more risk, one call per free agent
    spent = live(free_agents=6, calls_ringing=1, answered_so_far=1000, abandoned_so_far=30)
    assert abandon_budget(spent) == 0
    assert calls_to_place(spent, PREDICTIVE) == 5
    # just under the target the margin is thin: fewer calls than with a clean record
    thin = live(free_agents=6, answered_so_far=1000, abandoned_so_far=28)
    clean = live(free_agents=6, answered_so_far=1000, abandoned_so_far=0)
    assert 0 < abandon_budget(thin) < abandon_budget(clean)
    assert 6 <= calls_to_place(thin, PREDICTIVE) < calls_to_place(clean, PREDICTIVE)


def test_predictive_dials_ahead_for_agents_about_to_free() -> None:
    # everybody busy: those finishing their wrap-up in a few seconds get calls placed for them
    wrapping = live(free_agents=0, agents_soon_free=(1.0, 2.0, 3.0, 4.0))
    assert calls_to_place(wrapping, PREDICTIVE) >= 4
    assert calls_to_place(wrapping, PROGRESSIVE) == 0
    # agents who only just started their calls will not be free within a ring time
    just_started = live(free_agents=0, agents_talking_s=(1.0, 2.0, 3.0, 4.0))
    assert calls_to_place(just_started, PREDICTIVE) == 0
    # with no wrap-up, agents well into their calls may finish any time: some calls for them
    talking = live(free_agents=0, wrap_up_s=0.0, agents_talking_s=(100.0,) * 100)
    assert 0 < calls_to_place(talking, PREDICTIVE) < calls_to_place(live(free_agents=100), PREDICTIVE) / 2
    # a 10 s wrap-up follows every call: a talking agent is not free within a ring time
    assert calls_to_place(live(free_agents=0, agents_talking_s=(100.0,) * 100), PREDICTIVE) == 0


def test_predictive_places_more_the_fewer_people_answer() -> None:
    few = calls_to_place(live(free_agents=10, answer_rate=0.1), PREDICTIVE)
    many = calls_to_place(live(free_agents=10, answer_rate=0.6), PREDICTIVE)
    assert few > many >= 10
    # well over the progressive count, not absurdly: about the calls that reach 10 people
    assert 10 * 1.5 / (0.1 * 0.8) > few > 10 / (0.1 * 0.8) * 0.5


def test_calls_ringing_for_a_while_are_less_likely_answered() -> None:
    fresh = live(free_agents=10, calls_ringing=20, ringing_ages_s=(0.0,) * 20)
    stale = live(free_agents=10, calls_ringing=20, ringing_ages_s=(20.0,) * 20)
    assert calls_to_place(stale, PREDICTIVE) > calls_to_place(fresh, PREDICTIVE)


def test_robot_campaigns_are_paced_by_lines() -> None:
    assert calls_to_place(PacingStats(free_agents=0, lines_available=7), LINE_CAPACITY) == 7
    assert calls_to_place(PacingStats(free_agents=0, lines_available=0), LINE_CAPACITY) == 0
    assert calls_to_place(PacingStats(free_agents=0, lines_available=-2), LINE_CAPACITY) == 0
    with pytest.raises(ValueError, match="lines_available"):
        calls_to_place(PacingStats(free_agents=3), LINE_CAPACITY)


def test_lines_cap_every_policy() -> None:
    stats = live(free_agents=50, lines_available=4)
    for policy in (PREDICTIVE, PROGRESSIVE, fixed_ratio(2.0)):
        assert calls_to_place(stats, policy) == 4


def test_censored_mean_counts_running_calls() -> None:
    assert censored_mean(0.0, 0, 100.0) is None
    # two short calls ended, eight still running for 60 s: the plain mean (15 s) is far too low
    assert censored_mean(30.0, 2, 8 * 60.0) == pytest.approx(255.0)
    assert censored_mean(1200.0, 10, 0.0) == pytest.approx(120.0)


# -- properties -------------------------------------------------------------------------------

stats_strategy = st.builds(
    live,
    free_agents=st.integers(0, 60),
    agents_talking_s=st.lists(st.floats(0, 900), max_size=60).map(tuple),
    agents_soon_free=st.lists(st.floats(0, 30), max_size=20).map(tuple),
    calls_ringing=st.integers(0, 80),
    calls_waiting=st.integers(0, 3),
    answer_rate=st.floats(0.02, 0.95),
    machine_rate=st.floats(0, 0.6),
    mean_ring_s=st.floats(2, 20),
    answered_so_far=st.integers(0, 5000) | st.integers(1000, 5000),
    abandoned_so_far=st.integers(0, 60),
    lines_available=st.none() | st.integers(0, 500),
)


@settings(max_examples=150, deadline=None)
@given(stats=stats_strategy)
def test_predictive_bounds(stats: PacingStats) -> None:
    """Never negative, never over the lines, never under progressive; ratio 1 is progressive."""
    n = calls_to_place(stats, PREDICTIVE)
    progressive = calls_to_place(stats, PROGRESSIVE)
    assert n >= progressive >= 0
    if stats.lines_available is not None:
        assert n <= max(0, stats.lines_available)
    assert calls_to_place(stats, fixed_ratio(1.0)) == progressive
    if stats.free_agents == 0 and not stats.agents_soon_free and not stats.agents_talking_s:
        assert n == 0


@settings(max_examples=100, deadline=None)
@given(stats=stats_strategy, extra=st.integers(1, 50))
def test_predictive_is_monotone(stats: PacingStats, extra: int) -> None:
    """More abandons so far never mean more calls; more free agents never fewer."""
    n = calls_to_place(stats, PREDICTIVE)
    worse = PacingStats(**{**stats.__dict__, "abandoned_so_far": stats.abandoned_so_far + extra})
    assert calls_to_place(worse, PREDICTIVE) <= n
    more_agents = PacingStats(**{**stats.__dict__, "free_agents": stats.free_agents + extra})
    assert calls_to_place(more_agents, PREDICTIVE) >= n


@settings(max_examples=100, deadline=None)
@given(stats=stats_strategy)
def test_asking_again_after_placing_adds_nothing(stats: PacingStats) -> None:
    """The calls just placed (ringing, age 0) are exactly what the policy wanted: the next
    question at the same instant gets 0, so a dialer polling fast does not over-dial."""
    n = calls_to_place(stats, PREDICTIVE)
    lines = None if stats.lines_available is None else stats.lines_available - n
    ages = stats.ringing_ages_s + (0.0,) * (stats.calls_ringing - len(stats.ringing_ages_s))
    after = PacingStats(
        **{
            **stats.__dict__,
            "calls_ringing": stats.calls_ringing + n,
            "ringing_ages_s": ages + (0.0,) * n,
            "lines_available": lines,
        }
    )
    assert calls_to_place(after, PREDICTIVE) == 0


# -- the model in the simulation --------------------------------------------------------------


def test_simulated_campaign_stays_under_target_and_beats_progressive() -> None:
    scenario = Scenario(50, 0.3)
    predictive = simulate(scenario, "predictive", hours=1.0, seed=3)
    progressive = simulate(scenario, "progressive", hours=1.0, seed=3)
    assert predictive["answered_by_person"] > 500
    assert predictive["abandon_rate"] <= 0.03
    assert predictive["occupancy"] > progressive["occupancy"] + 0.15
    assert progressive["abandon_rate"] == 0


def test_bench_prints_a_json_summary_last(capsys: pytest.CaptureFixture[str]) -> None:
    bench_main(["--hours", "0.1", "--policies", "progressive,ratio_200"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    rows = summary["results"]
    assert {(r["agents"], r["answer_rate"]) for r in rows} == {(10, 0.2), (50, 0.3), (100, 0.5)}
    assert {r["policy"] for r in rows} == {"progressive", "ratio_200"}
    for row in rows:
        assert 0 <= row["occupancy"] <= 1 and 0 <= row["abandon_rate"] <= 1
        assert set(row) >= {
            "scenario",
            "agents",
            "answer_rate",
            "policy",
            "occupancy",
            "abandon_rate",
            "contacts_per_agent_hour",
            "wait_between_calls_s",
        }
    assert set(POLICIES) == {"predictive", "ratio_100", "ratio_200", "progressive"}
