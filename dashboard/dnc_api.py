"""Do-not-contact lists over HTTP: list, add (one or many), import a file or a paste, remove,
and an agent's opt-out.

Supervisors and admins keep the lists; any agent may record that a customer opted out
(it only ever stops contact, so it needs no review). Entries are the tenant's own: an id
of another tenant is a 404. An opt-out entry can only be removed by an admin (the
customer asked for it; a supervisor clearing it would undo their request). Numbers in
national format use `region`, else the tenant's routing default region, else US.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile

from dashboard.people import user_names
from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.ids import utcnow
from knowledge.dnc import (
    OPT_OUT_SOURCES,
    SOURCES,
    DncError,
    add_entries,
    add_entry,
    get_entry,
    list_entries,
    normalise_address,
    opt_out,
    remove_entry,
)
from knowledge.dnc_import import PASTED_NAME, import_numbers, pasted_bytes
from routing.lists import ListImportError, list_format

router = APIRouter(prefix="/api/dnc")
KEEPER = require_roles("supervisor", "admin")
ANYONE = require_roles("agent", "supervisor", "admin")
MAX_BULK = 10_000
MAX_IMPORT_BYTES = 10 * 1024 * 1024
_MULTIPART_SLACK = 64 * 1024


async def default_region(ctx: AppContext, tenant_id: str, given: str | None) -> str:
    """The region for national-format numbers: asked for, the tenant's, or US."""
    if given:
        return given.strip().upper()
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"routing": 1}) or {}
    return str((tenant.get("routing") or {}).get("default_region") or "US").upper()


class AddBody(BaseModel):
    """`POST /api/dnc`: one `number` or a list of `numbers` onto one list."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    number: str | None = Field(default=None, max_length=254)  # a phone number or a mail address
    numbers: list[str] | None = Field(default=None, max_length=MAX_BULK)
    list_name: Literal["black", "red", "grey"] = Field(alias="list")
    reason: str = Field(default="", max_length=500)
    expires_at: datetime | None = None
    region: str | None = Field(default=None, min_length=2, max_length=2)

    @model_validator(mode="after")
    def _one_kind(self) -> AddBody:
        if (self.number is None) == (self.numbers is None):
            raise ValueError("give either 'number' or 'numbers'")
        if self.expires_at is not None:
            if self.expires_at.tzinfo is None:
                self.expires_at = self.expires_at.replace(tzinfo=UTC)
            if self.expires_at <= utcnow():
                raise ValueError("expires_at is in the past")
        return self


class OptOutBody(BaseModel):
    """`POST /api/dnc/opt-out`: the customer asked not to be contacted again."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str = Field(min_length=1, max_length=254)
    source: Literal["agent", "opt_out_key", "sms_stop", "email_unsubscribe"] = "agent"
    campaign_id: str | None = Field(default=None, max_length=64)
    region: str | None = Field(default=None, min_length=2, max_length=2)


