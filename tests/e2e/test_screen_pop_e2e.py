"""The screen pop and broadcasts in a real browser: the offer card carries the pop, the
accepted chat fills the call context and suggested articles (which follow the customer's
latest question), and a supervisor's announcement from the wallboard shows as a banner on
the agent desk until dismissed.

Runs against the hub whose Rasa is down, so a chat is queued for agents at once.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from hub.embedded_db import EmbeddedDatabase
from knowledge.kb import upsert_article
from tests.conftest import AGENT_PASSWORD, TenantFactory, context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.support import HubProcess, Widget

pytestmark = [pytest.mark.e2e]

ROUTER_BODY = (
    "Connect the grey DSL cable to the wall socket and the router. Wait until the router light turns "
    "solid white (about 10 minutes). The Wi-Fi name and password are on the back label."
)
ARTICLES = [
    ("Setting up your router", ROUTER_BODY, ["router", "wifi", "setup"]),
    ("Mobile roaming", "Roaming in the EU and UK is included in every mobile plan.", ["roaming"]),
    ("Paperless billing", "Switch to paperless billing in the portal under Billing > Preferences.", ["bill"]),
]
QUESTION = "How do I set up my new router?"


async def logs_in(page: Page, hub: HubProcess, slug: str, email: str, name: str) -> None:
    await page.goto(f"{hub.url}/login")
    await page.locator("#login-tenant").fill(slug)
    await page.locator("#login-email").fill(email)
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    await page.locator("#login-submit").click()
    await expect(page).to_have_url(f"{hub.url}/agent")
    await expect(page.locator("#user-name")).to_have_text(name)
    await expect(page.locator("#ws-state")).to_have_text("Live")


async def test_offer_pop_call_context_suggestions_and_announcement_banner(
    hub_nobot: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"ann": ["general"], "sam": ["general"]}, roles={"sam": ["supervisor"]})
    slug = t["slug"]
    context = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        for title, body, tags in ARTICLES:
            await upsert_article(context, t["tenant"]["_id"], title, body, tags)
    finally:
        await context.db.close()

    ann = await open_page("agent")
    await logs_in(ann, hub, slug, "ann@t.test", "Ann")
    await expect(ann.locator("#announcements")).to_be_hidden()
    await expect(ann.locator("#kb-suggestions")).to_have_text("No conversation selected.")
    await expect(ann.locator("#presence")).to_have_attribute("data-status", "not_ready:away")
    await ann.locator("#presence").select_option("available")
    await expect(ann.locator("#presence")).to_have_attribute("data-status", "available")

    widget = Widget(hub.ws_url, slug)
    await widget.connect()
    try:
        # ---- the offer card: channel, reason, queue, what the customer said, first contact
        ack = await widget.say(QUESTION)
        contact_id = ack["contact_id"]
        offer = ann.locator(f".offer[data-contact-id='{contact_id}']")
        await expect(offer).to_be_visible()
        await expect(offer.locator(".offer-preview")).to_have_text(QUESTION)
        await expect(offer.locator(".offer-reason")).to_have_text("Bot unavailable")
        await expect(offer.locator(".offer-channel")).to_have_text("webchat")
        await expect(offer.locator(".offer-queue")).to_have_text("general")

        # ---- on connect: the right column fills
        await offer.locator(".offer-accept").click()
        call = ann.locator("#call-context")
        await expect(call.locator("dd[data-field='channel']")).to_have_text("Webchat")
        await expect(call.locator("dd[data-field='reason']")).to_have_text("Bot unavailable")
        await expect(call.locator("dd[data-field='queue']")).to_have_text("general")
        await expect(call.locator("dd[data-field='wait']")).to_have_text(re.compile(r"^\d+s$"))
        suggestions = ann.locator("#kb-suggestions .kb-suggestion")
        await expect(suggestions.first.locator(".kb-title")).to_have_text("Setting up your router")
        await expect(suggestions.first.locator(".kb-snippet")).to_contain_text("router")
        # a click opens the article; Insert copies it into the reply
        article = suggestions.first.locator(".kb-body")
        await expect(article).to_be_hidden()
        await suggestions.first.locator(".kb-title").click()
        await expect(article).to_be_visible()
        await expect(article).to_have_text(ROUTER_BODY)
        await suggestions.first.locator(".kb-insert").click()
        await expect(ann.locator("#reply-input")).to_have_value(ROUTER_BODY)

        # ---- the customer asks something else: the suggestions follow (throttled, ~2 s)
        await widget.say("And how do I switch to paperless billing?")
        await expect(ann.locator("#transcript .msg-visitor", has_text="paperless")).to_be_visible()
        await expect(suggestions.first.locator(".kb-title")).to_have_text("Paperless billing", timeout=6_000)
    finally:
        await widget.close()

    # ---- a supervisor announces from the wallboard; the agent's banner shows it at once
    sam = await open_page("supervisor")
    await logs_in(sam, hub, slug, "sam@t.test", "Sam")
    await sam.goto(f"{hub.url}/wallboard")
    await expect(sam.locator("#wb-state")).to_have_text("Live")
    await expect(sam.locator("#wb-announce-audience option[value='queue:skill:general']")).to_have_count(1)
    await sam.locator("#wb-announce-text").fill("System outage: do not promise refunds")
    await sam.locator("#wb-announce-level").select_option("urgent")
    await sam.locator("#wb-announce-send").click()
    await expect(sam.locator("#wb-announce-status")).to_have_text("Sent to 2 people.")  # ann and sam

    banner = ann.locator("#announcements")
    urgent = banner.locator(".announcement-urgent")
    await expect(banner).to_be_visible()
    await expect(urgent.locator(".announcement-text")).to_have_text("System outage: do not promise refunds")
    await expect(urgent.locator(".announcement-meta")).to_contain_text("from Sam")

    # to one skill group, info level
    await sam.locator("#wb-announce-text").fill("Coffee in the kitchen")
    await sam.locator("#wb-announce-level").select_option("info")
    await sam.locator("#wb-announce-audience").select_option("queue:skill:general")
    await sam.locator("#wb-announce-send").click()
    await expect(sam.locator("#wb-announce-status")).to_have_text("Sent to 1 person.")  # agents only
    info = banner.locator(".announcement-info .announcement-text")
    await expect(info).to_have_text("Coffee in the kitchen")
    await expect(banner.locator(".announcement")).to_have_count(2)
    await expect(banner.locator(".announcement").first).to_have_class(re.compile(r"announcement-urgent"))

    # dismissing marks it read: after a reload only the unread one is loaded
    await urgent.locator(".announcement-dismiss").click()
    await expect(urgent).to_have_count(0)
    await ann.reload()
    await expect(ann.locator("#ws-state")).to_have_text("Live")
    await expect(banner.locator(".announcement")).to_have_count(1)
    await expect(banner.locator(".announcement-text")).to_have_text("Coffee in the kitchen")
    await banner.locator(".announcement-dismiss").click()
    await expect(banner).to_be_hidden()

    assert console_errors(open_page) == {}
