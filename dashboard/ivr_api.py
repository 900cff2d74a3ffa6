"""IVR administration API: a tenant's call flows and their uploaded audio prompts.

Admins and supervisors edit flows; every query is filtered by the caller's tenant,
so another tenant's flow or prompt is simply "not found". Flows are validated by
`bot.ivr.validate_flow` and stored normalised; a flow may only play audio prompts
its own tenant uploaded. Prompts are WAV files (at most 5 MB) in the GridFS bucket
`prompts`, tagged with `metadata.tenant_id`.
"""

from __future__ import annotations

import struct
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response
from gridfs.asynchronous import AsyncGridFSBucket
from pydantic import BaseModel, Field
from pymongo.errors import DuplicateKeyError
from starlette.datastructures import UploadFile

from bot.ivr import PROMPTS_BUCKET, Flow, FlowError, prompt_audio, validate_flow
from hub.auth import Principal, require_permission
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from hub.numbers import NumberConflict, check_flow_number
from routing.approvals import prompt_approval

router = APIRouter(prefix="/api/ivr")
# supervisors and admins hold flows.manage by default; so does the technician role
IVR_ADMIN = require_permission("flows.manage")
MAX_PROMPT_BYTES = 5 * 1024 * 1024
# Multipart framing around the file (boundaries, part headers, a name field).
_MULTIPART_SLACK = 16 * 1024
TOO_LARGE = "audio prompt is larger than 5 MB; shorten it or lower its sample rate (8 kHz mono suits phones)"
NOT_WAV = "audio prompts must be WAV files (RIFF/WAVE)"
_CODECS = {1: "pcm", 3: "float", 6: "alaw", 7: "mulaw", 0xFFFE: "extensible"}
_META_KEYS = ("id", "_id", "tenant_id", "created_at", "updated_at", "created_by", "updated_by")


def public_flow(doc: Doc) -> dict[str, Any]:
    flow = {k: v for k, v in doc.items() if k not in _META_KEYS}
    return {
        "id": doc["_id"],
        **flow,
        "created_at": iso(doc.get("created_at")),
        "updated_at": iso(doc.get("updated_at")),
    }


def public_prompt(file: Doc) -> dict[str, Any]:
    meta = file.get("metadata") or {}
    return {
        "id": str(file["_id"]),
        "name": meta.get("name") or file.get("filename"),
        "filename": file.get("filename"),
        "size": file.get("length"),
        "codec": meta.get("codec"),
        "sample_rate": meta.get("sample_rate"),
        "channels": meta.get("channels"),
        "duration_s": meta.get("duration_s"),
        "uploaded_at": iso(file.get("uploadDate")),
        "approval": prompt_approval(file),  # for outbound use (routing.approvals)
    }


def wav_info(data: bytes) -> dict[str, Any] | None:
    """Format and duration from a RIFF/WAVE header, or None if this is not a playable WAV."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt, data_len = 12, None, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"fmt " and size >= 16 and pos + 24 <= len(data):
            fmt = struct.unpack("<HHIIHH", data[pos + 8 : pos + 24])
        elif chunk == b"data":
            data_len = min(size, len(data) - pos - 8)
            break
        pos += 8 + size + (size & 1)
    if fmt is None or data_len is None:
        return None
    codec, channels, rate, byte_rate, _, bits = fmt
    if codec not in _CODECS or not channels or not rate or not byte_rate:
        return None
    return {
        "codec": _CODECS[codec],
        "channels": channels,
        "sample_rate": rate,
        "bits": bits,
        "duration_s": round(data_len / byte_rate, 3),
    }


def _bucket(ctx: AppContext) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(ctx.db.db, bucket_name=PROMPTS_BUCKET)


def _oid(value: str) -> ObjectId | None:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


async def _own_prompt(ctx: AppContext, tenant_id: str, prompt_id: str) -> Doc | None:
    oid = _oid(prompt_id)
    if oid is None:
        return None
    return await ctx.db.db[f"{PROMPTS_BUCKET}.files"].find_one({"_id": oid, "metadata.tenant_id": tenant_id})


async def _checked_flow(ctx: AppContext, principal: Principal, body: Doc, flow_id: str) -> Flow:
    """Validate a posted flow as this tenant's, with ids and tenant set by the server."""
    doc = {k: v for k, v in body.items() if k not in _META_KEYS}
    try:
        flow = validate_flow({**doc, "_id": flow_id, "tenant_id": principal.tenant_id})
    except FlowError as exc:
        raise HTTPException(422, str(exc)) from exc
    for audio_id in sorted(flow.audio_ids()):
        if await _own_prompt(ctx, principal.tenant_id, audio_id) is None:
            raise HTTPException(422, f"audio prompt {audio_id!r} does not exist; upload it first")
    try:  # the number inventory (hub/numbers.py): another tenant's number is refused
        await check_flow_number(ctx, principal.tenant_id, flow.number)
    except NumberConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    return flow


