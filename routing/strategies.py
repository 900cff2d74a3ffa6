"""The pure decision core of the router: who may take a contact, and who does.

No I/O and no clock: every function takes `now` (a datetime) or a waited time, so a
test's fake clock is just an argument. The live router reads documents, calls these
functions, and makes the chosen assignment atomic in MongoDB.

Round-robin state is a plain mapping {queue_id: last agent id}; `choose_agent`
returns the updated mapping instead of changing anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import phonenumbers
from phonenumbers import PhoneNumberType, geocoder

from bot.ivr import is_open
from routing.model import (
    MIN_LEVEL,
    AgentProfile,
    AreaRule,
    EscalationStep,
    Queue,
    Strategy,
    WaitingContact,
    aware,
)

RING_ALL_CHANNELS = frozenset({"voice"})
Offer = str  # "callback" | "voicemail"


# --------------------------------------------------------------------------- escalation


@dataclass(frozen=True)
class Requirements:
    """What a contact needs right now, after the escalation steps it has reached.

    `queue_id` is where it should be (its own queue, or an overflow target), `offers`
    what the caller may be offered ("callback", "voicemail"), `next_change_s` the wait
    at which the next step applies (None when no step is left) so a scheduler knows
    when to look again.
    """

    skills: Mapping[str, int]
    queue_id: str
    offers: frozenset[Offer] = frozenset()
    steps_applied: int = 0
    next_change_s: float | None = None


def _merge(*levels: Mapping[str, int]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for mapping in levels:
        for skill, level in mapping.items():
            merged[skill] = max(level, merged.get(skill, MIN_LEVEL))
    return merged


def effective_requirements(queue: Queue, contact: WaitingContact, waited_s: float) -> Requirements:
    """Apply the queue's escalation steps reached after `waited_s`, in order of `after_s`.

    Required levels are the queue's, raised by the contact's own. A relax step lowers
    every level by `relax_by` or caps it at `relax_to`, never below 1 (the skill stays
    required). An overflow step sets the target queue (the last one reached wins). A
    queue's `max_wait_s` with an `overflow_queue_id` acts as one more overflow step.
    """
    skills = _merge(queue.skills, contact.skills)
    target = queue.id
    offers: set[Offer] = set()
    steps = list(queue.escalation)
    if queue.max_wait_s is not None and queue.overflow_queue_id:
        steps.append(_implicit_overflow(queue))
        steps.sort(key=lambda s: s.after_s)
    applied = 0
    for step in steps:
        if step.after_s > waited_s:
            return Requirements(skills, target, frozenset(offers), applied, step.after_s)
        applied += 1
        if step.action == "relax_skill_levels":
            if step.relax_by is not None:
                skills = {s: max(MIN_LEVEL, lv - step.relax_by) for s, lv in skills.items()}
            elif step.relax_to is not None:
                skills = {s: max(MIN_LEVEL, min(lv, step.relax_to)) for s, lv in skills.items()}
        elif step.action == "overflow_to" and step.queue_id:
            target = step.queue_id
        elif step.action == "offer_callback":
            offers.add("callback")
        elif step.action == "offer_voicemail":
            offers.add("voicemail")
    return Requirements(skills, target, frozenset(offers), applied, None)


def _implicit_overflow(queue: Queue) -> EscalationStep:
    assert queue.max_wait_s is not None
    return EscalationStep(after_s=queue.max_wait_s, action="overflow_to", queue_id=queue.overflow_queue_id)


# --------------------------------------------------------------------------- eligibility


def is_available(agent: AgentProfile, now: datetime) -> bool:
    """Available, or in a wrap-up whose timer has run out."""
    if agent.state == "available":
        return True
    return (
        agent.state == "wrapup" and agent.wrapup_until is not None and aware(now) >= aware(agent.wrapup_until)
    )


def meets(agent_skills: Mapping[str, int], required: Mapping[str, int]) -> bool:
    return all(agent_skills.get(skill, 0) >= level for skill, level in required.items())


def sticky_active(contact: WaitingContact, now: datetime) -> bool:
    """Whether the contact still waits for its preferred agent only."""
    return (
        contact.preferred_agent_id is not None
        and contact.preferred_until is not None
        and aware(now) < aware(contact.preferred_until)
    )


def eligible(
    agent: AgentProfile,
    contact: WaitingContact,
    queue: Queue,
    now: datetime,
    requirements: Requirements | None = None,
) -> bool:
    """Whether `agent` may be offered `contact` of `queue` at `now`.

    Same tenant, not excluded (a recent decline), available (an expired wrap-up
    counts), a free slot on the contact's channel, the contact's language if it has
    one, and the required skill levels after escalation (`requirements`, computed
    from the wait when not given). A direct route admits only its agent or its skill
    group; a sticky agent alone is eligible until `preferred_until`.
    """
    if agent.tenant_id and contact.tenant_id and agent.tenant_id != contact.tenant_id:
        return False
    if agent.id in contact.excluded_agents:
        return False
    if contact.direct_agent_id is not None and agent.id != contact.direct_agent_id:
        return False
    if contact.direct_group is not None and agent.skills.get(contact.direct_group, 0) < MIN_LEVEL:
        return False
    if sticky_active(contact, now) and agent.id != contact.preferred_agent_id:
        return False
    if not is_available(agent, now) or agent.free(contact.channel) <= 0:
        return False
    if contact.language and contact.language not in agent.languages:
        return False
    if contact.direct_agent_id is not None:
        return True  # dialled by id: the agent's skills don't matter
    reqs = requirements or effective_requirements(queue, contact, contact.waited_s(now))
    return meets(agent.skills, reqs.skills)


def queue_open(queue: Queue, now: datetime) -> bool:
    """Business hours of the queue (always open without a schedule)."""
    return is_open(queue.schedule, queue.timezone, now)


# --------------------------------------------------------------------------- ordering


def order_waiting(contacts: Iterable[WaitingContact], now: datetime) -> list[WaitingContact]:
    """Priority (highest first), then first come first served; ties by id (deterministic).

    Contacts enqueued after `now` (e.g. a callback scheduled for later) are not waiting
    yet and are left out.
    """
    t = aware(now)
    waiting = [c for c in contacts if aware(c.enqueued_at) <= t]
    return sorted(waiting, key=lambda c: (-c.priority, aware(c.enqueued_at), c.id))


# --------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Choice:
    """The agents to offer the contact to: one, all eligible (ring-all), or none."""

    agents: tuple[AgentProfile, ...]
    rr_state: Mapping[str, str] = field(default_factory=dict)

    @property
    def agent(self) -> AgentProfile | None:
        return self.agents[0] if self.agents else None


def _idle_key(agent: AgentProfile, now: datetime) -> tuple[datetime, str]:
    """Longest idle first; an agent without idle_since counts as idle since now."""
    return (aware(agent.idle_since or now), agent.id)


def _occupancy(agent: AgentProfile, channel: str) -> float:
    capacity = agent.capacity.get(channel, 0)
    return agent.load.get(channel, 0) / capacity if capacity else 1.0


def choose_agent(
    strategy: Strategy,
    candidates: Iterable[AgentProfile],
    contact: WaitingContact,
    queue: Queue,
    now: datetime,
    rr_state: Mapping[str, str] | None = None,
) -> Choice:
    """Pick among the eligible candidates (ineligible ones are filtered out here).

    - longest_idle: the earliest `idle_since`;
    - least_occupied: the lowest load/capacity on the contact's channel, then longest idle;
    - best_fit: the highest summed level over the required skills, then longest idle;
    - round_robin: the next agent id after the queue's last one in `rr_state`
      (sorted ids, wrapping around); the returned state records the pick;
    - ring_all: every eligible agent, longest idle first (voice only; on other
      channels it falls back to longest_idle).
    """
    state = dict(rr_state or {})
    reqs = effective_requirements(queue, contact, contact.waited_s(now))
    pool = [a for a in candidates if eligible(a, contact, queue, now, reqs)]
    if not pool:
        return Choice((), state)
    if strategy == "ring_all":
        if contact.channel in RING_ALL_CHANNELS:
            return Choice(tuple(sorted(pool, key=lambda a: _idle_key(a, now))), state)
        strategy = "longest_idle"
    if strategy == "longest_idle":
        pick = min(pool, key=lambda a: _idle_key(a, now))
    elif strategy == "least_occupied":
        pick = min(pool, key=lambda a: (_occupancy(a, contact.channel), *_idle_key(a, now)))
    elif strategy == "best_fit":
        pick = min(
            pool,
            key=lambda a: (-sum(a.skills.get(s, 0) for s in reqs.skills), *_idle_key(a, now)),
        )
    elif strategy == "round_robin":
        ordered = sorted(pool, key=lambda a: a.id)
        last = state.get(queue.id)
        pick = next((a for a in ordered if last is None or a.id > last), ordered[0])
        state[queue.id] = pick.id
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    return Choice((pick,), state)


# --------------------------------------------------------------------------- caller area

_US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
}  # fmt: skip

_MOBILE = {PhoneNumberType.MOBILE}
_FIXED = {PhoneNumberType.FIXED_LINE}


@dataclass(frozen=True)
class CallerArea:
    """What the caller's number tells: ISO country, geocoded place names, line type."""

    e164: str
    country: str | None
    places: frozenset[str]
    line: str | None  # "mobile", "fixed", or None when unknown or ambiguous


