"""The live wallboard's today figures: per queue answered / abandoned / service level of the
tenant's own day (its time zone), per agent state, time in it, contacts handled and
occupancy from the state spells; kept incrementally, and pushed within a second of a change."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import websockets

from dashboard.wallboard import snapshot
from dashboard.wallboard_today import day_start, zone_of
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow
from hub.tenancy import create_tenant
from tests.conftest import TenantFactory, context_for
from tests.support import Agent, HubProcess, Widget
from tests.test_wallboard import next_board

ZONES = ("Pacific/Kiritimati", "Asia/Tokyo", "Asia/Kolkata", "America/New_York", "Pacific/Pago_Pago")


def a_zone_well_inside_its_day(now: datetime) -> ZoneInfo:
    """A zone (not UTC) whose local time is 03:00-21:00, so "2 hours after local midnight"
    and "30 minutes before it" are both in the past and on different local days."""
    for name in ZONES:
        zone = ZoneInfo(name)
        if 3 <= now.astimezone(zone).hour < 21:
            return zone
    raise AssertionError("one of the zones is always mid-day")


def contact(tenant_id: str, queue: str, queued: datetime | None, **more: Any) -> Doc:
    return {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "channel": "chat",
        "queue_name": queue,
        "status": "closed",
        "queued_at": queued,
        "assigned_at": None,
        "agent_id": None,
        "disposition": None,
        "updated_at": utcnow(),
        **more,
    }


def spell(tenant_id: str, agent_id: str, state: str, start: datetime, end: datetime | None) -> Doc:
    return {
        "_id": new_id(),
        "tenant_id": tenant_id,
        "agent_id": agent_id,
        "state": state,
        "reason": None,
        "start": start,
        "end": end,
    }


async def test_today_in_the_tenant_time_zone_then_incrementally(ctx: AppContext) -> None:
    now = utcnow()
    zone = a_zone_well_inside_its_day(now)
    tenant = await create_tenant(ctx, f"t-{new_id()[:10]}", "Board")
    tid = tenant["_id"]
    await ctx.db.tenants.update_one({"_id": tid}, {"$set": {"timezone": zone.key}})
    midnight = day_start(now, zone)
    assert midnight != day_start(now, ZoneInfo("UTC"))
    minute = timedelta(minutes=1)
    ann, bob = f"ann-{new_id()[:6]}", f"bob-{new_id()[:6]}"
    waiting = contact(tid, "general", now - 60 * timedelta(seconds=1), status="queued")
    await ctx.db.contacts.insert_many(
        [
            # yesterday, local time: not today's, though it is today in UTC for eastern zones
            contact(tid, "billing", midnight - 30 * minute, assigned_at=midnight - 29 * minute, agent_id=ann),
            # today: answered in 5 s and in 40 s (threshold 20 s), one abandoned
            contact(
                tid,
                "billing",
                midnight + 10 * minute,
                assigned_at=midnight + 10 * minute + timedelta(seconds=5),
                agent_id=ann,
            ),
            contact(
                tid,
                "billing",
                midnight + 20 * minute,
                assigned_at=midnight + 20 * minute + timedelta(seconds=40),
                agent_id=ann,
            ),
            contact(tid, "billing", midnight + 30 * minute, disposition="abandoned"),
            # queued yesterday, taken by bob today: his, but not in today's queue figures
            contact(tid, "billing", midnight - 10 * minute, assigned_at=midnight + 5 * minute, agent_id=bob),
            waiting,
            # another tenant's contact is not on this board
            contact(f"other-{new_id()[:6]}", "billing", midnight + 40 * minute, disposition="abandoned"),
        ]
    )
    hour = timedelta(hours=1)
    ann_busy_since = now - timedelta(seconds=120)
    bob_away_since = now - timedelta(seconds=300)
    await ctx.db.agent_states.insert_many(
        [
            spell(tid, ann, "available", midnight - hour, midnight + hour),  # 1 h of it today
            spell(tid, ann, "busy", midnight + hour, midnight + 2 * hour),
            spell(tid, ann, "available", midnight + 2 * hour, ann_busy_since),
            spell(tid, ann, "busy", ann_busy_since, None),
            spell(tid, bob, "offline", midnight - 5 * hour, bob_away_since),
            spell(tid, bob, "not_ready", bob_away_since, None),
        ]
    )
    await ctx.db.agents.insert_many(
        [
            {
                "_id": ann,
                "tenant_id": tid,
                "name": "Ann",
                "state": "available",
                "load": {"chat": 1},
                "spell": {"id": "x", "state": "busy", "reason": None, "start": ann_busy_since},
            },
            {
                "_id": bob,
                "tenant_id": tid,
                "name": "Bob",
                "state": "not_ready",
                "not_ready_reason": "lunch",
                "load": {},
                "spell": {"id": "y", "state": "not_ready", "reason": "lunch", "start": bob_away_since},
            },
        ]
    )
    await ctx.db.queues.insert_one(
        {"_id": new_id(), "tenant_id": tid, "name": "billing", "service_level": {"threshold_s": 20}}
    )

    board = await snapshot(ctx, tid)
    at = datetime.fromisoformat(board["at"])
    assert board["timezone"] == zone.key and board["day"] == at.astimezone(zone).date().isoformat()
    billing = board["queues"]["billing"]
    assert (billing["answered_today"], billing["abandoned_today"], billing["waiting"]) == (2, 1, 0)
    assert billing["service_level"] == pytest.approx(1 / 3, abs=0.001)
    general = board["queues"]["general"]
    assert (general["waiting"], general["answered_today"], general["service_level"]) == (1, 0, None)
    assert general["longest_wait_s"] == pytest.approx(60, abs=2)
    assert (board["answered_today"], board["abandoned_today"], board["waiting"]) == (2, 1, 1)
    assert board["agents"] == {"busy": 1, "not_ready": 1}
    roster = {a["name"]: a for a in board["roster"]}
    assert [a["name"] for a in board["roster"]] == ["Ann", "Bob"]  # busy before not ready
    assert roster["Ann"]["state"] == "busy" and roster["Ann"]["in_state_s"] == pytest.approx(120, abs=3)
    assert roster["Bob"]["state"] == "not_ready" and roster["Bob"]["reason"] == "lunch"
    assert roster["Bob"]["in_state_s"] == pytest.approx(300, abs=3)
    assert (roster["Ann"]["handled_today"], roster["Bob"]["handled_today"]) == (2, 1)
    # Ann: logged in since midnight (her spell from before it is clipped), busy 1 h + 2 min
    elapsed = (at - midnight).total_seconds()
    assert roster["Ann"]["occupancy"] == pytest.approx((3600 + 120) / elapsed, abs=0.002)
    assert roster["Bob"]["occupancy"] == 0.0  # logged in for 5 minutes, not a second of talk

    # changes after the day's first look are read incrementally
    later = utcnow()
    await ctx.db.contacts.update_one(
        {"_id": waiting["_id"]},
        {"$set": {"status": "assigned", "assigned_at": later, "agent_id": bob, "updated_at": later}},
    )
    back = spell(tid, bob, "available", later, None)
    await ctx.db.agent_states.update_many({"agent_id": bob, "end": None}, {"$set": {"end": later}})
    await ctx.db.agent_states.insert_one(back)
    await ctx.db.agents.update_one(
        {"_id": bob},
        {
            "$set": {
                "state": "available",
                "not_ready_reason": None,
                "spell": {"id": back["_id"], "state": "available", "reason": None, "start": later},
            }
        },
    )
    board = await snapshot(ctx, tid)
    general = board["queues"]["general"]
    assert (general["waiting"], general["answered_today"], general["service_level"]) == (0, 1, 0.0)
    assert board["queues"]["billing"]["answered_today"] == 2  # nothing counted twice
    assert (board["answered_today"], board["waiting"]) == (3, 0)
    roster = {a["name"]: a for a in board["roster"]}
    assert roster["Bob"]["state"] == "available" and roster["Bob"]["in_state_s"] < 5
    assert roster["Bob"]["handled_today"] == 2
    assert roster["Bob"]["occupancy"] == 0.0


async def test_board_follows_agents_and_contacts_within_a_second(
    hub_nobot: HubProcess, tenant_in: TenantFactory
) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]}
    )
    db = context_for(hub_nobot.env["MONGODB_URI"], hub_nobot.env["HUB_DB_NAME"])
    try:
        await db.db.tenants.update_one({"_id": t["tenant"]["_id"]}, {"$set": {"timezone": "Asia/Tokyo"}})
    finally:
        await db.db.close()
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    ann = Agent(hub_nobot.url, t["slug"], "ann@t.test")
    await sam.login()
    await ann.login()
    await (await ann.http.get("/api/agent/presence")).aread()  # ann's routing view exists
    token = sam.http.headers["Authorization"].split()[1]
    widget: Widget | None = None
    try:
        async with websockets.connect(f"{hub_nobot.ws_url}/ws/wallboard?token={token}") as ws:

            def ann_row(board: dict[str, Any]) -> dict[str, Any]:
                return next((a for a in board["roster"] if a["name"] == "Ann"), {})

            first, _ = await next_board(ws, lambda b: ann_row(b).get("state") == "not_ready")
            assert first["timezone"] == "Asia/Tokyo"
            changed = time.monotonic()
            await ann.available()
            board, arrived = await next_board(ws, lambda b: ann_row(b).get("state") == "available")
            assert arrived - changed < 1.0
            row = ann_row(board)
            assert row["in_state_s"] is not None and row["in_state_s"] < 2
            assert row["handled_today"] == 0 and row["occupancy"] == 0.0

            widget = Widget(hub_nobot.ws_url, t["slug"])
            await widget.connect()
            await widget.say("I need a person")
            board, _ = await next_board(ws, lambda b: ann_row(b).get("state") == "busy")
            offer = (await ann.http.get("/api/agent/contacts")).json()["offers"][0]
            changed = time.monotonic()
            (await ann.http.post(f"/api/contacts/{offer['contact_id']}/accept")).raise_for_status()
            board, arrived = await next_board(ws, lambda b: ann_row(b).get("handled_today") == 1)
            assert arrived - changed < 1.0
            assert board["answered_today"] == 1 and board["queues"]["general"]["answered_today"] == 1
            assert ann_row(board)["occupancy"] is not None and ann_row(board)["occupancy"] > 0
            rest = (await sam.http.get("/api/wallboard")).json()
            assert ann_row(rest)["handled_today"] == 1
    finally:
        if widget is not None:
            await widget.close()
        await ann.close()
        await sam.close()


def test_midnight_of_a_zone_is_its_own() -> None:
    now = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # the US spring-forward day
    assert day_start(now, ZoneInfo("America/New_York")) == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    assert day_start(now, ZoneInfo("Asia/Tokyo")) == datetime(2026, 3, 7, 15, 0, tzinfo=UTC)
    assert day_start(now, ZoneInfo("UTC")) == datetime(2026, 3, 8, 0, 0, tzinfo=UTC)
    assert zone_of("Not/A_Zone").key == zone_of(None).key == "UTC"  # a typo shows UTC, not an error
