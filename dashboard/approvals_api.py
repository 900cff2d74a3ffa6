"""Approvals over HTTP: caller-id numbers and audio prompts for outbound campaigns.

Supervisors and admins submit a caller id (JSON, or multipart with `documents` files
as proof the number is the tenant's); only admins approve or reject, a caller id or an
uploaded prompt (the prompt routes sit under /api/ivr/prompts beside the upload API).
Everything is filtered by the caller's tenant: another tenant's id is a 404.
`GET /api/approvals` is the review queue the /approvals page shows: both kinds, pending first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile

from bot.ivr import PROMPTS_BUCKET
from dashboard.dnc_api import default_region
from dashboard.ivr_api import public_prompt
from dashboard.people import user_names
from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.db import Doc
from routing.approvals import (
    DOCUMENTS_BUCKET,
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENTS,
    STATUSES,
    ApprovalConflict,
    ApprovalError,
    Document,
    caller_id_document,
    list_caller_ids,
    prompt_approval,
    public_caller_id,
    review_caller_id,
    review_prompt,
    submit_caller_id,
)

router = APIRouter(prefix="/api")
SUBMITTER = require_roles("supervisor", "admin")
ADMIN = require_roles("admin")
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
    return public_caller_id(doc)


@router.get("/caller-ids")
async def list_all(
    status: str | None = None, principal: Principal = SUBMITTER, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise HTTPException(422, f"status must be one of {', '.join(STATUSES)}")
    return [public_caller_id(doc) for doc in await list_caller_ids(ctx, principal.tenant_id, status)]


@router.get("/approvals")
async def review_queue(
    principal: Principal = SUBMITTER, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Caller ids (by number) and audio prompts (newest first), pending first, with the names of
    who submitted and reviewed them; `can_review` says whether the caller may decide."""
    tenant_id = principal.tenant_id
    callers = await list_caller_ids(ctx, tenant_id)
    files_cursor = ctx.db.db[f"{PROMPTS_BUCKET}.files"].find({"metadata.tenant_id": tenant_id})
    files = [f async for f in files_cursor.sort("uploadDate", -1).limit(500)]
    prompts = [
        {**public_prompt(f), "uploaded_by": (f.get("metadata") or {}).get("uploaded_by")} for f in files
    ]
    people: list[str | None] = [c.get(k) for c in callers for k in ("submitted_by", "reviewed_by")]
    people += [p["uploaded_by"] for p in prompts] + [p["approval"]["reviewed_by"] for p in prompts]
    names = await user_names(ctx, tenant_id, people)
    document_ids = [d for c in callers for d in c.get("documents") or []]
    documents = ctx.db.db[f"{DOCUMENTS_BUCKET}.files"].find(
        {"_id": {"$in": document_ids}, "metadata.tenant_id": tenant_id}, {"filename": 1}
    )
    filenames = {str(d["_id"]): str(d.get("filename") or "document") async for d in documents}

    def name(user_id: str | None) -> str | None:
        return names.get(user_id) if user_id else None

    caller_views = [
        {
            **public_caller_id(c),
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
            "uploaded_by_name": name(p["uploaded_by"]),
            "approval": {**p["approval"], "reviewed_by_name": name(p["approval"]["reviewed_by"])},
        }
        for p in prompts
    ]
    caller_views.sort(key=lambda c: _QUEUE_ORDER.get(c["status"], 3))  # stable: by number within
    prompt_views.sort(key=lambda p: _QUEUE_ORDER.get(p["approval"]["status"], 3))
    return {"caller_ids": caller_views, "prompts": prompt_views, "can_review": principal.has_any("admin")}


@router.get("/caller-ids/{caller_id}/documents/{file_id}")
async def download_document(
    caller_id: str, file_id: str, principal: Principal = SUBMITTER, ctx: AppContext = Depends(get_ctx)
) -> Response:
    found = await caller_id_document(ctx, principal.tenant_id, caller_id, file_id)
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
    ctx: AppContext, principal: Principal, caller_id: str, approve: bool, body: ReviewBody
) -> dict[str, Any]:
    try:
        doc = await review_caller_id(
            ctx, principal.tenant_id, caller_id, approve=approve, reason=body.reason, by=principal.user_id
        )
    except ApprovalConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except ApprovalError as exc:
        raise HTTPException(422, str(exc)) from exc
    if doc is None:
        raise HTTPException(404, "no such caller id")
    return public_caller_id(doc)


@router.post("/caller-ids/{caller_id}/approve")
async def approve_caller_id(
    caller_id: str,
    body: ReviewBody = Body(default_factory=ReviewBody),
    principal: Principal = ADMIN,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    return await _review_caller_id(ctx, principal, caller_id, True, body)


@router.post("/caller-ids/{caller_id}/reject")
async def reject_caller_id(
    caller_id: str, body: ReviewBody, principal: Principal = ADMIN, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    return await _review_caller_id(ctx, principal, caller_id, False, body)


def _prompt_view(file: Doc) -> dict[str, Any]:
    return {**public_prompt(file), "approval": prompt_approval(file)}


async def _review_prompt(
    ctx: AppContext, principal: Principal, prompt_id: str, approve: bool, body: ReviewBody
) -> dict[str, Any]:
    try:
        file = await review_prompt(
            ctx, principal.tenant_id, prompt_id, approve=approve, reason=body.reason, by=principal.user_id
        )
    except ApprovalError as exc:
        raise HTTPException(422, str(exc)) from exc
    if file is None:
        raise HTTPException(404, "no such prompt")
    return _prompt_view(file)


@router.post("/ivr/prompts/{prompt_id}/approve")
async def approve_prompt(
    prompt_id: str,
    body: ReviewBody = Body(default_factory=ReviewBody),
    principal: Principal = ADMIN,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    return await _review_prompt(ctx, principal, prompt_id, True, body)


@router.post("/ivr/prompts/{prompt_id}/reject")
async def reject_prompt(
    prompt_id: str, body: ReviewBody, principal: Principal = ADMIN, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    return await _review_prompt(ctx, principal, prompt_id, False, body)
