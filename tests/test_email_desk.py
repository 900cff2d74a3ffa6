"""Email in the agent desk, against a real hub process with its SMTP receiver and a real local
SMTP server (aiosmtpd) catching what it sends: the thread view (headers, quoted text, HTML part,
attachments, delivery state; tenant and role checks) and a customer mailing again into a closed
thread, which opens a new contact linked to the earlier one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from channels.email.parse import quote_blocks
from channels.email.thread import header_date
from hub.contacts import open_contact
from hub.embedded_db import EmbeddedDatabase
from hub.ids import utcnow
from tests.conftest import context_for
from tests.email_support import Sink, email_tenant, running_email_hub, running_sink
from tests.support import Agent, HubProcess
from tests.test_email import a_customer, deliver, mail, wait_until

DB = "hub_email_desk"


@pytest.fixture(scope="module")
def desk_sink() -> Iterator[tuple[Controller, Sink]]:
    with running_sink() as started:
        yield started


@pytest.fixture(scope="module")
def desk_hub(tmp_path_factory: pytest.TempPathFactory, mongo: EmbeddedDatabase) -> Iterator[HubProcess]:
    with running_email_hub(tmp_path_factory.mktemp("hub_email_desk"), mongo.uri, DB) as process:
        yield process


async def desk_tenant(mongo_uri: str, smtp_port: int, db: str = DB) -> dict[str, Any]:
    """A tenant with a support address whose mail leaves through the test SMTP server; agents
    ann and ben, supervisor sue."""
    return await email_tenant(
        mongo_uri,
        db,
        smtp_port,
        agents={"ann": ["general"], "ben": ["general"], "sue": ["general"]},
        roles={"sue": ["supervisor"]},
    )


@pytest.fixture
async def tenant(
    desk_hub: HubProcess, mongo: EmbeddedDatabase, desk_sink: tuple[Controller, Sink]
) -> AsyncIterator[dict[str, Any]]:
    t = await desk_tenant(mongo.uri, desk_sink[0].port)
    t["ctx"] = context_for(mongo.uri, DB)
    t["sink"] = desk_sink[1]
    yield t
    await t["ctx"].db.close()


async def signed_in(hub: HubProcess, slug: str, name: str) -> Agent:
    agent = Agent(hub.url, slug, f"{name}@t.test")
    await agent.login()
    return agent


async def handed_off(ctx: Any, tenant_id: str, customer: str, count: int = 1) -> list[dict[str, Any]]:
    """The customer's email contacts once `count` of them left the bot, oldest first."""

    async def found() -> list[dict[str, Any]] | None:
        contacts = [
            c
            async for c in ctx.db.contacts.find(
                {"tenant_id": tenant_id, "customer_email": customer, "status": {"$ne": "bot"}}
            ).sort("opened_at", 1)
        ]
        return contacts if len(contacts) >= count else None

    result: list[dict[str, Any]] = await wait_until(found)
    return result


async def take(agent: Agent, contact_id: str) -> None:
    await agent.available()
    await agent.wait_offer(contact_id)
    (await agent.http.post(f"/api/contacts/{contact_id}/accept")).raise_for_status()


def test_quote_blocks_and_dates() -> None:
    text = "Thanks!\n\n> your answer\n> was fine\n\nOne more thing.\nOn Mon, Ann wrote:\n> old\nsig"
    assert quote_blocks(text) == [
        (False, "Thanks!"),
        (True, "> your answer\n> was fine"),
        (False, "One more thing."),
        (True, "On Mon, Ann wrote:\n> old\nsig"),
    ]
    assert quote_blocks("") == []
    assert header_date("Tue, 03 Mar 2026 09:15:00 +0100") == "2026-03-03T09:15:00+01:00"
    assert header_date("not a date") is None and header_date(None) is None


