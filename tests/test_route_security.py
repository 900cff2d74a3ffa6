"""Every HTTP route and websocket of the hub, called with no credentials and with another
tenant's: refused, and never a server error or another tenant's data.

The routes are read from the application itself (`create_app`, lifespan not run), so a route
added later is covered without editing this file. A route that answers without credentials
must be listed in PUBLIC (it may answer) or SIGNED (it checks its own signature or signed
token, and an unsigned call must be refused) with the reason; anything else that answers
fails the test. Tenant A owns real objects made over HTTP (a chat with a message, a customer,
a campaign with imported targets, a KB article, a questionnaire, a caller id with its
document, a rate group, a SIP trunk and route, a Twilio account, a custom role ...). A is a
reseller below an operator. Two other tenants, each with an admin holding every built-in role,
call each route with A's ids in the path, the query and the JSON body: B, A's sibling below
the same operator, and C, A's own customer (a tenant below must not read or change what its
provider owns, except the rates it is charged). See docs/admin.md "Security hardening".
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from starlette.routing import Mount

from bot.ivr import DEFAULT_FLOW
from hub.app import create_app
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id
from hub.settings import Settings
from tests.conftest import context_for, make_tenant
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

# Names of A's objects that are names rather than ids: filled into paths only. Another tenant may
# hold an object of the same name, and a body or filter carrying one would make B create it
# (a role, a DNC entry ...), after which B's own listings would look like A's data.
PATH_ONLY: dict[str, str] = {
    "name": "a role name (unique per tenant only)",
    "number": "a phone number (B may list it as its own DNC entry or caller id)",
    "prefix": "a rate prefix (unique per rate group only)",
}


def sample_bodies(world: World) -> dict[tuple[str, str], dict[str, Any]]:
    """Valid bodies (httpx keyword arguments; `params` adds query parameters) for routes that name
    A's objects but would refuse a body of ids alone by validation, before any tenant check: with
    these, the handler's own tenant check answers. Another tenant must be refused on each (never a
    2xx), and a request-validation 422 on any route naming A's objects fails the test."""
    ids, csv_file = world.ids, ("rates.csv", b"prefix,price\n1,0\n", "text/csv")
    card = {"name": "Taken", "items": [{"key": "greeting", "label": "Greets", "kind": "yes_no", "weight": 1}]}
    # a flow of the caller's own that plays A's uploaded prompt (a number of its own: the prompt
    # check must refuse it, not the number inventory)
    flow = DEFAULT_FLOW("ignored", "+16465550142")
    flow["nodes"]["welcome"]["prompt"] = {"audio_id": ids["prompt_id"]}
    return {
        # the agent desk and supervision on A's contact
        ("POST", "/api/contacts/{contact_id}/messages"): {"json": {"text": "written by another tenant"}},
        ("POST", "/api/contacts/{contact_id}/wrapup"): {"json": {"disposition": "resolved"}},
        ("POST", "/api/calls/{contact_id}/monitor"): {"json": {"mode": "barge"}},
        # routing, quality and campaigns: A's queue, agent, scorecard, evaluation and target
        ("PUT", "/api/queues/{queue_id}"): {"json": {"name": "Taken", "skills": {"billing": 1}}},
        ("POST", "/api/queues"): {
            "json": {
                "name": "Overflow into A",
                "skills": {"billing": 1},
                "overflow_queue_id": ids["queue_id"],
            }
        },
        ("PUT", "/api/agents/{user_id}/skills"): {"json": {"skills": {"billing": 9}}},
        ("POST", "/api/announcements"): {
            "json": {"text": "to A's agent", "audience": {"agent_ids": [ids["user_id"]]}}
        },
        ("PUT", "/api/quality/scorecards/{scorecard_id}"): {"json": card},
        ("POST", "/api/quality/evaluations"): {
            "json": {
                "contact_id": ids["contact_id"],
                "scorecard_id": ids["scorecard_id"],
                "recording_id": ids["recording_id"],
                "answers": {"greeting": False},
            }
        },
        ("PUT", "/api/quality/evaluations/{evaluation_id}"): {
            "json": {"answers": {"greeting": False}, "comments": "amended by another tenant"}
        },
        ("POST", "/api/campaigns"): {
            "json": {"name": "Uses A's survey", "type": "sms", "questionnaire_id": ids["questionnaire_id"]}
        },
        ("POST", "/api/campaigns/{campaign_id}/targets/{target_id}/result"): {
            "json": {"disposition": "success", "note": "by another tenant"}
        },
        ("POST", "/api/dnc/opt-out"): {"json": {"number": "+12125550147", "campaign_id": ids["campaign_id"]}},
        ("POST", "/api/ivr/flows"): {"json": flow},
        # the knowledge base: versions of A's article
        ("GET", "/api/kb/articles/{article_id}/diff"): {"params": {"a": 1, "b": 1}},
        ("POST", "/api/kb/articles/{article_id}/rollback"): {"json": {"version": 1}},
        # administration
        ("POST", "/api/admin/users"): {
            "json": {"email": "holds-a-role@t.test", "name": "Holds A's role", "roles": [ids["name"]]}
        },
        ("PUT", "/api/admin/telephony/trunks/{trunk_id}"): {
            "json": {"name": "Taken", "host": "sip.example.org", "password": "changed-by-b"}
        },
        ("PUT", "/api/admin/telephony/routes/{route_id}"): {
            "json": {"name": "Taken", "pattern": "", "trunk_id": ids["trunk_id"]}
        },
        ("POST", "/api/admin/telephony/routes"): {
            "json": {"name": "Over A's trunk", "trunk_id": ids["trunk_id"]}
        },
        ("POST", "/api/admin/telephony/numbers"): {
            "json": {"number": ids["number"], "tenant_id": ids["tenant_id"]}
        },
        ("PUT", "/api/admin/telephony/twilio"): {
            "json": {"account_sid": ids["account_sid"], "auth_token": "b" * 32}
        },
        ("POST", "/api/admin/tenants"): {
            "json": {
                "slug": f"x-{new_id()[:10]}",
                "name": "Planted below A",
                "level": "customer",
                "parent_id": ids["tenant_id"],
                "admin_email": "intruder@t.test",
            }
        },
        ("PATCH", "/api/billing/groups/{group_id}"): {"json": {"name": "Taken"}},
        ("PUT", "/api/billing/groups/{group_id}/rates"): {"json": {"prefix": "1", "price": "0"}},
        ("POST", "/api/billing/groups/{group_id}/rates/import"): {"files": {"file": csv_file}},
        ("POST", "/api/billing/accounts/{tenant_id}/top-ups"): {"json": {"amount": "1000"}},
        ("PUT", "/api/billing/accounts/{tenant_id}"): {"json": {"markup_pct": -50, "stop_below": "-1000"}},
    }


