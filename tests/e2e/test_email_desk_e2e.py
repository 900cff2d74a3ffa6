"""Email and SMS in the agent desk, in a real browser.

Email: a customer's mail with an attachment and an HTML part reaches a real hub through its
SMTP receiver and is offered to an agent, who sees the subject, the sender, the attachment (and
downloads it), the quoted text collapsed and the HTML part in a sandboxed iframe whose script
does not run; she picks a canned response filled with the customer's name and sends it; the mail
reaches a real local SMTP server (aiosmtpd) with In-Reply-To set to the customer's Message-ID.

SMS: on an SMS contact the reply box counts segments as the agent types (the JS port agrees with
channels/sms/segments.py), and canned responses for SMS are offered.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import expect

from channels.sms.segments import count_segments
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from tests.conftest import context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.email_support import Sink, running_email_hub, running_sink
from tests.support import Agent, HubProcess
from tests.test_email import a_customer, deliver, mail, wait_until
from tests.test_email_desk import DB as DESK_DB
from tests.test_email_desk import desk_tenant
from tests.test_sms import a_number
from tests.twilio_double import TwilioDouble

pytestmark = [pytest.mark.e2e]
DB = DESK_DB + "_e2e"
SCRIPT_MARK = "SCRIPT RAN"


@pytest.fixture(scope="module")
def e2e_sink() -> Iterator[tuple[Controller, Sink]]:
    with running_sink() as started:
        yield started


@pytest.fixture(scope="module")
def mail_hub(tmp_path_factory: pytest.TempPathFactory, mongo: EmbeddedDatabase) -> Iterator[HubProcess]:
    """A hub with its SMTP receiver (hub_nobot has none), on a database of its own."""
    with running_email_hub(tmp_path_factory.mktemp("hub_email_desk_e2e"), mongo.uri, DB) as process:
        yield process


async def test_agent_reads_an_email_with_an_attachment_and_answers_with_a_canned_response(
    mail_hub: HubProcess, mongo: EmbeddedDatabase, e2e_sink: tuple[Controller, Sink], open_page: OpenPage
) -> None:
    hub, sink = mail_hub, e2e_sink[1]
    t = await desk_tenant(mongo.uri, e2e_sink[0].port, db=DB)
    customer = a_customer()
    sue = Agent(hub.url, t["slug"], "sue@t.test")
    await sue.login()
    try:
        for title, body, channels in (
            ("Refund sent", "Hello {{customer.name}}, your refund is on its way. {{agent.name}}", ["email"]),
            ("Text only", "Reply STOP to opt out.", ["sms"]),
        ):
            made = await sue.http.post(
                "/api/canned-responses", json={"title": title, "body": body, "channels": channels}
            )
            made.raise_for_status()
    finally:
        await sue.close()

    ann = await open_page("agent")
    await logs_in(ann, hub, t["slug"], "ann@t.test", "Ann")
    await ann.locator("#presence").select_option("available")
    await expect(ann.locator("#presence")).to_have_attribute("data-status", "available")

    message = mail(
        customer,
        t["address"],
        "Bill too high",
        "My bill doubled this month.\n\nOn Mon, Ann wrote:\n> Your bill is ready.",
    )
    message.add_alternative(
        "<p>My bill <b>doubled</b> this month.</p>"
        f"<script>document.body.insertAdjacentText('beforeend', '{SCRIPT_MARK}')</script>",
        subtype="html",
    )
    message.add_attachment(b"%PDF-1.4 bill", maintype="application", subtype="pdf", filename="bill.pdf")
    await deliver(hub, message, customer, t["address"])

    ctx = context_for(mongo.uri, DB)
    try:
        contact = await wait_until(
            lambda: ctx.db.contacts.find_one({"customer_email": customer, "status": {"$ne": "bot"}})
        )
    finally:
        await ctx.db.close()
    offer = ann.locator(f".offer[data-contact-id='{contact['_id']}']")
    await expect(offer.locator(".offer-channel")).to_have_text("email")
    await offer.locator(".offer-accept").click()

    # the thread view replaces the chat transcript
    thread = ann.locator("#email-thread")
    await expect(thread).to_be_visible()
    await expect(ann.locator("#transcript")).to_be_hidden()
    got = thread.locator("article.mail-in")
    await expect(got.locator(".mail-subject")).to_have_text("Bill too high")
    await expect(got.locator(".mail-from")).to_have_text(f"Carol <{customer}>")
    await expect(got.locator(".mail-to")).to_have_text(t["address"])
    await expect(got.locator(".mail-date")).not_to_be_empty()
    await expect(got.locator(".mail-text")).to_have_text("My bill doubled this month.")
    quoted = got.locator("details.mail-quoted")
    await expect(quoted).not_to_have_attribute("open", "")
    await expect(quoted.locator(".mail-quoted-text")).to_be_hidden()
    await quoted.locator("summary").click()
    await expect(quoted.locator(".mail-quoted-text")).to_contain_text("> Your bill is ready.")

    # the attachment: name, size and a working download
    link = got.locator("a.mail-attachment")
    await expect(link).to_have_text("bill.pdf")
    await expect(got.locator(".mail-attachment-size")).to_have_text("13 B")
    async with ann.expect_download() as download_info:
        await link.click()
    download = await download_info.value
    assert download.suggested_filename == "bill.pdf"
    assert (await download.path()).read_bytes() == b"%PDF-1.4 bill"

    # the HTML part, on demand, in a sandboxed iframe: rendered, its script never runs
    await got.locator(".mail-html-toggle").click()
    frame_node = got.locator("iframe.mail-html-frame")
    await expect(frame_node).to_have_attribute("sandbox", "")
    frame = got.frame_locator("iframe.mail-html-frame")
    await expect(frame.locator("b")).to_have_text("doubled")
    await ann.wait_for_timeout(300)
    assert SCRIPT_MARK not in await frame.locator("body").inner_text()

    # the reply: subject shown, a canned response for email (not the SMS one) filled and sent
    await expect(ann.locator("#reply-subject")).to_have_text("Subject: Re: Bill too high")
    picker = ann.locator("#canned-picker")
    await expect(picker.locator("option", has_text="Refund sent")).to_have_count(1)
    await expect(picker.locator("option", has_text="Text only")).to_have_count(0)
    await expect(ann.locator("#sms-segments")).to_be_hidden()
    await picker.select_option(label="Refund sent")
    expected = "Hello Carol, your refund is on its way. Ann"
    await expect(ann.locator("#reply-input")).to_have_value(expected)
    await ann.locator("#reply-send").click()

    sent = await wait_until(lambda: sink.to(customer))
    assert str(sent[0]["In-Reply-To"]) == str(message["Message-ID"])
    assert str(sent[0]["Subject"]) == "Re: Bill too high"
    assert expected in sent[0].text()
    out = thread.locator("article.mail-out")
    await expect(out.locator(".mail-text")).to_have_text(expected)
    await expect(out.locator(".mail-delivery")).to_have_text("sent", timeout=15_000)
    # Chromium reports the mail's script it refused to run; nothing else may be logged
    errors = console_errors(open_page).get("agent", [])
    assert [e for e in errors if "sandboxed and the 'allow-scripts' permission is not set" not in e] == []
    assert any("Blocked script execution in 'about:srcdoc'" in e for e in errors)


SEGMENT_SAMPLES = [
    "",
    "Hello",
    "x" * 160,
    "x" * 161,
    "price: 5€ [ok]",
    "{" * 80,
    "{" * 81,
    "Grüße aus Köln",
    "您好" * 35,
    "您好" * 36,
    "😀",
    "ok 😀" * 20,
    "line\nbreak\r\n",
]


async def test_sms_reply_counts_segments_and_offers_sms_canned_responses(
    hub_nobot: HubProcess, twilio_double: TwilioDouble, sms_tenant: dict[str, Any], open_page: OpenPage
) -> None:
    ctx, phone = sms_tenant["ctx"], a_number()
    now: datetime = utcnow()
    await ctx.db.canned_responses.insert_one(
        {
            "_id": new_id(),
            "tenant_id": sms_tenant["tenant"]["_id"],
            "title": "Opening hours",
            "body": "Hi {{customer.phone}}, we are open 8-20.",
            "channels": ["sms"],
            "created_by": None,
            "created_at": now,
            "updated_at": now,
        }
    )
    ann = await open_page("agent")
    await logs_in(ann, hub_nobot, sms_tenant["slug"], "ann@t.test", "Ann")

    # the JS port of the segment rule agrees with channels/sms/segments.py
    for sample in SEGMENT_SAMPLES:
        js = await ann.evaluate("(t) => window.HubReplyTools.countSegments(t)", sample)
        python = count_segments(sample)
        assert (js["encoding"], js["units"], js["segments"]) == (
            python.encoding,
            python.units,
            python.segments,
        ), sample

    await ann.locator("#presence").select_option("available")
    await expect(ann.locator("#presence")).to_have_attribute("data-status", "available")
    response = await twilio_double.inbound_sms(
        sms_tenant["url"], phone, sms_tenant["number"], "When are you open?"
    )
    assert response.status_code == 200
    contact = await wait_until(lambda: ctx.db.contacts.find_one({"customer_number": phone}))
    offer = ann.locator(f".offer[data-contact-id='{contact['_id']}']")
    await offer.locator(".offer-accept").click()
    await expect(ann.locator("#transcript .msg-visitor")).to_have_text("When are you open?")
    await expect(ann.locator("#email-thread")).to_be_hidden()
    await expect(ann.locator("#reply-subject")).to_be_hidden()

    counter = ann.locator("#sms-segments")
    await expect(counter).to_have_text("0 segments · 0/160 · GSM-7")
    reply = ann.locator("#reply-input")
    await reply.press_sequentially("Hello")
    await expect(counter).to_have_text("1 segment · 5/160 · GSM-7")
    await reply.fill("x" * 161)
    await expect(counter).to_have_text("2 segments · 161/306 · GSM-7")
    await expect(counter).to_have_class("sms-segments sms-segments-many")
    await reply.fill("")
    await reply.press_sequentially("Grüße 😀")
    await expect(counter).to_have_text("1 segment · 8/70 · UCS-2")

    await reply.fill("")
    await ann.locator("#canned-picker").select_option(label="Opening hours")
    text = f"Hi {phone}, we are open 8-20."
    await expect(reply).to_have_value(text)
    await expect(counter).to_have_text(f"1 segment · {len(text)}/160 · GSM-7")
    await ann.locator("#reply-send").click()
    await twilio_double.wait_for(lambda: [m for m in twilio_double.sent_messages(phone) if m["body"] == text])
    await expect(counter).to_have_text("0 segments · 0/160 · GSM-7")  # the box is empty again
    assert console_errors(open_page) == {}
