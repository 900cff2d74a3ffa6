"""Contact list import: .txt / .csv / .xlsx files into a campaign's `campaign_targets`.

Why a module of its own: the file formats, number normalisation, de-duplication and the
row cap are one pipeline with one report, used by the CLI (`hub campaign import`) and the
HTTP API (dashboard/lists_api.py) alike.

The pipeline streams: a reader yields one row at a time (openpyxl in read-only mode, the
csv module over an open text stream), rows are normalised to E.164 with phonenumbers and
inserted in batches with `insert_many(ordered=False)`, so a 50,000-row workbook is never
held twice in memory. Readers first count the rows (a cheap pass) so that `progress(done,
total)` can drive a progress bar.

The report: `{total_rows, imported, invalid: [{line, value, reason}] (the first 100),
invalid_count, duplicates: {in_file, already_in_campaign}, dropped_over_cap}` plus what
the import used (`import_id`, `format`, `column`, `region`, `cap`). Every data row lands in
exactly one count: total_rows = imported + invalid_count + in_file + already_in_campaign +
dropped_over_cap. The cap counts the targets this import adds (numbers already in the
campaign do not use it up); once it is reached the remaining valid rows are dropped
without looking them up in the campaign.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import inspect
import io
import re
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any, Literal

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult
from pymongo.errors import BulkWriteError

from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow
from knowledge.customers import InvalidContactDetail, normalise_email

DEFAULT_CAP = 50_000
DEFAULT_REGION = "US"
MAX_INVALID_SAMPLES = 100
BATCH_ROWS = 500
MAX_FIELDS = 50
MAX_FIELD_CHARS = 1000
MAX_VALUE_CHARS = 64  # of a rejected value, as echoed in the report

# Header names (compared lower-case, without spaces, '_' or '-') that hold the number or the
# name, most specific first; a header that merely contains one of them is the fallback.
NUMBER_HEADERS = (
    "number",
    "phone",
    "phonenumber",
    "mobile",
    "mobilephone",
    "tel",
    "telephone",
    "cell",
    "msisdn",
    "电话",
    "手机",
    "号码",
    "电话号码",
    "手机号",
    "手机号码",
    "联系电话",
)
# An email campaign's list is keyed by the address instead (docs/outbound.md "Email campaigns").
EMAIL_HEADERS = ("email", "emailaddress", "mail", "e-mail", "邮箱", "电子邮件", "电子邮箱", "邮件地址")
NAME_HEADERS = ("name", "fullname", "contactname", "customer", "姓名", "名字", "客户", "客户名称", "联系人")
FORMATS = {".txt": "txt", ".csv": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx"}
_LETTERS = re.compile(r"[^\W\d_]")
_EXTENSION = re.compile(r"\s*(?:ext\.?|x|#)\s*\d+\s*$", re.IGNORECASE)

Progress = Callable[[int, int], Awaitable[None] | None]
KeyKind = Literal["number", "email"]  # what identifies a target: a phone number or a mail address


class ListImportError(ValueError):
    """The import cannot run (unknown campaign, bad region); the message is for the operator."""


class ListFormatError(ListImportError):
    """The file cannot be read as a contact list (format, encoding, no number column)."""


class InvalidNumber(ValueError):
    """A value that is not a dialable number; the message is the reason shown in the report."""


@dataclass(frozen=True)
class RawRow:
    """One data row as read: its line (or sheet row) number, the number cell, name, other cells."""

    line: int
    value: Any
    name: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class ListSource:
    """An opened list: its rows (a one-pass iterator), the row count, what was recognised."""

    format: str
    rows: Iterator[RawRow]
    total: int
    column: str | None = None
    closer: Callable[[], None] | None = None

    def close(self) -> None:
        if self.closer is not None:
            self.closer()
            self.closer = None


# ---------------------------------------------------------------------------- numbers


def normalise_number(value: Any, region: str) -> tuple[str, str | None]:
    """(E.164, region code) of a cell value; InvalidNumber with the reason otherwise.

    National numbers are read as numbers of `region`. Spreadsheet cells may hold numbers
    as int or float (14155550101.0); those are taken as their digits.
    """
    if value is None:
        raise InvalidNumber("empty")
    if isinstance(value, bool):
        raise InvalidNumber("not a phone number")
    if isinstance(value, float):
        if not value.is_integer():
            raise InvalidNumber("not a phone number")
        value = int(value)
    text = str(value).strip()
    if not text:
        raise InvalidNumber("empty")
    if text.lower().startswith("tel:"):
        text = text[4:]
    text = _EXTENSION.sub("", text)  # the dialer cannot dial extensions; the number still counts
    # phonenumbers reads letters as a keypad vanity number (1-800-FLOWERS); in an imported
    # list letters are far more often a typo or a name in the wrong column.
    if _LETTERS.search(text):
        raise InvalidNumber("contains letters")
    international = text.startswith(("+", "00"))
    where = "" if international else f" for {region}"
    try:
        parsed = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        reasons = {
            NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
            NumberParseException.NOT_A_NUMBER: "not a phone number",
            NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
            NumberParseException.TOO_SHORT_NSN: "too short",
            NumberParseException.TOO_LONG: "too long",
        }
        raise InvalidNumber(reasons.get(exc.error_type, "not a phone number")) from exc
    possible = phonenumbers.is_possible_number_with_reason(parsed)
    if possible != ValidationResult.IS_POSSIBLE:
        reasons = {
            ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
            ValidationResult.TOO_SHORT: "too short",
            ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too short (no area code)",
            ValidationResult.TOO_LONG: "too long",
            ValidationResult.INVALID_LENGTH: "wrong length",
        }
        raise InvalidNumber(reasons.get(possible, "not a phone number") + where)
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidNumber("not a valid number" + where)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return e164, phonenumbers.region_code_for_number(parsed)


def normalise_key(value: Any, region: str, kind: KeyKind) -> tuple[str, str | None]:
    """A row's target key: an E.164 number (and its region), or a lower-case mail address."""
    if kind == "number":
        return normalise_number(value, region)
    try:
        return normalise_email(str(value or "")), None
    except InvalidContactDetail as exc:
        raise InvalidNumber("not an email address") from exc


