"""The audit log: who changed what in the administration, from where, and when.

Administrative endpoints call `record` with the change (before / after of the fields
they touched); secrets are masked here, once, so no caller can forget. Read with the
`audit.view` permission for the caller's own tenant and the tenants below it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from hub.auth import Principal
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow

# Field names whose values never reach the log (matched as substrings, lower-case).
SECRET_FIELDS = ("password", "token", "secret", "auth", "api_key", "private")
MASK = "***"


def mask_secrets(value: Any) -> Any:
    """A copy of `value` with every secret-looking field's value replaced by ***."""
    if isinstance(value, dict):
        return {
            k: (MASK if any(s in str(k).lower() for s in SECRET_FIELDS) else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def client_ip(request: Request) -> str | None:
    """The caller's address as the audit log stores it."""
    return request.client.host if request.client else None


async def record(
    ctx: AppContext,
    principal: Principal | None,
    action: str,
    target: dict[str, Any],
    changes: dict[str, Any] | None = None,
    *,
    tenant_id: str | None = None,
    ip: str | None = None,
    actor_name: str | None = None,
) -> Doc:
    """One audit row. `tenant_id` is the tenant whose data changed (default: the actor's);
    `target` names the object (`{"kind": "user", "id": ...}`)."""
    entry: Doc = {
        "_id": new_id(),
        "tenant_id": tenant_id or (principal.tenant_id if principal else None),
        "actor_id": principal.user_id if principal else None,
        "actor_name": principal.name if principal else (actor_name or "system"),
        "actor_tenant_id": principal.tenant_id if principal else None,
        "action": action,
        "target": mask_secrets(target),
        "changes": mask_secrets(changes or {}),
        "ip": ip,
        "at": utcnow(),
    }
    await ctx.db.audit_log.insert_one(entry)
    return entry


async def record_sign_in(
    ctx: AppContext, principal: Principal | None, tenant_slug: str, email: str, ip: str | None
) -> Doc:
    """`auth.login` (principal given) or `auth.login_failed`: the email and tenant slug as
    typed, never the password. A failure is filed under the named tenant when it exists, so
    its admins see attempts on their accounts."""
    if principal is not None:
        return await record(
            ctx, principal, "auth.login", {"kind": "user", "id": principal.user_id, "email": email}, ip=ip
        )
    tenant = await ctx.db.tenants.find_one({"slug": tenant_slug.strip().lower()}, {"_id": 1})
    return await record(
        ctx,
        None,
        "auth.login_failed",
        {"kind": "user", "email": email.strip().lower()[:254]},
        {"tenant_slug": tenant_slug[:60]},
        tenant_id=tenant["_id"] if tenant else None,
        ip=ip,
        actor_name=email.strip().lower()[:254],
    )
