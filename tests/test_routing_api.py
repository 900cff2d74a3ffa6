"""Routing configuration API: queues (validated, tenant-isolated) and agents' skill levels."""

from __future__ import annotations

from tests.support import Agent, HubProcess, Widget


async def test_queues_crud_validation_and_isolation(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": [], "ann": ["general"]}, roles={"sam": ["supervisor"]})
    other = await tenant_in(hub_nobot, agents={"sue": []}, roles={"sue": ["supervisor"]})
    sam, ann, sue = (
        Agent(hub_nobot.url, x["slug"], f"{n}@t.test") for x, n in ((t, "sam"), (t, "ann"), (other, "sue"))
    )
    for user in (sam, ann, sue):
        await user.login()
    queue = {
        "name": "Billing",
        "skills": {"billing": 3},
        "priority": 2,
        "strategy": "best_fit",
        "max_wait_s": 120,
        "escalation": [{"after_s": 30, "action": "relax_skill_levels", "relax_by": 1}],
    }
    created = await sam.http.post("/api/queues", json=queue)
    assert created.status_code == 201, created.text
    queue_id = created.json()["id"]
    assert created.json()["tenant_id"] == t["tenant"]["_id"]
    bad = await sam.http.post("/api/queues", json={**queue, "strategy": "random"})
    assert bad.status_code == 422 and "strategy" in bad.json()["detail"]
    bad = await sam.http.post("/api/queues", json={**queue, "skills": {"billing": 11}})
    assert bad.status_code == 422
    updated = await sam.http.put(f"/api/queues/{queue_id}", json={**queue, "priority": 5})
    assert updated.status_code == 200 and updated.json()["priority"] == 5
    assert [q["name"] for q in (await sam.http.get("/api/queues")).json()] == ["Billing"]
    # other tenants and agents see nothing and change nothing
    assert (await sue.http.get("/api/queues")).json() == []
    assert (await sue.http.put(f"/api/queues/{queue_id}", json=queue)).status_code == 404
    assert (await sue.http.delete(f"/api/queues/{queue_id}")).status_code == 404
    assert (await ann.http.get("/api/queues")).status_code == 403
    assert (await sam.http.delete(f"/api/queues/{queue_id}")).status_code == 204
    for user in (sam, ann, sue):
        await user.close()


async def test_skill_levels_change_who_gets_contacts(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": [], "ann": ["technical"]}, roles={"sam": ["supervisor"]})
    sam, ann = Agent(hub_nobot.url, t["slug"], "sam@t.test"), Agent(hub_nobot.url, t["slug"], "ann@t.test")
    await sam.login()
    await ann.login()
    await ann.available()
    widget = Widget(hub_nobot.ws_url, t["slug"])
    await widget.connect()
    ack = await widget.say("help please")  # Rasa is down: queued for "general"
    await widget.wait_status("queued")
    assert (await ann.http.get("/api/agent/contacts")).json()["offers"] == []
    ann_id = t["users"]["ann"]["_id"]
    bad = await sam.http.put(f"/api/agents/{ann_id}/skills", json={"skills": {"general": 0}})
    assert bad.status_code == 422
    done = await sam.http.put(f"/api/agents/{ann_id}/skills", json={"skills": {"general": 7, "technical": 9}})
    assert done.status_code == 200
    await ann.wait_offer(ack["contact_id"], timeout=10)  # she has the skill now
    listed = {a["email"]: a for a in (await sam.http.get("/api/agents")).json()}
    assert listed["ann@t.test"]["skills"] == {"general": 7, "technical": 9}
    other = await tenant_in(hub_nobot, agents={"sue": []}, roles={"sue": ["supervisor"]})
    sue = Agent(hub_nobot.url, other["slug"], "sue@t.test")
    await sue.login()
    assert (await sue.http.put(f"/api/agents/{ann_id}/skills", json={"skills": {"x": 1}})).status_code == 404
    for user in (sam, ann, sue):
        await user.close()
    await widget.close()


async def test_routing_settings_and_agent_capacity(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": [], "ann": ["general"]}, roles={"sam": ["supervisor"]})
    other = await tenant_in(hub_nobot, agents={"sue": []}, roles={"sue": ["supervisor"]})
    sam, ann = Agent(hub_nobot.url, t["slug"], "sam@t.test"), Agent(hub_nobot.url, t["slug"], "ann@t.test")
    sue = Agent(hub_nobot.url, other["slug"], "sue@t.test")
    for user in (sam, ann, sue):
        await user.login()
    await ann.available()
    settings = (await sam.http.get("/api/routing/settings")).json()
    assert settings["capacity"]["voice"] == 1 and "lunch" in settings["not_ready_reasons"]
    assert (await ann.http.get("/api/routing/settings")).status_code == 403
    bad = await sam.http.put("/api/routing/settings", json={**settings, "capacity": {"chat": 99}})
    assert bad.status_code == 422 and "capacity" in bad.json()["detail"]
    changed = {**settings, "capacity": {"voice": 1, "chat": 1}, "not_ready_reasons": ["coffee"]}
    assert (await sam.http.put("/api/routing/settings", json=changed)).status_code == 200
    presence = (await ann.http.get("/api/agent/presence")).json()
    assert presence["capacity"] == {"voice": 1, "chat": 1}  # applied to agents at once
    refused = await ann.http.post("/api/agent/presence", json={"state": "not_ready", "reason": "lunch"})
    assert refused.status_code == 422 and "coffee" in refused.json()["detail"]
    ok = await ann.http.post("/api/agent/presence", json={"state": "not_ready", "reason": "coffee"})
    assert ok.status_code == 200 and ok.json()["reason"] == "coffee"
    # one agent's own capacity, and languages; other tenants cannot touch her
    ann_id = t["users"]["ann"]["_id"]
    own = await sam.http.put(
        f"/api/agents/{ann_id}/routing", json={"capacity": {"chat": 4}, "languages": ["EN"]}
    )
    assert own.status_code == 200 and own.json()["capacity"] == {"voice": 1, "chat": 4}
    assert own.json()["languages"] == ["en"]
    assert (await sue.http.put(f"/api/agents/{ann_id}/routing", json={"capacity": None})).status_code == 404
    listed = {a["name"]: a for a in (await sam.http.get("/api/agents")).json()}
    assert listed["Ann"]["capacity"]["chat"] == 4 and listed["Ann"]["own_capacity"] == {"chat": 4}
    # a queue may only overflow to a queue of its own tenant
    foreign = await sue.http.post("/api/queues", json={"name": "Theirs"})
    bad_target = {
        "name": "Mine",
        "escalation": [{"after_s": 5, "action": "overflow_to", "queue_id": foreign.json()["id"]}],
    }
    assert (await sam.http.post("/api/queues", json=bad_target)).status_code == 422
    for user in (sam, ann, sue):
        await user.close()
