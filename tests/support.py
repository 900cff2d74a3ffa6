"""Test helpers: real hub processes, widget and agent clients over real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from hub.embedded_db import free_port

ROOT = Path(__file__).resolve().parent.parent
TEST_SECRET = "test-secret-" + "x" * 40
TWILIO_TOKEN = "test-twilio-auth-token"


def close_code(exc: websockets.ConnectionClosed) -> int | None:
    """The close code the server sent (None if it sent no close frame)."""
    return exc.rcvd.code if exc.rcvd is not None else None


class HubProcess:
    """`hub serve` in a subprocess, on its own port, against a given database and Rasa."""

    def __init__(
        self,
        var_dir: Path,
        mongodb_uri: str,
        rasa_url: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        with_rasa: bool = False,
    ) -> None:
        self.var_dir = var_dir
        self.with_rasa = with_rasa
        self.port = port or free_port()
        self.env = {
            **os.environ,
            "MONGODB_URI": mongodb_uri,
            "RASA_URL": rasa_url,
            "RASA_AUTOSTART": "false",
            "HUB_PORT": str(self.port),
            "HUB_SECRET": TEST_SECRET,
            "HUB_VAR_DIR": str(var_dir),
            "HUB_DB_NAME": "hubtest",
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "HUB_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.var_dir / f"hub-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hub.cli",
                "serve",
                "--log-level",
                "warning",
                *([] if self.with_rasa else ["--no-rasa"]),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited: see {self.var_dir}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("hub did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Widget:
    """A web-chat widget speaking docs/protocol.md over a real websocket."""

    def __init__(self, ws_url: str, tenant: str) -> None:
        self.url = f"{ws_url}/ws/chat?tenant={tenant}"
        self.token: str | None = None
        self.contact_id: str | None = None
        self.last_seq = 0
        self.messages: dict[int, dict[str, Any]] = {}
        self.frames: list[dict[str, Any]] = []
        self.status: str | None = None
        self.ws: Any = None
        self._n = 0

    async def connect(self) -> dict[str, Any]:
        self.ws = await websockets.connect(self.url, max_size=2**22)
        await self.send(
            {
                "type": "hello",
                "visitor_token": self.token,
                "contact_id": self.contact_id,
                "last_seq": self.last_seq,
            }
        )
        welcome = await self.expect("welcome")
        self.token = welcome["visitor_token"]
        self.contact_id = welcome["contact_id"] or self.contact_id
        return welcome

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.frames.append(frame)
        if frame.get("contact_id"):
            self.contact_id = frame["contact_id"]
        if frame["type"] in ("status", "welcome"):
            self.status = frame["status"]
        if frame["type"] == "message":
            self.messages[frame["seq"]] = frame
            self.last_seq = max(self.last_seq, frame["seq"])
        return frame

    async def expect(self, kind: str, timeout: float = 10, **match: Any) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no {kind} frame matching {match}; got {self.frames[-5:]}")
            frame = await self.recv(remaining)
            if frame["type"] == kind and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def wait_status(self, status: str, timeout: float = 10) -> None:
        """Until the conversation shows `status` (frames already received count)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.status != status:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"status is {self.status}, not {status}")
            await self.recv(remaining)

    async def say(self, text: str, client_id: str | None = None) -> dict[str, Any]:
        self._n += 1
        client_id = client_id or f"c{self._n}-{time.monotonic_ns()}"
        await self.send({"type": "message", "client_id": client_id, "text": text})
        return await self.expect("ack", client_id=client_id)

    async def reply_from(self, author: str, after_seq: int, timeout: float = 30) -> dict[str, Any]:
        """The next message by `author` with seq > after_seq (already received or arriving)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for seq in sorted(self.messages):
                if seq > after_seq and self.messages[seq]["author"] == author:
                    return self.messages[seq]
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(
                    f"no {author} message after {after_seq}; have {list(self.messages.values())[-4:]}"
                )
            await self.recv(remaining)

    def texts(self, author: str | None = None) -> list[str]:
        return [
            m["text"] for _, m in sorted(self.messages.items()) if author is None or m["author"] == author
        ]


class Agent:
    """An agent using the dashboard API with a bearer token."""

    def __init__(self, base_url: str, tenant: str, email: str, password: str = "password123") -> None:
        self.base_url = base_url
        self.tenant = tenant
        self.email = email
        self.password = password
        self.http = httpx.AsyncClient(base_url=base_url, timeout=20)

    async def login(self) -> None:
        response = await self.http.post(
            "/api/auth/login", json={"tenant": self.tenant, "email": self.email, "password": self.password}
        )
        response.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {response.json()['token']}"

    async def available(self) -> None:
        (await self.http.post("/api/agent/presence", json={"state": "available"})).raise_for_status()

    async def wait_offer(self, contact_id: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            offers = (await self.http.get("/api/agent/contacts")).json()["offers"]
            for offer in offers:
                if offer["contact_id"] == contact_id:
                    return dict(offer)
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.email} got no offer for {contact_id}")

    async def close(self) -> None:
        await self.http.aclose()
