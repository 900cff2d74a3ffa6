"""The recordings page in a real browser: an admin finds a call through the desk's link, plays
it in the <audio> player and seeks (range requests), changes the recording settings and deletes
a recording; an agent sees only her own call and no settings, and is told when the tenant
stops agents playing recordings.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from hub.embedded_db import EmbeddedDatabase
from tests.conftest import TenantFactory, context_for
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import HubProcess
from tests.test_recordings import add_recording

pytestmark = [pytest.mark.e2e]


async def test_admin_plays_seeks_configures_and_deletes_agent_sees_own(
    hub_nobot: HubProcess, mongo: EmbeddedDatabase, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t = await tenant_in(
        hub, agents={"adam": [], "ann": ["general"], "ben": ["general"]}, roles={"adam": ["admin"]}
    )
    slug = t["slug"]
    ann_id, ben_id = t["users"]["ann"]["_id"], t["users"]["ben"]["_id"]
    ctx = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    try:
        anns = await add_recording(ctx, t["tenant"]["_id"], [ann_id], seconds=3.0)
        bens = await add_recording(ctx, t["tenant"]["_id"], [ben_id], seconds=2.0)

        # ---- the admin: desk link, both recordings, playback with a seek
        adam = await open_page("admin")
        await logs_in(adam, hub, slug, "adam@t.test", "Adam")
        link = adam.locator("#recordings-link")
        await expect(link).to_be_visible()
        await link.click()
        await expect(adam).to_have_url(f"{hub.url}/recordings")
        rows = adam.locator("#recordings tr")
        await expect(rows).to_have_count(2)
        ann_row = adam.locator(f'#recordings tr[data-recording-id="{anns["_id"]}"]')
        await expect(ann_row.locator(".rec-duration")).to_have_text("0:03")
        await expect(ann_row.locator(".rec-channel")).to_have_text("Voice")
        await expect(ann_row.locator(".rec-contact")).to_have_text(anns["contact_id"])
        await expect(ann_row.locator(".rec-download")).to_have_attribute(
            "href", f"/api/recordings/{anns['_id']}/download"
        )
        await ann_row.locator(".rec-play").click()
        await expect(adam.locator("#rec-player")).to_be_visible()
        audio = adam.locator("#rec-audio")
        await expect(audio).to_have_attribute("src", f"/api/recordings/{anns['_id']}/audio")
        await adam.wait_for_function(
            "() => { const a = document.getElementById('rec-audio'); return a.readyState >= 1; }"
        )
        duration = await audio.evaluate("a => a.duration")
        assert abs(duration - 3.0) < 0.05
        seeked = await audio.evaluate(
            """a => new Promise((resolve) => {
                 a.addEventListener('seeked', () => resolve(a.currentTime), { once: true });
                 a.currentTime = 2.5;
               })"""
        )
        assert abs(seeked - 2.5) < 0.1
        assert await audio.evaluate("a => a.error") is None
        access: list[dict[str, Any]] = await ctx.db.recording_access.find(
            {"recording_id": anns["_id"], "user_id": t["users"]["adam"]["_id"]}
        ).to_list()
        assert access and all(row["action"] == "play" for row in access)

        # ---- filters
        await adam.locator("#f-contact").fill(bens["contact_id"])
        await adam.locator("#f-apply").click()
        await expect(rows).to_have_count(1)
        await adam.locator("#f-reset").click()
        await expect(rows).to_have_count(2)

        # ---- settings: a bad value is refused, a good one saved
        await expect(adam.locator("#settings-panel")).to_be_visible()
        await expect(adam.locator("#rs-retention")).to_have_value("90")
        await adam.locator("#rs-retention").fill("5000")
        await adam.locator("#rs-save").click()
        await expect(adam.locator("#rs-status")).to_contain_text("0 to 3650")
        await adam.locator("#rs-retention").fill("30")
        await adam.locator("#rs-disclosure").check()
        await adam.locator("#rs-save").click()
        await expect(adam.locator("#rs-status")).to_have_text("Saved.")
        tenant = await ctx.db.tenants.find_one({"_id": t["tenant"]["_id"]})
        assert tenant is not None
        assert tenant["recording"]["retention_days"] == 30 and tenant["recording"]["disclosure"] is True

        # ---- deleting ben's recording
        adam.once("dialog", lambda dialog: dialog.accept())
        await adam.locator(f'#recordings tr[data-recording-id="{bens["_id"]}"] .rec-delete').click()
        await expect(rows).to_have_count(1)
        gone = await ctx.db.recordings.find_one({"_id": bens["_id"]})
        assert gone is not None and gone["delete_reason"] == "manual"

        # ---- the agent: her own call only, no settings, no delete
        ann = await open_page("agent")
        await logs_in(ann, hub, slug, "ann@t.test", "Ann")
        await expect(ann.locator("#recordings-link")).to_be_visible()
        await expect(ann.locator("#wallboard-link")).to_be_hidden()
        await ann.goto(f"{hub.url}/recordings")
        await expect(ann.locator("#recordings tr")).to_have_count(1)
        await expect(ann.locator(f'#recordings tr[data-recording-id="{anns["_id"]}"]')).to_have_count(1)
        await expect(ann.locator(".rec-delete")).to_have_count(0)
        await expect(ann.locator("#settings-panel")).to_be_hidden()
        await expect(ann.locator("#f-agent-field")).to_be_hidden()

        # ---- the tenant stops agents playing recordings
        await ctx.db.tenants.update_one(
            {"_id": t["tenant"]["_id"]}, {"$set": {"recording.agents_play_own": False}}
        )
        await ann.reload()
        await expect(ann.locator("#rec-error")).to_contain_text("does not let agents play recordings")
        await expect(ann.locator("#recordings tr")).to_have_count(0)
        errors = console_errors(open_page)
        # the refused list is a 403 the page explains; nothing else may fail
        assert not errors.get("admin"), errors
        assert all("403" in line for line in errors.get("agent", [])), errors
    finally:
        await ctx.db.close()
