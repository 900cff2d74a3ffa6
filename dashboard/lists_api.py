"""HTTP API for a campaign's contact lists: uploads imported in the background with polled
progress, and the targets' assignment to agents and skill groups.

Supervisors and admins import and assign; an agent may list only the targets assigned to
them. Every route checks that the campaign belongs to the caller's tenant (404 otherwise),
and agent ids in a body must be agents of that tenant (404 otherwise).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import IO, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.db import Doc
from routing import targets
from routing.list_jobs import create_job, get_job, public_job, start_job
from routing.lists import ListImportError, check_region, import_settings, list_format

router = APIRouter(prefix="/api/campaigns")
SUPERVISOR = require_roles("supervisor", "admin")
STAFF = require_roles("agent", "supervisor", "admin")
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024  # the form's other fields and boundaries, on top of the file
TARGET_STATUSES = ("pending", "dialing", "done", "skipped")


class TooLarge(Exception):
    """The upload went over the size limit while being copied."""


class AssignRequest(BaseModel):
    agent_ids: list[str] | None = Field(default=None, min_length=1, max_length=500)
    group: str | None = Field(default=None, min_length=1, max_length=100)
    count: int | None = Field(default=None, ge=1, description="how many targets; all pending if absent")


class ReclaimRequest(BaseModel):
    agent_id: str | None = None
    group: str | None = None


async def _campaign(ctx: AppContext, principal: Principal, campaign_id: str) -> Doc:
    campaign = await ctx.db.campaigns.find_one(
        {"_id": campaign_id, "tenant_id": principal.tenant_id}, {"name": 1, "type": 1, "state": 1}
    )
    if campaign is None:
        raise HTTPException(404, "no such campaign")
    return campaign


async def _max_upload_bytes(ctx: AppContext, tenant_id: str) -> int:
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"outbound": 1}) or {}
    limit = (tenant.get("outbound") or {}).get("max_upload_bytes")
    return int(limit) if limit else DEFAULT_MAX_UPLOAD_BYTES


def _too_large(limit: int) -> HTTPException:
    size = f"{limit / 1024 / 1024:.1f} MB" if limit >= 1024 * 1024 else f"{limit // 1024} kB"
    return HTTPException(
        413, f"the file is larger than the {size} limit for uploads; split it, or use `hub campaign import`"
    )


def _copy_limited(source: IO[bytes], target: Path, limit: int) -> int:
    """Copy an upload to our own file (the request's is closed after the response)."""
    written = 0
    with open(target, "wb") as out:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > limit:
                raise TooLarge
            out.write(chunk)
    return written


def _form_text(form: Any, name: str, size: int = 100) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, UploadFile):
        return None
    text = str(value).strip()[:size]
    return text or None


