"""Approvals for outbound use: caller-id numbers and audio prompts.

A campaign may only present a caller id and play an audio prompt that a reviewer approved
(regulators and carriers ask for proof that a number is the tenant's and that a recorded
message was reviewed). Who reviews follows the tenant tree (`review_access`): a tenant without
a parent reviews its own items (holders of `approvals.review`, which admin has); a tenant with a
parent is reviewed by holders of `approvals.review` in any tenant above it (seed 003: the
operator's service staff check the business licence and the phone bill), never by itself. The dialer asks
`approved_caller_id` and `approved_prompt` before each call, so a revocation takes effect at once.

- `caller_ids`: `{_id, tenant_id, number (E.164), label, status: pending|approved|rejected,
  reason, documents: [GridFS ids in bucket caller_id_documents], submitted_by,
  submitted_at, reviewed_by, reviewed_at}`; one per tenant and number. A rejected number
  may be submitted again (back to pending, documents added); reject also revokes.
- audio prompts (GridFS bucket `prompts`, uploaded through the IVR API): the outbound
  approval lives in `metadata.approval: {status, reason, reviewed_by, reviewed_at}`. IVR
  flows keep playing any prompt of their tenant, approved or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs.asynchronous import AsyncGridFSBucket
from pymongo.errors import DuplicateKeyError

from bot.ivr import PROMPTS_BUCKET
from hub.auth import Principal
from hub.context import AppContext
from hub.db import Doc, update_then_read
from hub.ids import iso, new_id, utcnow
from knowledge.dnc import DncError, normalise_number

DOCUMENTS_BUCKET = "caller_id_documents"
STATUSES = ("pending", "approved", "rejected")
MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_DOCUMENTS = 5


class ApprovalError(ValueError):
    """A request that cannot be carried out; the message says why."""


class ApprovalConflict(ApprovalError):
    """The item is not in a state that allows this (e.g. already approved)."""


class ApprovalNotFound(LookupError):
    """No such item within the caller's reach (404: another tree's items are never revealed)."""


class ApprovalForbidden(PermissionError):
    """The caller sees the item but may not decide on it (403); the message says who does."""


REVIEW_PERMISSION = "approvals.review"


async def caller_id_tenant(ctx: AppContext, caller_id: str) -> str | None:
    doc = await ctx.db.caller_ids.find_one({"_id": caller_id}, {"tenant_id": 1})
    return str(doc["tenant_id"]) if doc is not None else None


async def prompt_tenant(ctx: AppContext, prompt_id: str) -> str | None:
    oid = _oid(prompt_id)
    if oid is None:
        return None
    doc = await ctx.db.db[f"{PROMPTS_BUCKET}.files"].find_one({"_id": oid}, {"metadata.tenant_id": 1})
    return (doc.get("metadata") or {}).get("tenant_id") if doc is not None else None


async def review_access(
    ctx: AppContext, principal: Principal, tenant_id: str | None, *, decide: bool
) -> None:
    """May the caller see (`decide=False`) or approve / reject (`decide=True`) an item of
    `tenant_id`? Own items are seen by every caller of the endpoint; items of tenants below are
    seen and decided by reviewers; everything else is ApprovalNotFound."""
    if tenant_id is None:
        raise ApprovalNotFound("not found")
    if tenant_id == principal.tenant_id:
        if not decide:
            return
        if principal.tenant_path:
            raise ApprovalForbidden(
                "your caller ids and audio prompts are reviewed by your provider's service staff, not by you"
            )
        if not principal.can(REVIEW_PERMISSION):
            raise ApprovalForbidden("only holders of the approvals.review permission approve or reject")
        return
    tenant = await ctx.db.tenants.find_one({"_id": tenant_id}, {"path": 1})
    if tenant is None or not principal.manages(tenant):
        raise ApprovalNotFound("not found")
    if not principal.can(REVIEW_PERMISSION):
        raise ApprovalForbidden("only holders of the approvals.review permission review tenants below yours")


async def review_scope(ctx: AppContext, principal: Principal) -> tuple[dict[str, str], set[str]]:
    """The tenants whose items the caller's queue lists (`{id: name}`: its own, and with the
    review permission every tenant below) and those of them it may decide on."""
    names = {principal.tenant_id: principal.tenant_name}
    decides: set[str] = set()
    if principal.can(REVIEW_PERMISSION):
        if not principal.tenant_path:
            decides.add(principal.tenant_id)
        async for tenant in ctx.db.tenants.find({"path": principal.tenant_id}, {"name": 1, "slug": 1}):
            names[tenant["_id"]] = str(tenant.get("name") or tenant.get("slug"))
            decides.add(tenant["_id"])
    return names, decides


@dataclass(frozen=True)
class Document:
    """A file sent with a caller-id request (e.g. the carrier's invoice for the number)."""

    filename: str
    content_type: str
    data: bytes


def _oid(value: str) -> ObjectId | None:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


def public_caller_id(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "number": doc["number"],
        "label": doc.get("label") or "",
        "status": doc["status"],
        "reason": doc.get("reason") or "",
        "documents": [str(d) for d in doc.get("documents") or []],
        "submitted_by": doc.get("submitted_by"),
        "submitted_at": iso(doc.get("submitted_at")),
        "reviewed_by": doc.get("reviewed_by"),
        "reviewed_at": iso(doc.get("reviewed_at")),
    }


async def _store_documents(
    ctx: AppContext, tenant_id: str, caller_id: str, documents: list[Document], by: str | None
) -> list[ObjectId]:
    bucket = AsyncGridFSBucket(ctx.db.db, bucket_name=DOCUMENTS_BUCKET)
    stored = []
    for document in documents:
        metadata = {
            "tenant_id": tenant_id,
            "caller_id": caller_id,
            "content_type": document.content_type,
            "uploaded_by": by,
        }
        stored.append(await bucket.upload_from_stream(document.filename, document.data, metadata=metadata))
    return stored


async def submit_caller_id(
    ctx: AppContext,
    tenant_id: str,
    number: str,
    *,
    label: str = "",
    documents: list[Document] | None = None,
    by: str | None = None,
    default_region: str | None = "US",
) -> Doc:
    """Ask for a number to be approved; a rejected one may be submitted again."""
    documents = documents or []
    if len(documents) > MAX_DOCUMENTS:
        raise ApprovalError(f"at most {MAX_DOCUMENTS} documents per request")
    if any(len(d.data) > MAX_DOCUMENT_BYTES for d in documents):
        raise ApprovalError("a document is larger than 10 MB")
    try:
        e164 = normalise_number(number, default_region)
    except DncError as exc:
        raise ApprovalError(str(exc)) from exc
    now = utcnow()
    existing = await ctx.db.caller_ids.find_one({"tenant_id": tenant_id, "number": e164})
    if existing is not None:
        if existing["status"] != "rejected":
            raise ApprovalConflict(f"{e164} is already {existing['status']}")
        files = await _store_documents(ctx, tenant_id, existing["_id"], documents, by)
        again = await update_then_read(
            ctx.db.caller_ids,
            {"_id": existing["_id"], "status": "rejected"},
            {
                "$set": {
                    "status": "pending",
                    "label": label.strip()[:120] or existing.get("label") or "",
                    "reason": "",
                    "submitted_by": by,
                    "submitted_at": now,
                    "reviewed_by": None,
                    "reviewed_at": None,
                },
                "$push": {"documents": {"$each": files}},
            },
        )
        if again is None:
            raise ApprovalConflict(f"{e164} changed while it was being submitted; try again")
        return again
    caller_id = new_id()
    doc: Doc = {
        "_id": caller_id,
        "tenant_id": tenant_id,
        "number": e164,
        "label": label.strip()[:120],
        "status": "pending",
        "reason": "",
        "documents": [],
        "submitted_by": by,
        "submitted_at": now,
        "reviewed_by": None,
        "reviewed_at": None,
    }
    try:
        await ctx.db.caller_ids.insert_one(doc)
    except DuplicateKeyError as exc:
        raise ApprovalConflict(f"{e164} was just submitted by someone else") from exc
    files = await _store_documents(ctx, tenant_id, caller_id, documents, by)
    if files:
        await ctx.db.caller_ids.update_one({"_id": caller_id}, {"$set": {"documents": files}})
        doc["documents"] = files
    return doc


async def review_caller_id(
    ctx: AppContext, tenant_id: str, caller_id: str, *, approve: bool, reason: str = "", by: str | None = None
) -> Doc | None:
    """Approve (from pending or rejected) or reject (from pending, or revoke an approval).

    None if the tenant has no such caller id; ApprovalConflict if it is already so."""
    reason = reason.strip()[:500]
    if not approve and not reason:
        raise ApprovalError("say why the number is rejected")
    status, allowed_from = (
        ("approved", ["pending", "rejected"]) if approve else ("rejected", ["pending", "approved"])
    )
    query = {"_id": caller_id, "tenant_id": tenant_id, "status": {"$in": allowed_from}}
    update = {"$set": {"status": status, "reason": reason, "reviewed_by": by, "reviewed_at": utcnow()}}
    done = await update_then_read(ctx.db.caller_ids, query, update)
    if done is not None:
        return done
    current = await ctx.db.caller_ids.find_one({"_id": caller_id, "tenant_id": tenant_id})
    if current is None:
        return None
    raise ApprovalConflict(f"the number is already {current['status']}")


async def list_caller_ids(
    ctx: AppContext, tenant_id: str | list[str], status: str | None = None
) -> list[Doc]:
    """One tenant's caller ids, or several tenants' (a reviewer's queue), by number."""
    query: Doc = {"tenant_id": tenant_id if isinstance(tenant_id, str) else {"$in": tenant_id}}
    if status:
        query["status"] = status
    return [doc async for doc in ctx.db.caller_ids.find(query).sort("number", 1).limit(1000)]


async def caller_id_document(
    ctx: AppContext, tenant_id: str, caller_id: str, file_id: str
) -> tuple[Doc, bytes] | None:
    """One document of one of the tenant's caller ids: its file record and bytes."""
    oid = _oid(file_id)
    if oid is None:
        return None
    files = ctx.db.db[f"{DOCUMENTS_BUCKET}.files"]
    meta = await files.find_one(
        {"_id": oid, "metadata.tenant_id": tenant_id, "metadata.caller_id": caller_id}
    )
    if meta is None:
        return None
    stream = await AsyncGridFSBucket(ctx.db.db, bucket_name=DOCUMENTS_BUCKET).open_download_stream(oid)
    return meta, await stream.read()


async def approved_caller_id(ctx: AppContext, tenant_id: str, number: str) -> bool:
    """May the tenant present `number` as its caller id on outbound calls now?"""
    try:
        e164 = normalise_number(number, None)
    except DncError:
        return False
    found = await ctx.db.caller_ids.find_one(
        {"tenant_id": tenant_id, "number": e164, "status": "approved"}, {"_id": 1}
    )
    return found is not None


def prompt_approval(file: Doc) -> dict[str, Any]:
    """A prompt's outbound approval as the API shows it (pending until reviewed)."""
    approval = (file.get("metadata") or {}).get("approval") or {}
    return {
        "status": approval.get("status") or "pending",
        "reason": approval.get("reason") or "",
        "reviewed_by": approval.get("reviewed_by"),
        "reviewed_at": iso(approval.get("reviewed_at")),
    }


async def review_prompt(
    ctx: AppContext, tenant_id: str, prompt_id: str, *, approve: bool, reason: str = "", by: str | None = None
) -> Doc | None:
    """Approve or reject an uploaded prompt for outbound use; None if not the tenant's."""
    reason = reason.strip()[:500]
    if not approve and not reason:
        raise ApprovalError("say why the prompt is rejected")
    oid = _oid(prompt_id)
    if oid is None:
        return None
    approval = {
        "status": "approved" if approve else "rejected",
        "reason": reason,
        "reviewed_by": by,
        "reviewed_at": utcnow(),
    }
    return await update_then_read(
        ctx.db.db[f"{PROMPTS_BUCKET}.files"],
        {"_id": oid, "metadata.tenant_id": tenant_id},
        {"$set": {"metadata.approval": approval}},
    )


async def approved_prompt(ctx: AppContext, tenant_id: str, prompt_id: str) -> bool:
    """May the tenant play this uploaded prompt on outbound calls (broadcast, AMD message)?"""
    oid = _oid(prompt_id)
    if oid is None:
        return False
    found = await ctx.db.db[f"{PROMPTS_BUCKET}.files"].find_one(
        {"_id": oid, "metadata.tenant_id": tenant_id, "metadata.approval.status": "approved"}, {"_id": 1}
    )
    return found is not None
