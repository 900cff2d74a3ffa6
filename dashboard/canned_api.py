"""Canned responses: saved replies with `{{customer.name}}`-style placeholders, per tenant.

Supervisors and admins manage them; agents read them and fill them for a contact. Why our own
tiny filler rather than a template engine: only dotted names from a fixed set are allowed, so a
template cannot reach anything else, and an unknown placeholder is left as written.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from hub.auth import Principal, require_roles
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from knowledge.customers import get_customer

router = APIRouter(prefix="/api/canned-responses")
READ = require_roles("agent", "supervisor", "admin")
MANAGE = require_roles("supervisor", "admin")
PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+(?:\.[a-z_]+)?)\s*\}\}")


class CannedRequest(BaseModel):
    title: str = Field(min_length=1, max_length=120)
    body: str = Field(min_length=1, max_length=10_000)
    channels: list[str] = Field(default_factory=list)  # empty: every channel


def fill(template: str, values: dict[str, str]) -> str:
    """Replace known `{{name}}` placeholders; unknown ones stay as written."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def public(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "title": doc["title"],
        "body": doc["body"],
        "channels": doc.get("channels", []),
        "updated_at": iso(doc.get("updated_at")),
    }


@router.get("")
async def list_canned(
    channel: str | None = None, principal: Principal = READ, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    query: Doc = {"tenant_id": principal.tenant_id}
    if channel:
        query["$or"] = [{"channels": channel}, {"channels": []}]
    return [public(d) async for d in ctx.db.canned_responses.find(query).sort("title", 1)]


@router.post("")
async def create_canned(
    body: CannedRequest, principal: Principal = MANAGE, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    now = utcnow()
    doc: Doc = {
        "_id": new_id(),
        "tenant_id": principal.tenant_id,
        "title": body.title.strip(),
        "body": body.body,
        "channels": body.channels,
        "created_by": principal.user_id,
        "created_at": now,
        "updated_at": now,
    }
    await ctx.db.canned_responses.insert_one(doc)
    return public(doc)


@router.delete("/{canned_id}")
async def delete_canned(
    canned_id: str, principal: Principal = MANAGE, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    result = await ctx.db.canned_responses.delete_one({"_id": canned_id, "tenant_id": principal.tenant_id})
    if result.deleted_count == 0:
        raise HTTPException(404, "no such canned response")
    return {"status": "deleted"}


@router.get("/{canned_id}/render")
async def render_canned(
    canned_id: str, contact_id: str, principal: Principal = READ, ctx: AppContext = Depends(get_ctx)
) -> dict[str, str]:
    """The response filled for one contact's customer and the calling agent."""
    doc = await ctx.db.canned_responses.find_one({"_id": canned_id, "tenant_id": principal.tenant_id})
    contact = await ctx.db.contacts.find_one({"_id": contact_id, "tenant_id": principal.tenant_id})
    if doc is None or contact is None:
        raise HTTPException(404, "not found")
    customer = (
        await get_customer(ctx, contact["customer_id"], principal.tenant_id)
        if contact.get("customer_id")
        else None
    ) or {}
    values = {
        "customer.name": customer.get("name") or "customer",
        "customer.email": (customer.get("emails") or [""])[0],
        "customer.phone": (customer.get("phones") or [""])[0],
        "agent.name": principal.name,
        "tenant.name": principal.tenant_name,
    }
    return {"text": fill(doc["body"], values)}
