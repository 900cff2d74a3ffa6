"""Approvals over HTTP: caller-id numbers and audio prompts for outbound campaigns.

Supervisors and admins submit a caller id (JSON, or multipart with `documents` files
as proof the number is the tenant's); reviewers approve or reject a caller id or an uploaded
prompt (the prompt routes sit under /api/ivr/prompts beside the upload API). Reviewers follow
the tenant tree (routing.approvals.review_access): holders of `approvals.review` in a tenant
above decide for the tenants below; a tenant without a parent decides for itself. Items of
another tree are a 404. `GET /api/approvals` is the review queue the /approvals page shows:
both kinds, of the caller's tenant and (reviewers) of the tenants below, pending first, each
with its tenant's name. Every decision and submission goes to the audit log.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile

from bot.ivr import PROMPTS_BUCKET, prompt_audio
from dashboard.dnc_api import default_region
from dashboard.ivr_api import public_prompt
from hub import audit
from hub.auth import Principal, current_user, require_roles
from hub.context import AppContext, get_ctx
from hub.db import Doc
from routing.approvals import (
    DOCUMENTS_BUCKET,
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENTS,
    STATUSES,
    ApprovalConflict,
    ApprovalError,
    ApprovalForbidden,
    ApprovalNotFound,
    Document,
    caller_id_document,
    caller_id_tenant,
    list_caller_ids,
    prompt_approval,
    prompt_tenant,
    public_caller_id,
    review_access,
    review_caller_id,
    review_prompt,
    review_scope,
    submit_caller_id,
)

router = APIRouter(prefix="/api")
SUBMITTER = require_roles("supervisor", "admin")


async def _reviewer_or_submitter(principal: Principal = Depends(current_user)) -> Principal:
    """Submitters (supervisors, admins) and reviewers (holders of approvals.review)."""
    if principal.has_any("supervisor", "admin") or principal.can("approvals.review"):
        return principal
    raise HTTPException(status.HTTP_403_FORBIDDEN, "not permitted for your role")


QUEUE_READER = Depends(_reviewer_or_submitter)
# Deciding is checked per item (its tenant decides who may): any signed-in caller gets that far.
REVIEWER = Depends(current_user)
_MULTIPART_SLACK = 64 * 1024
# The review queue's order: what waits for a decision, then what was refused, then the rest.
_QUEUE_ORDER = {"pending": 0, "rejected": 1, "approved": 2}


class CallerIdBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    number: str = Field(min_length=1, max_length=40)
    label: str = Field(default="", max_length=120)
    region: str | None = Field(default=None, min_length=2, max_length=2)


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(default="", max_length=500)


async def _caller_id_request(request: Request) -> tuple[CallerIdBody, list[Document]]:
    """The submitted fields and files, from JSON or multipart/form-data."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        try:
            return CallerIdBody.model_validate(await request.json()), []
        except ValueError as exc:
            raise HTTPException(422, f"send JSON {{number, label}} or a multipart form: {exc}") from exc
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_DOCUMENTS * MAX_DOCUMENT_BYTES + _MULTIPART_SLACK:
        raise HTTPException(413, f"at most {MAX_DOCUMENTS} documents of 10 MB each")
    form = await request.form(max_files=MAX_DOCUMENTS, max_fields=8)
    try:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            body = CallerIdBody.model_validate(fields)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        documents = []
        for upload in form.getlist("documents"):
            if not isinstance(upload, UploadFile):
                continue
            data = await upload.read(MAX_DOCUMENT_BYTES + 1)
            if len(data) > MAX_DOCUMENT_BYTES:
                raise HTTPException(413, "a document is larger than 10 MB")
            name = (upload.filename or "document").replace("\\", "/").rsplit("/", 1)[-1][:120]
            documents.append(Document(name, upload.content_type or "application/octet-stream", data))
        return body, documents
    finally:
        await form.close()


def _refusal(exc: ApprovalNotFound | ApprovalForbidden, what: str) -> HTTPException:
    if isinstance(exc, ApprovalNotFound):
        return HTTPException(404, f"no such {what}")
    return HTTPException(403, str(exc))


