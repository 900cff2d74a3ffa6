"""Permissions, the roles that grant them, and the three tenant levels.

A role is a named set of permissions inside one tenant. The built-in roles keep
their historic names (admin, supervisor, agent, editor) and gain three from the
seed's staff management (finance may only top up, technicians configure agents
and flows, service staff approve caller ids and prompts). A tenant may edit any
built-in role's permissions except admin's (so nobody can lock a tenant out) and
add its own roles; the edited copy lives in the `roles` collection and wins over
the default below.

Endpoints that predate permissions still check role names (`require_roles`);
administrative endpoints check permissions (`hub.auth.require_permission`).
"""

from __future__ import annotations

from typing import Final

# Tenant levels, top to bottom. An operator runs the platform, resellers sell it,
# customers (end users) run their contact center on it.
LEVELS: Final = ("operator", "reseller", "customer")
# Which levels a tenant of each level may create below itself (seed 003: a reseller
# adds sub-resellers and users; an end customer adds nobody).
CHILD_LEVELS: Final[dict[str, tuple[str, ...]]] = {
    "operator": ("reseller", "customer"),
    "reseller": ("reseller", "customer"),
    "customer": (),
}

PERMISSIONS: Final[dict[str, str]] = {
    "tenants.manage": "create, enable and disable tenants below yours and reset their admins' passwords",
    "users.manage": "add staff, enable or disable them, reset their passwords",
    "roles.manage": "create roles and edit which permissions they grant",
    "branding.manage": "set the logo and name shown to your staff and your customers' staff",
    "billing.view": "balances, billing records and statements",
    "billing.topup": "top up the prepaid balance of tenants below yours",
    "billing.rates": "rate groups and rate tables; assign rates and markups to tenants below yours",
    "telephony.manage": "dialled numbers to flows, the Twilio account, SIP trunks, outbound routes",
    "flows.manage": "IVR flows and audio prompts",
    "agents.manage": "agents, skills, queues and routing settings",
    "approvals.review": "approve or reject caller ids and audio prompts",
    "audit.view": "read the audit log",
}
ALL_PERMISSIONS: Final = frozenset(PERMISSIONS)

BUILTIN_ROLES: Final[dict[str, frozenset[str]]] = {
    "admin": ALL_PERMISSIONS,
    "supervisor": frozenset({"agents.manage", "flows.manage", "billing.view", "audit.view"}),
    "agent": frozenset(),
    "editor": frozenset(),
    "finance": frozenset({"billing.view", "billing.topup"}),
    "technician": frozenset({"agents.manage", "flows.manage"}),
    "service": frozenset({"approvals.review"}),
}
# admin always holds every permission: editing it could lock a tenant out.
LOCKED_ROLES: Final = frozenset({"admin"})


def unknown_permissions(permissions: list[str] | set[str]) -> list[str]:
    return sorted(set(permissions) - ALL_PERMISSIONS)


def effective_permissions(
    role_names: list[str] | tuple[str, ...], tenant_roles: dict[str, list[str]]
) -> frozenset[str]:
    """The union of what each of the user's roles grants in their tenant.

    `tenant_roles` maps role name -> permissions as stored for the tenant (edited
    built-ins and custom roles); a built-in role without a stored copy grants its
    default. An unknown role name grants nothing.
    """
    granted: set[str] = set()
    for name in role_names:
        if name in LOCKED_ROLES:
            granted |= BUILTIN_ROLES[name]
        elif name in tenant_roles:
            granted |= set(tenant_roles[name]) & ALL_PERMISSIONS
        else:
            granted |= BUILTIN_ROLES.get(name, frozenset())
    return frozenset(granted)
