"""Follow-up tasks for agents: callbacks and voicemails left by callers, and re-contact
requests from quality inspection.

A task with an `agent_id` (e.g. kind "recontact") belongs to that agent: only they see it
in their list and complete it (supervisors and admins may list all with `?scope=all` and
complete any). Tasks without one (callbacks, voicemails) are for every agent of the tenant.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from gridfs.asynchronous import AsyncGridFSBucket
from gridfs.errors import NoFile

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import iso, utcnow

router = APIRouter(prefix="/api")
AGENT = require_roles("agent", "supervisor", "admin")


def public_task(task: Doc) -> dict[str, Any]:
    return {
        "id": task["_id"],
        "kind": task["kind"],
        "status": task["status"],
        "contact_id": task.get("contact_id"),
        "customer_id": task.get("customer_id"),
        "phone": task.get("phone"),
        "email": task.get("email"),
        "agent_id": task.get("agent_id"),
        "note": task.get("note"),
        "evaluation_id": task.get("evaluation_id"),
        "voicemail_url": f"/api/voicemail/{task['audio_id']}" if task.get("audio_id") else None,
        "created_at": iso(task.get("created_at")),
        "done_by": task.get("done_by"),
        "done_at": iso(task.get("done_at")),
    }


def _visible(principal: Principal) -> Doc:
    """Tasks for everyone (no agent_id) and the caller's own."""
    return {"agent_id": {"$in": [None, principal.user_id]}}


@router.get("/tasks")
async def list_tasks(
    status: str = "open",
    scope: str = "mine",
    principal: Principal = AGENT,
    ctx: AppContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    """Open (or done) tasks: the tenant's shared ones and the caller's own; `scope=all` for supervisors."""
    query: Doc = {"tenant_id": principal.tenant_id, "status": status}
    if scope == "all":
        if not principal.has_any("supervisor", "admin"):
            raise HTTPException(403, "only supervisors and admins see every agent's tasks")
    elif scope == "mine":
        query.update(_visible(principal))
    else:
        raise HTTPException(422, "scope is mine or all")
    cursor = ctx.db.tasks.find(query).sort("created_at", 1)
    return [public_task(t) async for t in cursor.limit(200)]


@router.post("/tasks/{task_id}/done")
async def complete_task(
    task_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    query: Doc = {"_id": task_id, "tenant_id": principal.tenant_id, "status": "open"}
    if not principal.has_any("supervisor", "admin"):
        query.update(_visible(principal))
    task = await ctx.db.tasks.find_one_and_update(
        query,
        {"$set": {"status": "done", "done_by": principal.user_id, "done_at": utcnow()}},
        return_document=True,
    )
    if task is None:
        raise HTTPException(404, "no such open task")
    return public_task(task)


@router.get("/voicemail/{audio_id}")
async def voicemail_audio(
    audio_id: str, principal: Principal = AGENT, ctx: AppContext = Depends(get_ctx)
) -> Response:
    """The recording, only to staff of the tenant it belongs to."""
    meta = await ctx.db.db["voicemail.files"].find_one(
        {"_id": audio_id, "metadata.tenant_id": principal.tenant_id}
    )
    if meta is None:
        raise HTTPException(404, "no such voicemail")
    try:
        stream = await AsyncGridFSBucket(ctx.db.db, bucket_name="voicemail").open_download_stream(audio_id)
    except NoFile as exc:
        raise HTTPException(404, "no such voicemail") from exc
    return Response(
        await stream.read(), media_type="audio/wav", headers={"Cache-Control": "private, no-store"}
    )
