"""The dialled-number inventory: which tenant may answer calls and SMS on which number.

`phone_numbers` `{_id, number (E.164, unique), tenant_id, sms, allocated_by, allocated_by_tenant_id,
allocated_at, updated_at}`. Numbers move down the tenant tree: the operator allocates a number
that is in nobody's hands to any tenant below it; a tenant that holds a number (a reseller
given a block) re-allocates it to tenants below itself; whoever manages the holder may take it
back (`release`: to the pool for the operator, else back into the releaser's own stock).

Which flow answers a number stays where incoming calls and SMS look it up: `ivr_flows.number`
(unique). The inventory only guards it (`check_flow_number`): a number allocated to another
tenant cannot be put on a flow (409). A number absent from the inventory stays allowed, so
single-tenant installs and hubs that predate the inventory keep working; once a number is
allocated, only its holder's flows may use it.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from pymongo.errors import DuplicateKeyError

from hub.auth import Principal
from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow


class NumberError(ValueError):
    """Not a usable phone number (422)."""


class NumberNotFound(LookupError):
    """No such number or tenant within the caller's reach (404)."""


class NumberConflict(ValueError):
    """The number is held by someone else or still in use (409)."""


class NumberForbidden(PermissionError):
    """The caller's level may not do this (403)."""


def normalise_e164(value: str) -> str:
    """An international number (+ and country code) that phonenumbers calls valid, as E.164."""
    text = str(value or "").strip()
    if not text.startswith("+"):
        raise NumberError(f"{text!r}: write the number in international form, e.g. +14155550100")
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise NumberError(f"{text!r} is not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise NumberError(f"{text!r} is not a valid phone number")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


async def holder_of(ctx: AppContext, number: str) -> str | None:
    """The tenant a number is allocated to, or None when it is not in the inventory."""
    row = await ctx.db.phone_numbers.find_one({"number": number}, {"tenant_id": 1})
    return str(row["tenant_id"]) if row is not None else None


async def check_flow_number(ctx: AppContext, tenant_id: str, number: str) -> None:
    """May `tenant_id` put `number` on one of its flows? NumberConflict if another tenant holds it."""
    holder = await holder_of(ctx, number)
    if holder is not None and holder != tenant_id:
        raise NumberConflict(f"number {number} is allocated to another tenant")


async def _managed_tenant(ctx: AppContext, principal: Principal, tenant_id: str) -> Doc:
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id})
    if tenant is None or not principal.manages(tenant):
        raise NumberNotFound("no such tenant below yours")
    return tenant


async def _flow_on(ctx: AppContext, number: str) -> Doc | None:
    return await ctx.db.ivr_flows.find_one({"number": number}, {"tenant_id": 1, "name": 1})


async def allocate(
    ctx: AppContext, principal: Principal, number: str, tenant_id: str, *, sms: bool = True
) -> tuple[Doc, Doc | None]:
    """Give `number` to a tenant below the caller; returns (row now, row before or None)."""
    number = normalise_e164(number)
    target = await _managed_tenant(ctx, principal, tenant_id)
    before = await ctx.db.phone_numbers.find_one({"number": number})
    flow = await _flow_on(ctx, number)
    if flow is not None and flow["tenant_id"] != target["_id"]:
        raise NumberConflict(f"number {number} is answered by another tenant's flow; unmap it first")
    now = utcnow()
    fields: Doc = {
        "tenant_id": target["_id"],
        "sms": bool(sms),
        "allocated_by": principal.user_id,
        "allocated_by_tenant_id": principal.tenant_id,
        "allocated_at": now,
        "updated_at": now,
    }
    if before is None:
        if principal.tenant_path:
            raise NumberForbidden(
                "only the operator allocates new numbers; you can allocate numbers allocated to you"
            )
        row: Doc = {"_id": new_id(), "number": number, **fields}
        try:
            await ctx.db.phone_numbers.insert_one(row)
        except DuplicateKeyError as exc:
            raise NumberConflict(f"number {number} was just allocated by someone else") from exc
        return row, None
    holder = before["tenant_id"]
    if holder != principal.tenant_id:
        holder_doc = await ctx.db.tenants.find_one({"_id": holder}, {"path": 1})
        if holder_doc is None or not principal.manages(holder_doc):
            raise NumberConflict(f"number {number} is allocated to another tenant")
    result = await ctx.db.phone_numbers.update_one(
        {"_id": before["_id"], "tenant_id": holder}, {"$set": fields}
    )
    if result.matched_count == 0:
        raise NumberConflict(f"number {number} changed hands meanwhile; try again")
    return {**before, **fields}, before


