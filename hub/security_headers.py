"""Security headers on every response (an ASGI middleware, so streamed responses get them too).

The dashboard pages load only our own scripts and styles (no inline script or style: the
sign-in page's script lives in login.js), so their Content-Security-Policy is strict (the agent
desk allows inline styles for the HTML mail it shows in a sandboxed frame). The public
server-rendered pages (help center, questionnaire and unsubscribe forms) put their brand colour
and form styles inline, so they also allow inline styles, still no inline script. The demo site
and the widget script are embedded in customers' sites: no frame or content rules there.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.settings import Settings

EMBEDDED = ("/demo", "/widget.js")
PUBLIC_PAGES = ("/help/", "/q/", "/u/")
# the agent desk shows HTML mail in a sandboxed srcdoc frame, which inherits this page's policy:
# the mail's own inline styles must apply (its scripts never run: sandbox="" and script-src)
INLINE_STYLE_PAGES = (*PUBLIC_PAGES, "/agent")
# the softphone and the web call use the microphone of our own pages; nothing else is needed
PERMISSIONS_POLICY = (
    "camera=(), geolocation=(), microphone=(self), payment=(), usb=(), display-capture=(), interest-cohort=()"
)
# Swagger UI and ReDoc load their scripts from a CDN: FastAPI's own pages, outside the product UI
API_DOC_PAGES = ("/docs", "/redoc")


def content_security_policy(host: str, public_page: bool, inline_style: bool = False) -> str:
    """The policy for our pages; `host` names the websocket endpoints (some browsers do not let
    'self' cover ws: / wss:)."""
    style = "'self' 'unsafe-inline'" if public_page or inline_style else "'self'"
    image = "'self' data: blob: https:" if public_page else "'self' data: blob:"
    sockets = f" ws://{host} wss://{host}" if host else ""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            f"style-src {style}",
            f"img-src {image}",
            "media-src 'self' blob:",
            f"connect-src 'self'{sockets}",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


class SecurityHeaders:
    """Adds the headers (see the module docstring); a header a route set itself wins."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hsts = urlsplit(settings.public_url).scheme == "https"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        host = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"host"), "")

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add(MutableHeaders(scope=message), path, host)
            await send(message)

        await self.app(scope, receive, sending)

    def _add(self, headers: MutableHeaders, path: str, host: str) -> None:
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        if self.hsts:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if path.startswith("/api/"):
            # personal data in API answers must not linger in browser or proxy caches
            headers.setdefault("Cache-Control", "no-store")
        if path.startswith(EMBEDDED):
            return
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if path.startswith(API_DOC_PAGES):
            return
        policy = content_security_policy(
            host, path.startswith(PUBLIC_PAGES), inline_style=path.startswith(INLINE_STYLE_PAGES)
        )
        headers.setdefault("Content-Security-Policy", policy)