@router.post("/caller-ids", status_code=201)
async def submit(
    request: Request, principal: Principal = SUBMITTER, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    body, documents = await _caller_id_request(request)
    try:
        doc = await submit_caller_id(
            ctx,
            principal.tenant_id,
            body.number,
            label=body.label,
            documents=documents,
            by=principal.user_id,
            default_region=await default_region(ctx, principal.tenant_id, body.region),
        )
    except ApprovalConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except ApprovalError as exc:
        raise HTTPException(422, str(exc)) from exc
    await audit.record(
        ctx,
        principal,
        "caller_id.submit",
        {"kind": "caller_id", "id": doc["_id"], "number": doc["number"]},
        {"status": {"to": "pending"}, "documents": [d.filename for d in documents]},
        ip=audit.client_ip(request),
    )
    return public_caller_id(doc)


@router.get("/caller-ids")
async def list_all(
    status: str | None = None, principal: Principal = SUBMITTER, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(STATUSES)}")
    return [public_caller_id(doc) for doc in await list_caller_ids(ctx, principal.tenant_id, status)]


async def _names(ctx: AppContext, tenant_ids: list[str], ids: list[str | None]) -> dict[str, str]:
    """Display names of the given users, among the tenants of the queue and those above it
    (reviewers sit above), never anyone else's."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    cursor = ctx.db.users.find(
        {"tenant_id": {"$in": tenant_ids}, "_id": {"$in": wanted}}, {"name": 1, "email": 1}
    )
    return {doc["_id"]: str(doc.get("name") or doc.get("email") or doc["_id"]) async for doc in cursor}


@router.get("/approvals")
async def review_queue(
    principal: Principal = QUEUE_READER, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Caller ids (by number) and audio prompts (newest first), pending first, with the names of
    who submitted and reviewed them and of their tenant; reviewers also get the tenants below
    theirs. `reviewable` on each item (and `can_review` overall) says whether the caller may
    decide (a tenant with a parent never decides on its own items)."""
    tenants, decides = await review_scope(ctx, principal)
    scope = list(tenants)
    callers = await list_caller_ids(ctx, scope)
    files_cursor = ctx.db.db[f"{PROMPTS_BUCKET}.files"].find({"metadata.tenant_id": {"$in": scope}})
    files = [f async for f in files_cursor.sort("uploadDate", -1).limit(1000)]
    prompts = [
        {
            **public_prompt(f),
            "uploaded_by": (f.get("metadata") or {}).get("uploaded_by"),
            "tenant_id": (f.get("metadata") or {}).get("tenant_id"),
        }
        for f in files
    ]
    people: list[str | None] = [c.get(k) for c in callers for k in ("submitted_by", "reviewed_by")]
    people += [p["uploaded_by"] for p in prompts] + [p["approval"]["reviewed_by"] for p in prompts]
    names = await _names(ctx, [*scope, *principal.tenant_path], people)
    document_ids = [d for c in callers for d in c.get("documents") or []]
    documents = ctx.db.db[f"{DOCUMENTS_BUCKET}.files"].find(
        {"_id": {"$in": document_ids}, "metadata.tenant_id": {"$in": scope}}, {"filename": 1}
    )
    filenames = {str(d["_id"]): str(d.get("filename") or "document") async for d in documents}

    def name(user_id: str | None) -> str | None:
        return names.get(user_id) if user_id else None

    def owner(tenant_id: str) -> dict[str, Any]:
        return {
            "tenant_id": tenant_id,
            "tenant_name": tenants.get(tenant_id, ""),
            "own": tenant_id == principal.tenant_id,
            "reviewable": tenant_id in decides,
        }

    caller_views = [
        {
            **public_caller_id(c),
            **owner(c["tenant_id"]),
            "submitted_by_name": name(c.get("submitted_by")),
            "reviewed_by_name": name(c.get("reviewed_by")),
            "document_files": [
                {"id": str(d), "name": filenames.get(str(d), "document")} for d in c.get("documents") or []
            ],
        }
        for c in callers
    ]
    prompt_views = [
        {
            **p,
            **owner(p["tenant_id"]),
            "audio_url": f"/api/approvals/prompts/{p['id']}/audio",
            "uploaded_by_name": name(p["uploaded_by"]),
            "approval": {**p["approval"], "reviewed_by_name": name(p["approval"]["reviewed_by"])},
        }
        for p in prompts
    ]
    # stable sorts: own tenant first, then by tenant name; pending first within
    caller_views.sort(key=lambda c: (not c["own"], c["tenant_name"]))
    caller_views.sort(key=lambda c: _QUEUE_ORDER.get(c["status"], 3))
    prompt_views.sort(key=lambda p: _QUEUE_ORDER.get(p["approval"]["status"], 3))
    return {"caller_ids": caller_views, "prompts": prompt_views, "can_review": bool(decides)}


@router.get("/approvals/prompts/{prompt_id}/audio")
async def prompt_playback(
    prompt_id: str, principal: Principal = QUEUE_READER, ctx: AppContext = Depends(get_ctx)
) -> Response:
    """A prompt of the caller's tenant or (reviewers) of a tenant below, to listen before deciding."""
    tenant_id = await prompt_tenant(ctx, prompt_id)
    try:
        await review_access(ctx, principal, tenant_id, decide=False)
        if tenant_id != principal.tenant_id:
            await review_access(ctx, principal, tenant_id, decide=True)
    except (ApprovalNotFound, ApprovalForbidden) as exc:
        raise _refusal(exc, "prompt") from exc
    assert tenant_id is not None
    found = await prompt_audio(ctx, tenant_id, prompt_id)
    if found is None:
        raise HTTPException(404, "no such prompt")
    file, data = found
    filename = str(file.get("filename") or "prompt.wav").replace('"', "")
    return Response(
        data,
        media_type="audio/wav",
        headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "private"},
    )


