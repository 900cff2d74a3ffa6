"""Tenants in three levels and their staff, over real HTTP against a hub process: the tree
rules (see only below you, another tree is 404), disabling a tenant or a user ends their
sessions at once, password resets and changes, and branding inherited down the tree."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import httpx

from tests.support import Agent, HubProcess

PASSWORD = "password123"


async def signed_in(hub: HubProcess, slug: str, email: str, password: str = PASSWORD) -> Agent:
    client = Agent(hub.url, slug, email, password)
    await client.login()
    return client


async def login_status(hub: HubProcess, slug: str, email: str, password: str) -> int:
    async with httpx.AsyncClient(base_url=hub.url, timeout=20) as http:
        response = await http.post(
            "/api/auth/login", json={"tenant": slug, "email": email, "password": password}
        )
        return response.status_code


async def create_child(client: Agent, slug: str, level: str, **extra: Any) -> dict[str, Any]:
    response = await client.http.post(
        "/api/admin/tenants",
        json={
            "slug": slug,
            "name": f"Tenant {slug}",
            "level": level,
            "admin_email": f"admin@{slug}.test",
            "admin_name": "First Admin",
            "admin_password": PASSWORD,
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert "password_hash" not in response.text
    return body


def png_bytes(size: int = 1) -> bytes:
    """A real 1x1 PNG, padded with a tEXt chunk to about `size` bytes when asked."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pad = chunk(b"tEXt", b"c\x00" + b"x" * max(0, size - 80)) if size > 80 else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + pad
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


