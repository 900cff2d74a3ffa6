"""Every HTTP route and websocket of the hub, called with no credentials and with another
tenant's: refused, and never a server error or another tenant's data.

The routes are read from the application itself (`create_app`, lifespan not run), so a route
added later is covered without editing this file. A route that answers without credentials
must be listed in PUBLIC (it may answer) or SIGNED (it checks its own signature or signed
token, and an unsigned call must be refused) with the reason; anything else that answers
fails the test. Tenant A owns real objects made over HTTP (a chat with a message, a customer,
a campaign with imported targets, a KB article, a questionnaire, a caller id with its
document ...); tenant B's admin, holding every built-in role, calls each route with A's ids
in the path, the query and the JSON body. See docs/admin.md "Security hardening".
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from starlette.routing import Mount

from hub.app import create_app
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id
from hub.settings import Settings
from tests.conftest import context_for
from tests.security_support import ALL_ROLES, World, login, seeded_tenant
from tests.support import TEST_SECRET, HubProcess, Widget, close_code

# Routes that answer without credentials, path -> why that is safe. Their answers are still
# checked: no server error and none of tenant A's private data.
PUBLIC: dict[str, str] = {
    "/openapi.json": "the API description of open-source code: no tenant data",
    "/docs": "Swagger UI page for /openapi.json",
    "/docs/oauth2-redirect": "Swagger UI helper page",
    "/redoc": "ReDoc page for /openapi.json",
    "/healthz": "liveness for load balancers: component states and a count only",
    "/widget.js": "the web-chat widget script embedded on customers' sites",
    "/ws/chat": "the web-chat widget socket: a visitor reaches only the chat its visitor token signs",
    "/api/auth/login": "sign-in itself (rate limited)",
    "/api/auth/logout": "only deletes the caller's own session cookie",
    "/login": "the sign-in page",
    "/logout": "redirects to the sign-in page, deleting the session cookie",
    "/": "redirects to /agent",
    "/demo": "the demo customer web site with the widget",
    "/help/{tenant_slug}": "public help center: published articles only",
    "/help/{tenant_slug}/a/{article_slug}": "public help center article (published only)",
    "/help/{tenant_slug}/a/{article_slug}/files/{file_id}": "attachments of published articles",
    "/help/{tenant_slug}/a/{article_slug}/vote": "anonymous helpful / not helpful vote",
    "/help/{tenant_slug}/feedback": "anonymous feedback form",
    "/webrtc/offer": "click-to-call from the customer's web site (a visitor, like the widget)",
    "/static": "CSS, JavaScript and images of the dashboard pages",
    "/branding/{slug}": "the sign-in page shows a tenant's name and logo before sign-in "
    "(an unknown slug answers like an unbranded tenant)",
    "/branding/{slug}/logo": "the tenant's logo shown on its sign-in page",
}

# Routes that authenticate by a signature or a signed token rather than a session: an unsigned
# (or wrongly signed) call must be refused with one of the given statuses.
SIGNED: dict[str, tuple[str, tuple[int, ...]]] = {
    "/webhooks/actions": ("Rasa custom actions: ?token= signed with HUB_SECRET", (401, 403)),
    "/twilio/voice": ("Twilio webhook: X-Twilio-Signature", (403,)),
    "/twilio/status": ("Twilio webhook: X-Twilio-Signature", (403,)),
    "/twilio/outbound/status": ("Twilio webhook: X-Twilio-Signature", (403,)),
    "/twilio/outbound/amd": ("Twilio webhook: X-Twilio-Signature", (403,)),
    "/twilio/outbound/answer": ("Twilio webhook: X-Twilio-Signature", (403,)),
    "/twilio/sms": ("Twilio webhook: X-Twilio-Signature", (403,)),
    "/twilio/sms/status": ("Twilio webhook: X-Twilio-Signature", (403,)),
    "/twilio/media": ("Twilio Media Stream: a media token signed by the hub in customParameters", ()),
    "/u/{token}": ("email unsubscribe link: the token is signed", (400, 403, 404, 410)),
    "/q/{token}": ("questionnaire link sent by SMS / email: the token is signed", (400, 403, 404, 410)),
}

# Path parameters that name no stored object of a tenant: a 2xx for them is judged like a
# route without path parameters (allowed when it shows none of A's data).
NON_OBJECT_PARAMS: dict[str, str] = {"report": "historical", "action": "publish"}

REFUSED = {401, 403, 404, 405}
WS_REFUSED = {1008, 4401, 4403}
BOGUS_TOKEN = "not-a-valid-signed-token"
IGNORED_METHODS = {"HEAD"}


@dataclass(frozen=True)
class Endpoint:
    """One route as the app declares it; `query` and `body` come from the OpenAPI operation."""

    kind: str  # http | ws | mount
    path: str
    methods: tuple[str, ...] = ()
    query: dict[str, tuple[str, ...]] = field(default_factory=dict)  # method -> query names
    body: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # method -> kind, names

    @property
    def params(self) -> list[str]:
        return re.findall(r"{(\w+)(?::\w+)?}", self.path)


def _route_entries(app: FastAPI) -> Iterator[tuple[Any, str, set[str] | None]]:
    """(route, effective path, methods) of every route, included routers flattened."""
    try:  # FastAPI >= 0.16x keeps included routers lazy: this is its public way to flatten them
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        for route in app.routes:
            yield route, str(getattr(route, "path", "")), getattr(route, "methods", None)
        return
    for context in iter_route_contexts(app.routes):
        yield context.original_route, str(context.path), context.methods


def _schema_names(spec: dict[str, Any], schema: dict[str, Any]) -> tuple[str, ...]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec.get("components", {}).get("schemas", {}).get(name, {})
    return tuple(schema.get("properties", {}))


def discover(app: FastAPI) -> list[Endpoint]:
    """Every HTTP route, websocket and mount of the app (include_in_schema=False ones too)."""
    spec = app.openapi()
    endpoints: list[Endpoint] = []
    for route, path, methods in _route_entries(app):
        if isinstance(route, Mount):
            endpoints.append(Endpoint("mount", path))
            continue
        if methods is None:
            endpoints.append(Endpoint("ws", path))
            continue
        wanted = tuple(sorted(set(methods) - IGNORED_METHODS))
        query: dict[str, tuple[str, ...]] = {}
        body: dict[str, tuple[str, tuple[str, ...]]] = {}
        for method in wanted:
            operation = spec.get("paths", {}).get(path, {}).get(method.lower(), {})
            query[method] = tuple(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
            content = operation.get("requestBody", {}).get("content", {})
            for media, kind in (("application/json", "json"), ("multipart/form-data", "form")):
                if media in content:
                    body[method] = (kind, _schema_names(spec, content[media].get("schema", {})))
        endpoints.append(Endpoint("http", path, wanted, query, body))
    return endpoints


APP_ENDPOINTS = discover(create_app(Settings(secret=TEST_SECRET, db_name="route_inventory")))


# ------------------------------------------------------------------ calling the routes


@dataclass
class Outcome:
    endpoint: str
    method: str
    anonymous: str = ""
    other_tenant: str = ""
    problems: list[str] = field(default_factory=list)


def _fill(path: str, world: World, unknown: set[str]) -> tuple[str, set[str]]:
    """The path with A's ids; returns it and the ids it holds."""
    sent: set[str] = set()

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ("tenant_slug", "slug"):
            return world.slug
        if name == "article_slug":
            return world.article_slug
        if name == "token":
            return BOGUS_TOKEN
        if name in NON_OBJECT_PARAMS:
            return NON_OBJECT_PARAMS[name]
        if name == "file_id":
            for prefix, file_id in world.file_ids.items():
                if path.startswith(prefix):
                    sent.add(file_id)
                    return file_id
        if name in world.ids:
            sent.add(world.ids[name])
            return world.ids[name]
        unknown.add(name)
        return new_id()

    return re.sub(r"{(\w+)(?::\w+)?}", value, path), sent


