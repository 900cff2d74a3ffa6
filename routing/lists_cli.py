"""`hub campaign import FILE --tenant SLUG --campaign ID`: a list import from the shell, with a
rich progress bar on stderr and the report on stdout (a table, or JSON with --json).

Exit codes: 0 when the import ran (invalid rows are reported, not failures), 2 when the
file cannot be read, 1 for an unknown tenant or campaign or a bad option.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hub.context import AppContext
from hub.ids import utcnow
from hub.tenancy import get_tenant_by_slug
from routing.list_jobs import create_job
from routing.lists import ListFormatError, ListImportError, import_targets

SHOWN_INVALID = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help=".txt (one number a line), .csv or .xlsx")
    parser.add_argument("--tenant", required=True, help="tenant slug")
    parser.add_argument("--campaign", required=True, help="campaign id")
    parser.add_argument("--region", help="region of national numbers, e.g. US or CN (else the campaign's)")
    parser.add_argument("--cap", type=int, help="most targets to add (tenant setting, else 50,000)")
    parser.add_argument("--column", help="header of the number column (found by name otherwise)")
    parser.add_argument("--sheet", help="worksheet of an .xlsx file (the first otherwise)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def print_report(console: Console, report: dict[str, Any]) -> None:
    table = Table(title="List import", show_header=False)
    table.add_row("rows read", str(report["total_rows"]))
    table.add_row("imported", str(report["imported"]))
    table.add_row("invalid", str(report["invalid_count"]))
    table.add_row("duplicates in the file", str(report["duplicates"]["in_file"]))
    table.add_row("already in the campaign", str(report["duplicates"]["already_in_campaign"]))
    table.add_row(f"dropped over the cap ({report['cap']})", str(report["dropped_over_cap"]))
    table.add_row("number column", str(report.get("column") or "-"))
    table.add_row("default region", str(report["region"]))
    console.print(table)
    if report["invalid"]:
        rows = Table(title="Invalid rows")
        for name in ("line", "value", "reason"):
            rows.add_column(name)
        for row in report["invalid"][:SHOWN_INVALID]:
            rows.add_row(str(row["line"]), row["value"], row["reason"])
        console.print(rows)
        more = report["invalid_count"] - min(len(report["invalid"]), SHOWN_INVALID)
        if more > 0:
            console.print(f"... and {more} more invalid rows (--json lists the first 100)")


async def run_import(ctx: AppContext, args: argparse.Namespace) -> int:
    """Import with a progress bar; the exit code (module docstring)."""
    out, err = Console(), Console(stderr=True)
    tenant = await get_tenant_by_slug(ctx, args.tenant)
    if tenant is None:
        err.print(f"error: no tenant {args.tenant!r}")
        return 1
    if not args.file.is_file():
        err.print(f"error: cannot read {args.file}: no such file")
        return 2
    if (
        await ctx.db.campaigns.find_one({"_id": args.campaign, "tenant_id": tenant["_id"]}, {"_id": 1})
        is None
    ):
        err.print(f"error: no campaign {args.campaign!r} in tenant {args.tenant!r}")
        return 1
    job = await create_job(ctx, tenant["_id"], args.campaign, args.file.name, None, source="cli")
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("import", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = await import_targets(
                ctx,
                tenant["_id"],
                args.campaign,
                args.file,
                args.file.name,
                default_region=args.region,
                cap=args.cap,
                column=args.column,
                sheet=args.sheet,
                progress=progress,
                import_id=job["_id"],
            )
        except ListImportError as exc:
            await ctx.db.list_imports.update_one(
                {"_id": job["_id"]},
                {"$set": {"status": "failed", "error": str(exc), "finished_at": utcnow()}},
            )
            err.print(f"error: {exc}")
            return 2 if isinstance(exc, ListFormatError) else 1
    done = {"status": "done", "report": report, "done": report["total_rows"], "total": report["total_rows"]}
    await ctx.db.list_imports.update_one(
        {"_id": job["_id"]}, {"$set": {**done, "updated_at": utcnow(), "finished_at": utcnow()}}
    )
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        print_report(out, report)
    return 0
