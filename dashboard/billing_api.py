"""Billing over HTTP (/api/billing): rate groups and tables, accounts and markups, top-ups,
billing records and statements (JSON and Excel). docs/admin.md "Billing" is the model.

Who may do what:
- rate groups and their entries: `billing.rates`, in the group owner's tenant only; a
  tenant rated on an ancestor's group may read its entries at its own (marked-up) prices;
- a child's account (voice, SMS and inbound rate groups, markup, stop level):
  `billing.rates` on a tenant below the caller's (`Principal.manages`); the group must be
  of that kind and the caller's own or one the caller
  is rated on itself (a reseller hands down what it buys);
- top-ups: `billing.topup` on a tenant below the caller's; never the caller's own tenant;
- balances, top-ups, records and statements: `billing.view` for the caller's tenant and
  the tenants below it.
A tenant outside the caller's reach is a 404, as is any id of another tree. Every change
is written to the audit log.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field

from billing import accounts, rates, statements
from billing.pricing import PriceBook
from billing.rates import RateError
from billing.rating import RatingError, apply_markups, format_micros, to_micros
from hub import audit
from hub.auth import Principal, require_permission
from hub.context import AppContext, get_ctx
from hub.db import Doc

router = APIRouter(prefix="/api/billing", tags=["billing"])
RATES = require_permission("billing.rates")
VIEW = require_permission("billing.view", "billing.rates", "billing.topup")
TOPUP = require_permission("billing.topup")
MAX_RATE_FILE_BYTES = 20 * 1024 * 1024
MAX_RECORDS = 1000


class GroupBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=80)
    kind: str = Field(pattern="^(voice|sms|inbound)$")
    currency: str = Field(default="USD", min_length=3, max_length=3)


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=80)


class RateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    prefix: str = Field(min_length=1, max_length=16)
    description: str = Field(default="", max_length=120)
    price: str = Field(min_length=1, max_length=24, description="per minute (voice) or segment (sms)")
    increment: str = Field(default="60/60", max_length=11, description='"60/60", "6/6", "30/6" ...')
    minimum_s: int = Field(default=0, ge=0, le=3600)
    connection: str = Field(default="0", max_length=24)


class AccountBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    voice_group_id: str | None = Field(default=None, max_length=64)
    sms_group_id: str | None = Field(default=None, max_length=64)
    inbound_group_id: str | None = Field(default=None, max_length=64)
    markup_pct: float | None = Field(default=None, gt=-100, le=1000)
    stop_below: str | None = Field(default=None, max_length=24)
    currency: str | None = Field(default=None, min_length=3, max_length=3)


class TopUpBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    amount: str = Field(min_length=1, max_length=24)
    note: str = Field(default="", max_length=300)


async def _reachable(ctx: AppContext, principal: Principal, tenant_id: str, *, itself: bool) -> Doc:
    """The tenant if it is below the caller's (or the caller's own when `itself`), else 404."""
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id})
    if tenant is None or not (principal.manages(tenant) or (itself and tenant_id == principal.tenant_id)):
        raise HTTPException(404, "no such tenant")
    return tenant


async def _own_group(ctx: AppContext, principal: Principal, group_id: str) -> Doc:
    group = await ctx.db.rate_groups.find_one({"_id": group_id, "tenant_id": principal.tenant_id})
    if group is None:
        raise HTTPException(404, "no such rate group")
    return group


async def _visible_group(ctx: AppContext, principal: Principal, group_id: str) -> tuple[Doc, list[float]]:
    """A group the caller owns (no markups) or is rated on (its markups), else 404."""
    group = await ctx.db.rate_groups.find_one({"_id": group_id})
    if group is None:
        raise HTTPException(404, "no such rate group")
    if group["tenant_id"] == principal.tenant_id:
        return group, []
    book = PriceBook(ctx)
    account = await book.account(principal.tenant_id) or {}
    if group_id not in [account.get(f"{kind}_group_id") for kind in rates.KINDS]:
        raise HTTPException(404, "no such rate group")
    markups = await book.markups(principal.tenant_id, group["tenant_id"])
    if markups is None:
        raise HTTPException(404, "no such rate group")
    return group, markups


# ------------------------------------------------------------------------------ rate groups


@router.get("/groups")
async def list_groups(principal: Principal = VIEW, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    """The groups the caller's tenant owns, and the ones it is rated on from above."""
    owned = []
    async for group in ctx.db.rate_groups.find({"tenant_id": principal.tenant_id}).sort("name", 1):
        count = await ctx.db.rates.count_documents({"group_id": group["_id"]})
        owned.append(rates.public_group(group, count))
    account = await accounts.get_account(ctx, principal.tenant_id) or {}
    rated_on = []
    for kind in rates.KINDS:
        group_id = account.get(f"{kind}_group_id")
        above = await ctx.db.rate_groups.find_one({"_id": group_id}) if group_id else None
        if above is not None and above["tenant_id"] != principal.tenant_id:
            rated_on.append({**rates.public_group(above), "inherited": True})
    return {"owned": owned, "rated_on": rated_on}


