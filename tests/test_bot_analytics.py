"""Bot analytics (reports/bot_analytics.py, GET /api/reports/bot) on contacts made for real.

The first test drives web chats through a hub with the real Rasa bot: one the bot settles,
one it does not understand twice (fallback, then a handoff), one where the customer asks for
a person and an agent answers. The second drives the in-process router through the voice
outcomes (hung up in the IVR, abandoned in the queue) and checks the period's edges.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from hub.contacts import open_contact
from hub.context import AppContext
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id, utcnow
from hub.tenancy import create_tenant
from knowledge.usage import record
from reports.bot_analytics import bot_analytics
from routing.assignment import Router
from tests.conftest import TenantFactory, context_for
from tests.support import Agent, HubProcess, Widget


@pytest.mark.rasa
async def test_containment_handoffs_fallbacks_and_csat_through_the_bot(
    hub: HubProcess, mongo: EmbeddedDatabase, tenant_in: TenantFactory
) -> None:
    t = await tenant_in(
        hub, agents={"ann": ["general", "billing"], "sam": ["general"]}, roles={"sam": ["supervisor"]}
    )
    tid = t["tenant"]["_id"]
    # 1. the bot settles it: a greeting, then the customer goes quiet
    settled = Widget(hub.ws_url, t["slug"])
    await settled.connect()
    hello = await settled.say("hello")
    await settled.reply_from("bot", hello["seq"])
    # 2. twice not understood: a fallback answer, then a handoff for that reason
    lost = Widget(hub.ws_url, t["slug"])
    await lost.connect()
    first = await lost.say("zxqv plorb wum tandiloo")
    await lost.reply_from("bot", first["seq"])
    second = await lost.say("blorpt quazzle frimb snerk")
    await lost.reply_from("bot", second["seq"])
    await lost.wait_status("queued")
    # 3. the customer asks for a person; Ann answers and wraps up
    human = Widget(hub.ws_url, t["slug"])
    await human.connect()
    ask = await human.say("I want to talk to a human")
    await human.reply_from("bot", ask["seq"])
    await human.wait_status("queued")
    ann = Agent(hub.url, t["slug"], "ann@t.test")
    await ann.login()
    await ann.available()
    await ann.wait_offer(ask["contact_id"])
    assert (await ann.http.post(f"/api/contacts/{ask['contact_id']}/accept")).status_code == 200
    done = await ann.http.post(f"/api/contacts/{ask['contact_id']}/wrapup", json={"disposition": "resolved"})
    assert done.status_code == 200
    # satisfaction answers as the IVR survey stores them (media/call.py: survey_score), and
    # a "Did that help?" vote from web chat
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        await ctx.db.contacts.update_one({"_id": hello["contact_id"]}, {"$set": {"survey_score": 2}})
        await ctx.db.contacts.update_one({"_id": ask["contact_id"]}, {"$set": {"survey_score": 4}})
        await record(ctx, tid, "helpful", new_id(), "webchat", contact_id=hello["contact_id"])
    finally:
        await ctx.db.close()

    sam = Agent(hub.url, t["slug"], "sam@t.test")
    await sam.login()
    await asyncio.sleep(0.3)
    report = (await sam.http.get("/api/reports/bot", params={"idle_min": 0.001})).json()
    totals = report["totals"]
    assert (totals["started"], totals["contained"], totals["handed_off"]) == (3, 1, 2)
    assert (totals["answered"], totals["abandoned"], totals["with_bot"]) == (1, 0, 0)
    assert totals["containment_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert [c["channel"] for c in report["by_channel"]] == ["webchat"]
    reasons = {r["reason"]: r["contacts"] for r in report["handoff_reasons"]}
    assert reasons == {"bot_fallback": 1, "customer_request": 1}
    # four visitor turns went to the bot; one answer was the fallback
    assert report["fallback"] == {
        "bot_turns": 4,
        "fallbacks": 1,
        "fallback_rate": 0.25,
        "contacts_with_fallback": 1,
    }
    assert report["csat"]["bot"] == {"responses": 1, "avg": 2.0}
    assert report["csat"]["agent"] == {"responses": 1, "avg": 4.0}
    assert report["csat"]["by_channel"] == [
        {"channel": "webchat", "bot_responses": 1, "bot_avg": 2.0, "agent_responses": 1, "agent_avg": 4.0}
    ]
    assert report["kb_votes"] == [
        {"channel": "webchat", "helpful": 1, "not_helpful": 0, "helpful_ratio": 1.0}
    ]
    assert sum(i["contacts"] for i in report["intents"]) == 3
    assert sum(i["handed_off"] for i in report["intents"]) == 2
    # with the default idle time the quiet chat is still with the bot, not yet contained
    default = (await sam.http.get("/api/reports/bot")).json()["totals"]
    assert (default["contained"], default["with_bot"]) == (0, 1)

    # agents may not read it; another tenant's supervisor sees none of it
    assert (await ann.http.get("/api/reports/bot")).status_code == 403
    other = await tenant_in(hub, agents={"oz": ["general"]}, roles={"oz": ["supervisor"]})
    oz = Agent(hub.url, other["slug"], "oz@t.test")
    await oz.login()
    assert (await oz.http.get("/api/reports/bot")).json()["totals"]["started"] == 0
    bad = await sam.http.get("/api/reports/bot", params={"from": "2026-02-02", "to": "2026-02-01"})
    assert bad.status_code == 422
    for client in (ann, sam, oz):
        await client.close()
    for widget in (settled, lost, human):
        await widget.close()


async def test_voice_outcomes_and_the_period(ctx: AppContext) -> None:
    """A call that hangs up in the IVR never waited for an agent: contained. One that hangs up
    in the queue is abandoned. Outbound calls and contacts outside the period are left out."""
    tenant = await create_tenant(ctx, f"ba-{new_id()[:10]}", "Bot analytics")
    tid = tenant["_id"]
    await ctx.db.tenants.update_one({"_id": tid}, {"$set": {"timezone": "Asia/Shanghai"}})
    router = Router(ctx)
    in_ivr = await open_contact(ctx, tid, "voice")
    await router.abandon(in_ivr["_id"], "caller_hung_up")
    in_queue = await open_contact(ctx, tid, "voice")
    await router.enqueue(in_queue["_id"], "general", "customer_request")
    await router.abandon(in_queue["_id"], "caller_left_queue")
    await open_contact(ctx, tid, "voice", extra={"direction": "outbound"})
    yesterday = await open_contact(ctx, tid, "sms")
    await ctx.db.contacts.update_one(
        {"_id": yesterday["_id"]}, {"$set": {"opened_at": utcnow() - timedelta(days=1, hours=1)}}
    )
    today = utcnow().astimezone(ZoneInfo("Asia/Shanghai")).date()
    report = await bot_analytics(ctx, tid, today, today)
    assert report["timezone"] == "Asia/Shanghai"
    voice = report["by_channel"][0]
    assert len(report["by_channel"]) == 1 and voice["channel"] == "voice"
    assert (voice["started"], voice["contained"], voice["handed_off"], voice["abandoned"]) == (2, 1, 1, 1)
    assert report["handoff_reasons"] == [{"reason": "customer_request", "contacts": 1, "share": 1.0}]
    week = await bot_analytics(ctx, tid, today - timedelta(days=6), today)
    assert week["totals"]["started"] == 3  # yesterday's SMS too
    assert week["fallback"]["fallback_rate"] is None  # no bot turns at all