@router.post("/{campaign_id}/imports", status_code=202)
async def start_import(
    campaign_id: str,
    request: Request,
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Upload a list (multipart: file, and optionally region, cap, column, sheet); `{import_id}`."""
    await _campaign(ctx, principal, campaign_id)
    limit = await _max_upload_bytes(ctx, principal.tenant_id)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise _too_large(limit)  # refused before reading the body
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise HTTPException(422, "send the list as the multipart field 'file'")
    filename = Path(upload.filename).name[:200]
    try:
        list_format(filename)
        _, tenant_cap = await import_settings(ctx, principal.tenant_id)
        given_region = _form_text(form, "region")
        region = check_region(given_region) if given_region else None  # else the campaign's
    except ListImportError as exc:
        raise HTTPException(422, str(exc)) from exc
    raw_cap = _form_text(form, "cap")
    if raw_cap is not None and not raw_cap.isdigit():
        raise HTTPException(422, "cap: a whole number of rows")
    # a supervisor may lower the tenant's cap for one import, never raise it
    cap = min(int(raw_cap), tenant_cap) if raw_cap is not None else tenant_cap
    folder = ctx.settings.var_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    job = await create_job(ctx, principal.tenant_id, campaign_id, filename, principal.user_id)
    path = folder / f"{job['_id']}{Path(filename).suffix.lower()}"
    try:
        await asyncio.to_thread(_copy_limited, upload.file, path, limit)
    except TooLarge:
        path.unlink(missing_ok=True)
        await ctx.db.list_imports.delete_one({"_id": job["_id"]})
        raise _too_large(limit) from None
    start_job(
        ctx,
        job,
        path,
        region=region,
        cap=cap,
        column=_form_text(form, "column"),
        sheet=_form_text(form, "sheet"),
    )
    return {"import_id": job["_id"], "status": "queued"}


@router.get("/{campaign_id}/imports")
async def list_imports(
    campaign_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    """The campaign's last 20 imports, newest first."""
    await _campaign(ctx, principal, campaign_id)
    cursor = (
        ctx.db.list_imports.find({"tenant_id": principal.tenant_id, "campaign_id": campaign_id})
        .sort("created_at", -1)
        .limit(20)
    )
    out = []
    async for doc in cursor:
        job = await get_job(ctx, principal.tenant_id, campaign_id, doc["_id"]) or doc
        out.append(public_job(job))
    return out


@router.get("/{campaign_id}/imports/{import_id}")
async def import_status(
    campaign_id: str, import_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Progress (`done` of `total` rows) and, once `status` is done, the report."""
    await _campaign(ctx, principal, campaign_id)
    job = await get_job(ctx, principal.tenant_id, campaign_id, import_id)
    if job is None:
        raise HTTPException(404, "no such import")
    return public_job(job)


async def _check_agents(ctx: AppContext, tenant_id: str, agent_ids: list[str]) -> None:
    found = {
        user["_id"]
        async for user in ctx.db.users.find(
            {"tenant_id": tenant_id, "_id": {"$in": agent_ids}, "roles": "agent", "active": True}, {"_id": 1}
        )
    }
    for agent_id in agent_ids:
        if agent_id not in found:
            raise HTTPException(404, f"no agent {agent_id!r} in this tenant")


@router.post("/{campaign_id}/targets/assign")
async def assign_targets(
    campaign_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Split pending unassigned targets evenly among agents, or give them to a skill group."""
    await _campaign(ctx, principal, campaign_id)
    try:
        request = AssignRequest.model_validate(body)
    except ValidationError as exc:
        raise HTTPException(
            422, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        ) from exc
    if (request.agent_ids is None) == (request.group is None):
        raise HTTPException(422, "give either agent_ids or group")
    if request.agent_ids is not None:
        agent_ids = list(dict.fromkeys(request.agent_ids))
        await _check_agents(ctx, principal.tenant_id, agent_ids)
        shares = await targets.assign_to_agents(
            ctx, principal.tenant_id, campaign_id, agent_ids, request.count
        )
        return {"total": sum(shares.values()), "agents": shares, "group": None}
    group = (request.group or "").strip()
    member = await ctx.db.users.find_one(
        {"tenant_id": principal.tenant_id, "roles": "agent", "active": True, "skills": group}, {"_id": 1}
    )
    if member is None:
        raise HTTPException(422, f"no agent has the skill {group!r}")
    total = await targets.assign_to_group(ctx, principal.tenant_id, campaign_id, group, request.count)
    return {"total": total, "agents": {}, "group": group}


@router.post("/{campaign_id}/targets/reclaim")
async def reclaim_targets(
    campaign_id: str,
    body: ReclaimRequest | None = None,
    principal: Principal = SUPERVISOR,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, int]:
    """Unassign the pending targets of an agent, of a group, or of everyone (empty body)."""
    await _campaign(ctx, principal, campaign_id)
    request = body or ReclaimRequest()
    if request.agent_id is not None:
        user = await ctx.db.users.find_one({"_id": request.agent_id, "tenant_id": principal.tenant_id})
        if user is None:
            raise HTTPException(404, f"no agent {request.agent_id!r} in this tenant")
    reclaimed = await targets.reclaim(
        ctx, principal.tenant_id, campaign_id, agent_id=request.agent_id, group=request.group
    )
    return {"reclaimed": reclaimed}


@router.get("/{campaign_id}/targets/summary")
async def targets_summary(
    campaign_id: str, principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Counts by status and pending targets per agent and per group."""
    await _campaign(ctx, principal, campaign_id)
    return await targets.summary(ctx, principal.tenant_id, campaign_id)


@router.get("/{campaign_id}/targets")
async def list_campaign_targets(
    campaign_id: str,
    status: str | None = Query(default=None),
    agent_id: str | None = Query(default=None),
    group: str | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0),
    principal: Principal = STAFF,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """A page of targets; an agent (without a supervisor role) sees only their own."""
    await _campaign(ctx, principal, campaign_id)
    if status is not None and status not in TARGET_STATUSES:
        raise HTTPException(422, f"status is one of {', '.join(TARGET_STATUSES)}")
    if not principal.has_any("supervisor", "admin"):
        if agent_id not in (None, principal.user_id) or group is not None:
            raise HTTPException(403, "agents see only their own targets")
        agent_id = principal.user_id
    return await targets.list_targets(
        ctx,
        principal.tenant_id,
        campaign_id,
        status=status,
        agent_id=agent_id,
        group=group,
        limit=limit,
        offset=offset,
    )
