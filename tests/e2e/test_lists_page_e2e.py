"""The contact lists page in a real browser: a supervisor uploads a workbook, watches the
import finish, reads the report (invalid rows with their reasons), splits the targets
between two agents and reclaims one agent's share; an agent is refused the page.
"""

from __future__ import annotations

import pytest
from playwright.async_api import FilePayload, expect

from tests.conftest import TenantFactory, context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import HubProcess
from tests.test_lists import new_campaign, xlsx_bytes

pytestmark = [pytest.mark.e2e]


async def test_supervisor_imports_and_assigns_a_list(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage, mongo
) -> None:
    hub = hub_nobot
    t = await tenant_in(
        hub, agents={"sam": [], "ann": ["sales"], "ben": ["sales"]}, roles={"sam": ["supervisor"]}
    )
    hub_ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        _, campaign_id = await new_campaign(hub_ctx, t["tenant"]["_id"])
    finally:
        await hub_ctx.db.close()
    rows = [["手机", "姓名"]] + [[f"+1 415 555 {2000 + i}", f"c{i}"] for i in range(41)]
    rows += [["call me", "x"], ["(415) 555-2000", "again"]]

    sam = await open_page("supervisor")
    await logs_in(sam, hub, t["slug"], "sam@t.test", "Sam")
    await sam.goto(f"{hub.url}/lists?campaign={campaign_id}")
    await expect(sam.locator("#lists-campaign")).to_have_value(campaign_id)
    await sam.locator(".hl-file").set_input_files(
        files=FilePayload(
            name="leads.xlsx",
            mimeType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            buffer=xlsx_bytes(rows),
        )
    )
    await sam.locator(".hl-region").fill("us")
    await sam.locator(".hl-go").click()
    await expect(sam.locator(".hl-status")).to_have_text("leads.xlsx: 41 of 43 rows imported")
    figures = sam.locator(".hl-figures")
    await expect(figures).to_contain_text("Duplicates in the file1")
    await expect(figures).to_contain_text("Number column手机")
    await expect(sam.locator(".hl-invalid tbody tr")).to_have_text("43call mecontains letters")
    await expect(sam.locator(".hl-history tbody tr")).to_contain_text("leads.xlsx")
    await expect(sam.locator(".hl-counts-text")).to_contain_text("41 targets: 41 pending (41 unassigned)")

    # split between Ann and Ben, then take Ann's back
    await sam.locator(".hl-agent", has_text="Ann").locator("input").check()
    await sam.locator(".hl-agent", has_text="Ben").locator("input").check()
    await sam.locator(".hl-assign-go").click()
    await expect(sam.locator(".hl-assign .rt-status")).to_have_text("41 targets assigned")
    ann_row = sam.locator(".hl-owners tbody tr", has_text="Ann")
    await expect(ann_row).to_contain_text("2121")
    await expect(sam.locator(".hl-owners tbody tr", has_text="Ben")).to_contain_text("2020")
    await ann_row.locator(".hl-reclaim").click()
    await expect(sam.locator(".hl-assign .rt-status")).to_have_text("21 targets reclaimed")
    await expect(sam.locator(".hl-counts-text")).to_contain_text("(21 unassigned)")
    await expect(sam.locator(".hl-owners tbody tr", has_text="Ann")).to_have_count(0)

    # a bad file: the page says why
    await sam.locator(".hl-file").set_input_files(
        files=FilePayload(name="notes.pdf", mimeType="application/pdf", buffer=b"%PDF-1.4")
    )
    await sam.locator(".hl-go").click()
    await expect(sam.locator(".hl-status")).to_contain_text("unsupported file type")

    ann = await open_page("agent")
    await logs_in(ann, hub, t["slug"], "ann@t.test", "Ann")
    response = await ann.goto(f"{hub.url}/lists")
    assert response is not None and response.status == 403

    # the 422 and 403 responses are logged by Chromium; nothing else may be
    errors = console_errors(open_page)
    sam_errors = [e for e in errors.pop("supervisor", []) if "422" not in e]
    agent_errors = [e for e in errors.pop("agent", []) if "403" not in e]
    assert errors == {} and sam_errors == [] and agent_errors == []
