"""Per-tenant Twilio accounts: a tenant may bring its own Account SID and auth token.

`telephony_settings` `{_id, tenant_id (unique), twilio_account_sid (unique), twilio_auth_token_enc,
twilio_token_last4, updated_at, updated_by}`. The token is encrypted at rest (hub.secretbox) and
never leaves the hub: the API shows only that it is set and its last 4 characters.

With an account, the tenant's outbound calls and SMS go through it (channels.twilio.outbound
`client_for`) and webhooks carrying its AccountSid are validated with its token
(channels.twilio.voice `signed_form`) and must concern that tenant. Tenants without one use
the hub's own account from the environment (TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from hub import secretbox
from hub.context import AppContext
from hub.db import Doc
from hub.ids import iso, new_id, utcnow

ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
AUTH_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class AccountError(ValueError):
    """Invalid account details (422)."""


class AccountConflict(ValueError):
    """Another tenant already uses this account (409)."""


@dataclass(frozen=True)
class TwilioAccount:
    tenant_id: str
    account_sid: str
    auth_token: str


def public_account(doc: Doc | None) -> dict[str, Any]:
    """What the API shows: never the token, only whether it is set and its last 4 characters."""
    if doc is None:
        return {"configured": False, "account_sid": None, "auth_token_set": False, "auth_token_last4": ""}
    return {
        "configured": True,
        "account_sid": doc["twilio_account_sid"],
        "auth_token_set": bool(doc.get("twilio_auth_token_enc")),
        "auth_token_last4": doc.get("twilio_token_last4") or "",
        "updated_at": iso(doc.get("updated_at")),
    }


async def get_settings(ctx: AppContext, tenant_id: str) -> Doc | None:
    return await ctx.db.telephony_settings.find_one({"tenant_id": tenant_id})


async def set_account(
    ctx: AppContext, tenant_id: str, account_sid: str, auth_token: str | None, by: str | None
) -> tuple[Doc, Doc | None]:
    """Store the tenant's account; `auth_token` None keeps the stored token (same SID only).
    Returns (row now, row before)."""
    account_sid = account_sid.strip()
    if not ACCOUNT_SID.match(account_sid):
        raise AccountError("the Account SID is AC followed by 32 hexadecimal characters")
    if account_sid == ctx.settings.twilio_account_sid:
        # its webhooks would be taken for this tenant's: the hub's account serves every tenant
        raise AccountConflict("this is the hub's own Twilio account; leave the fields empty to use it")
    before = await get_settings(ctx, tenant_id)
    fields: Doc = {"twilio_account_sid": account_sid, "updated_at": utcnow(), "updated_by": by}
    if auth_token is not None and auth_token.strip():
        token = auth_token.strip()
        if not AUTH_TOKEN.match(token):
            raise AccountError("the auth token is 16-128 letters, digits, '-' or '_'")
        fields["twilio_auth_token_enc"] = secretbox.encrypt(ctx.settings.secret, token)
        fields["twilio_token_last4"] = secretbox.last4(token)
    elif before is None or before.get("twilio_account_sid") != account_sid:
        raise AccountError("enter the auth token of this account")
    try:
        if before is None:
            row: Doc = {"_id": new_id(), "tenant_id": tenant_id, **fields}
            await ctx.db.telephony_settings.insert_one(row)
            return row, None
        await ctx.db.telephony_settings.update_one({"_id": before["_id"]}, {"$set": fields})
    except DuplicateKeyError as exc:
        raise AccountConflict("another tenant already uses this Twilio account") from exc
    return {**before, **fields}, before


async def clear_account(ctx: AppContext, tenant_id: str) -> Doc | None:
    """Forget the tenant's account (it falls back to the hub's); returns the row removed."""
    before = await get_settings(ctx, tenant_id)
    if before is not None:
        await ctx.db.telephony_settings.delete_one({"_id": before["_id"]})
    return before


def _account(ctx: AppContext, doc: Doc) -> TwilioAccount:
    token = secretbox.decrypt(ctx.settings.secret, doc["twilio_auth_token_enc"])
    return TwilioAccount(doc["tenant_id"], doc["twilio_account_sid"], token)


async def tenant_account(ctx: AppContext, tenant_id: str) -> TwilioAccount | None:
    """The tenant's own account, or None (it uses the hub's). Raises SecretUnreadable."""
    doc = await get_settings(ctx, tenant_id)
    return _account(ctx, doc) if doc is not None and doc.get("twilio_auth_token_enc") else None


async def account_by_sid(ctx: AppContext, account_sid: str) -> TwilioAccount | None:
    """The tenant account with this SID (a webhook's AccountSid), or None."""
    if not account_sid or not ACCOUNT_SID.match(account_sid):
        return None
    doc = await ctx.db.telephony_settings.find_one({"twilio_account_sid": account_sid})
    return _account(ctx, doc) if doc is not None and doc.get("twilio_auth_token_enc") else None
