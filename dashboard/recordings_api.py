"""Call recordings: list, metadata, playback and download, the tenant's recording policy.

Who sees what (always within the caller's own tenant; another tenant's recording is a
404, never a 403, so its existence is not leaked):

- supervisors and admins: every recording of the tenant;
- agents: only recordings of calls they were on (`agent_ids`), and only while the
  tenant's `RecordingSettings.agents_play_own` is on (else 403); another agent's
  recording is a 404 to them, like one that does not exist;
- editors and everyone else: 403.

Every playback or download request (ranges included: seeking is listening too) is
appended to the `recording_access` collection before a byte is sent, so the audit
trail cannot be skipped. Deleting (admins) removes the audio from GridFS and keeps the
`recordings` document with `deleted_at` / `delete_reason` as the audit trail.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from gridfs.asynchronous import AsyncGridFSBucket
from gridfs.errors import NoFile
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from media.recording import BUCKET, RecordingSettings, open_recording, recording_settings

router = APIRouter(prefix="/api")
VIEWER = require_roles("agent", "supervisor", "admin")
SUPERVISOR = require_roles("supervisor", "admin")
ADMIN = require_roles("admin")
CHUNK = 256 * 1024
NO_STORE = "private, no-store"
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9_-]+")


class RecordingSettingsBody(BaseModel):
    """`PUT /api/recordings/settings`; fields left out keep their current value."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    enabled: StrictBool
    disclosure: StrictBool
    disclosure_text: str = Field(min_length=1, max_length=500)
    retention_days: StrictInt = Field(ge=0, le=3650, description="0 = keep forever")
    agents_play_own: StrictBool


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def public_recording(doc: Doc) -> dict[str, Any]:
    rid = doc["_id"]
    gone = doc.get("deleted_at") is not None
    return {
        "id": rid,
        "contact_id": doc.get("contact_id"),
        "channel": doc.get("channel"),
        "customer_id": doc.get("customer_id"),
        "queue_id": doc.get("queue_id"),
        "agent_ids": doc.get("agent_ids") or [],
        "agent_names": doc.get("agent_names") or [],
        "started_at": iso(doc.get("started_at")),
        "ended_at": iso(doc.get("ended_at")),
        "duration_s": doc.get("duration_s"),
        "bytes": doc.get("bytes"),
        "sample_rate": doc.get("sample_rate"),
        "channels": doc.get("channels") or [],
        "disclosure_played": bool(doc.get("disclosure_played")),
        "deleted_at": iso(doc.get("deleted_at")),
        "delete_reason": doc.get("delete_reason"),
        "audio_url": None if gone else f"/api/recordings/{rid}/audio",
        "download_url": None if gone else f"/api/recordings/{rid}/download",
    }


async def _scope(ctx: AppContext, principal: Principal) -> Doc:
    """The filter of the recordings the caller may see; 403 when they may see none."""
    if principal.has_any("supervisor", "admin"):
        return {"tenant_id": principal.tenant_id}
    if principal.has_any("agent"):
        settings = await recording_settings(ctx, principal.tenant_id)
        if not settings.agents_play_own:
            raise HTTPException(403, "agents may not play recordings in this organisation")
        return {"tenant_id": principal.tenant_id, "agent_ids": principal.user_id}
    raise HTTPException(403, "not permitted for your role")


async def _visible(ctx: AppContext, principal: Principal, recording_id: str) -> Doc:
    doc = await ctx.db.recordings.find_one({**await _scope(ctx, principal), "_id": recording_id})
    if doc is None:
        raise HTTPException(404, "no such recording")
    return doc


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@router.get("/recordings")
async def list_recordings(
    contact_id: str | None = Query(None, max_length=100),
    agent_id: str | None = Query(None, max_length=100),
    since: datetime | None = Query(None, description="started at or after (ISO 8601)"),
    until: datetime | None = Query(None, description="started before (ISO 8601)"),
    limit: int = Query(100, ge=1, le=500),
    principal: Principal = VIEWER,
    ctx: AppContext = Depends(get_ctx),
) -> list[dict[str, Any]]:
    """Recordings not deleted, newest first."""
    query: Doc = {**await _scope(ctx, principal), "deleted_at": None}
    if agent_id:
        if "agent_ids" in query and agent_id != query["agent_ids"]:
            return []  # an agent asking for someone else's calls
        query["agent_ids"] = agent_id
    if contact_id:
        query["contact_id"] = contact_id
    started: Doc = {}
    if since is not None:
        started["$gte"] = _utc(since)
    if until is not None:
        started["$lt"] = _utc(until)
    if started:
        query["started_at"] = started
    cursor = ctx.db.recordings.find(query).sort("started_at", -1).limit(limit)
    return [public_recording(doc) async for doc in cursor]


