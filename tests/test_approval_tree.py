"""Caller ids and audio prompts reviewed across the tenant tree (routing/approvals.review_access).

An operator with service staff, two resellers below it and a customer below the first reseller:
the customer's own admin may no longer approve its caller id or prompt (403, saying who does);
the operator's service user sees them in its queue with the customer's name, downloads the
document, plays the prompt and approves; the sibling reseller sees nothing of it (404). A tenant
without a parent still reviews its own (tests/test_compliance.py covers that path).
"""

from __future__ import annotations

from typing import Any

from hub.embedded_db import EmbeddedDatabase
from routing.approvals import approved_caller_id, approved_prompt
from tests.conftest import context_for
from tests.support import Agent, HubProcess
from tests.test_ivr_api import upload, wav_bytes

ADMIN = {"agents": {"ada": []}, "roles": {"ada": ["admin"]}}


async def signed_in(hub: HubProcess, tenant: dict[str, Any], name: str) -> Agent:
    client = Agent(hub.url, tenant["slug"], f"{name}@t.test")
    await client.login()
    return client


async def test_the_operator_reviews_a_customer_below_a_reseller(
    hub_nobot: HubProcess, tenant_in, mongo: EmbeddedDatabase
) -> None:
    hub = hub_nobot
    op = await tenant_in(
        hub,
        level="operator",
        agents={"svc": [], "opa": [], "opsup": []},
        roles={"svc": ["service"], "opa": ["admin"], "opsup": ["supervisor"]},
    )
    r1 = await tenant_in(hub, level="reseller", parent=op["tenant"], **ADMIN)
    r2 = await tenant_in(hub, level="reseller", parent=op["tenant"], **ADMIN)
    cust = await tenant_in(
        hub,
        level="customer",
        parent=r1["tenant"],
        agents={"ada": [], "sam": []},
        roles={"ada": ["admin"], "sam": ["supervisor"]},
    )
    svc, opsup = await signed_in(hub, op, "svc"), await signed_in(hub, op, "opsup")
    r2_admin, r1_admin = await signed_in(hub, r2, "ada"), await signed_in(hub, r1, "ada")
    ada, sam = await signed_in(hub, cust, "ada"), await signed_in(hub, cust, "sam")
    db = context_for(mongo.uri, hub.env["HUB_DB_NAME"])
    cust_id = cust["tenant"]["_id"]
    try:
        proof = b"%PDF-1.4 business licence and phone bill"
        sent = await sam.http.post(
            "/api/caller-ids",
            data={"number": "+14155550142", "label": "Sales"},
            files=[("documents", ("licence.pdf", proof, "application/pdf"))],
        )
        assert sent.status_code == 201, sent.text
        caller = sent.json()
        cid, doc_id = caller["id"], caller["documents"][0]
        document = f"/api/caller-ids/{cid}/documents/{doc_id}"

        # the customer's own admin: sees it, may not decide
        refused = await ada.http.post(f"/api/caller-ids/{cid}/approve")
        assert refused.status_code == 403 and "provider" in refused.json()["detail"]
        own_queue = (await ada.http.get("/api/approvals")).json()
        assert own_queue["can_review"] is False
        assert [c["reviewable"] for c in own_queue["caller_ids"]] == [False]
        assert (await ada.http.get(document)).content == proof

        # the sibling reseller knows nothing of it
        assert (await r2_admin.http.post(f"/api/caller-ids/{cid}/approve")).status_code == 404
        assert (await r2_admin.http.get(document)).status_code == 404
        r2_queue = (await r2_admin.http.get("/api/approvals")).json()
        assert all(c["id"] != cid for c in r2_queue["caller_ids"])
        # a supervisor above may look, but only approvals.review decides
        assert (await opsup.http.post(f"/api/caller-ids/{cid}/approve")).status_code == 403

        # the operator's service user: queue with the tenant's name, the document, the decision
        queue = (await svc.http.get("/api/approvals")).json()
        assert queue["can_review"] is True
        mine = [c for c in queue["caller_ids"] if c["id"] == cid]
        assert mine and mine[0]["tenant_name"] == cust["tenant"]["name"] and mine[0]["reviewable"] is True
        assert mine[0]["submitted_by_name"] == "Sam" and mine[0]["document_files"][0]["name"] == "licence.pdf"
        downloaded = await svc.http.get(document)
        assert downloaded.status_code == 200 and downloaded.content == proof
        assert not await approved_caller_id(db, cust_id, "+14155550142")
        approved = await svc.http.post(f"/api/caller-ids/{cid}/approve", json={"reason": "licence checked"})
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        assert await approved_caller_id(db, cust_id, "+14155550142")
        # the reseller above the customer reviews too (any ancestor): it revokes
        revoked = await r1_admin.http.post(f"/api/caller-ids/{cid}/reject", json={"reason": "bill expired"})
        assert revoked.status_code == 200 and revoked.json()["status"] == "rejected"
        seen = (await ada.http.get("/api/approvals")).json()["caller_ids"][0]
        assert seen["reviewed_by_name"] == "Ada" and seen["reason"] == "bill expired"  # r1's Ada

        entry = await db.db.audit_log.find_one({"action": "caller_id.approve", "tenant_id": cust_id})
        assert entry is not None and entry["actor_tenant_id"] == op["tenant"]["_id"]
        assert entry["changes"]["status"] == {"from": "pending", "to": "approved"}

        # prompts: uploaded by the customer, played and approved above it
        uploaded = await upload(sam, wav_bytes(0.5), "offer.wav", name="Offer")
        assert uploaded.status_code == 201, uploaded.text
        pid = uploaded.json()["id"]
        refused = await ada.http.post(f"/api/ivr/prompts/{pid}/approve")
        assert refused.status_code == 403 and "provider" in refused.json()["detail"]
        assert (await r2_admin.http.post(f"/api/ivr/prompts/{pid}/approve")).status_code == 404
        assert (await r2_admin.http.get(f"/api/approvals/prompts/{pid}/audio")).status_code == 404
        listed = [p for p in (await svc.http.get("/api/approvals")).json()["prompts"] if p["id"] == pid]
        assert listed and listed[0]["tenant_name"] == cust["tenant"]["name"]
        played = await svc.http.get(listed[0]["audio_url"])
        assert played.status_code == 200 and played.content[:4] == b"RIFF"
        assert (await sam.http.get(listed[0]["audio_url"])).status_code == 200  # own tenant plays too
        ok = await svc.http.post(f"/api/ivr/prompts/{pid}/approve")
        assert ok.status_code == 200 and ok.json()["approval"]["status"] == "approved"
        assert await approved_prompt(db, cust_id, pid)
        assert await db.db.audit_log.find_one({"action": "prompt.approve", "tenant_id": cust_id}) is not None

        # the operator (no parent) still reviews its own
        own = await svc.http.post("/api/caller-ids", json={"number": "+14155550143"})
        assert own.status_code == 403  # service staff review, they do not submit
        opa = await signed_in(hub, op, "opa")
        try:
            mine_too = await opa.http.post("/api/caller-ids", json={"number": "+14155550143"})
            assert mine_too.status_code == 201
            assert (
                await svc.http.post(f"/api/caller-ids/{mine_too.json()['id']}/approve")
            ).status_code == 200
        finally:
            await opa.close()
    finally:
        for client in (svc, opsup, r2_admin, r1_admin, ada, sam):
            await client.close()
        await db.db.close()


async def test_service_staff_get_the_approvals_page(hub_nobot: HubProcess, tenant_in) -> None:
    """The page guard lets approvals.review holders in (they hold no supervisor role)."""
    op = await tenant_in(
        hub_nobot, level="operator", agents={"svc": [], "ann": []}, roles={"svc": ["service"]}
    )
    for name, expected in (("svc", 200), ("ann", 403)):
        client = Agent(hub_nobot.url, op["slug"], f"{name}@t.test")
        login = await client.http.post(  # the cookie session a browser gets
            "/api/auth/login",
            json={"tenant": op["slug"], "email": f"{name}@t.test", "password": client.password},
        )
        assert login.status_code == 200
        page = await client.http.get("/approvals")
        assert page.status_code == expected
        await client.close()
