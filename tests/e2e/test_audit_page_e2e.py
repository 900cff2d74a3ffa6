"""The audit log page and CSRF in a real browser: an admin signs in through the sign-in page
(its script is a file now, under the strict Content-Security-Policy), changes something through
HubDesk.api (which echoes the CSRF cookie), finds the change and the sign-in on /audit, filters
and pages; a fetch without the token is refused; no page logs a CSP violation or error."""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from tests.conftest import AGENT_PASSWORD, TenantFactory
from tests.e2e.conftest import OpenPage, console_errors
from tests.support import HubProcess

pytestmark = [pytest.mark.e2e]


async def logs_in(page: Page, hub: HubProcess, slug: str, email: str) -> None:
    await page.goto(f"{hub.url}/login")
    await page.locator("#login-tenant").fill(slug)
    await page.locator("#login-email").fill(email)
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    await page.locator("#login-submit").click()
    await expect(page).to_have_url(f"{hub.url}/agent")


async def test_admin_reads_the_audit_log_and_csrf_guards_cookie_requests(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"ada": [], "ann": []}, roles={"ada": ["admin"], "ann": ["agent"]})

    ada = await open_page("admin")
    await logs_in(ada, hub, t["slug"], "ada@t.test")
    await ada.goto(f"{hub.url}/audit")
    await expect(ada.locator("#user-name")).to_have_text("Ada")
    await expect(ada.locator("#au-rows tr[data-action='auth.login']")).to_have_count(1)

    # a change through the page's own API client: the CSRF header goes with it
    made = await ada.evaluate(
        "async () => (await HubDesk.api('POST', '/api/queues', {name: 'Audited queue'})).name"
    )
    assert made == "Audited queue"
    # the same request without the header, as another site's form could send it: refused
    status = await ada.evaluate(
        """async () => (await fetch('/api/queues', {method: 'POST', credentials: 'same-origin',
             headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name: 'x'})})).status"""
    )
    assert status == 403

    await ada.locator("#au-action").fill("http.")
    await ada.locator("#au-apply").click()
    rows = ada.locator("#au-rows tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator(".au-target")).to_have_text("POST /api/queues")
    await expect(rows.first.locator(".au-actor")).to_have_text("Ada")
    await expect(rows.first.locator(".au-changes")).to_contain_text("Audited queue")
    href = await ada.locator("#au-csv").get_attribute("href")
    assert href is not None and "action=http." in href and "format=csv" in href
    exported = await ada.request.get(f"{hub.url}{href}")
    assert exported.status == 200 and "Audited queue" in await exported.text()

    # sign out through the page (a POST with the token), then the page sends to the sign-in
    await ada.locator("#logout").click()
    await expect(ada).to_have_url(f"{hub.url}/login")

    # an agent is refused the page
    ann = await open_page("agent")
    await logs_in(ann, hub, t["slug"], "ann@t.test")
    response = await ann.goto(f"{hub.url}/audit")
    assert response is not None and response.status == 403

    # the two refusals above are the only errors: no CSP violation, no script error
    errors = [e for errs in console_errors(open_page).values() for e in errs]
    assert all("status of 403" in e for e in errors) and len(errors) == 2, errors
