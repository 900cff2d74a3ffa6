"""Bulk import of numbers onto one do-not-contact list: a pasted list or an uploaded file.

Why a module of its own: a supervisor's block list arrives as a file or a paste, and each
number must read exactly as it would in a campaign list. So the rows come from the readers
and the normaliser of `routing/lists.py` (.txt one number a line, .csv / .tsv with a number
column found by its header, .xlsx), and the entries are written by `knowledge.dnc.add_entries`
(one entry per tenant, number and list; a number already there is refreshed, an opt-out keeps
its source).

The report: `{list, format, column, region, cap, total_rows, added, already_listed,
duplicates_in_file, invalid: [{line, value, reason}] (the first 100), invalid_count,
dropped_over_cap}`; every data row lands in exactly one count: total_rows = added +
already_listed + duplicates_in_file + invalid_count + dropped_over_cap.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.context import AppContext
from knowledge.dnc import LISTS, DncError, add_entries
from routing.lists import (
    DEFAULT_CAP,
    MAX_INVALID_SAMPLES,
    MAX_VALUE_CHARS,
    InvalidNumber,
    KeyKind,
    check_region,
    normalise_key,
    open_list,
)

PASTED_NAME = "pasted.txt"
# A paste is one number a line, or numbers separated by commas, semicolons or tabs (but
# never by spaces: "(415) 555 0100" is one number).
_PASTE_SEPARATORS = re.compile(r"[,;\t\r\n]+")


@dataclass
class DncImportReport:
    """The counts of one import; `to_dict()` is what the API returns."""

    list_name: str
    region: str
    cap: int
    format: str = ""
    column: str | None = None
    total_rows: int = 0
    added: int = 0
    already_listed: int = 0
    duplicates_in_file: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    invalid_count: int = 0
    dropped_over_cap: int = 0

    def add_invalid(self, line: int, value: Any, reason: str) -> None:
        self.invalid_count += 1
        if len(self.invalid) < MAX_INVALID_SAMPLES:
            shown = "" if value is None else str(value)[:MAX_VALUE_CHARS]
            self.invalid.append({"line": line, "value": shown, "reason": reason})

    def to_dict(self) -> dict[str, Any]:
        return {
            "list": self.list_name,
            "format": self.format,
            "column": self.column,
            "region": self.region,
            "cap": self.cap,
            "total_rows": self.total_rows,
            "added": self.added,
            "already_listed": self.already_listed,
            "duplicates_in_file": self.duplicates_in_file,
            "invalid": list(self.invalid),
            "invalid_count": self.invalid_count,
            "dropped_over_cap": self.dropped_over_cap,
        }


def pasted_bytes(text: str) -> bytes:
    """A paste as the bytes of a .txt list: one number a line."""
    items = (part.strip() for part in _PASTE_SEPARATORS.split(text or ""))
    return "\n".join(item for item in items if item).encode("utf-8")


def read_numbers(source: bytes, filename: str, report: DncImportReport) -> list[str]:
    """The distinct valid numbers (E.164) of a list, in file order; counts the rest in `report`.

    Blocking (file parsing): run it in a thread. Raises routing.lists.ListFormatError for a
    file that cannot be read as a list.
    """
    opened = open_list(source, filename)
    report.format, report.column = opened.format, opened.column
    numbers: list[str] = []
    seen: set[str] = set()
    try:
        for row in opened.rows:
            report.total_rows += 1
            if report.total_rows > report.cap:
                report.dropped_over_cap += 1
                continue
            try:
                # an address (for email campaigns) or a number, as knowledge.dnc keys entries
                kind: KeyKind = "email" if "@" in str(row.value or "") else "number"
                number, _ = normalise_key(row.value, report.region, kind)
            except InvalidNumber as exc:
                report.add_invalid(row.line, row.value, str(exc))
                continue
            if number in seen:
                report.duplicates_in_file += 1
                continue
            seen.add(number)
            numbers.append(number)
    finally:
        opened.close()
    return numbers


async def import_numbers(
    ctx: AppContext,
    tenant_id: str,
    source: bytes,
    filename: str,
    list_name: str,
    *,
    region: str,
    reason: str = "",
    expires_at: datetime | None = None,
    created_by: str | None = None,
    cap: int = DEFAULT_CAP,
) -> DncImportReport:
    """Put every valid number of a list file (or `pasted_bytes(...)` as PASTED_NAME) on one list.

    Raises DncError for an unknown list, routing.lists.ListImportError (a ValueError) for an
    unknown region and ListFormatError for an unreadable file; nothing is written then.
    """
    if list_name not in LISTS:
        raise DncError(f"list must be one of {', '.join(LISTS)}")
    report = DncImportReport(list_name=list_name, region=check_region(region), cap=cap)
    numbers = await asyncio.to_thread(read_numbers, source, filename, report)
    if not numbers:
        return report
    result = await add_entries(
        ctx,
        tenant_id,
        numbers,
        list_name,
        reason=reason,
        expires_at=expires_at,
        source="import",
        created_by=created_by,
        default_region=report.region,
    )
    report.added, report.already_listed = result.added, result.refreshed
    for value, why in result.invalid:  # the two normalisers agree; kept so no row goes uncounted
        report.add_invalid(0, value, why)
    return report