async def test_thread_view_shows_headers_quotes_html_attachments_and_delivery(
    desk_hub: HubProcess, tenant: dict[str, Any], mongo: EmbeddedDatabase, desk_sink: tuple[Controller, Sink]
) -> None:
    ctx, customer, tenant_id = tenant["ctx"], a_customer(), tenant["tenant"]["_id"]
    sent_at = format_datetime(utcnow().replace(microsecond=0))
    first = mail(
        customer,
        tenant["address"],
        "Odd noise",
        "My router hums.\n\nOn Mon, Ann wrote:\n> Did you restart it?",
        Date=sent_at,
    )
    first.add_alternative(
        "<p>My router <b>hums</b>.</p><script>alert(1)</script><img src='http://127.0.0.1:9/t.png'>",
        subtype="html",
    )
    first.add_attachment(b"%PDF-1.4 bill", maintype="application", subtype="pdf", filename="bill.pdf")
    await deliver(desk_hub, first, customer, tenant["address"])
    (contact,) = await handed_off(ctx, tenant_id, customer)
    url = f"/api/contacts/{contact['_id']}/email"

    ann, ben, sue = [await signed_in(desk_hub, tenant["slug"], n) for n in ("ann", "ben", "sue")]
    other = await desk_tenant(mongo.uri, desk_sink[0].port)
    stranger = await signed_in(desk_hub, other["slug"], "ann")
    try:
        await take(ann, contact["_id"])
        thread = (await ann.http.get(url)).json()
        assert thread["subject"] == "Odd noise" and thread["reply_subject"] == "Re: Odd noise"
        assert thread["our_address"] == tenant["address"] and thread["customer_address"] == customer
        assert thread["previous_contact"] is None
        (got,) = [m for m in thread["mails"] if m["direction"] != "system"]  # "Ann joined" is a note
        assert got["direction"] == "in" and got["author"] == "visitor"
        assert (got["from"], got["from_name"], got["to"]) == (customer, "Carol", [tenant["address"]])
        assert got["subject"] == "Odd noise" and got["date"] == header_date(sent_at)
        assert got["blocks"] == [
            {"quoted": False, "text": "My router hums."},
            {"quoted": True, "text": "On Mon, Ann wrote:\n> Did you restart it?"},
        ]
        assert "<b>hums</b>" in got["html"]  # as received: the desk renders it in a sandboxed iframe
        (attachment,) = got["attachments"]
        assert attachment["filename"] == "bill.pdf" and attachment["size"] == len(b"%PDF-1.4 bill")
        assert attachment["content_type"] == "application/pdf"
        download = await ann.http.get(attachment["url"])
        assert download.status_code == 200 and download.content == b"%PDF-1.4 bill"

        # who may look: the assigned agent and supervisors; not another agent, tenant or nobody
        assert (await sue.http.get(url)).status_code == 200
        assert (await ben.http.get(url)).status_code == 403
        assert (await stranger.http.get(url)).status_code == 404
        assert (await stranger.http.get(attachment["url"])).status_code == 404
        async with httpx.AsyncClient(base_url=desk_hub.url) as anonymous:
            assert (await anonymous.get(url)).status_code == 401
        chat = await open_contact(ctx, tenant_id, "webchat")
        assert (await sue.http.get(f"/api/contacts/{chat['_id']}/email")).status_code == 404

        # the agent's reply shows as an outgoing mail and reports when it left the outbox
        reply = await ann.http.post(
            f"/api/contacts/{contact['_id']}/messages",
            json={"text": "Hello Carol, Ann here.", "client_id": "r1"},
        )
        reply.raise_for_status()
        await wait_until(lambda: tenant["sink"].to(customer))

        async def delivered() -> dict[str, Any] | None:
            mails = (await ann.http.get(url)).json()["mails"]
            out = [m for m in mails if m["direction"] == "out"]
            return out[0] if out and out[0]["delivery"] == "sent" else None

        out = await wait_until(delivered)
        assert (out["from"], out["to"], out["subject"]) == (tenant["address"], [customer], "Re: Odd noise")
        assert out["author"] == "agent" and out["from_name"] == "Ann"
        assert out["blocks"] == [{"quoted": False, "text": "Hello Carol, Ann here."}]
    finally:
        for agent in (ann, ben, sue, stranger):
            await agent.close()


