"""One customer, three channels, one timeline: a web chat, an SMS and a phone call from the same
number all land on the customer's profile, and the agent's screen pop shows them together."""

from __future__ import annotations

from typing import Any

from hub.embedded_db import EmbeddedDatabase
from tests.desk_support import keys_flow
from tests.support import Agent, HubProcess, Widget
from tests.test_sms import a_number, wait_until
from tests.test_voice_twilio import incoming, install_flow
from tests.twilio_double import TwilioDouble


async def test_chat_sms_and_call_share_the_customers_timeline(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, twilio_double: TwilioDouble, sms_tenant: dict[str, Any]
) -> None:
    ctx, tenant_id, phone = sms_tenant["ctx"], sms_tenant["tenant"]["_id"], a_number()
    # a web chat where the visitor gives the phone number
    widget = Widget(hub_nobot.ws_url, sms_tenant["slug"])
    await widget.connect()
    await widget.send({"type": "identify", "phone": phone, "name": "Ada"})
    await widget.expect("identified")
    await widget.say("Hello from the website")
    # an SMS from the same phone
    assert (
        await twilio_double.inbound_sms(sms_tenant["url"], phone, sms_tenant["number"], "Hello by text")
    ).status_code == 200
    # and a phone call from it
    await install_flow(mongo, hub_nobot, keys_flow(tenant_id, "+14155550191"))
    incoming(hub_nobot, "CA" + "f1" * 16, to="+14155550191", caller=phone)

    async def all_three() -> dict[str, Any] | None:
        channels = {c["channel"] async for c in ctx.db.contacts.find({"tenant_id": tenant_id})}
        return {"channels": channels} if {"webchat", "sms", "voice"} <= channels else None

    await wait_until(all_three, timeout=20)
    customers = {c.get("customer_id") async for c in ctx.db.contacts.find({"tenant_id": tenant_id})}
    assert len(customers) == 1 and None not in customers  # one profile behind all three
    customer_id = customers.pop()
    admin = await ctx.db.users.find_one({"tenant_id": tenant_id})
    assert admin is not None
    agent = Agent(hub_nobot.url, sms_tenant["slug"], admin["email"])
    await agent.login()
    timeline = (await agent.http.get(f"/api/customers/{customer_id}")).json()["history"]
    assert {entry["channel"] for entry in timeline} == {"webchat", "sms", "voice"}
    texts = [m["text"] for entry in timeline for m in entry["messages"]]
    assert "Hello from the website" in texts and "Hello by text" in texts
    await agent.close()
    await widget.close()
