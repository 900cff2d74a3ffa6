"""The supervisor routing page in a real browser: a supervisor adds a queue, sets an agent's
skill level, changes the tenant's routing settings and gives an agent her own capacity and
languages through the page, and the API shows all of it; an agent is refused the page and
does not see the desk's Routing link.
"""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.conftest import TenantFactory
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import HubProcess

pytestmark = [pytest.mark.e2e]


async def test_supervisor_configures_queues_and_skill_levels(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t = await tenant_in(
        hub,
        agents={"sam": ["general"], "ann": ["general"]},
        roles={"sam": ["supervisor", "agent"]},
    )
    slug = t["slug"]

    # ---- the supervisor: the desk links to the routing page
    sam = await open_page("supervisor")
    await logs_in(sam, hub, slug, "sam@t.test", "Sam")
    link = sam.locator("#routing-link")
    await expect(link).to_be_visible()
    await link.click()
    await expect(sam).to_have_url(f"{hub.url}/routing")
    await expect(sam.locator("#queues-empty")).to_be_visible()
    ann_row = sam.locator("#agents tr", has_text="Ann")
    await expect(ann_row).to_have_count(1)

    # ---- a bad level is refused by the API and the page shows why
    await ann_row.locator(".new-skill-name").fill("billing")
    await ann_row.locator(".new-skill-level").fill("11")
    await ann_row.locator(".agent-save").click()
    await expect(sam.locator("#routing-error")).to_contain_text("1-10")

    # ---- a queue added through the form appears in the table and in the API
    await sam.locator("#queue-name").fill("Billing")
    await sam.locator("#queue-skill").fill("billing")
    await sam.locator("#queue-level").fill("3")
    await sam.locator("#queue-strategy").select_option("best_fit")
    await sam.locator("#queue-priority").fill("2")
    await sam.locator("#queue-save").click()
    row = sam.locator("#queues tr", has_text="Billing")
    await expect(row).to_have_count(1)
    await expect(row.locator(".queue-skills")).to_have_text("billing 3")
    await expect(row.locator(".queue-strategy")).to_have_text("Best fit")
    await expect(row.locator(".queue-priority")).to_have_text("2")
    await expect(sam.locator("#routing-error")).to_be_hidden()
    queues = await (await sam.request.get(f"{hub.url}/api/queues")).json()
    assert [(q["name"], q["skills"], q["strategy"], q["priority"]) for q in queues] == [
        ("Billing", {"billing": 3}, "best_fit", 2)
    ]

    # ---- Ann's existing skill gets a level and a new one is added
    await ann_row.locator(".rt-skill[data-skill='general'] .skill-level").fill("8")
    await ann_row.locator(".new-skill-name").fill("billing")
    await ann_row.locator(".new-skill-level").fill("4")
    await ann_row.locator(".agent-save").click()
    await expect(ann_row.locator(".rt-saved")).to_have_text("Saved")
    await expect(ann_row.locator(".rt-skill[data-skill='billing'] .skill-level")).to_have_value("4")
    agents = await (await sam.request.get(f"{hub.url}/api/agents")).json()
    ann = next(a for a in agents if a["name"] == "Ann")
    assert ann["skills"] == {"general": 8, "billing": 4}

    # ---- an agent: no Routing link on the desk, and the page itself is refused
    ann_page = await open_page("agent")
    await logs_in(ann_page, hub, slug, "ann@t.test", "Ann")
    await expect(ann_page.locator("#ws-state")).to_have_text("Live")  # the desk has loaded /api/me
    await expect(ann_page.locator("#routing-link")).to_be_hidden()
    response = await ann_page.goto(f"{hub.url}/routing")
    assert response is not None and response.status == 403
    await expect(ann_page.locator("#forbidden")).to_contain_text("Supervisors only")

    # ---- routing settings: the form shows the tenant's, a bad capacity is refused with the
    # server's reason, and a good one is stored
    settings_before = await (await sam.request.get(f"{hub.url}/api/routing/settings")).json()
    await expect(sam.locator("#rs-cap-chat")).to_have_value(str(settings_before["capacity"]["chat"]))
    await expect(sam.locator("#rs-cap-voice")).to_have_value(str(settings_before["capacity"]["voice"]))
    await sam.locator("#rs-cap-chat").fill("51")
    await sam.locator("#rs-save").click()
    await expect(sam.locator("#rs-status")).to_contain_text("0..50")
    await sam.locator("#rs-cap-chat").fill("2")
    await sam.locator("#rs-save").click()
    await expect(sam.locator("#rs-status")).to_have_text("Saved")
    settings = await (await sam.request.get(f"{hub.url}/api/routing/settings")).json()
    assert settings["capacity"]["chat"] == 2
    # the rest comes back as it was (the form spells out wrap-up 0 for the channels without)
    no_wrapup = {"voice": 0.0, "chat": 0.0, "email": 0.0, "sms": 0.0}
    assert settings["wrapup_s"] == {**no_wrapup, **settings_before["wrapup_s"]}
    unchanged = {k: v for k, v in settings_before.items() if k not in ("capacity", "wrapup_s")}
    assert {k: v for k, v in settings.items() if k not in ("capacity", "wrapup_s")} == unchanged
    assert settings["capacity"] == {**settings_before["capacity"], "chat": 2}
    await expect(ann_row.locator(".agent-capacity")).to_contain_text("chat 2")

    # ---- Ann's own chat capacity and languages through her row
    await ann_row.locator(".agent-cap-chat").fill("4")
    await ann_row.locator(".agent-langs").fill("en, KO")
    await ann_row.locator(".agent-routing-save").click()
    await expect(ann_row.locator(".agent-routing-saved")).to_have_text("Saved")
    await expect(ann_row.locator(".agent-capacity")).to_contain_text("chat 4")
    await expect(ann_row.locator(".agent-languages")).to_have_text("en, ko")
    await expect(ann_row.locator(".agent-cap-chat")).to_have_value("4")
    agents = await (await sam.request.get(f"{hub.url}/api/agents")).json()
    ann = next(a for a in agents if a["name"] == "Ann")
    assert ann["capacity"]["chat"] == 4
    assert ann["own_capacity"] == {"chat": 4}
    assert ann["languages"] == ["en", "ko"]
    assert ann["skills"] == {"general": 8, "billing": 4}  # the skill levels are left alone

    # ---- the 422 and 403 responses are logged by Chromium; nothing else may be
    errors = console_errors(open_page)
    sam_errors = [e for e in errors.pop("supervisor", []) if "422" not in e]
    agent_errors = [e for e in errors.pop("agent", []) if "403" not in e]
    assert errors == {} and sam_errors == [] and agent_errors == []
