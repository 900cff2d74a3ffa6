"""The knowledge-base editor in a real browser: an editor writes an FAQ entry with two phrasings,
previews the Markdown, submits it; a second editor publishes it (the author cannot); an edit of
the published entry becomes a draft while the live answer stays; the history shows the diff and
a rollback makes a new version with the old content. Then an admin imports a CSV (a bad row is
reported), attaches and downloads a file, and an agent reads the published entry read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.conftest import AGENT_PASSWORD, TenantFactory
from tests.e2e.conftest import OpenPage, console_errors
from tests.support import HubProcess

pytestmark = [pytest.mark.e2e]


async def opens_editor(page: Page, hub: HubProcess, slug: str, email: str, name: str) -> None:
    await page.goto(f"{hub.url}/login")
    await page.locator("#login-tenant").fill(slug)
    await page.locator("#login-email").fill(email)
    await page.locator("#login-password").fill(AGENT_PASSWORD)
    await page.locator("#login-submit").click()
    await expect(page).to_have_url(f"{hub.url}/agent")
    await page.locator("#kb-link").click()  # the desk links to the knowledge base
    await expect(page).to_have_url(f"{hub.url}/kb")
    await expect(page.locator("#user-name")).to_have_text(name)


def forget_desk_errors(open_page: OpenPage, name: str) -> None:
    """The agent desk refuses editor-only users its agent calls (403s in the console); only the
    knowledge-base page's errors count here."""
    open_page.logs[name].errors.clear()  # type: ignore[attr-defined]


