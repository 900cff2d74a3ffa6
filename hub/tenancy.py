"""Tenants (three levels: operator, reseller, customer) and staff accounts.

A tenant's `path` lists its ancestors' ids, top first, so "everything below me"
is one indexed query (`{"path": my_id}`) and a disabled ancestor disables its
whole subtree (hub.auth.tenant_enabled).
"""

from __future__ import annotations

import re

from pymongo.errors import DuplicateKeyError

from hub.auth import ROLES, hash_password
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow
from hub.permissions import CHILD_LEVELS, LEVELS

DEFAULT_DISPOSITIONS = [
    {"code": "resolved", "label": "Resolved"},
    {"code": "follow_up", "label": "Needs follow-up"},
    {"code": "escalated", "label": "Escalated"},
    {"code": "no_response", "label": "Customer stopped responding"},
    {"code": "spam", "label": "Spam / abuse"},
]
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,40}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class TenancyError(ValueError):
    """Invalid tenant or user data; the message is shown to the operator."""


async def create_tenant(
    ctx: AppContext, slug: str, name: str, *, level: str = "customer", parent: Doc | None = None
) -> Doc:
    """A tenant; with `parent`, one level below it (checked against CHILD_LEVELS)."""
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        raise TenancyError("tenant slug must be 2-41 characters of a-z, 0-9 and '-'")
    if level not in LEVELS:
        raise TenancyError(f"level must be one of {', '.join(LEVELS)}")
    path: list[str] = []
    if parent is not None:
        parent_level = parent.get("level") or "customer"
        if level not in CHILD_LEVELS[parent_level]:
            raise TenancyError(f"a {parent_level} cannot create a {level}")
        path = [*(parent.get("path") or []), parent["_id"]]
    tenant: Doc = {
        "_id": new_id(),
        "slug": slug,
        "name": name.strip() or slug,
        "level": level,
        "parent_id": parent["_id"] if parent is not None else None,
        "path": path,
        "active": True,
        "dispositions": DEFAULT_DISPOSITIONS,
        "created_at": utcnow(),
    }
    try:
        await ctx.db.tenants.insert_one(tenant)
    except DuplicateKeyError as exc:
        raise TenancyError(f"tenant {slug!r} already exists") from exc
    return tenant


async def get_tenant_by_slug(ctx: AppContext, slug: str) -> Doc | None:
    return await ctx.db.tenants.find_one({"slug": slug.strip().lower()})


async def create_user(
    ctx: AppContext,
    tenant_id: str,
    email: str,
    name: str,
    password: str,
    roles: list[str],
    skills: list[str] | None = None,
    *,
    update: bool = False,
) -> Doc:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise TenancyError(f"invalid email address: {email!r}")
    custom = [doc["name"] async for doc in ctx.db.roles.find({"tenant_id": tenant_id}, {"name": 1})]
    known = sorted(set(ROLES) | set(custom))
    unknown = set(roles) - set(known)
    if not roles or unknown:
        raise TenancyError(f"roles must be some of {', '.join(known)}")
    if len(password) < 8:
        raise TenancyError("password must have at least 8 characters")
    fields: Doc = {
        "name": name.strip() or email,
        "roles": roles,
        "skills": sorted(set(skills or [])),
        "password_hash": hash_password(password),
        "active": True,
    }
    existing = await ctx.db.users.find_one({"tenant_id": tenant_id, "email": email})
    if existing is not None:
        if not update:
            raise TenancyError(f"user {email} already exists")
        await ctx.db.users.update_one({"_id": existing["_id"]}, {"$set": fields})
        return {**existing, **fields}
    user: Doc = {"_id": new_id(), "tenant_id": tenant_id, "email": email, "created_at": utcnow(), **fields}
    await ctx.db.users.insert_one(user)
    return user