def _request_parts(
    endpoint: Endpoint, method: str, world: World
) -> tuple[dict[str, str], dict[str, Any], set[str]]:
    """Query parameters and body fields named like A's objects, filled with A's ids."""
    query = {n: world.ids[n] for n in endpoint.query.get(method, ()) if n in world.ids}
    kind, names = endpoint.body.get(method, ("json", ()))
    fields = {n: world.ids[n] for n in names if n in world.ids}
    body: dict[str, Any] = {"data": fields} if kind == "form" else {"json": fields}
    if method in ("GET", "DELETE", "OPTIONS") and not fields:
        body = {}
    return query, body, set(query.values()) | set(fields.values())


def _is_login_redirect(response: httpx.Response) -> bool:
    return response.is_redirect and response.headers.get("location", "").startswith("/login")


def _leaks(response: httpx.Response, secrets: set[str]) -> list[str]:
    text = response.text
    return sorted(s for s in secrets if s and s in text)


async def _call(
    http: httpx.AsyncClient, method: str, url: str, query: dict[str, str], body: dict[str, Any]
) -> httpx.Response:
    return await http.request(method, url, params=query, **body)


def _has_object_param(endpoint: Endpoint) -> bool:
    return any(p not in NON_OBJECT_PARAMS for p in endpoint.params)


