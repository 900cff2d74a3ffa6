"""Report files: CSV, and Excel from a template the tenant can replace.

The Excel file is built with openpyxl. Without a tenant template it is a workbook made
here (a "data" sheet with a header row, the rows and a totals row, and an "about" sheet
saying what was asked). A tenant may upload its own .xlsx for a report (its logo, a chart
or pivot on the data, formulas on other sheets): the sheet named "data" is cleared and
filled from A1 with the same table, everything else is kept as uploaded. Templates live in
`report_templates` (`_id` "<tenant_id>:<report>"), one small document each (at most
MAX_TEMPLATE_BYTES; a document, not GridFS: it is read whole on every export anyway).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from bson import Binary
from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from hub.context import AppContext
from hub.ids import utcnow

DATA_SHEET = "data"
MAX_TEMPLATE_BYTES = 5 * 1024 * 1024
REPORT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class TemplateError(ValueError):
    """An upload that is not a usable template (shown as 422)."""


def table(report: dict[str, Any]) -> list[list[Any]]:
    """The report as rows of cells: header, one row per group, then the totals."""
    columns: list[str] = list(report["columns"])
    header = ["key", "label", "interval_start", *columns]
    out: list[list[Any]] = [header]
    for row in report["rows"]:
        key = row.get("key")
        out.append(
            [
                " / ".join(map(str, key)) if isinstance(key, list) else key,
                row.get("label"),
                row.get("interval_start"),
                *[row.get(c) for c in columns],
            ]
        )
    totals = report.get("totals") or {}
    out.append(["total", "Total", None, *[totals.get(c) for c in columns]])
    return out


def to_csv(report: dict[str, Any]) -> bytes:
    """UTF-8 with a byte-order mark, so Excel opens non-ASCII names correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for line in table(report):
        writer.writerow(["" if cell is None else cell for cell in line])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def default_workbook(report: dict[str, Any]) -> Workbook:
    """The built-in template: an empty "data" sheet and an "about" sheet with the query."""
    book = Workbook()
    data = book.active
    assert data is not None
    data.title = DATA_SHEET
    about = book.create_sheet("about")
    for line in (
        ("report", f"contacts by {report['by']}, per {report['interval']}"),
        ("from", report["from"]),
        ("to", report["to"]),
        ("time zone", report.get("timezone", "UTC")),
        ("made at", utcnow().isoformat(timespec="seconds")),
    ):
        about.append(list(line))
    return book


def to_xlsx(report: dict[str, Any], template: bytes | None = None) -> bytes:
    """The report in the tenant's template (or the built-in one), "data" sheet filled from A1."""
    book = load_template(template) if template else default_workbook(report)
    if DATA_SHEET in book.sheetnames:
        sheet = book[DATA_SHEET]
        sheet.delete_rows(1, sheet.max_row)
    else:
        sheet = book.create_sheet(DATA_SHEET, 0)
    cells = table(report)
    for line in cells:
        sheet.append(line)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for cell in sheet[len(cells)]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "D2"
    if not template:
        for index, name in enumerate(cells[0], start=1):
            sheet.column_dimensions[get_column_letter(index)].width = max(10, min(28, len(str(name)) + 2))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def load_template(data: bytes) -> Workbook:
    """An uploaded workbook (defusedxml, installed with us, makes openpyxl refuse XML bombs)."""
    try:
        return load_workbook(io.BytesIO(data))
    except Exception as exc:  # openpyxl raises many kinds for a bad file
        raise TemplateError("not a readable .xlsx workbook") from exc


async def save_template(ctx: AppContext, tenant_id: str, report: str, data: bytes, by: str) -> dict[str, Any]:
    """Check and store a tenant's template for `report` (e.g. "historical")."""
    if not REPORT_NAME.match(report):
        raise TemplateError("report names are lower-case letters, digits, - and _")
    if not data:
        raise TemplateError("the upload is empty")
    if len(data) > MAX_TEMPLATE_BYTES:
        raise TemplateError(f"templates are at most {MAX_TEMPLATE_BYTES // (1024 * 1024)} MB")
    sheets = load_template(data).sheetnames
    doc = {
        "tenant_id": tenant_id,
        "report": report,
        "data": Binary(data),
        "size": len(data),
        "sheets": sheets,
        "updated_by": by,
        "updated_at": utcnow(),
    }
    await ctx.db.report_templates.update_one({"_id": f"{tenant_id}:{report}"}, {"$set": doc}, upsert=True)
    return {"report": report, "size": len(data), "sheets": sheets, "has_data_sheet": DATA_SHEET in sheets}


async def template_for(ctx: AppContext, tenant_id: str, report: str) -> bytes | None:
    doc = await ctx.db.report_templates.find_one({"_id": f"{tenant_id}:{report}", "tenant_id": tenant_id})
    return bytes(doc["data"]) if doc else None


async def delete_template(ctx: AppContext, tenant_id: str, report: str) -> bool:
    result = await ctx.db.report_templates.delete_one(
        {"_id": f"{tenant_id}:{report}", "tenant_id": tenant_id}
    )
    return result.deleted_count > 0


async def historical_file(ctx: AppContext, tenant_id: str, query: Any, fmt: str) -> tuple[bytes, str, str]:
    """The historical report `query` (reports.historical.ReportQuery) as (content, media type,
    file name) in "csv" or "xlsx", the tenant's template applied (for the API and mailings)."""
    from reports.historical import historical

    report = await historical(ctx, tenant_id, query)
    name = f"report-{report['by']}-{report['interval']}-{report['from']}-{report['to']}"
    if fmt == "csv":
        return to_csv(report), "text/csv; charset=utf-8", f"{name}.csv"
    if fmt != "xlsx":
        raise ValueError("format must be csv or xlsx")
    template = await template_for(ctx, tenant_id, f"historical_{report['by']}")
    template = template or await template_for(ctx, tenant_id, "historical")
    return to_xlsx(report, template), XLSX_TYPE, f"{name}.xlsx"
