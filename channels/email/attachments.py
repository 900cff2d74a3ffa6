"""Attachments in GridFS (bucket `attachments`), tagged with their tenant, within size limits.

Why limits: one mail must not fill the database; an attachment over the limit is not stored,
the mail is kept without it, and the sender gets a bounce that says why.
"""

from __future__ import annotations

from dataclasses import dataclass

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile

from channels.email.parse import Attachment
from hub.context import AppContext
from hub.db import Doc

BUCKET = "attachments"
MAX_EACH_BYTES = 10 * 1024 * 1024
MAX_TOTAL_BYTES = 25 * 1024 * 1024


@dataclass
class Refused:
    filename: str
    size: int
    reason: str


def bucket(ctx: AppContext) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(ctx.db.db, bucket_name=BUCKET)


def within_limits(attachments: list[Attachment]) -> tuple[list[Attachment], list[Refused]]:
    """Split into kept and refused: each at most 10 MB, together at most 25 MB (in mail order)."""
    kept: list[Attachment] = []
    refused: list[Refused] = []
    total = 0
    for item in attachments:
        size = len(item.data)
        if size > MAX_EACH_BYTES:
            refused.append(Refused(item.filename, size, "larger than 10 MB"))
        elif total + size > MAX_TOTAL_BYTES:
            refused.append(Refused(item.filename, size, "over the 25 MB total per mail"))
        else:
            kept.append(item)
            total += size
    return kept, refused


async def store(ctx: AppContext, tenant_id: str, contact_id: str, item: Attachment) -> Doc:
    file_id = await bucket(ctx).upload_from_stream(
        item.filename,
        item.data,
        metadata={"tenant_id": tenant_id, "contact_id": contact_id, "content_type": item.content_type},
    )
    return {
        "id": str(file_id),
        "filename": item.filename,
        "content_type": item.content_type,
        "size": len(item.data),
    }


async def load(ctx: AppContext, tenant_id: str, file_id: str) -> tuple[Doc, bytes] | None:
    """The file's metadata and bytes if it belongs to the tenant; None otherwise."""
    try:
        oid = ObjectId(file_id)
    except InvalidId:
        return None
    info = await ctx.db.db[f"{BUCKET}.files"].find_one({"_id": oid, "metadata.tenant_id": tenant_id})
    if info is None:
        return None
    try:
        stream = await bucket(ctx).open_download_stream(oid)
        data = await stream.read()
    except NoFile:
        return None
    return info, data
