"""End to end in a real browser: a visitor chats on the demo site, the bot answers from the
knowledge base, hands over to an agent who answers in the agent desktop and wraps up, and the
closed conversation shows in the customer's history.

Two browser contexts (visitor and agent) against a real hub process with a real Rasa server.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from hub.embedded_db import EmbeddedDatabase
from knowledge.kb import upsert_article
from tests.conftest import AGENT_PASSWORD, TenantFactory, context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.support import HubProcess

pytestmark = [pytest.mark.e2e, pytest.mark.rasa]

ROUTER_BODY = (
    "Connect the grey DSL cable to the wall socket and the router, plug in the power, and wait until "
    "the light turns solid white (about 10 minutes). The Wi-Fi name and password are on the back label."
)
ARTICLES = [
    ("Setting up your router", ROUTER_BODY, ["router", "wifi", "broadband", "setup"]),
    ("Mobile roaming", "Roaming in the EU and UK is included in every mobile plan.", ["roaming", "travel"]),
    (
        "Paperless billing",
        "Switch to paperless billing in the portal under Billing > Preferences.",
        ["paperless", "bill"],
    ),
]
FAQ_QUESTION = "How do I set up my router?"
HANDOFF_REQUEST = "I want to talk to a human"
VISITOR_EMAIL = "grace.hopper@example.com"
VISITOR_NAME = "Grace Hopper"
AGENT_REPLY = "Hi Grace, Ann here. Is the light on your router solid white now?"
VISITOR_REPLY = "Yes, it is solid white now and the Wi-Fi works."
WRAPUP_NOTE = "Router set up with the KB article; customer confirmed Wi-Fi works."


async def seed_articles(mongo_uri: str, db_name: str, tenant_id: str) -> None:
    context = context_for(mongo_uri, db_name)
    try:
        for title, body, tags in ARTICLES:
            await upsert_article(context, tenant_id, title, body, tags)
    finally:
        await context.db.close()


async def visitor_says(page: Page, text: str) -> None:
    await page.locator("#hub-chat-input").fill(text)
    await page.locator("#hub-chat-send").click()
    # stored by the hub (ack) = no longer pending
    bubble = page.locator(".hub-chat-visitor", has_text=text)
    await expect(bubble).to_have_count(1)
    await expect(bubble).not_to_have_class(re.compile(r"hub-chat-pending"))
    await expect(bubble).to_have_attribute("data-id", re.compile(r"^[0-9a-f]{32}$"))


async def agent_logs_in(page: Page, hub: HubProcess, slug: str, email: str) -> None:
    await page.goto(f"{hub.url}/login")
    await page.locator("#login-tenant").fill(slug)
    await page.locator("#login-email").fill(email)
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    await page.locator("#login-submit").click()
    await expect(page).to_have_url(f"{hub.url}/agent")
    await expect(page.locator("#user-name")).to_have_text("Ann")
    await expect(page.locator("#ws-state")).to_have_text("Live")
    # the desk has loaded the agent's presence before we change it
    await expect(page.locator("#presence")).to_have_attribute("data-status", "not_ready:away")
    await page.locator("#presence").select_option("available")
    await expect(page.locator("#presence")).to_have_attribute("data-status", "available")


async def api_get(page: Page, hub: HubProcess, path: str) -> Any:
    """GET with the agent's browser session (its cookie)."""
    response = await page.request.get(f"{hub.url}{path}")
    assert response.ok, f"GET {path} -> {response.status} {await response.text()}"
    return await response.json()


