"""One audit row for every successful administrative request, whichever router served it.

Endpoints that record detailed before / after changes (hub.audit.record) still do; this
middleware makes sure nothing administrative is missed: every POST / PUT / PATCH / DELETE under
/api/ by a signed-in user that succeeded (status < 400) is written as action `http.<method>`
with the route template, the status, the actor, the tenant, the address and the JSON body with
secrets masked (multipart uploads: only the file names). The agent's desk work is left out
(EXCLUDED below): it is operational work recorded on the contact itself, not administration,
and would drown the log.

The caller is read from the bearer token or the session cookie by decoding it (no database
read): the endpoint already refused invalid callers, and a refused request writes no row. The
row is written before the last byte of the response leaves, so a client that reads the log
right after its change finds the row.
"""

from __future__ import annotations

import json
import logging
import re
from http.cookies import SimpleCookie
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.audit import mask_secrets
from hub.auth import SESSION_COOKIE, AuthError, decode_token
from hub.ids import new_id, utcnow
from hub.settings import Settings

log = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BODY_BYTES = 8 * 1024
_FILENAME = re.compile(rb'filename="([^"\r\n]{0,255})"')

# (method, route template) pairs that are desk work, not administration.
EXCLUDED: frozenset[tuple[str, str]] = frozenset(
    {
        # sign-in rows are written by the sign-in itself, with the outcome (auth.login / _failed)
        ("POST", "/api/auth/login"),
        # a fresh API token for the same session, and signing out: no change to anything
        ("POST", "/api/auth/token"),
        ("POST", "/api/auth/logout"),
        # the agent's own availability: presence history lives in the agent's state events
        ("POST", "/api/agent/presence"),
        # handling a conversation: offers, replies, wrap-up, pick-up, supervisor moves; each is
        # an event on the contact (its timeline) already
        ("POST", "/api/contacts/{contact_id}/accept"),
        ("POST", "/api/contacts/{contact_id}/decline"),
        ("POST", "/api/contacts/{contact_id}/messages"),
        ("POST", "/api/contacts/{contact_id}/wrapup"),
        ("POST", "/api/contacts/{contact_id}/pickup"),
        ("POST", "/api/contacts/{contact_id}/assign"),
        ("POST", "/api/contacts/{contact_id}/move"),
        # questionnaire answers taken during a call: stored on the contact
        ("POST", "/api/contacts/{contact_id}/answers"),
        # previews render a draft and store nothing
        ("POST", "/api/kb/preview"),
        ("POST", "/api/questionnaires/preview"),
        # the KB view counter the desk bumps when an agent opens an article
        ("POST", "/api/kb/usage/view"),
        # an agent marking an announcement read, a follow-up done, an evaluation acknowledged
        ("POST", "/api/announcements/{announcement_id}/read"),
        ("POST", "/api/tasks/{task_id}/done"),
        ("POST", "/api/quality/evaluations/{evaluation_id}/acknowledge"),
        # preview dialling of a campaign target by the agent: recorded on the target
        ("POST", "/api/campaigns/{campaign_id}/targets/{target_id}/result"),
        ("POST", "/api/campaigns/{campaign_id}/targets/{target_id}/dial"),
        ("POST", "/api/campaigns/{campaign_id}/targets/{target_id}/release"),
        # a dry run of the outbound routes for a number: changes nothing
        ("POST", "/api/admin/telephony/routes/test"),
    }
)
# Whole families of desk work: call controls (hold, mute, transfer, conference, monitor ...) and
# the agent's browser softphone; both are call events on the contact.
EXCLUDED_PREFIXES = ("/api/calls/", "/api/softphone")


def is_desk_work(method: str, template: str) -> bool:
    return (method, template) in EXCLUDED or template.startswith(EXCLUDED_PREFIXES)


