"""The quality page in a real browser: a supervisor designs a scorecard, scores a closed chat
from the list (transcript shown) and asks for a re-contact, and reads the report; the agent
finds the re-contact task on the desk, opens her evaluation and acknowledges it.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from hub.embedded_db import EmbeddedDatabase
from tests.conftest import TenantFactory, context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import HubProcess
from tests.test_quality import _contact

pytestmark = [pytest.mark.e2e]


async def test_supervisor_scores_a_chat_and_the_agent_acknowledges(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage, mongo: EmbeddedDatabase
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"sam": [], "ann": ["general"]}, roles={"sam": ["supervisor"]})
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        contact_id = await _contact(
            ctx, t["tenant"]["_id"], t["users"]["ann"], texts=("Where is my parcel?", "It ships today.")
        )
    finally:
        await ctx.db.close()

    # ---- the supervisor designs a scorecard
    sam = await open_page("supervisor")
    await logs_in(sam, hub, t["slug"], "sam@t.test", "Sam")
    await sam.goto(f"{hub.url}/quality")
    await expect(sam.locator("#user-name")).to_have_text("Sam")
    await sam.locator(".q-tab[data-tab='scorecards']").click()
    await expect(sam.locator("#q-cards-empty")).to_be_visible()
    await sam.locator("#q-card-name").fill("Chat basics")
    first = sam.locator("#q-designer-items tr").nth(0)
    await first.locator(".it-label").fill("Greets the customer")
    await first.locator(".it-key").fill("greeting")
    await first.locator(".it-critical").check()
    await sam.locator("#q-add-item").click()
    second = sam.locator("#q-designer-items tr").nth(1)
    await second.locator(".it-label").fill("Accurate answer")
    await second.locator(".it-key").fill("accuracy")
    await second.locator(".it-kind").select_option("scale")
    await second.locator(".it-max").fill("4")
    await second.locator(".it-weight").fill("3")
    await sam.locator("#q-add-item").click()
    await sam.locator("#q-designer-items tr").nth(2).locator(".it-remove").click()
    await sam.locator("#q-designer-save").click()
    await expect(sam.locator("#q-designer-status")).to_have_text("Saved")
    await expect(sam.locator("#q-cards tr", has_text="Chat basics")).to_have_count(1)
    cards = await (await sam.request.get(f"{hub.url}/api/quality/scorecards")).json()
    assert [
        (i["key"], i["kind"], i["max"], i["weight"], i["critical"]) for i in cards[0]["sections"][0]["items"]
    ] == [
        ("greeting", "yes_no", 1, 1.0, True),
        ("accuracy", "scale", 4, 3.0, False),
    ]

    # ---- scores the chat from the list
    await sam.locator(".q-tab[data-tab='score']").click()
    await sam.locator("#q-queue-filter button[type='submit']").click()
    item = sam.locator(f"#q-queue [data-contact-id='{contact_id}']")
    await expect(item).to_contain_text("Ann")
    await item.click()
    await expect(sam.locator("#q-transcript")).to_contain_text("Where is my parcel?")
    await expect(sam.locator("#q-transcript")).to_contain_text("It ships today.")
    await sam.locator("#q-answer-greeting").select_option("yes")
    await sam.locator("#q-answer-accuracy").select_option("2")
    await expect(sam.locator("#q-eval-total")).to_have_text("62.5 %")  # (1 + 3*2/4) / 4
    await sam.locator("#q-eval-comments").fill("Say when it arrives.")
    await sam.locator("#q-eval-recontact").check()
    await sam.locator("#q-eval-recontact-note").fill("Give the tracking number")
    await sam.locator("#q-eval-save").click()
    await expect(sam.locator("#q-eval-status")).to_have_text("Saved: 62.5 %")
    await expect(item).to_have_count(0)  # scored: off the list

    # ---- the report
    await sam.locator(".q-tab[data-tab='report']").click()
    row = sam.locator("#q-report-body tr", has_text="Ann")
    await expect(row).to_contain_text("62.5 %")
    await expect(sam.locator("#q-report-head")).to_contain_text("Accurate answer")

    # ---- the agent: the re-contact task on the desk, then her evaluation
    ann = await open_page("agent")
    await logs_in(ann, hub, t["slug"], "ann@t.test", "Ann")
    await expect(ann.locator("#quality-link")).to_be_visible()
    task = ann.locator("#tasks .task", has_text="Re-contact")
    await expect(task).to_contain_text("Give the tracking number")
    await task.locator("a", has_text="See the evaluation").click()
    await expect(ann).to_have_url(re.compile(r"/quality\?evaluation="))
    await expect(ann.locator("#q-tabs")).to_be_hidden()
    await expect(ann.locator("#q-evals-title")).to_have_text("My evaluations")
    detail = ann.locator("#q-eval-detail")
    await expect(detail).to_contain_text("Say when it arrives.")
    await ann.locator(".q-ack-comment").fill("Will send it")
    await ann.locator(".q-ack-send").click()
    await expect(detail).to_contain_text("Acknowledged by the agent")
    await expect(ann.locator("#q-evals")).to_contain_text("acknowledged")
    assert console_errors(open_page) == {}