# Body and query fields that name one of A's objects under another name: filled with that id.
ALIASES: dict[str, str] = {
    "agent_id": "user_id",
    "agent": "user_id",
    "queue": "queue_id",
    "parent_id": "tenant_id",
    "sms_group_id": "group_id",
    "inbound_group_id": "group_id",
}

# Routes naming A's objects where a 422 is acceptable, and why: no body is valid for any caller
# there, so no sample can reach the handler's tenant check. Without an entry, a request-validation
# 422 on a call naming A's objects fails, and so does any 422 on a route with an object in its
# path (the handler judged the body before looking the object up). Empty today.
VALIDATION_FIRST: dict[tuple[str, str], str] = {}

# Path parameters with no object of A's in the seeded world, and why (an in-memory call
# invitation lives only while a softphone rings). Any other name must get a real object.
NO_OBJECT_YET: dict[str, str] = {
    "invite_id": "an agent's call invitation: in memory, only while a connected softphone rings"
}

# What C, A's customer, may legitimately reach of A's: (method, path) -> why.
CHILD_MAY_READ: dict[tuple[str, str], str] = {
    ("GET", "/api/billing/groups/{group_id}/rates"): "C is rated on A's group: it reads the entries "
    "at its own marked-up prices",
    ("GET", "/api/billing/groups/{group_id}/rates/export"): "the same entries as a file",
}
# A's ids C knows by being below A: its parent (tenant `parent_id`), the group it is rated on
# and that group's entries.
CHILD_KNOWS = ("tenant_id", "group_id", "voice_group_id", "prefix")

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
    child: str = ""
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
    ids = {n: v for n, v in world.ids.items() if n not in PATH_ONLY}
    ids |= {alias: ids[name] for alias, name in ALIASES.items()}
    query = {n: ids[n] for n in endpoint.query.get(method, ()) if n in ids}
    kind, names = endpoint.body.get(method, ("json", ()))
    fields = {n: ids[n] for n in names if n in ids}
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
    lines = [f"{'route':<{width}}  {'method':<7} {'no creds':<9} {'sibling B':<10} {'customer C':<10}"]
    lines += [
        f"{o.endpoint:<{width}}  {o.method:<7} {o.anonymous:<9} {o.other_tenant:<10} {o.child:<10}"
        for o in outcomes
    ]
    return "\n".join(lines)