async def test_three_levels_and_the_tree_rule(hub_nobot: HubProcess, tenant_in) -> None:
    op = await tenant_in(hub_nobot, level="operator", agents={"opa": []}, roles={"opa": ["admin"]})
    opa = await signed_in(hub_nobot, op["slug"], "opa@t.test")
    suffix = op["slug"][2:]
    clients: list[Agent] = [opa]
    try:
        r1 = await create_child(opa, f"r1{suffix}", "reseller")
        await create_child(opa, f"r2{suffix}", "reseller")
        assert r1["tenant"]["level"] == "reseller" and r1["tenant"]["path"] == [op["tenant"]["_id"]]
        assert r1["admin"]["roles"] == ["admin"] and r1["password"] is None

        r1a = await signed_in(hub_nobot, f"r1{suffix}", f"admin@r1{suffix}.test")
        r2a = await signed_in(hub_nobot, f"r2{suffix}", f"admin@r2{suffix}.test")
        clients += [r1a, r2a]
        # a reseller creates a customer (with a generated first password, shown once)
        made = await r1a.http.post(
            "/api/admin/tenants",
            json={
                "slug": f"c1{suffix}",
                "name": "Customer one",
                "level": "customer",
                "admin_email": "boss@c1.test",
            },
        )
        assert made.status_code == 201, made.text
        c1, generated = made.json()["tenant"], made.json()["password"]
        assert c1["path"] == [op["tenant"]["_id"], r1["tenant"]["id"]] and len(generated) >= 12
        assert made.json()["admin"]["must_change_password"] is True
        c1a = await signed_in(hub_nobot, c1["slug"], "boss@c1.test", generated)
        clients.append(c1a)
        me = (await c1a.http.get("/api/me")).json()
        assert me["tenant_level"] == "customer" and me["must_change_password"] is True
        assert "tenants.manage" in me["permissions"]
        # the generated password must be replaced before anything else (tests/test_password_gate.py)
        assert (await c1a.http.get("/api/admin/tenants")).json()["code"] == "password_change_required"
        changed = await c1a.http.post(
            "/api/me/password",
            json={"current_password": generated, "new_password": PASSWORD, "new_password_repeat": PASSWORD},
        )
        assert changed.status_code == 200, changed.text
        c1a.http.headers["Authorization"] = f"Bearer {changed.json()['token']}"

        # a customer creates nobody; a reseller creates no operator
        refused = await c1a.http.post(
            "/api/admin/tenants",
            json={"slug": f"c9{suffix}", "name": "x", "level": "customer", "admin_email": "a@b.test"},
        )
        assert refused.status_code == 422 and "customer tenant can create nothing" in refused.json()["detail"]
        refused = await r1a.http.post(
            "/api/admin/tenants",
            json={"slug": f"o9{suffix}", "name": "x", "level": "operator", "admin_email": "a@b.test"},
        )
        assert refused.status_code == 422
        # slugs are login names: ASCII only, unique
        bad = await r1a.http.post(
            "/api/admin/tenants",
            json={"slug": "kundé", "name": "x", "level": "customer", "admin_email": "a@b.test"},
        )
        assert bad.status_code == 422
        dup = await r1a.http.post(
            "/api/admin/tenants",
            json={"slug": c1["slug"], "name": "x", "level": "customer", "admin_email": "a@b.test"},
        )
        assert dup.status_code == 409

        # who sees what
        op_view = (await opa.http.get("/api/admin/tenants")).json()
        assert {t["slug"] for t in op_view["tenants"]} >= {f"r1{suffix}", f"r2{suffix}", c1["slug"]}
        r1_view = (await r1a.http.get("/api/admin/tenants")).json()
        assert [t["slug"] for t in r1_view["tenants"]] == [c1["slug"]]
        assert r1_view["own"]["slug"] == f"r1{suffix}"
        assert (await r2a.http.get("/api/admin/tenants")).json()["tenants"] == []
        assert (await c1a.http.get("/api/admin/tenants")).json()["tenants"] == []
        # the customer's admin cannot see its reseller; a sibling reseller cannot touch c1
        assert (await c1a.http.get(f"/api/admin/tenants/{r1['tenant']['id']}")).status_code == 404
        assert (
            await c1a.http.patch(f"/api/admin/tenants/{r1['tenant']['id']}", json={"active": False})
        ).status_code == 404
        assert (await r2a.http.get(f"/api/admin/tenants/{c1['id']}")).status_code == 404
        assert (
            await r2a.http.patch(f"/api/admin/tenants/{c1['id']}", json={"active": False})
        ).status_code == 404
        assert (
            await r2a.http.post(f"/api/admin/tenants/{c1['id']}/admin-password", json={})
        ).status_code == 404
        assert (await r2a.http.get(f"/api/admin/branding?tenant_id={c1['id']}")).status_code == 404
        sneaky = await r2a.http.post(
            "/api/admin/tenants",
            json={
                "slug": f"c8{suffix}",
                "name": "x",
                "level": "customer",
                "admin_email": "a@b.test",
                "parent_id": r1["tenant"]["id"],
            },
        )
        assert sneaky.status_code == 404
        # nor its own tenant (a tenant never disables itself)
        assert (
            await r1a.http.patch(f"/api/admin/tenants/{r1['tenant']['id']}", json={"active": False})
        ).status_code == 404
        # the operator reaches any depth
        detail = (await opa.http.get(f"/api/admin/tenants/{c1['id']}")).json()
        assert [a["email"] for a in detail["admins"]] == ["boss@c1.test"]
        assert "password_hash" not in str(detail)
        # an agent of a tenant has no tenants.manage
        ag = await tenant_in(hub_nobot, agents={"ann": []})
        ann = await signed_in(hub_nobot, ag["slug"], "ann@t.test")
        clients.append(ann)
        assert (await ann.http.get("/api/admin/tenants")).status_code == 403
        assert (await ann.http.get("/api/admin/users")).status_code == 403
    finally:
        for client in clients:
            await client.close()


