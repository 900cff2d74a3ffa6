"""Contact list import (.txt / .csv / .xlsx), its report, the CLI, and assignment over HTTP.

Library tests run `routing.lists.import_targets` against the embedded database (`ctx`);
the CLI runs `python -m hub.cli campaign import` in a subprocess against the `hub_nobot`
database; the HTTP tests upload through a real hub process and poll the import's progress.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from hub.context import AppContext
from hub.ids import new_id, utcnow
from routing.lists import (
    ListFormatError,
    ListImportError,
    import_targets,
    normalise_number,
)
from tests.conftest import context_for
from tests.support import ROOT, Agent, HubProcess

# the same US number written three ways, then two more good numbers
SAME = ["+1 415-555-0101", "(415) 555-0101", "415.555.0101"]
GOOD = ["+1 415 555 0102", "+1 (212) 555-0103"]
BAD = {"hello": "contains letters", "415555": "too short for US", "020 7946 0958": "too long for US"}


async def new_campaign(ctx: AppContext, tenant_id: str | None = None) -> tuple[str, str]:
    """A minimal campaign document (the campaign model itself is routing/campaigns.py's)."""
    tenant_id = tenant_id or new_id()
    campaign_id = new_id()
    await ctx.db.campaigns.insert_one(
        {
            "_id": campaign_id,
            "tenant_id": tenant_id,
            "name": "Spring offer",
            "type": "progressive",
            "state": "draft",
            "created_at": utcnow(),
        }
    )
    return tenant_id, campaign_id


def counted(report: dict[str, Any]) -> int:
    """Every row lands in exactly one count."""
    return (
        report["imported"]
        + report["invalid_count"]
        + report["duplicates"]["in_file"]
        + report["duplicates"]["already_in_campaign"]
        + report["dropped_over_cap"]
    )


def xlsx_bytes(rows: list[list[Any]], title: str = "Sheet1", before: list[str] | None = None) -> bytes:
    """A workbook written by openpyxl; `before` adds empty sheets in front of the list."""
    book = Workbook()
    first = book.active
    assert first is not None
    for i, name in enumerate(before or []):
        sheet = first if i == 0 else book.create_sheet(name)
        sheet.title = name
        sheet.append(["note", "written on"])
    sheet = book.create_sheet(title) if before else first
    sheet.title = title
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def with_entities(workbook: bytes) -> bytes:
    """The workbook with an XML entity expansion in its sheet (a 'billion laughs' in small)."""
    source = zipfile.ZipFile(io.BytesIO(workbook))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode().replace(
                    "<worksheet",
                    '<!DOCTYPE worksheet [<!ENTITY a "1234567890"><!ENTITY b "&a;&a;&a;&a;&a;">]><worksheet',
                    1,
                )
                data = text.replace("+14155550101", "&b;").encode()
            target.writestr(item, data)
    return out.getvalue()


async def targets_of(ctx: AppContext, campaign_id: str) -> list[dict[str, Any]]:
    return await ctx.db.campaign_targets.find({"campaign_id": campaign_id}).sort("line", 1).to_list(None)


# ---------------------------------------------------------------------------- numbers


def test_numbers_are_normalised_to_e164_with_reasons_for_bad_ones() -> None:
    assert {normalise_number(v, "US")[0] for v in SAME} == {"+14155550101"}
    assert normalise_number(14155550101.0, "US") == ("+14155550101", "US")  # an Excel number cell
    assert normalise_number("+86 138 0013 8000", "US") == ("+8613800138000", "CN")
    assert normalise_number("13800138000", "CN") == ("+8613800138000", "CN")
    assert normalise_number("020 7946 0958", "GB") == ("+442079460958", "GB")
    for value, reason in BAD.items():
        with pytest.raises(ValueError, match=reason):
            normalise_number(value, "US")
    with pytest.raises(ValueError, match="unknown country code"):
        normalise_number("+999 1234 5678", "US")


# ---------------------------------------------------------------------------- formats


async def test_txt_skips_comments_and_reports_bad_rows_and_duplicates(ctx: AppContext) -> None:
    tenant_id, campaign_id = await new_campaign(ctx)
    text = "# spring list\n" + "\n".join([SAME[0], "", *BAD, SAME[1], *GOOD, SAME[2]]) + "\n"
    seen: list[tuple[int, int]] = []
    report = await import_targets(
        ctx,
        tenant_id,
        campaign_id,
        text.encode(),
        "spring.txt",
        default_region="US",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert report["format"] == "txt" and report["total_rows"] == 8 == counted(report)
    assert report["imported"] == 3
    assert report["duplicates"] == {"in_file": 2, "already_in_campaign": 0}
    assert report["invalid_count"] == 3 and report["dropped_over_cap"] == 0
    # lines count the comment and the blank line: bad rows are where an editor shows them
    assert report["invalid"] == [
        {"line": 4, "value": "hello", "reason": "contains letters"},
        {"line": 5, "value": "415555", "reason": "too short for US"},
        {"line": 6, "value": "020 7946 0958", "reason": "too long for US"},
    ]
    assert seen[0] == (0, 8) and seen[-1] == (8, 8)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    targets = await targets_of(ctx, campaign_id)
    assert [t["number"] for t in targets] == ["+14155550101", "+14155550102", "+12125550103"]
    first = targets[0]
    assert first["tenant_id"] == tenant_id and first["status"] == "pending" and first["attempts"] == 0
    assert first["region"] == "US" and first["import_id"] == report["import_id"]
    assert first["assigned_agent_id"] is None and first["group"] is None and first["line"] == 2


async def test_csv_with_chinese_headers_in_gb18030(ctx: AppContext) -> None:
    """A CSV saved by a Chinese Excel: GB18030 text, 手机 / 姓名 headers, national numbers."""
    tenant_id, campaign_id = await new_campaign(ctx)
    rows = [
        "姓名,手机,城市",
        "张三,13800138000,北京",
        "李四,+86 139-0013-9000,上海",
        "王五,138 0013 8000,广州",  # the same as 张三's
        "赵六,12345,深圳",
        ",,",
        "钱七,abc,杭州",
    ]
    data = ("\r\n".join(rows) + "\r\n").encode("gb18030")
    report = await import_targets(ctx, tenant_id, campaign_id, data, "客户.csv", default_region="CN")
    assert report["column"] == "手机" and report["total_rows"] == 5 == counted(report)
    assert report["imported"] == 2 and report["duplicates"]["in_file"] == 1
    assert [(r["line"], r["reason"]) for r in report["invalid"]] == [
        (5, "too short (no area code) for CN"),
        (7, "contains letters"),
    ]
    targets = await targets_of(ctx, campaign_id)
    assert [(t["number"], t["name"], t["fields"]) for t in targets] == [
        ("+8613800138000", "张三", {"城市": "北京"}),
        ("+8613900139000", "李四", {"城市": "上海"}),
    ]


async def test_csv_number_column_by_option_semicolons_and_bom(ctx: AppContext) -> None:
    tenant_id, campaign_id = await new_campaign(ctx)
    text = "\ufeffName;Home;Office\nAnn;+1 415 555 0111;+1 415 555 0211\nBob;;+1 415 555 0212\n"
    report = await import_targets(ctx, tenant_id, campaign_id, text.encode(), "x.csv", column="office")
    assert report["column"] == "Office" and report["imported"] == 2
    targets = await targets_of(ctx, campaign_id)
    assert [(t["number"], t["name"], t["fields"]) for t in targets] == [
        ("+14155550211", "Ann", {"Home": "+1 415 555 0111"}),
        ("+14155550212", "Bob", {}),
    ]
    with pytest.raises(ListFormatError, match="no column 'mobile'"):
        await import_targets(ctx, tenant_id, campaign_id, text.encode(), "x.csv", column="mobile")


async def test_xlsx_on_a_named_sheet_with_number_cells(ctx: AppContext, tmp_path: Path) -> None:
    tenant_id, campaign_id = await new_campaign(ctx)
    rows: list[list[Any]] = [
        ["Mobile Phone", "Name", "Plan"],
        [14155550101, "Ann", "gold"],  # a number cell
        ["(415) 555-0101", "Ann again", None],
        [None, None, None],  # an empty row is no row
        ["+1 212 555 0103", "Cy", 3],
        ["call me", "Di", None],
        ["+44 20 7946 0958", "Ed", None],  # valid abroad: kept with its own region
        ["555-0100", "Fay", None],
    ]
    path = tmp_path / "list.xlsx"
    path.write_bytes(xlsx_bytes(rows, title="Leads", before=["Notes"]))
    report = await import_targets(
        ctx, tenant_id, campaign_id, path, path.name, default_region="US", sheet="Leads"
    )
    assert report["format"] == "xlsx" and report["column"] == "Mobile Phone"
    assert report["total_rows"] == 6 == counted(report) and report["imported"] == 3
    assert report["duplicates"]["in_file"] == 1
    assert report["invalid"] == [
        {"line": 6, "value": "call me", "reason": "contains letters"},
        {"line": 8, "value": "555-0100", "reason": "too short (no area code) for US"},
    ]
    targets = await targets_of(ctx, campaign_id)
    assert [(t["number"], t["region"], t["name"], t["fields"]) for t in targets] == [
        ("+14155550101", "US", "Ann", {"Plan": "gold"}),
        ("+12125550103", "US", "Cy", {"Plan": 3}),
        ("+442079460958", "GB", "Ed", {}),
    ]
    # the first sheet has no number column
    with pytest.raises(ListFormatError, match="no number column"):
        await import_targets(ctx, tenant_id, campaign_id, path, path.name)
    with pytest.raises(ListFormatError, match="no sheet 'Other'"):
        await import_targets(ctx, tenant_id, campaign_id, path, path.name, sheet="Other")


async def test_cap_drops_and_counts_rows_and_existing_targets_do_not_use_it(ctx: AppContext) -> None:
    tenant_id, campaign_id = await new_campaign(ctx)
    numbers = [f"+1 415 555 {100 + i:04d}" for i in range(8)]
    data = "\n".join(["nonsense", *numbers, numbers[0]]).encode()
    report = await import_targets(ctx, tenant_id, campaign_id, data, "a.txt", cap=5)
    assert report["cap"] == 5 and report["imported"] == 5 and report["dropped_over_cap"] == 3
    assert report["invalid_count"] == 1 and report["duplicates"]["in_file"] == 1
    assert counted(report) == report["total_rows"] == 10
    assert len(await targets_of(ctx, campaign_id)) == 5
    # again: the first five are already in the campaign, the other three now fit the cap
    again = await import_targets(ctx, tenant_id, campaign_id, data, "a.txt", cap=5)
    assert again["imported"] == 3 and again["duplicates"]["already_in_campaign"] == 5
    assert again["dropped_over_cap"] == 0 and counted(again) == 10
    assert len(await targets_of(ctx, campaign_id)) == 8


async def test_tenant_setting_caps_and_sets_the_region(ctx: AppContext) -> None:
    tenant_id, campaign_id = await new_campaign(ctx)
    await ctx.db.tenants.insert_one(
        {"_id": tenant_id, "slug": f"t-{tenant_id[:12]}", "name": "T", "outbound": {"max_list_rows": 2}}
    )
    await ctx.db.tenants.update_one({"_id": tenant_id}, {"$set": {"outbound.default_region": "CN"}})
    data = "\n".join(["13800138000", "13900139000", "13700137000"]).encode()
    report = await import_targets(ctx, tenant_id, campaign_id, data, "cn.txt")
    assert report["region"] == "CN" and report["cap"] == 2
    assert report["imported"] == 2 and report["dropped_over_cap"] == 1


async def test_unreadable_files_and_bad_requests(ctx: AppContext, tmp_path: Path) -> None:
    tenant_id, campaign_id = await new_campaign(ctx)
    with pytest.raises(ListFormatError, match=r"not a readable \.xlsx"):
        await import_targets(ctx, tenant_id, campaign_id, b"this is no zip", "x.xlsx")
    bomb = with_entities(xlsx_bytes([["phone"], ["+14155550101"]]))
    with pytest.raises(ListFormatError, match=r"not a readable \.xlsx"):  # defusedxml refuses entities
        await import_targets(ctx, tenant_id, campaign_id, bomb, "bomb.xlsx")
    with pytest.raises(ListFormatError, match=r"\.xls workbooks are not supported"):
        await import_targets(ctx, tenant_id, campaign_id, b"\xd0\xcf\x11\xe0", "old.xls")
    with pytest.raises(ListFormatError, match="unsupported file type"):
        await import_targets(ctx, tenant_id, campaign_id, b"%PDF", "list.pdf")
    with pytest.raises(ListFormatError, match="no number column"):
        await import_targets(ctx, tenant_id, campaign_id, b"a,b\n1,2\n", "x.csv")
    with pytest.raises(ListFormatError, match="cannot read"):
        await import_targets(ctx, tenant_id, campaign_id, tmp_path / "missing.txt", "missing.txt")
    with pytest.raises(ListFormatError, match="neither UTF-8 nor GB18030"):
        await import_targets(ctx, tenant_id, campaign_id, b"\x80\x80\xff\xff\n", "x.txt")
    with pytest.raises(ListImportError, match="unknown region"):
        await import_targets(ctx, tenant_id, campaign_id, b"4155550101", "x.txt", default_region="XX")
    with pytest.raises(ListImportError, match="no campaign"):
        await import_targets(ctx, new_id(), campaign_id, b"4155550101", "x.txt")  # another tenant's
    assert await targets_of(ctx, campaign_id) == []


async def test_a_large_workbook_streams_with_progress(ctx: AppContext, tmp_path: Path) -> None:
    """20,000 rows: a progress callback per batch, and the import takes seconds, not minutes."""
    tenant_id, campaign_id = await new_campaign(ctx)
    rows: list[list[Any]] = [["phone", "name"]]
    rows += [[f"+1 415 {200 + i // 10000:03d} {i % 10000:04d}", f"n{i}"] for i in range(20_000)]
    path = tmp_path / "big.xlsx"
    path.write_bytes(xlsx_bytes(rows))
    calls: list[tuple[int, int]] = []
    started = time.monotonic()
    report = await import_targets(
        ctx, tenant_id, campaign_id, path, path.name, progress=lambda d, t: calls.append((d, t))
    )
    elapsed = time.monotonic() - started
    assert report["imported"] + report["invalid_count"] == 20_000, report["invalid"][:3]
    assert len(calls) >= 20_000 // 500 and calls[-1] == (20_000, 20_000)
    assert all(total == 20_000 for _, total in calls)
    assert elapsed < 60, elapsed


# numbers drawn from a small pool so that duplicates are common, written in several ways
POOL = [f"415555{i:04d}" for i in range(100, 112)]
written = st.builds(
    lambda digits, style: {
        "e164": f"+1{digits}",
        "dashes": f"+1 {digits[:3]}-{digits[3:6]}-{digits[6:]}",
        "national": f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
    }[style],
    st.sampled_from(POOL),
    st.sampled_from(["e164", "dashes", "national"]),
)
JUNK = ["hello", "12", "020 7946 0958", "+999 1", "415-555"]
junk = st.sampled_from(JUNK)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.one_of(written, written, junk), max_size=40),
    existing=st.lists(st.sampled_from(POOL), max_size=4, unique=True),
    cap=st.integers(0, 12),
)
async def test_import_counts_add_up_and_no_number_is_stored_twice(
    ctx: AppContext, lines: list[str], existing: list[str], cap: int
) -> None:
    tenant_id, campaign_id = await new_campaign(ctx)
    if existing:
        await import_targets(ctx, tenant_id, campaign_id, "\n".join(existing).encode(), "pre.txt")
    report = await import_targets(ctx, tenant_id, campaign_id, "\n".join(lines).encode(), "l.txt", cap=cap)
    assert report["total_rows"] == len(lines) == counted(report)
    stored = [t["number"] for t in await targets_of(ctx, campaign_id)]
    assert len(stored) == len(set(stored)) == len(existing) + report["imported"]
    assert report["imported"] <= cap
    unique_new = {normalise_number(x, "US")[0] for x in lines if x not in JUNK} - {f"+1{d}" for d in existing}
    assert report["imported"] == min(cap, len(unique_new))


