"""Inbound email by IMAP against a real dovecot (tests/imap_server.py) and real hub processes.

Two hubs: on `idle_hub` polling and retrying are a minute apart, so mail that arrives within
seconds came through IDLE; `poll_hub` polls every second and retries at once, for the server
without IDLE and for the wrong password.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from hub.embedded_db import EmbeddedDatabase, free_port
from tests.conftest import context_for, make_tenant
from tests.imap_server import Dovecot
from tests.support import Agent, HubProcess
from tests.test_email import Sink, a_customer, mail, start_sink, wait_until

PASSWORD = "imap-secret-1"
HUB_ENV = {
    "IMAP_TEST_PASSWORD": PASSWORD,
    "IMAP_WRONG_PASSWORD": "not-the-password",
    "HUB_IMAP_RELOAD_S": "0.3",
}
TenantMaker = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smtp_sink() -> Iterator[tuple[Controller, Sink]]:
    controller, collected = start_sink()
    yield controller, collected
    controller.stop()


def _hub(root: Path, mongo: EmbeddedDatabase, db: str, **env: str) -> HubProcess:
    return HubProcess(
        root, mongo.uri, f"http://127.0.0.1:{free_port()}", env={"HUB_DB_NAME": db, **HUB_ENV, **env}
    )


@pytest.fixture(scope="module")
def idle_hub(tmp_path_factory: pytest.TempPathFactory, mongo: EmbeddedDatabase) -> Iterator[HubProcess]:
    process = _hub(
        tmp_path_factory.mktemp("hub_imap_idle"),
        mongo,
        "hub_imap_idle",
        HUB_IMAP_POLL_S="60",
        HUB_IMAP_RETRY_S="60",
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def poll_hub(tmp_path_factory: pytest.TempPathFactory, mongo: EmbeddedDatabase) -> Iterator[HubProcess]:
    process = _hub(
        tmp_path_factory.mktemp("hub_imap_poll"),
        mongo,
        "hub_imap_poll",
        HUB_IMAP_POLL_S="1",
        HUB_IMAP_RETRY_S="0.5",
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
async def tenant_for(
    mongo: EmbeddedDatabase, smtp_sink: tuple[Controller, Sink]
) -> AsyncIterator[TenantMaker]:
    """Makes a tenant on a hub whose `email.imap` is its own mailbox on a dovecot."""
    made: list[tuple[Any, str]] = []

    async def make(
        hub: HubProcess, server: Dovecot, password_env: str = "IMAP_TEST_PASSWORD"
    ) -> dict[str, Any]:
        db = hub.env["HUB_DB_NAME"]
        t = await make_tenant(mongo.uri, db, agents={"ann": ["general", "billing"]})
        mailbox, address = t["slug"], f"support@{t['slug']}.test"
        await asyncio.to_thread(server.add_user, mailbox, PASSWORD)
        ctx = context_for(mongo.uri, db)
        made.append((ctx, t["tenant"]["_id"]))
        imap = {"host": server.host, "port": server.port, "user": mailbox, "password_env": password_env}
        smtp = {"host": "127.0.0.1", "port": smtp_sink[0].port}
        await ctx.db.tenants.update_one(
            {"_id": t["tenant"]["_id"]},
            {"$set": {"email": {"address": address, "smtp": smtp, "imap": {**imap, "ssl": False}}}},
        )
        t.update(ctx=ctx, id=t["tenant"]["_id"], address=address, mailbox=mailbox, server=server)
        return t

    yield make
    for ctx, tenant_id in made:  # the hub stops watching the mailbox
        await ctx.db.tenants.update_one({"_id": tenant_id}, {"$unset": {"email.imap": ""}})
        await ctx.db.close()


async def append(t: dict[str, Any], message: EmailMessage) -> None:
    """The customer's mail lands in the tenant's INBOX (IMAP APPEND, as a delivery agent would)."""
    await asyncio.to_thread(t["server"].append, t["mailbox"], PASSWORD, message.as_bytes())


async def stored(t: dict[str, Any], message: EmailMessage, timeout: float = 20) -> dict[str, Any]:
    found: dict[str, Any] = await wait_until(
        lambda: t["ctx"].db.messages.find_one(
            {"tenant_id": t["id"], "data.message_id": str(message["Message-ID"])}
        ),
        timeout,
    )
    return found


async def flags(t: dict[str, Any]) -> list[str]:
    return await asyncio.to_thread(t["server"].flags, t["mailbox"], PASSWORD)


def hub_log(hub: HubProcess) -> str:
    return (hub.var_dir / f"hub-{hub.port}.log").read_text(errors="replace")


async def test_mail_delivered_while_idling_becomes_a_contact_and_is_seen(
    idle_hub: HubProcess, dovecot: Dovecot, tenant_for: TenantMaker
) -> None:
    t = await tenant_for(idle_hub, dovecot)
    carol = a_customer()
    first = mail(carol, t["address"], "My bill", "Why is my bill higher this month?")
    await append(t, first)
    message = await stored(t, first)
    assert message["text"] == "Why is my bill higher this month?" and message["author"] == "visitor"
    contact = await t["ctx"].db.contacts.find_one({"_id": message["contact_id"]})
    assert contact is not None and contact["channel"] == "email" and contact["customer_email"] == carol
    assert contact["tenant_id"] == t["id"]
    profile = await t["ctx"].db.customers.find_one({"_id": contact["customer_id"]})
    assert profile is not None and carol in profile["emails"]
    assert await wait_until(lambda: _all_seen(t, 1), 10)

    await asyncio.sleep(1)  # the watcher is idling now; polls and retries are a minute apart
    dave = a_customer()
    second = mail(dave, t["address"], "Outage", "Is there an outage in my street?")
    started = time.monotonic()
    await append(t, second)
    later = await stored(t, second, timeout=10)
    assert time.monotonic() - started < 5, "not pushed by IDLE"
    assert later["contact_id"] != contact["_id"]
    assert await wait_until(lambda: _all_seen(t, 2), 10)


async def _all_seen(t: dict[str, Any], count: int) -> bool:
    current = await flags(t)
    return len(current) == count and all("\\Seen" in f for f in current)


async def test_a_restarted_watcher_stores_a_refetched_mail_once(
    idle_hub: HubProcess, dovecot: Dovecot, tenant_for: TenantMaker
) -> None:
    t = await tenant_for(idle_hub, dovecot)
    message = mail(a_customer(), t["address"], "Meter", "My meter reading is 4711.")
    await append(t, message)
    first = await stored(t, message)
    assert await wait_until(lambda: _all_seen(t, 1), 10)
    # the hub dies between storing the mail and flagging it: the mail is unseen again
    idle_hub.stop()
    await asyncio.to_thread(dovecot.mark_unseen, t["mailbox"], PASSWORD)
    assert not await _all_seen(t, 1)
    idle_hub.start()
    assert await wait_until(lambda: _all_seen(t, 1), 20)  # fetched again by the new watcher
    await asyncio.sleep(0.5)
    copies = await t["ctx"].db.messages.count_documents(
        {"tenant_id": t["id"], "data.message_id": str(message["Message-ID"])}
    )
    assert copies == 1
    assert await t["ctx"].db.contacts.count_documents({"tenant_id": t["id"]}) == 1
    assert (await t["ctx"].db.messages.find_one({"_id": first["_id"]})) is not None


async def test_the_customers_reply_threads_into_the_same_contact(
    idle_hub: HubProcess,
    dovecot: Dovecot,
    tenant_for: TenantMaker,
    smtp_sink: tuple[Controller, Sink],
) -> None:
    t = await tenant_for(idle_hub, dovecot)
    carol = a_customer()
    question = mail(carol, t["address"], "Strange noise", "My router hums at night.")
    await append(t, question)
    contact_id = (await stored(t, question))["contact_id"]
    ann = Agent(idle_hub.url, t["slug"], "ann@t.test")
    await ann.login()
    try:
        await ann.available()
        await ann.wait_offer(contact_id)
        (await ann.http.post(f"/api/contacts/{contact_id}/accept")).raise_for_status()
        reply = await ann.http.post(
            f"/api/contacts/{contact_id}/messages",
            json={"text": "Please unplug it for a minute.", "client_id": "r1"},
        )
        reply.raise_for_status()
    finally:
        await ann.close()
    sent = (await wait_until(lambda: smtp_sink[1].to(carol)))[0]
    assert str(sent["In-Reply-To"]) == str(question["Message-ID"])
    # she answers from her other address: only the In-Reply-To header can thread it
    answer = mail(
        a_customer(),
        t["address"],
        "Re: Strange noise",
        "Unplugged it, still humming.",
        In_Reply_To=str(sent["Message-ID"]),
        References=f"{question['Message-ID']} {sent['Message-ID']}",
    )
    await append(t, answer)
    threaded = await stored(t, answer)
    assert threaded["contact_id"] == contact_id
    assert await t["ctx"].db.contacts.count_documents({"tenant_id": t["id"]}) == 1


async def test_a_server_without_idle_is_polled(poll_hub: HubProcess, tenant_for: TenantMaker) -> None:
    server = Dovecot(idle=False)
    server.start()
    try:
        t = await tenant_for(poll_hub, server)
        client = await asyncio.to_thread(server.client, t["mailbox"], PASSWORD)
        try:
            capabilities = await asyncio.to_thread(client.capability)
            assert b"IMAP4rev1" in capabilities[1][0] and b"IDLE" not in capabilities[1][0]
        finally:
            await asyncio.to_thread(client.logout)
        for n in range(2):
            message = mail(a_customer(), t["address"], f"Poll {n}", f"Question number {n}.")
            started = time.monotonic()
            await append(t, message)
            found = await stored(t, message, timeout=15)
            assert found["text"] == f"Question number {n}."
            assert time.monotonic() - started < 6  # a 1 s poll interval
        assert await wait_until(lambda: _all_seen(t, 2), 10)
        assert f"tenant {t['id']} (" not in hub_log(poll_hub)  # no errors, no reconnects
    finally:
        server.stop()


async def test_a_wrong_password_is_logged_and_retried_and_the_hub_keeps_running(
    poll_hub: HubProcess, dovecot: Dovecot, tenant_for: TenantMaker
) -> None:
    t = await tenant_for(poll_hub, dovecot, password_env="IMAP_WRONG_PASSWORD")
    message = mail(a_customer(), t["address"], "Waiting", "Are you there?")
    await append(t, message)
    failure = f"IMAP login failed for tenant {t['id']} as {t['mailbox']}@127.0.0.1:{dovecot.port}"
    await wait_until(lambda: hub_log(poll_hub).count(failure) >= 2, 20)  # dovecot delays repeated failures
    line = next(x for x in hub_log(poll_hub).splitlines() if failure in x)
    assert "ERROR" in line and "$IMAP_WRONG_PASSWORD" in line and "AUTHENTICATIONFAILED" in line
    assert PASSWORD not in hub_log(poll_hub) and "not-the-password" not in hub_log(poll_hub)
    assert poll_hub.process is not None and poll_hub.process.poll() is None
    async with httpx.AsyncClient(base_url=poll_hub.url) as http:
        assert (await http.get("/healthz")).status_code in (200, 503)
    assert await t["ctx"].db.messages.count_documents({"tenant_id": t["id"]}) == 0
    # the admin fixes the setting: the watcher restarts and the waiting mail comes in
    await t["ctx"].db.tenants.update_one(
        {"_id": t["id"]}, {"$set": {"email.imap.password_env": "IMAP_TEST_PASSWORD"}}
    )
    assert (await stored(t, message))["text"] == "Are you there?"
