"""Workforce planning and bot analytics in a real browser: the Erlang C calculator gives the
published answer (100 contacts in 30 minutes, AHT 180 s, 80 % in 20 s -> 14 agents, 20 with
30 % shrinkage), the day's staffing marks an under-staffed interval, the bot page shows its
figures, and agents are refused both pages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from hub.contacts import open_contact
from hub.embedded_db import EmbeddedDatabase
from hub.ids import new_id
from tests.conftest import TenantFactory, context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import Agent, HubProcess

pytestmark = [pytest.mark.e2e]


async def seed(mongo: EmbeddedDatabase, hub: HubProcess, tenant_id: str) -> None:
    """Today 00:00-00:15 UTC: ten handled contacts of 300 s and one agent logged in; plus a
    contact the bot handed over because the customer asked for a person."""
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        for i in range(10):
            contact = await open_contact(ctx, tenant_id, "webchat")
            queued = midnight + timedelta(minutes=i)
            await ctx.db.contacts.update_one(
                {"_id": contact["_id"]},
                {
                    "$set": {
                        "status": "closed",
                        "queue_name": "general",
                        "queued_at": queued,
                        "assigned_at": queued + timedelta(seconds=5),
                        "agent_id": "someone",
                        "closed_at": queued + timedelta(seconds=305),
                        "opened_at": queued,
                        "updated_at": datetime.now(UTC),  # the fact updater picks the change up
                        "reason": "customer_request",
                    }
                },
            )
        await ctx.db.agent_states.insert_one(
            {"_id": new_id(), "tenant_id": tenant_id, "agent_id": "someone", "state": "available",
             "reason": None, "start": midnight, "end": midnight + timedelta(minutes=15)}
        )  # fmt: skip
    finally:
        await ctx.db.close()


async def test_calculator_staffing_and_bot_pages(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage, mongo: EmbeddedDatabase
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"sam": ["general"], "ann": ["general"]}, roles={"sam": ["supervisor"]})
    await seed(mongo, hub, t["tenant"]["_id"])
    # the hub's fact updater turns the seeded contacts into facts within seconds: wait for it
    api = Agent(hub.url, t["slug"], "sam@t.test")
    await api.login()
    for _ in range(100):
        staffing = (await api.http.get("/api/reports/staffing")).json()
        if staffing["totals"]["contacts"] == 10:
            break
        await asyncio.sleep(0.2)
    await api.close()
    sam = await open_page("supervisor")
    await logs_in(sam, hub, t["slug"], "sam@t.test", "Sam")
    await sam.goto(f"{hub.url}/wallboard")
    await sam.locator("a[href='/workforce']").click()
    await expect(sam).to_have_url(f"{hub.url}/workforce")

    # ---- the calculator, on its defaults: the classic worked example
    await expect(sam.locator("#wf-agents")).to_have_text("14")
    await expect(sam.locator("#wf-scheduled")).to_have_text("20")
    await expect(sam.locator("#wf-service-level")).to_have_text("88.8 %")
    await expect(sam.locator("#wf-occupancy")).to_have_text("71.4 %")
    await expect(sam.locator("#wf-traffic")).to_have_text("10.00")
    await expect(sam.locator("#wf-options tr.wf-chosen")).to_have_attribute("data-agents", "14")
    # a tighter goal: 90 % within 15 s and no shrinkage
    await sam.locator("#wf-sl").fill("90")
    await sam.locator("#wf-sl-seconds").fill("15")
    await sam.locator("#wf-shrinkage").fill("0")
    await sam.locator("#wf-calc-submit").click()
    await expect(sam.locator("#wf-agents")).to_have_text("15")
    await expect(sam.locator("#wf-scheduled")).to_have_text("15")

    # ---- the day's staffing: 10 contacts x 300 s need 6 agents, 9 with 30 % shrinkage; 1 was there
    first = sam.locator("#wf-staffing-rows tr[data-start='00:00']")
    await expect(first.locator(".wf-contacts")).to_have_text("10")
    await expect(first.locator(".wf-required")).to_have_text("6")
    await expect(first.locator(".wf-logged-in")).to_have_text("1.0")
    await expect(first).to_have_class("wf-interval wf-under")
    await expect(sam.locator("#wf-day-summary")).to_contain_text("1 under-staffed")

    # ---- next week planned from the last 4 weeks: today's 10 contacts average to 2.5
    next_week = (datetime.now(UTC) + timedelta(weeks=1)).date().isoformat()
    await sam.locator("#wf-day").fill(next_week)
    await sam.locator("#wf-weeks").select_option("4")
    await sam.locator("#wf-day-refresh").click()
    planned = sam.locator("#wf-staffing-rows tr[data-start='00:00']")
    await expect(planned.locator(".wf-forecast")).to_have_text("2.5")
    await expect(planned.locator(".wf-contacts")).to_have_text("0")
    await expect(planned.locator(".wf-logged-in")).to_have_text("\u2013")  # the future: nobody yet
    await expect(sam.locator("#wf-day-summary")).to_contain_text("forecast from 4 weeks")

    # ---- bot analytics: every seeded contact was handed over at the customer's request
    await sam.goto(f"{hub.url}/bot-analytics")
    await expect(sam.locator("#ba-started")).to_have_text("10")
    await expect(sam.locator("#ba-handoff")).to_have_text("100 %")
    await expect(sam.locator("#ba-containment")).to_have_text("0 %")
    reason = sam.locator("#ba-reason-rows tr[data-reason='customer_request'] td")
    await expect(reason.nth(1)).to_have_text("10")
    assert console_errors(open_page) == {}

    # ---- agents are refused
    ann = await open_page("agent")
    await logs_in(ann, hub, t["slug"], "ann@t.test", "Ann")
    for path in ("/workforce", "/bot-analytics"):
        response = await ann.goto(f"{hub.url}{path}")
        assert response is not None and response.status == 403
