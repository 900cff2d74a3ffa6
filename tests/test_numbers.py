"""The dialled-number inventory (hub/numbers.py, /api/admin/telephony/numbers) against a real hub.

The operator allocates a number to a reseller, the reseller re-allocates it to its customer,
the customer maps it to its flow; another tenant's flow cannot take it (409, also through the
IVR API), a number outside the inventory stays usable (older installs), invalid numbers are
422, a reseller cannot allocate numbers it does not hold (403), nobody reaches tenants outside
their own tree (404), and a number answering a flow cannot be released (409).
"""

from __future__ import annotations

import random
from typing import Any

from bot.ivr import DEFAULT_FLOW
from hub.embedded_db import EmbeddedDatabase
from tests.conftest import context_for
from tests.support import Agent, HubProcess

ADMIN = {"agents": {"ada": [], "ann": ["general"]}, "roles": {"ada": ["admin"]}}
BASE = "/api/admin/telephony/numbers"


def sf_number() -> str:
    """A fresh valid San Francisco number (phonenumbers rejects +1555...)."""
    return f"+1415555{random.randrange(10**4):04d}"


async def signed_in(hub: HubProcess, tenant: dict[str, Any], name: str) -> Agent:
    client = Agent(hub.url, tenant["slug"], f"{name}@t.test")
    await client.login()
    return client


async def test_numbers_move_down_the_tree_and_guard_flows(
    hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase
) -> None:
    hub = hub_nobot
    op = await tenant_in(hub, level="operator", **ADMIN)
    res = await tenant_in(hub, level="reseller", parent=op["tenant"], **ADMIN)
    cust = await tenant_in(hub, level="customer", parent=res["tenant"], **ADMIN)
    other = await tenant_in(hub, level="customer", parent=op["tenant"], **ADMIN)
    opa, resa = await signed_in(hub, op, "ada"), await signed_in(hub, res, "ada")
    custa, othera = await signed_in(hub, cust, "ada"), await signed_in(hub, other, "ada")
    agent = await signed_in(hub, cust, "ann")
    db = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    number, spare = sf_number(), sf_number()
    try:
        assert (
            await opa.http.post(BASE, json={"number": "+15551234567", "tenant_id": res["tenant"]["_id"]})
        ).status_code == 422
        assert (
            await opa.http.post(BASE, json={"number": "4155550100", "tenant_id": res["tenant"]["_id"]})
        ).status_code == 422
        given = await opa.http.post(BASE, json={"number": number, "tenant_id": res["tenant"]["_id"]})
        assert given.status_code == 201, given.text
        assert given.json() == {"number": number, "tenant_id": res["tenant"]["_id"], "sms": True}
        # a reseller allocates only what it holds, and only below itself
        fresh = await resa.http.post(BASE, json={"number": spare, "tenant_id": cust["tenant"]["_id"]})
        assert fresh.status_code == 403 and "only the operator" in fresh.json()["detail"]
        assert (
            await resa.http.post(BASE, json={"number": number, "tenant_id": other["tenant"]["_id"]})
        ).status_code == 404
        assert (
            await custa.http.post(BASE, json={"number": number, "tenant_id": cust["tenant"]["_id"]})
        ).status_code == 404
        passed = await resa.http.post(BASE, json={"number": number, "tenant_id": cust["tenant"]["_id"]})
        assert passed.status_code == 201 and passed.json()["tenant_id"] == cust["tenant"]["_id"]
        # another tenant cannot put the customer's number on its flow
        clash = await othera.http.post("/api/ivr/flows", json=DEFAULT_FLOW("x", number))
        assert clash.status_code == 409 and "allocated to another tenant" in clash.json()["detail"]
        # a number outside the inventory still works (single-tenant installs, older data)
        loose = await othera.http.post("/api/ivr/flows", json=DEFAULT_FLOW("x", sf_number()))
        assert loose.status_code == 201, loose.text

        # the customer maps its number to a flow: through the IVR API or the numbers API
        flow = (
            await custa.http.post("/api/ivr/flows", json={**DEFAULT_FLOW("x", spare), "name": "Main"})
        ).json()
        mapped = await custa.http.put(f"{BASE}/{number}/flow", json={"flow_id": flow["id"]})
        assert mapped.status_code == 200, mapped.text
        assert mapped.json() == {"number": number, "flow": {"id": flow["id"], "name": "Main"}}
        stored = await db.db.ivr_flows.find_one({"_id": flow["id"]})
        assert stored is not None and stored["number"] == number
        other_flow = (await othera.http.get("/api/ivr/flows")).json()[0]
        stolen = await othera.http.put(f"{BASE}/{number}/flow", json={"flow_id": other_flow["id"]})
        assert stolen.status_code == 409
        assert (
            await othera.http.put(f"{BASE}/{number}/flow", json={"flow_id": flow["id"]})
        ).status_code == 404
        assert (
            await agent.http.put(f"{BASE}/{number}/flow", json={"flow_id": flow["id"]})
        ).status_code == 403

        listed = (await custa.http.get(BASE)).json()
        assert [(n["number"], n["own"], n["flow"]) for n in listed["numbers"]] == [
            (number, True, {"id": flow["id"], "name": "Main"})
        ]
        assert listed["tenants"] == [] and listed["flows"][0]["number"] == number
        seen_above = {n["number"]: n for n in (await opa.http.get(BASE)).json()["numbers"]}
        assert seen_above[number]["tenant_name"] == cust["tenant"]["name"] and not seen_above[number]["own"]
        assert number not in {n["number"] for n in (await othera.http.get(BASE)).json()["numbers"]}

        # in use: cannot be released; once the flow moves away it goes back up
        busy = await resa.http.delete(f"{BASE}/{number}")
        assert busy.status_code == 409 and "Main" in busy.json()["detail"]
        await custa.http.put(f"/api/ivr/flows/{flow['id']}", json={**flow, "number": sf_number()})
        back = await resa.http.delete(f"{BASE}/{number}")
        assert (
            back.status_code == 200 and back.json()["tenant_id"] == res["tenant"]["_id"]
        )  # the reseller's stock
        assert (await othera.http.delete(f"{BASE}/{number}")).status_code == 404
        gone = await opa.http.delete(f"{BASE}/{number}")
        assert (
            gone.status_code == 200 and gone.json()["tenant_id"] is None
        )  # the operator: out of the inventory
        assert await db.db.phone_numbers.find_one({"number": number}) is None

        wanted = ["number.allocate", "number.map", "number.release"]
        actions = [a["action"] async for a in db.db.audit_log.find({"action": {"$in": wanted}})]
        assert set(wanted) <= set(actions)
    finally:
        for client in (opa, resa, custa, othera, agent):
            await client.close()
        await db.db.close()