def _table(outcomes: list[Outcome]) -> str:
    width = max(len(o.endpoint) for o in outcomes)
    lines = [f"{'route':<{width}}  {'method':<7} {'no creds':<9} {'other tenant':<12}"]
    lines += [f"{o.endpoint:<{width}}  {o.method:<7} {o.anonymous:<9} {o.other_tenant:<12}" for o in outcomes]
    return "\n".join(lines)


@pytest.fixture
async def two_tenants(hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase):
    """Tenant A with its objects, tenant B's admin (every built-in role) signed in."""
    a = await seeded_tenant(hub_nobot, tenant_in, mongo)
    b = await tenant_in(hub_nobot, agents={"ann": ["billing", "general"]}, roles={"ann": ALL_ROLES})
    b_http = httpx.AsyncClient(base_url=hub_nobot.url, timeout=30, follow_redirects=False)
    try:
        await login(b_http, b["slug"], "ann@t.test")
        yield a.world, a.admin, b_http, b
    finally:
        await a.close()
        await b_http.aclose()


async def _snapshot(mongo: EmbeddedDatabase, hub: HubProcess, tenant_id: str) -> dict[str, list[Any]]:
    """Tenant A's stored documents in the collections B's calls could touch."""
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    # written by the hub's own loops as time passes (router, report facts), or logs of the calls
    volatile = {"agent_states", "fact_rollups", "contact_facts", "events", "rate_limits", "audit_log"}
    try:
        names = sorted(set(await ctx.db.db.list_collection_names()) - volatile)
        return {
            name: sorted(
                json.dumps(d, default=str, sort_keys=True)
                for d in await ctx.db.db[name].find({"tenant_id": tenant_id}).to_list(None)
            )
            for name in names
        }
    finally:
        await ctx.db.close()


