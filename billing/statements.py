"""Statements: a tenant's money over a period, as JSON and as an Excel workbook.

The balance at an instant is the sum of the tenant's top-ups minus the sum of its
charges (billing records) up to it: the account's `balance_micros` is only a running
total of the same entries, so a statement that reaches the present closes on exactly the
account's balance (`reconciles` says whether it does; a difference means an entry is
still being applied, see accounts.py). Records are dated by their event (`at`: when the
call ended or the SMS was sent), top-ups by when they were made.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from billing.rating import format_micros
from hub.context import AppContext
from hub.db import Doc


async def _sum(ctx: AppContext, collection: str, match: Doc) -> int:
    rows = await ctx.db.db[collection].aggregate(
        [{"$match": match}, {"$group": {"_id": None, "total": {"$sum": "$amount_micros"}}}]
    )
    async for row in rows:
        return int(row.get("total") or 0)
    return 0


async def balance_at(ctx: AppContext, tenant_id: str, at: datetime) -> int:
    """Top-ups minus charges dated before `at`."""
    credits = await _sum(ctx, "top_ups", {"tenant_id": tenant_id, "at": {"$lt": at}})
    debits = await _sum(ctx, "billing_records", {"tenant_id": tenant_id, "at": {"$lt": at}})
    return credits - debits


async def ledger_balance(ctx: AppContext, tenant_id: str) -> int:
    """All top-ups minus all charges: what the account's balance must equal."""
    credits = await _sum(ctx, "top_ups", {"tenant_id": tenant_id})
    return credits - await _sum(ctx, "billing_records", {"tenant_id": tenant_id})


async def statement(ctx: AppContext, tenant: Doc, start: datetime, end: datetime) -> Doc:
    """Opening balance at `start`, top-ups and charges (by kind and by prefix) in [start, end),
    closing balance at `end`, and whether the closing balance matches the account now."""
    tenant_id = tenant["_id"]
    window = {"tenant_id": tenant_id, "at": {"$gte": start, "$lt": end}}
    opening = await balance_at(ctx, tenant_id, start)
    top_ups = [
        {
            "at": t["at"],
            "amount": format_micros(int(t["amount_micros"])),
            "amount_micros": int(t["amount_micros"]),
            "note": t.get("note") or "",
            "by": t.get("by"),
        }
        async for t in ctx.db.top_ups.find(window).sort("at", 1)
    ]
    by_kind: list[Doc] = []
    async for row in await ctx.db.billing_records.aggregate(
        [
            {"$match": window},
            {
                "$group": {
                    "_id": "$kind",
                    "count": {"$sum": 1},
                    "seconds": {"$sum": "$seconds"},
                    "billed_seconds": {"$sum": "$billed_seconds"},
                    "segments": {"$sum": "$segments"},
                    "amount_micros": {"$sum": "$amount_micros"},
                }
            },
            {"$sort": {"_id": 1}},
        ]
    ):
        by_kind.append({"kind": row["_id"], **_figures(row)})
    by_prefix: list[Doc] = []
    async for row in await ctx.db.billing_records.aggregate(
        [
            {"$match": window},
            {
                "$group": {
                    "_id": {"kind": "$kind", "prefix": "$prefix"},
                    "description": {"$first": "$description"},
                    "unit_price_micros": {"$max": "$unit_price_micros"},
                    "count": {"$sum": 1},
                    "seconds": {"$sum": "$seconds"},
                    "billed_seconds": {"$sum": "$billed_seconds"},
                    "segments": {"$sum": "$segments"},
                    "amount_micros": {"$sum": "$amount_micros"},
                }
            },
            {"$sort": {"_id.kind": 1, "_id.prefix": 1}},
        ]
    ):
        by_prefix.append(
            {
                "kind": row["_id"]["kind"],
                "prefix": row["_id"].get("prefix"),
                "description": row.get("description") or "",
                "unit_price": format_micros(int(row.get("unit_price_micros") or 0)),
                **_figures(row),
            }
        )
    top_up_total = sum(t["amount_micros"] for t in top_ups)
    charges_total = sum(k["amount_micros"] for k in by_kind)
    closing = opening + top_up_total - charges_total
    account = await ctx.db.billing_accounts.find_one({"_id": tenant_id}) or {}
    ledger = await ledger_balance(ctx, tenant_id)
    return {
        "tenant_id": tenant_id,
        "tenant_name": tenant.get("name"),
        "currency": account.get("currency") or "USD",
        "start": start,
        "end": end,
        "opening_balance": format_micros(opening),
        "opening_balance_micros": opening,
        "top_ups": top_ups,
        "top_ups_total": format_micros(top_up_total),
        "top_ups_total_micros": top_up_total,
        "charges_by_kind": by_kind,
        "charges_by_prefix": by_prefix,
        "charges_total": format_micros(charges_total),
        "charges_total_micros": charges_total,
        "closing_balance": format_micros(closing),
        "closing_balance_micros": closing,
        "account_balance_micros": account.get("balance_micros"),
        "ledger_balance_micros": ledger,
        "reconciles": ledger == account.get("balance_micros") if account else None,
    }