async def test_disabling_a_tenant_ends_its_subtree_sessions(hub_nobot: HubProcess, tenant_in) -> None:
    op = await tenant_in(hub_nobot, level="operator", agents={"opa": []}, roles={"opa": ["admin"]})
    reseller = await tenant_in(
        hub_nobot, level="reseller", parent=op["tenant"], agents={"rita": []}, roles={"rita": ["admin"]}
    )
    customer = await tenant_in(
        hub_nobot, level="customer", parent=reseller["tenant"], agents={"ann": ["general"]}
    )
    opa = await signed_in(hub_nobot, op["slug"], "opa@t.test")
    ann = await signed_in(hub_nobot, customer["slug"], "ann@t.test")
    rita = await signed_in(hub_nobot, reseller["slug"], "rita@t.test")
    try:
        assert (await ann.http.get("/api/me")).status_code == 200
        rid = reseller["tenant"]["_id"]
        off = await opa.http.patch(f"/api/admin/tenants/{rid}", json={"active": False})
        assert off.status_code == 200 and off.json()["active"] is False
        # the reseller's and its customer's open sessions end at once, and nobody signs in
        assert (await ann.http.get("/api/me")).status_code == 401
        assert (await rita.http.get("/api/me")).status_code == 401
        assert await login_status(hub_nobot, customer["slug"], "ann@t.test", PASSWORD) == 401
        assert await login_status(hub_nobot, reseller["slug"], "rita@t.test", PASSWORD) == 401
        listed = {t["id"]: t for t in (await opa.http.get("/api/admin/tenants")).json()["tenants"]}
        assert listed[rid]["active"] is False
        on = await opa.http.patch(f"/api/admin/tenants/{rid}", json={"active": True})
        assert on.status_code == 200 and on.json()["active"] is True
        assert await login_status(hub_nobot, customer["slug"], "ann@t.test", PASSWORD) == 200
        # the change is in the audit log of the tenant it touched, by the operator's admin
        audit = await _audit_rows(hub_nobot, rid)
        assert [a["action"] for a in audit][:2] == ["tenant.enable", "tenant.disable"]
        assert audit[0]["actor_tenant_id"] == op["tenant"]["_id"]
    finally:
        for client in (opa, ann, rita):
            await client.close()


async def _audit_rows(hub: HubProcess, tenant_id: str) -> list[dict[str, Any]]:
    """The audit rows this part wrote for a tenant, newest first, read from the database."""
    from tests.conftest import context_for

    ctx = context_for(hub.env["MONGODB_URI"], hub.env["HUB_DB_NAME"])
    try:
        cursor = ctx.db.audit_log.find({"tenant_id": tenant_id, "target.kind": {"$exists": True}})
        rows: list[dict[str, Any]] = await cursor.sort("at", -1).to_list(100)
        return [
            r for r in rows if r.get("action", "").split(".")[0] in ("tenant", "user", "role", "branding")
        ]
    finally:
        await ctx.db.close()


async def test_child_admin_password_reset(hub_nobot: HubProcess, tenant_in) -> None:
    reseller = await tenant_in(hub_nobot, level="reseller", agents={"rita": []}, roles={"rita": ["admin"]})
    customer = await tenant_in(
        hub_nobot, level="customer", parent=reseller["tenant"], agents={"cara": []}, roles={"cara": ["admin"]}
    )
    rita = await signed_in(hub_nobot, reseller["slug"], "rita@t.test")
    cara = await signed_in(hub_nobot, customer["slug"], "cara@t.test")
    try:
        cid = customer["tenant"]["_id"]
        reset = await rita.http.post(f"/api/admin/tenants/{cid}/admin-password", json={})
        assert reset.status_code == 200, reset.text
        new_password = reset.json()["password"]
        assert new_password and reset.json()["user"]["must_change_password"] is True
        assert (await cara.http.get("/api/me")).status_code == 401  # the old session ended
        assert await login_status(hub_nobot, customer["slug"], "cara@t.test", PASSWORD) == 401
        cara2 = await signed_in(hub_nobot, customer["slug"], "cara@t.test", new_password)
        assert (await cara2.http.get("/api/me")).json()["must_change_password"] is True
        await cara2.close()
        # a typed password works too; too short is refused
        short = await rita.http.post(f"/api/admin/tenants/{cid}/admin-password", json={"password": "short"})
        assert short.status_code == 422
        typed = await rita.http.post(
            f"/api/admin/tenants/{cid}/admin-password",
            json={"email": "cara@t.test", "password": "typed-secret-1"},
        )
        assert typed.status_code == 200 and typed.json()["password"] is None
        assert await login_status(hub_nobot, customer["slug"], "cara@t.test", "typed-secret-1") == 200
        rows = await _audit_rows(hub_nobot, cid)
        assert rows[0]["action"] == "tenant.admin_password_reset"
        assert "typed-secret-1" not in str(rows) and new_password not in str(rows)
    finally:
        await rita.close()
        await cara.close()