# ---------------------------------------------------------------------------- CLI


def run_cli(hub_process: HubProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "campaign", "import", *args],
        cwd=ROOT,
        env=hub_process.env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_cli_imports_with_a_report_and_exit_codes(
    hub_nobot: HubProcess, tenant_in, mongo, tmp_path: Path
) -> None:
    t = await tenant_in(hub_nobot)
    hub_ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    try:
        _, campaign_id = await new_campaign(hub_ctx, t["tenant"]["_id"])
        csv_path = tmp_path / "list.csv"
        csv_path.write_text(
            "phone,name\n+1 415 555 0101,Ann\n(415) 555-0101,Ann\nnope,Bo\n+1 212 555 0103,Cy\n"
        )
        base = ["--tenant", t["slug"], "--campaign", campaign_id]
        done = await asyncio.to_thread(run_cli, hub_nobot, str(csv_path), *base, "--json")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["imported"] == 2 and report["invalid_count"] == 1
        assert report["duplicates"]["in_file"] == 1 and report["invalid"][0]["line"] == 4
        numbers = {d["number"] async for d in hub_ctx.db.campaign_targets.find({"campaign_id": campaign_id})}
        assert numbers == {"+14155550101", "+12125550103"}
        job = await hub_ctx.db.list_imports.find_one({"_id": report["import_id"]})
        assert job is not None and job["status"] == "done" and job["source"] == "cli"
        # the human-readable report, the cap, and the same rows again
        table = await asyncio.to_thread(run_cli, hub_nobot, str(csv_path), *base, "--cap", "1")
        assert table.returncode == 0, table.stderr
        assert "already in the campaign" in table.stdout and "nope" in table.stdout
        bad = tmp_path / "broken.xlsx"
        bad.write_bytes(b"not a workbook")
        unreadable = await asyncio.to_thread(run_cli, hub_nobot, str(bad), *base)
        assert unreadable.returncode == 2 and "not a readable .xlsx" in unreadable.stderr
        missing = await asyncio.to_thread(run_cli, hub_nobot, str(tmp_path / "none.txt"), *base)
        assert missing.returncode == 2
        unknown = await asyncio.to_thread(
            run_cli, hub_nobot, str(csv_path), "--tenant", t["slug"], "--campaign", "nope"
        )
        assert unknown.returncode == 1 and "no campaign" in unknown.stderr
    finally:
        await hub_ctx.db.close()


