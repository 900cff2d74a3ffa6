"""The agent's outbound panel in headless Chromium: a preview campaign's record is taken,
dialled through the real hub (the Twilio double sees the call) and given a result."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from hub.embedded_db import EmbeddedDatabase
from tests.conftest import TenantFactory, context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_chat_e2e import agent_logs_in
from tests.support import Agent, HubProcess
from tests.test_dialer import campaign_with_targets, target
from tests.twilio_double import TwilioDouble

pytestmark = pytest.mark.e2e


async def test_agent_takes_dials_and_closes_a_preview_record(
    hub_nobot: HubProcess,
    tenant_in: TenantFactory,
    mongo: EmbeddedDatabase,
    twilio_double: TwilioDouble,
    open_page: OpenPage,
) -> None:
    t = await tenant_in(
        hub_nobot, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]}
    )
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    await sam.login()
    number = "+14155550171"
    cid = await campaign_with_targets(hub_nobot, mongo, sam, t["tenant"]["_id"], [number], type="preview")
    ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        await ctx.db.campaign_targets.update_one(
            {"_id": f"{cid}-0"}, {"$set": {"name": "Grace Hopper", "fields": {"plan": "Fibre 500"}}}
        )
    finally:
        await ctx.db.close()
    assert (await sam.http.post(f"/api/campaigns/{cid}/start")).status_code == 200

    page = await open_page("agent")
    await agent_logs_in(page, hub_nobot, t["slug"], "ann@t.test")
    panel = page.locator("#outbound-panel")
    await expect(panel).to_be_visible()
    await panel.get_by_role("button", name="Next record").click()
    await expect(panel.locator(".outbound-number")).to_have_text(f"{number} — Grace Hopper")
    await expect(panel.locator(".outbound-field").first).to_have_text("plan: Fibre 500")
    await panel.get_by_role("button", name="Dial").click()
    calls = await twilio_double.wait_for(
        lambda: [c for c in twilio_double.creates() if c.get("To") == number]
    )
    assert calls[0].get("From") == "+14155550199"
    await panel.locator(".outbound-result select").select_option("strong_intent")
    await panel.locator(".outbound-result input").first.fill("wants the upgrade")
    await panel.get_by_role("button", name="Save result").click()
    await expect(panel.get_by_role("button", name="Next record")).to_be_visible()
    done = await target(mongo, hub_nobot, f"{cid}-0")
    assert done["disposition"] == "strong_intent" and done["result_note"] == "wants the upgrade"
    assert console_errors(open_page) == {}
    await sam.http.post(f"/api/campaigns/{cid}/stop")
    await sam.close()