async def test_visitor_bot_handoff_agent_wrapup_and_customer_history(
    hub: HubProcess, tenant_in: TenantFactory, mongo: EmbeddedDatabase, open_page: OpenPage
) -> None:
    t = await tenant_in(hub)
    slug = t["slug"]
    await seed_articles(mongo.uri, hub.env["HUB_DB_NAME"], t["tenant"]["_id"])

    # ---- visitor: the demo site, the widget, an FAQ the bot answers from the knowledge base
    visitor = await open_page("visitor")
    await visitor.goto(f"{hub.url}/demo?tenant={slug}")
    await expect(visitor.locator("#hub-chat-launcher")).to_be_visible()
    await expect(visitor.locator("#hub-chat-panel")).to_be_hidden()
    await visitor.locator("#hub-chat-launcher").click()
    await expect(visitor.locator("#hub-chat-panel")).to_be_visible()
    assert await visitor.evaluate("window.HubChat.state().tenant") == slug
    await expect(visitor.locator("#hub-chat-status")).to_have_text("Chatting with our assistant")

    await visitor_says(visitor, FAQ_QUESTION)
    bot_answer = visitor.locator(".hub-chat-bot", has_text="solid white")
    await expect(bot_answer).to_have_count(1)
    await expect(bot_answer).to_have_text(ROUTER_BODY)
    await expect(visitor.locator(".hub-chat-bot", has_text="Did that help?")).to_be_visible()
    await expect(visitor.locator(".hub-chat-quick button")).to_have_count(2)  # Yes / No quick replies
    contact_id = await visitor.evaluate("window.HubChat.state().contact_id")
    assert re.fullmatch(r"[0-9a-f]{32}", contact_id)

    # ---- visitor identifies through the widget's form, then asks for a person
    await visitor.locator("#hub-chat-identify-toggle").click()
    await visitor.locator("#hub-chat-email").fill(VISITOR_EMAIL)
    await visitor.locator("#hub-chat-name").fill(VISITOR_NAME)
    await visitor.locator("#hub-chat-identify").click()
    await expect(visitor.locator("#hub-chat-identify-result")).to_have_text(
        f"Thanks, {VISITOR_NAME} \u2013 we have your details."
    )

    await visitor_says(visitor, HANDOFF_REQUEST)
    await expect(
        visitor.locator(".hub-chat-bot", has_text="connecting you with one of our agents")
    ).to_be_visible()
    await expect(visitor.locator("#hub-chat-status")).to_have_text("Waiting for an agent…")
    assert await visitor.evaluate("window.HubChat.state().status") == "queued"

    # ---- agent: signs in, becomes available, gets the offer and accepts it
    agent = await open_page("agent")
    await agent_logs_in(agent, hub, slug, "ann@t.test")
    offer = agent.locator(f".offer[data-contact-id='{contact_id}']")
    await expect(offer).to_be_visible()
    await expect(offer.locator(".offer-name")).to_have_text(VISITOR_NAME)
    await expect(offer.locator(".offer-preview")).to_have_text(HANDOFF_REQUEST)
    await offer.locator(".offer-accept").click()
    await expect(agent.locator(".offer")).to_have_count(0)

    # the screen pop: the bot transcript and the customer profile
    transcript = agent.locator("#transcript")
    await expect(transcript.locator(".msg-visitor", has_text=FAQ_QUESTION)).to_be_visible()
    await expect(transcript.locator(".msg-bot", has_text="solid white")).to_have_text(ROUTER_BODY)
    await expect(transcript.locator(".msg-visitor", has_text=HANDOFF_REQUEST)).to_be_visible()
    await expect(transcript.locator(".msg-system", has_text="Ann joined the conversation.")).to_be_visible()
    await expect(agent.locator("#conversation-title")).to_have_text(VISITOR_NAME)
    profile = agent.locator("#customer-profile")
    await expect(profile.locator(".profile-name")).to_have_text(VISITOR_NAME)
    await expect(profile.locator("dd[data-field='email']")).to_have_text(VISITOR_EMAIL)
    await expect(agent.locator("#customer-history")).to_have_text("No previous contacts.")
    await expect(agent.locator(f".conversation-item[data-contact-id='{contact_id}']")).to_have_class(
        re.compile(r"\bselected\b")
    )

    # the visitor sees who joined
    await expect(visitor.locator("#hub-chat-status")).to_have_text("Chatting with Ann")
    await expect(visitor.locator(".hub-chat-system", has_text="Ann joined the conversation.")).to_be_visible()

    # ---- the conversation: agent -> visitor -> agent
    await expect(agent.locator("#reply-input")).to_be_enabled()
    await agent.locator("#reply-input").fill(AGENT_REPLY)
    await agent.locator("#reply-send").click()
    agent_msg = transcript.locator(".msg-agent", has_text=AGENT_REPLY)
    await expect(agent_msg).to_have_count(1)
    await expect(agent_msg).not_to_have_class(re.compile(r"msg-pending"))
    await expect(agent.locator("#reply-input")).to_have_value("")

    in_widget = visitor.locator(".hub-chat-agent", has_text=AGENT_REPLY)
    await expect(in_widget).to_have_count(1)
    await expect(in_widget).to_have_attribute("data-author", "Ann")

    await visitor_says(visitor, VISITOR_REPLY)
    await expect(transcript.locator(".msg-visitor", has_text=VISITOR_REPLY)).to_have_count(1)

    # ---- wrap-up
    await agent.locator("#wrapup-open").click()
    await expect(agent.locator("#wrapup-form")).to_be_visible()
    await expect(agent.locator("#disposition option[value='resolved']")).to_have_count(1)
    await agent.locator("#disposition").select_option("resolved")
    await agent.locator("#wrapup-note").fill(WRAPUP_NOTE)
    await agent.locator("#wrapup-submit").click()
    await expect(agent.locator("#toast")).to_have_text("Wrapped up")
    await expect(agent.locator("#wrapup-form")).to_be_hidden()
    await expect(agent.locator(f".conversation-item[data-contact-id='{contact_id}']")).to_have_count(0)
    await expect(transcript).to_have_text("Select a conversation or accept an offer.")

    await expect(visitor.locator("#hub-chat-status")).to_have_text("Conversation closed")
    await expect(
        visitor.locator(".hub-chat-system", has_text="The agent closed this conversation")
    ).to_be_visible()

    # ---- the customer's history (API) holds the closed contact with transcript and disposition
    pop = await api_get(agent, hub, f"/api/contacts/{contact_id}")
    assert pop["customer"] is not None, "the identified visitor's contact is not linked to a customer"
    customer_id = pop["customer"]["id"]
    assert pop["customer"]["email"] == VISITOR_EMAIL and pop["customer"]["name"] == VISITOR_NAME
    data = await api_get(agent, hub, f"/api/customers/{customer_id}")
    assert data["customer"]["email"] == VISITOR_EMAIL
    closed = [h for h in data["history"] if h["id"] == contact_id]
    assert len(closed) == 1, data["history"]
    closed_contact = closed[0]
    assert closed_contact["status"] == "closed"
    assert closed_contact["disposition"] == "resolved"
    assert closed_contact["note"] == WRAPUP_NOTE
    assert closed_contact["agent_name"] == "Ann" and closed_contact["closed_at"]
    said = [(m["author"], m["text"]) for m in closed_contact["messages"]]
    for expected in [
        ("visitor", FAQ_QUESTION),
        ("bot", ROUTER_BODY),
        ("visitor", HANDOFF_REQUEST),
        ("agent", AGENT_REPLY),
        ("visitor", VISITOR_REPLY),
    ]:
        assert expected in said, said
    seqs = [m["seq"] for m in closed_contact["messages"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert (
        said.index(("visitor", FAQ_QUESTION))
        < said.index(("bot", ROUTER_BODY))
        < said.index(("agent", AGENT_REPLY))
        < said.index(("visitor", VISITOR_REPLY))
    )

    # ---- the same customer comes back: the desk shows the closed contact in #customer-history
    await visitor_says(visitor, HANDOFF_REQUEST + " again")
    second_id = await visitor.evaluate("window.HubChat.state().contact_id")
    assert second_id and second_id != contact_id
    await expect(visitor.locator("#hub-chat-status")).to_have_text("Waiting for an agent…")
    second_offer = agent.locator(f".offer[data-contact-id='{second_id}']")
    await expect(second_offer.locator(".offer-name")).to_have_text(VISITOR_NAME)
    await second_offer.locator(".offer-accept").click()
    await expect(transcript.locator(".msg-visitor", has_text=HANDOFF_REQUEST + " again")).to_be_visible()
    await expect(transcript.locator(".msg-visitor", has_text=FAQ_QUESTION)).to_have_count(0)
    history_item = agent.locator(f"#customer-history .history-item[data-contact-id='{contact_id}']")
    await expect(history_item).to_be_visible()
    await expect(history_item.locator(".history-disposition")).to_have_text("Resolved")
    await expect(history_item.locator(".history-note")).to_have_text(WRAPUP_NOTE)
    await expect(history_item.locator(".history-meta")).to_have_text("by Ann · Closed")
    await history_item.locator(".history-transcript summary").click()
    await expect(history_item.locator(".history-msg-visitor", has_text=FAQ_QUESTION)).to_have_count(1)
    await expect(history_item.locator(".history-msg-bot", has_text="solid white")).to_have_text(
        re.compile(re.escape(ROUTER_BODY))
    )
    await expect(history_item.locator(".history-msg-agent", has_text=AGENT_REPLY)).to_have_count(1)
    await expect(history_item.locator(".history-msg-visitor", has_text=VISITOR_REPLY)).to_have_count(1)

    # ---- neither page logged an error
    assert console_errors(open_page) == {}
