"""Telephony administration over HTTP (`/api/admin/telephony`, the /telephony page).

- numbers: the inventory (hub/numbers.py): list the caller's numbers and those held below it,
  allocate / release (telephony.manage, on tenants below), map a number to one of the caller's
  IVR flows (flows.manage or telephony.manage);
- twilio: the tenant's own Twilio account (channels/twilio/accounts.py); the token is write-only;
- trunks and routes: SIP trunks and outbound routes (routing/trunks.py), with `routes/test` to
  see which trunk a number would take.

Every change is written to the audit log (secrets masked there by hub.audit).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from channels.twilio import accounts
from hub import audit
from hub.auth import Principal, require_permission
from hub.context import AppContext, get_ctx
from hub.numbers import (
    NumberConflict,
    NumberError,
    NumberForbidden,
    NumberNotFound,
    allocate,
    list_numbers,
    map_to_flow,
    release,
)
from routing import trunks
from routing.trunks import RouteIn, TrunkIn

router = APIRouter(prefix="/api/admin/telephony", tags=["telephony"])
TELEPHONY = require_permission("telephony.manage")
FLOWS_OR_TELEPHONY = require_permission("flows.manage", "telephony.manage")


class AllocateBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str = Field(min_length=2, max_length=32)
    tenant_id: str = Field(min_length=1, max_length=64)
    sms: bool = True


class MapBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flow_id: str = Field(min_length=1, max_length=64)


class TwilioBody(BaseModel):
    """`auth_token` omitted or empty keeps the stored token (same Account SID only)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    account_sid: str = Field(min_length=1, max_length=64)
    auth_token: str | None = Field(default=None, max_length=128)


class RouteTestBody(BaseModel):
    number: str = Field(min_length=1, max_length=32)


def _number_error(exc: Exception) -> HTTPException:
    if isinstance(exc, NumberNotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, NumberForbidden):
        return HTTPException(403, str(exc))
    if isinstance(exc, NumberConflict):
        return HTTPException(409, str(exc))
    return HTTPException(422, str(exc))


def _trunk_error(exc: Exception) -> HTTPException:
    if isinstance(exc, trunks.TrunkNotFound):
        return HTTPException(404, str(exc))
    if isinstance(exc, trunks.TrunkConflict):
        return HTTPException(409, str(exc))
    return HTTPException(422, str(exc))


# ------------------------------------------------------------------------------ numbers


