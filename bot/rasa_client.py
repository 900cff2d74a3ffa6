"""HTTP client for the Rasa server's REST channel."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


class BotUnavailable(Exception):
    """Rasa did not answer after retries; the caller degrades to a human."""


class RasaClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0, attempts: int = 3) -> None:
        self.base_url = base_url.rstrip("/")
        self.attempts = attempts
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def send(
        self, sender: str, text: str, metadata: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """One user turn; returns Rasa's bot messages ({"text"} / {"custom"} / ...)."""
        payload: dict[str, Any] = {"sender": sender, "message": text}
        if metadata:
            payload["metadata"] = metadata
        delay = 0.5
        last_error = "no attempt made"
        for attempt in range(self.attempts):
            try:
                response = await self._http.post(f"{self.base_url}/webhooks/rest/webhook", json=payload)
                if response.status_code < 500:
                    response.raise_for_status()
                    result: list[dict[str, Any]] = response.json()
                    return result
                last_error = f"HTTP {response.status_code}"
            except (httpx.TransportError, httpx.HTTPStatusError, ValueError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < self.attempts:
                await asyncio.sleep(delay)
                delay *= 2
        raise BotUnavailable(f"Rasa at {self.base_url} unavailable ({last_error})")

    async def latest_intent(self, sender: str, timeout_s: float = 2.0) -> str | None:
        """The intent Rasa detected in this conversation's latest user message (needs
        `--enable-api`); None when unknown or Rasa does not answer. Never raises."""
        try:
            response = await self._http.get(
                f"{self.base_url}/conversations/{sender}/tracker",
                params={"include_events": "NONE"},
                timeout=timeout_s,
            )
            if response.status_code != 200:
                return None
            latest = response.json().get("latest_message") or {}
            name = (latest.get("intent") or {}).get("name")
            return str(name) if name else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None

    async def ready(self) -> bool:
        try:
            response = await self._http.get(f"{self.base_url}/status", timeout=2.0)
            return response.status_code == 200 and bool(response.json().get("model_file"))
        except (httpx.HTTPError, ValueError):
            return False

    async def close(self) -> None:
        await self._http.aclose()
