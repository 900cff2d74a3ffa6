"""CSRF protection for cookie sessions (double-submit cookie) and for cookie websockets.

A browser attaches the `hub_session` cookie by itself, so a state-changing request that is
authenticated by that cookie must prove it comes from our own pages: it echoes the random
`hub_csrf` cookie (readable by our scripts, not by another site's) in `X-CSRF-Token`. Bearer
tokens are exempt (a browser never sends them on its own), and so is any request without the
session cookie (webhooks, the widget, public pages). Only `/api/` authenticates by the cookie
(pages are GETs; the help center, questionnaire and unsubscribe forms carry their own tokens),
so only `/api/` is checked. A websocket authenticated by the cookie must come from our own
origin (cross-site websocket hijacking): browsers always send `Origin` on websockets.
"""

from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.auth import SESSION_COOKIE
from hub.settings import Settings

CSRF_COOKIE = "hub_csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Not authenticated by the session cookie: sign-in itself (a stale cookie may be present when
# signing in again, and the sign-in page has no token yet).
EXEMPT_PATHS = frozenset({"/api/auth/login"})
# Websockets that never authenticate by the session cookie (visitor and Twilio tokens).
PUBLIC_SOCKETS = frozenset({"/ws/chat", "/twilio/media"})


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_cookie_header(token: str, settings: Settings) -> str:
    """A Set-Cookie value: readable by our scripts (not HttpOnly), never sent cross-site."""
    parts = [f"{CSRF_COOKIE}={token}", "Path=/", "SameSite=Strict", f"Max-Age={settings.session_ttl_s}"]
    if settings.secure_cookies:
        parts.append("Secure")
    return "; ".join(parts)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header: treat as no cookies
        return {}
    return {k: m.value for k, m in jar.items()}


def _has_bearer(headers: dict[str, str]) -> bool:
    return headers.get("authorization", "").lower().startswith("bearer ")


def same_origin(origin: str, host: str, public_url: str) -> bool:
    """True when `origin` names this hub (the Host it was reached by, or its public URL)."""
    netloc = urlsplit(origin).netloc.lower()
    return bool(netloc) and netloc in {host.lower(), urlsplit(public_url).netloc.lower()}


class CsrfMiddleware:
    """Refuses cookie-authenticated state changes without the token, hands out the cookie to
    sessions that lack it, and refuses cookie websockets from other origins."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if self._foreign_cookie_socket(scope):
                # closing before accept makes the server answer the handshake with 403
                await send({"type": "websocket.close", "code": 4403, "reason": "cross-origin"})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        cookies = _cookies(headers)
        session = cookies.get(SESSION_COOKIE)
        path = str(scope.get("path", ""))
        if (
            session
            and scope.get("method") in UNSAFE_METHODS
            and path.startswith("/api/")
            and path not in EXEMPT_PATHS
            and not _has_bearer(headers)
        ):
            expected = cookies.get(CSRF_COOKIE, "")
            given = headers.get(CSRF_HEADER, "")
            if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
                await _forbidden(send)
                return
        if session and CSRF_COOKIE not in cookies:
            # a session from before CSRF tokens (or whose token cookie was lost): hand one out
            await self.app(scope, receive, self._adding_cookie(send))
            return
        await self.app(scope, receive, send)

    def _adding_cookie(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                if not any(v.startswith(f"{CSRF_COOKIE}=") for v in response_headers.getlist("set-cookie")):
                    response_headers.append("set-cookie", csrf_cookie_header(new_csrf_token(), self.settings))
            await send(message)

        return wrapped

    def _foreign_cookie_socket(self, scope: Scope) -> bool:
        path = str(scope.get("path", ""))
        if path in PUBLIC_SOCKETS:
            return False
        headers = _headers(scope)
        origin = headers.get("origin")
        if not origin or SESSION_COOKIE not in _cookies(headers) or _has_bearer(headers):
            return False  # not a browser, or not authenticated by the cookie
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if query.get("token"):
            return False  # authenticated by a token the page had to read: not by the cookie alone
        return not same_origin(origin, headers.get("host", ""), self.settings.public_url)


async def _forbidden(send: Send) -> None:
    body = b'{"detail":"CSRF token missing or wrong"}'
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
