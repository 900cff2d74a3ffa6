"""The embedded MongoDB-compatible server (SecantusDB) for installs without MONGODB_URI.

SecantusDB is GPL-2.0-only, so it runs as its own process (`secantusd-py`) and is
never imported here. Its data lives under var/db so it survives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
from pathlib import Path


def port_is_open(host: str, port: int, timeout: float = 0.3) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def daemon_command() -> str:
    """Prefer the daemon beside our interpreter (the project venv), then PATH."""
    local = Path(sys.executable).parent / "secantusd-py"
    if local.exists():
        return str(local)
    found = shutil.which("secantusd-py")
    if not found:
        raise RuntimeError("secantusd-py not found: install the SecantusDB package or set MONGODB_URI")
    return found


class EmbeddedDatabase:
    """Starts, watches and stops one secantusd-py process on loopback."""

    def __init__(self, data_dir: Path, port: int, log_path: Path | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log_path = log_path or data_dir.parent / "secantusd.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    async def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: ASYNC230 - handed to the child; a local file
        self.process = await asyncio.create_subprocess_exec(
            daemon_command(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir),
            "--log-level",
            "WARNING",
            "--cache-size",
            "256M",
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.process.returncode is not None:
                raise RuntimeError(
                    f"embedded database exited with {self.process.returncode}; see {self.log_path}"
                )
            if port_is_open("127.0.0.1", self.port):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"embedded database did not open port {self.port} in {timeout:.0f} s")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def stop(self, timeout: float = 15.0) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
