"""CSRF protection of cookie sessions and of cookie websockets, against a real hub process."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from hub.csrf import same_origin
from tests.support import HubProcess

PASSWORD = "password123"


async def _cookie_session(hub: HubProcess, slug: str, email: str) -> tuple[httpx.AsyncClient, str]:
    """A client holding the cookies a browser gets at sign-in (and no Authorization header)."""
    http = httpx.AsyncClient(base_url=hub.url, timeout=20)
    login = await http.post("/api/auth/login", json={"tenant": slug, "email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    set_cookies = login.headers.get_list("set-cookie")
    csrf_cookie = next(c for c in set_cookies if c.startswith("hub_csrf="))
    assert "SameSite=strict" in csrf_cookie and "HttpOnly" not in csrf_cookie
    assert http.cookies.get("hub_session") and http.cookies.get("hub_csrf")
    return http, login.json()["token"]


def test_same_origin_compares_host_and_port() -> None:
    assert same_origin("http://127.0.0.1:8000", "127.0.0.1:8000", "https://hub.example")
    assert same_origin("https://hub.example", "10.0.0.5:8000", "https://hub.example")
    assert not same_origin("http://127.0.0.1:9999", "127.0.0.1:8000", "http://127.0.0.1:8000")
    assert not same_origin("https://evil.example", "hub.example", "https://hub.example")
    assert not same_origin("null", "hub.example", "https://hub.example")


async def test_cookie_requests_need_the_token_and_bearer_requests_do_not(
    hub_nobot: HubProcess, tenant_in
) -> None:
    t = await tenant_in(hub_nobot, agents={"sam": []}, roles={"sam": ["supervisor"]})
    http, api_token = await _cookie_session(hub_nobot, t["slug"], "sam@t.test")
    token = http.cookies["hub_csrf"]
    try:
        # reading needs no token
        assert (await http.get("/api/queues")).status_code == 200
        # a state change by the cookie: refused without the header or with a wrong one
        missing = await http.post("/api/queues", json={"name": "A"})
        assert missing.status_code == 403 and missing.json()["detail"] == "CSRF token missing or wrong"
        wrong = await http.post(
            "/api/queues", json={"name": "A"}, headers={"X-CSRF-Token": token[:-2] + "xx"}
        )
        assert wrong.status_code == 403
        empty = await http.post("/api/queues", json={"name": "A"}, headers={"X-CSRF-Token": ""})
        assert empty.status_code == 403
        right = await http.post("/api/queues", json={"name": "A"}, headers={"X-CSRF-Token": token})
        assert right.status_code == 201, right.text
        queue_id = right.json()["id"]
        # DELETE is a state change too
        assert (await http.delete(f"/api/queues/{queue_id}")).status_code == 403
        # a bearer token is exempt even with the cookie present: browsers never add it by themselves
        bearer = await http.post(
            "/api/queues", json={"name": "B"}, headers={"Authorization": f"Bearer {api_token}"}
        )
        assert bearer.status_code == 201, bearer.text
        # signing in again with a stale session cookie works (sign-in is not cookie-authenticated)
        again = await http.post(
            "/api/auth/login", json={"tenant": t["slug"], "email": "sam@t.test", "password": PASSWORD}
        )
        assert again.status_code == 200
        # sign-out needs the token (it is a state change authenticated by the cookie)
        assert (await http.post("/api/auth/logout")).status_code == 403
        out = await http.post("/api/auth/logout", headers={"X-CSRF-Token": http.cookies["hub_csrf"]})
        assert out.status_code == 200
    finally:
        await http.aclose()
    # no session cookie at all: not a CSRF matter (the endpoint's own 401)
    async with httpx.AsyncClient(base_url=hub_nobot.url, timeout=20) as anonymous:
        assert (await anonymous.post("/api/queues", json={"name": "C"})).status_code == 401


async def test_a_session_without_a_token_cookie_gets_one(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    http, _ = await _cookie_session(hub_nobot, t["slug"], "ann@t.test")
    try:
        http.cookies.delete("hub_csrf")
        page = await http.get("/agent")
        assert page.status_code == 200
        handed = [c for c in page.headers.get_list("set-cookie") if c.startswith("hub_csrf=")]
        assert handed and "SameSite=Strict" in handed[0]
        assert http.cookies.get("hub_csrf")
        posted = await http.post(
            "/api/agent/presence",
            json={"state": "available"},
            headers={"X-CSRF-Token": http.cookies["hub_csrf"]},
        )
        assert posted.status_code == 200, posted.text
    finally:
        await http.aclose()


async def test_cookie_websocket_from_another_origin_is_refused(hub_nobot: HubProcess, tenant_in) -> None:
    t = await tenant_in(hub_nobot)
    http, api_token = await _cookie_session(hub_nobot, t["slug"], "ann@t.test")
    cookie = f"hub_session={http.cookies['hub_session']}"
    await http.aclose()
    url = f"{hub_nobot.ws_url}/ws/agent"
    # a page on another site opening our socket with the visitor's cookie: refused at the handshake
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            url, additional_headers={"Cookie": cookie}, origin=Origin("http://evil.example")
        )
    assert refused.value.response.status_code == 403
    # our own page (same origin) and a non-browser client (no Origin) are served
    for origin in (Origin(hub_nobot.url), None):
        ws = await websockets.connect(url, additional_headers={"Cookie": cookie}, origin=origin)
        try:
            ws_hello = json.loads(await ws.recv())
            assert ws_hello.get("type") != "error", ws_hello
        finally:
            await ws.close()
    # a token in the query string is not the cookie: a foreign origin still needs a valid token
    ws = await websockets.connect(f"{url}?token={api_token}", origin=Origin("http://evil.example"))
    try:
        assert json.loads(await ws.recv()).get("type") != "error"
    finally:
        await ws.close()