async def test_write_review_publish_edit_diff_rollback(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t = await tenant_in(
        hub, agents={"ann": ["general"], "ben": ["general"]}, roles={"ann": ["editor"], "ben": ["editor"]}
    )

    # ---- Ann writes an FAQ entry with two phrasings and previews it
    ann = await open_page("ann")
    await opens_editor(ann, hub, t["slug"], "ann@t.test", "Ann")
    forget_desk_errors(open_page, "ann")
    await expect(ann.locator("#kb-list-empty")).to_be_visible()
    await ann.locator("#kb-new-faq").click()
    await ann.locator("#kb-title").fill("How do I reset my router?")
    await ann.locator(".kb-question").nth(0).fill("How do I reset my router?")
    await ann.locator("#kb-add-question").click()
    await ann.locator(".kb-question").nth(1).fill("My modem needs a restart")
    await ann.locator("#kb-category").fill("internet")
    await ann.locator("#kb-body").fill("Hold the **reset** button for ten seconds.\n\nWait for the lights.")
    await expect(ann.locator("#kb-preview strong")).to_have_text("reset")
    await expect(ann.locator(".kb-preview-question")).to_have_text(
        ["How do I reset my router?", "My modem needs a restart"]
    )
    await ann.locator("#kb-save").click()
    await expect(ann.locator("#kb-message")).to_have_text("Saved")
    await expect(ann.locator("#kb-state")).to_have_text("Draft · version 1")
    await expect(ann.locator("#kb-slug")).to_have_text("/how-do-i-reset-my-router")
    await expect(ann.locator(".kb-item")).to_have_count(1)

    # she submits it; she cannot publish her own
    await ann.locator("#kb-submit").click()
    await expect(ann.locator("#kb-state")).to_have_text("In review · version 1")
    await expect(ann.locator("#kb-publish")).to_be_hidden()
    await expect(ann.locator("#kb-hint")).to_have_text("Waiting for another editor to review and publish.")

    # ---- Ben reviews and publishes
    ben = await open_page("ben")
    await opens_editor(ben, hub, t["slug"], "ben@t.test", "Ben")
    forget_desk_errors(open_page, "ben")
    await ben.locator("#kb-filter-status").select_option("in_review")
    await expect(ben.locator(".kb-item")).to_have_count(1)
    await ben.locator(".kb-item").first.click()
    await expect(ben.locator("#kb-title")).to_have_value("How do I reset my router?")
    await expect(ben.locator(".kb-question")).to_have_count(2)
    await ben.locator("#kb-publish").click()
    await expect(ben.locator("#kb-state")).to_have_text("Published · version 1")
    await expect(ben.locator("#kb-message")).to_have_text("Published")

    # ---- Ben edits the published entry: a draft, the live answer stays
    await ben.locator("#kb-body").fill(
        "Hold the **reset** button for twenty seconds.\n\nWait for the lights."
    )
    await expect(ben.locator("#kb-message")).to_have_text("Not saved")
    await ben.locator("#kb-save").click()
    await expect(ben.locator("#kb-state")).to_have_text("Draft · version 2 (version 1 is live)")
    live = await (await ben.request.get(f"{hub.url}/api/kb/articles?status=published")).json()
    article = await (await ben.request.get(f"{hub.url}/api/kb/articles/{live[0]['id']}")).json()
    assert article["body"].startswith("Hold the **reset** button for ten seconds")

    # ---- the history shows who did what, and the diff between versions 1 and 2
    await ben.locator(".kb-tab[data-tab='history']").click()
    await expect(ben.locator(".kb-rev")).to_have_count(4)
    await expect(ben.locator(".kb-rev").first).to_contain_text("edited by Ben")
    await expect(ben.locator(".kb-rev").last).to_contain_text("created by Ann")
    await expect(ben.locator("#kb-diff-from")).to_have_value("1")
    await expect(ben.locator("#kb-diff-to")).to_have_value("2")
    await ben.locator("#kb-diff-show").click()
    await expect(ben.locator(".kb-diff-line.kb-del")).to_have_text(
        ["- Hold the **reset** button for ten seconds."]
    )
    await expect(ben.locator(".kb-diff-line.kb-add")).to_have_text(
        ["+ Hold the **reset** button for twenty seconds."]
    )

    # ---- rollback to version 1: a new version 3 with the old answer, still a draft
    await ben.locator(".kb-rev[data-version='1'] .kb-rev-rollback").first.click()
    await expect(ben.locator("#kb-message")).to_have_text("Rolled back to version 1 as a new version")
    await expect(ben.locator("#kb-state")).to_have_text("Draft · version 3 (version 1 is live)")
    await expect(ben.locator("#kb-body")).to_have_value(
        "Hold the **reset** button for ten seconds.\n\nWait for the lights."
    )
    await expect(ben.locator(".kb-rev").first).to_contain_text("rolled back")

    # ---- Ann sees the draft in her list after a reload and may publish Ben's version 3
    await ann.reload()
    await ann.locator(".kb-item").first.click()
    await expect(ann.locator("#kb-state")).to_have_text("Draft · version 3 (version 1 is live)")
    await ann.locator("#kb-submit").click()
    await expect(ann.locator("#kb-publish")).to_be_visible()  # Ben wrote version 3
    await ann.locator("#kb-publish").click()
    await expect(ann.locator("#kb-state")).to_have_text("Published · version 3")
    assert console_errors(open_page) == {}


async def test_import_attach_and_read_only_view(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage, tmp_path: Path
) -> None:
    hub = hub_nobot
    t = await tenant_in(
        hub,
        agents={"ann": ["general"], "amy": ["general"]},
        roles={"ann": ["editor", "admin"], "amy": ["agent"]},
    )
    sheet = tmp_path / "kb.csv"
    sheet.write_text(
        "slug,kind,title,body,questions,category,tags,locale\n"
        "pay-bill,faq,How do I pay?,Pay **online**,How do I pay?|Where to pay,billing,,en\n"
        "broken,faq,No phrasings,Answer,,billing,,en\n"
        "zh-pay,faq,如何缴费,在营业厅缴费,怎么交话费,billing,,zh\n"
    )
    ann = await open_page("ann")
    await opens_editor(ann, hub, t["slug"], "ann@t.test", "Ann")
    forget_desk_errors(open_page, "ann")
    await ann.locator(".kb-transfer summary").click()
    await ann.locator("#kb-import-file").set_input_files(str(sheet))
    await ann.locator("#kb-import-publish").check()  # an admin may publish on import
    await ann.locator("#kb-import-go").click()
    await expect(ann.locator(".kb-import-counts")).to_have_text(
        "2 created, 0 updated, 0 unchanged, 1 invalid, 2 published"
    )
    await expect(ann.locator(".kb-import-invalid")).to_contain_text("row 3: an FAQ entry needs")
    await expect(ann.locator(".kb-item")).to_have_count(2)
    await ann.locator("#kb-filter-locale").select_option("zh")
    await expect(ann.locator(".kb-item")).to_have_count(1)
    await expect(ann.locator(".kb-item-title")).to_have_text("如何缴费")
    await ann.locator("#kb-filter-locale").select_option("")

    # attach a file to the English FAQ
    await ann.locator(".kb-item", has_text="How do I pay?").click()
    await expect(ann.locator("#kb-state")).to_have_text("Published · version 1")
    guide = tmp_path / "guide.txt"
    guide.write_text("step 1")
    await ann.locator("#kb-attach-file").set_input_files(str(guide))
    await ann.locator("#kb-attach-upload").click()
    await expect(ann.locator(".kb-attachment a")).to_have_text("guide.txt")
    async with ann.expect_download() as download_info:
        await ann.locator(".kb-attachment a").click()
    download = await download_info.value
    assert download.suggested_filename == "guide.txt"

    # an agent reads the published entry rendered, with no editing controls
    amy = await open_page("amy")
    await opens_editor(amy, hub, t["slug"], "amy@t.test", "Amy")
    forget_desk_errors(open_page, "amy")
    await expect(amy.locator(".kb-item")).to_have_count(2)
    await expect(amy.locator("#kb-new-faq")).to_be_hidden()
    await amy.locator(".kb-item", has_text="How do I pay?").click()
    await expect(amy.locator("#kb-preview strong")).to_have_text("online")
    await expect(amy.locator("#kb-save")).to_be_hidden()
    await expect(amy.locator("#kb-publish")).to_be_hidden()
    await expect(amy.locator(".kb-tab[data-tab='history']")).to_be_hidden()
    assert await amy.locator("#kb-body").get_attribute("readonly") is not None
    assert console_errors(open_page) == {}
