"""The audit log against a real hub process: the request middleware's rows for administrative
changes (none for desk work), secrets masked, sign-in rows, and GET /api/audit with its filters,
paging, CSV export and the tenant-tree rule."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.audit import mask_secrets
from hub.audit_middleware import is_desk_work
from tests.conftest import context_for
from tests.support import Agent, HubProcess, Widget

TRUNK_PASSWORD = "trunk-Secret-4711"


async def _rows(hub: HubProcess, tenant_id: str, **query: Any) -> list[dict[str, Any]]:
    ctx = context_for(hub.env["MONGODB_URI"], hub.env["HUB_DB_NAME"])
    try:
        cursor = ctx.db.audit_log.find({"tenant_id": tenant_id, **query}).sort("at", 1)
        return list(await cursor.to_list(None))
    finally:
        await ctx.db.close()


async def _signed_in(hub: HubProcess, slug: str, name: str) -> Agent:
    client = Agent(hub.url, slug, f"{name}@t.test")
    await client.login()
    return client


def test_desk_work_list_matches_route_templates() -> None:
    assert is_desk_work("POST", "/api/contacts/{contact_id}/messages")
    assert is_desk_work("POST", "/api/calls/{contact_id}/hold")
    assert is_desk_work("DELETE", "/api/softphone")
    assert not is_desk_work("PUT", "/api/routing/settings")
    assert not is_desk_work("POST", "/api/queues")
    assert mask_secrets({"a": {"password": "x", "auth_token": "y"}, "b": [{"secret": 1}]}) == {
        "a": {"password": "***", "auth_token": "***"},
        "b": [{"secret": "***"}],
    }


async def test_admin_changes_are_recorded_and_desk_work_is_not(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, roles={"ann": ["agent"], "ben": ["admin"]})
    tid = t["tenant"]["_id"]
    admin = await _signed_in(hub_nobot, t["slug"], "ben")
    agent = await _signed_in(hub_nobot, t["slug"], "ann")
    try:
        # an administrative change: a queue (route with a path prefix and a JSON body)
        made = await admin.http.post("/api/queues", json={"name": "Billing", "skills": {"billing": 1}})
        assert made.status_code == 201, made.text
        queue_id = made.json()["id"]
        edited = await admin.http.put(f"/api/queues/{queue_id}", json={"name": "Billing 2"})
        assert edited.status_code == 200, edited.text
        # a SIP trunk with a password: recorded with the password masked
        trunk = await admin.http.post(
            "/api/admin/telephony/trunks",
            json={"name": "carrier", "host": "192.0.2.10", "username": "acct", "password": TRUNK_PASSWORD},
        )
        assert trunk.status_code == 201, trunk.text
        # a refused change writes no row
        assert (await agent.http.post("/api/queues", json={"name": "Nope"})).status_code == 403
        # desk work: presence, accept and a reply to a chat
        await agent.available()
        widget = Widget(hub_nobot.ws_url, t["slug"])
        await widget.connect()
        ack = await widget.say("hello, my bill")
        await agent.wait_offer(ack["contact_id"])
        assert (await agent.http.post(f"/api/contacts/{ack['contact_id']}/accept")).status_code == 200
        sent = await agent.http.post(f"/api/contacts/{ack['contact_id']}/messages", json={"text": "Hi, Ann"})
        assert sent.status_code == 200
        await widget.close()
    finally:
        await admin.close()
        await agent.close()

    rows = await _rows(hub_nobot, tid, action={"$regex": "^http\\."})
    routes = [(r["target"]["method"], r["target"]["route"]) for r in rows]
    assert ("POST", "/api/queues") in routes
    assert ("PUT", "/api/queues/{queue_id}") in routes
    assert ("POST", "/api/admin/telephony/trunks") in routes
    queue_row = next(r for r in rows if r["target"]["route"] == "/api/queues")
    assert queue_row["actor_id"] == t["users"]["ben"]["_id"] and queue_row["actor_tenant_id"] == tid
    assert queue_row["status"] == 201 and queue_row["ip"] == "127.0.0.1"
    assert queue_row["changes"]["body"]["name"] == "Billing"
    put_row = next(r for r in rows if r["target"]["route"] == "/api/queues/{queue_id}")
    assert put_row["target"]["path"] == f"/api/queues/{queue_id}"
    trunk_row = next(r for r in rows if r["target"]["route"] == "/api/admin/telephony/trunks")
    assert trunk_row["changes"]["body"]["password"] == "***"
    assert trunk_row["changes"]["body"]["username"] == "acct"
    # nothing by the agent: the refused change and the desk work wrote no row
    assert not [r for r in rows if r["actor_id"] == t["users"]["ann"]["_id"]]
    # the password is nowhere in the tenant's log (the endpoint's own rows mask it too)
    assert TRUNK_PASSWORD not in repr(await _rows(hub_nobot, tid))


async def test_sign_ins_are_recorded_without_the_password(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    tid = t["tenant"]["_id"]
    client = Agent(hub_nobot.url, t["slug"], "ann@t.test", password="Wrong-Guess-99")
    failed = await client.http.post(
        "/api/auth/login", json={"tenant": t["slug"], "email": "ann@t.test", "password": "Wrong-Guess-99"}
    )
    assert failed.status_code == 401
    client.password = "password123"
    await client.login()
    await client.close()
    rows = await _rows(hub_nobot, tid, action={"$regex": "^auth\\."})
    assert [r["action"] for r in rows] == ["auth.login_failed", "auth.login"]
    fail_row, ok_row = rows
    assert fail_row["target"]["email"] == "ann@t.test"
    assert fail_row["changes"]["tenant_slug"] == t["slug"]
    assert fail_row["actor_id"] is None and fail_row["ip"] == "127.0.0.1"
    assert ok_row["actor_id"] == t["users"]["ann"]["_id"]
    assert "Wrong-Guess-99" not in repr(rows) and "password123" not in repr(rows)


async def test_audit_api_filters_pages_exports_and_keeps_to_the_tree(
    hub_nobot: HubProcess, tenant_in
) -> None:
    op = await tenant_in(hub_nobot, level="operator", agents={"olga": []}, roles={"olga": ["admin"]})
    child = await tenant_in(
        hub_nobot,
        level="customer",
        parent=op["tenant"],
        agents={"cid": [], "cat": []},
        roles={"cid": ["admin"], "cat": ["agent"]},
    )
    other = await tenant_in(hub_nobot, agents={"xena": []}, roles={"xena": ["admin"]})
    olga = await _signed_in(hub_nobot, op["slug"], "olga")
    cid = await _signed_in(hub_nobot, child["slug"], "cid")
    cat = await _signed_in(hub_nobot, child["slug"], "cat")
    xena = await _signed_in(hub_nobot, other["slug"], "xena")
    try:
        for n in range(3):
            made = await cid.http.post("/api/queues", json={"name": f"Q{n}"})
            assert made.status_code == 201, made.text
        # the child's admin reads its own log: sign-ins and the three changes, newest first
        own = (await cid.http.get("/api/audit")).json()
        actions = [e["action"] for e in own["entries"]]
        assert actions[:3] == ["http.post"] * 3 and "auth.login" in actions
        assert own["entries"][0]["actor_name"] == "Cid"  # joined from the users at read time
        assert {e["tenant_id"] for e in own["entries"]} == {child["tenant"]["_id"]}
        # filters: action prefix, actor, period, paging
        only_http = (await cid.http.get("/api/audit", params={"action": "http."})).json()["entries"]
        assert len(only_http) == 3
        by_cat = (await cid.http.get("/api/audit", params={"actor": child["users"]["cat"]["_id"]})).json()
        assert [e["action"] for e in by_cat["entries"]] == ["auth.login"]
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        future = (await cid.http.get("/api/audit", params={"since": tomorrow})).json()["entries"]
        past = (await cid.http.get("/api/audit", params={"until": "2000-01-01"})).json()["entries"]
        assert future == [] and past == []
        assert (await cid.http.get("/api/audit", params={"since": "yesterday"})).status_code == 422
        first = (await cid.http.get("/api/audit", params={"action": "http.", "limit": 2})).json()
        second = (
            await cid.http.get("/api/audit", params={"action": "http.", "limit": 2, "offset": 2})
        ).json()
        assert first["more"] and not second["more"]
        assert len({e["id"] for e in first["entries"] + second["entries"]}) == 3
        # CSV export of the same selection
        exported = await cid.http.get("/api/audit", params={"action": "http.", "format": "csv"})
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert len(table) == 3 and {r["action"] for r in table} == {"http.post"}
        # the tree: the operator reads the customer below it; never the other way, nor a stranger
        below = await olga.http.get("/api/audit", params={"tenant_id": child["tenant"]["_id"]})
        assert below.status_code == 200 and len(below.json()["entries"]) >= 4
        up = await cid.http.get("/api/audit", params={"tenant_id": op["tenant"]["_id"]})
        assert up.status_code == 404
        sideways = await xena.http.get("/api/audit", params={"tenant_id": child["tenant"]["_id"]})
        assert sideways.status_code == 404
        assert (await olga.http.get("/api/audit", params={"tenant_id": "no-such-tenant"})).status_code == 404
        # an agent holds no audit.view
        assert (await cat.http.get("/api/audit")).status_code == 403
        # the page follows the same permission
        cid.http.cookies.set("hub_session", cid.http.headers["Authorization"][7:])
        cat.http.cookies.set("hub_session", cat.http.headers["Authorization"][7:])
        assert (await cid.http.get("/audit", follow_redirects=False)).status_code == 200
        assert (await cat.http.get("/audit", follow_redirects=False)).status_code == 403
    finally:
        for client in (olga, cid, cat, xena):
            await client.close()
