"""Browser fixtures for the end-to-end tests: Debian's headless Chromium driven by Playwright.

No browser is downloaded: Playwright launches the system Chromium. Each test gets
`open_page(name)`, which opens a page in its own browser context (its own cookies
and localStorage, like a separate person), records console errors and uncaught
exceptions, and saves a screenshot of every page to the test's tmp_path on failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 20_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report on the item so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@dataclass
class PageLog:
    """Console errors and uncaught exceptions of one page."""

    name: str
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        if "favicon" in url or "favicon" in message.text:
            return
        self.errors.append(f"console: {message.text} ({url})")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"pageerror: {error}")


OpenPage = Callable[[str], Awaitable[Page]]


@pytest.fixture
async def open_page(
    browser: Browser, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[OpenPage]:
    contexts: list[BrowserContext] = []
    pages: dict[str, Page] = {}
    logs: dict[str, PageLog] = {}

    async def factory(name: str) -> Page:
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = await context.new_page()
        log = PageLog(name)
        page.on("console", log.on_console)
        page.on("pageerror", log.on_page_error)
        pages[name] = page
        logs[name] = log
        return page

    factory.logs = logs  # type: ignore[attr-defined]
    yield factory

    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for name, page in pages.items():
            try:
                await page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
            except Exception as exc:  # the page may be gone; the report says why the test failed
                print(f"screenshot of {name} failed: {exc}")
        print(f"screenshots saved to {tmp_path}")
    for context in contexts:
        await context.close()


def console_errors(open_page: OpenPage) -> dict[str, list[str]]:
    """The errors each page logged so far (empty lists left out)."""
    logs: dict[str, PageLog] = open_page.logs  # type: ignore[attr-defined]
    return {name: log.errors for name, log in logs.items() if log.errors}
