"""The dial-time compliance decision: may this number be called now, and if not, when?

The dialer asks before every call (never only at import), so a number put on a list, an
opt-out or a contact made by another campaign takes effect at once. `check` is pure:

- an active black or red entry blocks for good (`retry_at` None);
- the recipient's local time comes from the number (phonenumbers' time zones). A number
  that maps to several zones (a US toll-free number, a Russian or Australian mobile) is
  read conservatively: *every* zone must be inside a window and off a holiday, both in
  that zone's local date. A number whose zone is unknown uses `fallback_timezone`;
- at most one answered contact per number per `frequency_days`, across all campaigns;
- a grey entry needs an agent's confirmation (`needs_confirmation`); it is never dialled
  automatically (the preview dialer passes `confirmed=True` after the agent's click).

`retry_at` is the first instant at or after now (and after the frequency period) when
every zone of the number is inside a window: the dialer reschedules the target there.
`may_dial` / `may_dial_many` load the DNC entry and the last answered call and call `check`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from hub.context import AppContext
from knowledge.dnc import DncEntry, active_entries

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_S = 24 * 3600
# How far ahead `retry_at` is searched; beyond it the number counts as having no window
# (e.g. a toll-free +1 800 number spans Guam to Pago Pago: no hour suits every zone).
SEARCH_DAYS = 400

ALLOWED = "ok"
BLACK_LIST = "black_list"
RED_LIST = "red_list"
GREY_LIST = "grey_list"
INVALID_NUMBER = "invalid_number"
OUTSIDE_WINDOW = "outside_window"
HOLIDAY = "holiday"
FREQUENCY_CAP = "frequency_cap"
NO_WINDOW = "no_window"

Window = tuple[int, int]  # [start, end) in seconds since local midnight; end may be 86400


class RulesError(ValueError):
    """A schedule that cannot be used; the message says which part and why."""


def _seconds(value: str, *, end: bool) -> int:
    try:
        hours, minutes = (int(part) for part in value.split(":"))
    except (ValueError, AttributeError) as exc:
        raise RulesError(f"{value!r} is not a time like 08:00") from exc
    total = hours * 3600 + minutes * 60
    if not 0 <= minutes < 60 or not 0 <= total <= DAY_S or (total == DAY_S and not end):
        raise RulesError(f"{value!r} is not a time of day (00:00-24:00)")
    return total


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RulesError(f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class CallingRules:
    """When a campaign may call: windows per weekday (Monday first), holidays, frequency.

    Stored on a campaign as `schedule: {windows: {"mon": [["08:00", "21:00"]], ...},
    holidays: ["2026-12-25"], timezone_fallback}` plus `frequency_days`; see `of_campaign`.
    """

    windows: tuple[tuple[Window, ...], ...] = tuple(((8 * 3600, 21 * 3600),) for _ in WEEKDAYS)
    holidays: frozenset[date] = field(default_factory=frozenset)
    frequency_days: float = 30
    fallback_timezone: str = "UTC"

    def __post_init__(self) -> None:
        if len(self.windows) != 7:
            raise RulesError("windows need one entry per weekday, Monday first")
        for day, spans in zip(WEEKDAYS, self.windows, strict=True):
            for start, end in spans:
                if not 0 <= start < end <= DAY_S:
                    raise RulesError(f"{day}: a window must start before it ends, within one day")
        if self.frequency_days < 0:
            raise RulesError("frequency_days must be 0 (no cap) or more")
        _zone(self.fallback_timezone)

    @classmethod
    def from_schedule(
        cls, schedule: Mapping[str, Any] | None, frequency_days: float | None = None
    ) -> CallingRules:
        """Rules from a campaign's `schedule`. No `windows` at all means 08:00-21:00 every
        day; given windows name the open days (a day left out is closed)."""
        schedule = schedule or {}
        raw = schedule.get("windows")
        windows = cls().windows
        if raw is not None:
            if not isinstance(raw, Mapping):
                raise RulesError("windows must map weekdays (mon..sun) to [start, end] pairs")
            unknown = set(raw) - set(WEEKDAYS)
            if unknown:
                raise RulesError(f"unknown weekday(s): {', '.join(sorted(unknown))}; use mon..sun")
            parsed: list[tuple[Window, ...]] = []
            for day in WEEKDAYS:
                spans = []
                for pair in raw.get(day) or []:
                    if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
                        raise RulesError(f"{day}: each window is a [start, end] pair like ['08:00', '21:00']")
                    spans.append((_seconds(pair[0], end=False), _seconds(pair[1], end=True)))
                parsed.append(tuple(sorted(spans)))
            windows = tuple(parsed)
        holidays = set()
        for value in schedule.get("holidays") or []:
            try:
                holidays.add(date.fromisoformat(str(value)))
            except ValueError as exc:
                raise RulesError(f"holiday {value!r} is not an ISO date like 2026-12-25") from exc
        return cls(
            windows=windows,
            holidays=frozenset(holidays),
            frequency_days=30 if frequency_days is None else frequency_days,
            fallback_timezone=str(schedule.get("timezone_fallback") or "UTC"),
        )

    @classmethod
    def of_campaign(cls, campaign: Mapping[str, Any]) -> CallingRules:
        """The rules of a stored campaign document (docs/outbound.md)."""
        return cls.from_schedule(campaign.get("schedule"), campaign.get("frequency_days"))

    def to_schedule(self) -> dict[str, Any]:
        """The stored form (what `from_schedule` reads)."""
        return {
            "windows": {
                day: [[_clock(start), _clock(end)] for start, end in spans]
                for day, spans in zip(WEEKDAYS, self.windows, strict=True)
                if spans
            },
            "holidays": sorted(d.isoformat() for d in self.holidays),
            "timezone_fallback": self.fallback_timezone,
        }


@dataclass(frozen=True)
class Decision:
    """`allowed`: dial now. Otherwise `reason` says why and `retry_at` when to ask again
    (None: not by waiting). `needs_confirmation`: only an agent's confirmation is missing."""

    allowed: bool
    reason: str
    needs_confirmation: bool = False
    retry_at: datetime | None = None


