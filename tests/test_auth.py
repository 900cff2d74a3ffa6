"""Auth and tenancy: logins, tokens, roles, tenant isolation, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import jwt
import pytest
import websockets

from hub.embedded_db import EmbeddedDatabase
from tests.conftest import context_for
from tests.support import ROOT, TEST_SECRET, Agent, HubProcess, Widget, close_code


async def test_login_sets_an_httponly_session_cookie_and_rejects_bad_passwords(
    hub_nobot: HubProcess, tenant_in
) -> None:
    t = await tenant_in(hub_nobot)
    async with httpx.AsyncClient(base_url=hub_nobot.url) as http:
        bad = await http.post(
            "/api/auth/login", json={"tenant": t["slug"], "email": "ann@t.test", "password": "nope"}
        )
        assert bad.status_code == 401 and bad.json()["detail"] == "invalid credentials"
        unknown = await http.post(
            "/api/auth/login", json={"tenant": t["slug"], "email": "x@t.test", "password": "p"}
        )
        assert unknown.status_code == 401
        assert (await http.get("/api/me")).status_code == 401
        ok = await http.post(
            "/api/auth/login", json={"tenant": t["slug"], "email": "ANN@t.test", "password": "password123"}
        )
        assert ok.status_code == 200
        cookie = ok.headers["set-cookie"]
        assert "hub_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        me = (await http.get("/api/me")).json()
        assert me["email"] == "ann@t.test" and me["roles"] == ["agent"] and me["tenant_slug"] == t["slug"]
        page = await http.get("/agent")
        assert page.status_code == 200 and "<html" in page.text.lower()
    async with httpx.AsyncClient(base_url=hub_nobot.url) as anonymous:
        redirect = await anonymous.get("/agent")
        assert redirect.status_code == 303 and redirect.headers["location"] == "/login"


async def test_passwords_are_stored_as_argon2_hashes(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub_nobot)
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    user = await ctx.db.users.find_one({"tenant_id": t["tenant"]["_id"], "email": "ann@t.test"})
    await ctx.db.close()
    assert user is not None and user["password_hash"].startswith("$argon2id$")
    assert "password123" not in json.dumps(user, default=str)


async def test_expired_and_forged_tokens_are_rejected(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    user = t["users"]["ann"]
    now = int(time.time())
    claims = {"typ": "api", "sub": user["_id"], "tid": t["tenant"]["_id"], "iat": now - 100}
    expired = jwt.encode({**claims, "exp": now - 10}, TEST_SECRET, algorithm="HS256")
    forged = jwt.encode(
        {**claims, "exp": now + 100}, "another-secret-of-sufficient-length!!", algorithm="HS256"
    )
    visitor = jwt.encode({**claims, "typ": "visitor", "exp": now + 100}, TEST_SECRET, algorithm="HS256")
    async with httpx.AsyncClient(base_url=hub_nobot.url) as http:
        response = await http.get("/api/me", headers={"Authorization": f"Bearer {expired}"})
        assert response.status_code == 401 and response.json()["detail"] == "token expired"
        for token in (forged, visitor):
            response = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401 and response.json()["detail"] == "invalid token"
    async with websockets.connect(f"{hub_nobot.ws_url}/ws/agent?token={expired}") as ws:
        assert json.loads(await ws.recv())["message"] == "token expired"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert close_code(closed.value) == 4401


async def test_tenants_and_agents_cannot_see_each_others_contacts(hub_nobot: HubProcess, tenant_in) -> None:
    a = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "ben": ["general"], "eve": []}, roles={"eve": ["editor"]}
    )
    b = await tenant_in(hub_nobot, agents={"ann": ["general"]})
    widget = Widget(hub_nobot.ws_url, a["slug"])
    await widget.connect()
    ack = await widget.say("my account details are private")
    ann = Agent(hub_nobot.url, a["slug"], "ann@t.test")
    await ann.login()
    await ann.available()
    await ann.wait_offer(ack["contact_id"])
    # same email, other tenant: a different account that sees nothing of tenant A
    other = Agent(hub_nobot.url, b["slug"], "ann@t.test")
    await other.login()
    for method, path in (
        ("GET", f"/api/contacts/{ack['contact_id']}"),
        ("POST", f"/api/contacts/{ack['contact_id']}/accept"),
        ("POST", f"/api/contacts/{ack['contact_id']}/wrapup"),
    ):
        response = await other.http.request(method, path, json={"disposition": "resolved"})
        assert response.status_code == 404, path
    # same tenant, another agent: may not read a contact offered to Ann
    ben = Agent(hub_nobot.url, a["slug"], "ben@t.test")
    await ben.login()
    assert (await ben.http.get(f"/api/contacts/{ack['contact_id']}")).status_code == 403
    assert (await ben.http.post(f"/api/contacts/{ack['contact_id']}/accept")).status_code == 409
    # an editor is not an agent
    eve = Agent(hub_nobot.url, a["slug"], "eve@t.test")
    await eve.login()
    assert (await eve.http.post(f"/api/contacts/{ack['contact_id']}/accept")).status_code == 403
    assert (await eve.http.get("/api/kb/search", params={"q": "router"})).status_code == 200
    for client in (ann, other, ben, eve):
        await client.close()
    await widget.close()


def test_cli_creates_a_user_who_can_log_in(hub_nobot: HubProcess, tmp_path) -> None:
    env = {**hub_nobot.env, "HUB_USER_PASSWORD": "s3cret-pass"}
    slug = f"cli-{int(time.time() * 1000) % 10**8}"
    subprocess.run(
        [sys.executable, "-m", "hub.cli", "tenant", "create", slug, "CLI Tenant"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "user",
            "create",
            "--tenant",
            slug,
            "--email",
            "cli@t.test",
            "--name",
            "Cli User",
            "--role",
            "agent",
            "--skill",
            "billing",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert "cli@t.test (agent)" in done.stdout
    duplicate = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "user",
            "create",
            "--tenant",
            slug,
            "--email",
            "cli@t.test",
            "--role",
            "agent",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    weak = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "user",
            "create",
            "--tenant",
            slug,
            "--email",
            "weak@t.test",
            "--role",
            "agent",
        ],
        cwd=ROOT,
        env={**env, "HUB_USER_PASSWORD": "short"},
        capture_output=True,
        text=True,
    )
    assert weak.returncode != 0 and "at least 8" in weak.stderr
    login = httpx.post(
        f"{hub_nobot.url}/api/auth/login",
        json={"tenant": slug, "email": "cli@t.test", "password": "s3cret-pass"},
    )
    assert login.status_code == 200 and login.json()["user"]["roles"] == ["agent"]
    assert os.environ.get("HUB_USER_PASSWORD") is None


async def test_healthz_reports_components(hub_nobot: HubProcess) -> None:
    health = httpx.get(f"{hub_nobot.url}/healthz").json()
    assert health["status"] == "degraded"  # this hub's Rasa is down on purpose
    assert health["components"]["db"] == "ok" and health["components"]["rasa"] == "down"
    assert health["components"]["embedded_db"] == "external"
