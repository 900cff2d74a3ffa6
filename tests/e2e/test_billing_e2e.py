"""The billing page in a real browser: a reseller's finance clerk signs in, sees the reseller's
balance and its customer, tops the customer up through the form and sees the new balance and
the top-up in the customer's statement; an agent is refused the page."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.conftest import TenantFactory
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import Agent, HubProcess

pytestmark = [pytest.mark.e2e]


async def test_finance_sees_the_balance_and_tops_up_a_customer(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    op = await tenant_in(hub, level="operator", agents={"olga": []}, roles={"olga": ["admin"]})
    rs = await tenant_in(
        hub,
        level="reseller",
        parent=op["tenant"],
        agents={"fred": [], "ann": []},
        roles={"fred": ["finance"]},
    )
    cu = await tenant_in(hub, level="customer", parent=rs["tenant"], agents={"cara": []})
    cu_id = cu["tenant"]["_id"]
    olga = Agent(hub.url, op["slug"], "olga@t.test")
    try:
        await olga.login()
        funded = await olga.http.post(
            f"/api/billing/accounts/{rs['tenant']['_id']}/top-ups", json={"amount": "50", "note": "opening"}
        )
        assert funded.status_code == 201, funded.text
    finally:
        await olga.close()

    page = await open_page("finance")
    await logs_in(page, hub, rs["slug"], "fred@t.test", "Fred")
    desk_errors = len(console_errors(open_page).get("finance", []))
    await page.goto(f"{hub.url}/billing")
    await expect(page.locator("body[data-ready='1']")).to_have_count(1)
    await expect(page.locator("#bl-own-balance")).to_have_text("50.00 USD")
    row = page.locator(f"#bl-below tr[data-tenant='{cu_id}']")
    await expect(row).to_contain_text(cu["tenant"]["name"])
    await expect(row).to_contain_text("not billed")

    await page.locator("#bl-topup-tenant").select_option(cu_id)
    await page.locator("#bl-topup-amount").fill("12.50")
    await page.locator("#bl-topup-note").fill("first payment")
    await page.locator("#bl-topup-submit").click()
    await expect(page.locator("#bl-status")).to_contain_text("balance now 12.50")
    await expect(row).to_contain_text("12.50 USD")
    await expect(page.locator("#bl-statement-tenant")).to_have_value(cu_id)
    await expect(page.locator("#bl-topups")).to_contain_text("first payment")
    await expect(page.locator("#bl-closing")).to_have_text("12.50 USD")
    assert "/xlsx?" in (await page.locator("#bl-xlsx").get_attribute("href") or "")
    # the agent desk the sign-in lands on refuses a finance clerk's desk calls: not this page's
    logged = console_errors(open_page).get("finance", [])[desk_errors:]
    assert [e for e in logged if "pageerror" in e or "billing" in e or "/api/me" in e] == []

    agent = await open_page("agent")
    await logs_in(agent, hub, rs["slug"], "ann@t.test", "Ann")
    response = await agent.goto(f"{hub.url}/billing")
    assert response is not None and response.status == 403
