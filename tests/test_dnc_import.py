"""The compliance pages' API: bulk import onto a do-not-contact list (a paste or a file, through
the campaign list readers) and the approvals review queue. Library code runs on the embedded
database; the endpoints run in a real hub process over HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hub.context import AppContext
from hub.ids import new_id
from knowledge.dnc import add_entry, opt_out
from knowledge.dnc_import import PASTED_NAME, import_numbers, pasted_bytes
from routing.lists import ListFormatError, ListImportError
from tests.support import HubProcess
from tests.test_compliance import STAFF, signed_in, wav_bytes
from tests.test_lists import xlsx_bytes


def test_a_paste_becomes_one_number_a_line() -> None:
    text = "+1 415 555 0100, (212) 555-1234;+13125550199\n\n\t 646-555-0142 \r\n"
    assert pasted_bytes(text).decode().splitlines() == [
        "+1 415 555 0100",
        "(212) 555-1234",
        "+13125550199",
        "646-555-0142",
    ]
    assert pasted_bytes("  \n ,; ") == b""


async def test_import_counts_every_row_once_and_keeps_opt_outs(ctx: AppContext) -> None:
    tenant = f"t-{new_id()}"
    await add_entry(ctx, tenant, "+12125551234", "black", reason="old", source="manual")
    await opt_out(ctx, tenant, "+14155550123", "sms_stop")
    rows = "\n".join(
        [
            "# a comment line is not a row",
            "(212) 555-1234",  # already black
            "415 555 0123",  # opted out already: refreshed, still an opt-out
            "+1 312 555 0199",
            "312-555-0199",  # the same number again
            "call me",
            "+1 555 555 0123",  # no such US number
            "+44 20 7946 0000",
            "+1 646 555 0142",  # over the cap of 6 data rows
        ]
    ).encode()
    report = await import_numbers(
        ctx, tenant, rows, "block.txt", "black", region="us", reason="complaints", cap=7, created_by="u1"
    )
    got = report.to_dict()
    assert got["format"] == "txt" and got["region"] == "US" and got["list"] == "black"
    assert got["total_rows"] == 8 and got["dropped_over_cap"] == 1
    assert got["added"] == 2 and got["already_listed"] == 2 and got["duplicates_in_file"] == 1
    assert got["invalid_count"] == 2
    assert [(i["line"], i["reason"]) for i in got["invalid"]] == [
        (6, "contains letters"),
        (7, "not a valid number"),
    ]
    assert (
        sum(got[k] for k in ("added", "already_listed", "duplicates_in_file", "invalid_count"))
        + got["dropped_over_cap"]
        == got["total_rows"]
    )
    entries = {d["number"]: d async for d in ctx.db.dnc_entries.find({"tenant_id": tenant})}
    assert set(entries) == {"+12125551234", "+14155550123", "+13125550199", "+442079460000"}
    assert entries["+13125550199"]["source"] == "import" and entries["+13125550199"]["reason"] == "complaints"
    assert entries["+12125551234"]["source"] == "import"  # a manual entry is refreshed by the import
    assert entries["+14155550123"]["source"] == "sms_stop"  # an opt-out stays one

    pasted = await import_numbers(
        ctx, tenant, pasted_bytes("+1 646 555 0142, 646 555 0142"), PASTED_NAME, "grey", region="US"
    )
    assert (pasted.added, pasted.duplicates_in_file, pasted.format) == (1, 1, "txt")
    mailed = await import_numbers(
        ctx,
        tenant,
        pasted_bytes("Eve@Example.test; eve@example.test; not@mail"),
        PASTED_NAME,
        "black",
        region="US",
    )
    assert (mailed.added, mailed.duplicates_in_file, len(mailed.invalid)) == (1, 1, 1)
    assert await ctx.db.dnc_entries.find_one({"tenant_id": tenant, "number": "eve@example.test"})
    with pytest.raises(ListFormatError, match="unsupported file type"):
        await import_numbers(ctx, tenant, b"%PDF", "list.pdf", "black", region="US")
    with pytest.raises(ListImportError, match="unknown region"):
        await import_numbers(ctx, tenant, b"+12125551234", "a.txt", "black", region="ZZ")


async def test_dnc_import_endpoint_roles_reports_and_tenants(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, **STAFF)
    other = await tenant_in(hub_nobot, **STAFF)
    sam, ann = await signed_in(hub_nobot, t, "sam"), await signed_in(hub_nobot, t, "ann")
    sam2 = await signed_in(hub_nobot, other, "sam")
    try:
        future = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
        pasted = await sam.http.post(
            "/api/dnc/import",
            data={
                "list": "red",
                "reason": "complained",
                "expires_at": future.isoformat(),
                "text": "(212) 555-1234, +1 415 555 0123\n212-555-1234\ncall me\n+15555550123",
            },
        )
        assert pasted.status_code == 200, pasted.text
        report = pasted.json()
        assert (report["added"], report["duplicates_in_file"], report["invalid_count"]) == (2, 1, 2)
        assert report["already_listed"] == 0 and report["list"] == "red" and report["total_rows"] == 5

        csv = b"phone,name\n+12125551234,Ann\n+13125550199,Bo\n,empty\n"
        uploaded = await sam.http.post(
            "/api/dnc/import",
            data={"list": "red"},
            files={"file": ("block.csv", csv, "text/csv")},
        )
        assert uploaded.status_code == 200, uploaded.text
        report = uploaded.json()
        assert report["format"] == "csv" and report["column"] == "phone"
        assert (report["added"], report["already_listed"], report["invalid_count"]) == (1, 1, 1)
        workbook = xlsx_bytes([["手机"], ["020 7946 0000"], ["020 7946 0001"]])
        sheet = await sam.http.post(
            "/api/dnc/import",
            data={"list": "grey", "region": "gb"},
            files={"file": ("uk.xlsx", workbook, "application/octet-stream")},
        )
        assert sheet.status_code == 200, sheet.text
        assert sheet.json()["added"] == 2 and sheet.json()["region"] == "GB"

        listed = (await sam.http.get("/api/dnc", params={"list": "red", "source": "import"})).json()
        assert listed["total"] == 3
        assert {e["created_by_name"] for e in listed["entries"]} == {"Sam"}
        first = next(e for e in listed["entries"] if e["number"] == "+14155550123")
        assert first["reason"] == "complained" and first["expires_at"].startswith(future.date().isoformat())

        # refused: bad fields, no list, a wrong file, an unknown region, the wrong role
        past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        for data, files, why in [
            ({"list": "red", "text": "+12125551234", "expires_at": past}, None, "in the past"),
            ({"list": "pink", "text": "+12125551234"}, None, "list"),
            ({"list": "red"}, None, "paste numbers"),
            ({"list": "red"}, {"file": ("a.pdf", b"%PDF-1.4", "application/pdf")}, "unsupported file type"),
            ({"list": "red", "text": "+12125551234", "region": "ZZ"}, None, "unknown region"),
        ]:
            refused = await sam.http.post("/api/dnc/import", data=data, files=files)
            assert refused.status_code == 422 and why in refused.text, (data, refused.text)
        denied = await ann.http.post("/api/dnc/import", data={"list": "red", "text": "+12125551234"})
        assert denied.status_code == 403
        # another tenant's import is its own
        theirs = await sam2.http.post("/api/dnc/import", data={"list": "black", "text": "+12125551234"})
        assert theirs.json()["added"] == 1 and theirs.json()["already_listed"] == 0
        assert (await sam2.http.get("/api/dnc")).json()["total"] == 1
        assert (await sam.http.get("/api/dnc")).json()["total"] == 5
    finally:
        for client in (sam, ann, sam2):
            await client.close()


async def test_review_queue_puts_pending_first_with_names(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot, **STAFF)
    other = await tenant_in(hub_nobot, **STAFF)
    sam, ada, ann = [await signed_in(hub_nobot, t, n) for n in ("sam", "ada", "ann")]
    ada2 = await signed_in(hub_nobot, other, "ada")
    try:
        first = await sam.http.post("/api/caller-ids", json={"number": "+16465550101", "label": "Sales"})
        second = await sam.http.post(
            "/api/caller-ids",
            data={"number": "+16465550102"},
            files=[("documents", ("invoice.pdf", b"%PDF-1.4 invoice", "application/pdf"))],
        )
        assert first.status_code == second.status_code == 201
        approved = await ada.http.post(f"/api/caller-ids/{first.json()['id']}/approve")
        assert approved.status_code == 200
        prompts = []
        for name in ("Offer", "Goodbye"):
            up = await sam.http.post(
                "/api/ivr/prompts",
                files={"file": (f"{name}.wav", wav_bytes(), "audio/wav")},
                data={"name": name},
            )
            assert up.status_code == 201, up.text
            prompts.append(up.json()["id"])
        no = await ada.http.post(f"/api/ivr/prompts/{prompts[0]}/reject", json={"reason": "no opt-out"})
        assert no.status_code == 200

        queue = (await sam.http.get("/api/approvals")).json()
        assert queue["can_review"] is False
        assert [(c["number"], c["status"]) for c in queue["caller_ids"]] == [
            ("+16465550102", "pending"),
            ("+16465550101", "approved"),
        ]
        pending, done = queue["caller_ids"]
        assert pending["submitted_by_name"] == "Sam" and pending["reviewed_by_name"] is None
        assert [d["name"] for d in pending["document_files"]] == ["invoice.pdf"]
        assert done["reviewed_by_name"] == "Ada" and done["document_files"] == []
        assert [(p["name"], p["approval"]["status"]) for p in queue["prompts"]] == [
            ("Goodbye", "pending"),
            ("Offer", "rejected"),
        ]
        assert queue["prompts"][0]["uploaded_by_name"] == "Sam"
        assert queue["prompts"][1]["approval"]["reviewed_by_name"] == "Ada"
        assert queue["prompts"][1]["approval"]["reason"] == "no opt-out"

        assert (await ada.http.get("/api/approvals")).json()["can_review"] is True
        assert (await ann.http.get("/api/approvals")).status_code == 403
        assert (await ada2.http.get("/api/approvals")).json() == {
            "caller_ids": [],
            "prompts": [],
            "can_review": True,
        }
    finally:
        for client in (sam, ada, ann, ada2):
            await client.close()
