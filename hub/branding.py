"""Branding: the name and logo a tenant's staff see, inherited down the tenant tree.

A tenant's `branding` is `{name, logo_file_id}`; its effective branding is its own when
it set any, else the nearest ancestor's (a reseller white-labels the platform for its
customers), else none (the product name). Logos are PNG, JPEG or WebP of at most 512 KB
in the GridFS bucket `branding`, recognised by their magic bytes, never by the file name
or the declared type; SVG is refused because it can carry script.
"""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs.asynchronous import AsyncGridFSBucket
from gridfs.errors import NoFile

from hub.context import AppContext
from hub.db import Doc
from hub.ids import utcnow
from hub.tenant_admin import AdminError

BUCKET = "branding"
MAX_LOGO_BYTES = 512 * 1024
MAX_NAME = 80
NOT_AN_IMAGE = "the logo must be a PNG, JPEG or WebP image (SVG is not accepted: it can carry script)"
TOO_LARGE = "the logo is larger than 512 KB"


def sniff_image(data: bytes) -> str | None:
    """The image type from the first bytes, or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _bucket(ctx: AppContext) -> AsyncGridFSBucket:
    return AsyncGridFSBucket(ctx.db.db, bucket_name=BUCKET)


def _own(tenant: Doc) -> dict[str, Any]:
    branding = tenant.get("branding") or {}
    return {"name": branding.get("name") or None, "logo_file_id": branding.get("logo_file_id") or None}


async def effective_branding(ctx: AppContext, tenant: Doc) -> dict[str, Any]:
    """`{name, logo_file_id, from_tenant_id, inherited}`: the tenant's own branding or the
    nearest ancestor's (taken whole, so a logo never pairs with another tenant's name)."""
    own = _own(tenant)
    if own["name"] or own["logo_file_id"]:
        return {**own, "from_tenant_id": tenant["_id"], "inherited": False}
    path = list(tenant.get("path") or [])
    if path:
        ancestors = {
            doc["_id"]: doc async for doc in ctx.db.tenants.find({"_id": {"$in": path}}, {"branding": 1})
        }
        for ancestor_id in reversed(path):
            found = _own(ancestors.get(ancestor_id) or {})
            if found["name"] or found["logo_file_id"]:
                return {**found, "from_tenant_id": ancestor_id, "inherited": True}
    return {"name": None, "logo_file_id": None, "from_tenant_id": None, "inherited": False}


def public_branding(slug: str, effective: dict[str, Any]) -> dict[str, Any]:
    """What pages show: the name and a logo URL that changes when the logo does (cache-safe)."""
    logo = effective.get("logo_file_id")
    return {
        "name": effective.get("name"),
        "logo_url": f"/branding/{slug}/logo?v={logo}" if logo else None,
        "inherited": bool(effective.get("inherited")),
    }


async def set_name(ctx: AppContext, tenant_id: str, name: str | None) -> None:
    value = (name or "").strip()[:MAX_NAME] or None
    await ctx.db.tenants.update_one(
        {"_id": tenant_id}, {"$set": {"branding.name": value, "branding.updated_at": utcnow()}}
    )


async def store_logo(ctx: AppContext, tenant: Doc, data: bytes, filename: str, by: str) -> str:
    """Store a checked logo and point the tenant at it; the previous one is deleted."""
    if len(data) > MAX_LOGO_BYTES:
        raise AdminError(413, TOO_LARGE)
    content_type = sniff_image(data)
    if content_type is None:
        raise AdminError(415, NOT_AN_IMAGE)
    oid = await _bucket(ctx).upload_from_stream(
        filename[:120] or "logo",
        data,
        metadata={"tenant_id": tenant["_id"], "content_type": content_type, "uploaded_by": by},
    )
    previous = _own(tenant)["logo_file_id"]
    await ctx.db.tenants.update_one(
        {"_id": tenant["_id"]}, {"$set": {"branding.logo_file_id": str(oid), "branding.updated_at": utcnow()}}
    )
    if previous:
        await _delete_file(ctx, previous)
    return str(oid)


async def remove_logo(ctx: AppContext, tenant: Doc) -> None:
    previous = _own(tenant)["logo_file_id"]
    await ctx.db.tenants.update_one(
        {"_id": tenant["_id"]}, {"$set": {"branding.logo_file_id": None, "branding.updated_at": utcnow()}}
    )
    if previous:
        await _delete_file(ctx, previous)


async def _delete_file(ctx: AppContext, file_id: str) -> None:
    try:
        await _bucket(ctx).delete(ObjectId(file_id))
    except (InvalidId, NoFile):
        pass


async def read_logo(ctx: AppContext, file_id: str) -> tuple[bytes, str] | None:
    """The logo's bytes and type, or None when it is gone."""
    try:
        oid = ObjectId(file_id)
    except (InvalidId, TypeError):
        return None
    file = await ctx.db.db[f"{BUCKET}.files"].find_one({"_id": oid})
    if file is None:
        return None
    try:
        stream = await _bucket(ctx).open_download_stream(oid)
        data = await stream.read()
    except NoFile:
        return None
    content_type = (file.get("metadata") or {}).get("content_type") or sniff_image(data)
    return data, content_type or "application/octet-stream"
