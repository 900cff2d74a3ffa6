"""Supervise a local `rasa run` server for the hub.

Rasa lives in its own virtual environment, so the hub runs it as a child process
bound to 127.0.0.1 and talks to it over HTTP. Rasa takes about a minute to start
(it imports TensorFlow), so readiness is polled rather than assumed, and a crashed
server is restarted with backoff instead of taking the bot down for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bot.training import rasa_env

logger = logging.getLogger(__name__)

STOP_GRACE_S = 10.0
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 30.0
HEALTHY_RESET_S = 60.0
POLL_INTERVAL_S = 0.5

STATES = ("starting", "ready", "restarting", "stopped", "failed")


class RasaServer:
    """One supervised `rasa run --enable-api` process and its state."""

    def __init__(
        self,
        rasa_bin: Path,
        project_dir: Path,
        model_path: Path,
        port: int,
        action_url: str,
        work_dir: Path,
        log_path: Path | None = None,
    ) -> None:
        self.rasa_bin = rasa_bin
        self.project_dir = project_dir
        self.model_path = model_path
        self.port = port
        self.action_url = action_url
        self.work_dir = work_dir
        self.log_path = log_path or work_dir / "rasa.log"
        self.restarts = 0
        self.state: str = "stopped"
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._ready_since: float | None = None

    @property
    def url(self) -> str:
        """Base URL of Rasa's HTTP API and REST channel."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Pid (and process-group id) of the running server, if any."""
        if self._proc is None or self._proc.returncode is not None:
            return None
        return self._proc.pid

    @property
    def endpoints_path(self) -> Path:
        """Generated endpoints.yml pointing Rasa's custom actions at the hub."""
        return self.work_dir / "endpoints.yml"

    def _write_endpoints(self) -> None:
        """Rasa reads the action server URL only from an endpoints file."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"action_endpoint": {"url": self.action_url}}
        self.endpoints_path.write_text(yaml.safe_dump(data, sort_keys=False))

    def _command(self) -> list[str]:
        """The `rasa run` command line (API on, loopback only)."""
        return [
            str(self.rasa_bin),
            "run",
            "--enable-api",
            "-i",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--model",
            str(self.model_path),
            "--endpoints",
            str(self.endpoints_path),
            "--credentials",
            str(self.project_dir / "credentials.yml"),
        ]

    async def start(self) -> None:
        """Spawn Rasa in its own process group so stop() can kill all of it."""
        self._stopping.clear()
        await self._spawn()

    async def _spawn(self) -> None:
        """Start the process unless one is running; the log file collects its output."""
        if self.pid is not None:
            return
        self._write_endpoints()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.state = "starting"
        self._ready_since = None
        with self.log_path.open("ab") as log_file:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log_file.write(f"\n=== {stamp} starting rasa (restart #{self.restarts}) ===\n".encode())
            log_file.flush()
            # The child gets its own copy of the descriptor; ours closes right away.
            self._proc = await asyncio.create_subprocess_exec(
                *self._command(),
                cwd=self.work_dir,
                env=rasa_env(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        logger.info("rasa started (pid %s, port %s)", self._proc.pid, self.port)
        if self._stopping.is_set():
            # stop() ran while we were spawning: do not leave an orphan behind.
            await self._kill_group()
            self.state = "stopped"

    async def _status_ok(self, client: httpx.AsyncClient) -> bool:
        """True when /status answers 200 and names a loaded model."""
        try:
            resp = await client.get(f"{self.url}/status")
        except httpx.HTTPError:
            return False
        if resp.status_code != 200:
            return False
        try:
            body = resp.json()
        except ValueError:
            return False
        return isinstance(body, dict) and bool(body.get("model_file") or body.get("fingerprint"))

    async def wait_ready(self, timeout: float = 180) -> bool:
        """Poll /status until a model is loaded; False if Rasa exits or time runs out."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                proc = self._proc
                if proc is None or proc.returncode is not None or self._stopping.is_set():
                    return False
                if await self._status_ok(client):
                    self.state = "ready"
                    self._ready_since = time.monotonic()
                    logger.info("rasa ready at %s", self.url)
                    return True
                await asyncio.sleep(POLL_INTERVAL_S)
        return False

    async def _kill_group(self) -> None:
        """SIGTERM the whole process group, SIGKILL it if it lingers."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                logger.warning("rasa (pid %s) ignored SIGTERM, killing it", proc.pid)
        # Also reap stragglers left in the group after the leader exited.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def stop(self) -> None:
        """Stop the server for good and make watch() return."""
        self._stopping.set()
        await self._kill_group()
        self.state = "stopped"

    async def _sleep_unless_stopped(self, delay: float) -> bool:
        """Sleep `delay` seconds; True if stop() was called meanwhile."""
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return False
        return True

    async def _wait_exit_or_stop(self, proc: asyncio.subprocess.Process) -> None:
        """Return when the process exits or stop() is called, whichever is first."""
        exit_task = asyncio.create_task(proc.wait())
        stop_task = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({exit_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (exit_task, stop_task):
                task.cancel()
            await asyncio.gather(exit_task, stop_task, return_exceptions=True)

    async def _spawn_and_wait(self) -> None:
        """(Re)start and wait for readiness; a server that never gets ready is killed."""
        try:
            await self._spawn()
        except OSError as exc:
            logger.error("cannot start rasa: %s", exc)
            self.state = "failed"
            return
        if await self.wait_ready() or self._stopping.is_set():
            return
        self.state = "failed"
        if self.pid is not None:
            # Alive but never became ready: kill it so watch() restarts it.
            logger.warning("rasa did not become ready; killing pid %s", self.pid)
            await self._kill_group()

    async def watch(self) -> None:
        """Keep Rasa running until stop(): restart on exit with exponential backoff."""
        backoff = BACKOFF_INITIAL_S
        if self._proc is None and not self._stopping.is_set():
            await self._spawn_and_wait()
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            await self._wait_exit_or_stop(proc)
            if self._stopping.is_set():
                return
            if proc.returncode is None:
                continue
            ready_for = time.monotonic() - self._ready_since if self._ready_since is not None else 0.0
            if ready_for >= HEALTHY_RESET_S:
                backoff = BACKOFF_INITIAL_S
            logger.warning(
                "rasa exited with code %s after %.0f s ready; restarting in %.0f s",
                proc.returncode,
                ready_for,
                backoff,
            )
            self.state = "restarting"
            self._ready_since = None
            # Clean up anything left in the old process group before respawning.
            await self._kill_group()
            if await self._sleep_unless_stopped(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            self.restarts += 1
            await self._spawn_and_wait()