@dataclass
class Tenants:
    """Tenant A (a reseller) with its objects; B, its sibling below the same operator, and C, its
    customer; B's and C's admins (every built-in role) signed in."""

    world: World
    a_admin: httpx.AsyncClient
    b: dict[str, Any]
    b_http: httpx.AsyncClient
    c: dict[str, Any]
    c_http: httpx.AsyncClient


@pytest.fixture(scope="module")
async def tenants(hub_nobot: HubProcess, mongo: EmbeddedDatabase) -> AsyncIterator[Tenants]:
    """Built once for the module (~10 s): the tests only read A's objects, and the HTTP test
    proves that B's and C's calls leave them unchanged."""

    async def tenant_in(hub: HubProcess, **kwargs: Any) -> dict[str, Any]:
        return await make_tenant(mongo.uri, hub.env["HUB_DB_NAME"], **kwargs)

    a = await seeded_tenant(hub_nobot, tenant_in, mongo)
    everything: dict[str, Any] = {"agents": {"ann": ["billing", "general"]}, "roles": {"ann": ALL_ROLES}}
    b = await tenant_in(hub_nobot, level="reseller", parent=a.provider["tenant"], **everything)
    c = await tenant_in(hub_nobot, level="customer", parent=a.tenant["tenant"], **everything)
    # A rates its customer on its own group with a markup, as a reseller does
    rated = await a.admin.put(
        f"/api/billing/accounts/{c['tenant']['_id']}",
        json={"voice_group_id": a.world.ids["group_id"], "markup_pct": 50},
    )
    assert rated.status_code == 200, rated.text
    b_http = httpx.AsyncClient(base_url=hub_nobot.url, timeout=30, follow_redirects=False)
    c_http = httpx.AsyncClient(base_url=hub_nobot.url, timeout=30, follow_redirects=False)
    try:
        await login(b_http, b["slug"], "ann@t.test")
        await login(c_http, c["slug"], "ann@t.test")
        yield Tenants(a.world, a.admin, b, b_http, c, c_http)
    finally:
        await a.close()
        await b_http.aclose()
        await c_http.aclose()


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