def _utc(value: datetime) -> datetime:
    """Aware UTC; naive values (as some drivers return them) are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@lru_cache(maxsize=4096)
def _number_zones(number: str) -> tuple[str, ...] | None:
    """The number's time zone names ('Etc/Unknown' when phonenumbers has none); None if
    the number is not a valid one."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return tuple(phone_timezone.time_zones_for_number(parsed))


def recipient_zones(number: str, fallback_timezone: str = "UTC") -> tuple[ZoneInfo, ...] | None:
    """Every zone the recipient may be in; None for an invalid number. A mail address (an
    email campaign's target) says nothing about where its reader is: the fallback zone."""
    if "@" in number:
        return (_zone(fallback_timezone),)
    names = _number_zones(number)
    if names is None:
        return None
    zones = []
    for name in names:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue  # "Etc/Unknown" and zones missing from tzdata
    return tuple(zones) or (_zone(fallback_timezone),)


def _inside(rules: CallingRules, zone: ZoneInfo, at: datetime) -> bool:
    local = at.astimezone(zone)
    if local.date() in rules.holidays:
        return False
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return any(start <= seconds < end for start, end in rules.windows[local.weekday()])


def _on_holiday(rules: CallingRules, zones: Iterable[ZoneInfo], at: datetime) -> bool:
    return any(at.astimezone(zone).date() in rules.holidays for zone in zones)


def _openings(day: date, start: int, zone: ZoneInfo) -> list[datetime]:
    """The instants at which local wall time reaches `day` + `start` in `zone`.

    Two on a fall-back day (the wall time happens twice); on a spring-forward day when the
    wall time does not exist, the moment of the jump (found by bisection, to the second).
    """
    wall = datetime(day.year, day.month, day.day) + timedelta(seconds=start)
    found = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall:
            found.append(instant)
    if found:
        return found
    # bisect on whole seconds (zone offsets are whole seconds, so the jump is found exactly)
    ends = sorted(int(wall.replace(tzinfo=zone, fold=f).timestamp()) for f in (0, 1))
    low, high = ends[0] - 1, ends[1] + 1
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return [datetime.fromtimestamp(high, UTC)]