def check_region(region: str | None) -> str:
    """An upper-case region code phonenumbers knows (US, GB, CN, ...)."""
    code = (region or "").strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ListImportError(f"unknown region {region!r}: use a two-letter country code such as US or CN")
    return code


# ---------------------------------------------------------------------------- readers


def _header_key(text: Any) -> str:
    return re.sub(r"[\s_\-]+", "", str(text or "")).lower()


def _pick(headers: list[str], wanted: tuple[str, ...]) -> int | None:
    keys = [_header_key(h) for h in headers]
    for name in wanted:
        if name in keys:
            return keys.index(name)
    for name in wanted:
        for i, key in enumerate(keys):
            if key and name in key:
                return i
    return None


def _field_names(headers: list[str]) -> list[str]:
    """MongoDB-safe, unique field names for the header cells (no '.', no leading '$')."""
    names: list[str] = []
    for i, header in enumerate(headers):
        base = str(header or "").strip().replace(".", "_").lstrip("$") or f"column_{i + 1}"
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def _field_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value).strip()[:MAX_FIELD_CHARS]


def _looks_like_number(value: Any) -> bool:
    return len(re.sub(r"\D", "", str(value or ""))) >= 6 and not _LETTERS.search(str(value))


def _looks_like_key(value: Any, kind: KeyKind) -> bool:
    return "@" in str(value or "") if kind == "email" else _looks_like_number(value)


@dataclass
class _Layout:
    """Which cells of a tabular row hold the number, the name and the other fields."""

    number: int
    name: int | None
    names: list[str]
    column: str

    def row(self, line: int, cells: tuple[Any, ...] | list[Any]) -> RawRow | None:
        values = list(cells)
        if not any(v not in (None, "") for v in values):
            return None  # a blank row is no data row
        value = values[self.number] if self.number < len(values) else None
        name = values[self.name] if self.name is not None and self.name < len(values) else None
        fields: dict[str, Any] = {}
        for i, cell in enumerate(values[: len(self.names)]):
            if i in (self.number, self.name) or cell in (None, "") or len(fields) >= MAX_FIELDS:
                continue
            fields[self.names[i]] = _field_value(cell)
        text_name = str(_field_value(name)) if name not in (None, "") else None
        return RawRow(line, value, text_name, fields)


def _layout(headers: list[Any], column: str | None, kind: KeyKind = "number") -> tuple[_Layout, bool]:
    """The layout from the header row, and whether that row is data after all.

    A one-column file without a recognised header is a plain list of numbers whose first
    row is data when it looks like a number.
    """
    texts = [str(h).strip() if h is not None else "" for h in headers]
    names = _field_names(texts)
    if column:
        keys = [_header_key(t) for t in texts]
        if _header_key(column) not in keys:
            shown = ", ".join(t for t in texts if t) or "none"
            raise ListFormatError(f"no column {column!r} in the header row (columns: {shown})")
        number = keys.index(_header_key(column))
    else:
        found = _pick(texts, EMAIL_HEADERS if kind == "email" else NUMBER_HEADERS)
        if found is None:
            filled = [i for i, t in enumerate(texts) if t]
            if len(filled) == 1 or len(texts) == 1:
                index = filled[0] if filled else 0
                first_is_data = _looks_like_key(headers[index], kind)
                label = f"column {index + 1}" if first_is_data else texts[index]
                return _Layout(index, None, names, label), first_is_data
            shown = ", ".join(t for t in texts if t) or "none"
            what = "email address" if kind == "email" else "number"
            raise ListFormatError(
                f"no {what} column found (columns: {shown}); name one with --column / column="
            )
        number = found
    name = _pick([t if i != number else "" for i, t in enumerate(texts)], NAME_HEADERS)
    return _Layout(number, name, names, texts[number] or str(number + 1)), False


