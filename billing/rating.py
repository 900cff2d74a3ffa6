"""The billing arithmetic, as pure functions (hypothesis-tested in tests/test_billing.py).

Money is an integer number of micro-units (1 unit = 1,000,000 micros) so sums are exact.
Rounding is half-up to the micro-unit everywhere (the usual commercial rule: a customer
checking a statement by hand gets the same figure), done with integers or Decimal, never
floats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS = 1_000_000
_INCREMENT = re.compile(r"^\s*(\d{1,5})\s*/\s*(\d{1,5})\s*$")
_MONEY = re.compile(r"^\s*-?\d{1,12}(\.\d{1,6})?\s*$")
MAX_INCREMENT_S = 3600


class RatingError(ValueError):
    """Invalid billing input; the message is shown to the user."""


@dataclass(frozen=True)
class Tariff:
    """One rate entry's terms: price per minute (voice) or per segment (SMS) and its rounding."""

    price_micros: int
    first_increment_s: int = 60
    next_increment_s: int = 60
    minimum_s: int = 0
    connection_micros: int = 0


def parse_increment(text: str) -> tuple[int, int]:
    """ "60/60", "6/6", "30/6", "1/1" -> (first, next) seconds."""
    match = _INCREMENT.match(text or "")
    if not match:
        raise RatingError(f"billing increment must look like 60/60 or 6/6, not {text!r}")
    first, following = int(match.group(1)), int(match.group(2))
    check_increments(first, following)
    return first, following


def check_increments(first: int, following: int) -> None:
    if not 1 <= first <= MAX_INCREMENT_S or not 1 <= following <= MAX_INCREMENT_S:
        raise RatingError(f"billing increments must be 1-{MAX_INCREMENT_S} seconds")


def to_micros(value: str | int | float | Decimal) -> int:
    """A decimal amount ("0.10") -> micros (100000); at most 6 decimals, else an error."""
    text = str(value)
    if not _MONEY.match(text):
        raise RatingError(f"not an amount with at most 6 decimals: {value!r}")
    try:
        return int((Decimal(text.strip()) * MICROS).to_integral_exact())
    except InvalidOperation as exc:
        raise RatingError(f"not an amount: {value!r}") from exc


def format_micros(micros: int) -> str:
    """Micros -> a decimal string with 2 to 6 decimals ("0.10", "0.012345", "-1.50")."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(int(micros)), MICROS)
    digits = f"{frac:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole}.{digits}"


def billed_seconds(duration_s: int, first_s: int, next_s: int, minimum_s: int = 0) -> int:
    """The seconds charged for a call of `duration_s` talk seconds.

    The first increment is charged whole, then each started next increment; the minimum
    applies to any call that lasted at all. 0 s (answered and hung up at once) bills 0 s
    (a connection fee, if any, is charged by `call_amount`)."""
    if duration_s <= 0:
        return 0
    if duration_s <= first_s:
        billed = first_s
    else:
        rest = duration_s - first_s
        billed = first_s + -(-rest // next_s) * next_s
    return max(billed, minimum_s)


def per_minute_amount(price_per_minute_micros: int, seconds: int) -> int:
    """price * seconds / 60, rounded half-up to the micro-unit (integers only)."""
    return (2 * price_per_minute_micros * seconds + 60) // 120


def call_amount(tariff: Tariff, duration_s: int) -> tuple[int, int]:
    """(billed seconds, amount in micros) for an answered call of `duration_s` seconds."""
    billed = billed_seconds(duration_s, tariff.first_increment_s, tariff.next_increment_s, tariff.minimum_s)
    return billed, per_minute_amount(tariff.price_micros, billed) + tariff.connection_micros


def sms_amount(tariff: Tariff, segments: int) -> int:
    """Each segment at the price (a connection fee does not apply to messages)."""
    return max(0, segments) * tariff.price_micros


def marked_up(base_micros: int, markups_pct: Iterable[float | str | Decimal]) -> int:
    """`base` * product of (1 + m/100), rounded half-up once at the end (so a chain of
    markups is not rounded at each level)."""
    value = Decimal(int(base_micros))
    for pct in markups_pct:
        value *= 1 + Decimal(str(pct)) / 100
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def apply_markups(tariff: Tariff, markups_pct: list[float | str | Decimal]) -> Tariff:
    """The tariff as a tenant below the group's owner pays it: price and connection marked up."""
    if not markups_pct:
        return tariff
    return Tariff(
        price_micros=marked_up(tariff.price_micros, markups_pct),
        first_increment_s=tariff.first_increment_s,
        next_increment_s=tariff.next_increment_s,
        minimum_s=tariff.minimum_s,
        connection_micros=marked_up(tariff.connection_micros, markups_pct),
    )


def number_digits(number: str) -> str:
    """An E.164 number (or any dialled string) -> its digits, for prefix matching."""
    return "".join(ch for ch in number or "" if ch.isdigit())


def prefixes_of(digits: str) -> list[str]:
    """Every prefix of `digits`, longest first (what the longest-prefix match looks up)."""
    return [digits[:n] for n in range(min(len(digits), 15), 0, -1)]