@router.post("/groups", status_code=201)
async def create_group(
    body: GroupBody, request: Request, principal: Principal = RATES, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    try:
        group = await rates.create_group(ctx, principal.tenant_id, body.name, body.kind, body.currency)
    except RateError as exc:
        raise HTTPException(422, str(exc)) from exc
    await audit.record(
        ctx,
        principal,
        "billing.group.create",
        {"kind": "rate_group", "id": group["_id"]},
        {"after": rates.public_group(group)},
        ip=audit.client_ip(request),
    )
    return rates.public_group(group, 0)


@router.patch("/groups/{group_id}")
async def rename_group(
    group_id: str,
    body: RenameBody,
    request: Request,
    principal: Principal = RATES,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    group = await _own_group(ctx, principal, group_id)
    try:
        renamed = await rates.rename_group(ctx, group, body.name)
    except RateError as exc:
        raise HTTPException(422, str(exc)) from exc
    await audit.record(
        ctx,
        principal,
        "billing.group.rename",
        {"kind": "rate_group", "id": group_id},
        {"before": {"name": group["name"]}, "after": {"name": renamed["name"]}},
        ip=audit.client_ip(request),
    )
    return rates.public_group(renamed)


@router.delete("/groups/{group_id}", status_code=204)
async def delete_group(
    group_id: str, request: Request, principal: Principal = RATES, ctx: AppContext = Depends(get_ctx)
) -> Response:
    group = await _own_group(ctx, principal, group_id)
    try:
        await rates.delete_group(ctx, group)
    except RateError as exc:
        raise HTTPException(409, str(exc)) from exc
    await audit.record(
        ctx,
        principal,
        "billing.group.delete",
        {"kind": "rate_group", "id": group_id},
        {"before": rates.public_group(group)},
        ip=audit.client_ip(request),
    )
    return Response(status_code=204)


@router.get("/groups/{group_id}/rates")
async def list_rates(
    group_id: str,
    prefix: str = Query(default="", max_length=15),
    limit: int = Query(default=500, ge=1, le=5000),
    principal: Principal = VIEW,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """The entries (the owner's base prices, or the caller's own marked-up prices)."""
    group, markups = await _visible_group(ctx, principal, group_id)
    query: Doc = {"group_id": group_id}
    if prefix.isdigit():
        query["prefix"] = {"$gte": prefix, "$lt": prefix + "\ufffd"}
    entries = [
        rates.public_rate(rate, apply_markups(rates.tariff_of(rate), list(markups)))
        async for rate in ctx.db.rates.find(query).sort("prefix", 1).limit(limit)
    ]
    return {"group": rates.public_group(group), "markups_pct": markups, "rates": entries}


@router.put("/groups/{group_id}/rates")
async def put_rate(
    group_id: str,
    body: RateBody,
    request: Request,
    principal: Principal = RATES,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Create or replace the entry for a prefix."""
    group = await _own_group(ctx, principal, group_id)
    try:
        rate = await rates.put_rate(ctx, group, body.model_dump())
    except RateError as exc:
        raise HTTPException(422, str(exc)) from exc
    shown = rates.public_rate(rate)
    await audit.record(
        ctx,
        principal,
        "billing.rate.put",
        {"kind": "rate", "group_id": group_id, "prefix": rate["prefix"]},
        {"after": shown},
        ip=audit.client_ip(request),
    )
    return shown


@router.delete("/groups/{group_id}/rates/{prefix}", status_code=204)
async def delete_rate(
    group_id: str,
    prefix: str,
    request: Request,
    principal: Principal = RATES,
    ctx: AppContext = Depends(get_ctx),
) -> Response:
    group = await _own_group(ctx, principal, group_id)
    if not await rates.delete_rate(ctx, group, prefix):
        raise HTTPException(404, "no such rate")
    await audit.record(
        ctx,
        principal,
        "billing.rate.delete",
        {"kind": "rate", "group_id": group_id, "prefix": prefix},
        ip=audit.client_ip(request),
    )
    return Response(status_code=204)


@router.post("/groups/{group_id}/rates/import")
async def import_rates(
    group_id: str,
    file: UploadFile,
    request: Request,
    principal: Principal = RATES,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """An .xlsx or .csv rate table (columns prefix, description, price, increment,
    minimum_s, connection): valid rows are stored, invalid ones reported by line."""
    group = await _own_group(ctx, principal, group_id)
    data = await file.read(MAX_RATE_FILE_BYTES + 1)
    if len(data) > MAX_RATE_FILE_BYTES:
        raise HTTPException(413, "a rate table file may be at most 20 MB")
    try:
        result = await rates.import_rates(ctx, group, data, file.filename or "rates.csv")
    except RateError as exc:
        raise HTTPException(422, str(exc)) from exc
    await audit.record(
        ctx,
        principal,
        "billing.rate.import",
        {"kind": "rate_group", "id": group_id},
        {"file": file.filename, "stored": result.stored, "invalid": len(result.errors)},
        ip=audit.client_ip(request),
    )
    return result.as_dict()


@router.get("/groups/{group_id}/rates/export")
async def export_rates(
    group_id: str,
    format: str = Query(default="xlsx", pattern="^(xlsx|csv)$"),
    principal: Principal = VIEW,
    ctx: AppContext = Depends(get_ctx),
) -> Response:
    group, markups = await _visible_group(ctx, principal, group_id)
    tariffs = None
    if markups:
        tariffs = {
            r["prefix"]: apply_markups(rates.tariff_of(r), list(markups))
            async for r in ctx.db.rates.find({"group_id": group_id})
        }
    rows = await rates.export_rows(ctx, group, tariffs)
    name = f"rates-{group['kind']}-{group['_id'][:8]}"
    if format == "csv":
        return Response(
            rates.rows_to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(
        rates.rows_to_xlsx(rows, "rates"),
        media_type=rates.XLSX_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
    )


# ------------------------------------------------------------------------------ accounts


async def _public_account(ctx: AppContext, tenant: Doc) -> dict[str, Any]:
    account = await accounts.get_account(ctx, tenant["_id"])
    if account is None:
        return {
            "tenant_id": tenant["_id"],
            "tenant_name": tenant.get("name"),
            "tenant_level": tenant.get("level") or "customer",
            "billed": False,
        }
    return {**accounts.public_account(account, tenant), "billed": True}


@router.get("/accounts")
async def list_accounts(principal: Principal = VIEW, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    """The caller's own account and those of every tenant below it."""
    own = await ctx.db.tenants.find_one({"_id": principal.tenant_id}) or {"_id": principal.tenant_id}
    below = [
        await _public_account(ctx, tenant)
        async for tenant in ctx.db.tenants.find({"path": principal.tenant_id}).sort("name", 1).limit(2000)
    ]
    return {"own": await _public_account(ctx, own), "below": below}


@router.get("/accounts/{tenant_id}")
async def get_account(
    tenant_id: str, principal: Principal = VIEW, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    tenant = await _reachable(ctx, principal, tenant_id, itself=True)
    return await _public_account(ctx, tenant)


async def _assignable(ctx: AppContext, principal: Principal, group_id: str, kind: str) -> None:
    """The caller may hand down a group it owns, or the one it is rated on itself."""
    group = await ctx.db.rate_groups.find_one({"_id": group_id})
    own = await accounts.get_account(ctx, principal.tenant_id) or {}
    if group is None or (
        group["tenant_id"] != principal.tenant_id and own.get(f"{kind}_group_id") != group_id
    ):
        raise HTTPException(404, f"no such {kind} rate group")
    if group["kind"] != kind:
        raise HTTPException(422, f"rate group {group['name']!r} is not a {kind} group")


@router.put("/accounts/{tenant_id}")
async def configure_account(
    tenant_id: str,
    body: AccountBody,
    request: Request,
    principal: Principal = RATES,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Rate groups, markup on the caller's price, and stop level of a tenant below."""
    tenant = await _reachable(ctx, principal, tenant_id, itself=False)
    changes: Doc = {k: v for k, v in body.model_dump(exclude_unset=True).items() if k != "stop_below"}
    for kind in rates.KINDS:
        group_id = changes.get(f"{kind}_group_id")
        if group_id:
            await _assignable(ctx, principal, group_id, kind)
    if body.stop_below is not None:
        try:
            changes["stop_below_micros"] = to_micros(body.stop_below)
        except RatingError as exc:
            raise HTTPException(422, str(exc)) from exc
    if changes.get("currency"):
        changes["currency"] = str(changes["currency"]).upper()
    changes = {k: v for k, v in changes.items() if v is not None or k.endswith("_group_id")}
    before = await accounts.get_account(ctx, tenant_id)
    try:
        account = await accounts.configure(ctx, tenant_id, changes)
    except accounts.AccountError as exc:
        raise HTTPException(422, str(exc)) from exc
    await audit.record(
        ctx,
        principal,
        "billing.account.configure",
        {"kind": "billing_account", "id": tenant_id},
        {"before": {k: (before or {}).get(k) for k in changes}, "after": changes},
        tenant_id=tenant_id,
        ip=audit.client_ip(request),
    )
    return {**accounts.public_account(account, tenant), "billed": True}


# ------------------------------------------------------------------------------ top-ups


@router.post("/accounts/{tenant_id}/top-ups", status_code=201)
async def top_up(
    tenant_id: str,
    body: TopUpBody,
    request: Request,
    principal: Principal = TOPUP,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Credit a tenant below the caller's (a tenant never tops itself up)."""
    if tenant_id == principal.tenant_id:
        raise HTTPException(403, "a tenant cannot top up its own balance: ask the tenant above you")
    tenant = await _reachable(ctx, principal, tenant_id, itself=False)
    try:
        amount = to_micros(body.amount)
        entry = await accounts.top_up(
            ctx, tenant_id, amount, by=principal.user_id, by_tenant_id=principal.tenant_id, note=body.note
        )
    except (RatingError, accounts.AccountError) as exc:
        raise HTTPException(422, str(exc)) from exc
    await audit.record(
        ctx,
        principal,
        "billing.top_up",
        {"kind": "billing_account", "id": tenant_id},
        {"amount": format_micros(amount), "note": entry["note"]},
        tenant_id=tenant_id,
        ip=audit.client_ip(request),
    )
    account = await accounts.get_account(ctx, tenant_id)
    assert account is not None
    return {"top_up": accounts.public_top_up(entry), "account": accounts.public_account(account, tenant)}


@router.get("/accounts/{tenant_id}/top-ups")
async def list_top_ups(
    tenant_id: str,
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = VIEW,
    ctx: AppContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    await _reachable(ctx, principal, tenant_id, itself=True)
    cursor = ctx.db.top_ups.find({"tenant_id": tenant_id}).sort("at", -1).limit(limit)
    return [accounts.public_top_up(t) async for t in cursor]


# ------------------------------------------------------------------------------ records


def _instant(text: str | None, *, end: bool = False) -> datetime | None:
    """ "2024-05-01" (a UTC day; as an end it includes that day) or an ISO instant."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise HTTPException(422, f"not a date: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def public_record(record: Doc) -> dict[str, Any]:
    return {
        "id": record["_id"],
        "tenant_id": record["tenant_id"],
        "origin_tenant_id": record.get("origin_tenant_id"),
        "source_key": record["source_key"],
        "kind": record["kind"],
        "direction": record.get("direction") or "outbound",
        "number": record.get("number"),
        "prefix": record.get("prefix"),
        "description": record.get("description") or "",
        "seconds": record.get("seconds") or 0,
        "billed_seconds": record.get("billed_seconds") or 0,
        "segments": record.get("segments") or 0,
        "unit_price": format_micros(int(record.get("unit_price_micros") or 0)),
        "amount": format_micros(int(record.get("amount_micros") or 0)),
        "amount_micros": int(record.get("amount_micros") or 0),
        "currency": record.get("currency"),
        "unrated": bool(record.get("unrated")),
        "campaign_id": record.get("campaign_id"),
        "at": record.get("at"),
    }


@router.get("/records")
async def list_records(
    tenant_id: str | None = Query(default=None, max_length=64),
    kind: str | None = Query(default=None, pattern="^(voice|sms|inbound)$"),
    number: str | None = Query(default=None, max_length=40),
    start: str | None = Query(default=None, alias="from", max_length=40),
    end: str | None = Query(default=None, alias="to", max_length=40),
    limit: int = Query(default=200, ge=1, le=MAX_RECORDS),
    principal: Principal = VIEW,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Billing records of the caller's tenant (or one below it), newest first."""
    target = tenant_id or principal.tenant_id
    await _reachable(ctx, principal, target, itself=True)
    query: Doc = {"tenant_id": target}
    if kind:
        query["kind"] = kind
    if number:
        query["number"] = number
    window: Doc = {}
    if (after := _instant(start)) is not None:
        window["$gte"] = after
    if (before := _instant(end, end=True)) is not None:
        window["$lt"] = before
    if window:
        query["at"] = window
    cursor = ctx.db.billing_records.find(query).sort("at", -1).limit(limit)
    return {"records": [public_record(r) async for r in cursor]}


# ------------------------------------------------------------------------------ statements


async def _statement(
    ctx: AppContext, principal: Principal, tenant_id: str, start: str | None, end: str | None
) -> Doc:
    tenant = await _reachable(ctx, principal, tenant_id, itself=True)
    now = datetime.now(UTC)
    begin = _instant(start) or now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    finish = _instant(end, end=True) or now + timedelta(seconds=1)
    if finish <= begin:
        raise HTTPException(422, "the period ends before it starts")
    return await statements.statement(ctx, tenant, begin, finish)


@router.get("/statements/{tenant_id}")
async def statement_json(
    tenant_id: str,
    start: str | None = Query(default=None, alias="from", max_length=40),
    end: str | None = Query(default=None, alias="to", max_length=40),
    principal: Principal = VIEW,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Opening balance, top-ups, charges by kind and prefix, closing balance (default: this
    month so far; `from` / `to` are UTC days, `to` included)."""
    return await _statement(ctx, principal, tenant_id, start, end)


@router.get("/statements/{tenant_id}/xlsx")
async def statement_xlsx(
    tenant_id: str,
    start: str | None = Query(default=None, alias="from", max_length=40),
    end: str | None = Query(default=None, alias="to", max_length=40),
    principal: Principal = VIEW,
    ctx: AppContext = Depends(get_ctx),
) -> Response:
    doc = await _statement(ctx, principal, tenant_id, start, end)
    name = f"statement-{doc['start']:%Y%m%d}-{doc['end']:%Y%m%d}.xlsx"
    return Response(
        statements.to_xlsx(doc),
        media_type=rates.XLSX_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
