"""Billing over HTTP against a real hub process (its rater loop and dialer running): who may set
rates, assign them and top up whom; the billing records of a three-level chain; statements in
JSON and Excel reconciling with the balance; and the low-balance stop pausing a running
campaign, refusing resume and placing no call until a top-up (Twilio double)."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import Any

from openpyxl import load_workbook

from billing import accounts
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from tests.conftest import context_for
from tests.support import Agent, HubProcess
from tests.test_dialer import campaign_with_targets
from tests.test_voice_twilio import wait_for
from tests.twilio_double import TwilioDouble


async def chain_on(hub: HubProcess, tenant_in: Any) -> dict[str, Any]:
    """Operator (admin olga), reseller (admin rita, finance fred) and its customer (admin cara,
    supervisor sam, agent ann); a second reseller tree beside it. Everyone is signed in."""
    op = await tenant_in(hub, level="operator", agents={"olga": []}, roles={"olga": ["admin"]})
    rs = await tenant_in(
        hub,
        level="reseller",
        parent=op["tenant"],
        agents={"rita": [], "fred": []},
        roles={"rita": ["admin"], "fred": ["finance"]},
    )
    cu = await tenant_in(
        hub,
        level="customer",
        parent=rs["tenant"],
        agents={"cara": [], "sam": ["general"], "ann": ["general"]},
        roles={"cara": ["admin"], "sam": ["supervisor"]},
    )
    other = await tenant_in(hub, level="reseller", parent=op["tenant"], agents={"otto": []})
    other_cu = await tenant_in(hub, level="customer", parent=other["tenant"], agents={"cleo": []})
    people = {}
    for who, t in (("olga", op), ("rita", rs), ("fred", rs), ("cara", cu), ("sam", cu), ("ann", cu)):
        agent = Agent(hub.url, t["slug"], f"{who}@t.test")
        await agent.login()
        people[who] = agent
    ids = {
        k: t["tenant"]["_id"]
        for k, t in (("op", op), ("rs", rs), ("cu", cu), ("other", other), ("other_cu", other_cu))
    }
    return {"ids": ids, "people": people, "ann_id": cu["users"]["ann"]["_id"]}


async def close_all(people: dict[str, Agent]) -> None:
    for agent in people.values():
        await agent.close()


async def standard_rates(c: dict[str, Any]) -> str:
    """Olga's voice group (0.10/min at 60/60) assigned to the reseller (+20 %), which hands it
    to its customer (+50 %); returns the group id."""
    olga, rita = c["people"]["olga"], c["people"]["rita"]
    ids = c["ids"]
    group = await olga.http.post(
        "/api/billing/groups", json={"name": "Standard", "kind": "voice", "currency": "USD"}
    )
    assert group.status_code == 201, group.text
    gid = str(group.json()["id"])
    rate = await olga.http.put(
        f"/api/billing/groups/{gid}/rates", json={"prefix": "1", "price": "0.10", "increment": "60/60"}
    )
    assert rate.status_code == 200, rate.text
    assigned = await olga.http.put(
        f"/api/billing/accounts/{ids['rs']}", json={"voice_group_id": gid, "markup_pct": 20}
    )
    assert assigned.status_code == 200, assigned.text
    handed = await rita.http.put(
        f"/api/billing/accounts/{ids['cu']}", json={"voice_group_id": gid, "markup_pct": 50}
    )
    assert handed.status_code == 200, handed.text
    return gid


async def test_who_may_rate_assign_and_top_up_whom(hub_nobot: HubProcess, tenant_in: Any) -> None:
    c = await chain_on(hub_nobot, tenant_in)
    ids, p = c["ids"], c["people"]
    gid = await standard_rates(c)
    # the customer sees the rates it is billed at, with both markups applied
    seen = await p["cara"].http.get(f"/api/billing/groups/{gid}/rates")
    assert seen.status_code == 200 and seen.json()["rates"][0]["price"] == "0.18"
    assert (await p["rita"].http.get(f"/api/billing/groups/{gid}/rates")).json()["rates"][0][
        "price"
    ] == "0.12"
    # but it cannot change them, nor can the reseller
    assert (
        await p["cara"].http.put(f"/api/billing/groups/{gid}/rates", json={"prefix": "1", "price": "0"})
    ).status_code == 404
    # finance tops up a child ...
    topped = await p["fred"].http.post(
        f"/api/billing/accounts/{ids['cu']}/top-ups", json={"amount": "5.00", "note": "wire"}
    )
    assert topped.status_code == 201, topped.text
    assert topped.json()["account"]["balance"] == "5.00"
    # ... never itself, nor another reseller's tree (404: not even its existence is told)
    own = await p["fred"].http.post(f"/api/billing/accounts/{ids['rs']}/top-ups", json={"amount": "5"})
    assert own.status_code == 403
    for stranger in (ids["other"], ids["other_cu"], ids["op"]):
        refused = await p["fred"].http.post(f"/api/billing/accounts/{stranger}/top-ups", json={"amount": "5"})
        assert refused.status_code == 404, stranger
        assert (await p["fred"].http.get(f"/api/billing/accounts/{stranger}")).status_code == 404
    # finance may not edit rates or assign them
    assert (
        await p["fred"].http.post("/api/billing/groups", json={"name": "x", "kind": "voice"})
    ).status_code == 403
    assert (
        await p["fred"].http.put(f"/api/billing/groups/{gid}/rates", json={"prefix": "1", "price": "0"})
    ).status_code == 403
    assert (
        await p["fred"].http.put(f"/api/billing/accounts/{ids['cu']}", json={"markup_pct": 0})
    ).status_code == 403
    # an agent sees no billing at all; a reseller cannot hand down a group it is not rated on
    assert (await p["ann"].http.get("/api/billing/accounts")).status_code == 403
    foreign = await p["olga"].http.post("/api/billing/groups", json={"name": "Other", "kind": "voice"})
    bad = await p["rita"].http.put(
        f"/api/billing/accounts/{ids['cu']}", json={"voice_group_id": foreign.json()["id"]}
    )
    assert bad.status_code == 404
    assert (
        await p["rita"].http.put(f"/api/billing/accounts/{ids['other_cu']}", json={"markup_pct": 5})
    ).status_code == 404
    listed = (await p["fred"].http.get("/api/billing/accounts")).json()
    assert listed["own"]["tenant_id"] == ids["rs"] and [a["tenant_id"] for a in listed["below"]] == [
        ids["cu"]
    ]
    ctx = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    try:
        logged = await ctx.db.audit_log.find_one({"tenant_id": ids["cu"], "action": "billing.top_up"})
        assert (
            logged is not None
            and logged["actor_tenant_id"] == ids["rs"]
            and logged["changes"]["amount"] == "5.00"
        )
        assert await ctx.db.audit_log.find_one({"tenant_id": ids["op"], "action": "billing.rate.put"})
    finally:
        await ctx.db.close()
    await close_all(p)


async def test_a_call_is_rated_into_records_and_the_statement_reconciles(
    hub_nobot: HubProcess, tenant_in: Any
) -> None:
    c = await chain_on(hub_nobot, tenant_in)
    ids, p = c["ids"], c["people"]
    await standard_rates(c)
    for tenant, who in ((ids["cu"], "fred"), (ids["rs"], "olga")):
        assert (
            await p[who].http.post(f"/api/billing/accounts/{tenant}/top-ups", json={"amount": "10"})
        ).status_code == 201
    ctx = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    try:  # a call as the dialer records it and Twilio's status callback ends it
        now = utcnow()
        await ctx.db.dial_attempts.insert_one(
            {
                "_id": new_id(), "tenant_id": ids["cu"], "campaign_id": None, "target_id": None,
                "number": "+14155550177", "placed_at": now - timedelta(seconds=80),
                "answered_at": now - timedelta(seconds=61), "ended_at": now, "outcome": "answered",
                "call_sid": f"CA{new_id()}", "call_status": "completed", "duration": 61,
            }
        )  # fmt: skip
    finally:
        await ctx.db.close()

    async def rated() -> list[dict[str, Any]] | None:
        found = (await p["fred"].http.get(f"/api/billing/records?tenant_id={ids['cu']}")).json()["records"]
        return found or None

    records = await wait_for(rated, timeout=15)
    assert (
        records[0]["amount"] == "0.36" and records[0]["billed_seconds"] == 120 and records[0]["prefix"] == "1"
    )
    own = (await p["rita"].http.get("/api/billing/records")).json()["records"]
    assert [r["amount"] for r in own] == ["0.24"]
    statement = await p["cara"].http.get(f"/api/billing/statements/{ids['cu']}")
    assert statement.status_code == 200, statement.text
    doc = statement.json()
    account = (await p["cara"].http.get(f"/api/billing/accounts/{ids['cu']}")).json()
    assert doc["closing_balance"] == account["balance"] == "9.64" and doc["reconciles"] is True
    xlsx = await p["cara"].http.get(f"/api/billing/statements/{ids['cu']}/xlsx")
    assert xlsx.status_code == 200 and xlsx.headers["content-type"].startswith("application/vnd.openxml")
    book = load_workbook(io.BytesIO(xlsx.content))
    summary = {r[0]: r[1] for r in book["summary"].iter_rows(values_only=True) if r and r[0]}
    assert (
        summary["Closing balance"] == 9.64 and summary["Top-ups"] == 10 and summary["Charges total"] == -0.36
    )
    # the customer cannot read its reseller's statement; the page is there for finance staff
    assert (await p["cara"].http.get(f"/api/billing/statements/{ids['rs']}")).status_code == 404
    page = await p["fred"].http.get("/billing")
    assert page.status_code in (200, 303)
    await close_all(p)


async def test_low_balance_pauses_the_campaign_and_dials_nothing_until_a_top_up(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, twilio_double: TwilioDouble, tenant_in: Any
) -> None:
    c = await chain_on(hub_nobot, tenant_in)
    ids, p = c["ids"], c["people"]
    await standard_rates(c)
    assert (
        await p["olga"].http.post(f"/api/billing/accounts/{ids['rs']}/top-ups", json={"amount": "100"})
    ).status_code == 201
    assert (
        await p["fred"].http.post(f"/api/billing/accounts/{ids['cu']}/top-ups", json={"amount": "0.30"})
    ).status_code == 201
    first, second = "+14155550191", "+14155550192"
    sam, ann = p["sam"], p["ann"]
    cid = await campaign_with_targets(
        hub_nobot, mongo, sam, ids["cu"], [first, second], agent_ids=[c["ann_id"]], interval_s=10
    )
    assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200
    await ann.available()

    def calls_to(number: str) -> list[Any]:
        return [x for x in twilio_double.creates() if x.get("To") == number]

    placed = await twilio_double.wait_for(lambda: calls_to(first) or calls_to(second), timeout=15)
    called = placed[0].get("To")
    waiting = second if called == first else first
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        attempt = await wait_for(
            lambda: ctx.db.dial_attempts.find_one({"campaign_id": cid, "call_sid": {"$ne": None}}), timeout=10
        )
        await twilio_double.ring(attempt["call_sid"])
        await twilio_double.complete(attempt["call_sid"], duration=61)  # 0.36 > the 0.30 left

        async def paused() -> dict[str, Any] | None:
            found = (await sam.http.get(f"/api/campaigns/{cid}")).json()
            return found if found["state"] == "paused" else None

        campaign = await wait_for(paused, timeout=20)
        assert campaign["paused_because"].startswith("balance")
        account = await accounts.get_account(ctx, ids["cu"])
        assert account is not None and account["balance_micros"] == 300_000 - 360_000
        refused = await sam.http.post(f"/api/campaigns/{cid}/resume")
        assert refused.status_code == 409 and "balance" in refused.text
        await ann.available()
        await asyncio.sleep(3)
        assert not calls_to(waiting)  # nothing dialled while the balance is out
        topped = await p["fred"].http.post(f"/api/billing/accounts/{ids['cu']}/top-ups", json={"amount": "1"})
        assert topped.status_code == 201 and topped.json()["account"]["balance"] == "0.94"
        resumed = await sam.http.post(f"/api/campaigns/{cid}/resume")
        assert resumed.status_code == 200, resumed.text
        await twilio_double.wait_for(lambda: calls_to(waiting), timeout=20)
    finally:
        await sam.http.post(f"/api/campaigns/{cid}/stop")
        await ctx.db.close()
        await close_all(p)
