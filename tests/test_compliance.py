"""Outbound compliance: the dial-time decision, do-not-contact lists, opt-outs, approvals.

The properties check `routing.compliance.check` against an independent oracle written
with the stored schedule strings and zoneinfo directly, over random numbers from many
regions (multi-zone ones included), any UTC instant (DST change days weighted in),
random lists, windows, holidays and frequency caps, and a floor of several campaigns
dialling through the same lists. The rest runs on the real embedded database and a real
hub process over HTTP.
"""

from __future__ import annotations

import io
import wave
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from phonenumbers import timezone as phone_timezone

from hub.context import AppContext
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from knowledge.dnc import (
    DncEntry,
    DncError,
    active_entries,
    add_entries,
    add_entry,
    opt_out,
    remove_entry,
)
from routing.approvals import approved_caller_id, approved_prompt
from routing.compliance import (
    BLACK_LIST,
    FREQUENCY_CAP,
    GREY_LIST,
    HOLIDAY,
    INVALID_NUMBER,
    NO_WINDOW,
    OUTSIDE_WINDOW,
    RED_LIST,
    CallingRules,
    Decision,
    RulesError,
    check,
    may_dial,
    may_dial_many,
)
from tests.conftest import context_for
from tests.support import Agent, HubProcess

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NUMBERS = [
    "+12125551234",  # New York
    "+14155550123",  # Los Angeles
    "+13125550123",  # Chicago
    "+18085550123",  # Honolulu
    "+19075550123",  # Alaska: Adak and Anchorage
    "+17095550123",  # Newfoundland and Labrador: St John's (UTC-3:30) and Halifax
    "+18005551234",  # toll free: 42 zones from Guam to Pago Pago
    "+442079460000",  # London
    "+447911123456",  # UK mobile: London, Jersey, Guernsey, Isle of Man
    "+8613800138000",  # China mobile
    "+4930123456",  # Berlin
    "+61298765432",  # Sydney
    "+61412345678",  # Australian mobile: Perth to Lord Howe (UTC+10:30)
    "+79161234567",  # Russian mobile: 16 zones, Bucharest to Anadyr
    "+919876543210",  # India (UTC+5:30)
    "+97714212345",  # Nepal (UTC+5:45)
    "+80012345678",  # international freephone: no zone, the fallback applies
    "+15555550123",  # not a valid number
]
# Instants near DST changes in the zones above (US, EU, AU, Lord Howe's half hour).
TRANSITIONS = [
    datetime(2026, 3, 8, 7, tzinfo=UTC),
    datetime(2026, 11, 1, 6, tzinfo=UTC),
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 4, 4, 16, tzinfo=UTC),
    datetime(2026, 10, 3, 16, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),
]


# --- the oracle: the stored schedule's strings and zoneinfo, nothing from routing.compliance


def oracle_zones(number: str, fallback: str) -> list[ZoneInfo] | None:
    parsed = phonenumbers.parse(number, None)
    if not phonenumbers.is_valid_number(parsed):
        return None
    names = [n for n in phone_timezone.time_zones_for_number(parsed) if n != "Etc/Unknown"]
    return [ZoneInfo(n) for n in names] or [ZoneInfo(fallback)]


def oracle_open(number: str, at: datetime, schedule: dict[str, Any]) -> bool:
    """Every zone of the number is inside a window of its local weekday, off a holiday."""
    zones = oracle_zones(number, schedule.get("timezone_fallback") or "UTC")
    assert zones is not None
    windows = schedule.get("windows")
    if windows is None:
        windows = {day: [["08:00", "21:00"]] for day in DAYS}
    for zone in zones:
        local = at.astimezone(zone)
        if local.date().isoformat() in schedule.get("holidays", []):
            return False
        clock = local.strftime("%H:%M:%S.%f")
        spans = windows.get(DAYS[local.weekday()], [])
        if not any(f"{start}:00.000000" <= clock < f"{end}:00.000000" for start, end in spans):
            return False
    return True


# --- strategies


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def windows_of_a_day(draw: st.DrawFn) -> list[list[str]]:
    spans = []
    for _ in range(draw(st.integers(0, 2))):
        start = draw(st.integers(0, 23 * 60 + 45))
        end = draw(st.integers(start + 15, 24 * 60))
        spans.append([clock(start), clock(end)])
    return spans


@st.composite
def schedules(draw: st.DrawFn, around: datetime) -> dict[str, Any]:
    schedule: dict[str, Any] = {}
    if draw(st.booleans()):
        schedule["windows"] = {day: draw(windows_of_a_day()) for day in DAYS if draw(st.integers(0, 5)) > 0}
    schedule["holidays"] = sorted(
        {
            (around.date() + timedelta(days=d)).isoformat()
            for d in draw(st.lists(st.integers(-2, 12), max_size=4))
        }
    )
    schedule["timezone_fallback"] = draw(st.sampled_from(["UTC", "Asia/Tokyo", "America/New_York"]))
    return schedule