async def test_every_http_route_refuses_strangers_and_other_tenants(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, two_tenants: Any
) -> None:
    world, _, b_http, _ = two_tenants
    anonymous = httpx.AsyncClient(base_url=hub_nobot.url, timeout=30, follow_redirects=False)
    outcomes: list[Outcome] = []
    unknown: set[str] = set()
    public_seen: set[str] = set()
    before = await _snapshot(mongo, hub_nobot, world.ids["tenant_id"])
    try:
        for endpoint in APP_ENDPOINTS:
            if endpoint.kind == "mount":
                outcomes += await _check_mount(anonymous, endpoint)
                continue
            if endpoint.kind != "http":
                continue
            url, path_ids = _fill(endpoint.path, world, unknown)
            public = endpoint.path in PUBLIC
            signed = SIGNED.get(endpoint.path)
            public_seen |= {endpoint.path} & (set(PUBLIC) | set(SIGNED))
            for method in endpoint.methods:
                outcome = Outcome(endpoint.path, method)
                outcomes.append(outcome)
                query, body, sent = _request_parts(endpoint, method, world)
                sent |= path_ids
                # 1. no credentials at all
                response = await _call(anonymous, method, url, query, body)
                outcome.anonymous = str(response.status_code)
                if response.status_code >= 500:
                    outcome.problems.append(f"no credentials: server error {response.status_code}")
                elif signed is not None:
                    if signed[1] and response.status_code not in signed[1]:
                        outcome.problems.append(
                            f"unsigned call answered {response.status_code}, expected {signed[1]}"
                        )
                elif public:
                    if leaked := _leaks(response, world.markers):
                        outcome.problems.append(f"public route shows A's private data {leaked}")
                elif not (response.status_code in REFUSED or _is_login_redirect(response)):
                    outcome.problems.append(
                        f"answered {response.status_code} without credentials (not in PUBLIC / SIGNED)"
                    )
                # 2. tenant B's admin with A's ids
                # pages read the session cookie; a GET needs no CSRF token with it
                cookie = (
                    {"Cookie": f"hub_session={b_http.headers['Authorization'][7:]}"}
                    if method == "GET"
                    else {}
                )
                response = await b_http.request(method, url, params=query, headers=cookie, **body)
                outcome.other_tenant = str(response.status_code)
                status = response.status_code
                if status >= 500:
                    outcome.problems.append(f"other tenant: server error {status}: {response.text[:200]}")
                elif signed is not None:
                    if signed[1] and status not in signed[1]:
                        outcome.problems.append(f"other tenant's unsigned call answered {status}")
                elif leaked := _leaks(response, world.secrets(sent)):
                    outcome.problems.append(f"other tenant sees A's data {leaked}: {response.text[:200]}")
                elif (200 <= status < 300 and _has_object_param(endpoint) and not public) or (
                    300 <= status < 400 and not _is_login_redirect(response) and not public
                ):
                    outcome.problems.append(
                        f"other tenant's call on A's objects answered {status}: {response.text[:200]}"
                    )
                if status == 422:
                    outcome.other_tenant += "*"  # refused by validation before the tenant check
    finally:
        await anonymous.aclose()
    after = await _snapshot(mongo, hub_nobot, world.ids["tenant_id"])
    print("\n" + _table(outcomes))
    print("* = 422: the body was refused before any tenant check (no data either way)")
    if unknown:
        print(f"path parameters filled with a random id (no object of A's by that name): {sorted(unknown)}")
    offenders = [f"{o.method} {o.endpoint}: {p}" for o in outcomes for p in o.problems]
    stale = sorted((set(PUBLIC) | set(SIGNED)) - public_seen - {e.path for e in APP_ENDPOINTS})
    assert not stale, f"PUBLIC / SIGNED name routes the app no longer has: {stale}"
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    assert not changed, f"tenant B's calls changed tenant A's stored documents in {changed}"
    assert not offenders, "routes that are not refused:\n" + "\n".join(offenders)
    http_routes = sum(1 for e in APP_ENDPOINTS if e.kind == "http")
    assert http_routes >= 200 and len(outcomes) >= http_routes


async def _check_mount(anonymous: httpx.AsyncClient, endpoint: Endpoint) -> list[Outcome]:
    """A mount is only acceptable as PUBLIC static files that stay inside their folder."""
    outcome = Outcome(endpoint.path, "GET")
    if endpoint.path not in PUBLIC:
        outcome.problems.append("a mounted app that is not in PUBLIC: add a check for it")
        return [outcome]
    asset = await anonymous.get(f"{endpoint.path}/app.css")
    escape = await anonymous.get(f"{endpoint.path}/..%2f..%2fhub%2fsettings.py")
    outcome.anonymous = f"{asset.status_code}/{escape.status_code}"
    outcome.other_tenant = "-"
    if asset.status_code != 200:
        outcome.problems.append(f"static asset answered {asset.status_code}")
    if escape.status_code != 404:
        outcome.problems.append(f"a path outside the static folder answered {escape.status_code}")
    return [outcome]


# ------------------------------------------------------------------ websockets


