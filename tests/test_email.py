"""Email: a real hub process with its SMTP receiver, a real local SMTP server (aiosmtpd) that
captures what the hub sends, GridFS attachments, canned responses and the outbox across a kill."""

from __future__ import annotations

import asyncio
import inspect
import signal
import smtplib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from channels.email.attachments import within_limits
from channels.email.parse import Attachment, parse, strip_quoted
from dashboard.canned_api import fill
from hub.embedded_db import EmbeddedDatabase, free_port
from hub.ids import new_id, utcnow
from knowledge.kb import upsert_article
from tests.conftest import context_for
from tests.email_support import Sink, running_email_hub, running_sink, start_sink
from tests.email_support import email_tenant as shared_email_tenant
from tests.support import Agent, HubProcess

DB = "hub_email"


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[Controller, Sink]]:
    with running_sink() as started:
        yield started


@pytest.fixture(scope="module")
def email_hub(tmp_path_factory: pytest.TempPathFactory, mongo: EmbeddedDatabase) -> Iterator[HubProcess]:
    with running_email_hub(tmp_path_factory.mktemp("hub_email"), mongo.uri, DB) as process:
        yield process


async def email_tenant(mongo_uri: str, db: str, smtp_port: int) -> dict[str, Any]:
    return await shared_email_tenant(
        mongo_uri,
        db,
        smtp_port,
        agents={"ann": ["general", "billing"], "sue": ["general"]},
        roles={"sue": ["supervisor"]},
    )


@pytest.fixture
async def tenant(
    email_hub: HubProcess, mongo: EmbeddedDatabase, sink: tuple[Controller, Sink]
) -> AsyncIterator[dict[str, Any]]:
    t = await email_tenant(mongo.uri, DB, sink[0].port)
    t["ctx"] = context_for(mongo.uri, DB)
    t["sink"] = sink[1]
    yield t
    await t["ctx"].db.close()


def a_customer() -> str:
    return f"cust-{new_id()[:8]}@example.test"