instants = st.one_of(
    st.datetimes(datetime(2000, 1, 1), datetime(2060, 12, 31), timezones=st.just(UTC)),
    st.builds(
        lambda t, m: t + timedelta(minutes=m), st.sampled_from(TRANSITIONS), st.integers(-26 * 60, 26 * 60)
    ),
)


def entry_for(number: str, list_name: str, expires_at: datetime | None) -> DncEntry:
    return DncEntry(
        id=new_id(),
        tenant_id="t",
        number=number,
        list=list_name,
        reason="test",
        expires_at=expires_at,
        source="manual",
        campaign_id=None,
        created_by=None,
        created_at=datetime(2000, 1, 1, tzinfo=UTC),
    )


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    now = draw(instants)
    number = draw(st.sampled_from(NUMBERS))
    entry = None
    if draw(st.booleans()):
        expiry = draw(st.one_of(st.none(), st.integers(-200, 200)))
        entry = entry_for(
            number,
            draw(st.sampled_from(["black", "red", "grey"])),
            None if expiry is None else now + timedelta(hours=expiry),
        )
    last = draw(st.one_of(st.none(), st.integers(0, 70 * 24 * 60).map(lambda m: now - timedelta(minutes=m))))
    return {
        "now": now,
        "number": number,
        "schedule": draw(schedules(now)),
        "frequency_days": draw(st.sampled_from([0, 1, 7, 30, 45.5])),
        "entry": entry,
        "last": last,
        "confirmed": draw(st.booleans()),
    }


# --- properties of the decision


@settings(max_examples=600, deadline=None)
@given(case=cases())
def test_decision_matches_the_rules(case: dict[str, Any]) -> None:
    now, number, schedule, entry, last = (case[k] for k in ("now", "number", "schedule", "entry", "last"))
    rules = CallingRules.from_schedule(schedule, case["frequency_days"])
    decision = check(number, now, rules, entry, last, confirmed=case["confirmed"])
    event(decision.reason)
    active = entry is not None and (entry.expires_at is None or entry.expires_at > now)
    blocked_list = active and entry is not None and entry.list in ("black", "red")
    if blocked_list:
        assert entry is not None
        assert not decision.allowed and decision.retry_at is None
        assert decision.reason == (BLACK_LIST if entry.list == "black" else RED_LIST)
        return
    if oracle_zones(number, "UTC") is None:
        assert decision == Decision(False, INVALID_NUMBER)
        return
    frequency_ok = (
        last is None or case["frequency_days"] == 0 or now >= last + timedelta(days=case["frequency_days"])
    )
    grey_waits = active and entry is not None and entry.list == "grey" and not case["confirmed"]
    inside = oracle_open(number, now, schedule)
    # allowed exactly when every rule holds: never more, and not less
    assert decision.allowed == (inside and frequency_ok and not grey_waits), decision
    if decision.allowed:
        return
    if decision.reason in (OUTSIDE_WINDOW, HOLIDAY):
        assert not inside and frequency_ok
    if decision.reason == HOLIDAY:
        zones = oracle_zones(number, schedule["timezone_fallback"]) or []
        assert any(now.astimezone(z).date().isoformat() in schedule["holidays"] for z in zones)
    if decision.reason == FREQUENCY_CAP:
        assert not frequency_ok
    if decision.reason == GREY_LIST:
        assert decision.needs_confirmation and inside and frequency_ok and decision.retry_at is None
    else:
        assert not decision.needs_confirmation
    if decision.retry_at is not None:
        start = now if frequency_ok else max(now, last + timedelta(days=case["frequency_days"]))
        assert decision.retry_at >= start
        assert oracle_open(number, decision.retry_at, schedule), "retry_at is outside the window"
        if decision.retry_at - timedelta(seconds=1) >= start:
            # the earliest such moment: a second before, some zone was still closed
            assert not oracle_open(number, decision.retry_at - timedelta(seconds=1), schedule)
    else:
        assert decision.reason in (NO_WINDOW, GREY_LIST)