async def release(ctx: AppContext, principal: Principal, number: str) -> tuple[Doc, Doc | None]:
    """Take a number back from a tenant below: into the caller's stock, or (operator: a tenant
    without a parent) out of the inventory. Returns (row before, row now or None)."""
    number = normalise_e164(number)
    row = await ctx.db.phone_numbers.find_one({"number": number})
    if row is None:
        raise NumberNotFound(f"number {number} is not allocated")
    holder = await ctx.db.tenants.find_one({"_id": row["tenant_id"]}, {"path": 1})
    if holder is None or not principal.manages(holder):
        raise NumberNotFound(f"number {number} is not allocated below you")
    flow = await _flow_on(ctx, number)
    if flow is not None and flow["tenant_id"] == row["tenant_id"]:
        raise NumberConflict(
            f"number {number} answers flow {flow.get('name') or flow['_id']}: "
            "that tenant must move the flow to another number or delete it first"
        )
    if not principal.tenant_path:
        await ctx.db.phone_numbers.delete_one({"_id": row["_id"], "tenant_id": row["tenant_id"]})
        return row, None
    now = utcnow()
    fields: Doc = {
        "tenant_id": principal.tenant_id,
        "allocated_by": principal.user_id,
        "allocated_by_tenant_id": principal.tenant_id,
        "updated_at": now,
    }
    await ctx.db.phone_numbers.update_one(
        {"_id": row["_id"], "tenant_id": row["tenant_id"]}, {"$set": fields}
    )
    return row, {**row, **fields}


async def map_to_flow(ctx: AppContext, principal: Principal, number: str, flow_id: str) -> tuple[Doc, str]:
    """Make one of the caller's flows answer `number`; returns (flow now, its number before).

    The flow's own number moves (a flow answers exactly one number)."""
    number = normalise_e164(number)
    flow = await ctx.db.ivr_flows.find_one({"_id": flow_id, "tenant_id": principal.tenant_id})
    if flow is None:
        raise NumberNotFound("no such flow")
    await check_flow_number(ctx, principal.tenant_id, number)
    previous = str(flow["number"])
    if previous == number:
        return flow, previous
    try:
        await ctx.db.ivr_flows.update_one(
            {"_id": flow_id, "tenant_id": principal.tenant_id},
            {"$set": {"number": number, "updated_at": utcnow(), "updated_by": principal.user_id}},
        )
    except DuplicateKeyError as exc:
        raise NumberConflict(f"number {number} already has a flow") from exc
    return {**flow, "number": number}, previous


async def list_numbers(ctx: AppContext, principal: Principal) -> list[dict[str, Any]]:
    """The caller's numbers and (for those who allocate) the numbers held below them, each with
    its holder's name and the flow that answers it (or None)."""
    below = [t async for t in ctx.db.tenants.find({"path": principal.tenant_id}, {"name": 1, "slug": 1})]
    names = {t["_id"]: str(t.get("name") or t.get("slug")) for t in below}
    names[principal.tenant_id] = principal.tenant_name
    rows = [
        r
        async for r in ctx.db.phone_numbers.find({"tenant_id": {"$in": list(names)}})
        .sort("number", 1)
        .limit(5000)
    ]
    flows = {
        f["number"]: f
        async for f in ctx.db.ivr_flows.find(
            {"number": {"$in": [r["number"] for r in rows]}}, {"number": 1, "name": 1, "tenant_id": 1}
        )
    }
    out = []
    for row in rows:
        flow = flows.get(row["number"])
        own_flow = flow is not None and flow["tenant_id"] == row["tenant_id"]
        out.append(
            {
                "number": row["number"],
                "tenant_id": row["tenant_id"],
                "tenant_name": names.get(row["tenant_id"], ""),
                "own": row["tenant_id"] == principal.tenant_id,
                "sms": bool(row.get("sms", True)),
                "allocated_at": iso(row.get("allocated_at")),
                "flow": {"id": flow["_id"], "name": flow.get("name") or ""} if own_flow and flow else None,
            }
        )
    return out


async def sms_tenant_of(ctx: AppContext, number: str) -> str | None:
    """The tenant holding `number` for SMS, if the inventory says so."""
    row = await ctx.db.phone_numbers.find_one({"number": number, "sms": True}, {"tenant_id": 1})
    return str(row["tenant_id"]) if row is not None else None
