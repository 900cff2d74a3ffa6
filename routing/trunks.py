"""SIP trunks and outbound routes: which carrier an outbound number is dialled through.

The hub dials through Twilio today; these settings are stored for the telephony provider: a
SIP provider integration (or Twilio BYOC / Elastic SIP Trunking) reads the trunk to register
and send INVITEs, and `route_for` tells it which trunk takes a number and what to dial.

- `sip_trunks` `{_id, tenant_id, name (unique per tenant), host, port, transport udp|tcp|tls,
  codecs [PCMU, PCMA, G722, G729, opus], username, password_enc (hub.secretbox; never returned),
  password_last4, register, caller_id_prefix, created_at, updated_at}`
- `outbound_routes` `{_id, tenant_id, name, pattern (digit prefix; "" = default route), trunk_id,
  strip_digits, prepend, priority (lower first), created_at, updated_at}`

`select_route`: among the routes whose pattern starts the number (digits only, without "+"),
the longest pattern wins, then the lowest priority, then the name; the dialled string is the
number's digits with `strip_digits` removed from the front and `prepend` put before them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo.errors import DuplicateKeyError

from hub import secretbox
from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow

CODECS = ("PCMU", "PCMA", "G722", "G729", "opus")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_DIGITS = re.compile(r"^[0-9]*$")
_PREPEND = re.compile(r"^\+?[0-9*#]*$")


class TrunkError(ValueError):
    """Invalid settings (422)."""


class TrunkNotFound(LookupError):
    """No such trunk or route in the tenant (404)."""


class TrunkConflict(ValueError):
    """Name taken, or a trunk still used by a route (409)."""


class TrunkIn(BaseModel):
    """A trunk as the API takes it; `password` None keeps the stored one, "" clears it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    name: str = Field(min_length=1, max_length=80)
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "udp"
    codecs: list[str] = Field(default_factory=lambda: ["PCMU", "PCMA"], min_length=1, max_length=len(CODECS))
    username: str = Field(default="", max_length=128)
    password: str | None = Field(default=None, max_length=128)
    # "register" would shadow BaseModel.register: the API name is an alias
    registers: bool = Field(default=False, alias="register")
    caller_id_prefix: str = Field(default="", max_length=16)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip("[]")))
        except ValueError:
            pass
        if not _HOSTNAME.match(value) or value.replace(".", "").isdigit():
            raise ValueError(f"{value!r} is neither a hostname nor an IP address")
        return value.lower()

    @field_validator("codecs")
    @classmethod
    def _codecs(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in CODECS]
        if unknown:
            raise ValueError(f"unknown codec {unknown[0]!r}: choose from {', '.join(CODECS)}")
        if len(set(value)) != len(value):
            raise ValueError("a codec is listed twice")
        return value

    @field_validator("caller_id_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREPEND.match(value):
            raise ValueError("the caller id prefix is digits, optionally after a +")
        return value


class RouteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=80)
    pattern: str = Field(
        default="", max_length=20, description='digit prefix of the E.164 number without "+"'
    )
    trunk_id: str = Field(min_length=1, max_length=64)
    strip_digits: int = Field(default=0, ge=0, le=20)
    prepend: str = Field(default="", max_length=20)
    priority: int = Field(default=100, ge=0, le=10000)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        value = value.lstrip("+")
        if not _DIGITS.match(value):
            raise ValueError("the pattern is a prefix of digits (empty = every number)")
        return value

    @field_validator("prepend")
    @classmethod
    def _prepend(cls, value: str) -> str:
        if not _PREPEND.match(value):
            raise ValueError("prepend digits (and * or #), optionally after a +")
        return value


@dataclass(frozen=True)
class RouteChoice:
    route: Doc
    dialled: str


def select_route(routes: Iterable[Doc], number: str) -> RouteChoice | None:
    """The route for `number` (E.164 or digits): longest pattern, then priority, then name."""
    digits = re.sub(r"\D", "", number)
    if not digits:
        return None
    matching = [r for r in routes if digits.startswith(str(r.get("pattern") or ""))]
    if not matching:
        return None
    best = min(
        matching,
        key=lambda r: (-len(str(r.get("pattern") or "")), int(r.get("priority", 100)), str(r.get("name"))),
    )
    strip = int(best.get("strip_digits") or 0)
    return RouteChoice(best, f"{best.get('prepend') or ''}{digits[strip:]}")


def public_trunk(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "host": doc["host"],
        "port": doc["port"],
        "transport": doc["transport"],
        "codecs": list(doc.get("codecs") or []),
        "username": doc.get("username") or "",
        "password_set": bool(doc.get("password_enc")),
        "password_last4": doc.get("password_last4") or "",
        "register": bool(doc.get("register")),
        "caller_id_prefix": doc.get("caller_id_prefix") or "",
        "updated_at": iso(doc.get("updated_at")),
    }


