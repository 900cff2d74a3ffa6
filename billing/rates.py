"""Rate groups and their rate tables: CRUD with validation, longest-prefix match, import / export.

A rate group (`rate_groups`) belongs to the tenant that created it (its owner, usually the
operator or a reseller) and is voice, SMS or inbound (calls received, priced by the dialled
number's prefix, e.g. a 400 / toll-free line); its entries (`rates`) price a number prefix
(digits, no "+") per minute for voice and inbound or per segment for SMS, with the billing increments
("60/60", "6/6", "30/6"), a minimum and a connection fee. The longest matching prefix wins.
A rate table comes in as Excel or CSV (one row per prefix; invalid rows are reported with
their line and reason, valid ones are stored) and goes out the same way.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from billing.rating import (
    RatingError,
    Tariff,
    check_increments,
    format_micros,
    number_digits,
    parse_increment,
    prefixes_of,
    to_micros,
)
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow

KINDS = ("voice", "sms", "inbound")  # inbound: per minute, like voice, by the dialled number
_PREFIX = re.compile(r"^\d{1,15}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_IMPORT_ROWS = 200_000
MAX_MINIMUM_S = 3600
COLUMNS = ("prefix", "description", "price", "increment", "minimum_s", "connection")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class RateError(ValueError):
    """Invalid rate data (shown as 422) or a conflict the message explains."""


# ------------------------------------------------------------------------------ groups


async def create_group(ctx: AppContext, owner_id: str, name: str, kind: str, currency: str) -> Doc:
    name = name.strip()
    if not name or len(name) > 80:
        raise RateError("a rate group needs a name of 1-80 characters")
    if kind not in KINDS:
        raise RateError(f"kind must be one of {', '.join(KINDS)}")
    currency = currency.strip().upper()
    if not _CURRENCY.match(currency):
        raise RateError("currency must be a 3-letter code such as USD")
    group: Doc = {
        "_id": new_id(),
        "tenant_id": owner_id,
        "name": name,
        "kind": kind,
        "currency": currency,
        "created_at": utcnow(),
    }
    await ctx.db.rate_groups.insert_one(group)
    return group


async def rename_group(ctx: AppContext, group: Doc, name: str) -> Doc:
    name = name.strip()
    if not name or len(name) > 80:
        raise RateError("a rate group needs a name of 1-80 characters")
    await ctx.db.rate_groups.update_one({"_id": group["_id"]}, {"$set": {"name": name}})
    return {**group, "name": name}


async def delete_group(ctx: AppContext, group: Doc) -> None:
    """Only a group no account is rated on (else its tenants would silently go unbilled)."""
    field_name = f"{group['kind']}_group_id"
    if await ctx.db.billing_accounts.find_one({field_name: group["_id"]}, {"_id": 1}):
        raise RateError("tenants are rated on this group: assign them another group first")
    await ctx.db.rates.delete_many({"group_id": group["_id"]})
    await ctx.db.rate_groups.delete_one({"_id": group["_id"]})


def public_group(group: Doc, rates: int | None = None) -> Doc:
    out = {
        "id": group["_id"],
        "tenant_id": group["tenant_id"],
        "name": group["name"],
        "kind": group["kind"],
        "currency": group["currency"],
    }
    if rates is not None:
        out["rates"] = rates
    return out


# ------------------------------------------------------------------------------ entries


def rate_fields(raw: dict[str, Any]) -> Doc:
    """Validated stored fields of one rate entry from user input (API body or file row).

    `increment` ("60/60") or `first_increment_s` + `next_increment_s`; `price` and
    `connection` as decimals (or `price_micros` / `connection_micros` as integers)."""
    prefix = number_digits(str(raw.get("prefix") or "")) if str(raw.get("prefix") or "").strip() else ""
    if str(raw.get("prefix") or "").strip().lstrip("+") != prefix or not _PREFIX.match(prefix):
        raise RateError("prefix must be 1-15 digits (a leading + is allowed)")
    description = str(raw.get("description") or "").strip()
    if len(description) > 120:
        raise RateError("description: at most 120 characters")
    try:
        if raw.get("increment") not in (None, ""):
            first, following = parse_increment(str(raw["increment"]))
        else:
            first = int(raw.get("first_increment_s") or 60)
            following = int(raw.get("next_increment_s") or first)
            check_increments(first, following)
        price = _micros(raw, "price")
        connection = (_micros(raw, "connection") or 0) if _given(raw, "connection") else 0
    except (RatingError, TypeError, ValueError) as exc:
        raise RateError(str(exc)) from exc
    if price is None:
        raise RateError("price is required")
    if price < 0 or connection < 0:
        raise RateError("price and connection fee cannot be negative")
    minimum = raw.get("minimum_s")
    try:
        minimum_s = int(minimum) if minimum not in (None, "") else 0
    except (TypeError, ValueError) as exc:
        raise RateError("minimum_s must be a whole number of seconds") from exc
    if not 0 <= minimum_s <= MAX_MINIMUM_S:
        raise RateError(f"minimum_s must be 0-{MAX_MINIMUM_S}")
    return {
        "prefix": prefix,
        "description": description,
        "price_micros": price,
        "first_increment_s": first,
        "next_increment_s": following,
        "minimum_s": minimum_s,
        "connection_micros": connection or 0,
    }


def _given(raw: dict[str, Any], name: str) -> bool:
    return raw.get(name) not in (None, "") or raw.get(f"{name}_micros") not in (None, "")


def _micros(raw: dict[str, Any], name: str) -> int | None:
    if raw.get(f"{name}_micros") not in (None, ""):
        return int(raw[f"{name}_micros"])
    value = raw.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, float):  # an Excel cell: its shortest repr is what the user typed
        value = repr(value)
    return to_micros(value)


async def put_rate(ctx: AppContext, group: Doc, raw: dict[str, Any]) -> Doc:
    """Create or replace the entry for the prefix in `group`."""
    fields = rate_fields(raw)
    now = utcnow()
    await ctx.db.rates.update_one(
        {"group_id": group["_id"], "prefix": fields["prefix"]},
        {
            "$set": {**fields, "tenant_id": group["tenant_id"], "updated_at": now},
            "$setOnInsert": {"_id": new_id()},
        },
        upsert=True,
    )
    found = await ctx.db.rates.find_one({"group_id": group["_id"], "prefix": fields["prefix"]})
    assert found is not None
    return found


async def delete_rate(ctx: AppContext, group: Doc, prefix: str) -> bool:
    result = await ctx.db.rates.delete_one({"group_id": group["_id"], "prefix": prefix})
    return result.deleted_count == 1


def tariff_of(rate: Doc) -> Tariff:
    return Tariff(
        price_micros=int(rate["price_micros"]),
        first_increment_s=int(rate.get("first_increment_s") or 60),
        next_increment_s=int(rate.get("next_increment_s") or 60),
        minimum_s=int(rate.get("minimum_s") or 0),
        connection_micros=int(rate.get("connection_micros") or 0),
    )


def public_rate(rate: Doc, tariff: Tariff | None = None) -> Doc:
    """An entry for the API; `tariff` overrides the prices (a tenant below sees its own)."""
    t = tariff or tariff_of(rate)
    return {
        "prefix": rate["prefix"],
        "description": rate.get("description") or "",
        "price": format_micros(t.price_micros),
        "price_micros": t.price_micros,
        "increment": f"{t.first_increment_s}/{t.next_increment_s}",
        "minimum_s": t.minimum_s,
        "connection": format_micros(t.connection_micros),
        "connection_micros": t.connection_micros,
    }


async def match(ctx: AppContext, group_id: str, number: str) -> Doc | None:
    """The entry of `group_id` with the longest prefix of `number`, or None (one indexed query)."""
    candidates = prefixes_of(number_digits(number))
    if not candidates:
        return None
    best: Doc | None = None
    async for rate in ctx.db.rates.find({"group_id": group_id, "prefix": {"$in": candidates}}):
        if best is None or len(rate["prefix"]) > len(best["prefix"]):
            best = rate
    return best


@dataclass
class RateTable:
    """A group's entries in memory, for rating many events in one pass (the rater, the bench)."""

    group: Doc
    by_prefix: dict[str, Doc] = field(default_factory=dict)

    def match(self, number: str) -> Doc | None:
        for prefix in prefixes_of(number_digits(number)):
            found = self.by_prefix.get(prefix)
            if found is not None:
                return found
        return None


