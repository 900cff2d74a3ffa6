"""Scheduled reports: when they run (tenant time zone, weeks, months, clock changes), a due
schedule mails its xlsx through the real outbox to a real SMTP server (aiosmtpd) exactly
once and moves on, and the HTTP API keeps each tenant to its own schedules."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from openpyxl import load_workbook

from channels.email.relay import send_report_mail
from channels.email.sender import SmtpEmailSender
from hub import outbox
from hub.context import AppContext
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from hub.tenancy import create_tenant
from reports import schedule
from tests.conftest import TenantFactory, context_for
from tests.support import Agent, HubProcess
from tests.test_email import Sink, start_sink

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def test_periods_and_next_runs() -> None:
    tokyo, ny = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
    # daily at 07:00 Tokyo = 22:00 UTC the day before
    after = datetime(2026, 5, 20, 21, 0, tzinfo=UTC)  # 06:00 on the 21st in Tokyo
    assert schedule.next_run("day", "07:00", tokyo, after) == datetime(2026, 5, 20, 22, 0, tzinfo=UTC)
    assert schedule.next_run("day", "07:00", tokyo, datetime(2026, 5, 20, 22, 0, tzinfo=UTC)) == datetime(
        2026, 5, 21, 22, 0, tzinfo=UTC
    )
    # weekly on Mondays, monthly on the 1st
    assert schedule.next_run("week", "08:30", ZoneInfo("UTC"), datetime(2026, 5, 20, tzinfo=UTC)) == datetime(
        2026, 5, 25, 8, 30, tzinfo=UTC
    )
    assert schedule.next_run(
        "month", "00:05", ZoneInfo("UTC"), datetime(2026, 12, 2, tzinfo=UTC)
    ) == datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    # New York springs forward on 2026-03-08: 07:00 is then 11:00 UTC instead of 12:00
    assert schedule.next_run("day", "07:00", ny, datetime(2026, 3, 7, 13, 0, tzinfo=UTC)) == datetime(
        2026, 3, 8, 11, 0, tzinfo=UTC
    )
    # 02:30 does not exist that day: it runs, an hour later on the wall clock, not never
    skipped = schedule.next_run("day", "02:30", ny, datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    assert skipped.astimezone(ny).date() == date(2026, 3, 8)
    assert schedule.period_for("day", date(2026, 3, 1)) == schedule.Period(
        date(2026, 2, 28), date(2026, 2, 28)
    )
    assert schedule.period_for("week", date(2026, 5, 25)) == schedule.Period(
        date(2026, 5, 18), date(2026, 5, 24)
    )
    assert schedule.period_for("month", date(2026, 3, 1)) == schedule.Period(
        date(2026, 2, 1), date(2026, 2, 28)
    )
    assert schedule.period_for("month", date(2026, 1, 1)) == schedule.Period(
        date(2025, 12, 1), date(2025, 12, 31)
    )


def test_bad_schedules_are_refused() -> None:
    good = {"every": "day", "at": "07:00", "to": ["Boss@Example.test"], "params": {"by": "queue"}}
    assert schedule.clean(good)["to"] == ["boss@example.test"]
    assert schedule.clean({**good, "to": "a@x.test, b@x.test"})["to"] == ["a@x.test", "b@x.test"]
    for bad in (
        {**good, "every": "hour"},
        {**good, "at": "7am"},
        {**good, "at": "24:00"},
        {**good, "to": []},
        {**good, "to": ["not-an-address"]},
        {**good, "format": "pdf"},
        {**good, "params": {"by": "planet"}},
        {**good, "params": {"interval": "fortnight"}},
        {**good, "report": "secret"},
    ):
        with pytest.raises(schedule.ScheduleError):
            schedule.clean(bad)


@pytest.fixture
def sink() -> Iterator[tuple[Controller, Sink]]:
    controller, collected = start_sink()
    yield controller, collected
    controller.stop()


@pytest.fixture
async def mail_ctx(mongo: EmbeddedDatabase) -> AsyncIterator[AppContext]:
    """Its own database, with the real outbox worker and SMTP sender running in-process."""
    context = context_for(mongo.uri, f"hub_sched_{new_id()[:8]}")
    await context.db.ensure_indexes()
    outbox.register(context, "email", SmtpEmailSender())
    worker = asyncio.create_task(outbox.run(context))
    yield context
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
    await context.db.client.drop_database(context.db.db.name)
    await context.db.close()


async def mailed_tenant(ctx: AppContext, smtp_port: int, timezone: str = "UTC") -> dict[str, Any]:
    tenant = await create_tenant(ctx, f"t-{new_id()[:10]}", "Reports Ltd")
    await ctx.db.tenants.update_one(
        {"_id": tenant["_id"]},
        {
            "$set": {
                "timezone": timezone,
                "email": {
                    "address": f"reports@{tenant['slug']}.test",
                    "smtp": {"host": "127.0.0.1", "port": smtp_port},
                },
            }
        },
    )
    return tenant


async def wait_for(predicate: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


def xlsx_of(mail: EmailMessage) -> tuple[str, Any]:
    parts = [p for p in mail.iter_attachments() if p.get_content_type() == XLSX]
    assert len(parts) == 1
    data = parts[0].get_content()
    assert isinstance(data, bytes)
    return str(parts[0].get_filename()), load_workbook(io.BytesIO(data))


async def test_a_due_schedule_mails_its_xlsx_exactly_once(
    mail_ctx: AppContext, sink: tuple[Controller, Sink]
) -> None:
    ctx = mail_ctx
    tenant = await mailed_tenant(ctx, sink[0].port, "Asia/Tokyo")
    made = await schedule.create(
        ctx,
        tenant["_id"],
        "sam",
        {
            "name": "Daily queues",
            "every": "day",
            "at": "07:00",
            "to": ["boss@example.test", "ops@example.test"],
        },
    )
    assert made["next_at"] > utcnow()
    idle = await schedule.create(ctx, tenant["_id"], "sam", {"every": "month", "to": ["x@example.test"]})
    # due: it should have run at 07:00 Tokyo this morning (or yesterday's if that is later)
    due = schedule.next_run("day", "07:00", ZoneInfo("Asia/Tokyo"), utcnow() - timedelta(days=1))
    await ctx.db.report_schedules.update_one({"_id": made["_id"]}, {"$set": {"next_at": due}})

    # two hub processes finding it due at once, then once more: one mail per recipient
    moved = await asyncio.gather(*(schedule.run_due(ctx, send_report_mail) for _ in range(3)))
    assert sum(moved) == 1
    assert await schedule.run_due(ctx, send_report_mail) == 0
    mails = await wait_for(lambda: len(sink[1].mails) >= 2 and sink[1].mails)
    await asyncio.sleep(1.0)  # nothing else trickles in
    assert sorted(str(m["To"]) for m in sink[1].mails) == ["boss@example.test", "ops@example.test"]
    day = (due.astimezone(ZoneInfo("Asia/Tokyo")) - timedelta(days=1)).date().isoformat()
    mail = mails[0]
    assert str(mail["Subject"]) == f"Daily queues: {day}"
    assert str(mail["From"]) == f"reports@{tenant['slug']}.test"
    filename, book = xlsx_of(mail)
    assert filename.endswith(".xlsx") and day in filename
    header = [c.value for c in book["data"][1]]
    assert header[:3] == ["key", "label", "interval_start"] and "offered" in header
    about = {row[0].value: row[1].value for row in book["about"].iter_rows()}
    assert (about["from"], about["to"]) == (day, day)

    stored = await ctx.db.report_schedules.find_one({"_id": made["_id"]})
    assert stored is not None and stored["last_error"] is None and stored["last_sent_at"] is not None
    assert stored["next_at"] > utcnow() and stored["last_period"] == {"from": day, "to": day}
    untouched = await ctx.db.report_schedules.find_one({"_id": idle["_id"]})
    assert untouched is not None and untouched["last_sent_at"] is None
    rows = await ctx.db.outbox.count_documents({"tenant_id": tenant["_id"], "channel": "email"})
    assert rows == 2


async def test_a_tenant_without_mail_gets_the_reason_not_a_loop(mail_ctx: AppContext) -> None:
    ctx = mail_ctx
    tenant = await create_tenant(ctx, f"t-{new_id()[:10]}", "No mail")
    made = await schedule.create(ctx, tenant["_id"], "sam", {"every": "week", "to": ["boss@example.test"]})
    await ctx.db.report_schedules.update_one({"_id": made["_id"]}, {"$set": {"next_at": utcnow()}})
    assert await schedule.run_due(ctx, send_report_mail) == 1
    stored = await ctx.db.report_schedules.find_one({"_id": made["_id"]})
    assert stored is not None and stored["last_error"] == "this tenant has no email address set up"
    assert stored["next_at"] > utcnow() and stored["next_at"].astimezone(UTC).weekday() == 0


async def test_schedules_api_is_per_tenant_and_send_now_mails(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase, sink: tuple[Controller, Sink]
) -> None:
    t = await tenant_in(
        hub_nobot, agents={"sam": ["general"], "ann": ["general"]}, roles={"sam": ["supervisor"]}
    )
    other = await tenant_in(hub_nobot, agents={"eve": ["general"]}, roles={"eve": ["admin"]})
    db = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    await db.db.tenants.update_one(
        {"_id": t["tenant"]["_id"]},
        {
            "$set": {
                "email": {
                    "address": f"hub@{t['slug']}.test",
                    "smtp": {"host": "127.0.0.1", "port": sink[0].port},
                }
            }
        },
    )
    sam, ann, eve = (
        Agent(hub_nobot.url, t["slug"], "sam@t.test"),
        Agent(hub_nobot.url, t["slug"], "ann@t.test"),
        Agent(hub_nobot.url, other["slug"], "eve@t.test"),
    )
    try:
        for person in (sam, ann, eve):
            await person.login()
        body = {
            "name": "Weekly",
            "every": "week",
            "at": "06:00",
            "to": ["boss@example.test"],
            "format": "xlsx",
        }
        assert (await ann.http.post("/api/reports/schedules", json=body)).status_code == 403
        assert (await sam.http.post("/api/reports/schedules", json={**body, "at": "6"})).status_code == 422
        assert (await sam.http.post("/api/reports/schedules", json=[body])).status_code == 422
        created = await sam.http.post("/api/reports/schedules", json={**body, "params": {"by": "agent"}})
        assert created.status_code == 201
        made = created.json()
        assert made["params"] == {"by": "agent", "interval": "day"} and made["next_at"]
        assert datetime.fromisoformat(made["next_at"]).weekday() == 0
        assert [s["id"] for s in (await sam.http.get("/api/reports/schedules")).json()] == [made["id"]]
        assert (await eve.http.get("/api/reports/schedules")).json() == []  # another tenant's: unseen
        assert (await eve.http.post(f"/api/reports/schedules/{made['id']}/send")).status_code == 404
        assert (await eve.http.delete(f"/api/reports/schedules/{made['id']}")).status_code == 404

        # send now: the hub's own loop builds it and the outbox mails it
        assert (await sam.http.post(f"/api/reports/schedules/{made['id']}/send")).status_code == 200
        mails = await wait_for(lambda: sink[1].to("boss@example.test"))
        assert str(mails[0]["Subject"]).startswith("Weekly: ")
        assert xlsx_of(mails[0].message)[0].startswith("report-agent-day-")
        deadline = time.monotonic() + 10
        while True:
            listed = (await sam.http.get("/api/reports/schedules")).json()
            if listed[0]["last_sent_at"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert listed[0]["last_sent_at"] and listed[0]["last_error"] is None
        assert datetime.fromisoformat(listed[0]["next_at"]) > datetime.now(UTC)

        assert (await sam.http.delete(f"/api/reports/schedules/{made['id']}")).status_code == 200
        assert (await sam.http.get("/api/reports/schedules")).json() == []
    finally:
        for person in (sam, ann, eve):
            await person.close()
        await db.db.close()
