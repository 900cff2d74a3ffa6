"""Billing over HTTP against a real hub process (its rater loop and dialer running): who may set
rates, assign them and top up whom; the billing records of a three-level chain; statements in
JSON and Excel reconciling with the balance; an inbound call through the signed Twilio
webhooks rated on the inbound group (and free where none is set); and the low-balance stop
pausing a running campaign, refusing resume and placing no call until a top-up (Twilio double)."""

from __future__ import annotations

import asyncio
import io
import math
from datetime import UTC, timedelta
from typing import Any

import pytest
from openpyxl import load_workbook

from billing import accounts
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from tests.conftest import context_for
from tests.support import Agent, HubProcess
from tests.test_dialer import campaign_with_targets
from tests.test_voice_twilio import flow_doc, incoming, signed_post, wait_for
from tests.twilio_double import TwilioDouble
from tests.voice_support import TwilioCaller


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


async def test_an_inbound_call_is_rated_on_the_inbound_group_only_where_one_is_set(
    hub_nobot: HubProcess, tenant_in: Any
) -> None:
    """Real webhooks: Twilio's signed incoming-call and final status callbacks open and close the
    contact (channels/twilio/voice.py); the hub's own rater bills it by the dialled number."""
    c = await chain_on(hub_nobot, tenant_in)
    ids, p = c["ids"], c["people"]
    olga, rita = p["olga"], p["rita"]
    voice = await standard_rates(c)
    group = await olga.http.post(
        "/api/billing/groups", json={"name": "Toll-free 1800", "kind": "inbound", "currency": "USD"}
    )
    assert group.status_code == 201, group.text
    gid = str(group.json()["id"])
    assert (
        await olga.http.put(f"/api/billing/groups/{gid}/rates", json={"prefix": "1800", "price": "0.05"})
    ).status_code == 200
    # set like the voice and SMS groups: billing.rates, tenants below only, a group of its kind
    wrong_kind = await olga.http.put(f"/api/billing/accounts/{ids['rs']}", json={"inbound_group_id": voice})
    assert wrong_kind.status_code == 422
    assert (
        await rita.http.put(f"/api/billing/accounts/{ids['cu']}", json={"inbound_group_id": gid})
    ).status_code == 404  # the reseller is not rated on it yet: nothing to hand down
    assigned = await olga.http.put(f"/api/billing/accounts/{ids['rs']}", json={"inbound_group_id": gid})
    assert assigned.status_code == 200 and assigned.json()["inbound_group_id"] == gid
    assert (
        await rita.http.put(f"/api/billing/accounts/{ids['rs']}", json={"inbound_group_id": None})
    ).status_code == 404  # never its own account
    assert (
        await p["fred"].http.put(f"/api/billing/accounts/{ids['cu']}", json={"inbound_group_id": gid})
    ).status_code == 403  # finance only tops up
    handed = await rita.http.put(f"/api/billing/accounts/{ids['cu']}", json={"inbound_group_id": gid})
    assert handed.status_code == 200, handed.text
    assert (await p["cara"].http.get(f"/api/billing/groups/{gid}/rates")).json()["rates"][0][
        "price"
    ] == "0.09"
    # the other reseller is billed for voice but has no inbound group
    assert (
        await olga.http.put(f"/api/billing/accounts/{ids['other']}", json={"voice_group_id": voice})
    ).status_code == 200
    for tenant, who in ((ids["cu"], "fred"), (ids["rs"], "olga"), (ids["other"], "olga")):
        assert (
            await p[who].http.post(f"/api/billing/accounts/{tenant}/top-ups", json={"amount": "10"})
        ).status_code == 201
    suffix = new_id()[-4:]
    numbers = {
        "cu": f"+1800555{int(suffix, 16) % 10000:04d}",
        "other": f"+1800666{int(suffix, 16) % 10000:04d}",
    }
    ctx = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    try:
        for key, number in numbers.items():
            await ctx.db.ivr_flows.insert_one(flow_doc(ids[key], number, _id=f"flow-{new_id()}"))
        sids = {key: f"CA{new_id()}" for key in numbers}
        for key in ("other", "cu"):  # the unbilled call ends first: rated (or not) no later
            assert incoming(hub_nobot, sids[key], to=numbers[key])
            ended = signed_post(
                hub_nobot,
                "/twilio/status",
                {"CallSid": sids[key], "CallStatus": "completed", "CallDuration": "61"},
            )
            assert ended.status_code == 200, ended.text
        contacts: dict[str, dict[str, Any]] = {}
        for key, sid in sids.items():
            found = await ctx.db.contacts.find_one({"call_sid": sid})
            assert found is not None and found["status"] == "closed" and found["call_ended_at"]
            contacts[key] = found

        async def rated() -> list[dict[str, Any]] | None:
            found = (
                await p["fred"].http.get(f"/api/billing/records?tenant_id={ids['cu']}&kind=inbound")
            ).json()
            return found["records"] or None

        records = await wait_for(rated, timeout=20)
        assert len(records) == 1 and records[0]["source_key"] == f"call-in:{contacts['cu']['_id']}"
        assert records[0]["number"] == numbers["cu"] and records[0]["prefix"] == "1800"
        assert records[0]["seconds"] == 61 and records[0]["billed_seconds"] == 120
        assert records[0]["amount"] == "0.18" and records[0]["direction"] == "inbound"
        own = (await rita.http.get("/api/billing/records?kind=inbound")).json()["records"]
        assert [r["amount"] for r in own] == ["0.12"]
        assert not await ctx.db.billing_records.find_one(
            {"source_key": f"call-in:{contacts['other']['_id']}"}
        )
        # Twilio repeats its callback; the rater keeps running: still charged once
        assert (
            signed_post(hub_nobot, "/twilio/status", {"CallSid": sids["cu"], "CallStatus": "completed"})
        ).status_code == 200
        await asyncio.sleep(4.5)
        assert await ctx.db.billing_records.count_documents({"source_key": records[0]["source_key"]}) == 2
    finally:
        await ctx.db.close()
    accounts_now = {
        key: (await olga.http.get(f"/api/billing/accounts/{ids[key]}")).json()
        for key in ("cu", "rs", "other")
    }
    assert accounts_now["cu"]["balance"] == "9.82" and accounts_now["rs"]["balance"] == "9.88"
    assert accounts_now["other"]["balance"] == "10.00"  # nothing charged for the inbound call
    statement = (await p["cara"].http.get(f"/api/billing/statements/{ids['cu']}")).json()
    assert [(k["kind"], k["amount"]) for k in statement["charges_by_kind"]] == [("inbound", "0.18")]
    assert statement["closing_balance"] == "9.82" and statement["reconciles"] is True
    await close_all(p)


