"""The email endpoints of the agent desk: a contact's mail thread and attachment downloads.

Both stay within the caller's tenant (others' ids are 404); a thread is seen by the agents the
contact is offered or assigned to and by supervisors and admins, as the screen pop is.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response

from channels.email import attachments
from channels.email.thread import thread_view
from dashboard.api import _may_see as may_see
from hub.auth import Principal, require_roles
from hub.contacts import get_contact
from hub.context import AppContext, get_ctx

router = APIRouter(prefix="/api")
STAFF = require_roles("agent", "supervisor", "admin")


@router.get("/attachments/{file_id}")
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


@router.get("/contacts/{contact_id}/email")
async def email_thread(
    contact_id: str, principal: Principal = STAFF, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """The mails of an email contact with headers, quoted text marked, HTML and attachments."""
    contact = await get_contact(ctx, contact_id, principal.tenant_id)
    if contact is None:
        raise HTTPException(404, "no such contact")
    if not may_see(contact, principal):
        raise HTTPException(403, "this contact is not yours")
    if contact.get("channel") != "email":
        raise HTTPException(404, "not an email contact")
    return await thread_view(ctx, contact)