@st.composite
def floors(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(instants)
    campaigns = [
        {
            "schedule": draw(schedules(start)),
            "frequency_days": draw(st.sampled_from([0, 1, 3, 30])),
            "numbers": draw(st.lists(st.sampled_from(NUMBERS[:-1]), min_size=1, max_size=6, unique=True)),
        }
        for _ in range(draw(st.integers(1, 4)))
    ]
    lists = {
        number: draw(st.sampled_from(["black", "red", "grey"]))
        for number in draw(st.lists(st.sampled_from(NUMBERS), max_size=5, unique=True))
    }
    steps = draw(st.lists(st.integers(1, 36 * 60), min_size=1, max_size=25))
    opt_outs = draw(st.lists(st.tuples(st.integers(0, 24), st.sampled_from(NUMBERS)), max_size=3))
    return {"start": start, "campaigns": campaigns, "lists": lists, "steps": steps, "opt_outs": opt_outs}


@settings(max_examples=150, deadline=None)
@given(floor=floors())
def test_no_campaign_mix_dials_a_listed_number_off_hours_or_too_often(floor: dict[str, Any]) -> None:
    """Campaigns with their own windows and caps dial through shared lists while the clock
    runs and customers opt out; every dial any of them makes must respect every rule."""
    lists: dict[str, DncEntry] = {n: entry_for(n, kind, None) for n, kind in floor["lists"].items()}
    rules = [CallingRules.from_schedule(c["schedule"], c["frequency_days"]) for c in floor["campaigns"]]
    last: dict[str, datetime] = {}
    log: list[tuple[datetime, str, int]] = []
    now = floor["start"]
    for step, minutes in enumerate(floor["steps"]):
        for when, number in floor["opt_outs"]:
            if when == step:
                lists[number] = entry_for(number, "black", None)
        for index, campaign in enumerate(floor["campaigns"]):
            for number in campaign["numbers"]:
                if check(number, now, rules[index], lists.get(number), last.get(number)).allowed:
                    log.append((now, number, index))
                    last[number] = now  # every call is answered: the strictest case
        now += timedelta(minutes=minutes)
    event("dialled" if log else "nothing dialled")
    for at, number, index in log:
        campaign = floor["campaigns"][index]
        assert floor["lists"].get(number) not in ("black", "red", "grey")  # grey: never automatic
        assert oracle_open(number, at, campaign["schedule"])
        earlier = [t for t, n, _ in log if n == number and t < at]
        if earlier and campaign["frequency_days"]:
            assert at - max(earlier) >= timedelta(days=campaign["frequency_days"])
    for when, number in floor["opt_outs"]:
        opted_at = floor["start"] + timedelta(minutes=sum(floor["steps"][:when]))
        if when < len(floor["steps"]):
            assert not [t for t, n, _ in log if n == number and t >= opted_at]


# --- examples


def test_new_york_at_20_59_and_21_00_local() -> None:
    rules = CallingRules()
    ny = ZoneInfo("America/New_York")
    ok = check("+12125551234", datetime(2026, 7, 1, 20, 59, 59, tzinfo=ny), rules, None, None)
    assert ok.allowed
    late = check("+12125551234", datetime(2026, 7, 1, 21, 0, tzinfo=ny), rules, None, None)
    assert late.reason == OUTSIDE_WINDOW and late.retry_at == datetime(2026, 7, 2, 8, 0, tzinfo=ny)
    early = check("+12125551234", datetime(2026, 7, 2, 7, 59, tzinfo=ny), rules, None, None)
    assert not early.allowed and early.retry_at == datetime(2026, 7, 2, 12, 0, tzinfo=UTC)
    # the same instant is fine for Los Angeles (18:00 there)
    assert check("+14155550123", datetime(2026, 7, 1, 21, 0, tzinfo=ny), rules, None, None).allowed


def test_dst_change_days() -> None:
    rules = CallingRules()
    # spring forward (2026-03-08): 08:00 EDT is 12:00 UTC, not 13:00
    night = check("+12125551234", datetime(2026, 3, 8, 3, 0, tzinfo=UTC), rules, None, None)
    assert night.retry_at == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert not check("+12125551234", datetime(2026, 3, 8, 11, 59, tzinfo=UTC), rules, None, None).allowed
    assert check("+12125551234", datetime(2026, 3, 8, 12, 0, tzinfo=UTC), rules, None, None).allowed
    # fall back (2026-11-01): 08:00 EST is 13:00 UTC
    night = check("+12125551234", datetime(2026, 11, 1, 1, 30, tzinfo=UTC), rules, None, None)
    assert night.retry_at == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)
    assert not check("+12125551234", datetime(2026, 11, 1, 12, 30, tzinfo=UTC), rules, None, None).allowed
    # London on 2026-03-29: 21:00 BST is 20:00 UTC
    assert not check("+442079460000", datetime(2026, 3, 29, 20, 0, tzinfo=UTC), rules, None, None).allowed
    assert check("+442079460000", datetime(2026, 3, 28, 20, 30, tzinfo=UTC), rules, None, None).allowed
    # a window that opens inside the skipped hour opens when the clocks jump (03:00 EDT)
    gap = CallingRules.from_schedule({"windows": {"sun": [["02:30", "05:00"]]}})
    jump = check("+12125551234", datetime(2026, 3, 8, 5, 0, tzinfo=UTC), gap, None, None)
    assert jump.retry_at == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    # a window inside the repeated hour is open again after the clocks go back
    twice = CallingRules.from_schedule({"windows": {"sun": [["01:15", "01:45"]]}})
    again = check("+12125551234", datetime(2026, 11, 1, 5, 50, tzinfo=UTC), twice, None, None)
    assert again.retry_at == datetime(2026, 11, 1, 6, 15, tzinfo=UTC)


