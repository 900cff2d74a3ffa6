"""Anonymous web-chat visitors, identified by a signed visitor token."""

from __future__ import annotations

from hub.auth import AuthError, decode_token, issue_token
from hub.ids import new_id
from hub.settings import Settings


def new_visitor_token(settings: Settings, tenant_id: str, visitor_id: str | None = None) -> tuple[str, str]:
    visitor_id = visitor_id or new_id()
    token = issue_token(settings.secret, "visitor", visitor_id, tenant_id, settings.visitor_token_ttl_s)
    return visitor_id, token


def visitor_from_token(settings: Settings, tenant_id: str, token: str) -> str:
    """The visitor id in a token, which must belong to this tenant (else AuthError)."""
    payload = decode_token(settings.secret, token, "visitor")
    if payload.get("tid") != tenant_id:
        raise AuthError("invalid token")
    return str(payload["sub"])
