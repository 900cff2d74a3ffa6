"""SMS through Twilio Messaging and the durable outbox, against real hub processes and the
Twilio REST double (tests/twilio_double.py)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.sms.keywords import HELP_TEXT, START_TEXT
from channels.sms.segments import count_segments, split_body
from hub.embedded_db import EmbeddedDatabase, free_port
from hub.ids import new_id, utcnow
from knowledge.dnc import active_entries
from tests.conftest import context_for, make_tenant
from tests.support import Agent, HubProcess
from tests.twilio_double import TwilioDouble

OUR_NUMBER = "+15005550006"


def a_number() -> str:
    return f"+1415555{free_port() % 10000:04d}"


async def own_number(mongo_uri: str, db_name: str, tenant_id: str, number: str) -> None:
    ctx = context_for(mongo_uri, db_name)
    try:
        await ctx.db.tenants.update_one({"_id": tenant_id}, {"$set": {"sms_numbers": [number]}})
    finally:
        await ctx.db.close()


async def wait_until(predicate: Any, timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


# -- segments (pure) ----------------------------------------------------------------------------
def test_segment_counts() -> None:
    assert count_segments("hello") == count_segments("hello").__class__("GSM-7", 5, 1)
    assert count_segments("a" * 160).segments == 1
    assert count_segments("a" * 161).segments == 2
    long = count_segments("x" * 300)
    assert (long.encoding, long.segments) == ("GSM-7", 2)
    assert count_segments("€" * 80).units == 160  # extension characters cost two septets
    chinese = count_segments("您好" * 35)
    assert (chinese.encoding, chinese.segments) == ("UCS-2", 1)
    assert count_segments("您好" * 36).segments == 2
    assert count_segments("😀").units == 2


@given(st.text(max_size=5000))
def test_split_body_keeps_every_character_and_respects_the_limit(text: str) -> None:
    parts = split_body(text)
    assert all(len(p) <= 1600 for p in parts)
    assert "".join(parts).replace(" ", "") == text.replace(" ", "")


# -- the webhook against a real hub ------------------------------------------------------------
async def test_inbound_sms_reaches_an_agent_whose_reply_goes_out_once(
    hub_nobot: HubProcess, twilio_double: TwilioDouble, sms_tenant: dict[str, Any]
) -> None:
    ctx, customer = sms_tenant["ctx"], a_number()
    response = await twilio_double.inbound_sms(sms_tenant["url"], customer, sms_tenant["number"], "My bill")
    assert response.status_code == 200 and "<Response" in response.text
    contact = await wait_until(
        lambda: ctx.db.contacts.find_one(
            {"tenant_id": sms_tenant["tenant"]["_id"], "customer_number": customer}
        )
    )
    assert contact["channel"] == "sms"
    # Rasa is down in hub_nobot: the bot's apology goes out as an SMS, and the contact is queued
    await twilio_double.wait_for(lambda: twilio_double.sent_messages(customer), timeout=20)
    # a second message and Twilio's retry of it thread into the same contact, stored once
    again = await twilio_double.inbound_sms(
        sms_tenant["url"], customer, sms_tenant["number"], "Are you there?", sid="SMrepeat" + new_id()[:8]
    )
    assert again.status_code == 200
    sid = str(twilio_double.callbacks[-1][1]["MessageSid"])
    await twilio_double.inbound_sms(
        sms_tenant["url"], customer, sms_tenant["number"], "Are you there?", sid=sid
    )
    texts = [
        m["text"] async for m in ctx.db.messages.find({"contact_id": contact["_id"], "author": "visitor"})
    ]
    assert texts == ["My bill", "Are you there?"]
    assert await ctx.db.contacts.count_documents({"customer_number": customer}) == 1

    agent = Agent(hub_nobot.url, sms_tenant["slug"], "ann@t.test")
    await agent.login()
    await agent.available()
    try:
        await agent.wait_offer(contact["_id"])
        (await agent.http.post(f"/api/contacts/{contact['_id']}/accept")).raise_for_status()
        before = len(twilio_double.message_creates())
        reply = await agent.http.post(
            f"/api/contacts/{contact['_id']}/messages", json={"text": "Let me check that", "client_id": "r1"}
        )
        reply.raise_for_status()
        repeat = await agent.http.post(
            f"/api/contacts/{contact['_id']}/messages", json={"text": "Let me check that", "client_id": "r1"}
        )
        assert repeat.json()["id"] == reply.json()["id"]
        sent = await twilio_double.wait_for(
            lambda: [m for m in twilio_double.sent_messages(customer) if m["body"] == "Let me check that"]
        )
        await asyncio.sleep(1)
        bodies = [r.form["Body"][0] for r in twilio_double.message_creates()[before:]]
        assert bodies.count("Let me check that") == 1
        assert "Ann joined the conversation." in [m["body"] for m in twilio_double.sent_messages(customer)]
        assert sent[0]["from"] == sms_tenant["number"]
        row = await ctx.db.outbox.find_one({"provider_id": sent[0]["sid"]})
        assert row is not None and row["state"] == "sent" and row["contact_id"] == contact["_id"]
        status = await twilio_double.deliver(sent[0]["sid"])
        assert status is not None and status.status_code == 200
        row = await ctx.db.outbox.find_one({"_id": row["_id"]})
        assert row is not None and row["state"] == "delivered"
    finally:
        await agent.close()


async def test_unsigned_forged_malformed_and_unknown_numbers(
    hub_nobot: HubProcess, twilio_double: TwilioDouble, sms_tenant: dict[str, Any]
) -> None:
    url, ours, customer = sms_tenant["url"], sms_tenant["number"], a_number()
    assert (await twilio_double.inbound_sms(url, customer, ours, "hi", signature="")).status_code == 403
    assert (await twilio_double.inbound_sms(url, customer, ours, "hi", token="wrong")).status_code == 403
    status_url = f"{url}/status"
    assert (await twilio_double.post(status_url, {"MessageSid": "SMx"}, signature="")).status_code == 403
    bad = await twilio_double.post(url, {"From": customer, "Body": "no sid or To"})
    assert bad.status_code == 400
    unknown = await twilio_double.inbound_sms(url, customer, "+15005559999", "anyone?")
    assert unknown.status_code == 200 and "<Response" in unknown.text
    ctx = sms_tenant["ctx"]
    assert await ctx.db.contacts.count_documents({"customer_number": customer}) == 0


async def test_stop_start_and_help(
    hub_nobot: HubProcess, twilio_double: TwilioDouble, sms_tenant: dict[str, Any]
) -> None:
    ctx, url, ours, customer = sms_tenant["ctx"], sms_tenant["url"], sms_tenant["number"], a_number()
    tenant_id = sms_tenant["tenant"]["_id"]
    assert (await twilio_double.inbound_sms(url, customer, ours, " stop ")).status_code == 200
    entries = await active_entries(ctx, tenant_id, [customer], utcnow())
    assert entries[customer].list == "black" and entries[customer].source == "sms_stop"
    profile = await ctx.db.customers.find_one({"tenant_id": tenant_id, "phones": customer})
    assert profile is not None and profile["sms_opt_out"] is True
    # the keyword never reaches the bot or opens a conversation
    assert await ctx.db.contacts.count_documents({"customer_number": customer}) == 0

    await twilio_double.inbound_sms(url, customer, ours, "HELP")
    await twilio_double.wait_for(
        lambda: [m for m in twilio_double.sent_messages(customer) if m["body"] == HELP_TEXT]
    )

    await twilio_double.inbound_sms(url, customer, ours, "Start")
    await twilio_double.wait_for(
        lambda: [m for m in twilio_double.sent_messages(customer) if m["body"] == START_TEXT]
    )
    assert customer not in await active_entries(ctx, tenant_id, [customer], utcnow())
    profile = await ctx.db.customers.find_one({"_id": profile["_id"]})
    assert profile is not None and profile["sms_opt_out"] is False


async def test_segments_are_stored_on_inbound_messages(
    hub_nobot: HubProcess, twilio_double: TwilioDouble, sms_tenant: dict[str, Any]
) -> None:
    ctx, url, ours, customer = sms_tenant["ctx"], sms_tenant["url"], sms_tenant["number"], a_number()
    await twilio_double.inbound_sms(url, customer, ours, "a" * 300)
    await twilio_double.inbound_sms(url, customer, ours, "请问我的账单为什么这么高" * 7)
    messages = [
        m async for m in ctx.db.messages.find({"tenant_id": sms_tenant["tenant"]["_id"], "author": "visitor"})
    ]
    by_text = {m["text"][:1]: m["data"] for m in messages}
    assert by_text["a"]["encoding"] == "GSM-7" and by_text["a"]["segments"] == 2
    assert by_text["请"]["encoding"] == "UCS-2" and by_text["请"]["segments"] == 2


# -- kill the hub while the outbox holds messages ------------------------------------------------
@pytest.fixture
async def own_db(tmp_path: Path) -> AsyncIterator[EmbeddedDatabase]:
    db = EmbeddedDatabase(tmp_path / "db", free_port())
    await db.start()
    yield db
    await db.stop()


async def test_killed_hub_delivers_each_outbox_message_exactly_once(
    tmp_path: Path, own_db: EmbeddedDatabase, twilio_double: TwilioDouble
) -> None:
    hub = HubProcess(
        tmp_path / "hub",
        own_db.uri,
        f"http://127.0.0.1:{free_port()}",
        env={**twilio_double.env(), "HUB_OUTBOX_LEASE_S": "2"},
    )
    hub.start()
    ctx = context_for(own_db.uri, "hubtest")
    try:
        t = await make_tenant(own_db.uri, "hubtest")
        tenant_id = t["tenant"]["_id"]
        await own_number(own_db.uri, "hubtest", tenant_id, OUR_NUMBER)
        customers = [a_number() for _ in range(3)]
        for _ in range(3):  # Twilio is down: every first send fails and is retried later
            twilio_double.fail_next(503, 20500, "Service unavailable")
        for customer in customers:
            await twilio_double.inbound_sms(f"{hub.url}/twilio/sms", customer, OUR_NUMBER, "hello")

        async def all_held() -> bool:
            rows = [r async for r in ctx.db.outbox.find({"tenant_id": tenant_id})]
            return len(rows) == 3 and all(r["state"] == "queued" and r["attempts"] >= 1 for r in rows)

        await wait_until(all_held)
        hub.stop(signal.SIGKILL)
        twilio_double.clear_failures()
        # two rows a killed process left mid-send: one whose sid was recorded, one that Twilio
        # had already accepted when the process died (found by looking it up, not sent again)
        expired = utcnow() - timedelta(seconds=5)
        recorded, accepted = a_number(), a_number()
        creates_before = len(twilio_double.message_creates())
        base: dict[str, Any] = {
            "tenant_id": tenant_id,
            "channel": "sms",
            "body": "left mid-send",
            "contact_id": None,
            "meta": {"from": OUR_NUMBER, "transactional": True},
            "state": "sending",
            "attempts": 0,
            "next_attempt_at": expired,
            "claim": "dead-process",
            "send_started_at": expired,
            "provider_status": None,
            "error": None,
            "created_at": expired,
            "updated_at": expired,
            "sent_at": None,
        }
        await ctx.db.outbox.insert_one(
            {**base, "_id": new_id(), "to": recorded, "idempotency_key": "k1", "provider_id": "SMrecorded"}
        )
        twilio_double.messages["SMaccepted"] = {
            "sid": "SMaccepted",
            "to": accepted,
            "from": OUR_NUMBER,
            "body": "left mid-send",
            "status": "queued",
            "date_created": "Mon, 01 Jan 2024 00:00:00 +0000",
        }
        twilio_double.messages["SMaccepted"]["date_created"] = utcnow().strftime(
            "%a, %d %b %Y %H:%M:%S +0000"
        )
        await ctx.db.outbox.insert_one(
            {**base, "_id": new_id(), "to": accepted, "idempotency_key": "k2", "provider_id": None}
        )
        hub.start()

        async def all_sent() -> bool:
            rows = [r async for r in ctx.db.outbox.find({"tenant_id": tenant_id})]
            return len(rows) == 5 and all(r["state"] == "sent" for r in rows)

        await wait_until(all_sent, timeout=60)
        for customer in customers:
            assert len(twilio_double.sent_messages(customer)) == 1, customer
        new_creates = twilio_double.message_creates()[creates_before:]
        assert sorted(r.form["To"][0] for r in new_creates) == sorted(customers)
        rows = {r["to"]: r async for r in ctx.db.outbox.find({"tenant_id": tenant_id})}
        assert rows[recorded]["provider_id"] == "SMrecorded"
        assert rows[accepted]["provider_id"] == "SMaccepted"
        await asyncio.sleep(2.5)  # a lease later, nothing is sent again
        assert len(twilio_double.message_creates()) == creates_before + 3
    finally:
        await ctx.db.close()
        hub.stop()
