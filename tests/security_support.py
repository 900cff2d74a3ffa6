"""Tenant A's real objects for the security tests: made the way its staff make them.

tests/test_route_security.py calls every route with these ids as another tenant;
tests/test_openapi_fuzz.py hands them to schemathesis so fuzzed calls reach past the 404.
Tenant A is a reseller below an operator ("the provider"), so that the objects only a tenant
with a parent can hold exist too: a dialled number the provider allocated, a billing account
the provider configured and topped up.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
import secrets
import time
import wave
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import phonenumbers

from bot.ivr import DEFAULT_FLOW
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id
from media.call import store_wav
from media.recording import store_recording
from tests.conftest import AGENT_PASSWORD, context_for
from tests.support import HubProcess, Widget


@dataclass
class World:
    """Tenant A's objects: ids by path-parameter name, and strings only A's staff may see."""

    slug: str
    ids: dict[str, str]
    markers: set[str]
    article_slug: str
    file_ids: dict[str, str]  # path prefix -> a file of A's under that prefix
    widget: Widget
    visitor_token: str

    def secrets(self, sent: set[str]) -> set[str]:
        """What must not appear in B's answers: A's markers, and A's ids that B did not send."""
        return self.markers | (set(self.ids.values()) - sent)


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x01\x00" * 4000)
    return buffer.getvalue()


def _fresh_number() -> str:
    """A valid, random US number: flows are unique per number across the database."""
    while True:
        number = f"+1646{random.randrange(2 * 10**6, 10**7)}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


def _ok(response: httpx.Response, what: str) -> dict[str, Any]:
    assert response.status_code in (200, 201, 202), f"{what}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    return body


async def login(http: httpx.AsyncClient, slug: str, email: str) -> None:
    response = await http.post(
        "/api/auth/login", json={"tenant": slug, "email": email, "password": AGENT_PASSWORD}
    )
    response.raise_for_status()
    http.headers["Authorization"] = f"Bearer {response.json()['token']}"


ALL_ROLES = ["admin", "supervisor", "agent", "editor", "finance", "technician", "service"]


