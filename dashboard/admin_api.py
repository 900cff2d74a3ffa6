"""Administration API: tenants below the caller, the caller's users and roles, branding,
and a user's own password (rules in hub/tenant_admin.py, hub/roles.py, hub/branding.py).

Each route checks a permission (hub/permissions.py); a tenant outside the caller's
subtree is a 404, never a 403, so another tree's tenants stay invisible. Nobody hands out
more than they hold: the roles and permissions a caller grants, and the users it
changes, must fit inside the caller's own permissions. Every change is written to the
audit log (hub.audit.record), never with a password.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from hub import audit, branding, roles, tenant_admin
from hub.auth import (
    SESSION_COOKIE,
    Principal,
    require_permission,
    session_token,
    signed_in_user,
)
from hub.context import AppContext, get_ctx
from hub.db import Doc
from hub.permissions import CHILD_LEVELS, LEVELS, PERMISSIONS, unknown_permissions
from hub.tenant_admin import AdminError, public_tenant, public_user

router = APIRouter(prefix="/api")
TENANTS = require_permission("tenants.manage")
USERS = require_permission("users.manage")
ROLES = require_permission("roles.manage")
BRANDING = require_permission("branding.manage")
ROLE_READERS = require_permission("roles.manage", "users.manage")
# Multipart framing around the logo (boundaries, part headers).
_MULTIPART_SLACK = 16 * 1024


def _http(exc: AdminError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


# ------------------------------------------------------------------ request bodies


class TenantCreate(BaseModel):
    slug: str = Field(min_length=2, max_length=41, description="login name: a-z, 0-9 and '-'")
    name: str = Field(min_length=1, max_length=120)
    level: str = Field(pattern=f"^({'|'.join(LEVELS)})$")
    parent_id: str | None = Field(
        default=None, max_length=64, description="a tenant below yours (default: yours)"
    )
    admin_email: str = Field(min_length=3, max_length=254)
    admin_name: str = Field(default="", max_length=120)
    admin_password: str | None = Field(default=None, max_length=512, description="empty: generate one")


class TenantPatch(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    active: bool | None = None


class PasswordReset(BaseModel):
    email: str | None = Field(default=None, max_length=254, description="which admin (default: the only one)")
    password: str | None = Field(default=None, max_length=512, description="empty: generate one")


class UserCreate(BaseModel):
    email: str = Field(min_length=3, max_length=254)
    name: str = Field(default="", max_length=120)
    roles: list[str] = Field(min_length=1, max_length=20)
    skills: list[str] = Field(default_factory=list, max_length=50)
    password: str | None = Field(default=None, max_length=512, description="empty: generate one")


class UserPatch(BaseModel):
    name: str | None = Field(default=None, max_length=120)
    roles: list[str] | None = Field(default=None, min_length=1, max_length=20)
    skills: list[str] | None = Field(default=None, max_length=50)
    active: bool | None = None


class UserPassword(BaseModel):
    password: str | None = Field(default=None, max_length=512, description="empty: generate one")


class RoleCreate(BaseModel):
    name: str = Field(min_length=2, max_length=40)
    label: str = Field(default="", max_length=80)
    permissions: list[str] = Field(default_factory=list, max_length=len(PERMISSIONS))


class RolePatch(BaseModel):
    label: str | None = Field(default=None, max_length=80)
    permissions: list[str] | None = Field(default=None, max_length=len(PERMISSIONS))


class BrandingName(BaseModel):
    name: str | None = Field(default=None, max_length=branding.MAX_NAME)


class OwnPassword(BaseModel):
    current_password: str = Field(min_length=1, max_length=512)
    new_password: str = Field(min_length=1, max_length=512)
    new_password_repeat: str = Field(min_length=1, max_length=512)


# ------------------------------------------------------------------ guards


def _may_grant(principal: Principal, permissions: set[str]) -> None:
    unknown = unknown_permissions(permissions)
    if unknown:
        raise HTTPException(422, f"unknown permissions: {', '.join(unknown)}")
    missing = sorted(permissions - principal.permissions)
    if missing:
        raise HTTPException(403, f"you cannot grant permissions you do not hold: {', '.join(missing)}")


async def _may_touch_user(ctx: AppContext, principal: Principal, user: Doc) -> None:
    """A user who holds more than the caller (e.g. an admin, for a users-only manager) is off limits."""
    held = await roles.role_permissions(ctx, user["tenant_id"], list(user.get("roles") or []))
    if held - principal.permissions:
        raise HTTPException(403, "this user holds permissions you do not: ask an admin")


# ------------------------------------------------------------------ tenants below


@router.get("/admin/tenants")
async def list_tenants(principal: Principal = TENANTS, ctx: AppContext = Depends(get_ctx)) -> dict[str, Any]:
    """The caller's tenant and every tenant below it (any depth), with the levels it may create."""
    own = await ctx.db.tenants.find_one({"_id": principal.tenant_id})
    assert own is not None
    below = await tenant_admin.tenants_below(ctx, principal)
    return {
        "own": public_tenant(own),
        "tenants": [public_tenant(doc) for doc in below],
        "child_levels": {
            doc["_id"]: list(CHILD_LEVELS[doc.get("level") or "customer"]) for doc in [own, *below]
        },
    }


