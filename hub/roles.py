"""A tenant's roles: the built-in ones with their current permissions, and its own.

Rows in `roles` (`{tenant_id, name, label, permissions, builtin, updated_at}`) are read
by hub.auth on every request, so an edit takes effect on the callers' next request.
A built-in role without a row grants its default set (hub.permissions.BUILTIN_ROLES);
editing it stores a row that wins over the default, and deleting that row restores the
default. admin is locked (every permission, always) so no tenant can lock itself out.
"""

from __future__ import annotations

import re
from typing import Any

from pymongo.errors import DuplicateKeyError

from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow
from hub.permissions import BUILTIN_ROLES, LOCKED_ROLES, PERMISSIONS, unknown_permissions
from hub.tenant_admin import AdminError

_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")
LOCKED_MESSAGE = "the admin role always holds every permission and cannot be edited"


def _role_view(name: str, stored: Doc | None, users: int) -> dict[str, Any]:
    builtin = name in BUILTIN_ROLES
    if name in LOCKED_ROLES or stored is None:
        permissions = sorted(BUILTIN_ROLES.get(name, frozenset()))
    else:
        permissions = sorted(set(stored.get("permissions", [])) & set(PERMISSIONS))
    return {
        "name": name,
        "label": (stored or {}).get("label") or name.replace("_", " ").title(),
        "permissions": permissions,
        "builtin": builtin,
        "locked": name in LOCKED_ROLES,
        "edited": builtin and stored is not None and name not in LOCKED_ROLES,
        "users": users,
        "updated_at": iso((stored or {}).get("updated_at")),
    }


async def _user_counts(ctx: AppContext, tenant_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    async for user in ctx.db.users.find({"tenant_id": tenant_id}, {"roles": 1}):
        for name in user.get("roles") or []:
            counts[name] = counts.get(name, 0) + 1
    return counts


async def list_roles(ctx: AppContext, tenant_id: str) -> list[dict[str, Any]]:
    """Built-in roles first (in catalogue order), then the tenant's own by name."""
    stored = {doc["name"]: doc async for doc in ctx.db.roles.find({"tenant_id": tenant_id})}
    counts = await _user_counts(ctx, tenant_id)
    views = [_role_view(name, stored.get(name), counts.get(name, 0)) for name in BUILTIN_ROLES]
    views += [
        _role_view(name, doc, counts.get(name, 0))
        for name, doc in sorted(stored.items())
        if name not in BUILTIN_ROLES
    ]
    return views


async def get_role(ctx: AppContext, tenant_id: str, name: str) -> dict[str, Any]:
    stored = await ctx.db.roles.find_one({"tenant_id": tenant_id, "name": name})
    if stored is None and name not in BUILTIN_ROLES:
        raise AdminError(404, "no such role")
    counts = await _user_counts(ctx, tenant_id)
    return _role_view(name, stored, counts.get(name, 0))


def _checked_permissions(permissions: list[str]) -> list[str]:
    unknown = unknown_permissions(permissions)
    if unknown:
        raise AdminError(422, f"unknown permissions: {', '.join(unknown)}")
    return sorted(set(permissions))


async def create_role(
    ctx: AppContext, tenant_id: str, name: str, label: str, permissions: list[str]
) -> dict[str, Any]:
    name = name.strip().lower()
    if not _NAME.match(name):
        raise AdminError(
            422, "role name must be 2-40 characters of a-z, 0-9, '_' and '-', starting with a letter"
        )
    if name in BUILTIN_ROLES:
        raise AdminError(409, f"{name} is a built-in role: edit it instead")
    doc: Doc = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "name": name,
        "label": label.strip() or name,
        "permissions": _checked_permissions(permissions),
        "builtin": False,
        "updated_at": utcnow(),
    }
    try:
        await ctx.db.roles.insert_one(doc)
    except DuplicateKeyError as exc:
        raise AdminError(409, f"role {name} already exists") from exc
    return _role_view(name, doc, 0)


async def update_role(
    ctx: AppContext, tenant_id: str, name: str, *, label: str | None, permissions: list[str] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Edit a role's label or permissions; returns (before, after)."""
    if name in LOCKED_ROLES:
        raise AdminError(409, LOCKED_MESSAGE)
    before = await get_role(ctx, tenant_id, name)
    fields: Doc = {"updated_at": utcnow()}
    if label is not None:
        fields["label"] = label.strip() or name
    fields["permissions"] = (
        _checked_permissions(permissions) if permissions is not None else before["permissions"]
    )
    await ctx.db.roles.update_one(
        {"tenant_id": tenant_id, "name": name},
        {"$set": fields, "$setOnInsert": {"_id": new_id(), "builtin": name in BUILTIN_ROLES}},
        upsert=True,
    )
    return before, await get_role(ctx, tenant_id, name)


async def delete_role(ctx: AppContext, tenant_id: str, name: str) -> dict[str, Any]:
    """Delete a custom role nobody holds; for a built-in role, drop the edit (back to default)."""
    if name in LOCKED_ROLES:
        raise AdminError(409, LOCKED_MESSAGE)
    before = await get_role(ctx, tenant_id, name)
    if name not in BUILTIN_ROLES:
        holders = await ctx.db.users.count_documents({"tenant_id": tenant_id, "roles": name})
        if holders:
            raise AdminError(409, f"{holders} user(s) still hold the role {name}: change their roles first")
    await ctx.db.roles.delete_one({"tenant_id": tenant_id, "name": name})
    return before


async def role_permissions(ctx: AppContext, tenant_id: str, names: list[str]) -> set[str]:
    """What holding `names` in this tenant would grant (to check a caller may hand it out)."""
    stored = {doc["name"]: doc async for doc in ctx.db.roles.find({"tenant_id": tenant_id})}
    unknown = sorted(set(names) - set(BUILTIN_ROLES) - set(stored))
    if unknown:
        raise AdminError(422, f"unknown roles: {', '.join(unknown)}")
    granted: set[str] = set()
    for name in names:
        granted |= set(_role_view(name, stored.get(name), 0)["permissions"])
    return granted
