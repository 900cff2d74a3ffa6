"""Administering the tenant tree and a tenant's staff: the rules behind /api/admin.

A caller acts on tenants strictly below its own (`Principal.manages`): it lists them,
creates a child with its first admin, enables or disables one (a disabled tenant's whole
subtree is refused at sign-in and on every request: hub.auth.tenant_enabled), and
resets a child tenant's admin password. Inside its own tenant it manages users.

Every change that must end sessions at once bumps the user's `token_version`: tokens
carry it as `tv`, and hub.auth refuses an older one. Password hashes never leave this
module (`public_user`).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from pymongo.errors import DuplicateKeyError

from hub.auth import Principal, hash_password, verify_password
from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, utcnow
from hub.permissions import BUILTIN_ROLES, CHILD_LEVELS, LEVELS
from hub.tenancy import TenancyError, create_tenant, create_user

MIN_PASSWORD = 8
# the same shape hub.tenancy.create_user accepts: checked before a tenant is created for it
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_PASSWORD = 512


class AdminError(ValueError):
    """A refused administrative change; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def public_tenant(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "slug": doc["slug"],
        "name": doc["name"],
        "level": doc.get("level") or "customer",
        "parent_id": doc.get("parent_id"),
        "path": list(doc.get("path") or []),
        "active": doc.get("active", True) is not False,
        "branding": {
            "name": (doc.get("branding") or {}).get("name"),
            "has_logo": bool((doc.get("branding") or {}).get("logo_file_id")),
        },
        "created_at": iso(doc.get("created_at")),
    }


def public_user(doc: Doc) -> dict[str, Any]:
    """A user as the admin pages see it: never the password hash."""
    return {
        "id": doc["_id"],
        "tenant_id": doc["tenant_id"],
        "email": doc["email"],
        "name": doc.get("name") or doc["email"],
        "roles": list(doc.get("roles") or []),
        "skills": list(doc.get("skills") or []),
        "active": doc.get("active", True) is not False,
        "must_change_password": bool(doc.get("must_change_password")),
        "created_at": iso(doc.get("created_at")),
    }