@router.get("/caller-ids/{caller_id}/documents/{file_id}")
async def download_document(
    caller_id: str, file_id: str, principal: Principal = QUEUE_READER, ctx: AppContext = Depends(get_ctx)
) -> Response:
    """A caller id's document: submitters of its tenant, and reviewers above it."""
    tenant_id = await caller_id_tenant(ctx, caller_id)
    try:
        await review_access(ctx, principal, tenant_id, decide=tenant_id != principal.tenant_id)
    except (ApprovalNotFound, ApprovalForbidden) as exc:
        raise _refusal(exc, "document") from exc
    assert tenant_id is not None
    found = await caller_id_document(ctx, tenant_id, caller_id, file_id)
    if found is None:
        raise HTTPException(404, "no such document")
    meta, data = found
    filename = str(meta.get("filename") or "document").replace('"', "")
    return Response(
        data,
        media_type="application/octet-stream",  # never rendered inline: uploaded by users
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private"},
    )


async def _review_caller_id(
    ctx: AppContext, request: Request, principal: Principal, caller_id: str, approve: bool, body: ReviewBody
) -> dict[str, Any]:
    tenant_id = await caller_id_tenant(ctx, caller_id)
    try:
        await review_access(ctx, principal, tenant_id, decide=True)
    except (ApprovalNotFound, ApprovalForbidden) as exc:
        raise _refusal(exc, "caller id") from exc
    assert tenant_id is not None
    before = await ctx.db.caller_ids.find_one({"_id": caller_id, "tenant_id": tenant_id}, {"status": 1})
    try:
        doc = await review_caller_id(
            ctx, tenant_id, caller_id, approve=approve, reason=body.reason, by=principal.user_id
        )
    except ApprovalConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except ApprovalError as exc:
        raise HTTPException(422, str(exc)) from exc
    if doc is None:
        raise HTTPException(404, "no such caller id")
    await audit.record(
        ctx,
        principal,
        "caller_id.approve" if approve else "caller_id.reject",
        {"kind": "caller_id", "id": caller_id, "number": doc["number"]},
        {"status": {"from": (before or {}).get("status"), "to": doc["status"]}, "reason": doc.get("reason")},
        tenant_id=tenant_id,
        ip=audit.client_ip(request),
    )
    return public_caller_id(doc)


@router.post("/caller-ids/{caller_id}/approve")
async def approve_caller_id(
    caller_id: str,
    request: Request,
    body: ReviewBody = Body(default_factory=ReviewBody),
    principal: Principal = REVIEWER,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    return await _review_caller_id(ctx, request, principal, caller_id, True, body)


@router.post("/caller-ids/{caller_id}/reject")
async def reject_caller_id(
    caller_id: str,
    request: Request,
    body: ReviewBody,
    principal: Principal = REVIEWER,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    return await _review_caller_id(ctx, request, principal, caller_id, False, body)


def _prompt_view(file: Doc) -> dict[str, Any]:
    return {**public_prompt(file), "approval": prompt_approval(file)}


async def _review_prompt(
    ctx: AppContext, request: Request, principal: Principal, prompt_id: str, approve: bool, body: ReviewBody
) -> dict[str, Any]:
    tenant_id = await prompt_tenant(ctx, prompt_id)
    try:
        await review_access(ctx, principal, tenant_id, decide=True)
    except (ApprovalNotFound, ApprovalForbidden) as exc:
        raise _refusal(exc, "prompt") from exc
    assert tenant_id is not None
    try:
        file = await review_prompt(
            ctx, tenant_id, prompt_id, approve=approve, reason=body.reason, by=principal.user_id
        )
    except ApprovalError as exc:
        raise HTTPException(422, str(exc)) from exc
    if file is None:
        raise HTTPException(404, "no such prompt")
    view = _prompt_view(file)
    await audit.record(
        ctx,
        principal,
        "prompt.approve" if approve else "prompt.reject",
        {"kind": "prompt", "id": prompt_id, "name": view.get("name")},
        {"status": {"to": view["approval"]["status"]}, "reason": view["approval"]["reason"]},
        tenant_id=tenant_id,
        ip=audit.client_ip(request),
    )
    return view


@router.post("/ivr/prompts/{prompt_id}/approve")
async def approve_prompt(
    prompt_id: str,
    request: Request,
    body: ReviewBody = Body(default_factory=ReviewBody),
    principal: Principal = REVIEWER,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    return await _review_prompt(ctx, request, principal, prompt_id, True, body)


@router.post("/ivr/prompts/{prompt_id}/reject")
async def reject_prompt(
    prompt_id: str,
    request: Request,
    body: ReviewBody,
    principal: Principal = REVIEWER,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    return await _review_prompt(ctx, request, principal, prompt_id, False, body)