def route_template(scope: Scope) -> str:
    """The matched route's path with its parameters as `{name}` (the full path, prefixes of
    included routers too); the raw path when no route matched."""
    path = str(scope.get("path", ""))
    route = scope.get("route")
    fmt = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(fmt, str):
        return path
    params = scope.get("path_params") or {}
    try:
        rendered = re.sub(r"{(\w+)(?::\w+)?}", lambda m: str(params[m.group(1)]), fmt)
    except KeyError:
        return path
    # FastAPI >= 0.16x gives the route as declared in its router (without the router's prefix)
    return path[: len(path) - len(rendered)] + fmt if path.endswith(rendered) else path


def _caller(scope: Scope, secret: str) -> dict[str, Any] | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    token = None
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    else:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header carries no session
            return None
        morsel = jar.get(SESSION_COOKIE)
        token = morsel.value if morsel is not None else None
    if not token:
        return None
    try:
        payload = decode_token(secret, token, ("session", "api"))
    except AuthError:
        return None
    return {"user_id": payload.get("sub"), "tenant_id": payload.get("tid"), "headers": headers}


class _Capture:
    """What the app read of the request body (first 8 KB; file names of multipart parts)."""

    def __init__(self, content_type: str) -> None:
        self.multipart = content_type.startswith("multipart/")
        self.json = "json" in content_type
        self.body = bytearray()
        self.truncated = False
        self.filenames: list[str] = []
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        if self.multipart:
            # a part header may straddle two chunks: look at the end of the previous one too
            found = _FILENAME.findall(self._tail + chunk)
            self.filenames += [m.decode("utf-8", "replace") for m in found]
            self._tail = chunk[-300:]
            return
        room = MAX_BODY_BYTES - len(self.body)
        if len(chunk) > room:
            self.truncated = True
        self.body += chunk[: max(room, 0)]

    def summary(self) -> Any:
        if self.multipart:
            return {"files": sorted(set(self.filenames))}
        if not self.body:
            return None
        if self.truncated or not self.json:
            return {"bytes_over_8k" if self.truncated else "non_json_bytes": len(self.body)}
        try:
            return mask_secrets(json.loads(bytes(self.body)))
        except ValueError:
            return {"invalid_json_bytes": len(self.body)}


class AuditMiddleware:
    """ASGI middleware writing `audit_log` rows for administrative requests (see the module)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "")
        if (
            scope["type"] != "http"
            or method not in UNSAFE_METHODS
            or not str(scope.get("path", "")).startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        caller = _caller(scope, self.settings.secret)
        if caller is None:
            await self.app(scope, receive, send)
            return
        capture = _Capture(caller["headers"].get("content-type", "").lower())
        status: list[int] = [0]

        async def reading() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                capture.feed(message.get("body", b""))
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                if 0 < status[0] < 400:
                    await self._write(scope, caller, capture, status[0])
            await send(message)

        await self.app(scope, reading, sending)

    async def _write(self, scope: Scope, caller: dict[str, Any], capture: _Capture, status: int) -> None:
        method = str(scope["method"])
        template = route_template(scope)
        if is_desk_work(method, template):
            return
        app = scope.get("app")
        ctx = getattr(getattr(app, "state", None), "ctx", None)
        if ctx is None:
            return
        client = scope.get("client")
        body = capture.summary()
        # a change to a tenant below (e.g. /api/billing/accounts/{tenant_id}) shows in its log
        target_tenant = (scope.get("path_params") or {}).get("tenant_id")
        entry = {
            "_id": new_id(),
            "tenant_id": target_tenant if isinstance(target_tenant, str) else caller["tenant_id"],
            "actor_id": caller["user_id"],
            "actor_name": None,  # joined from users when read (no extra read per request)
            "actor_tenant_id": caller["tenant_id"],
            "action": f"http.{method.lower()}",
            "target": {
                "kind": "http",
                "method": method,
                "path": str(scope.get("path", "")),
                "route": template,
            },
            "changes": {"body": body} if body is not None else {},
            "status": status,
            "ip": str(client[0]) if client else None,
            "at": utcnow(),
        }
        try:
            await ctx.db.audit_log.insert_one(entry)
        except Exception:  # the change itself succeeded: never turn it into an error
            log.exception("audit row for %s %s not written", method, template)
