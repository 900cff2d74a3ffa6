"""A tenant's email settings (`tenants.email`); secrets come only from environment variables.

Why: passwords must never sit in the database, so the config names an environment variable
(`password_env`) and the value is read when a connection is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hub.context import AppContext
from hub.db import Doc


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str | None
    password: str | None
    tls: bool  # implicit TLS for IMAP (`ssl`), STARTTLS for SMTP (`starttls`)


def _server(raw: Doc | None, tls_key: str, default_port: int) -> Server | None:
    if not raw or not raw.get("host"):
        return None
    env = raw.get("password_env")
    return Server(
        host=str(raw["host"]),
        port=int(raw.get("port") or default_port),
        user=raw.get("user") or None,
        password=os.environ.get(env) if env else None,
        tls=bool(raw.get(tls_key, False)),
    )


def smtp_server(tenant: Doc) -> Server | None:
    return _server((tenant.get("email") or {}).get("smtp"), "starttls", 25)


def imap_server(tenant: Doc) -> Server | None:
    return _server((tenant.get("email") or {}).get("imap"), "ssl", 993)


def address_of(tenant: Doc) -> str | None:
    value = (tenant.get("email") or {}).get("address")
    return str(value).lower() if value else None


async def tenant_of_address(ctx: AppContext, address: str) -> Doc | None:
    """The tenant whose support address this is (case-insensitive)."""
    return await ctx.db.tenants.find_one({"email.address": address.strip().lower()})
