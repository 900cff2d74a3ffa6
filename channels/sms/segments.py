"""SMS segment counting (GSM-7 or UCS-2) and splitting of over-long bodies.

Written here rather than taken from a library: the only rules needed are the GSM 03.38
basic and extension tables and the 160/153 and 70/67 limits, and the packages that do
this on PyPI are unmaintained or pull in a full PDU codec.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "^{}\\[~]|€\f"  # each costs two septets (escape + character)
_BASIC = frozenset(GSM7_BASIC)
_EXTENSION = frozenset(GSM7_EXTENSION)
# Twilio concatenates up to 1600 characters into one message; longer bodies are split by us.
MAX_BODY_CHARS = 1600


@dataclass(frozen=True)
class SegmentInfo:
    encoding: str  # "GSM-7" | "UCS-2"
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def is_gsm7(text: str) -> bool:
    return all(ch in _BASIC or ch in _EXTENSION for ch in text)


def count_segments(text: str) -> SegmentInfo:
    """How many SMS segments `text` takes: 160 septets in one, 153 per part when concatenated;
    UCS-2 70 units in one, 67 per part (UTF-16 units, so an emoji costs two)."""
    if is_gsm7(text):
        units = sum(2 if ch in _EXTENSION else 1 for ch in text)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, part, encoding = 70, 67, "UCS-2"
    if units <= single:
        return SegmentInfo(encoding, units, 1 if units else 0)
    return SegmentInfo(encoding, units, -(-units // part))


def split_body(text: str, limit: int = MAX_BODY_CHARS) -> list[str]:
    """Split a body over `limit` characters into messages, at whitespace where possible."""
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind(" ", 0, limit + 1)
        cut = cut if cut > limit // 2 else limit
        parts.append(rest[:cut].rstrip(" "))
        rest = rest[cut:].lstrip(" ")
    if rest or not parts:
        parts.append(rest)
    return parts
