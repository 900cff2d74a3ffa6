"""Pickup from any queue, supervisor force-assign and move, on the live router."""

from __future__ import annotations

from tests.support import Agent, HubProcess, Widget


async def test_pickup_move_and_force_assign(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["billing"], "ben": ["technical"], "sam": []}, roles={"sam": ["supervisor"]}
    )
    ann, ben, sam = (Agent(hub_nobot.url, t["slug"], f"{n}@t.test") for n in ("ann", "ben", "sam"))
    for user in (ann, ben, sam):
        await user.login()
    widgets = [Widget(hub_nobot.ws_url, t["slug"]) for _ in range(3)]
    acks = []
    for widget in widgets:
        await widget.connect()
        acks.append(await widget.say("hello, anyone?"))
    for widget in widgets:
        await widget.wait_status("queued")
    waiting = (await ben.http.get("/api/queue")).json()
    assert [c["id"] for c in waiting] == [a["contact_id"] for a in acks]  # oldest first
    # ben (technical) picks up a general contact from another queue
    picked = await ben.http.post(f"/api/contacts/{acks[0]['contact_id']}/pickup")
    assert picked.status_code == 200 and picked.json()["agent_name"] == "Ben"
    await widgets[0].wait_status("assigned")
    assert (await ann.http.post(f"/api/contacts/{acks[0]['contact_id']}/pickup")).status_code == 409
    # the supervisor moves the second one to billing, where ann (now available) gets it
    moved = await sam.http.post(f"/api/contacts/{acks[1]['contact_id']}/move", json={"skill": "billing"})
    assert moved.status_code == 200 and moved.json()["skill"] == "billing"
    await ann.available()
    offer = await ann.wait_offer(acks[1]["contact_id"])
    assert offer["skill"] == "billing"
    # and assigns the third straight to ben; an agent may not do that
    ben_id = t["users"]["ben"]["_id"]
    refused = await ann.http.post(f"/api/contacts/{acks[2]['contact_id']}/assign", json={"agent_id": ben_id})
    assert refused.status_code == 403
    assigned = await sam.http.post(f"/api/contacts/{acks[2]['contact_id']}/assign", json={"agent_id": ben_id})
    assert assigned.status_code == 200 and assigned.json()["agent_id"] == ben_id
    await widgets[2].wait_status("assigned")
    mine = (await ben.http.get("/api/agent/contacts")).json()["assigned"]
    assert {c["id"] for c in mine} == {acks[0]["contact_id"], acks[2]["contact_id"]}
    presence = (await ben.http.get("/api/agent/presence")).json()
    assert presence["free"]["chat"] == presence["capacity"]["chat"] - 2
    # another tenant's supervisor cannot touch these contacts
    other = await tenant_in(hub_nobot, agents={"sue": []}, roles={"sue": ["supervisor"]})
    sue = Agent(hub_nobot.url, other["slug"], "sue@t.test")
    await sue.login()
    assert (
        await sue.http.post(f"/api/contacts/{acks[1]['contact_id']}/move", json={"skill": "x"})
    ).status_code == 409
    assert (
        await sue.http.post(f"/api/contacts/{acks[1]['contact_id']}/assign", json={"agent_id": ben_id})
    ).status_code == 404
    for client in (ann, ben, sam, sue):
        await client.close()
    for widget in widgets:
        await widget.close()
