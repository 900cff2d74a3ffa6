"""Passwords (argon2), tokens (JWT) and the FastAPI dependencies that check callers.

Every dashboard request resolves to a Principal: who is calling and which tenant
they belong to. Handlers filter every query by `principal.tenant_id`. A user whose password
an admin set (`must_change_password`) is refused everything but their own password change
until they made it (`current_user`, `websocket_principal`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request, WebSocket, status
from fastapi.responses import JSONResponse

from hub.context import AppContext, get_ctx
from hub.permissions import BUILTIN_ROLES, effective_permissions

ROLES = tuple(BUILTIN_ROLES)
SESSION_COOKIE = "hub_session"
_hasher = PasswordHasher()
# A fixed hash to verify against when the user does not exist, so a login for an
# unknown email costs as much as one for a known email (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("not-a-real-password")
PASSWORD_CHANGE_REQUIRED = "password_change_required"
PASSWORD_CHANGE_MESSAGE = "change your password first"


class AuthError(Exception):
    """A token was rejected; the message is safe to show to the caller."""


class PasswordChangeRequired(HTTPException):
    """403 for a user who still holds a password an admin set: whoever saw that password
    (the admin, the channel it travelled by) must not be able to work as the user.

    An HTTPException, so without `password_change_refusal` registered it is still a 403."""

    def __init__(self) -> None:
        super().__init__(status.HTTP_403_FORBIDDEN, PASSWORD_CHANGE_MESSAGE)


async def password_change_refusal(request: Request, exc: Exception) -> JSONResponse:
    """The app's handler for PasswordChangeRequired: a machine-readable `code` lets the pages
    tell this 403 from a role refusal and send the user to the password form."""
    return JSONResponse(
        {"detail": PASSWORD_CHANGE_MESSAGE, "code": PASSWORD_CHANGE_REQUIRED},
        status_code=status.HTTP_403_FORBIDDEN,
    )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def issue_token(secret: str, typ: str, subject: str, tenant_id: str, ttl_s: int, **claims: Any) -> str:
    now = int(time.time())
    payload = {"typ": typ, "sub": subject, "tid": tenant_id, "iat": now, "exp": now + ttl_s, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


def decode_token(secret: str, token: str, typ: str | tuple[str, ...]) -> dict[str, Any]:
    try:
        payload: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["exp"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired") from exc
    except jwt.PyJWTError as exc:
        raise AuthError("invalid token") from exc
    allowed = (typ,) if isinstance(typ, str) else typ
    if payload.get("typ") not in allowed:
        raise AuthError("invalid token")
    return payload


@dataclass(frozen=True)
class Principal:
    user_id: str
    tenant_id: str
    tenant_slug: str
    tenant_name: str
    email: str
    name: str
    roles: tuple[str, ...]
    permissions: frozenset[str] = frozenset()
    tenant_level: str = "customer"
    # the tenant's ancestors, top first: a tenant manages those whose path holds its id
    tenant_path: tuple[str, ...] = ()
    token_version: int = 0
    # an admin set the password: only GET /api/me and POST /api/me/password until it changes
    must_change_password: bool = False

    def has_any(self, *roles: str) -> bool:
        return bool(set(roles) & set(self.roles))

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def manages(self, tenant: dict[str, Any]) -> bool:
        """True for a tenant strictly below the caller's own (any depth)."""
        return self.tenant_id in (tenant.get("path") or ())


async def authenticate(ctx: AppContext, tenant_slug: str, email: str, password: str) -> Principal | None:
    tenant = await ctx.db.tenants.find_one({"slug": tenant_slug.strip().lower()})
    user = None
    if tenant is not None:
        user = await ctx.db.users.find_one(
            {"tenant_id": tenant["_id"], "email": email.strip().lower(), "active": True}
        )
    if user is None:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(user["password_hash"], password):
        return None
    assert tenant is not None
    if not await tenant_enabled(ctx, tenant):
        return None
    return await _principal(ctx, user, tenant)


async def tenant_enabled(ctx: AppContext, tenant: dict[str, Any]) -> bool:
    """A tenant is usable when it and every tenant above it are enabled."""
    if tenant.get("active") is False:
        return False
    path = tenant.get("path") or []
    if not path:
        return True
    return await ctx.db.tenants.count_documents({"_id": {"$in": path}, "active": False}) == 0