async def test_users_of_a_tenant(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, agents={"ada": [], "ann": ["general"]}, roles={"ada": ["admin"]})
    other = await tenant_in(hub_nobot, agents={"oz": []}, roles={"oz": ["admin"]})
    ada = await signed_in(hub_nobot, t["slug"], "ada@t.test")
    oz = await signed_in(hub_nobot, other["slug"], "oz@t.test")
    ann = await signed_in(hub_nobot, t["slug"], "ann@t.test")
    clients = [ada, oz, ann]
    try:
        listed = await ada.http.get("/api/admin/users")
        assert listed.status_code == 200 and "password_hash" not in listed.text
        assert {u["email"] for u in listed.json()} == {"ada@t.test", "ann@t.test"}
        made = await ada.http.post(
            "/api/admin/users",
            json={"email": "Tom@T.test", "name": "Tom", "roles": ["agent", "finance"], "skills": ["billing"]},
        )
        assert made.status_code == 201, made.text
        tom, tom_password = made.json()["user"], made.json()["password"]
        assert tom["email"] == "tom@t.test" and tom["roles"] == ["agent", "finance"] and tom_password
        assert "password_hash" not in made.text
        assert (
            await ada.http.post("/api/admin/users", json={"email": "tom@t.test", "roles": ["agent"]})
        ).status_code == 409
        assert (
            await ada.http.post("/api/admin/users", json={"email": "x@t.test", "roles": ["boss"]})
        ).status_code == 422
        # roles and skills change; another tenant's user is 404
        ann_id = t["users"]["ann"]["_id"]
        changed = await ada.http.patch(
            f"/api/admin/users/{ann_id}",
            json={"roles": ["agent", "supervisor"], "skills": ["general", "sales"]},
        )
        assert changed.status_code == 200 and changed.json()["roles"] == ["agent", "supervisor"]
        assert changed.json()["skills"] == ["general", "sales"]
        assert (await ann.http.get("/api/routing/settings")).status_code == 200  # supervisor now
        assert (await oz.http.patch(f"/api/admin/users/{ann_id}", json={"active": False})).status_code == 404
        assert (await oz.http.post(f"/api/admin/users/{ann_id}/password", json={})).status_code == 404
        # a disabled user's token is refused at once and they cannot sign in; enabled again they can
        off = await ada.http.patch(f"/api/admin/users/{ann_id}", json={"active": False})
        assert off.status_code == 200 and off.json()["active"] is False
        assert (await ann.http.get("/api/me")).status_code == 401
        assert await login_status(hub_nobot, t["slug"], "ann@t.test", PASSWORD) == 401
        assert (await ada.http.patch(f"/api/admin/users/{ann_id}", json={"active": True})).json()[
            "active"
        ] is True
        ann2 = await signed_in(hub_nobot, t["slug"], "ann@t.test")
        clients.append(ann2)
        # an admin reset ends old sessions; the new password works, the old one does not
        reset = await ada.http.post(
            f"/api/admin/users/{ann_id}/password", json={"password": "brand-new-pass"}
        )
        assert reset.status_code == 200 and reset.json()["password"] is None
        assert (await ann2.http.get("/api/me")).status_code == 401
        assert await login_status(hub_nobot, t["slug"], "ann@t.test", PASSWORD) == 401
        ann3 = await signed_in(hub_nobot, t["slug"], "ann@t.test", "brand-new-pass")
        clients.append(ann3)
        assert (await ann3.http.get("/api/me")).json()["must_change_password"] is True
        # the last admin can neither be disabled, nor lose the role; nobody disables themselves
        ada_id = t["users"]["ada"]["_id"]
        assert (await ada.http.patch(f"/api/admin/users/{ada_id}", json={"active": False})).status_code == 409
        last = await ada.http.patch(f"/api/admin/users/{ada_id}", json={"roles": ["agent"]})
        assert last.status_code == 409 and "last admin" in last.json()["detail"]
        # audit: the changes are recorded, never the password
        rows = await _audit_rows(hub_nobot, t["tenant"]["_id"])
        actions = [r["action"] for r in rows]
        for action in ("user.create", "user.update", "user.disable", "user.enable", "user.password_reset"):
            assert action in actions
        assert "brand-new-pass" not in str(rows) and tom_password not in str(rows)
    finally:
        for client in clients:
            await client.close()


