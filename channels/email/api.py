"""Attachment downloads for the dashboard: only within the caller's tenant (others' ids are 404)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response

from channels.email import attachments
from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx

router = APIRouter(prefix="/api/attachments")
STAFF = require_roles("agent", "supervisor", "admin")


@router.get("/{file_id}")
async def download(
    file_id: str, principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)
) -> Response:
    found = await attachments.load(ctx, principal.tenant_id, file_id)
    if found is None:
        raise HTTPException(404, "no such attachment")
    info, data = found
    meta = info.get("metadata") or {}
    return Response(
        data,
        media_type=str(meta.get("content_type") or "application/octet-stream"),
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(info.get('filename') or 'file')}"
        },
    )