def mail(sender: str, to: str, subject: str, text: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = f"Carol <{sender}>", to, subject
    message["Message-ID"] = make_msgid(domain="example.test")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


async def deliver(hub: HubProcess, message: EmailMessage | bytes, sender: str, to: str) -> None:
    port = int(hub.env["HUB_SMTP_RECEIVER_PORT"])

    def send() -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            if isinstance(message, bytes):
                client.sendmail(sender, [to], message)
            else:
                client.send_message(message)

    await asyncio.to_thread(send)


async def wait_until(predicate: Any, timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.1)


# -- pure parts -----------------------------------------------------------------------------------
def test_limits_placeholders_and_quotes() -> None:
    mb = 1024 * 1024
    kept, refused = within_limits(
        [Attachment("a", "x/y", b"0" * 9 * mb), Attachment("big", "x/y", b"0" * 11 * mb)]
        + [Attachment(f"p{i}", "x/y", b"0" * 8 * mb) for i in range(3)]
    )
    assert [a.filename for a in kept] == ["a", "p0", "p1"]
    assert [(r.filename, r.reason) for r in refused] == [
        ("big", "larger than 10 MB"),
        ("p2", "over the 25 MB total per mail"),
    ]
    assert fill(
        "Hi {{customer.name}}, {{ agent.name }} {{secret}}", {"customer.name": "Carol", "agent.name": "Ann"}
    ) == ("Hi Carol, Ann {{secret}}")
    assert strip_quoted("Thanks!\n\nOn Mon, Ann wrote:\n> old") == "Thanks!"
    broken = b"From: a@b.test\r\nContent-Type: multipart/mixed; boundary=zzz\r\n\r\nno boundary here\r\n"
    parsed = parse(broken)
    assert parsed.note and "no boundary here" in parsed.text


# -- against the hub ------------------------------------------------------------------------------
async def test_faq_mail_is_answered_by_the_bot_in_thread(
    email_hub: HubProcess, tenant: dict[str, Any]
) -> None:
    ctx, customer = tenant["ctx"], a_customer()
    await upsert_article(
        ctx,
        tenant["tenant"]["_id"],
        "Reset your password",
        "Open Settings, then Security, then Reset password.",
    )
    question = mail(customer, tenant["address"], "Password", "How do I reset my password?")
    await deliver(email_hub, question, customer, tenant["address"])
    answers = await wait_until(lambda: tenant["sink"].to(customer))
    answer = answers[0]
    assert str(answer["In-Reply-To"]) == str(question["Message-ID"])
    assert str(answer["Subject"]) == "Re: Password"
    assert str(answer["From"]) == tenant["address"]
    text_part, html_part = answer.get_body(("plain",)), answer.get_body(("html",))
    assert text_part is not None and "Security" in text_part.get_content()
    # "Did this answer help?" with two links to the help center's confirmation page
    assert f"/help/{tenant['slug']}/feedback?token=" in text_part.get_content()
    assert html_part is not None and "<p>" in html_part.get_content()
    contact = await ctx.db.contacts.find_one(
        {"tenant_id": tenant["tenant"]["_id"], "customer_email": customer}
    )
    assert contact is not None and contact["channel"] == "email" and contact["status"] == "bot"
    profile = await ctx.db.customers.find_one({"_id": contact["customer_id"]})
    assert profile is not None and customer in profile["emails"] and profile["name"] == "Carol"
    # the same mail delivered again (an SMTP retry) is stored once and answered once
    await deliver(email_hub, question, customer, tenant["address"])
    await asyncio.sleep(1)
    assert await ctx.db.messages.count_documents({"contact_id": contact["_id"], "author": "visitor"}) == 1
    assert len(tenant["sink"].to(customer)) == 1


async def test_unknown_question_goes_to_an_agent_whose_canned_reply_is_threaded(
    email_hub: HubProcess, tenant: dict[str, Any]
) -> None:
    ctx, customer = tenant["ctx"], a_customer()
    first = mail(customer, tenant["address"], "Odd noise", "My router makes a strange humming noise.")
    await deliver(email_hub, first, customer, tenant["address"])
    contact = await wait_until(
        lambda: ctx.db.contacts.find_one({"customer_email": customer, "status": {"$ne": "bot"}})
    )
    sue = Agent(email_hub.url, tenant["slug"], "sue@t.test")
    ann = Agent(email_hub.url, tenant["slug"], "ann@t.test")
    await sue.login()
    await ann.login()
    try:
        created = await sue.http.post(
            "/api/canned-responses",
            json={"title": "Looking into it", "body": "Hello {{customer.name}}, {{agent.name}} here."},
        )
        created.raise_for_status()
        assert (
            await ann.http.post("/api/canned-responses", json={"title": "x", "body": "y"})
        ).status_code == 403
        listed = (await ann.http.get("/api/canned-responses")).json()
        assert [c["title"] for c in listed] == ["Looking into it"]
        await ann.available()
        await ann.wait_offer(contact["_id"])
        (await ann.http.post(f"/api/contacts/{contact['_id']}/accept")).raise_for_status()
        rendered = await ann.http.get(
            f"/api/canned-responses/{created.json()['id']}/render", params={"contact_id": contact["_id"]}
        )
        assert rendered.json()["text"] == "Hello Carol, Ann here."
        reply = await ann.http.post(
            f"/api/contacts/{contact['_id']}/messages",
            json={"text": rendered.json()["text"], "client_id": "r1"},
        )
        reply.raise_for_status()
        await ann.http.post(
            f"/api/contacts/{contact['_id']}/messages",
            json={"text": rendered.json()["text"], "client_id": "r1"},
        )
        sent = await wait_until(lambda: tenant["sink"].to(customer))
        await asyncio.sleep(1)
        assert len(tenant["sink"].to(customer)) == 1  # no "Ann joined" mail, no duplicate
        assert str(sent[0]["In-Reply-To"]) == str(first["Message-ID"])
        assert str(first["Message-ID"]) in str(sent[0]["References"])
        # the customer answers our mail: it threads into the same contact by In-Reply-To
        follow = mail(
            customer,
            tenant["address"],
            "Re: Odd noise",
            "Still humming.",
            In_Reply_To=str(sent[0]["Message-ID"]),
        )
        await deliver(email_hub, follow, customer, tenant["address"])
        texts = await wait_until(lambda: _visitor_texts(ctx, contact["_id"], 2))
        assert texts[-1] == "Still humming."
        assert (await sue.http.delete(f"/api/canned-responses/{created.json()['id']}")).status_code == 200
        assert (await sue.http.delete(f"/api/canned-responses/{created.json()['id']}")).status_code == 404
    finally:
        await sue.close()
        await ann.close()


async def _visitor_texts(ctx: Any, contact_id: str, count: int) -> list[str] | None:
    texts = [
        m["text"]
        async for m in ctx.db.messages.find({"contact_id": contact_id, "author": "visitor"}).sort("seq", 1)
    ]
    return texts if len(texts) >= count else None


async def test_attachments_kept_within_the_tenant_and_huge_ones_bounced(
    email_hub: HubProcess, tenant: dict[str, Any], mongo: EmbeddedDatabase, sink: tuple[Controller, Sink]
) -> None:
    ctx, customer = tenant["ctx"], a_customer()
    message = mail(customer, tenant["address"], "Invoice", "Please see the attached invoice and photo.")
    message.add_attachment(b"%PDF-1.4 invoice", maintype="application", subtype="pdf", filename="invoice.pdf")
    message.add_attachment(b"\0" * (11 * 1024 * 1024), maintype="image", subtype="png", filename="huge.png")
    await deliver(email_hub, message, customer, tenant["address"])
    stored = await wait_until(
        lambda: ctx.db.messages.find_one({"tenant_id": tenant["tenant"]["_id"], "data.subject": "Invoice"})
    )
    assert stored["text"].startswith("Please see the attached")
    files = stored["data"]["attachments"]
    assert [f["filename"] for f in files] == ["invoice.pdf"]
    assert stored["data"]["refused_attachments"][0]["filename"] == "huge.png"
    bounce = await wait_until(
        lambda: [m for m in tenant["sink"].to(customer) if "could not keep" in m.text()]
    )
    body = bounce[0].text()
    assert "huge.png" in body and "10 MB" in body
    assert str(bounce[0]["In-Reply-To"]) == str(message["Message-ID"])

    ann = Agent(email_hub.url, tenant["slug"], "ann@t.test")
    other_tenant = await email_tenant(mongo.uri, DB, sink[0].port)
    stranger = Agent(email_hub.url, other_tenant["slug"], "ann@t.test")
    await ann.login()
    await stranger.login()
    try:
        got = await ann.http.get(f"/api/attachments/{files[0]['id']}")
        assert got.status_code == 200 and got.content == b"%PDF-1.4 invoice"
        assert got.headers["content-type"] == "application/pdf"
        assert (await stranger.http.get(f"/api/attachments/{files[0]['id']}")).status_code == 404
        assert (await ann.http.get("/api/attachments/not-an-id")).status_code == 404
        async with httpx.AsyncClient(base_url=email_hub.url) as anonymous:
            assert (await anonymous.get(f"/api/attachments/{files[0]['id']}")).status_code == 401
    finally:
        await ann.close()
        await stranger.close()


async def test_malformed_mime_is_kept_and_unknown_recipients_refused(
    email_hub: HubProcess, tenant: dict[str, Any]
) -> None:
    ctx, customer = tenant["ctx"], a_customer()
    raw = (
        f"From: {customer}\r\nTo: {tenant['address']}\r\nSubject: broken\r\n"
        f"Message-ID: <{new_id()}@x.test>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="nope"\r\n\r\n'
        "Help, my bill is wrong\r\n"
    ).encode()
    await deliver(email_hub, raw, customer, tenant["address"])
    stored = await wait_until(
        lambda: ctx.db.messages.find_one({"tenant_id": tenant["tenant"]["_id"], "data.subject": "broken"})
    )
    assert "Help, my bill is wrong" in stored["text"] and stored["data"]["note"]
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await deliver(
            email_hub, mail(customer, "nobody@nowhere.test", "x", "y"), customer, "nobody@nowhere.test"
        )


# -- kill the hub while the outbox holds mail ----------------------------------------------------
@pytest.fixture
async def own_db(tmp_path: Path) -> AsyncIterator[EmbeddedDatabase]:
    db = EmbeddedDatabase(tmp_path / "db", free_port())
    await db.start()
    yield db
    await db.stop()


async def test_killed_hub_delivers_each_mail_exactly_once(tmp_path: Path, own_db: EmbeddedDatabase) -> None:
    smtp_port = free_port()  # nothing listens yet: every first send fails and is retried
    hub = HubProcess(
        tmp_path / "hub",
        own_db.uri,
        f"http://127.0.0.1:{free_port()}",
        env={"HUB_OUTBOX_LEASE_S": "2", "HUB_SMTP_RECEIVER_PORT": str(free_port())},
    )
    hub.start()
    ctx = context_for(own_db.uri, "hubtest")
    controller = None
    try:
        t = await email_tenant(own_db.uri, "hubtest", smtp_port)
        tenant_id = t["tenant"]["_id"]
        await upsert_article(ctx, tenant_id, "Opening hours", "We are open from 9 to 5 on weekdays.")
        customers = [a_customer() for _ in range(3)]
        for customer in customers:
            await deliver(
                hub,
                mail(customer, t["address"], "Hours", "What are your opening hours?"),
                customer,
                t["address"],
            )

        async def all_held() -> bool:
            rows = [r async for r in ctx.db.outbox.find({"tenant_id": tenant_id})]
            return len(rows) == 3 and all(r["state"] == "queued" and r["attempts"] >= 1 for r in rows)

        await wait_until(all_held)
        hub.stop(signal.SIGKILL)
        # two rows a killed process left mid-send: one the server had accepted (marked), one not
        expired = utcnow() - timedelta(seconds=5)
        base: dict[str, Any] = {
            "tenant_id": tenant_id,
            "channel": "email",
            "body": "left mid-send",
            "contact_id": None,
            "state": "sending",
            "attempts": 0,
            "next_attempt_at": expired,
            "claim": "dead-process",
            "send_started_at": expired,
            "provider_id": None,
            "provider_status": None,
            "error": None,
            "created_at": expired,
            "updated_at": expired,
            "sent_at": None,
        }
        accepted, unsent = a_customer(), a_customer()
        for to, key in ((accepted, "k1"), (unsent, "k2")):
            meta = {
                "from": t["address"],
                "subject": "x",
                "message_id": f"<{key}@{t['slug']}.test>",
                "references": [],
            }
            row = {**base, "_id": new_id(), "to": to, "idempotency_key": key, "meta": meta}
            if to == accepted:
                row["smtp_accepted"] = meta["message_id"]
            await ctx.db.outbox.insert_one(row)
        controller, sink = start_sink(smtp_port)
        hub.start()

        async def all_sent() -> bool:
            rows = [r async for r in ctx.db.outbox.find({"tenant_id": tenant_id})]
            return len(rows) == 5 and all(r["state"] == "sent" for r in rows)

        await wait_until(all_sent, timeout=60)
        for customer in customers:
            assert len(sink.to(customer)) == 1, customer
            assert "9 to 5" in sink.to(customer)[0].text()
        assert len(sink.to(unsent)) == 1 and sink.to(accepted) == []
        await asyncio.sleep(2.5)  # a lease later, nothing is sent again
        assert len(sink.mails) == 4
    finally:
        if controller is not None:
            controller.stop()
        await ctx.db.close()
        hub.stop()
