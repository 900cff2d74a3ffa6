"""A day's staffing (reports/workforce.py): required agents per 15 minutes against the agents
logged in, from contacts or contact facts and from agent state spells; and its HTTP API."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.contacts import open_contact
from hub.context import AppContext
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id
from hub.tenancy import create_tenant
from reports.erlang import agents_needed
from reports.workforce import Goal, day_intervals, floor_interval, staffing
from tests.conftest import TenantFactory, context_for
from tests.support import Agent, HubProcess

NY = ZoneInfo("America/New_York")
DAY = date(2026, 3, 2)  # a Monday in EST (UTC-5)


def local(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(DAY.year, DAY.month, DAY.day, hour, minute, second, tzinfo=NY).astimezone(UTC)


async def new_tenant(ctx: AppContext, timezone: str = "America/New_York") -> str:
    tenant = await create_tenant(ctx, f"wf-{new_id()[:10]}", "Workforce")
    await ctx.db.tenants.update_one({"_id": tenant["_id"]}, {"$set": {"timezone": timezone}})
    return str(tenant["_id"])


async def handled_contact(
    ctx: AppContext, tid: str, queued: datetime, wait_s: float, handle_s: float, queue: str = "general"
) -> None:
    """A contact that waited `wait_s` and took an agent `handle_s` (times moved into the past,
    as the router's own tests do)."""
    contact = await open_contact(ctx, tid, "webchat")
    assigned = queued + timedelta(seconds=wait_s)
    await ctx.db.contacts.update_one(
        {"_id": contact["_id"]},
        {
            "$set": {
                "status": "closed",
                "queue_name": queue,
                "queued_at": queued,
                "assigned_at": assigned,
                "agent_id": "someone",
                "closed_at": assigned + timedelta(seconds=handle_s),
                "opened_at": queued,
                "updated_at": datetime.now(UTC),  # a hub's fact updater picks the change up
            }
        },
    )


async def spell(ctx: AppContext, tid: str, agent: str, state: str, start: datetime, end: datetime) -> None:
    await ctx.db.agent_states.insert_one(
        {
            "_id": new_id(),
            "tenant_id": tid,
            "agent_id": agent,
            "state": state,
            "reason": None,
            "start": start,
            "end": end,
        }
    )


def row(report: dict[str, Any], label: str) -> dict[str, Any]:
    return next(r for r in report["intervals"] if r["label"] == label)


async def test_required_against_logged_in_from_contacts_and_spells(ctx: AppContext) -> None:
    tid = await new_tenant(ctx)
    for i in range(10):  # 10 contacts between 09:00 and 09:15, 300 s each
        await handled_contact(ctx, tid, local(9, 1 + i), wait_s=5, handle_s=300)
    await handled_contact(ctx, tid, local(9, 20), wait_s=5, handle_s=120, queue="billing")
    await spell(ctx, tid, "a1", "available", local(8, 50), local(9, 15))
    await spell(ctx, tid, "a2", "not_ready", local(9), local(9, 7, 30))
    await spell(ctx, tid, "a2", "offline", local(9, 7, 30), local(12))
    report = await staffing(ctx, tid, DAY, Goal(sl_target=0.8, sl_seconds=20, shrinkage=0.3))
    assert report["timezone"] == "America/New_York" and len(report["intervals"]) == 96
    assert report["sources"] == {"forecast": "contacts", "actual": "agent_states"}
    nine = row(report, "09:00")
    assert nine["start"] == "2026-03-02T14:00:00+00:00"
    expected = agents_needed(10 * 300 / 900, 300, sl_target=0.8, sl_seconds=20, shrinkage=0.3)
    assert (nine["contacts"], nine["aht_s"], nine["traffic"]) == (10, 300.0, pytest.approx(3.333, abs=1e-3))
    assert (nine["required"], nine["scheduled"]) == (expected.agents, expected.scheduled) == (6, 9)
    # a1 all 15 minutes, a2 half of it not ready: 1.5 logged in, 1 on the phones
    assert (nine["logged_in"], nine["on_phones"]) == (1.5, 1.0)
    assert nine["understaffed"] is True and nine["gap"] == pytest.approx(1.5 - 9)
    quarter = row(report, "09:15")
    assert (quarter["contacts"], quarter["logged_in"], quarter["understaffed"]) == (1, 0.0, True)
    assert quarter["aht_s"] == 120.0
    quiet = row(report, "03:00")
    assert (quiet["required"], quiet["logged_in"], quiet["understaffed"]) == (0, 0.0, False)
    assert report["totals"]["contacts"] == 11 and report["totals"]["peak_required"] == 6
    # one queue: its contacts only, and the agents with its skills
    billing = await staffing(ctx, tid, DAY, Goal(shrinkage=0.0), queue="billing")
    assert billing["totals"]["contacts"] == 1 and row(billing, "09:15")["required"] >= 1
    # next Monday, planned from the weeks before: the same weekday's contacts, averaged
    planned = await staffing(ctx, tid, DAY + timedelta(weeks=1), Goal(shrinkage=0.3), history_weeks=1)
    ahead = row(planned, "09:00")
    assert (ahead["contacts"], ahead["forecast"], ahead["required"], ahead["scheduled"]) == (0, 10.0, 6, 9)
    two = await staffing(ctx, tid, DAY + timedelta(weeks=1), Goal(shrinkage=0.3), history_weeks=2)
    assert row(two, "09:00")["forecast"] == 5.0 and two["totals"]["forecast"] == 5.5
    # a day without anything
    empty = await staffing(ctx, tid, DAY - timedelta(days=3), Goal())
    assert empty["totals"] == {
        "contacts": 0,
        "forecast": 0,
        "peak_required": 0,
        "peak_scheduled": 0,
        "understaffed_intervals": 0,
    }


async def test_contact_facts_are_preferred_and_the_day_follows_the_time_zone(ctx: AppContext) -> None:
    tid = await new_tenant(ctx, "Asia/Kolkata")  # UTC+5:30: local quarters are UTC quarters too
    day = date(2026, 3, 2)
    starts = day_intervals(day, ZoneInfo("Asia/Kolkata"))
    assert starts[0] == datetime(2026, 3, 1, 18, 30, tzinfo=UTC) and len(starts) == 96
    nine = datetime(2026, 3, 2, 3, 30, tzinfo=UTC)  # 09:00 in Kolkata
    facts = [
        {"_id": new_id(), "tenant_id": tid, "interval_start": nine, "queue": "general", "offered": 1,
         "answered": 1, "handle_s": 200.0}
        for _ in range(20)
    ] + [
        {"_id": new_id(), "tenant_id": tid, "interval_start": nine, "queue": "general", "offered": True,
         "answered": False, "handle_s": None},  # flags as booleans count too
        {"_id": new_id(), "tenant_id": tid, "interval_start": nine, "queue": "general", "offered": 0,
         "answered": 0, "handle_s": None},  # never reached a queue: no demand on agents
    ]  # fmt: skip
    await ctx.db.contact_facts.insert_many(facts)
    report = await staffing(ctx, tid, day, Goal(shrinkage=0.0))
    assert report["sources"] == {"forecast": "contact_facts", "actual": "agents"}
    nine_row = row(report, "09:00")
    assert (nine_row["contacts"], nine_row["aht_s"]) == (21, 200.0)
    assert nine_row["required"] == agents_needed(21 * 200 / 900, 200).agents
    assert nine_row["logged_in"] is None  # a past day without spells: nothing to compare with
    dst = day_intervals(date(2026, 3, 8), NY)  # clocks go forward: a 23-hour day
    assert len(dst) == 92


async def test_the_api(hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in: TenantFactory) -> None:
    t = await tenant_in(
        hub_nobot, agents={"sam": ["general"], "ann": ["general"]}, roles={"sam": ["supervisor"]}
    )
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    await sam.login()
    calc = await sam.http.get(
        "/api/reports/erlang",
        params={"contacts": 100, "interval_min": 30, "aht_s": 180, "sl_target": 0.8, "sl_seconds": 20,
                "shrinkage": 0.3, "agents": 13},
    )  # fmt: skip
    assert calc.status_code == 200
    body = calc.json()
    assert body["traffic"] == 10.0
    assert (body["required"]["agents"], body["required"]["scheduled"]) == (14, 20)
    assert body["required"]["service_level"] == pytest.approx(0.88835, abs=1e-5)
    assert body["evaluated"]["agents"] == 13 and body["evaluated"]["service_level"] < 0.8
    assert [r["agents"] for r in body["table"]] == list(range(11, 20))
    assert (await sam.http.get("/api/reports/erlang", params={"contacts": 1, "aht_s": 0})).status_code == 422
    # today's staffing, from the tenant's own contacts only
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        now = datetime.now(UTC)
        await handled_contact(ctx, t["tenant"]["_id"], floor_interval(now), 3, 30)  # this quarter
    finally:
        await ctx.db.close()
    for _ in range(100):  # from contacts at once, or from facts once the hub's updater ran
        today = (await sam.http.get("/api/reports/staffing")).json()
        if today["totals"]["contacts"] == 1:
            break
        await asyncio.sleep(0.2)
    assert today["timezone"] == "UTC" and today["totals"]["contacts"] == 1
    current = next(r for r in today["intervals"] if r["contacts"])
    assert current["required"] >= 1 and current["logged_in"] is not None  # now: from the agents' state
    other = await tenant_in(hub_nobot, agents={"oz": ["general"]}, roles={"oz": ["supervisor"]})
    oz = Agent(hub_nobot.url, other["slug"], "oz@t.test")
    await oz.login()
    theirs = (await oz.http.get("/api/reports/staffing", params={"day": today["day"]})).json()
    assert theirs["totals"]["contacts"] == 0
    ann = Agent(hub_nobot.url, t["slug"], "ann@t.test")
    await ann.login()
    assert (await ann.http.get("/api/reports/staffing")).status_code == 403
    assert (await ann.http.get("/api/reports/erlang", params={"contacts": 1, "aht_s": 60})).status_code == 403
    for client in (sam, oz, ann):
        await client.close()
