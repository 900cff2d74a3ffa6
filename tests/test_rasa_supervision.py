"""`hub serve` starts Rasa itself (model from the content-hash cache) and restarts it when it dies."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest

from hub.embedded_db import EmbeddedDatabase, free_port
from tests.support import HubProcess, Widget

pytestmark = pytest.mark.rasa


async def rasa_health(hub: HubProcess, want: str, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    state = None
    while asyncio.get_running_loop().time() < deadline:
        state = httpx.get(f"{hub.url}/healthz", timeout=5).json()["components"]["rasa"]
        if state == want:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"rasa is {state!r}, not {want!r}")


async def test_hub_serve_supervises_rasa(tmp_path: Path, mongo: EmbeddedDatabase, tenant_in) -> None:
    port = free_port()
    hub = HubProcess(
        tmp_path / "hub",
        mongo.uri,
        f"http://127.0.0.1:{port}",
        with_rasa=True,
        env={"RASA_PORT": str(port), "RASA_AUTOSTART": "true", "HUB_DB_NAME": "hub_supervised"},
    )
    hub.start()
    try:
        await rasa_health(hub, "ok", 180)
        assert httpx.get(f"{hub.url}/healthz").json()["status"] == "ok"
        t = await tenant_in(hub)
        widget = Widget(hub.ws_url, t["slug"])
        await widget.connect()
        ack = await widget.say("hello")
        assert "Northwind" in (await widget.reply_from("bot", ack["seq"]))["text"]
        # kill Rasa behind the hub's back: the hub notices and restarts it
        subprocess.run(["pkill", "-KILL", "-f", f"rasa run.*--port {port}"], check=True)
        await rasa_health(hub, "ok", 180)
        ack = await widget.say("when are you open?")
        assert "Monday" in (await widget.reply_from("bot", ack["seq"], timeout=30))["text"]
        await widget.close()
    finally:
        hub.stop()
    assert subprocess.run(["pgrep", "-f", f"rasa run.*--port {port}"], capture_output=True).returncode == 1