def generate_password() -> str:
    """A random password shown once to the admin who asked for it (about 96 bits)."""
    return secrets.token_urlsafe(12)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AdminError(422, f"password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AdminError(422, f"password must have at most {MAX_PASSWORD} characters")


# ------------------------------------------------------------------ tenants


async def tenants_below(ctx: AppContext, principal: Principal, limit: int = 1000) -> list[Doc]:
    """Every tenant below the caller's, top of the tree first."""
    cursor = ctx.db.tenants.find({"path": principal.tenant_id}).sort("created_at", 1).limit(limit)
    docs: list[Doc] = await cursor.to_list(None)
    docs.sort(key=lambda d: (len(d.get("path") or []), d.get("slug", "")))
    return docs


async def managed_tenant(ctx: AppContext, principal: Principal, tenant_id: str) -> Doc:
    """A tenant below the caller's; anything else (another tree, an ancestor, itself) is 404."""
    doc = await ctx.db.tenants.find_one({"_id": tenant_id, "path": principal.tenant_id})
    if doc is None or not principal.manages(doc):
        raise AdminError(404, "no such tenant")
    return doc


async def create_child_tenant(
    ctx: AppContext,
    principal: Principal,
    *,
    slug: str,
    name: str,
    level: str,
    admin_email: str,
    admin_name: str,
    admin_password: str | None,
    parent_id: str | None = None,
) -> tuple[Doc, Doc, str | None]:
    """A tenant below the caller's own (or below `parent_id`, a tenant the caller manages)
    with its first admin; returns the tenant, the admin and the generated password (None
    when the caller typed one)."""
    if parent_id and parent_id != principal.tenant_id:
        parent = await managed_tenant(ctx, principal, parent_id)
    else:
        found = await ctx.db.tenants.find_one({"_id": principal.tenant_id})
        if found is None:
            raise AdminError(404, "no such tenant")
        parent = found
    if level not in LEVELS:
        raise AdminError(422, f"level must be one of {', '.join(LEVELS)}")
    parent_level = parent.get("level") or "customer"
    if level not in CHILD_LEVELS[parent_level]:
        allowed = ", ".join(CHILD_LEVELS[parent_level]) or "nothing"
        raise AdminError(422, f"a {parent_level} tenant can create {allowed}, not a {level}")
    email = admin_email.strip().lower()
    if not _EMAIL.match(email):
        raise AdminError(422, f"invalid email address: {admin_email!r}")
    generated = None
    if admin_password is None or admin_password == "":
        generated = admin_password = generate_password()
    check_password(admin_password)
    try:
        tenant = await create_tenant(ctx, slug, name, level=level, parent=parent)
    except TenancyError as exc:
        raise AdminError(409 if "already exists" in str(exc) else 422, str(exc)) from exc
    try:
        admin = await create_user(ctx, tenant["_id"], email, admin_name, admin_password, ["admin"])
    except TenancyError as exc:  # validated above; undo the tenant rather than leave it adminless
        await ctx.db.tenants.delete_one({"_id": tenant["_id"]})
        raise AdminError(422, str(exc)) from exc
    if generated is not None:
        await ctx.db.users.update_one({"_id": admin["_id"]}, {"$set": {"must_change_password": True}})
        admin["must_change_password"] = True
    return tenant, admin, generated


async def set_tenant_active(ctx: AppContext, tenant: Doc, active: bool) -> Doc:
    """Enable or disable a tenant. Disabling needs no session sweep: hub.auth checks the
    tenant and its ancestors on every request, so its subtree's tokens fail at once."""
    await ctx.db.tenants.update_one(
        {"_id": tenant["_id"]}, {"$set": {"active": active, "updated_at": utcnow()}}
    )
    return {**tenant, "active": active}


async def tenant_admins(ctx: AppContext, tenant_id: str) -> list[Doc]:
    cursor = ctx.db.users.find({"tenant_id": tenant_id, "roles": "admin"}).sort("email", 1)
    docs: list[Doc] = await cursor.to_list(200)
    return docs


# ------------------------------------------------------------------ users


async def tenant_user(ctx: AppContext, tenant_id: str, user_id: str) -> Doc:
    user = await ctx.db.users.find_one({"_id": user_id, "tenant_id": tenant_id})
    if user is None:
        raise AdminError(404, "no such user")
    return user


async def list_users(ctx: AppContext, tenant_id: str) -> list[Doc]:
    docs: list[Doc] = await ctx.db.users.find({"tenant_id": tenant_id}).sort("email", 1).to_list(5000)
    return docs


async def add_user(
    ctx: AppContext,
    tenant_id: str,
    *,
    email: str,
    name: str,
    roles: list[str],
    skills: list[str],
    password: str | None,
) -> tuple[Doc, str | None]:
    """A new user; without a password one is generated (returned once) and must be changed."""
    generated = None
    if not password:
        generated = password = generate_password()
    check_password(password)
    try:
        user = await create_user(ctx, tenant_id, email, name, password, roles, skills)
    except TenancyError as exc:
        raise AdminError(409 if "already exists" in str(exc) else 422, str(exc)) from exc
    except DuplicateKeyError as exc:
        raise AdminError(409, f"user {email} already exists") from exc
    if generated is not None:
        await ctx.db.users.update_one({"_id": user["_id"]}, {"$set": {"must_change_password": True}})
        user["must_change_password"] = True
    return user, generated


async def known_roles(ctx: AppContext, tenant_id: str) -> set[str]:
    custom = {doc["name"] async for doc in ctx.db.roles.find({"tenant_id": tenant_id}, {"name": 1})}
    return set(BUILTIN_ROLES) | custom


async def _other_active_admins(ctx: AppContext, user: Doc) -> int:
    return await ctx.db.users.count_documents(
        {"tenant_id": user["tenant_id"], "roles": "admin", "active": True, "_id": {"$ne": user["_id"]}}
    )


async def update_user(
    ctx: AppContext,
    user: Doc,
    *,
    name: str | None = None,
    roles: list[str] | None = None,
    skills: list[str] | None = None,
) -> Doc:
    fields: Doc = {}
    if name is not None:
        fields["name"] = name.strip() or user["email"]
    if roles is not None:
        roles = sorted(set(roles))
        unknown = set(roles) - await known_roles(ctx, user["tenant_id"])
        if not roles or unknown:
            raise AdminError(
                422, f"unknown roles: {', '.join(sorted(unknown))}" if unknown else "give at least one role"
            )
        if (
            "admin" in user.get("roles", [])
            and "admin" not in roles
            and not await _other_active_admins(ctx, user)
        ):
            raise AdminError(409, "this is the tenant's last admin: make someone else admin first")
        fields["roles"] = roles
    if skills is not None:  # `skill_levels` (routing_api) stays in step: kept levels, 5 for new ones
        fields["skills"] = sorted({s.strip() for s in skills if s.strip()})
        levels = user.get("skill_levels") or {}
        fields["skill_levels"] = {s: int(levels.get(s, 5)) for s in fields["skills"]}
    if not fields:
        return user
    fields["updated_at"] = utcnow()
    await ctx.db.users.update_one({"_id": user["_id"]}, {"$set": fields})
    if skills is not None or roles is not None:  # the live router reads skills from the agent document
        if await ctx.db.agents.find_one({"_id": user["_id"]}, {"_id": 1}) is not None:
            from routing.presence import ensure_agent

            await ensure_agent(ctx, {**user, **fields})
    return {**user, **fields}


async def set_user_active(ctx: AppContext, user: Doc, active: bool) -> Doc:
    """Disabling bumps `token_version`, so the user's open sessions end on their next request."""
    if not active and "admin" in user.get("roles", []) and not await _other_active_admins(ctx, user):
        raise AdminError(409, "this is the tenant's last admin: it cannot be disabled")
    update: Doc = {"$set": {"active": active, "updated_at": utcnow()}}
    if not active:
        update["$inc"] = {"token_version": 1}
    await ctx.db.users.update_one({"_id": user["_id"]}, update)
    fresh = await ctx.db.users.find_one({"_id": user["_id"]})
    return fresh or {**user, "active": active}


async def reset_password(ctx: AppContext, user: Doc, password: str | None) -> str | None:
    """An admin's reset: the typed password or a generated one (returned once); older
    sessions end and the user must pick a new password after signing in."""
    generated = None
    if not password:
        generated = password = generate_password()
    check_password(password)
    await ctx.db.users.update_one(
        {"_id": user["_id"]},
        {
            "$set": {
                "password_hash": hash_password(password),
                "must_change_password": True,
                "updated_at": utcnow(),
            },
            "$inc": {"token_version": 1},
        },
    )
    return generated


async def change_own_password(ctx: AppContext, user_id: str, current: str, new: str, repeat: str) -> Doc:
    """The user's own change: the current password proves it is them (a stolen session
    alone cannot lock the owner out). Other sessions end; the caller gets a fresh token."""
    user = await ctx.db.users.find_one({"_id": user_id, "active": True})
    if user is None:
        raise AdminError(404, "no such user")
    if not verify_password(user["password_hash"], current):
        raise AdminError(403, "the current password is wrong")
    if new != repeat:
        raise AdminError(422, "the new password and its repetition differ")
    check_password(new)
    if new == current:
        raise AdminError(422, "the new password must differ from the current one")
    await ctx.db.users.update_one(
        {"_id": user_id},
        {
            "$set": {
                "password_hash": hash_password(new),
                "must_change_password": False,
                "updated_at": utcnow(),
            },
            "$inc": {"token_version": 1},
        },
    )
    fresh = await ctx.db.users.find_one({"_id": user_id})
    assert fresh is not None
    return fresh