def _changed(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> list[str]:
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


async def _as_other_tenant(
    http: httpx.AsyncClient,
    endpoint: Endpoint,
    method: str,
    call: tuple[str, dict[str, str], dict[str, Any]],
    secrets: set[str],
    sampled: set[tuple[str, str]],
    names: bool,
    may_answer: bool = False,
) -> tuple[httpx.Response, list[str]]:
    """Another tenant's admin calls the route with A's ids: its answer and what is wrong with it.
    A call that names A's objects (`names`: ids in its path, query or body) must be refused by the
    handler itself, not by request validation before any tenant check: a route called with a
    sample body (`sampled`) always, any other unless listed in VALIDATION_FIRST."""
    url, query, body = call
    # pages read the session cookie; a GET needs no CSRF token with it
    cookie = {"Cookie": f"hub_session={http.headers['Authorization'][7:]}"} if method == "GET" else {}
    response = await http.request(method, url, params=query, headers=cookie, **body)
    status, public, signed = response.status_code, endpoint.path in PUBLIC, SIGNED.get(endpoint.path)
    names_a = (method, endpoint.path) in sampled or (_has_object_param(endpoint) and not public)
    problems: list[str] = []
    if status >= 500:
        problems.append(f"server error {status}: {response.text[:200]}")
    elif signed is not None:
        if signed[1] and status not in signed[1]:
            problems.append(f"unsigned call answered {status}")
    elif leaked := _leaks(response, secrets):
        problems.append(f"sees A's data {leaked}: {response.text[:200]}")
    elif not may_answer and (
        (200 <= status < 300 and names_a)
        or (300 <= status < 400 and not _is_login_redirect(response) and not public)
    ):
        problems.append(f"call on A's objects answered {status}: {response.text[:200]}")
    elif (method, endpoint.path) in sampled and _schema_refusal(response):
        problems.append(f"the sample body does not validate (fix sample_bodies): {response.text[:200]}")
    elif (method, endpoint.path) in VALIDATION_FIRST:
        pass
    elif names and _schema_refusal(response):
        problems.append(
            "refused by request validation before the tenant check: add a valid body to sample_bodies "
            f"(or a reason to VALIDATION_FIRST): {response.text[:200]}"
        )
    elif status == 422 and _has_object_param(endpoint) and not public:
        problems.append(
            "the handler judged the body before looking up A's object named in the path (a 422, "
            f"not a 404): send a valid body from sample_bodies: {response.text[:200]}"
        )
    return response, problems


def _schema_refusal(response: httpx.Response) -> bool:
    """A 422 from FastAPI's request validation (a list of errors), not from the handler."""
    if response.status_code != 422:
        return False
    try:
        return isinstance(response.json().get("detail"), list)
    except ValueError:
        return False


def _ids_in(value: Any, ids: set[str]) -> set[str]:
    """The ids of `ids` found anywhere in a (nested) request body."""
    if isinstance(value, dict):
        return set().union(*(_ids_in(v, ids) for v in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(_ids_in(v, ids) for v in value))
    return {value} & ids if isinstance(value, str) else set()


def _shown(response: httpx.Response) -> str:
    # * = refused by request validation before any tenant check (no data either way)
    return str(response.status_code) + ("*" if _schema_refusal(response) else "")


async def test_every_http_route_refuses_strangers_and_other_tenants(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenants: Tenants
) -> None:
    world = tenants.world
    anonymous = httpx.AsyncClient(base_url=hub_nobot.url, timeout=30, follow_redirects=False)
    outcomes: list[Outcome] = []
    calls: list[tuple[Outcome, Endpoint, tuple[str, dict[str, str], dict[str, Any]], set[str]]] = []
    unknown: set[str] = set()
    public_seen: set[str] = set()
    samples, sampled = sample_bodies(world), set[tuple[str, str]]()
    a_tenant = world.ids["tenant_id"]
    before = await _snapshot(mongo, hub_nobot, a_tenant)
    try:
        # pass 1: no credentials, then B (A's sibling)
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
                if sample := samples.get((method, endpoint.path)):
                    body = {k: v for k, v in sample.items() if k != "params"}
                    query = {**query, **{k: str(v) for k, v in sample.get("params", {}).items()}}
                    sent |= _ids_in(sample, set(world.ids.values()))
                    sampled.add((method, endpoint.path))
                sent |= path_ids
                calls.append((outcome, endpoint, (url, query, body), sent))
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
                response, problems = await _as_other_tenant(
                    tenants.b_http,
                    endpoint,
                    method,
                    (url, query, body),
                    world.secrets(sent),
                    sampled,
                    bool(sent),
                )
                outcome.other_tenant = _shown(response)
                outcome.problems += [f"sibling B: {p}" for p in problems]
        after_b = await _snapshot(mongo, hub_nobot, a_tenant)
        # pass 2: C, A's own customer, with the same calls
        known = {world.ids[name] for name in CHILD_KNOWS}
        child_read: set[tuple[str, str]] = set()
        for outcome, endpoint, call, sent in calls:
            key = (outcome.method, outcome.endpoint)
            response, problems = await _as_other_tenant(
                tenants.c_http,
                endpoint,
                outcome.method,
                call,
                world.secrets(sent) - known,
                sampled,
                bool(sent),
                key in CHILD_MAY_READ,
            )
            outcome.child = _shown(response)
            outcome.problems += [f"customer C: {p}" for p in problems]
            if key in CHILD_MAY_READ and response.status_code == 200:
                child_read.add(key)
    finally:
        await anonymous.aclose()
    after_c = await _snapshot(mongo, hub_nobot, a_tenant)
    print("\n" + _table(outcomes))
    print("* = 422 from request validation: refused before any tenant check (no data either way)")
    if unknown:
        print(f"path parameters filled with a random id (no object of A's by that name): {sorted(unknown)}")
    offenders = [f"{o.method} {o.endpoint}: {p}" for o in outcomes for p in o.problems]
    stale = sorted((set(PUBLIC) | set(SIGNED)) - public_seen - {e.path for e in APP_ENDPOINTS})
    assert not stale, f"PUBLIC / SIGNED name routes the app no longer has: {stale}"
    declared = {(m, e.path) for e in APP_ENDPOINTS for m in e.methods}
    assert set(VALIDATION_FIRST) <= declared, (
        f"VALIDATION_FIRST names routes the app no longer has: {set(VALIDATION_FIRST) - declared}"
    )
    assert sampled == set(samples), (
        f"sample bodies for routes the app no longer has: {set(samples) - sampled}"
    )
    assert child_read == set(CHILD_MAY_READ), (
        f"C could not read what it is rated on: {set(CHILD_MAY_READ) - child_read}"
    )
    assert not (changed := _changed(before, after_b)), f"B's calls changed A's stored documents in {changed}"
    assert not (changed := _changed(after_b, after_c)), f"C's calls changed A's stored documents in {changed}"
    assert not offenders, "routes that are not refused:\n" + "\n".join(offenders)
    http_routes = sum(1 for e in APP_ENDPOINTS if e.kind == "http")
    assert http_routes >= 200 and len(outcomes) >= http_routes
    missing = sorted(unknown - set(NO_OBJECT_YET))
    assert not missing, (
        f"path parameters without an object of A's (seed one in tests/security_support.py): {missing}"
    )


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
    hub_nobot: HubProcess, tenants: Tenants
) -> None:
    world = tenants.world
    others = {
        "sibling B": (tenants.b_http.headers["Authorization"][7:], set()),
        "customer C": (tenants.c_http.headers["Authorization"][7:], {world.ids[n] for n in CHILD_KNOWS}),
    }
    sockets = [e for e in APP_ENDPOINTS if e.kind == "ws"]
    rows: list[str] = []
    problems: list[str] = []
    for endpoint in sockets:
        url = f"{hub_nobot.ws_url}{endpoint.path}"
        if endpoint.path == "/ws/chat":
            rows.append(f"{endpoint.path}: public widget socket, checked by the resume test below")
            continue
        probe = _twilio_start if endpoint.path == "/twilio/media" else (lambda _t: [])
        sep = "&" if "?" in url else "?"
        # no credentials, and B's and C's tokens (at once: each probe listens for 2 s)
        (how, code, text), *theirs = await asyncio.gather(
            _ws_probe(url, probe("")),
            *(_ws_probe(f"{url}{sep}token={token}", probe(token)) for token, _ in others.values()),
        )
        refused = (how == "http" and code in (401, 403)) or (how == "closed" and code in WS_REFUSED)
        if not refused:
            problems.append(f"{endpoint.path} without credentials: {how} {code}")
        if leaked := _leaks_text(text, world.secrets(set())):
            problems.append(f"{endpoint.path} shows A's data without credentials: {leaked}")
        row = f"{endpoint.path}: no creds {how} {code}"
        # another tenant's token: refused, or its own stream with nothing of A's
        for (who, (_, known)), (how_o, code_o, text_o) in zip(others.items(), theirs, strict=True):
            if leaked := _leaks_text(text_o, world.secrets(set()) - known):
                problems.append(f"{endpoint.path} shows A's data to {who}: {leaked}")
            if how_o == "closed" and code_o == 1011:
                problems.append(f"{endpoint.path} with {who}'s token: server error 1011")
            row += f"; {who} {how_o} {code_o}"
        rows.append(row)
    print("\n" + "\n".join(rows))
    assert len(sockets) >= 4
    assert not problems, "\n".join(problems)


def _leaks_text(text: str, secrets: set[str]) -> list[str]:
    return sorted(s for s in secrets if s and s in text)


async def test_widget_socket_cannot_resume_another_visitors_chat(
    hub_nobot: HubProcess, tenants: Tenants
) -> None:
    """/ws/chat is public: a stranger naming A's contact, with no token or its own visitor
    token, gets a fresh chat and none of A's messages."""
    world, b = tenants.world, tenants.b
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


async def test_a_sibling_cannot_hand_down_what_a_holds_nor_a_customer_see_its_costs(tenants: Tenants) -> None:
    """What the route-by-route calls cannot show: B, with a customer of its own, tries to give it
    A's rate group and A's number, and to answer A's number with its own flow; C, rated on A's
    group, reads its own marked-up prices and never A's (A sells at 0.05, C pays 0.075)."""
    world, b_http, c_http = tenants.world, tenants.b_http, tenants.c_http
    slug = f"t-{new_id()[:10]}"
    made = await b_http.post(
        "/api/admin/tenants",
        json={"slug": slug, "name": "B's customer", "level": "customer", "admin_email": f"admin@{slug}.test"},
    )
    assert made.status_code == 201, made.text
    b_child = made.json()["tenant"]["id"]
    group = await b_http.put(
        f"/api/billing/accounts/{b_child}", json={"voice_group_id": world.ids["group_id"]}
    )
    assert group.status_code == 404, group.text
    number = await b_http.post(
        "/api/admin/telephony/numbers", json={"number": world.ids["number"], "tenant_id": b_child}
    )
    assert number.status_code == 409, number.text
    flow = await b_http.post("/api/ivr/flows", json=DEFAULT_FLOW("x", world.ids["number"]))
    assert flow.status_code == 409 and "another tenant" in flow.json()["detail"], flow.text

    group_id, prefix = world.ids["group_id"], world.ids["prefix"]
    listed = await c_http.get(f"/api/billing/groups/{group_id}/rates")
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()["rates"]
    assert (entry["prefix"], entry["price"], entry["price_micros"]) == (prefix, "0.075", 75_000)
    exported = await c_http.get(f"/api/billing/groups/{group_id}/rates/export", params={"format": "csv"})
    assert exported.status_code == 200 and "0.075" in exported.text, exported.text
    for answer in (listed, exported):
        assert "0.05," not in answer.text and "50000" not in answer.text and '"0.05"' not in answer.text


async def test_a_campaign_names_only_its_own_tenants_objects(tenants: Tenants) -> None:
    """Found by the sample bodies: a campaign stored another tenant's questionnaire id (and would
    have stored its flow, queue, prompts and agents). Each is now refused when saved (422)."""
    ids, b_http = tenants.world.ids, tenants.b_http
    base: dict[str, Any] = {"name": "B's campaign", "type": "preview"}
    foreign: dict[str, dict[str, Any]] = {
        "flow_id": {"type": "robot", "flow_id": ids["flow_id"]},
        "questionnaire_id": {"type": "sms", "questionnaire_id": ids["questionnaire_id"]},
        "queue_id": {"queue_id": ids["queue_id"]},
        "prompt_id": {"type": "broadcast", "prompt_id": ids["prompt_id"]},
        "amd.message_prompt_id": {"amd": {"enabled": True, "message_prompt_id": ids["prompt_id"]}},
        "agent_ids": {"agent_ids": [ids["user_id"]]},
    }
    for field_name, extra in foreign.items():
        made = await b_http.post("/api/campaigns", json={**base, **extra})
        assert made.status_code == 422 and field_name in made.json()["detail"], (field_name, made.text)
    own = await b_http.post("/api/campaigns", json={**base, "queue_id": "skill:billing"})
    assert own.status_code == 201, own.text
    edited = await b_http.put(f"/api/campaigns/{own.json()['id']}", json={"flow_id": ids["flow_id"]})
    assert edited.status_code == 422 and "flow_id" in edited.json()["detail"], edited.text