def _next_open(rules: CallingRules, zone: ZoneInfo, at: datetime, limit: datetime) -> datetime | None:
    """The first instant >= `at` when `zone` is inside a window and off a holiday."""
    if _inside(rules, zone, at):
        return at
    day = at.astimezone(zone).date() - timedelta(days=1)  # a fall-back day can repeat hours
    while True:
        first_of_day = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        if first_of_day > limit:
            return None
        if day not in rules.holidays:
            candidates = [
                max(at, instant)
                for start, _ in rules.windows[day.weekday()]
                for instant in _openings(day, start, zone)
            ]
            inside = [c for c in candidates if _inside(rules, zone, c)]
            if inside:
                return min(inside)
        day += timedelta(days=1)


def next_window(rules: CallingRules, zones: Sequence[ZoneInfo], after: datetime) -> datetime | None:
    """The first instant >= `after` when every zone is inside a window, or None within
    SEARCH_DAYS.

    Leapfrogging: while some zone is closed, jump to that zone's next opening. Each jump
    stays at or before the answer (that zone is open at the answer), so the loop ends on it.
    """
    at = _utc(after)
    limit = at + timedelta(days=SEARCH_DAYS)
    while at <= limit:
        closed = next((zone for zone in zones if not _inside(rules, zone, at)), None)
        if closed is None:
            return at
        opened = _next_open(rules, closed, at, limit)
        if opened is None:
            return None
        at = opened
    return None


def check(
    number: str,
    now: datetime,
    rules: CallingRules,
    dnc_entry: DncEntry | None,
    last_contact_at: datetime | None,
    *,
    confirmed: bool = False,
) -> Decision:
    """May `number` (E.164) be dialled at `now`? See the module docstring for the rules."""
    now = _utc(now)
    if dnc_entry is not None and dnc_entry.active(now) and dnc_entry.list in ("black", "red"):
        return Decision(False, BLACK_LIST if dnc_entry.list == "black" else RED_LIST)
    zones = recipient_zones(number, rules.fallback_timezone)
    if zones is None:
        return Decision(False, INVALID_NUMBER)
    earliest = now
    if last_contact_at is not None and rules.frequency_days > 0:
        earliest = max(now, _utc(last_contact_at) + timedelta(days=rules.frequency_days))
    opens = next_window(rules, zones, earliest)
    if opens is None:
        return Decision(False, NO_WINDOW)
    if earliest > now:
        return Decision(False, FREQUENCY_CAP, retry_at=opens)
    if opens > now:
        return Decision(False, HOLIDAY if _on_holiday(rules, zones, now) else OUTSIDE_WINDOW, retry_at=opens)
    if dnc_entry is not None and dnc_entry.active(now) and dnc_entry.list == "grey" and not confirmed:
        return Decision(False, GREY_LIST, needs_confirmation=True)
    return Decision(True, ALLOWED)


async def last_answered(ctx: AppContext, tenant_id: str, numbers: Sequence[str]) -> dict[str, datetime]:
    """When each number last answered a call from any campaign of the tenant."""
    found: dict[str, datetime] = {}
    for i in range(0, len(numbers), 1000):
        pipeline: list[dict[str, Any]] = [
            {
                "$match": {
                    "tenant_id": tenant_id,
                    "number": {"$in": list(numbers[i : i + 1000])},
                    "answered_at": {"$ne": None},
                }
            },
            {"$group": {"_id": "$number", "last": {"$max": "$answered_at"}}},
        ]
        async for row in await ctx.db.dial_attempts.aggregate(pipeline):
            if row.get("last") is not None:
                found[row["_id"]] = _utc(row["last"])
    return found


async def may_dial_many(
    ctx: AppContext,
    tenant_id: str,
    rules: CallingRules,
    numbers: Sequence[str],
    now: datetime,
    *,
    confirmed: bool = False,
) -> dict[str, Decision]:
    """`may_dial` for a batch (two queries, whatever the batch size)."""
    entries = await active_entries(ctx, tenant_id, numbers, now)
    last = await last_answered(ctx, tenant_id, numbers)
    return {
        number: check(number, now, rules, entries.get(number), last.get(number), confirmed=confirmed)
        for number in numbers
    }


async def may_dial(
    ctx: AppContext,
    tenant_id: str,
    rules: CallingRules,
    number: str,
    now: datetime,
    *,
    confirmed: bool = False,
) -> Decision:
    """The decision for one number from the live DNC lists and call history."""
    return (await may_dial_many(ctx, tenant_id, rules, [number], now, confirmed=confirmed))[number]
