"""Rate limits: the counters themselves, and a hub process of our own with tiny limits set
through its environment (sign-in failures per account and per address, webhooks per source).
The shared hub keeps the generous defaults: other tests sign in hundreds of times."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hub.embedded_db import EmbeddedDatabase
from hub.ratelimit import RateLimiter, TokenBucket, retry_after_header
from tests.support import HubProcess

PASSWORD = "password123"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_counts_and_tells_when_to_retry() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 60.0, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # keys are separate
    assert limiter.retry_after("a") == pytest.approx(60.0)
    clock.now += 30
    limiter.hit("a")  # counted even though the window is full (a failure)
    clock.now += 30.5
    # the first three aged out; the hit at +30 is still inside
    assert limiter.retry_after("a") == 0.0 and limiter.allow("a")


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 3, clock=clock)
    assert [bucket.take("x") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = bucket.take("x")
    assert wait == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take("x") == 0.0 and bucket.take("x") > 0
    assert retry_after_header(0.2) == "1" and retry_after_header(12.01) == "13"


@pytest.fixture(scope="module")
def tight_hub(tmp_path_factory: pytest.TempPathFactory, mongo: EmbeddedDatabase) -> Iterator[HubProcess]:
    process = HubProcess(
        tmp_path_factory.mktemp("hub_ratelimit"),
        mongo.uri,
        "http://127.0.0.1:9",
        env={
            "HUB_DB_NAME": "hub_ratelimit",
            "HUB_LOGIN_FAILS_PER_ACCOUNT": "3",
            "HUB_LOGIN_FAILS_ACCOUNT_WINDOW_S": "600",
            "HUB_LOGIN_FAILS_PER_IP": "8",
            "HUB_LOGIN_FAILS_IP_WINDOW_S": "600",
            "HUB_WEBHOOK_RATE_PER_S": "0.5",
            "HUB_WEBHOOK_BURST": "5",
        },
    )
    process.start()
    yield process
    process.stop()


async def _login(http: httpx.AsyncClient, slug: str, email: str, password: str) -> httpx.Response:
    return await http.post("/api/auth/login", json={"tenant": slug, "email": email, "password": password})


async def test_sign_in_locks_after_failures_per_account_and_then_per_address(
    tight_hub: HubProcess, tenant_in
) -> None:
    t = await tenant_in(tight_hub)
    async with httpx.AsyncClient(base_url=tight_hub.url, timeout=20) as http:
        # successful sign-ins never count
        for _ in range(12):
            assert (await _login(http, t["slug"], "ann@t.test", PASSWORD)).status_code == 200
        # three failures lock ann's account: even the right password is refused, with Retry-After
        for _ in range(3):
            assert (await _login(http, t["slug"], "ann@t.test", "guess")).status_code == 401
        locked = await _login(http, t["slug"], "ANN@t.test ", PASSWORD)  # same account, other spelling
        assert locked.status_code == 429
        assert 500 < int(locked.headers["retry-after"]) <= 600
        assert "Too many failed sign-ins" in locked.json()["detail"]
        # another account from the same address is not locked by ann's failures
        assert (await _login(http, t["slug"], "ben@t.test", PASSWORD)).status_code == 200
        # failures spread over many accounts lock the address (8 in all): ben too is refused now
        for n in range(5):
            assert (await _login(http, t["slug"], f"nobody{n}@t.test", "guess")).status_code == 401
        refused = await _login(http, t["slug"], "ben@t.test", PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0


async def test_webhooks_are_limited_per_source(tight_hub: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=tight_hub.url, timeout=20) as http:
        answers = [
            await http.post("/twilio/sms", data={"From": "+15005550006", "To": "+15005550001", "Body": "x"})
            for _ in range(7)
        ]
        codes = [a.status_code for a in answers]
        # the burst of 5 reaches the endpoint (unsigned: its own refusal), then 429
        assert all(c != 429 for c in codes[:5]) and codes[5:] == [429, 429], codes
        assert int(answers[5].headers["retry-after"]) >= 1
        # sign-in and the API are not webhook paths
        assert (await http.get("/healthz")).status_code in (200, 503)
