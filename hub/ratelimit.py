"""Rate limits: sign-in failures per account and per client address, webhooks per source.

Our own, in memory, one process's view: a sliding window and a token bucket are a few lines
each, and we need "seconds until allowed" for `Retry-After`, failure-only counting for sign-in
and per-request limits in an ASGI middleware. The `limits` package would add a dependency
(and a storage abstraction we do not use) for the same arithmetic; a deployment running several
hub processes behind a balancer gets one budget per process, which still stops a brute force.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from hub.settings import Settings

Clock = Callable[[], float]
MAX_KEYS = 10_000


class RateLimiter:
    """At most `limit` events per `window_s` per key (a sliding window kept in memory)."""

    def __init__(self, limit: int, window_s: float, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def _window(self, key: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        return hits

    def allow(self, key: str) -> bool:
        """Count one event for `key` if the window has room; False (nothing counted) when full."""
        now = self._clock()
        hits = self._window(key, now)
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        self._forget_idle(now)
        return True

    def hit(self, key: str) -> None:
        """Count one event whether or not the window is full (e.g. a failed sign-in)."""
        now = self._clock()
        self._window(key, now).append(now)
        self._forget_idle(now)

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may act again; 0 when it may act now."""
        now = self._clock()
        hits = self._window(key, now)
        if len(hits) < self.limit:
            return 0.0
        # the window frees up when enough of the oldest events have aged out
        return max(0.0, hits[len(hits) - self.limit] + self.window_s - now)

    def _forget_idle(self, now: float) -> None:
        if len(self._hits) > MAX_KEYS:
            for stale in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window_s]:
                del self._hits[stale]


class TokenBucket:
    """`rate_per_s` events per second per key on average, bursts of up to `burst`."""

    def __init__(self, rate_per_s: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """Take one token: 0.0 when allowed, else the seconds until a token is available."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_KEYS:
                self._buckets = {k: v for k, v in self._buckets.items() if v[1] > now - 60}
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate if self.rate > 0 else 3600.0


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1 (the header takes an integer)."""
    return str(max(1, int(seconds + 0.999)))


class LoginLimits:
    """Failed sign-ins per account (tenant + email) and per client address.

    Only failures count, so staff signing in all day (and test suites) are never slowed; once
    either budget is spent every attempt is refused until the window frees, a correct password
    included: otherwise a guesser would keep trying until one succeeded."""

    def __init__(self, settings: Settings) -> None:
        self.accounts = RateLimiter(settings.login_fails_per_account, settings.login_fails_account_window_s)
        self.addresses = RateLimiter(settings.login_fails_per_ip, settings.login_fails_ip_window_s)

    @staticmethod
    def account_key(tenant_slug: str, email: str) -> str:
        return f"{tenant_slug.strip().lower()}\x00{email.strip().lower()}"

    def retry_after(self, tenant_slug: str, email: str, ip: str) -> float:
        return max(
            self.accounts.retry_after(self.account_key(tenant_slug, email)), self.addresses.retry_after(ip)
        )

    def failed(self, tenant_slug: str, email: str, ip: str) -> None:
        self.accounts.hit(self.account_key(tenant_slug, email))
        self.addresses.hit(ip)


def login_limits(extra: MutableMapping[str, Any], settings: Settings) -> LoginLimits:
    """The process's sign-in limits (kept in `ctx.extra`)."""
    limits = extra.get("login_limits")
    if not isinstance(limits, LoginLimits):
        limits = extra["login_limits"] = LoginLimits(settings)
    return limits


# Webhook callers: Twilio (voice, status, SMS, answering-machine detection). There is no HTTP
# email webhook: mail arrives over SMTP (channels/email/receiver.py) or IMAP.
WEBHOOK_PREFIXES = ("/twilio/",)


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class WebhookRateLimit:
    """ASGI middleware: a token bucket per source address on the webhook paths; 429 with
    `Retry-After` when spent (Twilio retries such callbacks)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.bucket = TokenBucket(settings.webhook_rate_per_s, settings.webhook_burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(WEBHOOK_PREFIXES):
            await self.app(scope, receive, send)
            return
        wait = self.bucket.take(client_ip(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        await _too_many(send, wait, b'{"detail":"too many webhook requests from this address"}')


async def _too_many(send: Callable[[dict[str, Any]], Awaitable[None]], wait: float, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", retry_after_header(wait).encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
