"""Security headers on the hub's answers: pages, the API, the embeddable demo, public pages."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from hub.app import create_app
from hub.settings import Settings
from tests.support import TEST_SECRET, HubProcess

STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"


def _directives(policy: str) -> dict[str, str]:
    return {d.strip().split(" ", 1)[0]: d.strip().partition(" ")[2] for d in policy.split(";") if d.strip()}


async def test_dashboard_pages_get_a_strict_policy_and_the_other_headers(hub_nobot: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=hub_nobot.url, timeout=20) as http:
        page = await http.get("/login")
    assert page.status_code == 200
    h = page.headers
    csp = _directives(h["content-security-policy"])
    assert csp["default-src"] == "'self'" and csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["object-src"] == "'none'"
    assert csp["base-uri"] == "'self'" and csp["form-action"] == "'self'"
    # the pages' websockets (agent desk, wallboard) on this host
    assert f"ws://127.0.0.1:{hub_nobot.port}" in csp["connect-src"]
    assert h["x-frame-options"] == "DENY"
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "same-origin"
    assert h["cross-origin-opener-policy"] == "same-origin"
    permissions = h["permissions-policy"]
    assert "camera=()" in permissions and "geolocation=()" in permissions
    assert "microphone=(self)" in permissions  # the softphone and the web call
    assert "strict-transport-security" not in h  # plain http here


async def test_api_answers_are_not_cached(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    async with httpx.AsyncClient(base_url=hub_nobot.url, timeout=20) as http:
        refused = await http.get("/api/me")
        login = await http.post(
            "/api/auth/login", json={"tenant": t["slug"], "email": "ann@t.test", "password": "password123"}
        )
        me = await http.get("/api/me", headers={"Authorization": f"Bearer {login.json()['token']}"})
        static = await http.get("/static/app.css")
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"
    assert login.headers["cache-control"] == "no-store" and me.headers["cache-control"] == "no-store"
    assert me.headers["x-content-type-options"] == "nosniff"
    assert static.headers.get("cache-control") != "no-store"  # our own files may be cached


async def test_embeddable_and_public_pages_keep_their_rules(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    async with httpx.AsyncClient(base_url=hub_nobot.url, timeout=20) as http:
        demo = await http.get("/demo")
        widget = await http.get("/widget.js")
        help_page = await http.get(f"/help/{t['slug']}")
    # customers embed these: no frame or content rules
    for response in (demo, widget):
        assert response.status_code == 200
        assert "x-frame-options" not in response.headers
        assert "content-security-policy" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
    # the server-rendered help center sets its brand colour inline: inline styles, never scripts
    assert help_page.status_code == 200
    csp = _directives(help_page.headers["content-security-policy"])
    assert csp["script-src"] == "'self'" and "'unsafe-inline'" in csp["style-src"]
    assert help_page.headers["x-frame-options"] == "DENY"


async def test_https_deployments_get_hsts() -> None:
    app = create_app(Settings(secret=TEST_SECRET, public_url="https://hub.example"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://hub.example"
    ) as http:
        page = await http.get("/login")
    assert page.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "wss://hub.example" in page.headers["content-security-policy"]


def test_dashboard_pages_have_no_inline_script_or_style() -> None:
    """What lets the policy above stay strict: our pages load script and style files only."""
    for page in STATIC.glob("*.html"):
        if page.name == "demo.html":  # a stand-in for a customer's site, not a dashboard page
            continue
        text = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline script in {page.name}"
        assert "<style" not in text and " style=" not in text, f"inline style in {page.name}"
        assert not re.search(r"\son[a-z]+=", text), f"inline event handler in {page.name}"