def _encoding(head: bytes) -> str:
    """The text encoding: a BOM says it; otherwise UTF-8, or GB18030 (Chinese Excel's CSV)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    return "utf-8"


def _open_text(source: Path | bytes, encoding: str) -> IO[str]:
    if isinstance(source, bytes):
        return io.TextIOWrapper(io.BytesIO(source), encoding=encoding, newline="")
    return open(source, encoding=encoding, newline="")  # closed by ListSource.close


def _head(source: Path | bytes, size: int = 65536) -> bytes:
    if isinstance(source, bytes):
        return source[:size]
    with open(source, "rb") as handle:
        return handle.read(size)


def _checked_encoding(source: Path | bytes, count: Callable[[IO[str]], int]) -> tuple[str, int]:
    """Count the rows with the detected encoding, falling back to GB18030 for non-UTF-8 bytes."""
    first = _encoding(_head(source))
    for encoding in dict.fromkeys([first, "gb18030"]):
        try:
            with _open_text(source, encoding) as text:
                return encoding, count(text)
        except UnicodeDecodeError:
            continue
        except csv.Error as exc:
            raise ListFormatError(f"not a readable CSV file: {exc}") from exc
    raise ListFormatError("the file is neither UTF-8 nor GB18030 text")


def _txt_line(raw: str) -> str | None:
    text = raw.strip().lstrip("\ufeff")
    return None if not text or text.startswith("#") else text


def _read_txt(source: Path | bytes) -> ListSource:
    def count(text: IO[str]) -> int:
        return sum(1 for raw in text if _txt_line(raw) is not None)

    encoding, total = _checked_encoding(source, count)
    handle = _open_text(source, encoding)

    def rows() -> Iterator[RawRow]:
        for line, raw in enumerate(handle, 1):
            text = _txt_line(raw)
            if text is not None:
                yield RawRow(line, text)

    return ListSource("txt", rows(), total, None, handle.close)


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _read_csv(source: Path | bytes, column: str | None, kind: KeyKind) -> ListSource:
    dialect: list[type[csv.Dialect] | csv.Dialect] = []

    def count(text: IO[str]) -> int:
        sample = text.read(16384)
        text.seek(0)
        dialect[:] = [_dialect(sample)]
        return sum(1 for row in csv.reader(text, dialect[0]) if any(c.strip() for c in row))

    encoding, total = _checked_encoding(source, count)
    handle = _open_text(source, encoding)
    reader = csv.reader(handle, dialect[0])
    try:
        header = next((row for row in reader if any(c.strip() for c in row)), None)
    except csv.Error as exc:
        handle.close()
        raise ListFormatError(f"not a readable CSV file: {exc}") from exc
    if header is None:
        handle.close()
        return ListSource("csv", iter(()), 0)
    try:
        layout, header_is_data = _layout(header, column, kind)
    except ListFormatError:
        handle.close()
        raise
    header_line = reader.line_num

    def rows() -> Iterator[RawRow]:
        if header_is_data:
            first = layout.row(header_line, header)
            if first is not None:
                yield first
        try:
            for cells in reader:
                row = layout.row(reader.line_num, cells)
                if row is not None:
                    yield row
        except csv.Error as exc:
            raise ListFormatError(f"not a readable CSV file: {exc} (line {reader.line_num})") from exc

    return ListSource("csv", rows(), total - (0 if header_is_data else 1), layout.column, handle.close)


def _read_xlsx(source: Path | bytes, column: str | None, sheet: str | None, kind: KeyKind) -> ListSource:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(
            io.BytesIO(source) if isinstance(source, bytes) else source, read_only=True, data_only=True
        )
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ListFormatError(f"not a readable .xlsx workbook: {exc}") from exc
    try:
        if sheet is not None:
            if sheet not in workbook.sheetnames:
                raise ListFormatError(f"no sheet {sheet!r} (sheets: {', '.join(workbook.sheetnames)})")
            worksheet = workbook[sheet]
        else:
            worksheet = workbook.worksheets[0]
        total = worksheet.max_row if isinstance(worksheet.max_row, int) else None
        if total is None or total <= 1:
            # some writers leave the dimension out (or say A1): count the rows instead
            worksheet.reset_dimensions()
            total = sum(1 for _ in worksheet.iter_rows(values_only=True))
        cells = worksheet.iter_rows(values_only=True)
        header: tuple[Any, ...] | None = None
        header_line = 0
        for candidate in cells:
            header_line += 1
            if any(v not in (None, "") for v in candidate):
                header = candidate
                break
        if header is None:
            workbook.close()
            return ListSource("xlsx", iter(()), 0)
        layout, header_is_data = _layout(list(header), column, kind)
    except ListFormatError:
        workbook.close()
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        workbook.close()
        raise ListFormatError(f"not a readable .xlsx workbook: {exc}") from exc

    def rows() -> Iterator[RawRow]:
        if header_is_data:
            first = layout.row(header_line, header)
            if first is not None:
                yield first
        try:
            for line, values in enumerate(cells, header_line + 1):
                row = layout.row(line, values)
                if row is not None:
                    yield row
        except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
            raise ListFormatError(f"not a readable .xlsx workbook: {exc}") from exc

    remaining = max(total - header_line + (1 if header_is_data else 0), 0)
    return ListSource("xlsx", rows(), remaining, layout.column, workbook.close)


def list_format(filename: str) -> str:
    """txt, csv or xlsx from the file name; ListFormatError for anything else."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".xls":
        raise ListFormatError("old .xls workbooks are not supported: save the file as .xlsx or .csv")
    if suffix not in FORMATS:
        raise ListFormatError(f"unsupported file type {suffix or filename!r}: use .txt, .csv or .xlsx")
    return FORMATS[suffix]


