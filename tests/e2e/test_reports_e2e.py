"""The reports page in a real browser: contacts made through the hub become facts; the
supervisor opens /reports from the wallboard, picks a report by queue per hour, sees the
chart's bars and the table, exports CSV and schedules a mailing.

Runs against the hub whose Rasa is down, so chats are queued for agents at once.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from playwright.async_api import FilePayload, expect

from tests.conftest import TenantFactory
from tests.e2e.conftest import OpenPage, console_errors
from tests.e2e.test_wallboard_e2e import logs_in
from tests.support import Agent, HubProcess, Widget

pytestmark = [pytest.mark.e2e]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def facts_ready(sam: Agent, offered: int, timeout: float = 30) -> dict[str, Any]:
    """The hub's fact updater runs every few seconds: wait until today's report has them."""
    deadline = time.monotonic() + timeout
    while True:
        report = (
            await sam.http.get("/api/reports/historical", params={"by": "queue", "interval": "total"})
        ).json()
        if (report.get("totals") or {}).get("offered", 0) >= offered or time.monotonic() > deadline:
            return dict(report)
        await asyncio.sleep(0.5)


async def test_pick_a_report_see_its_bars_and_export_csv(
    hub_nobot: HubProcess, tenant_in: TenantFactory, open_page: OpenPage
) -> None:
    hub = hub_nobot
    t = await tenant_in(hub, agents={"sam": ["general"], "ann": ["general"]}, roles={"sam": ["supervisor"]})
    slug = t["slug"]
    sam_api, ann = Agent(hub.url, slug, "sam@t.test"), Agent(hub.url, slug, "ann@t.test")
    widgets = [Widget(hub.ws_url, slug), Widget(hub.ws_url, slug)]
    try:
        await sam_api.login()
        await ann.login()
        await ann.available()
        for widget in widgets:
            await widget.connect()
        await widgets[0].say("I need help with my bill")
        offer: dict[str, Any] = {}
        deadline = time.monotonic() + 20
        while not offer and time.monotonic() < deadline:
            offers = (await ann.http.get("/api/agent/contacts")).json()["offers"]
            offer = offers[0] if offers else {}
            await asyncio.sleep(0.2)
        assert offer, "ann got no offer"
        (await ann.http.post(f"/api/contacts/{offer['contact_id']}/accept")).raise_for_status()
        await widgets[1].say("Me too, please")
        report = await facts_ready(sam_api, 2)
        assert report["totals"]["offered"] == 2 and report["totals"]["answered"] == 1

        page = await open_page("supervisor")
        await logs_in(page, hub, slug, "sam@t.test", "Sam")
        await page.goto(f"{hub.url}/wallboard")
        await page.locator("#reports-link").click()
        await expect(page).to_have_url(f"{hub.url}/reports")
        await expect(page.locator("#rp-status")).to_contain_text("rows")

        # pick: by queue, per hour, today only
        today = report["to"]
        await page.locator("#rp-by").select_option("queue")
        await page.locator("#rp-interval").select_option("hour")
        await page.locator("#rp-from").fill(today)
        await page.locator("#rp-to").fill(today)
        await page.locator("#rp-show").click()
        await expect(page.locator("#rp-status")).to_contain_text(f"{today} to {today}")
        offered_bars = page.locator("#rp-chart svg .hc-bar[data-series='offered']")
        await expect(offered_bars).not_to_have_count(0)
        values = [
            float(v or 0) for v in await offered_bars.evaluate_all("bs => bs.map(b => b.dataset.value)")
        ]
        assert sum(values) == 2 and max(values) >= 1
        answered = await page.locator("#rp-chart .hc-bar[data-series='answered']").evaluate_all(
            "bs => bs.map(b => Number(b.dataset.value))"
        )
        assert sum(answered) == 1
        await expect(page.locator("#rp-chart .hc-line .hc-point")).not_to_have_count(0)  # the SL line
        row = page.locator("#rp-tbody tr[data-key='\"general\"']")  # (contacts without a queue: a row too)
        await expect(row.locator(".rp-label")).to_have_text("general")
        await expect(row.locator("td[data-col='offered']")).to_have_text("2")
        await expect(page.locator("#rp-tfoot td[data-col='offered']")).to_have_text("2")
        await expect(page.locator("#rp-tfoot td[data-col='answered']")).to_have_text("1")

        # export CSV: the same report as a file
        async with page.expect_download() as download_info:
            await page.locator("#rp-csv").click()
        download = await download_info.value
        assert download.suggested_filename.endswith(".csv")
        path = await download.path()
        text = path.read_text(encoding="utf-8-sig")
        lines = list(csv.reader(io.StringIO(text)))
        header = lines[0]
        assert header[:3] == ["key", "label", "interval_start"]
        total = dict(zip(header, lines[-1], strict=False))
        assert (total["key"], total["offered"], total["answered"]) == ("total", "2", "1")
        assert any(line[0] == "general" for line in lines[1:-1])

        # the tenant's own Excel template: its other sheets are kept, "data" is filled
        book = Workbook()
        cover = book.active
        assert cover is not None
        cover.title = "cover"
        cover["A1"] = "Acme weekly pack"
        book.create_sheet("data")
        buffer = io.BytesIO()
        book.save(buffer)
        await page.locator("#rp-template-file").set_input_files(
            files=FilePayload(name="acme.xlsx", mimeType=XLSX, buffer=buffer.getvalue())
        )
        await page.locator("#rp-template-upload").click()
        await expect(page.locator("#rp-template-status")).to_contain_text("now use acme.xlsx")
        async with page.expect_download() as download_info:
            await page.locator("#rp-xlsx").click()
        exported_file = await (await download_info.value).path()
        exported = load_workbook(io.BytesIO(exported_file.read_bytes()))
        assert exported["cover"]["A1"].value == "Acme weekly pack"
        data = [[c.value for c in r] for r in exported["data"].iter_rows()]
        assert data[0][:3] == ["key", "label", "interval_start"] and data[-1][0] == "total"

        # schedule it: listed with its next run
        await page.locator("#rp-sched-name").fill("Hourly queues")
        await page.locator("#rp-sched-to").fill("boss@example.test")
        await page.locator("#rp-sched-add").click()
        listed = page.locator("#rp-sched-list tr")
        await expect(listed).to_have_count(1)
        await expect(listed.first).to_contain_text("Hourly queues")
        await expect(listed.first).to_contain_text("by queue per hour")
        assert console_errors(open_page) == {}
    finally:
        for widget in widgets:
            await widget.close()
        await ann.close()
        await sam_api.close()
