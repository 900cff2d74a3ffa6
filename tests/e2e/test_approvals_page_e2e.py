"""The approvals page in a real browser: a supervisor follows the lists page's link, submits a
caller id with a document and uploads an audio prompt, and sees both pending; an admin finds
them first in the queue, plays the prompt, approves the number (a rejection needs a reason) and
rejects the prompt; the supervisor then sees the new statuses. An agent is refused the page.
"""

from __future__ import annotations

import pytest
from playwright.async_api import FilePayload, expect

from tests.conftest import TenantFactory
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import HubProcess
from tests.test_compliance import STAFF, signed_in, wav_bytes

pytestmark = [pytest.mark.e2e]


async def test_caller_id_and_prompt_reviewed_in_the_browser(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, **STAFF)
    # an older number, already approved: the new request must be listed before it
    ada_api = await signed_in(hub, t, "ada")
    try:
        old = await ada_api.http.post("/api/caller-ids", json={"number": "+16465550100", "label": "Main"})
        assert old.status_code == 201, old.text
        assert (await ada_api.http.post(f"/api/caller-ids/{old.json()['id']}/approve")).status_code == 200
    finally:
        await ada_api.close()

    # ---- the supervisor submits a number with its proof and uploads a prompt
    sam = await open_page("supervisor")
    await logs_in(sam, hub, t["slug"], "sam@t.test", "Sam")
    await sam.goto(f"{hub.url}/lists")
    await sam.locator(".topbar-link", has_text="Approvals").click()
    await expect(sam).to_have_url(f"{hub.url}/approvals")
    await expect(sam.locator("#ap-reviewer-note")).to_be_visible()
    await sam.locator("#ap-number").fill("(646) 555-0142")
    await sam.locator("#ap-label").fill("Renewals line")
    await sam.locator("#ap-documents").set_input_files(
        files=FilePayload(name="invoice.pdf", mimeType="application/pdf", buffer=b"%PDF-1.4 carrier invoice")
    )
    await sam.locator("#ap-submit-go").click()
    await expect(sam.locator("#ap-submit-status")).to_have_text("+16465550142 submitted: pending")
    rows = sam.locator("#ap-caller-rows tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("+16465550142")
    await expect(rows.nth(0).locator(".ap-status")).to_have_text("pending")
    await expect(rows.nth(0).locator(".ap-document")).to_have_text("invoice.pdf")
    await expect(rows.nth(1).locator(".ap-status")).to_have_text("approved")
    await expect(sam.locator(".ap-approve")).to_have_count(0)  # supervisors do not review

    await sam.locator("#ap-prompt-name").fill("Spring offer")
    await sam.locator("#ap-prompt-file").set_input_files(
        files=FilePayload(name="offer.wav", mimeType="audio/wav", buffer=wav_bytes(1.0))
    )
    await sam.locator("#ap-upload-go").click()
    await expect(sam.locator("#ap-upload-status")).to_have_text("Spring offer uploaded: waiting for approval")
    prompt_row = sam.locator("#ap-prompt-rows tr", has_text="Spring offer")
    await expect(prompt_row.locator(".ap-status")).to_have_text("pending")
    await expect(prompt_row).to_contain_text("1 s")

    # ---- the admin reviews: pending first, the prompt plays, a rejection needs a reason
    ada = await open_page("admin")
    await logs_in(ada, hub, t["slug"], "ada@t.test", "Ada")
    await ada.goto(f"{hub.url}/approvals")
    await expect(ada.locator("#ap-reviewer-note")).to_be_hidden()
    first = ada.locator("#ap-caller-rows tr").first
    await expect(first).to_contain_text("+16465550142")
    await expect(first).to_contain_text("Sam")
    await first.locator(".ap-approve").click()
    await expect(ada.locator("#ap-callers-status")).to_have_text("+16465550142 approved")
    approved = ada.locator("#ap-caller-rows tr", has_text="+16465550142")
    await expect(approved.locator(".ap-status")).to_have_text("approved")
    await expect(approved).to_contain_text("Ada")
    await expect(approved.locator(".ap-reject")).to_have_text("Revoke")

    prompt = ada.locator("#ap-prompt-rows tr", has_text="Spring offer")
    duration = await prompt.locator("audio").evaluate(
        """audio => new Promise((resolve, reject) => {
             audio.addEventListener("loadedmetadata", () => resolve(audio.duration), { once: true });
             audio.addEventListener("error", () => reject(new Error("audio did not load")), { once: true });
             audio.load();
           })"""
    )
    assert abs(duration - 1.0) < 0.05
    await prompt.locator(".ap-reject").click()
    await expect(ada.locator("#ap-prompts-status")).to_have_text("Say why Spring offer is rejected.")
    await prompt.locator(".ap-review-reason").fill("no opt-out message")
    await prompt.locator(".ap-reject").click()
    await expect(ada.locator("#ap-prompts-status")).to_have_text("Spring offer rejected")
    await expect(prompt.locator(".ap-status")).to_have_text("rejected")
    await expect(prompt.locator(".ap-reason")).to_have_text("no opt-out message")

    # ---- the supervisor sees the decisions
    await sam.reload()
    number_row = sam.locator("#ap-caller-rows tr", has_text="+16465550142")
    await expect(number_row.locator(".ap-status")).to_have_text("approved")
    prompt_row = sam.locator("#ap-prompt-rows tr", has_text="Spring offer")
    await expect(prompt_row).to_contain_text("no opt-out message")

    ann = await open_page("agent")
    await logs_in(ann, hub, t["slug"], "ann@t.test", "Ann")
    response = await ann.goto(f"{hub.url}/approvals")
    assert response is not None and response.status == 403

    errors = console_errors(open_page)
    agent_errors = [e for e in errors.pop("agent", []) if "403" not in e]
    assert errors == {} and agent_errors == []