def open_list(
    source: Path | bytes,
    filename: str,
    *,
    column: str | None = None,
    sheet: str | None = None,
    kind: KeyKind = "number",
) -> ListSource:
    """Open a list for streaming (counts its rows first). Close the result when done.

    `kind` says which column keys the rows: the phone number, or (email campaigns) the
    address."""
    file_format = list_format(filename)
    try:
        if file_format == "txt":
            return _read_txt(source)
        if file_format == "csv":
            return _read_csv(source, column, kind)
        return _read_xlsx(source, column, sheet, kind)
    except OSError as exc:
        raise ListFormatError(f"cannot read {filename}: {exc.strerror or exc}") from exc


# ---------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    """The counts of one import; `to_dict()` is the shape shown by the CLI and the API."""

    import_id: str
    format: str = ""
    column: str | None = None
    region: str = DEFAULT_REGION
    kind: KeyKind = "number"
    cap: int = DEFAULT_CAP
    total_rows: int = 0
    imported: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    invalid_count: int = 0
    in_file: int = 0
    already_in_campaign: int = 0
    dropped_over_cap: int = 0

    def add_invalid(self, line: int, value: Any, reason: str) -> None:
        self.invalid_count += 1
        if len(self.invalid) < MAX_INVALID_SAMPLES:
            shown = "" if value is None else str(value)[:MAX_VALUE_CHARS]
            self.invalid.append({"line": line, "value": shown, "reason": reason})

    def to_dict(self) -> Doc:
        return {
            "import_id": self.import_id,
            "format": self.format,
            "column": self.column,
            "region": self.region,
            "kind": self.kind,
            "cap": self.cap,
            "total_rows": self.total_rows,
            "imported": self.imported,
            "invalid": list(self.invalid),
            "invalid_count": self.invalid_count,
            "duplicates": {"in_file": self.in_file, "already_in_campaign": self.already_in_campaign},
            "dropped_over_cap": self.dropped_over_cap,
        }


async def import_settings(ctx: AppContext, tenant_id: str) -> tuple[str, int]:
    """The tenant's default region and row cap (`outbound.default_region` / `max_list_rows`,
    else the routing default region, else US and 50,000)."""
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"outbound": 1, "routing": 1}) or {}
    outbound = tenant.get("outbound") or {}
    region = outbound.get("default_region") or (tenant.get("routing") or {}).get("default_region")
    cap = outbound.get("max_list_rows")
    return region or DEFAULT_REGION, int(cap) if cap else DEFAULT_CAP


async def _report_progress(progress: Progress | None, done: int, total: int) -> None:
    if progress is None:
        return
    result = progress(done, max(total, done))
    if inspect.isawaitable(result):
        await result