async def test_a_reply_into_a_closed_thread_opens_a_linked_contact(
    desk_hub: HubProcess, tenant: dict[str, Any]
) -> None:
    ctx, customer, tenant_id = tenant["ctx"], a_customer(), tenant["tenant"]["_id"]
    first = mail(customer, tenant["address"], "Bill too high", "My bill doubled this month.")
    await deliver(desk_hub, first, customer, tenant["address"])
    (earlier,) = await handed_off(ctx, tenant_id, customer)
    ann = await signed_in(desk_hub, tenant["slug"], "ann")
    try:
        await take(ann, earlier["_id"])
        (
            await ann.http.post(
                f"/api/contacts/{earlier['_id']}/messages", json={"text": "Fixed: refund on the way."}
            )
        ).raise_for_status()
        (ours,) = await wait_until(lambda: tenant["sink"].to(customer))
        done = await ann.http.post(f"/api/contacts/{earlier['_id']}/wrapup", json={"disposition": "resolved"})
        assert done.json()["status"] == "closed"

        # the customer answers our mail after the contact was closed: a new, linked contact
        def answer(text: str, reply_to: EmailMessage | Any) -> EmailMessage:
            return mail(
                customer,
                tenant["address"],
                "Re: Bill too high",
                f"{text}\n\nOn Mon, Ann wrote:\n> Fixed: refund on the way.",
                In_Reply_To=str(reply_to["Message-ID"]),
                References=f"{first['Message-ID']} {reply_to['Message-ID']}",
            )

        again = answer("The refund has not arrived.", ours)
        await deliver(desk_hub, again, customer, tenant["address"])
        _, follow_up = await handed_off(ctx, tenant_id, customer, count=2)
        assert follow_up["_id"] != earlier["_id"] and follow_up["previous_contact_id"] == earlier["_id"]
        closed = await ctx.db.contacts.find_one({"_id": earlier["_id"]})
        assert closed["status"] == "closed" and closed["disposition"] == "resolved"
        assert await ctx.db.messages.count_documents({"contact_id": earlier["_id"], "author": "visitor"}) == 1
        assert follow_up["customer_id"] == earlier["customer_id"]

        # a second answer into the same closed thread joins the follow-up, not a third contact
        await deliver(desk_hub, answer("Still nothing.", ours), customer, tenant["address"])

        async def two_mails() -> bool:
            n = await ctx.db.messages.count_documents({"contact_id": follow_up["_id"], "author": "visitor"})
            return bool(n == 2)

        await wait_until(two_mails)
        assert (
            await ctx.db.contacts.count_documents({"tenant_id": tenant_id, "customer_email": customer}) == 2
        )

        # the desk: the timeline links them, the thread view names the earlier contact
        await take(ann, follow_up["_id"])
        pop = (await ann.http.get(f"/api/contacts/{follow_up['_id']}")).json()
        assert pop["contact"]["previous_contact_id"] == earlier["_id"]
        history = {h["id"]: h for h in pop["history"]}
        assert earlier["_id"] in history and history[earlier["_id"]]["previous_contact_id"] is None
        timeline = (await ann.http.get(f"/api/customers/{earlier['customer_id']}")).json()["history"]
        linked = {h["id"]: h.get("previous_contact_id") for h in timeline}
        assert linked == {earlier["_id"]: None, follow_up["_id"]: earlier["_id"]}
        thread = (await ann.http.get(f"/api/contacts/{follow_up['_id']}/email")).json()
        previous = thread["previous_contact"]
        assert previous["id"] == earlier["_id"] and previous["subject"] == "Bill too high"
        assert previous["agent_name"] == "Ann" and previous["disposition"] == "resolved"
        assert [m["blocks"][0]["text"] for m in thread["mails"] if m["direction"] == "in"] == [
            "The refund has not arrived.",
            "Still nothing.",
        ]

        # the reply to the follow-up answers the customer's latest mail, in the old thread
        (
            await ann.http.post(
                f"/api/contacts/{follow_up['_id']}/messages", json={"text": "Sent again today."}
            )
        ).raise_for_status()
        replies = await wait_until(lambda: tenant["sink"].to(customer)[1:] or None)
        newest = replies[-1]
        assert str(newest["Subject"]) == "Re: Bill too high"
        references = str(newest["References"])
        assert str(first["Message-ID"]) in references and str(again["Message-ID"]) in references
        latest = await ctx.db.contacts.find_one({"_id": follow_up["_id"]})
        assert str(newest["In-Reply-To"]) == latest["email_last_message_id"]
    finally:
        await ann.close()
