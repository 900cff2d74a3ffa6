"""SMS and email campaigns (routing/text_campaigns.py): an email list imported and mailed
through a real local SMTP server with a working unsubscribe link, a questionnaire asked by
SMS through the Twilio double and by an emailed form, and a crash in the middle of a send
that still sends once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from channels.email.campaign import send_campaign_mail
from channels.sms.campaign import send_campaign_text
from hub.ids import new_id, utcnow
from routing.campaigns import Campaign
from routing.dialer import Dialer
from routing.lists import import_targets
from tests.conftest import TenantFactory, context_for
from tests.support import Agent, HubProcess
from tests.test_email import Sink, start_sink
from tests.test_questionnaire import SURVEY
from tests.twilio_double import TwilioDouble

ALL_DAY = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
CALLER_ID = "+14155550123"


async def wait_for(predicate: Any, timeout: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.2)


@pytest.fixture
async def mail_sink() -> AsyncIterator[tuple[Controller, Sink]]:
    controller, sink = start_sink()
    yield controller, sink
    controller.stop()


async def supervisor(
    hub: HubProcess, tenant_in: TenantFactory, **tenant_fields: Any
) -> tuple[dict[str, Any], Agent]:
    t = await tenant_in(hub, agents={"sam": []}, roles={"sam": ["supervisor"]})
    ctx = context_for(hub.env["MONGODB_URI"], hub.env["HUB_DB_NAME"])
    try:
        if tenant_fields:
            await ctx.db.tenants.update_one({"_id": t["tenant"]["_id"]}, {"$set": tenant_fields})
        await ctx.db.caller_ids.insert_one(
            {"_id": new_id(), "tenant_id": t["tenant"]["_id"], "number": CALLER_ID, "status": "approved"}
        )
    finally:
        await ctx.db.close()
    sam = Agent(hub.url, t["slug"], "sam@t.test")
    await sam.login()
    return t, sam


async def import_list(sam: Agent, campaign_id: str, filename: str, data: bytes) -> dict[str, Any]:
    started = await sam.http.post(f"/api/campaigns/{campaign_id}/imports", files={"file": (filename, data)})
    assert started.status_code == 202, started.text

    async def done() -> dict[str, Any] | None:
        job = (
            await sam.http.get(f"/api/campaigns/{campaign_id}/imports/{started.json()['import_id']}")
        ).json()
        return job if job["status"] in ("done", "failed") else None

    job = await wait_for(done)
    assert job["status"] == "done", job
    return dict(job["report"])


async def test_an_email_campaign_mails_its_list_once_and_its_unsubscribe_link_works(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mail_sink: tuple[Controller, Sink]
) -> None:
    controller, sink = mail_sink
    t, sam = await supervisor(hub_nobot, tenant_in)
    ours = f"news@{t['slug']}.test"
    ctx = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    try:
        await ctx.db.tenants.update_one(
            {"_id": t["tenant"]["_id"]},
            {"$set": {"email": {"address": ours, "smtp": {"host": "127.0.0.1", "port": controller.port}}}},
        )
        body = {
            "name": "Renewals by mail",
            "type": "email",
            "email_subject": "Your {plan} plan",
            "email_body": "Hi {name},\n\nyour {plan} plan renews next month.",
            "schedule": {"windows": ALL_DAY},
        }
        created = await sam.http.post("/api/campaigns", json=body)
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        csv = (
            b"Name,E-mail,Plan\n"
            b"Grace,grace@example.test,Fibre\n"
            b"Typo,not-an-address,Fibre\n"
            b"Grace again,GRACE@Example.test,Fibre\n"
            b"Bob,bob@example.test,Copper\n"
            b"Eve,eve@example.test,Fibre\n"
        )
        report = await import_list(sam, cid, "people.csv", csv)
        assert report["kind"] == "email" and report["imported"] == 3
        assert report["invalid_count"] == 1 and report["duplicates"]["in_file"] == 1
        assert report["invalid"][0]["value"] == "not-an-address"
        # Eve is on the black list: never mailed; a second campaign holds Bob as well
        added = await sam.http.post("/api/dnc", json={"number": "Eve@example.test", "list": "black"})
        assert added.status_code == 201, added.text
        other = await sam.http.post("/api/campaigns", json={**body, "name": "Later offer"})
        other_id = other.json()["id"]
        await import_list(sam, other_id, "later.txt", b"bob@example.test\n")

        assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200

        async def completed() -> bool:
            found = (await sam.http.get(f"/api/campaigns/{cid}")).json()
            return bool(found["state"] == "completed")

        await wait_for(completed)
        await wait_for(lambda: asyncio.sleep(0, result=len(sink.to("bob@example.test")) == 1))
        await wait_for(lambda: asyncio.sleep(0, result=len(sink.to("grace@example.test")) == 1))
        await asyncio.sleep(1.5)  # nothing more arrives: once each, none for Eve
        assert len(sink.to("grace@example.test")) == 1 and len(sink.to("bob@example.test")) == 1
        assert not sink.to("eve@example.test")

        mail = sink.to("bob@example.test")[0]
        assert str(mail["Subject"]) == "Your Copper plan" and str(mail["From"]) == ours
        assert "Hi Bob,\n\nyour Copper plan renews next month." in mail.text().replace("\r\n", "\n")
        assert str(mail["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
        link = str(mail["List-Unsubscribe"]).strip("<>")
        assert link in mail.text() and link.startswith(f"{hub_nobot.url}/u/")
        html = mail.get_body(("html",)).get_content()
        assert "Hi Bob," in html and link in html

        # the mail is in Bob's timeline: a closed outbound email contact with the message
        contact = await ctx.db.contacts.find_one({"campaign_id": cid, "customer_email": "bob@example.test"})
        assert contact is not None and contact["status"] == "closed" and contact["direction"] == "outbound"
        customer = await ctx.db.customers.find_one({"_id": contact["customer_id"]})
        assert customer is not None and "bob@example.test" in customer["emails"]
        stored = await ctx.db.messages.find_one({"contact_id": contact["_id"]})
        assert stored is not None and stored["email_message_id"] == str(mail["Message-ID"])

        async with httpx.AsyncClient(timeout=10) as client:
            # a link scanner's GET changes nothing; a forged token is refused
            page = await client.get(link)
            assert page.status_code == 200 and "bob@example.test" in page.text
            assert not await ctx.db.dnc_entries.find_one({"number": "bob@example.test"})
            forged = await client.post(link[:-4] + "AAAA", content=b"List-Unsubscribe=One-Click")
            assert forged.status_code == 404
            # the mail client's one-click POST (RFC 8058) unsubscribes at once
            done = await client.post(
                link,
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert done.status_code == 200 and "no more" in done.text
        entry = await ctx.db.dnc_entries.find_one(
            {"tenant_id": t["tenant"]["_id"], "number": "bob@example.test"}
        )
        assert entry is not None and entry["list"] == "black" and entry["source"] == "email_unsubscribe"
        assert entry["campaign_id"] == cid
        later = await ctx.db.campaign_targets.find_one(
            {"campaign_id": other_id, "number": "bob@example.test"}
        )
        assert later is not None and later["status"] == "skipped" and later["last_outcome"] == "opted_out"
        assert (await ctx.db.customers.find_one({"_id": customer["_id"]}) or {}).get("email_opt_out") is True
    finally:
        await sam.close()
        await ctx.db.close()


async def test_a_questionnaire_runs_by_sms_and_by_an_emailed_form(
    hub_nobot: HubProcess,
    tenant_in: TenantFactory,
    twilio_double: TwilioDouble,
    mail_sink: tuple[Controller, Sink],
) -> None:
    controller, sink = mail_sink
    t, sam = await supervisor(hub_nobot, tenant_in, sms_numbers=[CALLER_ID])
    tenant_id = t["tenant"]["_id"]
    ctx = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    customer = f"+1415555{int(new_id()[-6:], 16) % 10000:04d}"
    try:
        await ctx.db.tenants.update_one(
            {"_id": tenant_id},
            {
                "$set": {
                    "email": {
                        "address": f"ask@{t['slug']}.test",
                        "smtp": {"host": "127.0.0.1", "port": controller.port},
                    }
                }
            },
        )
        made = await sam.http.post("/api/questionnaires", json=SURVEY)
        assert made.status_code == 201, made.text
        qid = made.json()["id"]
        created = await sam.http.post(
            "/api/campaigns",
            json={
                "name": "Survey by SMS",
                "type": "sms",
                "caller_id": CALLER_ID,
                "questionnaire_id": qid,
                "sms_text": "Hi {name}, a word from your provider.",
                "schedule": {"windows": ALL_DAY},
            },
        )
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        report = await import_list(sam, cid, "one.csv", f"name,phone\nGrace,{customer}\n".encode())
        assert report["imported"] == 1
        assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200

        async def texts(count: int) -> list[dict[str, Any]] | None:
            sent = twilio_double.sent_messages(customer)  # in the order sent
            return sent if len(sent) >= count else None

        first = (await wait_for(lambda: texts(1)))[0]
        assert first["from"] == CALLER_ID
        assert first["body"].startswith(
            "Hi Grace, a word from your provider.\n\nWe have three quick questions."
        )
        assert "1) Yes" in first["body"] and "Reply with the number of your answer" in first["body"]
        url = f"{hub_nobot.url}/twilio/sms"

        async def reply(text: str, count: int) -> str:
            response = await twilio_double.inbound_sms(url, customer, CALLER_ID, text)
            assert response.status_code == 200
            return str((await wait_for(lambda: texts(count)))[-1]["body"])

        assert "Which speeds interest you?" in await reply("yes", 2)
        assert "Your monthly budget" in await reply("1 3", 3)
        wrong = await reply("a lot", 4)  # not a number: told why, asked again
        assert "Your monthly budget" in wrong and wrong != "Your monthly budget"
        assert "When could we install?" in await reply("60", 5)
        assert "Anything else?" in await reply("skip", 6)
        assert await reply("Call after six please", 7) == "Thanks, an advisor will call you."
        stored = await ctx.db.questionnaire_answers.find_one(
            {"tenant_id": tenant_id, "questionnaire_id": qid}
        )
        assert stored is not None and stored["channel"] == "sms" and stored["completed"] is True
        assert stored["answers"]["interested"] == "1" and stored["answers"]["budget"] == 60
        assert stored["answers"]["comments"] == "Call after six please"
        target = await ctx.db.campaign_targets.find_one({"campaign_id": cid})
        assert target is not None and target["answers"][qid]["speed"] == ["1", "3"]
        stats = (await sam.http.get(f"/api/questionnaires/{qid}/stats")).json()
        assert stats["completed"] == 1 and stats["questions"][0]["options"][0]["count"] == 1

        # the same questionnaire by email: the mail links the respondent's form
        mailed = await sam.http.post(
            "/api/campaigns",
            json={
                "name": "Survey by mail",
                "type": "email",
                "questionnaire_id": qid,
                "email_subject": "Three questions",
                "email_body": "Hi {name}, three questions for you.",
                "schedule": {"windows": ALL_DAY},
            },
        )
        mid = mailed.json()["id"]
        await import_list(sam, mid, "mail.csv", b"name,email\nAda,ada@example.test\n")
        assert (await sam.http.post(f"/api/campaigns/{mid}/start")).status_code == 200
        await wait_for(lambda: asyncio.sleep(0, result=bool(sink.to("ada@example.test"))))
        text = sink.to("ada@example.test")[0].text()
        form_link = re.search(r"https?://\S+/q/\S+", text)
        assert form_link is not None
        async with httpx.AsyncClient(timeout=10) as client:
            form = await client.get(form_link.group(0))
        assert form.status_code == 200 and "Which speeds interest you?" in form.text
    finally:
        await sam.close()
        await ctx.db.close()


async def test_a_send_interrupted_by_a_crash_is_finished_once(ctx: Any) -> None:
    """A target left `dialing` (the hub died after the outbox row, before the target was
    marked): the next tick after the reclaim delay finishes it with one contact, one
    message and one outbox row."""
    tenant_id = new_id()
    await ctx.db.tenants.insert_one(
        {"_id": tenant_id, "slug": f"t{tenant_id[:6]}", "email": {"address": "news@crash.test"}}
    )
    campaign = Campaign.model_validate(
        {
            "tenant_id": tenant_id,
            "name": "Crash",
            "type": "email",
            "email_subject": "Hello",
            "email_body": "Hi {name}",
            "schedule": {"windows": ALL_DAY},
            "state": "running",
        }
    )
    await ctx.db.campaigns.insert_one(campaign.to_doc())
    target = {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "campaign_id": campaign.id,
        "number": "dora@example.test",
        "name": "Dora",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": None,
        "callback_at": None,
        "line": 1,
    }
    await ctx.db.campaign_targets.insert_one(target)
    dialer = Dialer(
        ctx, place=_no_calls, hang_up=_no_hang_up, send_text=send_campaign_text, send_mail=send_campaign_mail
    )
    now = utcnow()
    assert await dialer.tick(now) == 1
    # as if the hub had died before the last writes: the target back in `dialing`, the contact open
    await ctx.db.campaign_targets.update_one(
        {"_id": target["_id"]}, {"$set": {"status": "dialing", "dialing_since": now}}
    )
    await ctx.db.contacts.update_one({"campaign_id": campaign.id}, {"$set": {"status": "bot"}})
    assert await dialer.tick(now + timedelta(seconds=30)) == 0  # too soon to reclaim
    assert await dialer.tick(now + timedelta(minutes=3)) == 1
    assert await ctx.db.contacts.count_documents({"campaign_id": campaign.id}) == 1
    contact = await ctx.db.contacts.find_one({"campaign_id": campaign.id})
    assert contact is not None and contact["status"] == "closed"
    assert await ctx.db.messages.count_documents({"contact_id": contact["_id"]}) == 1
    assert await ctx.db.outbox.count_documents({"tenant_id": tenant_id}) == 1
    assert await ctx.db.dial_attempts.count_documents({"campaign_id": campaign.id}) == 1
    done = await ctx.db.campaign_targets.find_one({"_id": target["_id"]})
    assert done is not None and done["status"] == "done" and done["attempts"] == 2


async def test_an_email_list_in_each_format(ctx: Any) -> None:
    tenant_id = new_id()
    campaign = Campaign.model_validate(
        {"tenant_id": tenant_id, "name": "Mail", "type": "email", "email_subject": "s", "email_body": "b"}
    )
    await ctx.db.campaigns.insert_one(campaign.to_doc())
    txt = await import_targets(ctx, tenant_id, campaign.id, b"a@x.test\nnope\nA@X.test\n", "l.txt")
    assert (txt["imported"], txt["invalid_count"], txt["duplicates"]["in_file"]) == (1, 1, 1)
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in (["姓名", "邮箱", "电话"], ["王芳", "wang@x.test", "13800138000"], ["李", "a@x.test", ""]):
        sheet.append(row)
    path = __import__("io").BytesIO()
    book.save(path)
    xlsx = await import_targets(ctx, tenant_id, campaign.id, path.getvalue(), "l.xlsx", cap=5)
    assert (
        xlsx["column"] == "邮箱" and xlsx["imported"] == 1 and xlsx["duplicates"]["already_in_campaign"] == 1
    )
    wang = await ctx.db.campaign_targets.find_one({"campaign_id": campaign.id, "number": "wang@x.test"})
    assert wang is not None and wang["name"] == "王芳" and wang["fields"]["电话"] == "13800138000"
    capped = await import_targets(
        ctx, tenant_id, campaign.id, b"email\nb@x.test\nc@x.test\nd@x.test\n", "l.csv", cap=2
    )
    assert capped["imported"] == 2 and capped["dropped_over_cap"] == 1


async def _no_calls(*args: Any, **kwargs: Any) -> str:
    raise AssertionError("an email campaign places no call")


async def _no_hang_up(call_sid: str) -> None:
    raise AssertionError("an email campaign hangs nothing up")