def test_every_zone_of_a_number_must_be_open() -> None:
    rules = CallingRules()
    anchorage = ZoneInfo("America/Anchorage")
    # 08:30 in Anchorage is 07:30 on Adak: wait for Adak's 08:00
    early = check("+19075550123", datetime(2026, 7, 1, 8, 30, tzinfo=anchorage), rules, None, None)
    assert early.retry_at == datetime(2026, 7, 1, 9, 0, tzinfo=anchorage)
    assert check("+19075550123", datetime(2026, 7, 1, 20, 30, tzinfo=anchorage), rules, None, None).allowed
    # a UK mobile may be in Jersey (same time as London): one window
    assert check("+447911123456", datetime(2026, 7, 1, 19, 0, tzinfo=UTC), rules, None, None).allowed
    # no zone known: the fallback zone of the rules
    tokyo = CallingRules.from_schedule({"timezone_fallback": "Asia/Tokyo"})
    assert check("+80012345678", datetime(2026, 7, 1, 3, 0, tzinfo=UTC), tokyo, None, None).allowed
    assert not check("+80012345678", datetime(2026, 7, 1, 13, 0, tzinfo=UTC), tokyo, None, None).allowed
    # nothing suits every zone: no retry
    tight = CallingRules.from_schedule({"windows": {d: [["12:00", "13:00"]] for d in DAYS}})
    never = check("+79161234567", datetime(2026, 7, 1, tzinfo=UTC), tight, None, None)
    assert never.reason == NO_WINDOW and never.retry_at is None
    assert check("+15555550123", datetime(2026, 7, 1, tzinfo=UTC), rules, None, None).reason == INVALID_NUMBER


def test_holidays_are_the_recipients_local_dates() -> None:
    rules = CallingRules.from_schedule({"holidays": ["2026-12-25"]})
    at = datetime(2026, 12, 24, 23, 0, tzinfo=UTC)  # the 25th 10:00 in Sydney, the 24th in New York
    sydney = check("+61298765432", at, rules, None, None)
    assert sydney.reason == HOLIDAY
    assert sydney.retry_at == datetime(2026, 12, 26, 8, 0, tzinfo=ZoneInfo("Australia/Sydney"))
    assert check("+12125551234", at, rules, None, None).allowed


def test_lists_frequency_and_confirmation() -> None:
    rules = CallingRules()
    now = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)  # noon in New York
    number = "+12125551234"
    assert check(number, now, rules, entry_for(number, "black", None), None).reason == BLACK_LIST
    assert check(number, now, rules, entry_for(number, "red", None), None, confirmed=True).reason == RED_LIST
    expired = entry_for(number, "black", now - timedelta(seconds=1))
    assert check(number, now, rules, expired, None).allowed
    grey = check(number, now, rules, entry_for(number, "grey", None), None)
    assert not grey.allowed and grey.needs_confirmation and grey.reason == GREY_LIST
    assert check(number, now, rules, entry_for(number, "grey", None), None, confirmed=True).allowed
    capped = check(number, now, rules, None, now - timedelta(days=29))
    assert capped.reason == FREQUENCY_CAP and capped.retry_at == now + timedelta(days=1)
    late_call = datetime(2026, 6, 2, 3, 0, tzinfo=UTC)  # 23:00 in New York: 30 days on is night
    night = check(number, now, rules, None, late_call)
    assert night.reason == FREQUENCY_CAP
    assert night.retry_at == datetime(2026, 7, 2, 12, 0, tzinfo=UTC)  # then 08:00 local
    assert check(number, now, rules, None, now - timedelta(days=30)).allowed
    assert check(number, now, CallingRules(frequency_days=0), None, now).allowed


def test_schedules_are_validated_and_round_trip() -> None:
    schedule = {
        "windows": {"mon": [["09:00", "12:00"], ["13:00", "17:30"]], "sat": [["10:00", "24:00"]]},
        "holidays": ["2026-12-25"],
        "timezone_fallback": "Europe/Berlin",
    }
    rules = CallingRules.from_schedule(schedule, 14)
    assert rules.to_schedule() == schedule and rules.frequency_days == 14
    assert CallingRules.of_campaign({"schedule": schedule, "frequency_days": 14}) == rules
    assert CallingRules.from_schedule(None) == CallingRules()
    for bad in (
        {"windows": {"monday": [["09:00", "12:00"]]}},
        {"windows": {"mon": [["12:00", "09:00"]]}},
        {"windows": {"mon": [["9am", "12:00"]]}},
        {"windows": {"mon": [["24:00", "24:00"]]}},
        {"holidays": ["25/12/2026"]},
        {"timezone_fallback": "Mars/Olympus"},
    ):
        with pytest.raises(RulesError):
            CallingRules.from_schedule(bad)


