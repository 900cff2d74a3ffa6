"""Historical reports: agent state spells, contact facts, the measures, intervals and time
zones, exports and the API's tenancy and roles.

The measures are checked on a small hand-computed data set (facts made by `fact_of` from
contact documents written out here, spells inserted as the router would write them); the
facts themselves are checked on contacts driven through the real router.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from hub.contacts import get_contact, open_contact, update_contact
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id
from hub.tenancy import create_tenant, create_user
from reports.agent_states import split_time
from reports.export import to_csv, to_xlsx
from reports.facts import FactUpdater, attempt_fact, fact_of, zone
from reports.historical import ReportError, ReportQuery, historical
from reports.rollups import rebuild
from routing.assignment import Router
from routing.presence import ensure_agent, set_state
from tests.support import Agent, HubProcess

DAY = date(2026, 3, 2)  # a Monday


def at(hh: int, mm: int, ss: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC)


async def new_tenant(ctx: AppContext, timezone: str | None = None) -> str:
    tenant = await create_tenant(ctx, f"rep-{new_id()[:10]}", "Reports")
    if timezone:
        await ctx.db.tenants.update_one({"_id": tenant["_id"]}, {"$set": {"timezone": timezone}})
    return str(tenant["_id"])


def contact(tenant_id: str, opened: datetime, **fields: Any) -> Doc:
    return {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "channel": "webchat",
        "status": "closed",
        "opened_at": opened,
        "queued_at": None,
        "agent_id": None,
        **fields,
    }


async def store(ctx: AppContext, facts: list[Doc]) -> None:
    """As the fact updater stores them: the rows, and their sums into the rollups."""
    assert await FactUpdater(ctx).write(facts) == len(facts)


async def spell(
    ctx: AppContext, tenant_id: str, agent_id: str, state: str, start: datetime, end: datetime | None
) -> None:
    await ctx.db.agent_states.insert_one(
        {
            "_id": new_id(),
            "tenant_id": tenant_id,
            "agent_id": agent_id,
            "state": state,
            "reason": "break" if state == "not_ready" else None,
            "start": start,
            "end": end,
        }
    )


@pytest.fixture
async def floor(ctx: AppContext) -> dict[str, Any]:
    """The hand-computed data set (see the expected figures in the tests)."""
    tid = await new_tenant(ctx)
    tenant = {"timezone": "UTC"}
    a, b = f"a-{new_id()[:6]}", f"b-{new_id()[:6]}"
    billing = {"queue_name": "billing", "queue_id": "q-billing"}
    c1 = contact(
        tid, at(9, 0), **billing, queued_at=at(9, 0, 10), assigned_at=at(9, 0, 20), closed_at=at(9, 5, 20),
        agent_id=a, agent_name="Ann", survey_score=5,
    )  # fmt: skip
    c2 = contact(
        tid, at(9, 10), **billing, channel="voice", to_number="+15550001", queued_at=at(9, 10),
        assigned_at=at(9, 10, 40), agent_hung_up_at=at(9, 12, 40), closed_at=at(9, 13), agent_id=a,
        agent_name="Ann", transfers=[{"from": b, "reason": "blind"}], hold_s=30,
    )  # fmt: skip
    c3 = contact(
        tid, at(9, 20), **billing, channel="voice", to_number="+15550001", queued_at=at(9, 20),
        closed_at=at(9, 20, 30), disposition="abandoned",
    )  # fmt: skip
    c4 = contact(
        tid, at(10, 5), queue_name="support", queue_id="q-support", queued_at=at(10, 5),
        assigned_at=at(10, 5, 5), closed_at=at(10, 10, 5), agent_id=b, agent_name="Ben",
        disposition="complaint", answers={"qn1": {"likes": "yes", "colors": ["red", "blue"]}},
    )  # fmt: skip
    c5 = contact(tid, at(10, 30), closed_at=at(10, 31))  # the bot alone
    none: Doc = {}
    await store(
        ctx,
        [
            fact_of(c1, none, tenant, wrapup_spell_s=30),
            fact_of(c2, none, tenant),
            fact_of(c3, none, tenant),
            fact_of(c4, none, tenant),
            fact_of(c5, {"bot_turns": 3, "fallback_count": 1}, tenant),
        ],
    )
    for state, start, end in (
        ("available", at(8, 55), at(9, 0, 20)),
        ("busy", at(9, 0, 20), at(9, 5, 20)),
        ("wrapup", at(9, 5, 20), at(9, 5, 50)),
        ("available", at(9, 5, 50), at(9, 10, 40)),
        ("busy", at(9, 10, 40), at(9, 13)),
        ("not_ready", at(9, 13), at(9, 30)),
        ("offline", at(9, 30), None),
    ):
        await spell(ctx, tid, a, state, start, end)
    assert await FactUpdater(ctx).roll_spells(tenant_id=tid) == 6  # the closed ones (offline: no time)
    assert await FactUpdater(ctx).roll_spells(tenant_id=tid) == 0  # each once
    return {"tenant_id": tid, "a": a, "b": b}


def rows_by(report: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {
        row["key"] if not isinstance(row["key"], list) else tuple(row["key"]): row for row in report["rows"]
    }


# --------------------------------------------------------------------------- the measures


async def test_measures_by_queue(ctx: AppContext, floor: dict[str, Any]) -> None:
    report = await historical(
        ctx, floor["tenant_id"], ReportQuery(by="queue", interval="total", start=DAY, end=DAY)
    )
    rows = rows_by(report)
    billing, support, bot = rows["billing"], rows["support"], rows[None]
    assert (billing["offered"], billing["answered"], billing["abandoned"]) == (3, 2, 1)
    assert billing["abandon_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert billing["service_level"] == pytest.approx(1 / 3, abs=1e-4)  # c1 in 10 s; c2 40 s; c3 abandoned
    # c2's 120 s on the phone held the caller 30 s: talk 90, hold 30, handle unchanged
    assert (billing["asa_s"], billing["aht_s"], billing["avg_talk_s"], billing["avg_wrapup_s"]) == (
        25,
        235,
        195,
        25,
    )
    assert (billing["transfers"], billing["csat"], billing["avg_hold_s"]) == (1, 5.0, 30)
    assert (support["offered"], support["answered"], support["service_level"], support["asa_s"]) == (
        1,
        1,
        1.0,
        5,
    )
    assert (support["aht_s"], support["complaints"]) == (300, 1)
    assert (bot["contacts"], bot["bot_contained"], bot["offered"]) == (1, 1, 0)
    totals = report["totals"]
    assert (totals["contacts"], totals["offered"], totals["answered"], totals["abandoned"]) == (5, 4, 3, 1)
    assert totals["service_level"] == 0.5
    assert totals["asa_s"] == pytest.approx(55 / 3, abs=0.05)
    assert totals["aht_s"] == pytest.approx(770 / 3, abs=0.05)
    assert totals["contact_rate"] == 0.6  # 3 of 5 contacts reached a person
    assert report["columns"][0] == "contacts" and "occupancy" in report["columns"]


async def test_agent_time_and_occupancy(ctx: AppContext, floor: dict[str, Any]) -> None:
    report = await historical(
        ctx, floor["tenant_id"], ReportQuery(by="agent", interval="total", start=DAY, end=DAY)
    )
    rows = rows_by(report)
    ann = rows[floor["a"]]
    assert ann["label"] == "Ann" and ann["answered"] == 2
    assert ann["logged_in_s"] == 2100  # offline is not logged in
    assert ann["occupancy"] == pytest.approx(440 / 2100, abs=1e-4)
    assert ann["busy_rate"] == pytest.approx(470 / 2100, abs=1e-4)
    assert ann["idle_rate"] == pytest.approx(610 / 2100, abs=1e-4)
    assert ann["contacts_per_hour"] == pytest.approx(2 / (2100 / 3600), abs=0.01)
    assert rows[floor["b"]]["label"] == "Ben" and rows[floor["b"]]["occupancy"] is None  # no spells
    # per hour: 08:55-09:00 idle, the rest in the 09 hour
    hourly = await historical(
        ctx,
        floor["tenant_id"],
        ReportQuery(by="agent", interval="hour", start=DAY, end=DAY, agent=floor["a"]),
    )
    hours = {row["interval_start"]: row for row in hourly["rows"]}
    assert hours["2026-03-02T08:00"]["logged_in_s"] == 300 and hours["2026-03-02T08:00"]["idle_rate"] == 1.0
    assert hours["2026-03-02T09:00"]["logged_in_s"] == 1800 and hours["2026-03-02T09:00"]["answered"] == 2
    assert hourly["totals"]["logged_in_s"] == 2100


async def test_intervals_and_other_dimensions(ctx: AppContext, floor: dict[str, Any]) -> None:
    tid = floor["tenant_id"]
    quarter = await historical(ctx, tid, ReportQuery(by="none", interval="15m", start=DAY, end=DAY))
    starts = [(r["interval_start"], r["contacts"]) for r in quarter["rows"] if r["contacts"]]
    assert starts == [
        ("2026-03-02T09:00:00+00:00", 2),
        ("2026-03-02T09:15:00+00:00", 1),
        ("2026-03-02T10:00:00+00:00", 1),
        ("2026-03-02T10:30:00+00:00", 1),
    ]
    for interval, label in (("day", "2026-03-02"), ("week", "2026-03-02"), ("month", "2026-03")):
        report = await historical(ctx, tid, ReportQuery(by="none", interval=interval, start=DAY, end=DAY))
        assert [(r["interval_start"], r["contacts"]) for r in report["rows"]] == [(label, 5)]
    channels = rows_by(
        await historical(ctx, tid, ReportQuery(by="channel", interval="total", start=DAY, end=DAY))
    )
    assert (channels["voice"]["offered"], channels["webchat"]["contacts"]) == (2, 3)
    numbers = rows_by(
        await historical(ctx, tid, ReportQuery(by="number", interval="total", start=DAY, end=DAY))
    )
    assert (numbers["+15550001"]["answered"], numbers["+15550001"]["abandoned"]) == (1, 1)
    questions = rows_by(
        await historical(
            ctx, tid, ReportQuery(by="question", interval="total", start=DAY, end=DAY, questionnaire="qn1")
        )
    )
    assert set(questions) == {("qn1", "likes", "yes"), ("qn1", "colors", "red"), ("qn1", "colors", "blue")}
    assert questions[("qn1", "likes", "yes")]["label"] == "likes = yes"
    assert questions[("qn1", "colors", "red")]["complaints"] == 1
    filtered = await historical(
        ctx, tid, ReportQuery(by="none", interval="total", start=DAY, end=DAY, queue="billing")
    )
    assert filtered["totals"]["offered"] == 3 and filtered["totals"]["occupancy"] is None
    other_day = await historical(
        ctx, tid, ReportQuery(by="none", start=DAY + timedelta(days=1), end=DAY + timedelta(days=1))
    )
    assert other_day["totals"]["contacts"] == 0
    with pytest.raises(ReportError):
        await historical(ctx, tid, ReportQuery(by="colour", start=DAY, end=DAY))
    with pytest.raises(ReportError):
        await historical(ctx, tid, ReportQuery(interval="15m", start=DAY, end=DAY + timedelta(days=40)))


async def test_rollups_give_the_same_figures_as_the_facts(ctx: AppContext, floor: dict[str, Any]) -> None:
    tid = floor["tenant_id"]
    queries = [
        ReportQuery(by=by, interval=interval, start=DAY, end=DAY)
        for by in ("queue", "agent", "channel", "number", "campaign", "none")
        for interval in ("15m", "hour", "day", "week", "month", "total")
    ]
    queries += [
        ReportQuery(by="none", interval="hour", start=DAY, end=DAY, queue="billing"),
        ReportQuery(by="agent", interval="day", start=DAY, end=DAY, agent=floor["a"]),
    ]
    for query in queries:
        fast = await historical(ctx, tid, query)
        slow = await historical(ctx, tid, replace(query, source="facts"))
        assert (fast["source"], slow["source"]) == ("rollups", "facts")
        assert fast["rows"] == slow["rows"] and fast["totals"] == slow["totals"], query
    # a changed fact moves its sums from one rollup row to another (here: another queue)
    moved = await ctx.db.contact_facts.find_one({"tenant_id": tid, "queue": "support"})
    assert moved is not None
    before = {k: v for k, v in moved.items() if k != "rev"}
    assert await FactUpdater(ctx).write([{**before, "queue": "billing"}]) == 1
    assert await FactUpdater(ctx).write([{**before, "queue": "billing"}]) == 0  # unchanged: nothing
    query = ReportQuery(by="queue", interval="total", start=DAY, end=DAY)
    rows = rows_by(await historical(ctx, tid, query))
    assert rows["billing"]["offered"] == 4 and rows["support"]["offered"] == 0
    assert (await historical(ctx, tid, replace(query, source="facts")))["rows"] != []
    # rebuilt from the facts, the rollups are the same
    assert await rebuild(ctx, tid, zone("UTC")) > 0
    assert rows_by(await historical(ctx, tid, query))["billing"]["offered"] == 4


async def test_outbound_measures(ctx: AppContext) -> None:
    tid = await new_tenant(ctx)
    tenant = {"timezone": "UTC"}
    campaign = new_id()
    await ctx.db.campaigns.insert_one({"_id": campaign, "tenant_id": tid, "name": "Spring offer"})
    talked = contact(
        tid, at(11, 0), channel="voice", direction="outbound", campaign_id=campaign, from_number="+15550009",
        assigned_at=at(11, 0, 2), agent_id="x", closed_at=at(11, 3),
    )  # fmt: skip
    facts = [fact_of(talked, {}, tenant, outcome_class="success", attempt={"outcome": "answered"})]
    for outcome in ("no_answer", "failed", "machine"):
        attempt = {
            "_id": new_id(),
            "tenant_id": tid,
            "campaign_id": campaign,
            "placed_at": at(11, 5),
            "outcome": outcome,
        }
        facts.append(attempt_fact(attempt, tenant))
    await store(ctx, facts)
    rows = rows_by(
        await historical(ctx, tid, ReportQuery(by="campaign", interval="total", start=DAY, end=DAY))
    )
    row = rows[campaign]
    assert row["label"] == "Spring offer"
    assert (row["attempts"], row["valid_number_rate"], row["connect_rate"]) == (4, 0.75, 0.25)
    assert (row["success"], row["success_rate"], row["online_success_value"]) == (1, 1.0, 1.0)
    assert row["offered"] == 0  # outbound calls were never queued


async def test_updater_makes_outbound_facts_from_attempts_and_targets(ctx: AppContext) -> None:
    tid = await new_tenant(ctx)
    campaign, target, answered, missed = new_id(), new_id(), new_id(), new_id()
    now = datetime.now(UTC)
    await ctx.db.campaign_targets.insert_one(
        {"_id": target, "tenant_id": tid, "campaign_id": campaign, "disposition_class": "success"}
    )
    base = {"tenant_id": tid, "campaign_id": campaign, "placed_at": now, "ended_at": now}
    await ctx.db.dial_attempts.insert_many(
        [
            {"_id": answered, **base, "outcome": "answered", "contact_id": "set below"},
            {"_id": missed, **base, "outcome": "busy", "contact_id": None},
        ]
    )
    call = await open_contact(
        ctx,
        tid,
        "voice",
        extra={"direction": "outbound", "campaign_id": campaign, "target_id": target, "attempt_id": answered},
    )
    await ctx.db.dial_attempts.update_one({"_id": answered}, {"$set": {"contact_id": call["_id"]}})
    await update_contact(ctx, call["_id"], {"status": "closed", "closed_at": now})
    await FactUpdater(ctx).backfill(tid)
    facts = {f["_id"]: f async for f in ctx.db.contact_facts.find({"tenant_id": tid})}
    assert set(facts) == {call["_id"], f"attempt:{missed}"}
    assert (facts[call["_id"]]["outcome_class"], facts[call["_id"]]["connected"]) == ("success", 1)
    assert (facts[f"attempt:{missed}"]["connected"], facts[f"attempt:{missed}"]["valid_number"]) == (0, 1)
    today = now.date()
    row = (await historical(ctx, tid, ReportQuery(by="campaign", interval="total", start=today, end=today)))[
        "rows"
    ][0]
    assert (row["attempts"], row["connect_rate"], row["success_rate"], row["bot_contained"]) == (
        2,
        0.5,
        1.0,
        0,
    )


async def test_time_zone_days_and_spells_split_at_local_midnight(ctx: AppContext) -> None:
    tid = await new_tenant(ctx, "Asia/Shanghai")
    tenant = {"timezone": "Asia/Shanghai"}
    early = contact(tid, at(17, 30, day=date(2026, 3, 1)))  # 01:30 on 2 March in Shanghai
    late = contact(tid, at(17, 30))  # 01:30 on 3 March
    await store(ctx, [fact_of(early, {}, tenant), fact_of(late, {}, tenant)])
    report = await historical(ctx, tid, ReportQuery(by="none", interval="hour", start=DAY, end=DAY))
    assert [(r["interval_start"], r["contacts"]) for r in report["rows"]] == [("2026-03-02T01:00", 1)]
    assert report["timezone"] == "Asia/Shanghai"
    quarter = await historical(ctx, tid, ReportQuery(by="none", interval="15m", start=DAY, end=DAY))
    assert quarter["rows"][0]["interval_start"] == "2026-03-02T01:30:00+08:00"
    # a spell from 23:30 to 00:30 local time counts half on each day
    rows = [{"agent_id": "a", "state": "available", "start": at(15, 30), "end": at(16, 30)}]
    tz = zone("Asia/Shanghai")
    split = split_time(
        rows, at(0, 0, day=date(2026, 2, 1)), at(0, 0, day=date(2026, 4, 1)), "day", tz, at(23, 0)
    )
    assert split == {("a", "2026-03-02"): {"available": 1800.0}, ("a", "2026-03-03"): {"available": 1800.0}}
    assert set(split_time(rows, at(0, 0), at(23, 0), "month", tz, at(23, 0))) == {("a", "2026-03")}


# --------------------------------------------------------------------------- real contacts


async def test_spells_and_facts_from_the_router(ctx: AppContext) -> None:
    tid = await new_tenant(ctx)
    await ctx.db.tenants.update_one({"_id": tid}, {"$set": {"routing": {"wrapup_s": {"chat": 0.3}}}})
    router = Router(ctx)
    user = await create_user(ctx, tid, f"ann@{tid[:6]}.test", "Ann", "pw-123456", ["agent"], ["general"])
    await ensure_agent(ctx, user)
    aid = user["_id"]
    await set_state(ctx, aid, "available")
    # served: queued, offered, accepted, wrapped up, wrap-up time over
    served = await open_contact(ctx, tid, "webchat")
    await router.enqueue(served["_id"], "general", "asked for a person")
    assert (await get_contact(ctx, served["_id"]) or {})["status"] == "offered"
    await router.accept(served["_id"], aid, "Ann", tid)
    await asyncio.sleep(0.2)
    await router.wrap_up(served["_id"], aid, tid, "resolved", "done")
    await asyncio.sleep(0.4)
    await router.sweep()  # ends the wrap-up
    # abandoned: nobody free (ann is not ready), the customer leaves
    await set_state(ctx, aid, "not_ready", reason="break")
    left = await open_contact(ctx, tid, "webchat")
    await router.enqueue(left["_id"], "general", "asked for a person")
    await router.abandon(left["_id"], "visitor_left")
    # contained: the bot closes it
    bot_only = await open_contact(ctx, tid, "webchat")
    await update_contact(ctx, bot_only["_id"], {"status": "closed", "closed_at": datetime.now(UTC)})

    states = [s["state"] async for s in ctx.db.agent_states.find({"agent_id": aid}).sort("start", 1)]
    # the release comes a moment before the wrap-up starts: a spell of a few milliseconds
    assert states == ["not_ready", "available", "busy", "available", "wrapup", "available", "not_ready"]
    open_spells = await ctx.db.agent_states.count_documents({"agent_id": aid, "end": None})
    assert open_spells == 1
    agent_doc = await ctx.db.agents.find_one({"_id": aid})
    assert agent_doc is not None and agent_doc["spell"]["state"] == "not_ready"

    updater = FactUpdater(ctx)
    assert await updater.backfill(tid) == 3
    assert await updater.backfill(tid) == 0  # idempotent: the same rows, nothing rewritten
    facts = {f["_id"]: f async for f in ctx.db.contact_facts.find({"tenant_id": tid})}
    assert len(facts) == 3
    s = facts[served["_id"]]
    assert (s["offered"], s["answered"], s["abandoned"], s["answered_in_sl"]) == (1, 1, 0, 1)
    assert s["queue"] == "general" and s["agent_id"] == aid and s["handoff_reason"] == "asked for a person"
    assert 0.15 < s["talk_s"] < 2 and 0.25 < s["wrapup_s"] < 2
    assert s["handle_s"] == pytest.approx(s["talk_s"] + s["wrapup_s"], abs=0.01)
    assert s["hold_s"] is None and s["day"] == datetime.now(UTC).strftime("%Y-%m-%d")
    a = facts[left["_id"]]
    assert (a["offered"], a["answered"], a["abandoned"], a["bot_contained"]) == (1, 0, 1, 0)
    assert a["wait_s"] is not None and a["answer_wait_s"] is None
    assert facts[bot_only["_id"]]["bot_contained"] == 1
    # the incremental pass picks up a later change (from a watermark set now: the session's
    # database holds other tests' contacts too)
    await ctx.db.report_state.update_one(
        {"_id": "contact_facts"}, {"$set": {"at": datetime.now(UTC)}}, upsert=True
    )
    await update_contact(ctx, bot_only["_id"], {"survey_score": 4})
    await updater.run_once()
    refreshed = await ctx.db.contact_facts.find_one({"_id": bot_only["_id"]})
    assert refreshed is not None and refreshed["csat"] == 4.0
    today = datetime.now(UTC).date()
    report = await historical(ctx, tid, ReportQuery(by="agent", interval="total", start=today, end=today))
    ann = rows_by(report)[aid]
    assert ann["answered"] == 1 and ann["logged_in_s"] > 0 and ann["occupancy"] is not None
    by_queue = ReportQuery(by="queue", interval="total", start=today, end=today)
    fast, slow = (
        await historical(ctx, tid, by_queue),
        await historical(ctx, tid, replace(by_queue, source="facts")),
    )
    assert fast["source"] == "rollups" and fast["totals"] == slow["totals"] and fast["totals"]["csat"] == 4.0


# --------------------------------------------------------------------------- exports


def sample_report() -> dict[str, Any]:
    def row(key: str, offered: int, answered: int, sl: float | None) -> dict[str, Any]:
        day = "2026-03-02"
        return {
            "key": key,
            "label": key,
            "interval_start": day,
            "offered": offered,
            "answered": answered,
            "service_level": sl,
        }

    return {
        "by": "queue",
        "interval": "day",
        "from": "2026-03-02",
        "to": "2026-03-02",
        "timezone": "UTC",
        "columns": ["offered", "answered", "service_level"],
        "rows": [row("billing", 3, 2, 0.3333), row("客服", 1, 1, None)],
        "totals": {"offered": 4, "answered": 3, "service_level": 0.5},
    }


def test_csv_export() -> None:
    text = to_csv(sample_report()).decode("utf-8-sig")
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["key", "label", "interval_start", "offered", "answered", "service_level"]
    assert lines[1] == ["billing", "billing", "2026-03-02", "3", "2", "0.3333"]
    assert lines[2][0] == "客服" and lines[2][5] == ""
    assert lines[3][:4] == ["total", "Total", "", "4"]


def test_xlsx_export_and_custom_template() -> None:
    book = load_workbook(io.BytesIO(to_xlsx(sample_report())))
    assert book.sheetnames == ["data", "about"]
    data = book["data"]
    assert [c.value for c in data[1]][:4] == ["key", "label", "interval_start", "offered"]
    assert [c.value for c in data[2]][3:6] == [3, 2, 0.3333]
    assert data.cell(row=4, column=1).value == "total"
    # a tenant template: its cover sheet and formulas stay, "data" is refilled from A1
    template = Workbook()
    cover = template.active
    assert cover is not None
    cover.title = "Cover"
    cover["A1"] = "ACME monthly figures"
    cover["B2"] = "=SUM(data!D2:D3)"
    old = template.create_sheet("data")
    for _ in range(1, 20):
        old.append(["stale"] * 8)
    buffer = io.BytesIO()
    template.save(buffer)
    filled = load_workbook(io.BytesIO(to_xlsx(sample_report(), buffer.getvalue())))
    assert filled.sheetnames == ["Cover", "data"]
    assert (
        filled["Cover"]["A1"].value == "ACME monthly figures"
        and filled["Cover"]["B2"].value == "=SUM(data!D2:D3)"
    )
    assert filled["data"]["A1"].value == "key" and filled["data"].max_row == 4
    assert filled["data"]["A5"].value is None


# --------------------------------------------------------------------------- the API


async def test_api_roles_tenancy_and_files(hub_nobot: HubProcess, tenant_in: Any) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]}
    )
    other = await tenant_in(hub_nobot, agents={"olga": ["general"]}, roles={"olga": ["admin"]})
    ann, sam, olga = (
        Agent(hub_nobot.url, x["slug"], f"{n}@t.test") for x, n in ((t, "ann"), (t, "sam"), (other, "olga"))
    )
    for client in (ann, sam, olga):
        await client.login()
    try:
        ann_id = t["users"]["ann"]["_id"]
        await ann.available()  # a spell for ann, written by the hub's presence code
        params = {"by": "agent", "interval": "total"}
        assert (await ann.http.get("/api/reports/historical", params=params)).status_code == 403
        ok = await sam.http.get("/api/reports/historical", params=params)
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert ann_id in {row["key"] for row in body["rows"]} and body["by"] == "agent"
        # another tenant's admin sees nothing of this tenant, even when naming its agent
        theirs = (await olga.http.get("/api/reports/historical", params={**params, "agent": ann_id})).json()
        assert theirs["rows"] == [] and theirs["totals"]["contacts"] == 0
        bad = await sam.http.get("/api/reports/historical", params={"by": "shoe"})
        assert bad.status_code == 422
        assert (
            await sam.http.get("/api/reports/historical", params={"from": "2026-13-01"})
        ).status_code == 422
        as_csv = await sam.http.get("/api/reports/historical", params={**params, "format": "csv"})
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert next(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))[:2] == ["key", "label"]
        as_xlsx = await sam.http.get("/api/reports/historical", params={**params, "format": "xlsx"})
        assert load_workbook(io.BytesIO(as_xlsx.content)).sheetnames == ["data", "about"]
        # the tenant's own template
        template = Workbook()
        sheet = template.active
        assert sheet is not None
        sheet.title = "Brand"
        template.create_sheet("data")
        buffer = io.BytesIO()
        template.save(buffer)
        assert (
            await ann.http.put("/api/reports/templates/historical", content=buffer.getvalue())
        ).status_code == 403
        put = await sam.http.put("/api/reports/templates/historical", content=buffer.getvalue())
        assert put.status_code == 200 and put.json()["has_data_sheet"] is True
        assert (
            await sam.http.put("/api/reports/templates/historical", content=b"not a workbook")
        ).status_code == 422
        branded = await sam.http.get("/api/reports/historical", params={**params, "format": "xlsx"})
        assert load_workbook(io.BytesIO(branded.content)).sheetnames == ["Brand", "data"]
        plain = await olga.http.get("/api/reports/historical", params={**params, "format": "xlsx"})
        assert load_workbook(io.BytesIO(plain.content)).sheetnames == ["data", "about"]  # not theirs
        assert (await olga.http.delete("/api/reports/templates/historical")).status_code == 404
        assert (await sam.http.delete("/api/reports/templates/historical")).status_code == 200
    finally:
        for client in (ann, sam, olga):
            await client.close()