# declared before /recordings/{recording_id} so "settings" is not taken for an id
@router.get("/recordings/settings")
async def get_recording_settings(
    principal: Principal = SUPERVISOR, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    return (await recording_settings(ctx, principal.tenant_id)).to_doc()


@router.put("/recordings/settings")
async def put_recording_settings(
    body: dict[str, Any] = Body(...), principal: Principal = ADMIN, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    current = (await recording_settings(ctx, principal.tenant_id)).to_doc()
    try:
        valid = RecordingSettingsBody.model_validate({**current, **body})
    except ValidationError as exc:
        raise HTTPException(422, _problems(exc)) from exc
    settings = RecordingSettings(**valid.model_dump())
    await ctx.db.tenants.update_one({"_id": principal.tenant_id}, {"$set": {"recording": settings.to_doc()}})
    return settings.to_doc()


@router.get("/recordings/{recording_id}")
async def get_recording(
    recording_id: str, principal: Principal = VIEWER, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    return public_recording(await _visible(ctx, principal, recording_id))


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte, inclusive, of a single `bytes=` range; None for the whole file.

    Multiple ranges, other units and malformed headers are ignored (RFC 9110 lets a
    server answer those with the full representation); a range wholly past the end
    raises RangeNotSatisfiable.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    first_s, last_s = first_s.strip(), last_s.strip()
    if not dash or not (first_s or last_s) or not all(s.isdigit() for s in (first_s, last_s) if s):
        return None
    if not first_s:  # bytes=-N: the last N bytes
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    first = int(first_s)
    if last_s and int(last_s) < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(int(last_s), size - 1) if last_s else size - 1


async def _chunks(stream: Any, first: int, length: int) -> AsyncIterator[bytes]:
    try:
        if first:
            await stream.seek(first)
        remaining = length
        while remaining > 0:
            data = await stream.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        await stream.close()


def _download_name(doc: Doc) -> str:
    contact = _UNSAFE_FILENAME.sub("_", str(doc.get("contact_id") or "unknown"))[:64]
    started = doc.get("started_at")
    date = started.strftime("%Y-%m-%d_%H%M%S") if isinstance(started, datetime) else "undated"
    return f"recording-{contact}-{date}.wav"


async def _audit(
    ctx: AppContext,
    request: Request,
    principal: Principal,
    doc: Doc,
    action: str,
    byte_range: tuple[int, int] | None = None,
) -> None:
    await ctx.db.recording_access.insert_one(
        {
            "_id": new_id(),
            "tenant_id": principal.tenant_id,
            "recording_id": doc["_id"],
            "contact_id": doc.get("contact_id"),
            "user_id": principal.user_id,
            "user_email": principal.email,
            "user_name": principal.name,
            "roles": list(principal.roles),
            "action": action,
            "range": list(byte_range) if byte_range else None,
            "ip": request.client.host if request.client else None,
            "at": utcnow(),
        }
    )


async def _serve_audio(
    request: Request, principal: Principal, ctx: AppContext, recording_id: str, action: str
) -> Response:
    doc = await _visible(ctx, principal, recording_id)
    if doc.get("deleted_at") is not None:
        raise HTTPException(410, f"recording deleted ({doc.get('delete_reason') or 'unknown'})")
    try:
        stream = await open_recording(ctx, doc)
    except NoFile as exc:
        raise HTTPException(410, "recording audio is gone") from exc
    size = int(stream.length)
    try:
        byte_range = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        await stream.close()
        return Response(
            status_code=416, headers={"Content-Range": f"bytes */{size}", "Cache-Control": NO_STORE}
        )
    headers = {"Cache-Control": NO_STORE, "Accept-Ranges": "bytes"}
    if action == "download":
        headers["Content-Disposition"] = f'attachment; filename="{_download_name(doc)}"'
    try:
        await _audit(ctx, request, principal, doc, action, byte_range)
    except BaseException:
        await stream.close()
        raise
    first, last = byte_range if byte_range else (0, size - 1)
    length = max(0, last - first + 1)
    headers["Content-Length"] = str(length)
    if byte_range:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(
        _chunks(stream, first, length),
        status_code=206 if byte_range else 200,
        media_type="audio/wav",
        headers=headers,
    )


@router.get("/recordings/{recording_id}/audio")
async def recording_audio(
    recording_id: str, request: Request, principal: Principal = VIEWER, ctx: AppContext = Depends(get_ctx)
) -> Response:
    """The WAV for the <audio> player; a single `Range: bytes=a-b` gets a 206."""
    return await _serve_audio(request, principal, ctx, recording_id, "play")


@router.get("/recordings/{recording_id}/download")
async def recording_download(
    recording_id: str, request: Request, principal: Principal = VIEWER, ctx: AppContext = Depends(get_ctx)
) -> Response:
    return await _serve_audio(request, principal, ctx, recording_id, "download")


@router.delete("/recordings/{recording_id}", status_code=204)
async def delete_recording(
    recording_id: str, request: Request, principal: Principal = ADMIN, ctx: AppContext = Depends(get_ctx)
) -> None:
    """Remove the audio for good; the document stays, marked, as the audit trail."""
    doc = await ctx.db.recordings.find_one({"_id": recording_id, "tenant_id": principal.tenant_id})
    if doc is None:
        raise HTTPException(404, "no such recording")
    if doc.get("deleted_at") is not None:
        raise HTTPException(410, "recording already deleted")
    try:
        await AsyncGridFSBucket(ctx.db.db, bucket_name=BUCKET).delete(doc["file_id"])
    except NoFile:
        pass  # a half-finished earlier delete: mark it below
    await ctx.db.recordings.update_one(
        {"_id": recording_id, "deleted_at": None},
        {"$set": {"deleted_at": utcnow(), "delete_reason": "manual", "deleted_by": principal.user_id}},
    )
    await _audit(ctx, request, principal, doc, "delete")