def _twilio_start(token: str) -> list[dict[str, Any]]:
    """A Twilio Media Streams handshake whose customParameters carry `token`."""
    sid = f"MZ{new_id()}"
    return [
        {"event": "connected", "protocol": "Call", "version": "1.0.0"},
        {
            "event": "start",
            "streamSid": sid,
            "start": {
                "accountSid": "AC" + "1" * 32,
                "streamSid": sid,
                "callSid": f"CA{new_id()}",
                "tracks": ["inbound"],
                "customParameters": {"token": token},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        },
    ]


async def _ws_probe(
    url: str, frames: list[dict[str, Any]], wait_s: float = 2.0
) -> tuple[str, int | None, str]:
    """Connect, send `frames`, read for `wait_s`: (how it ended, close code, text received)."""
    received: list[str] = []
    try:
        async with websockets.connect(url, open_timeout=10) as ws:
            for frame in frames:
                await ws.send(json.dumps(frame))
            deadline = asyncio.get_running_loop().time() + wait_s
            while (remaining := deadline - asyncio.get_running_loop().time()) > 0:
                try:
                    received.append(str(await asyncio.wait_for(ws.recv(), remaining)))
                except TimeoutError:
                    break
            return "open", None, "".join(received)
    except websockets.InvalidStatus as exc:
        return "http", exc.response.status_code, ""
    except websockets.ConnectionClosed as exc:
        return "closed", close_code(exc), "".join(received)


async def test_every_websocket_refuses_strangers_and_other_tenants(
    hub_nobot: HubProcess, two_tenants: Any
) -> None:
    world, _, b_http, _ = two_tenants
    b_token = b_http.headers["Authorization"][7:]
    sockets = [e for e in APP_ENDPOINTS if e.kind == "ws"]
    rows: list[str] = []
    problems: list[str] = []
    for endpoint in sockets:
        url = f"{hub_nobot.ws_url}{endpoint.path}"
        if endpoint.path == "/ws/chat":
            rows.append(f"{endpoint.path}: public widget socket, checked by the resume test below")
            continue
        probe = _twilio_start if endpoint.path == "/twilio/media" else (lambda _t: [])
        # no credentials
        how, code, text = await _ws_probe(url, probe(""))
        refused = (how == "http" and code in (401, 403)) or (how == "closed" and code in WS_REFUSED)
        if not refused:
            problems.append(f"{endpoint.path} without credentials: {how} {code}")
        # tenant B's token: refused, or B's own stream with nothing of A's
        sep = "&" if "?" in url else "?"
        how_b, code_b, text_b = await _ws_probe(f"{url}{sep}token={b_token}", probe(b_token))
        if leaked := _leaks_text(text + text_b, world.secrets(set())):
            problems.append(f"{endpoint.path} shows A's data to B: {leaked}")
        if how_b == "closed" and code_b == 1011:
            problems.append(f"{endpoint.path} with B's token: server error 1011")
        rows.append(f"{endpoint.path}: no creds {how} {code}; other tenant {how_b} {code_b}")
    print("\n" + "\n".join(rows))
    assert len(sockets) >= 4
    assert not problems, "\n".join(problems)


def _leaks_text(text: str, secrets: set[str]) -> list[str]:
    return sorted(s for s in secrets if s and s in text)


async def test_widget_socket_cannot_resume_another_visitors_chat(
    hub_nobot: HubProcess, two_tenants: Any
) -> None:
    """/ws/chat is public: a stranger naming A's contact, with no token or its own visitor
    token, gets a fresh chat and none of A's messages."""
    world, _, _, b = two_tenants
    stranger = Widget(hub_nobot.ws_url, b["slug"])
    await stranger.connect()
    own_token = stranger.token
    await stranger.close()
    for tenant, token in ((world.slug, None), (world.slug, own_token), (b["slug"], own_token)):
        widget = Widget(hub_nobot.ws_url, tenant)
        widget.token, widget.contact_id = token, world.ids["contact_id"]
        try:
            welcome = await widget.connect()
            await asyncio.sleep(0.5)
            with_frames = json.dumps(widget.frames)
            assert welcome.get("contact_id") != world.ids["contact_id"], welcome
            assert not _leaks_text(with_frames, world.markers), with_frames[:300]
        except websockets.ConnectionClosed as exc:
            assert close_code(exc) in (4400, 4401, 4403, 4404)
        finally:
            await widget.close()
