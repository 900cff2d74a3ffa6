"""The public help center in a real browser: a customer searches, opens an article, votes that it
helped (once), switches to Chinese and finds a Chinese article; drafts never show. Then an
editor reads the usage statistics page (/kb/stats), which an agent may not open."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from knowledge import usage
from tests.conftest import TenantFactory, context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import HubProcess
from tests.test_kb_uses import seed

pytestmark = [pytest.mark.e2e]


async def test_search_open_and_vote(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t: dict[str, Any] = await tenant_in(hub)
    ctx = context_for(hub.env["MONGODB_URI"], hub.env["HUB_DB_NAME"])
    try:
        articles = await seed(ctx, t["tenant"]["_id"])
        page = await open_page("customer")
        await page.goto(f"{hub.url}/help/{t['slug']}?locale=en")
        await expect(page.locator(".hc-name")).to_have_text(t["tenant"]["name"])
        await expect(page.locator(".hc-category", has_text="Account")).to_be_visible()
        await expect(page.locator(".hc-result-title", has_text="New pricing")).to_have_count(0)

        # search, then open the best result
        await page.locator("#hc-q").fill("I forgot my password")
        await page.locator("#hc-q").press("Enter")
        await expect(page.locator("#hc-results .hc-result-title").first).to_have_text(
            "Resetting your password"
        )
        await expect(page.locator("#hc-no-good")).to_have_count(0)
        await page.locator("#hc-results .hc-result-title").first.click()
        await expect(page).to_have_url(f"{hub.url}/help/{t['slug']}/a/reset-password")
        await expect(page.locator(".hc-article-title")).to_have_text("Resetting your password")
        await expect(page.locator(".hc-body strong", has_text="Settings")).to_be_visible()
        await expect(page.locator(".hc-body")).to_contain_text("<script>alert('x')</script>")  # shown as text

        # "Was this helpful?" -> yes, counted once for this browser session
        await page.locator("#hc-vote-yes").click()
        await expect(page.locator("#hc-vote-done")).to_have_text("Thanks for your feedback!")
        await page.goto(f"{hub.url}/help/{t['slug']}/a/reset-password")
        await page.locator("#hc-vote-no").click()
        await expect(page.locator("#hc-vote-done")).to_contain_text("already")
        article = await ctx.db.kb_articles.find_one({"_id": articles["password"]["_id"]})
        assert article is not None
        assert article["counters"]["helpful"] == 1 and article["counters"].get("not_helpful", 0) == 0
        assert article["counters"]["views"] == 2

        # the Chinese help center
        await page.locator(".hc-locale", has_text="中文").click()
        await expect(page.locator(".hc-sub")).to_have_text("帮助中心")
        await page.locator("#hc-q").fill("怎么下载电子发票")
        await page.locator("#hc-q").press("Enter")
        await expect(page.locator("#hc-results .hc-result-title").first).to_have_text("如何下载电子发票")

        # a search with no good answer says so (and becomes a content gap)
        await page.locator("#hc-q").fill("比特币支付")
        await page.locator("#hc-q").press("Enter")
        await expect(page.locator("#hc-no-good")).to_be_visible()
        gaps = await ctx.db.kb_events.count_documents(
            {"tenant_id": t["tenant"]["_id"], "type": "search", "good": False, "channel": "help_center"}
        )
        assert gaps == 1
        assert console_errors(open_page) == {}
    finally:
        await ctx.db.close()


async def test_editor_reads_the_statistics(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t: dict[str, Any] = await tenant_in(hub, agents={"ed": [], "ann": ["general"]}, roles={"ed": ["editor"]})
    ctx = context_for(hub.env["MONGODB_URI"], hub.env["HUB_DB_NAME"])
    try:
        articles = await seed(ctx, t["tenant"]["_id"])
        router_id = articles["router"]["_id"]
        for kind in ("view", "view", "bot_use", "helpful", "not_helpful"):
            await usage.record(ctx, t["tenant"]["_id"], kind, router_id, "help_center")
        for _ in range(3):
            await usage.record_search(ctx, t["tenant"]["_id"], "Satellite dish install", [], "webchat")

        editor = await open_page("editor")
        await logs_in(editor, hub, t["slug"], "ed@t.test", "Ed")
        await editor.goto(f"{hub.url}/kb/stats")
        row = editor.locator(f'.kbs-article[data-id="{router_id}"]')
        await expect(row).to_contain_text("What the router lights mean")
        await expect(row.locator("td")).to_have_text(
            ["What the router lights mean", "en", "2", "1", "1", "1", "50 %"]
        )
        gap = editor.locator(".kbs-gap").first
        await expect(gap.locator("td").nth(0)).to_have_text("satellite dish install")
        await expect(gap.locator("td").nth(1)).to_have_text("3")
        await expect(editor.locator("#kbs-help-link")).to_have_attribute("href", f"/help/{t['slug']}")

        agent = await open_page("agent")
        await logs_in(agent, hub, t["slug"], "ann@t.test", "Ann")
        response = await agent.goto(f"{hub.url}/kb/stats")
        assert response is not None and response.status == 403
        errors = {
            name: [e for e in errs if "403" not in e] for name, errs in console_errors(open_page).items()
        }
        assert {name: errs for name, errs in errors.items() if errs} == {}
    finally:
        await ctx.db.close()
