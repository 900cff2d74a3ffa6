"""The bot path with the real Rasa server: answers, self-service, handoff with a skill, wrap-up."""

from __future__ import annotations

from typing import Any

import pytest

from hub.context import AppContext
from hub.embedded_db import EmbeddedDatabase
from knowledge.kb import upsert_article
from tests.conftest import context_for
from tests.support import Agent, HubProcess, Widget

pytestmark = pytest.mark.rasa


async def _seed(mongo: EmbeddedDatabase, hub: HubProcess, tenant: dict[str, Any]) -> None:
    ctx: AppContext = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    tid = tenant["tenant"]["_id"]
    await upsert_article(
        ctx,
        tid,
        "Setting up your router",
        "Plug in the router and wait until the light turns "
        "solid white. The Wi-Fi password is on the back label.",
        ["router", "wifi"],
    )
    await upsert_article(
        ctx, tid, "Mobile roaming", "Roaming in the EU is included in every plan.", ["roaming"]
    )
    await ctx.db.customers.insert_one(
        {
            "_id": f"cust-{tid}",
            "tenant_id": tid,
            "name": "Maria Garcia",
            "emails": ["maria@example.com"],
            "phones": ["+14155550101"],
            "account_number": "NW-100231",
            "segment": "residential",
            "tags": [],
            "balance": 84.2,
            "due_date": "2026-12-05",
        }
    )
    await ctx.db.close()


async def test_bot_answers_faq_from_the_knowledge_base(
    hub: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub)
    await _seed(mongo, hub, t)
    widget = Widget(hub.ws_url, t["slug"])
    await widget.connect()
    greet = await widget.say("hello")
    assert "Northwind assistant" in (await widget.reply_from("bot", greet["seq"]))["text"]
    ask = await widget.say("How do I set up my router?")
    answer = await widget.reply_from("bot", ask["seq"])
    assert "solid white" in answer["text"]
    # the bot's follow-up question belongs to this turn; the next question comes after it
    assert "Did that help" in (await widget.reply_from("bot", answer["seq"]))["text"]
    hours = await widget.say("when are you open?")
    assert "Monday to Friday" in (await widget.reply_from("bot", hours["seq"]))["text"]
    await widget.close()


async def test_balance_after_identification_then_handoff_to_billing(
    hub: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub)
    await _seed(mongo, hub, t)
    widget = Widget(hub.ws_url, t["slug"])
    await widget.connect()
    ask = await widget.say("what is my balance?")
    assert "email address or phone number" in (await widget.reply_from("bot", ask["seq"]))["text"]
    ident = await widget.say("maria@example.com")
    answer = await widget.reply_from("bot", ident["seq"])
    assert "$84.20" in answer["text"] and "NW-100231" in answer["text"]
    human = await widget.say("I want to talk to a human")
    assert "agent" in (await widget.reply_from("bot", human["seq"]))["text"]
    await widget.wait_status("queued")
    # billing question -> billing skill -> Ann (billing) gets it, Ben (technical) does not
    ben = Agent(hub.url, t["slug"], "ben@t.test")
    await ben.login()
    await ben.available()
    ann = Agent(hub.url, t["slug"], "ann@t.test")
    await ann.login()
    await ann.available()
    offer = await ann.wait_offer(human["contact_id"])
    assert offer["skill"] == "billing" and offer["reason"] == "customer_request"
    assert offer["intent"] == "check_balance" and offer["customer_name"] == "Maria Garcia"
    assert (await ben.http.get("/api/agent/contacts")).json()["offers"] == []
    await ann.http.post(f"/api/contacts/{human['contact_id']}/accept")
    await widget.wait_status("assigned")
    pop = (await ann.http.get(f"/api/contacts/{human['contact_id']}")).json()
    assert pop["customer"]["account_number"] == "NW-100231"
    assert any("$84.20" in m["text"] for m in pop["messages"] if m["author"] == "bot")
    # live chat both ways
    await ann.http.post(f"/api/contacts/{human['contact_id']}/messages", json={"text": "Hi Maria, Ann here."})
    assert (await widget.reply_from("agent", human["seq"]))["text"] == "Hi Maria, Ann here."
    question = await widget.say("Can I pay next week?")
    pop = (await ann.http.get(f"/api/contacts/{human['contact_id']}")).json()
    assert (
        pop["messages"][-1]["text"] == "Can I pay next week?"
        and pop["messages"][-1]["seq"] == question["seq"]
    )
    # no bot reply while an agent holds the conversation
    assert not [m for m in widget.messages.values() if m["author"] == "bot" and m["seq"] > question["seq"]]
    # wrap-up closes it and puts it in the customer's history
    bad = await ann.http.post(f"/api/contacts/{human['contact_id']}/wrapup", json={"disposition": "nope"})
    assert bad.status_code == 422
    done = await ann.http.post(
        f"/api/contacts/{human['contact_id']}/wrapup",
        json={"disposition": "resolved", "note": "extension granted"},
    )
    assert done.status_code == 200 and done.json()["status"] == "closed"
    await widget.wait_status("closed")
    history = (await ann.http.get(f"/api/customers/{pop['customer']['id']}")).json()["history"]
    closed = next(h for h in history if h["id"] == human["contact_id"])
    assert closed["disposition"] == "resolved" and closed["note"] == "extension granted"
    assert "Can I pay next week?" in [m["text"] for m in closed["messages"]]
    presence = (await ann.http.get("/api/agent/presence")).json()
    assert presence["free"] == presence["capacity"] and presence["state"] == "available"
    # the visitor writing again starts a new conversation with the bot
    again = await widget.say("hello again")
    assert again["contact_id"] != human["contact_id"]
    await widget.reply_from("bot", 0 if again["seq"] == 1 else again["seq"])
    for client in (ann, ben):
        await client.close()
    await widget.close()


async def test_two_fallbacks_in_a_row_hand_off(hub: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub)
    widget = Widget(hub.ws_url, t["slug"])
    await widget.connect()
    first = await widget.say("zxqv plorb wum tandiloo")
    reply = (await widget.reply_from("bot", first["seq"]))["text"]
    assert "didn't understand" in reply or "can't help with that" in reply
    assert widget.status == "bot"
    second = await widget.say("blorpt quazzle frimb snerk")
    assert "agent" in (await widget.reply_from("bot", second["seq"]))["text"]
    await widget.wait_status("queued")
    agent = Agent(hub.url, t["slug"], "ben@t.test")
    await agent.login()
    await agent.available()
    offer = await agent.wait_offer(second["contact_id"])
    assert offer["reason"] == "bot_fallback" and offer["skill"] == "general"
    await agent.close()
    await widget.close()


async def test_outage_report_opens_a_ticket_and_routes_to_technical(
    hub: HubProcess, mongo: EmbeddedDatabase, tenant_in
) -> None:
    t = await tenant_in(hub)
    widget = Widget(hub.ws_url, t["slug"])
    await widget.connect()
    report = await widget.say("there's a power cut on my street")
    text = (await widget.reply_from("bot", report["seq"]))["text"]
    assert "ticket" in text
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    ticket = await ctx.db.tickets.find_one({"contact_id": report["contact_id"]})
    await ctx.db.close()
    assert ticket is not None and ticket["kind"] == "outage" and ticket["_id"][:8].upper() in text
    human = await widget.say("let me speak to an agent please")
    await widget.wait_status("queued")
    ben = Agent(hub.url, t["slug"], "ben@t.test")
    await ben.login()
    await ben.available()
    offer = await ben.wait_offer(human["contact_id"])
    assert offer["skill"] == "technical"
    await ben.close()
    await widget.close()