async def tenant_role_permissions(ctx: AppContext, tenant_id: str) -> dict[str, list[str]]:
    """The tenant's stored roles (edited built-ins and its own), name -> permissions."""
    cursor = ctx.db.roles.find({"tenant_id": tenant_id}, {"name": 1, "permissions": 1})
    return {doc["name"]: list(doc.get("permissions", [])) for doc in await cursor.to_list(None)}


async def _principal(ctx: AppContext, user: dict[str, Any], tenant: dict[str, Any]) -> Principal:
    roles = tuple(user["roles"])
    stored = await tenant_role_permissions(ctx, tenant["_id"])
    return Principal(
        user_id=user["_id"],
        tenant_id=tenant["_id"],
        tenant_slug=tenant["slug"],
        tenant_name=tenant["name"],
        email=user["email"],
        name=user["name"],
        roles=roles,
        permissions=effective_permissions(roles, stored),
        tenant_level=tenant.get("level") or "customer",
        tenant_path=tuple(tenant.get("path") or ()),
        token_version=int(user.get("token_version", 0)),
        must_change_password=bool(user.get("must_change_password")),
    )


def session_token(ctx: AppContext, principal: Principal, typ: str = "session") -> str:
    """`tv` is the user's token version: a password reset bumps it, ending older sessions."""
    ttl = ctx.settings.session_ttl_s if typ == "session" else ctx.settings.api_token_ttl_s
    return issue_token(
        ctx.settings.secret, typ, principal.user_id, principal.tenant_id, ttl, tv=principal.token_version
    )


async def principal_from_token(ctx: AppContext, token: str) -> Principal:
    payload = decode_token(ctx.settings.secret, token, ("session", "api"))
    user = await ctx.db.users.find_one({"_id": payload["sub"], "tenant_id": payload["tid"], "active": True})
    tenant = await ctx.db.tenants.find_one({"_id": payload["tid"]})
    if user is None or tenant is None:
        raise AuthError("invalid token")
    if int(payload.get("tv", 0)) != int(user.get("token_version", 0)):
        raise AuthError("session ended: sign in again")
    if not await tenant_enabled(ctx, tenant):
        raise AuthError("this account is disabled")
    return await _principal(ctx, user, tenant)


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return None


async def signed_in_user(request: Request, ctx: AppContext = Depends(get_ctx)) -> Principal:
    """Any signed-in caller, a pending password change included: only for the routes such a
    user needs (`GET /api/me`, `POST /api/me/password`); everything else uses `current_user`."""
    token = _bearer(request.headers.get("authorization")) or request.cookies.get(SESSION_COOKIE)
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "not signed in")
    try:
        return await principal_from_token(ctx, token)
    except AuthError as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from exc


async def current_user(principal: Principal = Depends(signed_in_user)) -> Principal:
    """The signed-in caller, refused (403 `password_change_required`) while an admin-set
    password is unchanged. The flag rides on the user document already read: no extra query."""
    if principal.must_change_password:
        raise PasswordChangeRequired()
    return principal


def require_roles(*roles: str) -> Any:
    async def check(principal: Principal = Depends(current_user)) -> Principal:
        if not principal.has_any(*roles):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "not permitted for your role")
        return principal

    return Depends(check)


def require_permission(*permissions: str) -> Any:
    """A dependency passing callers whose roles grant any of `permissions`."""

    async def check(principal: Principal = Depends(current_user)) -> Principal:
        if not any(principal.can(p) for p in permissions):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "not permitted for your role")
        return principal

    return Depends(check)


async def websocket_principal(ws: WebSocket, ctx: AppContext) -> Principal:
    """Cookie, bearer header or ?token= (browsers cannot set headers on websockets)."""
    token = (
        _bearer(ws.headers.get("authorization"))
        or ws.query_params.get("token")
        or ws.cookies.get(SESSION_COOKIE)
    )
    if not token:
        raise AuthError("not signed in")
    principal = await principal_from_token(ctx, token)
    if principal.must_change_password:
        raise AuthError(PASSWORD_CHANGE_MESSAGE)
    return principal