@router.get("/numbers")
async def get_numbers(
    principal: Principal = FLOWS_OR_TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """The numbers, the caller's flows (to map them) and the tenants below (to allocate to)."""
    flows = ctx.db.ivr_flows.find({"tenant_id": principal.tenant_id}, {"name": 1, "number": 1}).sort(
        "number", 1
    )
    below = ctx.db.tenants.find({"path": principal.tenant_id}, {"name": 1, "slug": 1, "level": 1}).sort(
        "name", 1
    )
    return {
        "numbers": await list_numbers(ctx, principal),
        "flows": [{"id": f["_id"], "name": f.get("name") or "", "number": f["number"]} async for f in flows],
        "tenants": [
            {"id": t["_id"], "name": t.get("name") or t.get("slug"), "level": t.get("level") or "customer"}
            async for t in below.limit(1000)
        ],
        "can_allocate": principal.can("telephony.manage"),
    }


@router.post("/numbers", status_code=201)
async def allocate_number(
    body: AllocateBody, request: Request, principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    try:
        row, before = await allocate(ctx, principal, body.number, body.tenant_id, sms=body.sms)
    except (NumberError, NumberNotFound, NumberForbidden, NumberConflict) as exc:
        raise _number_error(exc) from exc
    await audit.record(
        ctx,
        principal,
        "number.allocate",
        {"kind": "phone_number", "id": row["_id"], "number": row["number"]},
        {
            "tenant_id": {"from": before["tenant_id"] if before else None, "to": row["tenant_id"]},
            "sms": row["sms"],
        },
        tenant_id=row["tenant_id"],
        ip=audit.client_ip(request),
    )
    return {"number": row["number"], "tenant_id": row["tenant_id"], "sms": row["sms"]}


@router.delete("/numbers/{number}")
async def release_number(
    number: str, request: Request, principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    try:
        before, after = await release(ctx, principal, number)
    except (NumberError, NumberNotFound, NumberForbidden, NumberConflict) as exc:
        raise _number_error(exc) from exc
    await audit.record(
        ctx,
        principal,
        "number.release",
        {"kind": "phone_number", "id": before["_id"], "number": before["number"]},
        {"tenant_id": {"from": before["tenant_id"], "to": after["tenant_id"] if after else None}},
        tenant_id=before["tenant_id"],
        ip=audit.client_ip(request),
    )
    return {"number": before["number"], "tenant_id": after["tenant_id"] if after else None}


@router.put("/numbers/{number}/flow")
async def map_number(
    number: str,
    body: MapBody,
    request: Request,
    principal: Principal = FLOWS_OR_TELEPHONY,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """One of the caller's flows answers `number` from now on (the flow leaves its old number)."""
    try:
        flow, previous = await map_to_flow(ctx, principal, number, body.flow_id)
    except (NumberError, NumberNotFound, NumberForbidden, NumberConflict) as exc:
        raise _number_error(exc) from exc
    if previous != flow["number"]:
        await audit.record(
            ctx,
            principal,
            "number.map",
            {"kind": "ivr_flow", "id": flow["_id"], "name": flow.get("name") or ""},
            {"number": {"from": previous, "to": flow["number"]}},
            ip=audit.client_ip(request),
        )
    return {"number": flow["number"], "flow": {"id": flow["_id"], "name": flow.get("name") or ""}}


# ------------------------------------------------------------------------------ Twilio account


@router.get("/twilio")
async def get_twilio(principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    """The tenant's own account (never its token), and whether the hub has one to fall back to."""
    doc = await accounts.get_settings(ctx, principal.tenant_id)
    return {**accounts.public_account(doc), "hub_account": bool(ctx.settings.twilio_account_sid)}


@router.put("/twilio")
async def put_twilio(
    body: TwilioBody, request: Request, principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    try:
        row, before = await accounts.set_account(
            ctx, principal.tenant_id, body.account_sid, body.auth_token, principal.user_id
        )
    except accounts.AccountConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except accounts.AccountError as exc:
        raise HTTPException(422, str(exc)) from exc
    changes: dict[str, Any] = {
        "account_sid": {"from": (before or {}).get("twilio_account_sid"), "to": row["twilio_account_sid"]}
    }
    if body.auth_token:
        changes["auth_token"] = "changed"  # masked by hub.audit anyway
    await audit.record(
        ctx,
        principal,
        "telephony.twilio.set",
        {"kind": "twilio_account"},
        changes,
        ip=audit.client_ip(request),
    )
    return {**accounts.public_account(row), "hub_account": bool(ctx.settings.twilio_account_sid)}


@router.delete("/twilio")
async def delete_twilio(
    request: Request, principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    before = await accounts.clear_account(ctx, principal.tenant_id)
    if before is not None:
        await audit.record(
            ctx,
            principal,
            "telephony.twilio.clear",
            {"kind": "twilio_account"},
            {"account_sid": {"from": before.get("twilio_account_sid"), "to": None}},
            ip=audit.client_ip(request),
        )
    return {**accounts.public_account(None), "hub_account": bool(ctx.settings.twilio_account_sid)}


# ------------------------------------------------------------------------------ SIP trunks


def _trunk_changes(before: dict[str, Any] | None, body: TrunkIn) -> dict[str, Any]:
    after = body.model_dump(exclude={"password"}, by_alias=True)
    changes: dict[str, Any] = {
        k: {"from": (before or {}).get(k), "to": v} for k, v in after.items() if (before or {}).get(k) != v
    }
    if body.password is not None:
        changes["password"] = "changed"
    return changes


@router.get("/trunks")
async def get_trunks(
    principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    return [trunks.public_trunk(t) for t in await trunks.list_trunks(ctx, principal.tenant_id)]


@router.post("/trunks", status_code=201)
async def create_trunk(
    body: TrunkIn, request: Request, principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    try:
        doc, _ = await trunks.save_trunk(ctx, principal.tenant_id, body)
    except (trunks.TrunkError, trunks.TrunkNotFound, trunks.TrunkConflict) as exc:
        raise _trunk_error(exc) from exc
    await audit.record(
        ctx,
        principal,
        "telephony.trunk.create",
        {"kind": "sip_trunk", "id": doc["_id"], "name": doc["name"]},
        _trunk_changes(None, body),
        ip=audit.client_ip(request),
    )
    return trunks.public_trunk(doc)


@router.put("/trunks/{trunk_id}")
async def update_trunk(
    trunk_id: str,
    body: TrunkIn,
    request: Request,
    principal: Principal = TELEPHONY,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    try:
        doc, before = await trunks.save_trunk(ctx, principal.tenant_id, body, trunk_id)
    except (trunks.TrunkError, trunks.TrunkNotFound, trunks.TrunkConflict) as exc:
        raise _trunk_error(exc) from exc
    await audit.record(
        ctx,
        principal,
        "telephony.trunk.update",
        {"kind": "sip_trunk", "id": doc["_id"], "name": doc["name"]},
        _trunk_changes(before, body),
        ip=audit.client_ip(request),
    )
    return trunks.public_trunk(doc)


@router.delete("/trunks/{trunk_id}")
async def delete_trunk(
    trunk_id: str, request: Request, principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    try:
        doc = await trunks.delete_trunk(ctx, principal.tenant_id, trunk_id)
    except (trunks.TrunkError, trunks.TrunkNotFound, trunks.TrunkConflict) as exc:
        raise _trunk_error(exc) from exc
    await audit.record(
        ctx,
        principal,
        "telephony.trunk.delete",
        {"kind": "sip_trunk", "id": doc["_id"], "name": doc["name"]},
        ip=audit.client_ip(request),
    )
    return {"status": "deleted"}


# ------------------------------------------------------------------------------ outbound routes


@router.get("/routes")
async def get_routes(
    principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    names = {t["_id"]: t["name"] for t in await trunks.list_trunks(ctx, principal.tenant_id)}
    return [trunks.public_route(r, names) for r in await trunks.list_routes(ctx, principal.tenant_id)]


@router.post("/routes/test")
async def test_route(
    body: RouteTestBody, principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Which route and trunk would take `number`, and the digits sent to the trunk."""
    found = await trunks.route_for(ctx, principal.tenant_id, body.number)
    if found is None:
        return {"route": None, "trunk": None, "dialled": None}
    trunk, choice = found
    return {
        "route": trunks.public_route(choice.route, {trunk["_id"]: trunk["name"]}),
        "trunk": trunks.public_trunk(trunk),
        "dialled": choice.dialled,
    }


@router.post("/routes", status_code=201)
async def create_route(
    body: RouteIn, request: Request, principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    try:
        doc, _ = await trunks.save_route(ctx, principal.tenant_id, body)
    except (trunks.TrunkError, trunks.TrunkNotFound, trunks.TrunkConflict) as exc:
        raise _trunk_error(exc) from exc
    await audit.record(
        ctx,
        principal,
        "telephony.route.create",
        {"kind": "outbound_route", "id": doc["_id"], "name": doc["name"]},
        body.model_dump(),
        ip=audit.client_ip(request),
    )
    return trunks.public_route(doc)


@router.put("/routes/{route_id}")
async def update_route(
    route_id: str,
    body: RouteIn,
    request: Request,
    principal: Principal = TELEPHONY,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    try:
        doc, before = await trunks.save_route(ctx, principal.tenant_id, body, route_id)
    except (trunks.TrunkError, trunks.TrunkNotFound, trunks.TrunkConflict) as exc:
        raise _trunk_error(exc) from exc
    changes = {
        k: {"from": (before or {}).get(k), "to": v}
        for k, v in body.model_dump().items()
        if (before or {}).get(k) != v
    }
    await audit.record(
        ctx,
        principal,
        "telephony.route.update",
        {"kind": "outbound_route", "id": doc["_id"], "name": doc["name"]},
        changes,
        ip=audit.client_ip(request),
    )
    return trunks.public_route(doc)


@router.delete("/routes/{route_id}")
async def delete_route(
    route_id: str, request: Request, principal: Principal = TELEPHONY, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    try:
        doc = await trunks.delete_route(ctx, principal.tenant_id, route_id)
    except (trunks.TrunkError, trunks.TrunkNotFound, trunks.TrunkConflict) as exc:
        raise _trunk_error(exc) from exc
    await audit.record(
        ctx,
        principal,
        "telephony.route.delete",
        {"kind": "outbound_route", "id": doc["_id"], "name": doc["name"]},
        ip=audit.client_ip(request),
    )
    return {"status": "deleted"}