async def test_own_password_change(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, agents={"ann": []})
    ann = await signed_in(hub_nobot, t["slug"], "ann@t.test")
    other_session = await signed_in(hub_nobot, t["slug"], "ann@t.test")
    try:
        wrong = await ann.http.post(
            "/api/me/password",
            json={
                "current_password": "not-it-at-all",
                "new_password": "fresh-pass-1",
                "new_password_repeat": "fresh-pass-1",
            },
        )
        assert wrong.status_code == 403 and "current password" in wrong.json()["detail"]
        differ = await ann.http.post(
            "/api/me/password",
            json={
                "current_password": PASSWORD,
                "new_password": "fresh-pass-1",
                "new_password_repeat": "fresh-pass-2",
            },
        )
        assert differ.status_code == 422
        short = await ann.http.post(
            "/api/me/password",
            json={"current_password": PASSWORD, "new_password": "short", "new_password_repeat": "short"},
        )
        assert short.status_code == 422
        done = await ann.http.post(
            "/api/me/password",
            json={
                "current_password": PASSWORD,
                "new_password": "fresh-pass-1",
                "new_password_repeat": "fresh-pass-1",
            },
        )
        assert done.status_code == 200, done.text
        # other sessions end; this caller continues with the fresh token
        assert (await other_session.http.get("/api/me")).status_code == 401
        assert (await ann.http.get("/api/me")).status_code == 401
        ann.http.headers["Authorization"] = f"Bearer {done.json()['token']}"
        me = await ann.http.get("/api/me")
        assert me.status_code == 200 and me.json()["must_change_password"] is False
        assert await login_status(hub_nobot, t["slug"], "ann@t.test", PASSWORD) == 401
        assert await login_status(hub_nobot, t["slug"], "ann@t.test", "fresh-pass-1") == 200
        async with httpx.AsyncClient(base_url=hub_nobot.url, timeout=20) as anonymous:
            assert (await anonymous.post("/api/me/password", json={})).status_code == 401
    finally:
        await ann.close()
        await other_session.close()


async def test_branding_upload_rules_and_inheritance(hub_nobot: HubProcess, tenant_in) -> None:
    reseller = await tenant_in(hub_nobot, level="reseller", agents={"rita": []}, roles={"rita": ["admin"]})
    customer = await tenant_in(
        hub_nobot,
        level="customer",
        parent=reseller["tenant"],
        agents={"cara": [], "ann": []},
        roles={"cara": ["admin"]},
    )
    rita = await signed_in(hub_nobot, reseller["slug"], "rita@t.test")
    cara = await signed_in(hub_nobot, customer["slug"], "cara@t.test")
    ann = await signed_in(hub_nobot, customer["slug"], "ann@t.test")
    public = httpx.AsyncClient(base_url=hub_nobot.url, timeout=20)
    try:
        assert (await public.get(f"/branding/{customer['slug']}")).json() == {
            "name": None,
            "logo_url": None,
            "inherited": False,
        }
        unknown = await public.get("/branding/no-such-tenant-here")  # no tenant enumeration
        assert unknown.status_code == 200 and unknown.json()["name"] is None
        assert (await public.get("/branding/no-such-tenant-here/logo")).status_code == 404
        # uploads: SVG, HTML with an image name, and oversize are refused
        svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
        for name, data, ctype in (
            ("logo.svg", svg, "image/svg+xml"),
            ("logo.png", b"<html>hi</html>", "image/png"),
        ):
            refused = await rita.http.post("/api/admin/branding/logo", files={"file": (name, data, ctype)})
            assert refused.status_code == 415 and "PNG, JPEG or WebP" in refused.json()["detail"]
        big = png_bytes(600 * 1024)
        assert (
            await rita.http.post("/api/admin/branding/logo", files={"file": ("big.png", big, "image/png")})
        ).status_code == 413
        assert (
            await ann.http.post(
                "/api/admin/branding/logo", files={"file": ("a.png", png_bytes(), "image/png")}
            )
        ).status_code == 403
        # the reseller white-labels: its customer inherits name and logo
        assert (await rita.http.put("/api/admin/branding", json={"name": "Acme Voice"})).status_code == 200
        logo = png_bytes(2000)
        up = await rita.http.post("/api/admin/branding/logo", files={"file": ("acme.png", logo, "image/png")})
        assert up.status_code == 201, up.text
        seen = (await public.get(f"/branding/{customer['slug']}")).json()
        assert seen["name"] == "Acme Voice" and seen["inherited"] is True and seen["logo_url"]
        served = await public.get(seen["logo_url"])
        assert (
            served.status_code == 200
            and served.content == logo
            and served.headers["content-type"] == "image/png"
        )
        me = (await ann.http.get("/api/me")).json()
        assert me["branding"] == seen  # the top bar shows the same
        # a customer's own branding wins; removing it falls back to the reseller's
        webp = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 24
        assert (await cara.http.put("/api/admin/branding", json={"name": "Cara Gas"})).status_code == 200
        own = await cara.http.post("/api/admin/branding/logo", files={"file": ("c.webp", webp, "image/webp")})
        assert own.status_code == 201
        seen = (await public.get(f"/branding/{customer['slug']}")).json()
        assert seen["name"] == "Cara Gas" and seen["inherited"] is False
        assert (await public.get(seen["logo_url"])).headers["content-type"] == "image/webp"
        assert (await cara.http.delete("/api/admin/branding/logo")).status_code == 200
        assert (await cara.http.put("/api/admin/branding", json={"name": ""})).status_code == 200
        assert (await public.get(f"/branding/{customer['slug']}")).json()["name"] == "Acme Voice"
        # the reseller may set its customer's branding; the customer may not touch its reseller's
        rid, cid = reseller["tenant"]["_id"], customer["tenant"]["_id"]
        assert (
            await cara.http.put(f"/api/admin/branding?tenant_id={rid}", json={"name": "pwn"})
        ).status_code == 404
        by_parent = await rita.http.put(f"/api/admin/branding?tenant_id={cid}", json={"name": "Cara by Acme"})
        assert by_parent.status_code == 200 and by_parent.json()["effective"]["name"] == "Cara by Acme"
    finally:
        for client in (rita, cara, ann):
            await client.close()
        await public.aclose()