@pytest.mark.voice
async def test_an_inbound_call_without_a_status_callback_is_rated_when_its_stream_ends(
    hub_nobot: HubProcess, tenant_in: Any
) -> None:
    """No status callback configured at Twilio: the media stream's end (channels/twilio/media.py)
    stamps the call's end and the rater bills the contact's own time once SETTLE has passed."""
    op = await tenant_in(hub_nobot, level="operator", agents={"olga": []}, roles={"olga": ["admin"]})
    cu = await tenant_in(hub_nobot, level="customer", parent=op["tenant"], agents={"cara": []})
    olga = Agent(hub_nobot.url, op["slug"], "olga@t.test")
    await olga.login()
    group = await olga.http.post("/api/billing/groups", json={"name": "Toll-free", "kind": "inbound"})
    gid = str(group.json()["id"])
    await olga.http.put(
        f"/api/billing/groups/{gid}/rates", json={"prefix": "1800", "price": "0.06", "increment": "6/6"}
    )
    cu_id = cu["tenant"]["_id"]
    assert (
        await olga.http.put(f"/api/billing/accounts/{cu_id}", json={"inbound_group_id": gid})
    ).status_code == 200
    number = f"+1800777{int(new_id()[-4:], 16) % 10000:04d}"
    call_sid = f"CA{new_id()}"
    ctx = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    try:
        await ctx.db.ivr_flows.insert_one(flow_doc(cu_id, number, _id=f"flow-{new_id()}"))
        caller = TwilioCaller(hub_nobot.ws_url, incoming(hub_nobot, call_sid, to=number), call_sid)
        await caller.connect()
        await caller.wait_audio(4000)  # the greeting plays
        await caller.hang_up()

        async def ended() -> dict[str, Any] | None:
            return await ctx.db.contacts.find_one({"call_sid": call_sid, "call_ended_at": {"$ne": None}})

        contact = await wait_for(ended, timeout=20)
        assert contact.get("call_duration_s") is None  # Twilio told us nothing

        async def rated() -> dict[str, Any] | None:
            return await ctx.db.billing_records.find_one({"source_key": f"call-in:{contact['_id']}"})

        record = await wait_for(rated, timeout=30)
    finally:
        await ctx.db.close()
    opened = contact["opened_at"].replace(tzinfo=UTC)
    seconds = math.ceil((contact["call_ended_at"].replace(tzinfo=UTC) - opened).total_seconds() - 1e-6)
    assert record["tenant_id"] == cu_id and record["kind"] == "inbound" and record["seconds"] == seconds
    assert record["billed_seconds"] == 6 * math.ceil(seconds / 6) and record["prefix"] == "1800"
    assert record["amount_micros"] == record["billed_seconds"] * 1000
    account = (await olga.http.get(f"/api/billing/accounts/{cu_id}")).json()
    assert account["balance_micros"] == -record["amount_micros"]  # billed although never topped up
    await olga.close()