def _number_taken(flow: Flow) -> HTTPException:
    return HTTPException(409, f"number {flow.number} already has a flow")


@router.get("/flows")
async def list_flows(
    principal: Principal = IVR_ADMIN, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    cursor = ctx.db.ivr_flows.find({"tenant_id": principal.tenant_id}).sort("number", 1)
    return [public_flow(doc) async for doc in cursor.limit(500)]


@router.get("/flows/{flow_id}")
async def get_flow(
    flow_id: str, principal: Principal = IVR_ADMIN, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    doc = await ctx.db.ivr_flows.find_one({"_id": flow_id, "tenant_id": principal.tenant_id})
    if doc is None:
        raise HTTPException(404, "no such flow")
    return public_flow(doc)


@router.post("/flows", status_code=201)
async def create_flow(
    body: dict[str, Any] = Body(...), principal: Principal = IVR_ADMIN, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    flow = await _checked_flow(ctx, principal, body, new_id())
    now = utcnow()
    doc: Doc = {**flow.to_doc(), "created_at": now, "updated_at": now, "created_by": principal.user_id}
    try:
        await ctx.db.ivr_flows.insert_one(doc)
    except DuplicateKeyError as exc:
        raise _number_taken(flow) from exc
    return public_flow(doc)


@router.put("/flows/{flow_id}")
async def replace_flow(
    flow_id: str,
    body: dict[str, Any] = Body(...),
    principal: Principal = IVR_ADMIN,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    existing = await ctx.db.ivr_flows.find_one({"_id": flow_id, "tenant_id": principal.tenant_id})
    if existing is None:
        raise HTTPException(404, "no such flow")
    flow = await _checked_flow(ctx, principal, body, flow_id)
    doc: Doc = {
        **flow.to_doc(),
        "created_at": existing.get("created_at"),
        "created_by": existing.get("created_by"),
        "updated_at": utcnow(),
        "updated_by": principal.user_id,
    }
    try:
        result = await ctx.db.ivr_flows.replace_one({"_id": flow_id, "tenant_id": principal.tenant_id}, doc)
    except DuplicateKeyError as exc:
        raise _number_taken(flow) from exc
    if result.matched_count == 0:
        raise HTTPException(404, "no such flow")
    return public_flow(doc)


@router.delete("/flows/{flow_id}")
async def delete_flow(
    flow_id: str, principal: Principal = IVR_ADMIN, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    result = await ctx.db.ivr_flows.delete_one({"_id": flow_id, "tenant_id": principal.tenant_id})
    if result.deleted_count == 0:
        raise HTTPException(404, "no such flow")
    return {"status": "deleted"}


async def _read_upload(request: Request) -> tuple[bytes, str, str | None]:
    """The multipart `file` (and optional `name`), refusing oversized bodies before parsing them."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_PROMPT_BYTES + _MULTIPART_SLACK:
        raise HTTPException(413, TOO_LARGE)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(422, "send the prompt as multipart/form-data with the WAV in a 'file' field")
    form = await request.form(max_files=1, max_fields=4)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "send the WAV in a multipart field named 'file'")
        data = await upload.read(MAX_PROMPT_BYTES + 1)
        if len(data) > MAX_PROMPT_BYTES:
            raise HTTPException(413, TOO_LARGE)
        field = form.get("name")
        name = field[:120].strip() if isinstance(field, str) else ""
        filename = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1][:120]
        return data, filename or "prompt.wav", name or None
    finally:
        await form.close()


@router.post("/prompts", status_code=201)
async def upload_prompt(
    request: Request, principal: Principal = IVR_ADMIN, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    data, filename, name = await _read_upload(request)
    info = wav_info(data)
    if info is None:
        raise HTTPException(415, NOT_WAV)
    metadata = {
        "tenant_id": principal.tenant_id,
        "content_type": "audio/wav",
        "name": name or filename.rsplit(".", 1)[0],
        "uploaded_by": principal.user_id,
        **info,
    }
    oid = await _bucket(ctx).upload_from_stream(filename, data, metadata=metadata)
    file = await ctx.db.db[f"{PROMPTS_BUCKET}.files"].find_one({"_id": oid})
    assert file is not None
    return public_prompt(file)


@router.get("/prompts")
async def list_prompts(
    principal: Principal = IVR_ADMIN, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    files = ctx.db.db[f"{PROMPTS_BUCKET}.files"]
    cursor = files.find({"metadata.tenant_id": principal.tenant_id}).sort("uploadDate", -1)
    return [public_prompt(f) async for f in cursor.limit(500)]


@router.get("/prompts/{prompt_id}")
async def download_prompt(
    prompt_id: str, principal: Principal = IVR_ADMIN, ctx: AppContext = Depends(get_ctx)
) -> Response:
    found = await prompt_audio(ctx, principal.tenant_id, prompt_id)
    if found is None:
        raise HTTPException(404, "no such prompt")
    file, data = found
    filename = str(file.get("filename") or "prompt.wav").replace('"', "")
    return Response(
        data,
        media_type="audio/wav",
        headers={"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "private"},
    )


def _doc_audio_ids(value: Any) -> set[str]:
    """audio_id values anywhere in a stored flow (tolerant of flows saved by older versions)."""
    if isinstance(value, dict):
        found = {value["audio_id"]} if isinstance(value.get("audio_id"), str) else set()
        for item in value.values():
            found |= _doc_audio_ids(item)
        return found
    if isinstance(value, list):
        return set().union(*(_doc_audio_ids(item) for item in value)) if value else set()
    return set()


@router.delete("/prompts/{prompt_id}")
async def delete_prompt(
    prompt_id: str, principal: Principal = IVR_ADMIN, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    file = await _own_prompt(ctx, principal.tenant_id, prompt_id)
    if file is None:
        raise HTTPException(404, "no such prompt")
    async for flow in ctx.db.ivr_flows.find({"tenant_id": principal.tenant_id}):
        if prompt_id in _doc_audio_ids(flow):
            raise HTTPException(409, f"the prompt is used by flow {flow.get('name') or flow['number']}")
    await _bucket(ctx).delete(file["_id"])
    return {"status": "deleted"}


class SpeechDefaults(BaseModel):
    """The tenant's default recognizer and voice (a number's flow may override them)."""

    asr_model: str | None = Field(default=None, max_length=200)
    tts_voice: str | None = Field(default=None, max_length=200)


@router.put("/speech")
async def set_speech_defaults(
    body: SpeechDefaults, principal: Principal = IVR_ADMIN, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    from media.models import ASR_MODELS, ModelsConfig, resolve_asr, resolve_voice

    config = ModelsConfig(ctx.settings.models_dir)
    if body.asr_model and body.asr_model not in ASR_MODELS and resolve_asr(body.asr_model, config) is None:
        raise HTTPException(422, f"unknown speech model {body.asr_model!r} (see: hub models list)")
    if body.tts_voice and resolve_voice(body.tts_voice, config) is None:
        raise HTTPException(422, f"voice {body.tts_voice!r} is not installed on this hub")
    await ctx.db.tenants.update_one(
        {"_id": principal.tenant_id}, {"$set": {"voice": body.model_dump(exclude_none=True)}}
    )
    return await speech_readiness(principal, ctx)


@router.get("/speech")
async def speech_readiness(
    principal: Principal = IVR_ADMIN, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Whether this hub can recognise and speak for the tenant's numbers."""
    from media.models import ModelsConfig
    from media.readiness import dtmf_only_numbers, speech_status

    tenant = await ctx.db.tenants.find_one({"_id": principal.tenant_id}, {"voice": 1}) or {}
    defaults: dict[str, Any] = {"asr_model": ctx.settings.asr_model, "tts_voice": ctx.settings.tts_voice}
    defaults.update(tenant.get("voice") or {})
    status = speech_status(
        defaults["asr_model"], defaults["tts_voice"], ModelsConfig(ctx.settings.models_dir)
    )
    return {**defaults, **status, "dtmf_only_numbers": await dtmf_only_numbers(ctx, principal.tenant_id)}