def public_route(doc: Doc, trunk_names: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "pattern": doc.get("pattern") or "",
        "trunk_id": doc["trunk_id"],
        "trunk_name": (trunk_names or {}).get(doc["trunk_id"], ""),
        "strip_digits": int(doc.get("strip_digits") or 0),
        "prepend": doc.get("prepend") or "",
        "priority": int(doc.get("priority", 100)),
        "updated_at": iso(doc.get("updated_at")),
    }


async def list_trunks(ctx: AppContext, tenant_id: str) -> list[Doc]:
    return [t async for t in ctx.db.sip_trunks.find({"tenant_id": tenant_id}).sort("name", 1).limit(500)]


async def list_routes(ctx: AppContext, tenant_id: str) -> list[Doc]:
    cursor = ctx.db.outbound_routes.find({"tenant_id": tenant_id}).sort([("priority", 1), ("name", 1)])
    return [r async for r in cursor.limit(1000)]


def _trunk_fields(ctx: AppContext, body: TrunkIn) -> Doc:
    fields: Doc = body.model_dump(exclude={"password"}, by_alias=True)
    if body.password is not None:
        fields["password_enc"] = (
            secretbox.encrypt(ctx.settings.secret, body.password) if body.password else None
        )
        fields["password_last4"] = secretbox.last4(body.password)
    return fields


async def save_trunk(
    ctx: AppContext, tenant_id: str, body: TrunkIn, trunk_id: str | None = None
) -> tuple[Doc, Doc | None]:
    """Create (no `trunk_id`) or replace a trunk; returns (row now, row before)."""
    now = utcnow()
    fields = {**_trunk_fields(ctx, body), "updated_at": now}
    try:
        if trunk_id is None:
            doc: Doc = {"password_enc": None, "password_last4": "", **fields}
            doc.update({"_id": new_id(), "tenant_id": tenant_id, "created_at": now})
            await ctx.db.sip_trunks.insert_one(doc)
            return doc, None
        before = await ctx.db.sip_trunks.find_one({"_id": trunk_id, "tenant_id": tenant_id})
        if before is None:
            raise TrunkNotFound("no such trunk")
        await ctx.db.sip_trunks.update_one({"_id": trunk_id, "tenant_id": tenant_id}, {"$set": fields})
    except DuplicateKeyError as exc:
        raise TrunkConflict(f"a trunk named {body.name!r} already exists") from exc
    return {**before, **fields}, before


async def delete_trunk(ctx: AppContext, tenant_id: str, trunk_id: str) -> Doc:
    trunk = await ctx.db.sip_trunks.find_one({"_id": trunk_id, "tenant_id": tenant_id})
    if trunk is None:
        raise TrunkNotFound("no such trunk")
    route = await ctx.db.outbound_routes.find_one({"tenant_id": tenant_id, "trunk_id": trunk_id}, {"name": 1})
    if route is not None:
        raise TrunkConflict(f"route {route['name']!r} uses this trunk: change or delete the route first")
    await ctx.db.sip_trunks.delete_one({"_id": trunk_id, "tenant_id": tenant_id})
    return trunk


async def save_route(
    ctx: AppContext, tenant_id: str, body: RouteIn, route_id: str | None = None
) -> tuple[Doc, Doc | None]:
    before = None
    if route_id is not None:
        before = await ctx.db.outbound_routes.find_one({"_id": route_id, "tenant_id": tenant_id})
        if before is None:
            raise TrunkNotFound("no such route")
    trunk = await ctx.db.sip_trunks.find_one({"_id": body.trunk_id, "tenant_id": tenant_id}, {"_id": 1})
    if trunk is None:
        raise TrunkError("trunk_id: no such trunk; add the trunk first")
    now = utcnow()
    fields: Doc = {**body.model_dump(), "updated_at": now}
    if route_id is None or before is None:
        doc: Doc = {"_id": new_id(), "tenant_id": tenant_id, "created_at": now, **fields}
        await ctx.db.outbound_routes.insert_one(doc)
        return doc, None
    await ctx.db.outbound_routes.update_one({"_id": route_id, "tenant_id": tenant_id}, {"$set": fields})
    return {**before, **fields}, before


async def delete_route(ctx: AppContext, tenant_id: str, route_id: str) -> Doc:
    route = await ctx.db.outbound_routes.find_one({"_id": route_id, "tenant_id": tenant_id})
    if route is None:
        raise TrunkNotFound("no such route")
    await ctx.db.outbound_routes.delete_one({"_id": route_id, "tenant_id": tenant_id})
    return route


async def route_for(ctx: AppContext, tenant_id: str, number: str) -> tuple[Doc, RouteChoice] | None:
    """The trunk and dialled string a provider integration should use for `number`."""
    choice = select_route(await list_routes(ctx, tenant_id), number)
    if choice is None:
        return None
    trunk = await ctx.db.sip_trunks.find_one({"_id": choice.route["trunk_id"], "tenant_id": tenant_id})
    return (trunk, choice) if trunk is not None else None


def trunk_password(ctx: AppContext, trunk: Doc) -> str | None:
    """The trunk's password for the provider integration (raises secretbox.SecretUnreadable)."""
    encrypted = trunk.get("password_enc")
    return secretbox.decrypt(ctx.settings.secret, encrypted) if encrypted else None
