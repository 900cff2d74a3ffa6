"""Erlang C (reports/erlang.py) against published figures, an exact evaluation, and its laws."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.erlang import (
    agents_needed,
    average_speed_of_answer,
    erlang_b,
    erlang_c,
    evaluate,
    occupancy,
    service_level,
    traffic_intensity,
    with_shrinkage,
)


def test_the_classic_worked_example() -> None:
    """100 calls in 30 minutes, AHT 180 s, 80 % answered in 20 s, 30 % shrinkage.

    Published results: the pyworkforce README (PyPI, `ErlangC(transactions=100, asa=20/60,
    aht=3, interval=30, shrinkage=0.3).required_positions(service_level=0.8)` ->
    raw_positions 14, positions 20, service_level 0.8883500191794669, occupancy
    0.7142857142857143, waiting_probability 0.1741319335950498) and the CRAN package
    ErlangC 0.1.0 README (same inputs: traffic 10, wait probability 0.1741319, service level
    0.88835, ASA 7.83593701177724 s, 14 agents; and 0.6821182 for 11 agents)."""
    traffic = traffic_intensity(100, 180, 30 * 60)
    assert traffic == 10.0
    result = agents_needed(traffic, 180, sl_target=0.8, sl_seconds=20, shrinkage=0.3, max_occupancy=0.85)
    assert (result.agents, result.scheduled) == (14, 20)
    assert result.service_level == pytest.approx(0.8883500191794669, abs=1e-12)
    assert result.p_wait == pytest.approx(0.1741319335950498, abs=1e-12)
    assert result.occupancy == pytest.approx(0.7142857142857143)
    assert result.asa_s == pytest.approx(7.83593701177724, abs=1e-9)
    assert erlang_c(11, traffic) == pytest.approx(0.6821182, abs=1e-7)
    # 13 agents fall just short of the target: 79.6 %
    assert service_level(13, traffic, 180, 20) == pytest.approx(0.7956, abs=1e-4)


# The 1 % grade-of-service column of the classic published Erlang B tables (printed in
# teletraffic handbooks and reproduced by online Erlang B calculators): the traffic N lines
# carry at 1 % blocking. Erlang C is built on this B, so its rows check the recurrence.
ERLANG_B_1_PERCENT = [(1, 0.0101), (2, 0.153), (3, 0.455), (4, 0.869), (5, 1.36), (10, 4.46),
                      (20, 12.03), (50, 37.9), (100, 84.06)]  # fmt: skip


@pytest.mark.parametrize(("lines", "traffic"), ERLANG_B_1_PERCENT)
def test_erlang_b_table_at_one_percent(lines: int, traffic: float) -> None:
    assert erlang_b(lines, traffic) == pytest.approx(0.01, abs=1.5e-4)  # the table rounds A


# Textbook Erlang C values: C(N=2, A=1) = 1/3 and C(N=3, A=2) = 4/9 (e.g. Mathematica's
# ErlangC documentation, "Basic Examples"); then a grid against an exact rational evaluation
# of the textbook formula (A^N/N! * N/(N-A)) / (sum_{k<N} A^k/k! + A^N/N! * N/(N-A)).
def exact_erlang_c(agents: int, traffic: Fraction) -> Fraction:
    top = traffic**agents / math.factorial(agents) * agents / (agents - traffic)
    return top / (sum(traffic**k / math.factorial(k) for k in range(agents)) + top)


def test_textbook_values_and_an_exact_grid() -> None:
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    for traffic in (Fraction(1, 2), Fraction(5, 2), Fraction(10), Fraction(47, 2), Fraction(90)):
        for extra in (1, 2, 5, 12):
            agents = math.floor(traffic) + extra
            assert erlang_c(agents, float(traffic)) == pytest.approx(
                float(exact_erlang_c(agents, traffic)), rel=1e-12
            )


def test_large_centres_stay_finite() -> None:
    """A^N / N! overflows floats past ~170 agents; the recurrence does not."""
    result = agents_needed(5000.0, 300, sl_target=0.9, sl_seconds=15)
    assert 5000 < result.agents < 5200
    assert 0 < result.p_wait < 1 and math.isfinite(result.asa_s)
    assert result.service_level >= 0.9


def test_edges() -> None:
    assert erlang_c(5, 0.0) == 0.0
    assert erlang_c(5, 5.0) == 1.0 and service_level(5, 5.0, 180, 20) == 0.0
    assert average_speed_of_answer(5, 6.0, 180) == math.inf
    assert evaluate(5, 6.0, 180, 20).to_dict()["asa_s"] is None
    assert agents_needed(0.0, 180).agents == 0
    assert with_shrinkage(14, 0.3) == 20 and with_shrinkage(10, 0.0) == 10 and with_shrinkage(10, 0.35) == 16
    assert occupancy(4, 2.0) == 0.5
    # the occupancy cap: 10 Erlangs at most 80 % busy needs 13 even if 11 met the SL goal
    assert agents_needed(10.0, 180, sl_target=0.1, max_occupancy=0.8).agents == 13
    # an ASA goal alone
    asa_only = agents_needed(10.0, 180, sl_target=None, max_asa_s=30)
    assert asa_only.asa_s <= 30 < average_speed_of_answer(asa_only.agents - 1, 10.0, 180)
    with pytest.raises(ValueError):
        with_shrinkage(10, 1.0)
    with pytest.raises(ValueError):
        traffic_intensity(10, 180, 0)
    with pytest.raises(ValueError):
        agents_needed(10.0, 180, sl_target=1.0)
    with pytest.raises(ValueError):  # refused at once, not after a search of billions
        agents_needed(1e10, 180)


loads = st.floats(min_value=0.05, max_value=400, allow_nan=False)
handle = st.floats(min_value=5, max_value=1800, allow_nan=False)
targets = st.floats(min_value=0, max_value=120, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(traffic=loads, extra=st.integers(min_value=1, max_value=60), aht=handle, target=targets)
def test_more_agents_never_hurt(traffic: float, extra: int, aht: float, target: float) -> None:
    agents = math.floor(traffic) + extra
    p = erlang_c(agents, traffic)
    assert 0.0 <= p <= 1.0
    assert 0.0 <= erlang_b(agents, traffic) <= p + 1e-12  # waiting is at least as likely as blocking
    assert erlang_c(agents + 1, traffic) <= p + 1e-12
    level = service_level(agents, traffic, aht, target)
    assert 0.0 <= level <= 1.0
    assert service_level(agents + 1, traffic, aht, target) >= level - 1e-12
    assert average_speed_of_answer(agents + 1, traffic, aht) <= average_speed_of_answer(agents, traffic, aht)


@settings(max_examples=200, deadline=None)
@given(
    traffic=loads,
    aht=handle,
    target=targets,
    goal=st.floats(min_value=0.05, max_value=0.99),
    shrinkage=st.floats(min_value=0, max_value=0.6),
)
def test_agents_needed_is_the_minimum(
    traffic: float, aht: float, target: float, goal: float, shrinkage: float
) -> None:
    result = agents_needed(traffic, aht, sl_target=goal, sl_seconds=target, shrinkage=shrinkage)
    assert result.agents > traffic
    assert result.service_level >= goal
    fewer = result.agents - 1
    assert fewer <= traffic or service_level(fewer, traffic, aht, target) < goal
    assert result.scheduled >= result.agents
    assert result.scheduled * (1 - shrinkage) >= result.agents - 1e-9
