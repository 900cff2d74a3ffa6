"""Roles and permissions over real HTTP: the seed's staff roles (finance, technician,
service) reach what they should and nothing else, an edited or custom role takes effect
on the holders' next request, admin is locked, and nobody grants what they do not hold."""

from __future__ import annotations

import random
from typing import Any

from bot.ivr import DEFAULT_FLOW
from tests.support import Agent, HubProcess


async def signed_in(hub: HubProcess, tenant: dict[str, Any], name: str) -> Agent:
    client = Agent(hub.url, tenant["slug"], f"{name}@t.test")
    await client.login()
    return client


def a_number() -> str:
    return f"+1212{random.randrange(10**6, 10**7)}"


async def test_finance_technician_and_service_roles(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(
        hub_nobot,
        level="operator",
        agents={"ada": [], "fay": [], "ted": [], "sue": []},
        roles={"ada": ["admin"], "fay": ["finance"], "ted": ["technician"], "sue": ["service"]},
    )
    ada, fay, ted, sue = [await signed_in(hub_nobot, t, n) for n in ("ada", "fay", "ted", "sue")]
    try:
        # finance may top up, nothing else: routing settings are refused
        me = (await fay.http.get("/api/me")).json()
        assert set(me["permissions"]) == {"billing.view", "billing.topup"}
        assert (await fay.http.get("/api/routing/settings")).status_code == 403
        assert (await fay.http.get("/api/ivr/flows")).status_code == 403
        assert (await fay.http.get("/api/admin/users")).status_code == 403
        # a technician configures agents, routing and IVR flows
        settings = (await ted.http.get("/api/routing/settings")).json()
        saved = await ted.http.put("/api/routing/settings", json={**settings, "sticky_days": 3})
        assert saved.status_code == 200, saved.text
        flow = await ted.http.post("/api/ivr/flows", json=DEFAULT_FLOW("t", a_number()))
        assert flow.status_code == 201, flow.text
        assert (await ted.http.get("/api/queues")).status_code == 200
        # ... but does not approve caller ids; service staff do
        submitted = await ada.http.post(
            "/api/caller-ids", json={"number": f"+1415555{random.randrange(1000, 9999)}"}
        )
        assert submitted.status_code == 201, submitted.text
        cid = submitted.json()["id"]
        assert (await ted.http.post(f"/api/caller-ids/{cid}/approve")).status_code == 403
        assert (await sue.http.get("/api/routing/settings")).status_code == 403
        approved = await sue.http.post(f"/api/caller-ids/{cid}/approve")
        assert approved.status_code == 200, approved.text
        # the technician reaches the routing page; finance does not
        ted.http.cookies.set("hub_session", ted.http.headers["Authorization"][7:])
        assert (await ted.http.get("/routing", follow_redirects=False)).status_code == 200
        assert (await ted.http.get("/admin", follow_redirects=False)).status_code == 200  # own password tab
    finally:
        for client in (ada, fay, ted, sue):
            await client.close()


async def test_roles_edit_create_delete(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(
        hub_nobot,
        agents={"ada": [], "sam": [], "ann": []},
        roles={"ada": ["admin"], "sam": ["supervisor"], "ann": ["agent"]},
    )
    ada, sam, ann = [await signed_in(hub_nobot, t, n) for n in ("ada", "sam", "ann")]
    other = await tenant_in(hub_nobot, agents={"oz": []}, roles={"oz": ["admin"]})
    oz = await signed_in(hub_nobot, other, "oz")
    try:
        listed = (await ada.http.get("/api/admin/roles")).json()
        by_name = {r["name"]: r for r in listed["roles"]}
        assert {"admin", "supervisor", "agent", "editor", "finance", "technician", "service"} <= set(by_name)
        assert by_name["admin"]["locked"] and by_name["finance"]["permissions"] == [
            "billing.topup",
            "billing.view",
        ]
        assert "roles.manage" in {p["name"] for p in listed["permissions"]}
        assert (await sam.http.get("/api/admin/roles")).status_code == 403

        # admin cannot be edited nor deleted
        locked = await ada.http.put("/api/admin/roles/admin", json={"permissions": []})
        assert locked.status_code == 409 and "admin role" in locked.json()["detail"]
        assert (await ada.http.delete("/api/admin/roles/admin")).status_code == 409

        # editing a built-in role takes effect on the holder's next request; DELETE restores it
        assert (await sam.http.get("/api/routing/settings")).status_code == 200
        edited = await ada.http.put("/api/admin/roles/supervisor", json={"permissions": ["billing.view"]})
        assert edited.status_code == 200 and edited.json()["edited"] is True
        assert (await sam.http.get("/api/routing/settings")).status_code == 403
        assert (await ada.http.delete("/api/admin/roles/supervisor")).json()["status"] == "reset"
        assert (await sam.http.get("/api/routing/settings")).status_code == 200
        # another tenant's roles are untouched by ours
        theirs = {r["name"]: r for r in (await oz.http.get("/api/admin/roles")).json()["roles"]}
        assert theirs["supervisor"]["edited"] is False

        # a custom role: created, given to a user, edited, refused deletion while held
        bad = await ada.http.post("/api/admin/roles", json={"name": "qa", "permissions": ["fly.planes"]})
        assert bad.status_code == 422
        assert (await ada.http.post("/api/admin/roles", json={"name": "agent"})).status_code == 409
        made = await ada.http.post(
            "/api/admin/roles", json={"name": "qa", "label": "Quality", "permissions": ["agents.manage"]}
        )
        assert made.status_code == 201, made.text
        assert (await ada.http.post("/api/admin/roles", json={"name": "qa"})).status_code == 409
        ann_id = t["users"]["ann"]["_id"]
        given = await ada.http.patch(f"/api/admin/users/{ann_id}", json={"roles": ["agent", "qa"]})
        assert given.status_code == 200, given.text
        assert (await ann.http.get("/api/routing/settings")).status_code == 200
        await ada.http.put("/api/admin/roles/qa", json={"permissions": ["flows.manage"]})
        assert (await ann.http.get("/api/routing/settings")).status_code == 403
        assert (await ann.http.get("/api/ivr/flows")).status_code == 200
        held = await ada.http.delete("/api/admin/roles/qa")
        assert held.status_code == 409 and "still hold" in held.json()["detail"]
        await ada.http.patch(f"/api/admin/users/{ann_id}", json={"roles": ["agent"]})
        assert (await ada.http.delete("/api/admin/roles/qa")).json()["status"] == "deleted"
        assert "qa" not in {r["name"] for r in (await ada.http.get("/api/admin/roles")).json()["roles"]}
        # the other tenant cannot see or delete our roles
        await ada.http.post("/api/admin/roles", json={"name": "ours", "permissions": []})
        assert (await oz.http.delete("/api/admin/roles/ours")).status_code == 404
    finally:
        for client in (ada, sam, ann, oz):
            await client.close()


async def test_nobody_grants_what_they_do_not_hold(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(
        hub_nobot,
        agents={"ada": [], "hr": [], "ann": []},
        roles={"ada": ["admin"], "hr": ["agent"], "ann": ["agent"]},
    )
    ada = await signed_in(hub_nobot, t, "ada")
    made = await ada.http.post(
        "/api/admin/roles", json={"name": "people", "permissions": ["users.manage", "roles.manage"]}
    )
    assert made.status_code == 201
    hr_id = t["users"]["hr"]["_id"]
    assert (await ada.http.patch(f"/api/admin/users/{hr_id}", json={"roles": ["people"]})).status_code == 200
    hr = await signed_in(hub_nobot, t, "hr")
    try:
        assert (await hr.http.get("/api/admin/users")).status_code == 200
        # cannot make anyone admin or supervisor, nor create a role with more than it holds
        ann_id = t["users"]["ann"]["_id"]
        up = await hr.http.patch(f"/api/admin/users/{ann_id}", json={"roles": ["admin"]})
        assert up.status_code == 403 and "do not hold" in up.json()["detail"]
        assert (
            await hr.http.post("/api/admin/users", json={"email": "x@t.test", "roles": ["supervisor"]})
        ).status_code == 403
        assert (
            await hr.http.post("/api/admin/roles", json={"name": "boss", "permissions": ["billing.topup"]})
        ).status_code == 403
        assert (
            await hr.http.put("/api/admin/roles/people", json={"permissions": ["tenants.manage"]})
        ).status_code == 403
        # cannot touch the admin (it holds more), can manage an agent
        ada_id = t["users"]["ada"]["_id"]
        assert (await hr.http.post(f"/api/admin/users/{ada_id}/password", json={})).status_code == 403
        assert (await hr.http.patch(f"/api/admin/users/{ada_id}", json={"active": False})).status_code == 403
        assert (
            await hr.http.patch(f"/api/admin/users/{ann_id}", json={"skills": ["general"]})
        ).status_code == 200
        made = await hr.http.post("/api/admin/users", json={"email": "new@t.test", "roles": ["agent"]})
        assert made.status_code == 201 and made.json()["password"]
    finally:
        await ada.close()
        await hr.close()