def caller_area(number: str, default_region: str | None = None) -> CallerArea | None:
    """Parse a number (E.164, or national with `default_region`); None if not a valid number.

    The place names come from phonenumbers' offline geocoder ("San Francisco, CA" gives
    {"san francisco", "ca", "california"}). Numbers the library cannot tell apart as
    mobile or fixed (e.g. in the US) have line None and match neither kind of rule.
    """
    try:
        parsed = phonenumbers.parse(number, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    country = phonenumbers.region_code_for_number(parsed)
    places: set[str] = set()
    for part in geocoder.description_for_number(parsed, "en").split(","):
        name = part.strip()
        if name:
            places.add(name.casefold())
            if country == "US" and name.upper() in _US_STATES:
                places.add(_US_STATES[name.upper()].casefold())
    kind = phonenumbers.number_type(parsed)
    line = "mobile" if kind in _MOBILE else "fixed" if kind in _FIXED else None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return CallerArea(e164, country, frozenset(places), line)


def area_matches(area: CallerArea, rule: AreaRule) -> bool:
    if rule.country and area.country != rule.country:
        return False
    if rule.prefix and not area.e164.startswith(rule.prefix):
        return False
    if rule.line and area.line != rule.line:
        return False
    return not (rule.region and rule.region.strip().casefold() not in area.places)


def select_queue_by_area(
    number: str | None,
    rules: Sequence[AreaRule],
    default: str,
    default_region: str | None = None,
) -> str:
    """The queue of the first rule the caller's number matches, else `default`.

    An unknown, unparsable or invalid number goes to `default`.
    """
    if not number:
        return default
    area = caller_area(number, default_region)
    if area is None:
        return default
    for rule in rules:
        if area_matches(area, rule):
            return rule.queue_id
    return default


# --------------------------------------------------------------------------- service level


def service_level(answered_waits: Iterable[float], abandoned: int, threshold_s: float) -> float | None:
    """Share of contacts answered within `threshold_s`, abandoned ones counting against.

    SL = answered within T / (answered + abandoned): every contact that entered the
    queue and ended (answered or abandoned) is in the denominator, whatever its wait.
    A wait exactly equal to T counts as within. None when there are no contacts yet.
    """
    waits = list(answered_waits)
    total = len(waits) + abandoned
    if total == 0:
        return None
    return sum(1 for w in waits if w <= threshold_s) / total