async def load_table(ctx: AppContext, group_id: str) -> RateTable | None:
    group = await ctx.db.rate_groups.find_one({"_id": group_id})
    if group is None:
        return None
    table = RateTable(group)
    async for rate in ctx.db.rates.find({"group_id": group_id}):
        table.by_prefix[rate["prefix"]] = rate
    return table


# ------------------------------------------------------------------------------ files


@dataclass
class ImportResult:
    stored: int = 0
    errors: list[Doc] = field(default_factory=list)

    def as_dict(self) -> Doc:
        return {"stored": self.stored, "invalid": len(self.errors), "errors": self.errors[:200]}


def _rows_of(data: bytes, filename: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row by lower-case header) from an .xlsx (first sheet) or a CSV file."""
    if filename.lower().endswith((".xlsx", ".xlsm")) or data[:2] == b"PK":
        try:
            workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a broken file
            raise RateError(f"not a readable Excel file: {exc}") from exc
        rows: Iterable[tuple[Any, ...]] = workbook.worksheets[0].iter_rows(values_only=True)
    else:
        text = data.decode("utf-8-sig", errors="replace")
        rows = (tuple(r) for r in csv.reader(io.StringIO(text)))
    header: list[str] | None = None
    for line, row in enumerate(rows, start=1):
        if header is None:
            header = [str(c or "").strip().lower() for c in row]
            if "prefix" not in header or "price" not in header:
                raise RateError("the first row must name the columns, at least prefix and price")
            continue
        if not any(c not in (None, "") for c in row):
            continue
        yield line, {header[i]: v for i, v in enumerate(row) if i < len(header) and header[i]}


async def import_rates(ctx: AppContext, group: Doc, data: bytes, filename: str) -> ImportResult:
    """Store each valid row (replacing the prefix's entry); report invalid ones by line."""
    result = ImportResult()
    now = utcnow()
    ops: list[UpdateOne] = []
    for line, raw in _rows_of(data, filename):
        if line > MAX_IMPORT_ROWS + 1:
            result.errors.append({"line": line, "error": f"at most {MAX_IMPORT_ROWS} rows; the rest skipped"})
            break
        if isinstance(raw.get("prefix"), (int, float)):
            raw["prefix"] = str(int(raw["prefix"]))
        try:
            fields = rate_fields(raw)
        except RateError as exc:
            result.errors.append({"line": line, "prefix": str(raw.get("prefix") or ""), "error": str(exc)})
            continue
        ops.append(
            UpdateOne(
                {"group_id": group["_id"], "prefix": fields["prefix"]},
                {
                    "$set": {**fields, "tenant_id": group["tenant_id"], "updated_at": now},
                    "$setOnInsert": {"_id": new_id()},
                },
                upsert=True,
            )
        )
        if len(ops) >= 1000:
            result.stored += await _flush(ctx, ops)
    result.stored += await _flush(ctx, ops)
    return result


async def _flush(ctx: AppContext, ops: list[UpdateOne]) -> int:
    if not ops:
        return 0
    count = len(ops)
    try:
        await ctx.db.rates.bulk_write(list(ops), ordered=False)
    except DuplicateKeyError:  # two rows for one prefix raced in one batch: the last one is kept
        for op in ops:
            await ctx.db.rates.bulk_write([op])
    ops.clear()
    return count


async def export_rows(
    ctx: AppContext, group: Doc, tariffs: dict[str, Tariff] | None = None
) -> list[list[Any]]:
    rows: list[list[Any]] = [list(COLUMNS)]
    async for rate in ctx.db.rates.find({"group_id": group["_id"]}).sort("prefix", 1):
        shown = public_rate(rate, (tariffs or {}).get(rate["prefix"]))
        rows.append(
            [
                shown["prefix"],
                shown["description"],
                shown["price"],
                shown["increment"],
                shown["minimum_s"],
                shown["connection"],
            ]
        )
    return rows


def rows_to_xlsx(rows: list[list[Any]], title: str) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title[:31] or "rates"
    for row in rows:
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def rows_to_csv(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