# --- the lists and may_dial on the real database


async def test_strongest_active_entry_and_expiry(ctx: AppContext) -> None:
    tenant, other = new_id(), new_id()
    now = utcnow()
    await add_entry(ctx, tenant, "+1 212 555 1234", "grey", reason="complained once")
    red = await add_entry(
        ctx, tenant, "(212) 555-1234", "red", reason="VIP", expires_at=now + timedelta(days=1)
    )
    await add_entry(ctx, tenant, "+442079460000", "black", expires_at=now - timedelta(minutes=1))
    await add_entry(ctx, other, "+4930123456", "black")
    found = await active_entries(ctx, tenant, ["+12125551234", "+442079460000", "+4930123456"], now)
    assert set(found) == {"+12125551234"} and found["+12125551234"].list == "red"
    assert red.number == "+12125551234" and red.reason == "VIP"
    black = await add_entry(ctx, tenant, "+12125551234", "black", reason="abusive")
    assert (await active_entries(ctx, tenant, ["+12125551234"], now))["+12125551234"].id == black.id
    assert await remove_entry(ctx, other, black.id) is None  # not theirs
    assert (await remove_entry(ctx, tenant, black.id)) is not None
    assert (await active_entries(ctx, tenant, ["+12125551234"], now))["+12125551234"].list == "red"
    # red expires tomorrow: the grey entry is what is left then
    later = await active_entries(ctx, tenant, ["+12125551234"], now + timedelta(days=2))
    assert later["+12125551234"].list == "grey"
    with pytest.raises(DncError, match="not a valid phone number"):
        await add_entry(ctx, tenant, "+1 555 555 0123", "black")
    with pytest.raises(DncError, match="not a phone number"):
        await add_entry(ctx, tenant, "call me", "black")
    with pytest.raises(DncError, match="list must be"):
        await add_entry(ctx, tenant, "+12125551234", "pink")


async def test_adding_again_keeps_the_longer_expiry_and_the_opt_out(ctx: AppContext) -> None:
    tenant = new_id()
    now = utcnow()
    first = await add_entry(ctx, tenant, "+4930123456", "black", expires_at=now + timedelta(days=10))
    again = await add_entry(ctx, tenant, "+4930123456", "black", expires_at=now + timedelta(days=2))
    assert again.id == first.id and again.expires_at == first.expires_at
    forever = await add_entry(ctx, tenant, "+4930123456", "black")
    assert forever.expires_at is None
    opted = await opt_out(ctx, tenant, "+4930123456", "sms_stop")
    assert opted.entry.source == "sms_stop" and opted.entry.expires_at is None
    imported = await add_entry(ctx, tenant, "+4930123456", "black", reason="import", source="import")
    assert imported.source == "sms_stop" and imported.reason.startswith("opted out")
    bulk = await add_entries(
        ctx, tenant, ["+4930123456", "030 123456", "+442079460000", "nonsense"], "black", default_region="DE"
    )
    assert (bulk.added, bulk.refreshed) == (1, 1) and [n for n, _ in bulk.invalid] == ["nonsense"]
    found = await active_entries(ctx, tenant, ["+4930123456"], now)
    assert found["+4930123456"].source == "sms_stop"


async def test_opt_out_skips_pending_targets_in_every_campaign(ctx: AppContext) -> None:
    tenant, other = new_id(), new_id()
    number = "+14155550123"
    targets = [
        {"campaign_id": "c1", "tenant_id": tenant, "status": "pending"},
        {"campaign_id": "c2", "tenant_id": tenant, "status": "pending"},
        {"campaign_id": "c3", "tenant_id": tenant, "status": "done"},
        {"campaign_id": "c4", "tenant_id": other, "status": "pending"},
    ]
    ids = []
    for target in targets:
        ids.append(new_id())
        await ctx.db.campaign_targets.insert_one(
            {"_id": ids[-1], "number": number, "attempts": 0, "last_outcome": None, **target}
        )
    done = await opt_out(ctx, tenant, "(415) 555-0123", "opt_out_key", campaign_id="c1", by="robot")
    assert done.targets_skipped == 2 and done.entry.list == "black" and done.entry.campaign_id == "c1"
    states = {d["campaign_id"]: d async for d in ctx.db.campaign_targets.find({"_id": {"$in": ids}})}
    assert [states[c]["status"] for c in ("c1", "c2", "c3", "c4")] == [
        "skipped",
        "skipped",
        "done",
        "pending",
    ]
    assert states["c1"]["last_outcome"] == "opted_out" and states["c3"]["last_outcome"] is None
    decision = await may_dial(ctx, tenant, CallingRules(), number, datetime(2026, 7, 1, 19, tzinfo=UTC))
    assert decision.reason == BLACK_LIST
    assert (await may_dial(ctx, other, CallingRules(), number, datetime(2026, 7, 1, 19, tzinfo=UTC))).allowed
    with pytest.raises(DncError, match="opt-out source"):
        await opt_out(ctx, tenant, number, "manual")