def _take(rows: Iterator[RawRow], count: int) -> list[RawRow]:
    batch: list[RawRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= count:
            break
    return batch


async def import_targets(
    ctx: AppContext,
    tenant_id: str,
    campaign_id: str,
    source: Path | bytes,
    filename: str,
    *,
    default_region: str | None = None,
    cap: int | None = None,
    column: str | None = None,
    sheet: str | None = None,
    progress: Progress | None = None,
    import_id: str | None = None,
) -> Doc:
    """Import a list file (a path, or its bytes) into a campaign; the report (module docstring).

    `default_region` defaults to the campaign's, then the tenant's; `cap` to the tenant's.
    Raises ListImportError for an unknown campaign or region and ListFormatError for an
    unreadable file; targets inserted before a late read error stay (a re-import skips
    them as duplicates).
    """
    campaign = await ctx.db.campaigns.find_one(
        {"_id": campaign_id, "tenant_id": tenant_id}, {"default_region": 1, "type": 1}
    )
    if campaign is None:
        raise ListImportError(f"no campaign {campaign_id!r} in this tenant")
    tenant_region, tenant_cap = await import_settings(ctx, tenant_id)
    region = check_region(default_region or campaign.get("default_region") or tenant_region)
    limit = tenant_cap if cap is None else cap
    if limit < 0:
        raise ListImportError("the cap must be 0 or more rows")
    report = ImportReport(import_id or new_id(), region=region, cap=limit)
    kind: KeyKind = "email" if campaign.get("type") == "email" else "number"
    report.kind = kind
    opened = await asyncio.to_thread(open_list, source, filename, column=column, sheet=sheet, kind=kind)
    report.format, report.column = opened.format, opened.column
    seen: set[str] = set()
    try:
        await _report_progress(progress, 0, opened.total)
        while True:
            batch = await asyncio.to_thread(_take, opened.rows, BATCH_ROWS)
            if not batch:
                break
            await _import_batch(ctx, tenant_id, campaign_id, batch, report, seen)
            await _report_progress(progress, report.total_rows, opened.total)
    finally:
        opened.close()
    await _report_progress(progress, report.total_rows, report.total_rows)
    return report.to_dict()


async def _import_batch(
    ctx: AppContext,
    tenant_id: str,
    campaign_id: str,
    batch: list[RawRow],
    report: ImportReport,
    seen: set[str],
) -> None:
    """Classify one batch of rows and insert its new targets (see the module docstring)."""
    candidates: list[tuple[RawRow, str, str | None]] = []
    for row in batch:
        report.total_rows += 1
        try:
            number, region = normalise_key(row.value, report.region, report.kind)
        except InvalidNumber as exc:
            report.add_invalid(row.line, row.value, str(exc))
            continue
        if number in seen:
            report.in_file += 1
            continue
        if report.imported >= report.cap:
            # full: no look-up, and `seen` stops growing, so later repeats of dropped rows
            # count as dropped too
            report.dropped_over_cap += 1
            continue
        seen.add(number)
        candidates.append((row, number, region))
    if not candidates:
        return
    existing = {
        doc["number"]
        async for doc in ctx.db.campaign_targets.find(
            {"campaign_id": campaign_id, "number": {"$in": [number for _, number, _ in candidates]}},
            {"number": 1},
        )
    }
    now = utcnow()
    docs: list[Doc] = []
    for row, number, region in candidates:
        if number in existing:
            report.already_in_campaign += 1
        elif report.imported + len(docs) >= report.cap:
            report.dropped_over_cap += 1
        else:
            docs.append(target_doc(tenant_id, campaign_id, number, region, row, report.import_id, now))
    if not docs:
        return
    inserted = len(docs)
    try:
        await ctx.db.campaign_targets.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        duplicates = sum(1 for error in errors if error.get("code") == 11000)
        if duplicates != len(errors):
            raise
        inserted -= duplicates  # added by a concurrent import since the look-up
        report.already_in_campaign += duplicates
    report.imported += inserted


def target_doc(
    tenant_id: str,
    campaign_id: str,
    number: str,
    region: str | None,
    row: RawRow,
    import_id: str,
    now: datetime,
) -> Doc:
    """A new pending target (docs/outbound.md), due at once, assigned to nobody."""
    return {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "campaign_id": campaign_id,
        "number": number,
        "name": row.name,
        "fields": row.fields,
        "region": region,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_outcome": None,
        "assigned_agent_id": None,
        "group": None,
        "import_id": import_id,
        "line": row.line,
        "created_at": now,
    }


def remove_quietly(path: Path) -> None:
    """Delete an uploaded temporary file; it may already be gone."""
    with suppress(FileNotFoundError):
        path.unlink()
