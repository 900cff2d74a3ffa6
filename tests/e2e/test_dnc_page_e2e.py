"""The do-not-contact page in a real browser: a supervisor follows the campaigns page's link,
adds a number, sees it (an expired entry greyed beside it), filters, removes it, imports a
small file and a paste with their reports, records an opt-out that only an admin could take
back; an agent is refused the page.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from playwright.async_api import FilePayload, expect

from hub.embedded_db import EmbeddedDatabase
from knowledge.dnc import add_entry
from tests.conftest import TenantFactory, context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import HubProcess

pytestmark = [pytest.mark.e2e]


async def test_supervisor_keeps_the_do_not_contact_lists(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage, mongo: EmbeddedDatabase
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"sam": [], "ann": ["sales"]}, roles={"sam": ["supervisor"]})
    hub_ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:  # an entry that ran out yesterday: kept for the record, shown greyed
        await add_entry(
            hub_ctx,
            t["tenant"]["_id"],
            "+13125550100",
            "grey",
            reason="old complaint",
            expires_at=datetime.now(UTC) - timedelta(days=1),
        )
    finally:
        await hub_ctx.db.close()

    sam = await open_page("supervisor")
    await logs_in(sam, hub, t["slug"], "sam@t.test", "Sam")
    await sam.goto(f"{hub.url}/campaigns")
    await sam.locator(".topbar-link", has_text="Do-not-contact").click()
    await expect(sam).to_have_url(f"{hub.url}/dnc")
    await expect(sam.locator("#user-name")).to_have_text("Sam")
    expired = sam.locator("#dn-rows tr", has_text="+13125550100")
    await expect(expired).to_have_class("dn-row dn-expired")
    await expect(expired.locator(".dn-expires")).to_contain_text("expired")

    # ---- add one number with a reason and an expiry
    expiry = date.today() + timedelta(days=30)
    await sam.locator("#dn-add-number").fill("(212) 555-1234")
    await sam.locator("#dn-add-list").select_option("red")
    await sam.locator("#dn-add-reason").fill("asked on the phone")
    await sam.locator("#dn-add-expires").fill(expiry.isoformat())
    await sam.locator("#dn-add-go").click()
    await expect(sam.locator("#dn-add-status")).to_have_text("+12125551234 is on the red list")
    added = sam.locator("#dn-rows tr", has_text="+12125551234")
    await expect(added).to_have_class("dn-row")
    for text in ("red", "asked on the phone", "added by hand", "Sam"):
        await expect(added).to_contain_text(text)
    await expect(added.locator(".dn-expires")).not_to_contain_text("never")
    await expect(sam.locator("#dn-count")).to_have_text("1\u20132 of 2")

    # ---- filter by list, then remove it (the second click confirms)
    await sam.locator("#dn-filter-list").select_option("red")
    await expect(sam.locator("#dn-rows tr")).to_have_count(1)
    await added.locator(".dn-remove").click()
    await expect(added.locator(".dn-remove")).to_have_text("Really remove?")
    await added.locator(".dn-remove").click()
    await expect(sam.locator("#dn-rows-status")).to_have_text("+12125551234 removed from the red list")
    await expect(sam.locator("#dn-rows tr")).to_have_count(0)
    await expect(sam.locator("#dn-empty")).to_be_visible()
    await sam.locator("#dn-reset").click()
    await expect(sam.locator("#dn-rows tr")).to_have_count(1)

    # ---- import a small file onto the black list: report with the bad row
    listing = b"+1 415 555 0101\n415-555-0102\n(415) 555-0101\nnot a number\n+1 415 555 0103\n"
    await sam.locator("#dn-file").set_input_files(
        files=FilePayload(name="block.txt", mimeType="text/plain", buffer=listing)
    )
    await sam.locator("#dn-import-list").select_option("black")
    await sam.locator("#dn-import-reason").fill("complaints 2026")
    await sam.locator("#dn-import-go").click()
    await expect(sam.locator("#dn-import-status")).to_have_text(
        "block.txt: 3 added, 0 already on the black list, 1 duplicates, 1 invalid"
    )
    await expect(sam.locator(".dn-invalid tbody tr")).to_have_text("4not a numbercontains letters")
    await expect(sam.locator("#dn-rows tr", has_text="import")).to_have_count(3)
    await expect(sam.locator("#dn-count")).to_have_text("1\u20134 of 4")

    # ---- a paste: one already there, one new
    await sam.locator("#dn-paste").fill("+1 415 555 0103, +1 415 555 0104")
    await sam.locator("#dn-import-go").click()
    await expect(sam.locator("#dn-import-status")).to_have_text(
        "the pasted numbers: 1 added, 1 already on the black list, 0 duplicates, 0 invalid"
    )
    await sam.locator("#dn-filter-source").select_option("import")
    await expect(sam.locator("#dn-rows tr")).to_have_count(4)
    await expect(sam.locator("#dn-rows tr", has_text="complaints 2026")).to_have_count(4)

    # ---- the customer opts out: black at once, and a supervisor cannot take it back
    await sam.locator("#dn-reset").click()
    await sam.locator("#dn-optout-number").fill("+1 646 555 0142")
    await sam.locator("#dn-optout-go").click()
    await expect(sam.locator("#dn-optout-status")).to_have_text(
        "+16465550142 opted out: black-listed, 0 pending calls skipped"
    )
    opted = sam.locator("#dn-rows tr", has_text="+16465550142")
    await expect(opted).to_contain_text("agent (opt-out)")
    await expect(opted.locator(".dn-remove")).to_be_disabled()

    # ---- a partial number is refused with the API's reason
    await sam.locator("#dn-filter-number").fill("555")
    await sam.locator("#dn-search").click()
    await expect(sam.locator("#dn-error")).to_contain_text("not a valid phone number")

    ann = await open_page("agent")
    await logs_in(ann, hub, t["slug"], "ann@t.test", "Ann")
    response = await ann.goto(f"{hub.url}/dnc")
    assert response is not None and response.status == 403

    # the 422 and 403 responses are logged by Chromium; nothing else may be
    errors = console_errors(open_page)
    sam_errors = [e for e in errors.pop("supervisor", []) if "422" not in e]
    agent_errors = [e for e in errors.pop("agent", []) if "403" not in e]
    assert errors == {} and sam_errors == [] and agent_errors == []