async def test_may_dial_counts_answered_calls_of_every_campaign(ctx: AppContext) -> None:
    tenant, other = new_id(), new_id()
    now = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)
    a, b, c = "+12125551234", "+13125550123", "+14155550123"

    async def attempt(tenant_id: str, number: str, days_ago: float, answered: bool) -> None:
        placed = now - timedelta(days=days_ago)
        await ctx.db.dial_attempts.insert_one(
            {
                "_id": new_id(),
                "tenant_id": tenant_id,
                "campaign_id": new_id(),
                "number": number,
                "placed_at": placed,
                "answered_at": placed + timedelta(seconds=9) if answered else None,
                "outcome": "answered" if answered else "no_answer",
            }
        )

    await attempt(tenant, a, 40, True)
    await attempt(tenant, a, 12, True)  # another campaign, 12 days ago
    await attempt(tenant, b, 1, False)  # rang, nobody answered
    await attempt(other, c, 1, True)  # another tenant's customer
    rules = CallingRules()
    decisions = await may_dial_many(ctx, tenant, rules, [a, b, c], now)
    retry_at = decisions[a].retry_at
    assert decisions[a].reason == FREQUENCY_CAP and retry_at is not None
    assert retry_at - (now - timedelta(days=12)) >= timedelta(days=30)
    assert decisions[b].allowed and decisions[c].allowed
    assert not (await may_dial(ctx, other, rules, c, now)).allowed
    assert (await may_dial(ctx, tenant, CallingRules(frequency_days=7), a, now)).allowed


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from(NUMBERS[:-1]),
            st.sampled_from(["black", "red", "grey"]),
            st.one_of(st.none(), st.integers(-48, 48)),
        ),
        max_size=8,
    ),
    answered=st.lists(st.tuples(st.sampled_from(NUMBERS[:-1]), st.integers(0, 60 * 24)), max_size=6),
    now=st.datetimes(datetime(2024, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
)
async def test_may_dial_agrees_with_check_on_stored_lists(
    ctx: AppContext, entries: list[Any], answered: list[Any], now: datetime
) -> None:
    """Whatever is stored, the database path decides as `check` does on the same facts."""
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    tenant = new_id()
    stored: dict[tuple[str, str], DncEntry] = {}
    for number, kind, hours in entries:
        expires = None if hours is None else now + timedelta(hours=hours)
        await ctx.db.dnc_entries.delete_many({"tenant_id": tenant, "number": number, "list": kind})
        stored[(number, kind)] = await add_entry(ctx, tenant, number, kind, expires_at=expires)
    rank = {"black": 3, "red": 2, "grey": 1}
    strongest: dict[str, DncEntry] = {}
    for (number, kind), entry in stored.items():
        held = strongest.get(number)
        if entry.active(now) and (held is None or rank[kind] > rank[held.list]):
            strongest[number] = entry
    last: dict[str, datetime] = {}
    for number, minutes in answered:
        at = now - timedelta(minutes=minutes)
        await ctx.db.dial_attempts.insert_one(
            {"_id": new_id(), "tenant_id": tenant, "number": number, "answered_at": at, "outcome": "answered"}
        )
        last[number] = max(last.get(number, at), at)
    rules = CallingRules(frequency_days=0.5)
    decisions = await may_dial_many(ctx, tenant, rules, NUMBERS[:-1], now)
    for number in NUMBERS[:-1]:
        assert decisions[number] == check(number, now, rules, strongest.get(number), last.get(number))


# --- HTTP: the DNC API, opt-out, approvals


STAFF = {
    "agents": {"sam": [], "ada": [], "ann": ["general"]},
    "roles": {"sam": ["supervisor"], "ada": ["admin"]},
}


async def signed_in(hub: HubProcess, tenant: dict[str, Any], name: str) -> Agent:
    client = Agent(hub.url, tenant["slug"], f"{name}@t.test")
    await client.login()
    return client


async def test_dnc_api_roles_filters_and_tenants(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, **STAFF)
    other = await tenant_in(hub_nobot, **STAFF)
    sam, ada, ann = [await signed_in(hub_nobot, t, n) for n in ("sam", "ada", "ann")]
    sam2 = await signed_in(hub_nobot, other, "sam")
    future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    one = await sam.http.post(
        "/api/dnc",
        json={"number": "(212) 555-1234", "list": "black", "reason": "asked", "expires_at": future},
    )
    assert one.status_code == 201, one.text
    entry = one.json()
    assert entry["number"] == "+12125551234" and entry["active"] and entry["source"] == "manual"
    bulk = await sam.http.post(
        "/api/dnc",
        json={
            "numbers": ["030 123456", "+4930123456", "030 123456", "garbage"],
            "list": "grey",
            "region": "DE",
        },
    )
    assert bulk.status_code == 201 and bulk.json()["added"] == 1
    assert [i["number"] for i in bulk.json()["invalid"]] == ["garbage"]
    bad = await sam.http.post("/api/dnc", json={"number": "+15555550123", "list": "black"})
    assert bad.status_code == 422 and "not a valid phone number" in bad.json()["detail"]
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    bad = await sam.http.post("/api/dnc", json={"number": "+12125551234", "list": "red", "expires_at": past})
    assert bad.status_code == 422
    assert (
        await sam.http.post("/api/dnc", json={"number": "+12125551234", "list": "pink"})
    ).status_code == 422
    listed = (await sam.http.get("/api/dnc", params={"list": "grey"})).json()
    assert listed["total"] == 1 and listed["entries"][0]["number"] == "+4930123456"
    by_number = (await ada.http.get("/api/dnc", params={"number": "212-555-1234"})).json()
    assert [e["id"] for e in by_number["entries"]] == [entry["id"]]
    # agents keep no lists; another tenant sees nothing and deletes nothing
    assert (await ann.http.get("/api/dnc")).status_code == 403
    assert (
        await ann.http.post("/api/dnc", json={"number": "+12125551234", "list": "red"})
    ).status_code == 403
    assert (await sam2.http.get("/api/dnc")).json() == {"entries": [], "total": 0}
    assert (await sam2.http.delete(f"/api/dnc/{entry['id']}")).status_code == 404
    assert (await sam.http.delete(f"/api/dnc/{entry['id']}")).status_code == 204
    assert (await sam.http.delete(f"/api/dnc/{entry['id']}")).status_code == 404
    # an agent's click; only an admin can take an opt-out back
    click = await ann.http.post("/api/dnc/opt-out", json={"number": "+1 415 555 0123"})
    assert click.status_code == 200, click.text
    opted = click.json()["entry"]
    assert opted["source"] == "agent" and opted["list"] == "black" and opted["expires_at"] is None
    assert (await ann.http.post("/api/dnc/opt-out", json={"number": "x"})).status_code == 422
    foreign = await ann.http.post(
        "/api/dnc/opt-out", json={"number": "+14155550123", "campaign_id": new_id()}
    )
    assert foreign.status_code == 404
    assert (await sam.http.delete(f"/api/dnc/{opted['id']}")).status_code == 403
    assert (await sam2.http.delete(f"/api/dnc/{opted['id']}")).status_code == 404
    assert (await ada.http.delete(f"/api/dnc/{opted['id']}")).status_code == 204
    for client in (sam, ada, ann, sam2):
        await client.close()


async def test_opt_out_over_http_skips_targets_of_two_campaigns(
    hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase
) -> None:
    t = await tenant_in(hub_nobot, **STAFF)
    other = await tenant_in(hub_nobot, **STAFF)
    tenant_id, other_id = t["tenant"]["_id"], other["tenant"]["_id"]
    number = "+442079460000"
    db = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        campaigns = [new_id(), new_id()]
        for campaign_id in campaigns:
            await db.db.campaigns.insert_one({"_id": campaign_id, "tenant_id": tenant_id, "name": "c"})
        rows = [(campaigns[0], tenant_id), (campaigns[1], tenant_id), (new_id(), other_id)]
        ids = []
        for campaign_id, owner in rows:
            ids.append(new_id())
            await db.db.campaign_targets.insert_one(
                {
                    "_id": ids[-1],
                    "tenant_id": owner,
                    "campaign_id": campaign_id,
                    "number": number,
                    "status": "pending",
                }
            )
        ann = await signed_in(hub_nobot, t, "ann")
        click = await ann.http.post(
            "/api/dnc/opt-out", json={"number": "020 7946 0000", "region": "GB", "campaign_id": campaigns[0]}
        )
        assert click.status_code == 200, click.text
        assert click.json()["targets_skipped"] == 2
        statuses = [(await db.db.campaign_targets.find_one({"_id": i}) or {})["status"] for i in ids]
        assert statuses == ["skipped", "skipped", "pending"]
        decision = await may_dial(db, tenant_id, CallingRules(), number, datetime(2026, 7, 1, 12, tzinfo=UTC))
        assert decision.reason == BLACK_LIST
        await ann.close()
    finally:
        await db.db.client.close()


def wav_bytes(seconds: float = 0.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * int(seconds * rate))
    return buffer.getvalue()


async def test_caller_id_and_prompt_approval_flow(
    hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase
) -> None:
    t = await tenant_in(hub_nobot, **STAFF)
    other = await tenant_in(hub_nobot, **STAFF)
    sam, ada, ann = [await signed_in(hub_nobot, t, n) for n in ("sam", "ada", "ann")]
    ada2 = await signed_in(hub_nobot, other, "ada")
    tenant_id = t["tenant"]["_id"]
    db = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        proof = b"%PDF-1.4 carrier invoice for the number"
        sent = await sam.http.post(
            "/api/caller-ids",
            data={"number": "(646) 555-0142", "label": "Renewals line"},
            files=[("documents", ("invoice.pdf", proof, "application/pdf"))],
        )
        assert sent.status_code == 201, sent.text
        caller = sent.json()
        assert caller["number"] == "+16465550142" and caller["status"] == "pending"
        assert len(caller["documents"]) == 1
        assert not await approved_caller_id(db, tenant_id, "+16465550142")
        again = await sam.http.post("/api/caller-ids", json={"number": "+16465550142"})
        assert again.status_code == 409
        assert (await sam.http.post("/api/caller-ids", json={"number": "12"})).status_code == 422
        assert (await ann.http.post("/api/caller-ids", json={"number": "+16465550143"})).status_code == 403
        # only an admin of the same tenant reviews
        cid = caller["id"]
        assert (await sam.http.post(f"/api/caller-ids/{cid}/approve")).status_code == 403
        assert (await ada2.http.post(f"/api/caller-ids/{cid}/approve")).status_code == 404
        assert (await ada2.http.get("/api/caller-ids")).json() == []
        document = f"/api/caller-ids/{cid}/documents/{caller['documents'][0]}"
        assert (await ada2.http.get(document)).status_code == 404
        download = await ada.http.get(document)
        assert download.status_code == 200 and download.content == proof
        approved = await ada.http.post(f"/api/caller-ids/{cid}/approve")
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        assert approved.json()["reviewed_by"] == t["users"]["ada"]["_id"]
        assert await approved_caller_id(db, tenant_id, "+16465550142")
        assert not await approved_caller_id(db, other["tenant"]["_id"], "+16465550142")
        assert (await ada.http.post(f"/api/caller-ids/{cid}/approve")).status_code == 409
        assert (await ada.http.post(f"/api/caller-ids/{cid}/reject", json={})).status_code == 422
        revoked = await ada.http.post(f"/api/caller-ids/{cid}/reject", json={"reason": "number ported away"})
        assert revoked.status_code == 200 and revoked.json()["reason"] == "number ported away"
        assert not await approved_caller_id(db, tenant_id, "+16465550142")
        resubmitted = await sam.http.post("/api/caller-ids", json={"number": "+16465550142"})
        assert resubmitted.status_code == 201 and resubmitted.json()["status"] == "pending"
        assert resubmitted.json()["id"] == cid and resubmitted.json()["label"] == "Renewals line"
        pending = (await sam.http.get("/api/caller-ids", params={"status": "pending"})).json()
        assert [c["id"] for c in pending] == [cid]

        # audio prompts: uploaded for IVR use, approved separately for outbound use
        upload = await sam.http.post(
            "/api/ivr/prompts",
            files={"file": ("offer.wav", wav_bytes(), "audio/wav")},
            data={"name": "Offer"},
        )
        assert upload.status_code == 201, upload.text
        prompt = upload.json()
        assert prompt["approval"]["status"] == "pending"
        assert not await approved_prompt(db, tenant_id, prompt["id"])
        pid = prompt["id"]
        assert (await sam.http.post(f"/api/ivr/prompts/{pid}/approve")).status_code == 403
        assert (await ada2.http.post(f"/api/ivr/prompts/{pid}/approve")).status_code == 404
        assert (await ada.http.post("/api/ivr/prompts/not-an-id/approve")).status_code == 404
        ok = await ada.http.post(f"/api/ivr/prompts/{pid}/approve", json={"reason": "script checked"})
        assert ok.status_code == 200 and ok.json()["approval"]["status"] == "approved"
        assert await approved_prompt(db, tenant_id, pid)
        assert not await approved_prompt(db, other["tenant"]["_id"], pid)
        listed = {p["id"]: p for p in (await sam.http.get("/api/ivr/prompts")).json()}
        assert listed[pid]["approval"]["status"] == "approved"
        no = await ada.http.post(f"/api/ivr/prompts/{pid}/reject", json={"reason": "no opt-out message"})
        assert no.status_code == 200 and no.json()["approval"]["reason"] == "no opt-out message"
        assert not await approved_prompt(db, tenant_id, pid)
    finally:
        await db.db.client.close()
        for client in (sam, ada, ann, ada2):
            await client.close()


def test_every_sample_number_resolves_to_real_zones() -> None:
    """Guard for the samples above: the zones phonenumbers gives must load from tzdata."""
    for number in NUMBERS[:-1]:
        zones = oracle_zones(number, "UTC")
        assert zones, number
