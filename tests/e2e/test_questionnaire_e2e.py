"""Questionnaires in a real browser: a supervisor builds one in the designer (a choice with a
jump, a number), tries it in the voice preview and saves it; an agent then runs it as the
guided script of a conversation, clicking the options, and the answers land on the contact.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from hub.embedded_db import EmbeddedDatabase
from tests.conftest import TenantFactory, context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import HubProcess, Widget

pytestmark = [pytest.mark.e2e]


async def db_do(mongo: EmbeddedDatabase, hub: HubProcess, fn: Any) -> Any:
    context = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        return await fn(context.db)
    finally:
        await context.db.close()


async def test_designer_then_the_agents_script(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage, mongo: EmbeddedDatabase
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"sam": ["general"], "ann": ["general"]}, roles={"sam": ["supervisor"]})
    slug = t["slug"]

    # ---- the supervisor designs: the desk links to the designer
    sam = await open_page("supervisor")
    await logs_in(sam, hub, slug, "sam@t.test", "Sam")
    await expect(sam.locator("#questionnaires-link")).to_be_visible()
    await sam.locator("#questionnaires-link").click()
    await expect(sam).to_have_url(f"{hub.url}/questionnaires")
    await expect(sam.locator("#qn-status")).to_have_text("Not saved yet")  # the editor is ready
    await sam.locator("#qn-name").fill("Renewal call")
    first = sam.locator(".qn-question").nth(0)
    await first.locator(".qn-text").fill("Would you like to renew?")
    await first.locator(".qn-option-label").nth(0).fill("Yes")
    await first.locator(".qn-option-label").nth(1).fill("No")
    await sam.locator("#qn-add-question").click()
    second = sam.locator(".qn-question").nth(1)
    await second.locator(".qn-kind").select_option("number")
    await second.locator(".qn-text").fill("For how many years?")
    await second.locator(".qn-bound").nth(0).fill("1")
    await second.locator(".qn-bound").nth(1).fill("5")
    await first.locator(".qn-option .qn-target").nth(1).select_option("end")  # "No" ends at once

    # the voice preview speaks the keys and follows the answers
    conversation = sam.locator("#qn-conversation")
    await expect(conversation.locator(".qn-line").first).to_have_text(
        "Would you like to renew? For Yes, press 1. For No, press 2."
    )
    await sam.locator("#qn-try-input").fill("9")
    await sam.locator("#qn-try-input").press("Enter")
    await expect(conversation.locator(".qn-line-error")).to_have_text(
        "Please answer with one of: 1 (Yes), 2 (No)."
    )
    await sam.locator("#qn-try-input").fill("1")
    await sam.locator("#qn-try-input").press("Enter")
    await expect(conversation.locator(".qn-line").last).to_contain_text("For how many years?")
    await sam.locator(".qn-tab[data-tab='print']").click()
    await expect(sam.locator("#qn-print")).to_contain_text("2) No  -> end")

    await sam.locator("#qn-save").click()
    await expect(sam.locator("#qn-status")).to_have_text("Saved")
    listed = await (await sam.request.get(f"{hub.url}/api/questionnaires")).json()
    assert [x["name"] for x in listed] == ["Renewal call"]
    qid = listed[0]["id"]
    saved = await (await sam.request.get(f"{hub.url}/api/questionnaires/{qid}")).json()
    assert [(q["key"], q["kind"]) for q in saved["questions"]] == [("q1", "single"), ("q2", "number")]
    assert saved["questions"][0]["options"][1] == {"key": "2", "label": "No", "next": "end"}
    assert (saved["questions"][1]["min"], saved["questions"][1]["max"]) == (1, 5)

    # ---- the agent: a conversation of the campaign shows the script
    ann = await open_page("agent")
    await logs_in(ann, hub, slug, "ann@t.test", "Ann")
    await expect(ann.locator("#questionnaires-link")).to_be_hidden()
    await ann.locator("#presence").select_option("available")
    widget = Widget(hub.ws_url, slug)
    await widget.connect()
    try:
        contact_id = (await widget.say("I got your letter about renewing"))["contact_id"]
        await db_do(
            mongo,
            hub,
            lambda db: db.contacts.update_one({"_id": contact_id}, {"$set": {"questionnaire_id": qid}}),
        )
        offer = ann.locator(f".offer[data-contact-id='{contact_id}']")
        await offer.locator(".offer-accept").click()
        script = ann.locator("#script-panel")
        await expect(script.locator(".sc-question")).to_have_text("Would you like to renew?")
        await script.locator(".sc-option", has_text="Yes").click()
        await expect(script.locator(".sc-question")).to_have_text("For how many years?")
        await script.locator(".sc-field").fill("9")
        await script.locator(".sc-next").click()
        await expect(script.locator(".sc-error")).to_contain_text("at most 5")
        await script.locator(".sc-field").fill("3")
        await script.locator(".sc-next").click()
        await expect(script.locator(".sc-question")).to_have_text("Thank you for your answers.")
        await expect(script.locator(".sc-answers li")).to_have_count(2)
        await expect(script.locator(".sc-answers li").nth(0)).to_contain_text("Yes")
        contact = await db_do(mongo, hub, lambda db: db.contacts.find_one({"_id": contact_id}))
        assert contact["answers"][qid] == {"q1": "1", "q2": 3}
        # Back undoes the last answer
        await script.locator(".sc-back").click()
        await expect(script.locator(".sc-question")).to_have_text("For how many years?")
    finally:
        await widget.close()
    # the refused answer (9 years) is logged by Chromium as a 422; nothing else may be
    errors = console_errors(open_page)
    agent_errors = [e for e in errors.pop("agent", []) if "422" not in e]
    assert errors == {} and agent_errors == []
