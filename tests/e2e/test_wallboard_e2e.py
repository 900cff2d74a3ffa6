"""The supervisor wallboard in a real browser: a supervisor watches a contact join the queue
live; an agent is refused the page and does not see the desk's Wallboard link.

Runs against the hub whose Rasa is down, so a chat is queued for agents at once (~1.5 s).
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.conftest import AGENT_PASSWORD, TenantFactory
from tests.e2e.conftest import OpenPage, console_errors
from tests.support import HubProcess, Widget

pytestmark = [pytest.mark.e2e]


async def logs_in(page: Page, hub: HubProcess, slug: str, email: str, name: str) -> None:
    await page.goto(f"{hub.url}/login")
    await page.locator("#login-tenant").fill(slug)
    await page.locator("#login-email").fill(email)
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    await page.locator("#login-submit").click()
    await expect(page).to_have_url(f"{hub.url}/agent")
    await expect(page.locator("#user-name")).to_have_text(name)


async def test_supervisor_sees_the_queue_live_and_agents_are_refused(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"sam": ["general"], "ann": ["general"]}, roles={"sam": ["supervisor"]})
    slug = t["slug"]

    # ---- the supervisor: the desk links to the wallboard, which goes live with an empty queue
    sam = await open_page("supervisor")
    await logs_in(sam, hub, slug, "sam@t.test", "Sam")
    link = sam.locator("#wallboard-link")
    await expect(link).to_be_visible()
    await link.click()
    await expect(sam).to_have_url(f"{hub.url}/wallboard")
    await expect(sam.locator("#wb-state")).to_have_text("Live")
    await expect(sam.locator("#wb-waiting")).to_have_text("0")
    await expect(sam.locator("#wb-longest")).to_have_text("00:00")
    await expect(sam.locator("#wb-sl")).to_have_text("\u2013")  # no contacts yet: no service level
    await expect(sam.locator("#wb-queues tr")).to_have_count(0)
    # agents by state: Sam's visit to the desk registered him, away until he picks a status
    await expect(sam.locator("#wb-agents [data-state='not_ready'] .wb-agent-label")).to_have_text("Not ready")

    # ---- a visitor chats: with the bot down the contact is queued, and the board shows it
    widget = Widget(hub.ws_url, slug)
    await widget.connect()
    try:
        await widget.say("I need help with my bill")
        await expect(sam.locator("#wb-waiting")).to_have_text("1", timeout=5_000)
        row = sam.locator("#wb-queues tr[data-queue='general']")
        await expect(row.locator(".wb-queue-waiting")).to_have_text("1")
        # the longest wait ticks in the browser between pushes
        await expect(sam.locator("#wb-longest")).to_have_text(re.compile(r"^00:(0[2-9]|[1-5]\d)$"))
        await expect(row.locator(".wb-queue-longest")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    finally:
        await widget.close()

    # ---- an agent: no Wallboard link on the desk, and the page itself is refused
    ann = await open_page("agent")
    await logs_in(ann, hub, slug, "ann@t.test", "Ann")
    await expect(ann.locator("#ws-state")).to_have_text("Live")  # the desk has loaded /api/me
    await expect(ann.locator("#wallboard-link")).to_be_hidden()
    response = await ann.goto(f"{hub.url}/wallboard")
    assert response is not None and response.status == 403
    await expect(ann.locator("#forbidden")).to_contain_text("Supervisors only")
    await expect(ann.locator("#wb-waiting")).to_have_count(0)
    denied = await ann.request.get(f"{hub.url}/api/wallboard")
    assert denied.status == 403

    # ---- signed out: the page sends the browser to the login
    anonymous = await open_page("anonymous")
    await anonymous.goto(f"{hub.url}/wallboard")
    await expect(anonymous).to_have_url(f"{hub.url}/login")

    # ---- a 403 document is logged as a console error by Chromium; nothing else may be
    errors = console_errors(open_page)
    agent_errors = [e for e in errors.pop("agent", []) if "403" not in e]
    assert errors == {} and agent_errors == []