async def build_world(
    hub: HubProcess,
    mongo: EmbeddedDatabase,
    t: dict[str, Any],
    desk: httpx.AsyncClient,
    http: httpx.AsyncClient,
    above: httpx.AsyncClient,
) -> World:
    """Real objects of tenant A, made the way its staff make them (over HTTP where they can):
    `desk` is Ann the agent's client, `http` Sam the admin's, `above` the provider's admin."""
    mark = f"zqa{new_id()[:12]}"
    markers = {mark}  # the tenant name is public (help center), its ids and this mark are not
    tenant_id = t["tenant"]["_id"]
    ids: dict[str, str] = {"tenant_id": tenant_id, "user_id": t["users"]["ann"]["_id"]}

    # a web chat with a message from an identified customer, taken, answered and closed by Ann
    _ok(await desk.post("/api/agent/presence", json={"state": "available"}), "presence")
    widget = Widget(hub.ws_url, t["slug"])
    await widget.connect()
    await widget.send({"type": "identify", "email": f"{mark}@example.com", "name": f"Cust {mark}"})
    await widget.expect("identified")
    ack = await widget.say(f"my private question {mark}-chat")
    contact_id = ack["contact_id"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        offers = (await desk.get("/api/agent/contacts")).json()["offers"]
        if any(o["contact_id"] == contact_id for o in offers):
            break
        await asyncio.sleep(0.2)
    _ok(await desk.post(f"/api/contacts/{contact_id}/accept"), "accept")
    _ok(await desk.post(f"/api/contacts/{contact_id}/messages", json={"text": f"reply {mark}"}), "reply")
    _ok(await desk.post(f"/api/contacts/{contact_id}/wrapup", json={"disposition": "resolved"}), "wrapup")
    ids["contact_id"] = contact_id
    markers.add(f"{mark}@example.com")

    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        customer = await ctx.db.customers.find_one({"tenant_id": tenant_id, "emails": f"{mark}@example.com"})
        assert customer is not None
        ids["customer_id"] = customer["_id"]
        recording = await store_recording(
            ctx,
            tenant_id=tenant_id,
            contact_id=contact_id,
            wav=_wav(),
            sample_rate=8000,
            duration_s=0.5,
            started_at=datetime.now(UTC),
            agent_ids=[ids["user_id"]],
        )
        ids["recording_id"] = recording["_id"]
        # a voicemail left on a call, stored the way media/call.py stores it
        ids["audio_id"] = await store_wav(
            ctx, "voicemail", b"\x01\x00" * 800, 8000, {"tenant_id": tenant_id, "contact_id": contact_id}
        )
        task_id = new_id()
        await ctx.db.tasks.insert_one(
            {
                "_id": task_id,
                "tenant_id": tenant_id,
                "kind": "callback",
                "status": "open",
                "assignee_id": ids["user_id"],
                "title": f"call back {mark}",
                "created_at": datetime.now(UTC),
            }
        )
        ids["task_id"] = task_id
    finally:
        await ctx.db.close()

    queue = await http.post("/api/queues", json={"name": f"Queue {mark}", "skills": {"billing": 1}})
    ids["queue_id"] = _ok(queue, "queue")["id"]
    number = _fresh_number()
    # the provider hands A a number from its inventory; A's flow answers it
    allocated = await above.post(
        "/api/admin/telephony/numbers", json={"number": number, "tenant_id": tenant_id}
    )
    ids["number"] = _ok(allocated, "number allocation")["number"]
    flow = {**DEFAULT_FLOW(tenant_id, number), "name": f"Flow {mark}"}
    ids["flow_id"] = _ok(await http.post("/api/ivr/flows", json=flow), "flow")["id"]
    prompt = await http.post(
        "/api/ivr/prompts", files={"file": ("p.wav", _wav(), "audio/wav")}, data={"name": f"Prompt {mark}"}
    )
    ids["prompt_id"] = _ok(prompt, "prompt")["id"]
    note = await http.post("/api/announcements", json={"text": f"note {mark}", "audience": {"all": True}})
    ids["announcement_id"] = _ok(note, "announcement")["id"]
    card = {
        "name": f"Card {mark}",
        "items": [{"key": "greeting", "label": "Greets", "kind": "yes_no", "weight": 1}],
    }
    ids["scorecard_id"] = _ok(await http.post("/api/quality/scorecards", json=card), "scorecard")["id"]
    evaluation = {
        "contact_id": contact_id,
        "scorecard_id": ids["scorecard_id"],
        "answers": {"greeting": True},
        "comments": f"eval {mark}",
    }
    ids["evaluation_id"] = _ok(await http.post("/api/quality/evaluations", json=evaluation), "evaluation")[
        "id"
    ]
    schedule = {"name": f"Sched {mark}", "every": "week", "at": "06:00", "to": [f"{mark}@example.test"]}
    ids["schedule_id"] = _ok(await http.post("/api/reports/schedules", json=schedule), "schedule")["id"]
    template = await http.put("/api/reports/templates/historical", json={"name": f"Tpl {mark}"})
    assert template.status_code < 500, template.text
    survey = {
        "name": f"Survey {mark}",
        "questions": [{"key": "ok", "text": f"Happy {mark}?", "kind": "single", "options": ["Yes", "No"]}],
    }
    ids["questionnaire_id"] = _ok(await http.post("/api/questionnaires", json=survey), "questionnaire")["id"]
    caller = await http.post(
        "/api/caller-ids",
        data={"number": number, "label": f"Line {mark}"},
        files=[("documents", ("proof.pdf", f"%PDF-1.4 {mark}".encode(), "application/pdf"))],
    )
    caller_body = _ok(caller, "caller id")
    ids["caller_id"] = caller_body["id"]
    ids["file_id"] = caller_body["documents"][0]
    campaign = await http.post(
        "/api/campaigns",
        json={
            "name": f"Campaign {mark}",
            "type": "preview",
            "caller_id": number,
            "questionnaire_id": ids["questionnaire_id"],
        },
    )
    ids["campaign_id"] = _ok(campaign, "campaign")["id"]
    rows = io.StringIO()
    csv.writer(rows).writerows([["phone", "name"], ["+1 415 555 0199", f"Target {mark}"]])
    started = await http.post(
        f"/api/campaigns/{ids['campaign_id']}/imports",
        files={"file": ("leads.csv", rows.getvalue().encode())},
        data={"region": "US"},
    )
    ids["import_id"] = _ok(started, "import")["import_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = (await http.get(f"/api/campaigns/{ids['campaign_id']}/imports/{ids['import_id']}")).json()
        if job["status"] in ("done", "failed"):
            break
        await asyncio.sleep(0.2)
    targets = (await http.get(f"/api/campaigns/{ids['campaign_id']}/targets")).json()
    items = targets["items"]
    assert items, f"no targets imported: {targets}"
    ids["target_id"] = items[0]["id"]
    dnc = await http.post(
        "/api/dnc", json={"number": "+12125550123", "list": "black", "reason": f"dnc {mark}"}
    )
    ids["entry_id"] = _ok(dnc, "dnc")["id"]
    canned = await http.post("/api/canned-responses", json={"title": f"Canned {mark}", "body": "Hello"})
    ids["canned_id"] = _ok(canned, "canned")["id"]
    faq = {
        "kind": "faq",
        "title": f"Article {mark}",
        "body": f"Draft body {mark}",
        "questions": [f"How {mark}?"],
        "locale": "en",
    }
    article = _ok(await http.post("/api/kb/articles", json=faq), "article")
    ids["article_id"] = article["id"]
    attachment = await http.post(
        f"/api/kb/articles/{article['id']}/attachments",
        files={"file": ("a.txt", f"att {mark}".encode(), "text/plain")},
    )
    kb_file = _ok(attachment, "attachment")
    file_ids = {"/api/kb/": kb_file.get("id") or kb_file.get("file_id") or ids["file_id"]}
    file_ids["/help/"] = file_ids["/api/kb/"]
    await _admin_objects(ids, markers, mark, tenant_id, http, above)
    assert widget.token is not None
    return World(t["slug"], ids, markers, article["slug"], file_ids, widget, widget.token)


async def _admin_objects(
    ids: dict[str, str],
    markers: set[str],
    mark: str,
    tenant_id: str,
    http: httpx.AsyncClient,
    above: httpx.AsyncClient,
) -> None:
    """A's billing, telephony and role settings (docs/admin.md), over HTTP like its staff would.

    Names that tenants below A legitimately see (the rate group a customer is rated on and its
    entries) carry no marker; what nobody but A may see (the top-up note, trunk and route names,
    the Twilio SID and token, the trunk password) does."""
    # the provider's wholesale rates, A's account on them with a markup, and a top-up
    wholesale = _ok(
        await above.post("/api/billing/groups", json={"name": "Wholesale", "kind": "voice"}), "group"
    )
    rate = {"prefix": "1", "price": "0.01"}
    _ok(await above.put(f"/api/billing/groups/{wholesale['id']}/rates", json=rate), "wholesale rate")
    account = {"voice_group_id": wholesale["id"], "markup_pct": 20, "stop_below": "1"}
    _ok(await above.put(f"/api/billing/accounts/{tenant_id}", json=account), "A's account")
    top_up = {"amount": "25", "note": f"top-up {mark}"}
    _ok(await above.post(f"/api/billing/accounts/{tenant_id}/top-ups", json=top_up), "top-up")
    # A's own rate group (what it sells to its customers) with one entry
    group = _ok(await http.post("/api/billing/groups", json={"name": "Retail", "kind": "voice"}), "group")
    ids["group_id"] = ids["voice_group_id"] = group["id"]
    # 12 digits: no phone number or hex id in an answer contains it by chance
    entry = {"prefix": str(random.randrange(10**11, 10**12)), "price": "0.05", "increment": "6/6"}
    ids["prefix"] = _ok(await http.put(f"/api/billing/groups/{group['id']}/rates", json=entry), "rate")[
        "prefix"
    ]
    # a SIP trunk with a password, an outbound route over it, the tenant's own Twilio account
    password, sid, token = f"pw-{secrets.token_hex(8)}", f"AC{secrets.token_hex(16)}", secrets.token_hex(16)
    markers |= {password, sid, token}
    ids["account_sid"] = sid
    trunk = {"name": f"Trunk {mark}", "host": "sip.example.net", "username": "a", "password": password}
    ids["trunk_id"] = _ok(await http.post("/api/admin/telephony/trunks", json=trunk), "trunk")["id"]
    route = {"name": f"Route {mark}", "pattern": "1", "trunk_id": ids["trunk_id"], "prepend": "9"}
    ids["route_id"] = _ok(await http.post("/api/admin/telephony/routes", json=route), "route")["id"]
    twilio = {"account_sid": sid, "auth_token": token}
    _ok(await http.put("/api/admin/telephony/twilio", json=twilio), "twilio account")
    # a custom role (roles are addressed by name)
    role = {"name": f"role-{secrets.token_hex(5)}", "label": f"Role {mark}", "permissions": ["billing.view"]}
    ids["name"] = _ok(await http.post("/api/admin/roles", json=role), "role")["name"]


@dataclass
class Seeded:
    """A tenant with its objects (`world`), Ann the agent's and Sam the admin's signed-in clients,
    and the operator above it (`provider`, whose admin is Ada)."""

    tenant: dict[str, Any]
    world: World
    desk: httpx.AsyncClient
    admin: httpx.AsyncClient
    provider: dict[str, Any]

    async def close(self) -> None:
        await self.world.widget.close()
        await self.desk.post("/api/agent/presence", json={"state": "offline"})
        await self.desk.aclose()
        await self.admin.aclose()


async def seeded_tenant(hub: HubProcess, tenant_in: Any, mongo: EmbeddedDatabase) -> Seeded:
    """A fresh reseller below a fresh operator: Ann (agent) took a chat, Sam (every role) made
    the rest, the operator's Ada allocated its number and set up its billing account."""
    provider = await tenant_in(hub, level="operator", agents={"ada": []}, roles={"ada": ["admin"]})
    t = await tenant_in(
        hub,
        level="reseller",
        parent=provider["tenant"],
        agents={"ann": ["billing", "general"], "sam": []},
        roles={"ann": ["agent"], "sam": ALL_ROLES},
    )
    desk = httpx.AsyncClient(base_url=hub.url, timeout=30)
    admin = httpx.AsyncClient(base_url=hub.url, timeout=30)
    above = httpx.AsyncClient(base_url=hub.url, timeout=30)
    try:
        await login(desk, t["slug"], "ann@t.test")
        await login(admin, t["slug"], "sam@t.test")
        await login(above, provider["slug"], "ada@t.test")
        world = await build_world(hub, mongo, t, desk, admin, above)
    except BaseException:
        await desk.aclose()
        await admin.aclose()
        raise
    finally:
        await above.aclose()
    return Seeded(t, world, desk, admin, provider)