@router.post("/admin/tenants", status_code=201)
async def create_tenant(
    body: TenantCreate, request: Request, principal: Principal = TENANTS, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    try:
        tenant, admin, generated = await tenant_admin.create_child_tenant(
            ctx,
            principal,
            slug=body.slug,
            name=body.name,
            level=body.level,
            parent_id=body.parent_id,
            admin_email=body.admin_email,
            admin_name=body.admin_name,
            admin_password=body.admin_password,
        )
    except AdminError as exc:
        raise _http(exc) from exc
    await audit.record(
        ctx,
        principal,
        "tenant.create",
        {"kind": "tenant", "id": tenant["_id"], "slug": tenant["slug"]},
        {
            "level": tenant["level"],
            "name": tenant["name"],
            "parent_id": tenant["parent_id"],
            "admin": admin["email"],
        },
        tenant_id=tenant["_id"],
        ip=audit.client_ip(request),
    )
    return {"tenant": public_tenant(tenant), "admin": public_user(admin), "password": generated}


@router.get("/admin/tenants/{tenant_id}")
async def get_tenant(
    tenant_id: str, principal: Principal = TENANTS, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    try:
        tenant = await tenant_admin.managed_tenant(ctx, principal, tenant_id)
    except AdminError as exc:
        raise _http(exc) from exc
    admins = await tenant_admin.tenant_admins(ctx, tenant_id)
    effective = await branding.effective_branding(ctx, tenant)
    return {
        "tenant": public_tenant(tenant),
        "admins": [public_user(u) for u in admins],
        "branding": branding.public_branding(tenant["slug"], effective),
        "children": await ctx.db.tenants.count_documents({"parent_id": tenant_id}),
    }


@router.patch("/admin/tenants/{tenant_id}")
async def patch_tenant(
    tenant_id: str,
    body: TenantPatch,
    request: Request,
    principal: Principal = TENANTS,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Rename, enable or disable a tenant below yours; disabling signs out its whole subtree."""
    try:
        tenant = await tenant_admin.managed_tenant(ctx, principal, tenant_id)
    except AdminError as exc:
        raise _http(exc) from exc
    changes: dict[str, Any] = {}
    if body.name is not None and body.name.strip() != tenant["name"]:
        await ctx.db.tenants.update_one({"_id": tenant_id}, {"$set": {"name": body.name.strip()}})
        changes["name"] = {"from": tenant["name"], "to": body.name.strip()}
        tenant["name"] = body.name.strip()
    was_active = tenant.get("active", True) is not False
    if body.active is not None and body.active != was_active:
        tenant = await tenant_admin.set_tenant_active(ctx, tenant, body.active)
        changes["active"] = {"from": was_active, "to": body.active}
    if changes:
        action = "tenant.update"
        if set(changes) == {"active"}:
            action = "tenant.enable" if body.active else "tenant.disable"
        await audit.record(
            ctx,
            principal,
            action,
            {"kind": "tenant", "id": tenant_id, "slug": tenant["slug"]},
            changes,
            tenant_id=tenant_id,
            ip=audit.client_ip(request),
        )
    return public_tenant(tenant)


@router.post("/admin/tenants/{tenant_id}/admin-password")
async def reset_tenant_admin_password(
    tenant_id: str,
    body: PasswordReset,
    request: Request,
    principal: Principal = TENANTS,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Reset the password of a child tenant's admin (the locked-out customer's usual call)."""
    try:
        tenant = await tenant_admin.managed_tenant(ctx, principal, tenant_id)
    except AdminError as exc:
        raise _http(exc) from exc
    admins = await tenant_admin.tenant_admins(ctx, tenant_id)
    if body.email:
        admins = [u for u in admins if u["email"] == body.email.strip().lower()]
    if not admins:
        raise HTTPException(404, "no such admin in that tenant")
    if len(admins) > 1:
        raise HTTPException(422, "the tenant has several admins: say which one by email")
    user = admins[0]
    try:
        generated = await tenant_admin.reset_password(ctx, user, body.password)
    except AdminError as exc:
        raise _http(exc) from exc
    await audit.record(
        ctx,
        principal,
        "tenant.admin_password_reset",
        {"kind": "user", "id": user["_id"], "email": user["email"], "tenant_slug": tenant["slug"]},
        {"generated": generated is not None},
        tenant_id=tenant_id,
        ip=audit.client_ip(request),
    )
    return {"user": public_user({**user, "must_change_password": True}), "password": generated}


# ------------------------------------------------------------------ users of the caller's tenant


@router.get("/admin/users")
async def list_users(
    principal: Principal = USERS, ctx: AppContext = Depends(get_ctx)
) -> list[dict[str, Any]]:
    return [public_user(u) for u in await tenant_admin.list_users(ctx, principal.tenant_id)]


@router.post("/admin/users", status_code=201)
async def create_user(
    body: UserCreate, request: Request, principal: Principal = USERS, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    try:
        _may_grant(principal, await roles.role_permissions(ctx, principal.tenant_id, body.roles))
        user, generated = await tenant_admin.add_user(
            ctx,
            principal.tenant_id,
            email=body.email,
            name=body.name,
            roles=sorted(set(body.roles)),
            skills=body.skills,
            password=body.password,
        )
    except AdminError as exc:
        raise _http(exc) from exc
    await audit.record(
        ctx,
        principal,
        "user.create",
        {"kind": "user", "id": user["_id"], "email": user["email"]},
        {"roles": user["roles"], "skills": user["skills"], "name": user["name"]},
        ip=audit.client_ip(request),
    )
    return {"user": public_user(user), "password": generated}


@router.get("/admin/users/{user_id}")
async def get_user(
    user_id: str, principal: Principal = USERS, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    try:
        return public_user(await tenant_admin.tenant_user(ctx, principal.tenant_id, user_id))
    except AdminError as exc:
        raise _http(exc) from exc


@router.patch("/admin/users/{user_id}")
async def patch_user(
    user_id: str,
    body: UserPatch,
    request: Request,
    principal: Principal = USERS,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Name, roles, skills, enabled: disabling ends the user's sessions at once."""
    try:
        user = await tenant_admin.tenant_user(ctx, principal.tenant_id, user_id)
        await _may_touch_user(ctx, principal, user)
        if body.roles is not None:
            _may_grant(principal, await roles.role_permissions(ctx, principal.tenant_id, body.roles))
        if body.active is False and user_id == principal.user_id:
            raise AdminError(409, "you cannot disable your own account")
        before = public_user(user)
        updated = await tenant_admin.update_user(
            ctx, user, name=body.name, roles=body.roles, skills=body.skills
        )
        if body.active is not None and body.active != before["active"]:
            updated = await tenant_admin.set_user_active(ctx, updated, body.active)
    except AdminError as exc:
        raise _http(exc) from exc
    after = public_user(updated)
    changes = {
        key: {"from": before[key], "to": after[key]}
        for key in ("name", "roles", "skills", "active")
        if before[key] != after[key]
    }
    if changes:
        action = "user.update"
        if set(changes) == {"active"}:
            action = "user.enable" if after["active"] else "user.disable"
        await audit.record(
            ctx,
            principal,
            action,
            {"kind": "user", "id": user_id, "email": user["email"]},
            changes,
            ip=audit.client_ip(request),
        )
    return after


@router.post("/admin/users/{user_id}/password")
async def reset_user_password(
    user_id: str,
    body: UserPassword,
    request: Request,
    principal: Principal = USERS,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Set a password the admin typed or a generated one (shown once); old sessions end and
    the user must choose a new password after signing in."""
    try:
        user = await tenant_admin.tenant_user(ctx, principal.tenant_id, user_id)
        await _may_touch_user(ctx, principal, user)
        generated = await tenant_admin.reset_password(ctx, user, body.password)
    except AdminError as exc:
        raise _http(exc) from exc
    await audit.record(
        ctx,
        principal,
        "user.password_reset",
        {"kind": "user", "id": user_id, "email": user["email"]},
        {"generated": generated is not None},
        ip=audit.client_ip(request),
    )
    return {"user": public_user({**user, "must_change_password": True}), "password": generated}


# ------------------------------------------------------------------ roles


@router.get("/admin/roles")
async def list_roles(
    principal: Principal = ROLE_READERS, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """Built-in roles with their current permissions, the tenant's own roles, the catalogue."""
    return {
        "roles": await roles.list_roles(ctx, principal.tenant_id),
        "permissions": [{"name": k, "description": v} for k, v in PERMISSIONS.items()],
    }


@router.post("/admin/roles", status_code=201)
async def create_role(
    body: RoleCreate, request: Request, principal: Principal = ROLES, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    _may_grant(principal, set(body.permissions))
    try:
        role = await roles.create_role(ctx, principal.tenant_id, body.name, body.label, body.permissions)
    except AdminError as exc:
        raise _http(exc) from exc
    await audit.record(
        ctx,
        principal,
        "role.create",
        {"kind": "role", "name": role["name"]},
        {"permissions": role["permissions"], "label": role["label"]},
        ip=audit.client_ip(request),
    )
    return role


@router.put("/admin/roles/{name}")
async def update_role(
    name: str,
    body: RolePatch,
    request: Request,
    principal: Principal = ROLES,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Edit a role's permissions (any role but admin); holders get them on their next request."""
    if body.permissions is not None:
        _may_grant(principal, set(body.permissions))
    try:
        before, after = await roles.update_role(
            ctx, principal.tenant_id, name, label=body.label, permissions=body.permissions
        )
    except AdminError as exc:
        raise _http(exc) from exc
    await audit.record(
        ctx,
        principal,
        "role.update",
        {"kind": "role", "name": name},
        {
            "permissions": {"from": before["permissions"], "to": after["permissions"]},
            "label": {"from": before["label"], "to": after["label"]},
        },
        ip=audit.client_ip(request),
    )
    return after


@router.delete("/admin/roles/{name}")
async def delete_role(
    name: str, request: Request, principal: Principal = ROLES, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    """A custom role nobody holds is deleted; a built-in role goes back to its default."""
    try:
        before = await roles.delete_role(ctx, principal.tenant_id, name)
    except AdminError as exc:
        raise _http(exc) from exc
    await audit.record(
        ctx,
        principal,
        "role.reset" if before["builtin"] else "role.delete",
        {"kind": "role", "name": name},
        {"permissions": before["permissions"]},
        ip=audit.client_ip(request),
    )
    return {"status": "reset" if before["builtin"] else "deleted", "name": name}


# ------------------------------------------------------------------ branding


async def _branding_tenant(ctx: AppContext, principal: Principal, tenant_id: str | None) -> Doc:
    """The caller's own tenant, or (with ?tenant_id=) one below it: a reseller brands its customers."""
    if tenant_id and tenant_id != principal.tenant_id:
        try:
            return await tenant_admin.managed_tenant(ctx, principal, tenant_id)
        except AdminError as exc:
            raise _http(exc) from exc
    own = await ctx.db.tenants.find_one({"_id": principal.tenant_id})
    if own is None:
        raise HTTPException(404, "no such tenant")
    return own


async def _branding_view(ctx: AppContext, tenant: Doc) -> dict[str, Any]:
    own = tenant.get("branding") or {}
    return {
        "tenant_id": tenant["_id"],
        "slug": tenant["slug"],
        "own": {"name": own.get("name"), "has_logo": bool(own.get("logo_file_id"))},
        "effective": branding.public_branding(tenant["slug"], await branding.effective_branding(ctx, tenant)),
    }


@router.get("/admin/branding")
async def get_branding(
    tenant_id: str | None = None, principal: Principal = BRANDING, ctx: AppContext = Depends(get_ctx)
) -> dict[str, Any]:
    return await _branding_view(ctx, await _branding_tenant(ctx, principal, tenant_id))


@router.put("/admin/branding")
async def put_branding(
    body: BrandingName,
    request: Request,
    tenant_id: str | None = None,
    principal: Principal = BRANDING,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    tenant = await _branding_tenant(ctx, principal, tenant_id)
    before = (tenant.get("branding") or {}).get("name")
    await branding.set_name(ctx, tenant["_id"], body.name)
    fresh = await ctx.db.tenants.find_one({"_id": tenant["_id"]})
    assert fresh is not None
    await audit.record(
        ctx,
        principal,
        "branding.update",
        {"kind": "tenant", "id": tenant["_id"], "slug": tenant["slug"]},
        {"name": {"from": before, "to": (fresh.get("branding") or {}).get("name")}},
        tenant_id=tenant["_id"],
        ip=audit.client_ip(request),
    )
    return await _branding_view(ctx, fresh)


async def _read_logo(request: Request) -> tuple[bytes, str]:
    """The multipart `file`, refusing oversized bodies before parsing them."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > branding.MAX_LOGO_BYTES + _MULTIPART_SLACK:
        raise HTTPException(413, branding.TOO_LARGE)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HTTPException(422, "send the logo as multipart/form-data in a 'file' field")
    form = await request.form(max_files=1, max_fields=2)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "send the logo in a multipart field named 'file'")
        data = await upload.read(branding.MAX_LOGO_BYTES + 1)
        filename = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1][:120]
        return data, filename or "logo"
    finally:
        await form.close()


@router.post("/admin/branding/logo", status_code=201)
async def upload_logo(
    request: Request,
    tenant_id: str | None = None,
    principal: Principal = BRANDING,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """PNG, JPEG or WebP up to 512 KB (sniffed from the bytes; SVG refused)."""
    tenant = await _branding_tenant(ctx, principal, tenant_id)
    data, filename = await _read_logo(request)
    try:
        file_id = await branding.store_logo(ctx, tenant, data, filename, principal.user_id)
    except AdminError as exc:
        raise _http(exc) from exc
    await audit.record(
        ctx,
        principal,
        "branding.logo",
        {"kind": "tenant", "id": tenant["_id"], "slug": tenant["slug"]},
        {"logo_file_id": file_id, "filename": filename, "bytes": len(data)},
        tenant_id=tenant["_id"],
        ip=audit.client_ip(request),
    )
    fresh = await ctx.db.tenants.find_one({"_id": tenant["_id"]})
    assert fresh is not None
    return await _branding_view(ctx, fresh)


@router.delete("/admin/branding/logo")
async def delete_logo(
    request: Request,
    tenant_id: str | None = None,
    principal: Principal = BRANDING,
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    tenant = await _branding_tenant(ctx, principal, tenant_id)
    await branding.remove_logo(ctx, tenant)
    await audit.record(
        ctx,
        principal,
        "branding.logo_remove",
        {"kind": "tenant", "id": tenant["_id"], "slug": tenant["slug"]},
        {},
        tenant_id=tenant["_id"],
        ip=audit.client_ip(request),
    )
    fresh = await ctx.db.tenants.find_one({"_id": tenant["_id"]})
    assert fresh is not None
    return await _branding_view(ctx, fresh)


# ------------------------------------------------------------------ the caller's own password


@router.post("/me/password")
async def change_password(
    body: OwnPassword,
    request: Request,
    response: Response,
    principal: Principal = Depends(signed_in_user),  # the way out of a pending password change
    ctx: AppContext = Depends(get_ctx),
) -> dict[str, Any]:
    """Current password plus the new one twice. Every other session ends; this one continues
    with a fresh token (and cookie, when it came with one)."""
    try:
        user = await tenant_admin.change_own_password(
            ctx, principal.user_id, body.current_password, body.new_password, body.new_password_repeat
        )
    except AdminError as exc:
        raise _http(exc) from exc
    await audit.record(
        ctx,
        principal,
        "user.password_change",
        {"kind": "user", "id": user["_id"], "email": user["email"]},
        {},
        ip=audit.client_ip(request),
    )
    fresh = replace(principal, token_version=int(user.get("token_version", 0)))
    if request.cookies.get(SESSION_COOKIE):
        response.set_cookie(
            SESSION_COOKIE,
            session_token(ctx, fresh),
            max_age=ctx.settings.session_ttl_s,
            httponly=True,
            samesite="strict",
            secure=ctx.settings.secure_cookies,
            path="/",
        )
    return {"status": "changed", "token": session_token(ctx, fresh, "api")}