def test_cli_creates_tenants_at_levels(hub_nobot: HubProcess) -> None:
    import subprocess
    import sys
    import time

    from tests.support import ROOT

    stamp = int(time.time() * 1000) % 10**8

    def hub_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hub.cli", *args],
            cwd=ROOT,
            env=hub_nobot.env,
            capture_output=True,
            text=True,
        )

    op = hub_cli("tenant", "create", f"op{stamp}", "Operator", "--level", "operator")
    assert op.returncode == 0, op.stderr
    assert f"op{stamp} (Operator), operator" in op.stdout
    res = hub_cli("tenant", "create", f"re{stamp}", "--level", "reseller", "--parent", f"op{stamp}")
    assert res.returncode == 0 and f"reseller below op{stamp}" in res.stdout
    bad = hub_cli("tenant", "create", f"cu{stamp}", "--level", "operator", "--parent", f"re{stamp}")
    assert bad.returncode != 0 and "a reseller cannot create a operator" in bad.stderr
    missing = hub_cli("tenant", "create", f"cx{stamp}", "--parent", "no-such-parent")
    assert missing.returncode != 0 and "no parent tenant" in missing.stderr


async def test_demo_tree_is_idempotent_and_attaches_an_old_demo_tenant(mongo) -> None:
    from hub.demo import seed_demo
    from hub.ids import new_id
    from tests.conftest import context_for

    ctx = context_for(mongo.uri, f"demo_{new_id()[:8]}")
    try:
        await ctx.db.ensure_indexes()
        # a database from before tenant levels: the demo tenant has no level, parent or path
        await ctx.db.tenants.insert_one(
            {"_id": "old-demo", "slug": "demo", "name": "Northwind", "active": True}
        )
        demo = await seed_demo(ctx)
        again = await seed_demo(ctx)
        assert demo["_id"] == again["_id"] == "old-demo"
        platform = await ctx.db.tenants.find_one({"slug": "platform"})
        acme = await ctx.db.tenants.find_one({"slug": "acme-resale"})
        assert platform and acme and platform["level"] == "operator" and acme["level"] == "reseller"
        stored = await ctx.db.tenants.find_one({"_id": "old-demo"})
        assert stored and stored["level"] == "customer" and stored["path"] == [platform["_id"], acme["_id"]]
        assert await ctx.db.tenants.count_documents({}) == 3
        assert (
            await ctx.db.users.count_documents({"tenant_id": "old-demo", "email": "admin@northwind.test"})
            == 1
        )
        assert await ctx.db.users.count_documents({"tenant_id": platform["_id"], "roles": "admin"}) == 1
    finally:
        await ctx.db.client.drop_database(ctx.db.db.name)
        await ctx.db.close()
