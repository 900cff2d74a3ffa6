"""The post-chat satisfaction survey (bot/csat.py) for web chat and SMS, against the shared
hub (Rasa down: every conversation goes to an agent), the widget protocol and the Twilio
double."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from bot.csat import score_of
from hub.context import AppContext
from tests.conftest import TenantFactory, context_for
from tests.support import Agent, HubProcess, Widget
from tests.twilio_double import TwilioDouble

THANKS = "Thank you for your feedback!"
SURVEY = "How satisfied were you with this conversation? 1 (poor) to 5 (excellent)"


async def wait_until(predicate: Any, timeout: float = 20) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


async def serve_and_close(agent: Agent, contact_id: str, text: str = "Happy to help") -> None:
    """The agent takes the offer, answers once and wraps up."""
    await agent.wait_offer(contact_id)
    (await agent.http.post(f"/api/contacts/{contact_id}/accept")).raise_for_status()
    sent = await agent.http.post(f"/api/contacts/{contact_id}/messages", json={"text": text})
    sent.raise_for_status()
    closed = await agent.http.post(f"/api/contacts/{contact_id}/wrapup", json={"disposition": "resolved"})
    closed.raise_for_status()


def test_scores() -> None:
    assert [score_of(t) for t in ("1", " 5 ", "4/5", "3.", "/csat_2", "/CSAT_4")] == [1, 5, 4, 3, 2, 4]
    assert [score_of(t) for t in ("0", "6", "45", "hello", "4 stars please", "")] == [None] * 6


async def test_web_chat_survey_answered_with_a_button(
    hub_nobot: HubProcess, tenant_in: TenantFactory
) -> None:
    t = await tenant_in(hub_nobot)
    ctx = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    widget = Widget(hub_nobot.ws_url, t["slug"])
    agent = Agent(hub_nobot.url, t["slug"], "ann@t.test")
    try:
        await widget.connect()
        ack = await widget.say("my router keeps rebooting")
        contact_id = ack["contact_id"]
        await agent.login()
        await agent.available()
        await serve_and_close(agent, contact_id)
        survey = await widget.reply_from("bot", ack["seq"] + 2)
        while survey["text"] != SURVEY:
            survey = await widget.reply_from("bot", survey["seq"])
        assert [b["title"] for b in survey["buttons"]] == ["1", "2", "3", "4", "5"]
        assert survey["buttons"][3]["payload"] == "/csat_4"
        # the widget sends the title of the clicked button
        answer = await widget.say("4")
        assert answer["contact_id"] == contact_id
        thanks = await widget.reply_from("bot", answer["seq"])
        assert thanks["text"] == "Thank you for your feedback!" and thanks["contact_id"] == contact_id
        contact = await ctx.db.contacts.find_one({"_id": contact_id})
        assert contact is not None and contact["survey_score"] == 4 and contact["survey_at"] is not None
        assert contact["status"] == "closed" and contact["updated_at"] >= contact["survey_at"]
        visitor_id = contact["visitor_id"]
        assert await ctx.db.contacts.count_documents({"visitor_id": visitor_id}) == 1
        # the answer stays out of the bot's way and of any agent's offers
        stored = await ctx.db.messages.find_one({"_id": answer["id"]})
        assert stored is not None and "bot_state" not in stored
        assert (await agent.http.get("/api/agent/contacts")).json()["offers"] == []
        # a resend of the answer is the same message, still no new contact
        again = await widget.say("4", client_id=stored["client_id"])
        assert again["id"] == answer["id"]
        # a later message is a new conversation
        fresh = await widget.say("one more question")
        assert fresh["contact_id"] != contact_id
        assert await ctx.db.contacts.count_documents({"visitor_id": visitor_id}) == 2
    finally:
        await widget.close()
        await agent.close()
        await ctx.db.close()


async def sms_served_and_closed(
    twilio_double: TwilioDouble, sms_tenant: dict[str, Any], number: str
) -> dict[str, Any]:
    ctx: AppContext = sms_tenant["ctx"]
    await twilio_double.inbound_sms(sms_tenant["url"], number, sms_tenant["number"], "My bill is wrong")
    contact = await wait_until(lambda: ctx.db.contacts.find_one({"customer_number": number}))
    hub_url = str(sms_tenant["url"]).removesuffix("/twilio/sms")
    agent = Agent(hub_url, sms_tenant["slug"], "ann@t.test")
    try:
        await agent.login()
        await agent.available()
        await serve_and_close(agent, contact["_id"], "Fixed it for you")
    finally:
        await agent.close()
    return dict(contact)


async def test_sms_survey_reply_is_recorded(twilio_double: TwilioDouble, sms_tenant: dict[str, Any]) -> None:
    ctx: AppContext = sms_tenant["ctx"]
    number = f"+1415557{secrets.randbelow(10000):04d}"
    contact = await sms_served_and_closed(twilio_double, sms_tenant, number)
    await twilio_double.wait_for(
        lambda: [m for m in twilio_double.sent_messages(number) if "Reply 1-5" in m["body"]], timeout=20
    )
    sid = "SMcsat" + secrets.token_hex(8)
    await twilio_double.inbound_sms(sms_tenant["url"], number, sms_tenant["number"], "5", sid=sid)
    await twilio_double.wait_for(
        lambda: [
            m for m in twilio_double.sent_messages(number) if m["body"] == "Thank you for your feedback!"
        ],
        timeout=20,
    )
    # Twilio's retry of the same answer changes nothing
    await twilio_double.inbound_sms(sms_tenant["url"], number, sms_tenant["number"], "5", sid=sid)
    fresh = await ctx.db.contacts.find_one({"_id": contact["_id"]})
    assert fresh is not None and fresh["survey_score"] == 5 and fresh["status"] == "closed"
    assert await ctx.db.contacts.count_documents({"customer_number": number}) == 1
    answers = await ctx.db.messages.count_documents({"contact_id": contact["_id"], "text": "5"})
    assert answers == 1


async def test_sms_other_reply_opens_a_normal_conversation(
    twilio_double: TwilioDouble, sms_tenant: dict[str, Any]
) -> None:
    ctx: AppContext = sms_tenant["ctx"]
    number = f"+1415558{secrets.randbelow(10000):04d}"
    contact = await sms_served_and_closed(twilio_double, sms_tenant, number)
    await twilio_double.wait_for(
        lambda: [m for m in twilio_double.sent_messages(number) if "Reply 1-5" in m["body"]], timeout=20
    )
    await twilio_double.inbound_sms(sms_tenant["url"], number, sms_tenant["number"], "hello")
    newer = await wait_until(
        lambda: ctx.db.contacts.find_one({"customer_number": number, "_id": {"$ne": contact["_id"]}})
    )
    assert newer["status"] != "closed"
    old = await ctx.db.contacts.find_one({"_id": contact["_id"]})
    assert old is not None and old.get("survey_score") is None and old["csat_pending_until"] is None
    # a digit now belongs to the new conversation
    await twilio_double.inbound_sms(sms_tenant["url"], number, sms_tenant["number"], "3")
    await wait_until(lambda: ctx.db.messages.find_one({"contact_id": newer["_id"], "text": "3"}))


async def test_disabled_tenant_gets_no_survey(
    twilio_double: TwilioDouble, sms_tenant: dict[str, Any]
) -> None:
    ctx: AppContext = sms_tenant["ctx"]
    await ctx.db.tenants.update_one(
        {"_id": sms_tenant["tenant"]["_id"]}, {"$set": {"csat": {"enabled": False}}}
    )
    number = f"+1415559{secrets.randbelow(10000):04d}"
    contact = await sms_served_and_closed(twilio_double, sms_tenant, number)
    await twilio_double.wait_for(
        lambda: [m for m in twilio_double.sent_messages(number) if "closed this conversation" in m["body"]],
        timeout=20,
    )
    await asyncio.sleep(0.5)
    assert not [m for m in twilio_double.sent_messages(number) if "Reply 1-5" in m["body"]]
    fresh = await ctx.db.contacts.find_one({"_id": contact["_id"]})
    assert fresh is not None and fresh.get("csat_pending_until") is None
    await twilio_double.inbound_sms(sms_tenant["url"], number, sms_tenant["number"], "5")
    await wait_until(
        lambda: ctx.db.contacts.find_one({"customer_number": number, "_id": {"$ne": contact["_id"]}})
    )
