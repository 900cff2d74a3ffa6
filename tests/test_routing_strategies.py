"""The pure decision core of the router (routing.strategies) with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from routing.model import STRATEGIES, AgentProfile, AreaRule, EscalationStep, Queue, WaitingContact
from routing.strategies import (
    choose_agent,
    effective_requirements,
    eligible,
    order_waiting,
    queue_open,
    select_queue_by_area,
    service_level,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)  # a Monday


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def agent(aid: str, **kw: Any) -> AgentProfile:
    data: dict[str, Any] = {
        "id": aid,
        "tenant_id": "t1",
        "skills": {"billing": 5},
        "languages": ["en"],
        "capacity": {"voice": 1, "webchat": 3, "email": 5},
        "state": "available",
        "idle_since": T0,
    }
    data.update(kw)
    return AgentProfile(**data)


def contact(cid: str, **kw: Any) -> WaitingContact:
    data: dict[str, Any] = {
        "id": cid,
        "tenant_id": "t1",
        "channel": "webchat",
        "queue_id": "q1",
        "enqueued_at": T0,
    }
    data.update(kw)
    return WaitingContact(**data)


def queue(**kw: Any) -> Queue:
    data: dict[str, Any] = {"id": "q1", "tenant_id": "t1", "name": "Billing", "skills": {"billing": 3}}
    data.update(kw)
    return Queue(**data)


def pick(strategy: Any, agents: list[AgentProfile], c: WaitingContact | None = None, **kw: Any) -> str | None:
    choice = choose_agent(strategy, agents, c or contact("c"), queue(), at(1), **kw)
    return choice.agent.id if choice.agent else None


# --------------------------------------------------------------------------- model


def test_models_round_trip_through_mongo_documents() -> None:
    q = queue(
        escalation=[
            {"after_s": 60, "action": "overflow_to", "queue_id": "q2"},
            {"after_s": 30, "action": "relax_skill_levels", "relax_by": 2},
        ],
        area_rules=[{"queue_id": "q2", "country": "us", "region": "California"}],
        schedule={"hours": {"mon": [("08:00", "17:00")]}},
    )
    doc = q.to_doc()
    assert doc["_id"] == "q1" and "id" not in doc
    assert Queue.from_doc(doc) == q
    assert [s.after_s for s in q.escalation] == [30, 60]  # kept in order of time
    assert q.area_rules[0].country == "US"
    a = agent("a1", state="wrapup", wrapup_until=at(30), load={"webchat": 2})
    assert AgentProfile.from_doc(a.to_doc()) == a
    c = contact("c1", preferred_agent_id="a1", preferred_until=at(30))
    assert WaitingContact.from_doc(c.to_doc()) == c


@pytest.mark.parametrize(
    "bad",
    [
        {"after_s": 1, "action": "relax_skill_levels"},
        {"after_s": 1, "action": "relax_skill_levels", "relax_by": 1, "relax_to": 2},
        {"after_s": 1, "action": "overflow_to"},
        {"after_s": 1, "action": "offer_callback", "queue_id": "q2"},
        {"after_s": -1, "action": "offer_voicemail"},
    ],
)
def test_bad_escalation_steps_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        EscalationStep(**bad)


def test_levels_and_states_are_validated() -> None:
    with pytest.raises(ValidationError):
        agent("a", skills={"billing": 11})
    with pytest.raises(ValidationError):
        agent("a", state="wrapup")  # a wrap-up without an end could get stuck
    with pytest.raises(ValidationError):
        queue(strategy="random")


# --------------------------------------------------------------------------- eligibility


def test_presence_states() -> None:
    c, q = contact("c"), queue()
    assert eligible(agent("a"), c, q, at(1))
    for state in ("busy", "offline"):
        assert not eligible(agent("a", state=state), c, q, at(1))
    assert not eligible(agent("a", state="not_ready", not_ready_reason="break"), c, q, at(1))


def test_wrapup_timer() -> None:
    a, c, q = agent("a", state="wrapup", wrapup_until=at(30)), contact("c"), queue()
    assert not eligible(a, c, q, at(29))
    assert eligible(a, c, q, at(30))  # an expired wrap-up counts as available


def test_capacity_per_channel_one_voice_three_chats_five_emails() -> None:
    q = queue()
    limits = {"voice": 1, "webchat": 3, "email": 5}
    for channel, limit in limits.items():
        c = contact("c", channel=channel)
        for load in range(limit):
            assert eligible(agent("a", load={channel: load}), c, q, at(1))
        assert not eligible(agent("a", load={channel: limit}), c, q, at(1))
    # full on voice, still free for chats and emails
    full_voice = agent("a", load={"voice": 1, "webchat": 2, "email": 4})
    assert not eligible(full_voice, contact("c", channel="voice"), q, at(1))
    assert eligible(full_voice, contact("c", channel="webchat"), q, at(1))
    assert eligible(full_voice, contact("c", channel="email"), q, at(1))
    assert not eligible(agent("a"), contact("c", channel="sms"), q, at(1))  # no capacity for it


def test_skills_language_tenant_and_exclusions() -> None:
    q = queue(skills={"billing": 3, "technical": 2})
    c = contact("c", skills={"billing": 6})
    assert not eligible(agent("a", skills={"billing": 5, "technical": 9}), c, q, at(1))
    assert eligible(agent("a", skills={"billing": 6, "technical": 2}), c, q, at(1))
    assert not eligible(agent("a", skills={"billing": 9}), c, q, at(1))
    ko = contact("c", language="ko")
    assert not eligible(agent("a"), ko, queue(), at(1))
    assert eligible(agent("a", languages=["en", "ko"]), ko, queue(), at(1))
    assert not eligible(agent("a", tenant_id="t2"), contact("c"), queue(), at(1))
    assert not eligible(agent("a"), contact("c", excluded_agents=["a"]), queue(), at(1))


def test_sticky_agent_before_and_after_its_time() -> None:
    q = queue()
    c = contact("c", preferred_agent_id="a1", preferred_until=at(45))
    a1, a2 = agent("a1", load={"webchat": 3}), agent("a2")
    assert not eligible(a2, c, q, at(44))
    assert pick("longest_idle", [a1, a2], c) is None  # waits for a1, who is full
    assert eligible(agent("a1"), c, q, at(44))
    assert eligible(a2, c, q, at(45))
    later = choose_agent("longest_idle", [a1, a2], c, q, at(45))
    assert later.agent is not None and later.agent.id == "a2"


def test_direct_routing_to_an_agent_or_a_skill_group() -> None:
    q = queue()
    direct = contact("c", direct_agent_id="a2")
    assert not eligible(agent("a1"), direct, q, at(1))
    assert eligible(agent("a2", skills={}), direct, q, at(1))  # dialled by id: skills don't matter
    assert not eligible(agent("a2", state="not_ready"), direct, q, at(1))
    group = contact("c", direct_group="spanish")
    assert not eligible(agent("a1"), group, q, at(1))
    assert eligible(agent("a1", skills={"billing": 5, "spanish": 1}), group, q, at(1))


def test_business_hours() -> None:
    q = queue(schedule={"hours": {"mon": [("08:00", "17:00")]}}, timezone="Europe/London")
    assert queue_open(q, T0)
    assert not queue_open(q, T0.replace(hour=18))
    assert not queue_open(q, T0 + timedelta(days=1))
    assert queue_open(queue(), T0 + timedelta(days=6))


# --------------------------------------------------------------------------- ordering


def test_priority_then_first_come_first_served() -> None:
    cs = [
        contact("late-low", enqueued_at=at(5)),
        contact("early-low", enqueued_at=at(1)),
        contact("late-high", enqueued_at=at(9), priority=5),
        contact("early-high", enqueued_at=at(2), priority=5),
        contact("future", enqueued_at=at(100), priority=9),
    ]
    assert [c.id for c in order_waiting(cs, at(10))] == ["early-high", "late-high", "early-low", "late-low"]
    assert order_waiting(cs, at(100))[0].id == "future"


# --------------------------------------------------------------------------- strategies


def test_longest_idle() -> None:
    agents = [
        agent("a1", idle_since=at(-10)),
        agent("a2", idle_since=at(-60)),
        agent("a3", idle_since=at(-5)),
    ]
    assert pick("longest_idle", agents) == "a2"
    agents[1] = agent("a2", idle_since=at(-60), state="not_ready")
    assert pick("longest_idle", agents) == "a1"
    assert pick("longest_idle", []) is None


def test_least_occupied() -> None:
    agents = [
        agent("a1", load={"webchat": 2}, idle_since=at(-99)),
        agent("a2", load={"webchat": 1}, idle_since=at(-1)),
        agent("a3", capacity={"webchat": 6}, load={"webchat": 2}, idle_since=at(-50)),
    ]
    assert pick("least_occupied", agents) == "a3"  # 2/6 < 1/3 < 2/3
    agents.append(agent("a4", capacity={"webchat": 6}, load={"webchat": 2}, idle_since=at(-70)))
    assert pick("least_occupied", agents) == "a4"  # tie: longest idle


def test_best_fit() -> None:
    q = queue(skills={"billing": 3, "technical": 2})
    agents = [
        agent("a1", skills={"billing": 9, "technical": 2}, idle_since=at(-99)),
        agent("a2", skills={"billing": 6, "technical": 6}, idle_since=at(-1)),
        agent("a3", skills={"billing": 10, "sales": 10}, idle_since=at(-1)),  # lacks technical
    ]
    choice = choose_agent("best_fit", agents, contact("c"), q, at(1))
    assert choice.agent is not None and choice.agent.id == "a2"  # 12 > 11
    agents.append(agent("a4", skills={"billing": 6, "technical": 6}, idle_since=at(-20)))
    choice = choose_agent("best_fit", agents, contact("c"), q, at(1))
    assert choice.agent is not None and choice.agent.id == "a4"  # tie: longest idle


def test_round_robin_rotates_deterministically() -> None:
    agents = [agent("b"), agent("a"), agent("c")]
    state: dict[str, str] = {}
    picks = []
    for _ in range(4):
        choice = choose_agent("round_robin", agents, contact("x"), queue(), at(1), state)
        assert choice.agent is not None
        picks.append(choice.agent.id)
        state = dict(choice.rr_state)
    assert picks == ["a", "b", "c", "a"]
    # the state passed in is not changed; an unavailable agent is skipped
    agents[0] = agent("b", state="offline")
    choice = choose_agent("round_robin", agents, contact("x"), queue(), at(1), {"q1": "a"})
    assert choice.agent is not None and choice.agent.id == "c"
    assert choice.rr_state == {"q1": "c"}


def test_ring_all_voice_only() -> None:
    agents = [agent("a1", idle_since=at(-5)), agent("a2", idle_since=at(-50)), agent("a3", state="offline")]
    choice = choose_agent("ring_all", agents, contact("c", channel="voice"), queue(), at(1))
    assert [a.id for a in choice.agents] == ["a2", "a1"]
    chat = choose_agent("ring_all", agents, contact("c", channel="webchat"), queue(), at(1))
    assert [a.id for a in chat.agents] == ["a2"]  # falls back to longest idle


# --------------------------------------------------------------------------- escalation


ESCALATING = [
    {"after_s": 30, "action": "relax_skill_levels", "relax_by": 2},
    {"after_s": 60, "action": "relax_skill_levels", "relax_to": 1},
    {"after_s": 90, "action": "overflow_to", "queue_id": "q-overflow"},
    {"after_s": 120, "action": "offer_callback"},
    {"after_s": 150, "action": "offer_voicemail"},
]


def test_each_escalation_step_with_a_fake_clock() -> None:
    q = queue(skills={"billing": 7, "technical": 2}, escalation=ESCALATING)
    c = contact("c")
    r = effective_requirements(q, c, 29.9)
    assert (dict(r.skills), r.queue_id, r.offers, r.next_change_s) == (
        {"billing": 7, "technical": 2},
        "q1",
        frozenset(),
        30,
    )
    r = effective_requirements(q, c, 30)
    assert dict(r.skills) == {"billing": 5, "technical": 1}  # relaxed by 2, never below 1
    r = effective_requirements(q, c, 60)
    assert dict(r.skills) == {"billing": 1, "technical": 1}
    assert effective_requirements(q, c, 89).queue_id == "q1"
    assert effective_requirements(q, c, 90).queue_id == "q-overflow"
    assert effective_requirements(q, c, 119).offers == frozenset()
    assert effective_requirements(q, c, 120).offers == {"callback"}
    r = effective_requirements(q, c, 1000)
    assert r.offers == {"callback", "voicemail"} and r.steps_applied == 5 and r.next_change_s is None


def test_relaxation_makes_a_junior_agent_eligible_over_time() -> None:
    q = queue(skills={"billing": 7}, escalation=ESCALATING[:1])
    junior = agent("a", skills={"billing": 5})
    c = contact("c", enqueued_at=T0)
    assert not eligible(junior, c, q, at(29))
    assert eligible(junior, c, q, at(30))


def test_max_wait_overflows_without_an_explicit_step() -> None:
    q = queue(max_wait_s=45, overflow_queue_id="q2")
    assert effective_requirements(q, contact("c"), 44).queue_id == "q1"
    assert effective_requirements(q, contact("c"), 44).next_change_s == 45
    assert effective_requirements(q, contact("c"), 45).queue_id == "q2"


# --------------------------------------------------------------------------- caller area

AREA_RULES = [
    AreaRule(queue_id="q-california", country="US", region="California"),
    AreaRule(queue_id="q-uk-mobile", country="GB", line="mobile"),
    AreaRule(queue_id="q-kr-mobile", country="KR", line="mobile"),
    AreaRule(queue_id="q-london", prefix="+4420"),
    AreaRule(queue_id="q-us", country="US"),
]


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+1 415 555 2671", "q-california"),  # San Francisco, CA
        ("+1 650 555 0100", "q-california"),
        ("+1 212 555 0100", "q-us"),  # New York: the country rule after it
        ("+44 7400 123456", "q-uk-mobile"),
        ("+44 20 7946 0000", "q-london"),  # fixed line: not the mobile rule
        ("+82 10 1234 5678", "q-kr-mobile"),
        ("+82 2 1234 5678", "q-default"),  # Seoul fixed line
        ("+33 1 23 45 67 89", "q-default"),
        ("not a number", "q-default"),
        ("+1 555", "q-default"),
        ("", "q-default"),
    ],
)
def test_select_queue_by_area(number: str, expected: str) -> None:
    assert select_queue_by_area(number, AREA_RULES, "q-default") == expected


def test_area_by_national_number_and_region_abbreviation() -> None:
    rules = [AreaRule(queue_id="q-sf", region="san francisco"), AreaRule(queue_id="q-ca", region="CA")]
    assert select_queue_by_area("(415) 555-2671", rules, "d", default_region="US") == "q-sf"
    assert select_queue_by_area("+1 650 555 0100", rules, "d") == "d"  # geocoded as "California" only


# --------------------------------------------------------------------------- service level


def test_service_level() -> None:
    assert service_level([], 0, 20) is None
    assert service_level([5, 20, 21, 40], 0, 20) == 0.5
    assert service_level([5, 10, 15, 30], 1, 20) == 0.6  # 3 of 5; the abandon counts against
    assert service_level([], 3, 20) == 0.0


# --------------------------------------------------------------------------- property tests

CHANNELS = ("voice", "webchat", "email")
SKILLS = ("billing", "technical", "sales")


@st.composite
def agents_st(draw: st.DrawFn, n: int) -> list[AgentProfile]:
    out = []
    for i in range(n):
        state: Any = draw(
            st.sampled_from(["available", "available", "busy", "wrapup", "not_ready", "offline"])
        )
        out.append(
            AgentProfile(
                id=f"a{i}",
                tenant_id="t1",
                skills=draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=3)),
                languages=draw(st.lists(st.sampled_from(["en", "ko"]), min_size=1, max_size=2, unique=True)),
                capacity={ch: draw(st.integers(0, 3)) for ch in CHANNELS},
                state=state,
                wrapup_until=at(draw(st.integers(0, 120))) if state == "wrapup" else None,
                idle_since=at(-draw(st.integers(0, 600))),
            )
        )
    return out


@st.composite
def contacts_st(draw: st.DrawFn, n: int, n_agents: int) -> list[WaitingContact]:
    out = []
    for i in range(n):
        preferred = draw(st.none() | st.integers(0, max(0, n_agents - 1)))
        out.append(
            WaitingContact(
                id=f"c{i:03d}",
                tenant_id="t1",
                channel=draw(st.sampled_from(CHANNELS)),
                queue_id=draw(st.sampled_from(["q1", "q2"])),
                priority=draw(st.integers(0, 2)),
                enqueued_at=at(-draw(st.integers(0, 300))),
                skills=draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10), max_size=2)),
                language=draw(st.none() | st.sampled_from(["en", "ko"])),
                preferred_agent_id=None if preferred is None or not n_agents else f"a{preferred}",
                preferred_until=at(draw(st.integers(0, 200))) if preferred is not None else None,
            )
        )
    return out


QUEUES = {
    "q1": Queue(
        id="q1",
        tenant_id="t1",
        name="one",
        skills={"billing": 4},
        escalation=[EscalationStep(after_s=60, action="relax_skill_levels", relax_to=1)],
    ),
    "q2": Queue(id="q2", tenant_id="t1", name="two", strategy="round_robin"),
}

# events: advance the clock, free one slot of an agent, change an agent's state
events_st = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.integers(1, 90)),
        st.tuples(st.just("release"), st.integers(0, 50)),
        st.tuples(
            st.just("state"), st.integers(0, 50), st.sampled_from(["available", "not_ready", "offline"])
        ),
    ),
    max_size=12,
)


def simulate(
    agents: list[AgentProfile], contacts: list[WaitingContact], events: list[tuple[Any, ...]], strategy: str
) -> None:
    """A pure assignment loop over the decision core, checking the invariants at every step."""
    by_id = {a.id: a for a in agents}
    waiting = {c.id: c for c in contacts}
    assigned: dict[str, str] = {}  # contact id -> agent id
    holding: dict[str, list[WaitingContact]] = {a.id: [] for a in agents}
    rr: dict[str, str] = {}
    now = T0

    def assign_round() -> None:
        nonlocal rr
        for c in order_waiting(list(waiting.values()), now):
            q = QUEUES[c.queue_id]
            choice = choose_agent(
                strategy if strategy != "queue" else q.strategy,  # type: ignore[arg-type]
                by_id.values(),
                c,
                q,
                now,
                rr,
            )
            rr = dict(choice.rr_state)
            if choice.agent is None:
                continue
            winner = by_id[choice.agent.id]  # ring-all: the first to answer
            # invariants at the moment of the decision
            assert c.id not in assigned, "contact assigned twice"
            assert eligible(winner, c, q, now), "assigned an ineligible agent"
            for other in order_waiting(waiting.values(), now):
                if other.id == c.id:
                    break
                if other.queue_id == c.queue_id:
                    assert not eligible(winner, other, q, now), "a higher-priority contact was passed over"
            load = dict(winner.load)
            load[c.channel] = load.get(c.channel, 0) + 1
            winner = winner.model_copy(update={"load": load, "last_assigned_at": now})
            by_id[winner.id] = winner
            assigned[c.id] = winner.id
            holding[winner.id].append(c)
            del waiting[c.id]
            for a in by_id.values():
                for ch in CHANNELS:
                    assert a.load.get(ch, 0) <= a.capacity.get(ch, 0), "agent above capacity"

    assign_round()
    for event in events:
        if event[0] == "tick":
            now = now + timedelta(seconds=event[1])
        elif agents and event[0] == "release":
            a = by_id[f"a{event[1] % len(agents)}"]
            if holding[a.id]:
                done = holding[a.id].pop(0)
                load = dict(a.load)
                load[done.channel] -= 1
                by_id[a.id] = a.model_copy(
                    update={"load": load, "state": "wrapup", "wrapup_until": now + timedelta(seconds=10)}
                )
        elif agents and event[0] == "state":
            a = by_id[f"a{event[1] % len(agents)}"]
            by_id[a.id] = a.model_copy(update={"state": event[2], "idle_since": now})
        assign_round()
    assert len(assigned) + len(waiting) == len(contacts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    n_agents=st.integers(0, 8),
    n_contacts=st.integers(0, 25),
    strategy=st.sampled_from([*STRATEGIES, "queue"]),
    events=events_st,
)
def test_assignment_invariants(
    data: st.DataObject, n_agents: int, n_contacts: int, strategy: str, events: list[tuple[Any, ...]]
) -> None:
    agents = data.draw(agents_st(n_agents))
    contacts = data.draw(contacts_st(n_contacts, n_agents))
    simulate(agents, contacts, events, strategy)


@given(
    data=st.data(),
    strategy=st.sampled_from(STRATEGIES),
    channel=st.sampled_from(CHANNELS),
    t=st.integers(0, 300),
)
def test_choice_is_always_eligible_and_deterministic(
    data: st.DataObject, strategy: Any, channel: str, t: int
) -> None:
    agents = data.draw(agents_st(data.draw(st.integers(0, 8))))
    c = contact(
        "c", channel=channel, skills=data.draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 10)))
    )
    q = QUEUES["q1"]
    first = choose_agent(strategy, agents, c, q, at(t), {})
    again = choose_agent(strategy, list(reversed(agents)), c, q, at(t), {})
    assert [a.id for a in first.agents] == [a.id for a in again.agents]
    assert all(eligible(a, c, q, at(t)) for a in first.agents)
    if strategy == "ring_all" and channel == "voice":
        assert {a.id for a in first.agents} == {a.id for a in agents if eligible(a, c, q, at(t))}
    else:
        assert len(first.agents) == (1 if any(eligible(a, c, q, at(t)) for a in agents) else 0)