# ---------------------------------------------------------------------------- HTTP


async def wait_import(user: Agent, campaign_id: str, import_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll the progress endpoint until the import ends; every answer is checked on the way."""
    deadline = time.monotonic() + timeout
    done_so_far = 0
    while time.monotonic() < deadline:
        response = await user.http.get(f"/api/campaigns/{campaign_id}/imports/{import_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        assert job["status"] in ("queued", "running", "done", "failed")
        assert done_so_far <= job["done"] <= max(job["total"], job["done"])  # never goes back
        done_so_far = job["done"]
        if job["status"] in ("done", "failed"):
            return job
        await asyncio.sleep(0.1)
    raise TimeoutError(f"import {import_id} did not finish")


async def upload(user: Agent, campaign_id: str, name: str, data: bytes, **form: str) -> httpx.Response:
    return await user.http.post(
        f"/api/campaigns/{campaign_id}/imports", files={"file": (name, data)}, data=form
    )


async def test_http_import_with_progress_then_assign_and_reclaim(
    hub_nobot: HubProcess, tenant_in, mongo
) -> None:
    t = await tenant_in(
        hub_nobot,
        agents={"sam": [], "ann": ["sales"], "ben": ["sales"], "cat": []},
        roles={"sam": ["supervisor"]},
    )
    other = await tenant_in(hub_nobot, agents={"sue": [], "oz": []}, roles={"sue": ["supervisor"]})
    hub_ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    sam, ann, sue = (
        Agent(hub_nobot.url, x["slug"], f"{n}@t.test") for x, n in ((t, "sam"), (t, "ann"), (other, "sue"))
    )
    try:
        for user in (sam, ann, sue):
            await user.login()
        _, campaign_id = await new_campaign(hub_ctx, t["tenant"]["_id"])
        ids = {name: user["_id"] for name, user in t["users"].items()}
        rows = [["电话", "姓名"]] + [[f"+1 415 555 {1000 + i}", f"c{i}"] for i in range(1200)]
        rows += [["(415) 555-1000", "dup"], ["bad number", "x"]]
        started = await upload(sam, campaign_id, "leads.xlsx", xlsx_bytes(rows), region="US", cap="1000")
        assert started.status_code == 202, started.text
        job = await wait_import(sam, campaign_id, started.json()["import_id"])
        assert job["status"] == "done", job
        report = job["report"]
        assert job["done"] == job["total"] == report["total_rows"] == 1202
        assert report["imported"] == 1000 and report["dropped_over_cap"] == 200
        assert report["duplicates"]["in_file"] == 1 and report["invalid_count"] == 1
        listed = (await sam.http.get(f"/api/campaigns/{campaign_id}/imports")).json()
        assert [j["import_id"] for j in listed] == [job["import_id"]]

        # a supervisor may not raise the tenant's cap; a bad file fails with the reason
        await hub_ctx.db.tenants.update_one(
            {"_id": t["tenant"]["_id"]}, {"$set": {"outbound.max_list_rows": 3}}
        )
        small = await upload(sam, campaign_id, "more.txt", b"+1 212 555 0001\n+1 212 555 0002\n", cap="9")
        assert (await wait_import(sam, campaign_id, small.json()["import_id"]))["report"]["cap"] == 3
        broken = await upload(sam, campaign_id, "broken.xlsx", b"PK not really")
        failed = await wait_import(sam, campaign_id, broken.json()["import_id"])
        assert failed["status"] == "failed" and "not a readable .xlsx" in failed["error"]
        bad = await upload(sam, campaign_id, "list.pdf", b"%PDF")
        assert bad.status_code == 422 and "unsupported file type" in bad.json()["detail"]
        assert (await upload(sam, campaign_id, "x.txt", b"1", region="ZZ")).status_code == 422

        # assignment: 1002 pending targets split over three agents in list order
        assign = await sam.http.post(
            f"/api/campaigns/{campaign_id}/targets/assign",
            json={"agent_ids": [ids["ann"], ids["ben"], ids["cat"]]},
        )
        assert assign.status_code == 200, assign.text
        assert assign.json()["agents"] == {ids["ann"]: 334, ids["ben"]: 334, ids["cat"]: 334}
        page = (
            await sam.http.get(
                f"/api/campaigns/{campaign_id}/targets", params={"agent_id": ids["ann"], "limit": 2}
            )
        ).json()
        assert page["total"] == 334 and [x["number"] for x in page["items"]] == [
            "+14155551000",
            "+14155551001",
        ]
        summary = (await sam.http.get(f"/api/campaigns/{campaign_id}/targets/summary")).json()
        assert summary["total"] == 1002 and summary["pending_unassigned"] == 0
        assert {a["name"]: a["pending"] for a in summary["agents"]} == {"Ann": 334, "Ben": 334, "Cat": 334}
        # an agent sees their own targets only
        own = await ann.http.get(f"/api/campaigns/{campaign_id}/targets", params={"limit": 500})
        assert own.status_code == 200 and own.json()["total"] == 334
        assert {x["assigned_agent_id"] for x in own.json()["items"]} == {ids["ann"]}
        theirs = await ann.http.get(f"/api/campaigns/{campaign_id}/targets", params={"agent_id": ids["ben"]})
        assert theirs.status_code == 403
        assert (await upload(ann, campaign_id, "x.txt", b"+14155550000")).status_code == 403

        # reclaim Ann's, give them to the sales group, then reclaim everything
        back = await sam.http.post(
            f"/api/campaigns/{campaign_id}/targets/reclaim", json={"agent_id": ids["ann"]}
        )
        assert back.json() == {"reclaimed": 334}
        grouped = await sam.http.post(
            f"/api/campaigns/{campaign_id}/targets/assign", json={"group": "sales", "count": 300}
        )
        assert grouped.json()["total"] == 300 and grouped.json()["group"] == "sales"
        summary = (await sam.http.get(f"/api/campaigns/{campaign_id}/targets/summary")).json()
        assert summary["pending_unassigned"] == 34
        assert summary["groups"] == [{"group": "sales", "pending": 300, "total": 300}]
        nobody = await sam.http.post(f"/api/campaigns/{campaign_id}/targets/assign", json={"group": "legal"})
        assert nobody.status_code == 422
        both = await sam.http.post(
            f"/api/campaigns/{campaign_id}/targets/assign", json={"group": "sales", "agent_ids": [ids["ann"]]}
        )
        assert both.status_code == 422
        everything = await sam.http.post(f"/api/campaigns/{campaign_id}/targets/reclaim")
        assert everything.json() == {"reclaimed": 300 + 334 + 334}
        # a target already being dialled is never moved
        await hub_ctx.db.campaign_targets.update_one(
            {"campaign_id": campaign_id, "number": "+14155551000"}, {"$set": {"status": "dialing"}}
        )
        again = await sam.http.post(
            f"/api/campaigns/{campaign_id}/targets/assign", json={"agent_ids": [ids["ben"], ids["cat"]]}
        )
        assert again.json()["total"] == 1001
        dialing = await sam.http.get(f"/api/campaigns/{campaign_id}/targets", params={"status": "dialing"})
        assert dialing.json()["items"][0]["assigned_agent_id"] is None

        # another tenant: its supervisor and its agents' ids are unknown here
        for method, path, body in (
            ("GET", f"/api/campaigns/{campaign_id}/imports/{job['import_id']}", None),
            ("GET", f"/api/campaigns/{campaign_id}/imports", None),
            ("GET", f"/api/campaigns/{campaign_id}/targets", None),
            ("GET", f"/api/campaigns/{campaign_id}/targets/summary", None),
            (
                "POST",
                f"/api/campaigns/{campaign_id}/targets/assign",
                {"agent_ids": [other["users"]["oz"]["_id"]]},
            ),
            ("POST", f"/api/campaigns/{campaign_id}/targets/reclaim", {}),
        ):
            response = await sue.http.request(method, path, json=body)
            assert response.status_code == 404, (path, response.text)
        assert (await upload(sue, campaign_id, "x.txt", b"+14155550000")).status_code == 404
        foreign = await sam.http.post(
            f"/api/campaigns/{campaign_id}/targets/assign", json={"agent_ids": [other["users"]["oz"]["_id"]]}
        )
        assert foreign.status_code == 404
        assert (await sam.http.get(f"/api/campaigns/{campaign_id}/imports/{new_id()}")).status_code == 404
    finally:
        for user in (sam, ann, sue):
            await user.close()
        await hub_ctx.db.close()


async def test_http_upload_size_limit(hub_nobot: HubProcess, tenant_in, mongo) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": []}, roles={"sam": ["supervisor"]})
    hub_ctx = context_for(mongo.uri, hub_nobot.env["HUB_DB_NAME"])
    sam = Agent(hub_nobot.url, t["slug"], "sam@t.test")
    try:
        await sam.login()
        _, campaign_id = await new_campaign(hub_ctx, t["tenant"]["_id"])
        await hub_ctx.db.tenants.update_one(
            {"_id": t["tenant"]["_id"]}, {"$set": {"outbound.max_upload_bytes": 2000}}
        )
        big = b"".join(f"+1 415 555 {i:04d}\n".encode() for i in range(5000))  # 80 kB
        refused = await upload(sam, campaign_id, "big.txt", big)
        assert refused.status_code == 413 and "limit" in refused.json()["detail"]
        # just over the limit inside the multipart overhead: refused while copying
        slightly = await upload(sam, campaign_id, "big.txt", big[:2100])
        assert slightly.status_code == 413
        assert await hub_ctx.db.list_imports.count_documents({"campaign_id": campaign_id}) == 0
        fine = await upload(sam, campaign_id, "ok.txt", big[:1600])
        assert fine.status_code == 202
        assert (await wait_import(sam, campaign_id, fine.json()["import_id"]))["report"]["imported"] == 100
    finally:
        await sam.close()
        await hub_ctx.db.close()
