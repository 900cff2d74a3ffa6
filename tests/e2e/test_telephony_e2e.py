"""The telephony page in a real browser: an admin sets the tenant's Twilio account (the token is
never shown again), adds a SIP trunk and an outbound route, asks which route a number takes, and
is refused deleting the trunk the route uses; an agent is refused the page."""

from __future__ import annotations

import secrets

import pytest
from playwright.async_api import expect

from tests.conftest import TenantFactory
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import HubProcess

pytestmark = [pytest.mark.e2e]


async def test_admin_adds_a_trunk_and_a_route(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"ada": [], "ann": ["general"]}, roles={"ada": ["admin"]})
    page = await open_page("admin")
    await logs_in(page, hub, t["slug"], "ada@t.test", "Ada")
    await page.goto(f"{hub.url}/telephony")
    await expect(page.locator("#tel-twilio-state")).to_have_text("Using the hub's Twilio account.")
    await expect(page.locator("#tel-numbers-empty")).to_be_visible()

    # the tenant's own Twilio account: only the last 4 characters of the token come back
    sid, token = "AC" + secrets.token_hex(16), secrets.token_hex(16)
    await page.locator("#tel-twilio-sid").fill(sid)
    await page.locator("#tel-twilio-token").fill(token)
    await page.locator("#tel-twilio-save").click()
    await expect(page.locator("#tel-twilio-status")).to_have_text("Saved")
    await expect(page.locator("#tel-twilio-state")).to_have_text(f"Own account {sid}, token …{token[-4:]}")
    await expect(page.locator("#tel-twilio-token")).to_have_value("")
    assert token not in await page.content()

    # a trunk: a bad host is explained, then a good one is listed without its password
    await page.locator("#tel-trunk-name").fill("Carrier A")
    await page.locator("#tel-trunk-host").fill("bad host!")
    await page.locator("#tel-trunk-add").click()
    await expect(page.locator("#tel-trunk-status")).to_contain_text("neither a hostname nor an IP address")
    await page.locator("#tel-trunk-host").fill("sip.carrier-a.example")
    await page.locator("#tel-trunk-transport").select_option("tls")
    await page.locator(".tel-codec[value='G722']").check()
    await page.locator("#tel-trunk-user").fill("acme")
    await page.locator("#tel-trunk-password").fill("trunk-secret-42")
    await page.locator("#tel-trunk-add").click()
    await expect(page.locator("#tel-trunk-status")).to_have_text("Trunk Carrier A added")
    row = page.locator("#tel-trunk-rows tr", has_text="Carrier A")
    await expect(row).to_contain_text("sip.carrier-a.example:5060")
    await expect(row).to_contain_text("TLS")
    await expect(row).to_contain_text("PCMU, PCMA, G722")
    await expect(row).to_contain_text("acme (password set)")
    assert "trunk-secret-42" not in await page.content()

    # a route through it, then the route test
    await page.locator("#tel-route-name").fill("Bay Area")
    await page.locator("#tel-route-pattern").fill("1415")
    await expect(page.locator("#tel-route-trunk")).to_have_value(await row.get_attribute("data-id") or "")
    await page.locator("#tel-route-strip").fill("1")
    await page.locator("#tel-route-prepend").fill("9")
    await page.locator("#tel-route-add").click()
    await expect(page.locator("#tel-route-status")).to_have_text("Route Bay Area added")
    route = page.locator("#tel-route-rows tr", has_text="Bay Area")
    await expect(route).to_contain_text("1415")
    await expect(route).to_contain_text("Carrier A")
    await page.locator("#tel-test-number").fill("+14155550100")
    await page.locator("#tel-test-go").click()
    await expect(page.locator("#tel-test-result")).to_have_text(
        "Route Bay Area via Carrier A, dialling 94155550100"
    )

    # the trunk in use cannot be deleted
    await row.get_by_role("button", name="Delete Carrier A").click()
    await expect(page.locator("#tel-trunks-status")).to_contain_text("route 'Bay Area' uses this trunk")
    await expect(page.locator("#tel-trunk-rows tr")).to_have_count(1)

    # an agent is refused the page
    agent = await open_page("agent")
    await logs_in(agent, hub, t["slug"], "ann@t.test", "Ann")
    refused = await agent.goto(f"{hub.url}/telephony")
    assert refused is not None and refused.status == 403
    await expect(agent.locator("#forbidden")).to_contain_text(
        "Telephony settings are for admins and technicians."
    )

    # only the refusals the test asked for reached the console (the browser logs 4xx answers)
    errors = console_errors(open_page)
    unexpected = [
        e
        for name in ("admin", "agent")
        for e in errors.pop(name, [])
        if not any(c in e for c in ("403", "409", "422"))
    ]
    assert errors == {} and unexpected == []