@router.get("")
async def list_dnc(
    list_name: Literal["black", "red", "grey"] | None = Query(None, alias="list"),
    number: str | None = Query(None, max_length=254),
    source: str | None = Query(None, max_length=40),
    active: bool = Query(False, description="only entries in force now"),
    region: str | None = Query(None, min_length=2, max_length=2),
    skip: int = Query(0, ge=0, le=1_000_000),
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = KEEPER,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    if source is not None and source not in SOURCES:
        raise HTTPException(422, f"source must be one of {', '.join(SOURCES)}")
    if number:
        try:
            number = normalise_address(number, await default_region(ctx, principal.tenant_id, region))
        except DncError as exc:
            raise HTTPException(422, str(exc)) from exc
    now = utcnow()
    entries, total = await list_entries(
        ctx,
        principal.tenant_id,
        list_name=list_name,
        number=number,
        source=source,
        active_at=now if active else None,
        skip=skip,
        limit=limit,
    )
    names = await user_names(ctx, principal.tenant_id, (e.created_by for e in entries))
    return {
        "entries": [{**e.public(now), "created_by_name": names.get(e.created_by or "")} for e in entries],
        "total": total,
    }


@router.post("", status_code=201)
async def add_dnc(
    body: AddBody, principal: Principal = KEEPER, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    region = await default_region(ctx, principal.tenant_id, body.region)
    try:
        if body.number is not None:
            entry = await add_entry(
                ctx,
                principal.tenant_id,
                body.number,
                body.list_name,
                reason=body.reason,
                expires_at=body.expires_at,
                created_by=principal.user_id,
                default_region=region,
            )
            return entry.public()
        result = await add_entries(
            ctx,
            principal.tenant_id,
            body.numbers or [],
            body.list_name,
            reason=body.reason,
            expires_at=body.expires_at,
            created_by=principal.user_id,
            default_region=region,
        )
    except DncError as exc:
        raise HTTPException(422, str(exc)) from exc
    return {
        "added": result.added,
        "refreshed": result.refreshed,
        "invalid": [{"number": n, "error": why} for n, why in result.invalid],
    }


class ImportFields(BaseModel):
    """The form fields of `POST /api/dnc/import` beside the `file` (or the pasted `text`)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    list_name: Literal["black", "red", "grey"] = Field(alias="list")
    reason: str = Field(default="", max_length=500)
    expires_at: datetime | None = None
    region: str | None = Field(default=None, min_length=2, max_length=2)
    text: str | None = None

    @model_validator(mode="after")
    def _future(self) -> ImportFields:
        if self.expires_at is not None:
            if self.expires_at.tzinfo is None:
                self.expires_at = self.expires_at.replace(tzinfo=UTC)
            if self.expires_at <= utcnow():
                raise ValueError("expires_at is in the past")
        return self


@router.post("/import")
async def import_dnc(
    request: Request, principal: Principal = KEEPER, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """A form (multipart or urlencoded): `list`, `reason`, `expires_at`, `region`, and either a
    `file` (.txt / .csv / .xlsx) or `text` (pasted numbers); the report (knowledge/dnc_import.py)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_IMPORT_BYTES + _MULTIPART_SLACK:
        raise HTTPException(413, "the list is larger than 10 MB; split it")
    form = await request.form(max_files=1, max_fields=8, max_part_size=MAX_IMPORT_BYTES)
    try:
        values = {k: v for k, v in form.items() if isinstance(v, str) and k != "file"}
        if not values.get("expires_at"):
            values.pop("expires_at", None)
        try:
            fields = ImportFields.model_validate(values)
        except ValidationError as exc:
            # the messages only: the errors' `input` would echo a whole pasted list back
            why = [": ".join(filter(None, (".".join(map(str, e["loc"])), e["msg"]))) for e in exc.errors()]
            raise HTTPException(422, "; ".join(why)) from exc
        upload = form.get("file")
        if isinstance(upload, UploadFile) and upload.filename:
            filename = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:200]
            data = await upload.read(MAX_IMPORT_BYTES + 1)
            if len(data) > MAX_IMPORT_BYTES:
                raise HTTPException(413, "the list is larger than 10 MB; split it")
        elif fields.text:
            filename, data = PASTED_NAME, pasted_bytes(fields.text)
        else:
            raise HTTPException(422, "send a list as the field 'file', or paste numbers into 'text'")
    finally:
        await form.close()
    try:
        list_format(filename)
        report = await import_numbers(
            ctx,
            principal.tenant_id,
            data,
            filename,
            fields.list_name,
            region=await default_region(ctx, principal.tenant_id, fields.region),
            reason=fields.reason,
            expires_at=fields.expires_at,
            created_by=principal.user_id,
        )
    except (DncError, ListImportError) as exc:
        raise HTTPException(422, str(exc)) from exc
    return report.to_dict()


@router.delete("/{entry_id}", status_code=204)
async def delete_dnc(
    entry_id: str, principal: Principal = KEEPER, ctx: AppContext = Depends(get_ctx)
) -> Response:
    entry = await get_entry(ctx, principal.tenant_id, entry_id)
    if entry is None:
        raise HTTPException(404, "no such entry")
    if entry.source in OPT_OUT_SOURCES and not principal.has_any("admin"):
        raise HTTPException(403, "the customer opted out; only an admin can remove this entry")
    if await remove_entry(ctx, principal.tenant_id, entry_id) is None:
        raise HTTPException(404, "no such entry")
    return Response(status_code=204)


@router.post("/opt-out")
async def record_opt_out(
    body: OptOutBody, principal: Principal = ANYONE, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    if body.campaign_id is not None:
        campaign = await ctx.db.campaigns.find_one(
            {"_id": body.campaign_id, "tenant_id": principal.tenant_id}, {"_id": 1}
        )
        if campaign is None:
            raise HTTPException(404, "no such campaign")
    try:
        done = await opt_out(
            ctx,
            principal.tenant_id,
            body.number,
            body.source,
            campaign_id=body.campaign_id,
            by=principal.user_id,
            default_region=await default_region(ctx, principal.tenant_id, body.region),
        )
    except DncError as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"entry": done.entry.public(), "targets_skipped": done.targets_skipped}