def _figures(row: Doc) -> Doc:
    amount = int(row.get("amount_micros") or 0)
    return {
        "count": int(row.get("count") or 0),
        "seconds": int(row.get("seconds") or 0),
        "billed_seconds": int(row.get("billed_seconds") or 0),
        "segments": int(row.get("segments") or 0),
        "amount": format_micros(amount),
        "amount_micros": amount,
    }


def _money(micros: int) -> float:
    """A cell value: Excel holds doubles; 6 decimals of micros are exact at these sizes."""
    return round(micros / 1_000_000, 6)


def to_xlsx(doc: Doc) -> bytes:
    """Sheets: summary (opening, top-ups, charges, closing), by prefix, top-ups."""
    workbook = Workbook()
    summary = workbook.active
    assert summary is not None
    summary.title = "summary"
    rows: list[list[Any]] = [
        ["Statement", doc.get("tenant_name") or doc["tenant_id"]],
        ["Currency", doc["currency"]],
        ["From", doc["start"].replace(tzinfo=None)],
        ["To", doc["end"].replace(tzinfo=None)],
        [],
        ["Opening balance", _money(doc["opening_balance_micros"])],
        ["Top-ups", _money(doc["top_ups_total_micros"])],
    ]
    for kind in doc["charges_by_kind"]:
        rows.append([f"Charges: {kind['kind']}", _money(-kind["amount_micros"])])
    rows.append(["Charges total", _money(-doc["charges_total_micros"])])
    rows.append(["Closing balance", _money(doc["closing_balance_micros"])])
    for row in rows:
        summary.append(row)
    for row_cells in summary.iter_rows(min_row=1, max_row=summary.max_row, max_col=1):
        for cell in row_cells:
            cell.font = Font(bold=True)
    prefixes = workbook.create_sheet("by prefix")
    prefixes.append(
        [
            "kind",
            "prefix",
            "description",
            "unit price",
            "count",
            "seconds",
            "billed seconds",
            "segments",
            "amount",
        ]
    )
    for p in doc["charges_by_prefix"]:
        prefixes.append(
            [
                p["kind"],
                p["prefix"],
                p["description"],
                p["unit_price"],
                p["count"],
                p["seconds"],
                p["billed_seconds"],
                p["segments"],
                _money(p["amount_micros"]),
            ]
        )
    top_ups = workbook.create_sheet("top-ups")
    top_ups.append(["at", "amount", "note"])
    for t in doc["top_ups"]:
        top_ups.append([t["at"].replace(tzinfo=None), _money(t["amount_micros"]), t["note"]])
    for sheet in (prefixes, top_ups):
        for cell in sheet[1]:
            cell.font = Font(bold=True)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
