"""What the benchmarks share: progress logging, report figures, CPU time from /proc, the embedded
database and hub process they start, and an entry point that always cleans up what was started."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import math
import os
import resource
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from hub.context import AppContext
from hub.db import Database
from hub.embedded_db import EmbeddedDatabase, free_port
from hub.settings import Settings
from tests.support import HubProcess

Result = dict[str, Any]
"""A benchmark's JSON summary."""

# Process groups this run started; killed at exit if anything survived the normal stop.
_STARTED_PGIDS: list[int] = []


def log(text: str) -> None:
    """Progress on stderr, so stdout holds only the figures and the JSON line."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- figures --------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def rounded(value: float | None, digits: int = 1) -> float | None:
    """Round for the report, keeping None."""
    return None if value is None else round(value, digits)


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is zero."""
    return None if a is None or not b else round(a / b, 2)


# -- CPU time -------------------------------------------------------------------------------------


def _stat_fields(path: Path) -> list[str] | None:
    """The fields of a /proc `stat` file after the command name; None when it cannot be read."""
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc."""
    fields = _stat_fields(Path(f"/proc/{pid}/stat"))
    if fields is None:
        return 0.0
    ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU of one thread (the hub's main thread runs its event loop), from /proc."""
    fields = _stat_fields(Path(f"/proc/{pid}/task/{tid}/stat"))
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """User + system CPU of this process (the benchmark's own client side)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- database -------------------------------------------------------------------------------------


async def db_round_trips_ms(ctx: AppContext, calls: int) -> list[float]:
    """Latency of one small database round trip (find_one by _id), `calls` times in a row, in ms."""
    out: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        await ctx.db.tenants.find_one({"_id": "no-such-id"})
        out.append((time.perf_counter() - started) * 1000)
    return out


# -- the processes a run starts -------------------------------------------------------------------


def track_process_group(pgid: int) -> None:
    """Remember a process group this run started, for `kill_leftovers`."""
    _STARTED_PGIDS.append(pgid)


def kill_leftovers() -> None:
    """Last resort: SIGKILL the process groups this run started, if still there."""
    for pgid in _STARTED_PGIDS:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


class HubStack:
    """The embedded database and one hub process in a temporary directory.

    A benchmark's stack calls `start_database`, `open_context` and `start_hub` in the order it
    needs (adding its own parts) and `stop` at the end, which is safe after a partial start.
    """

    def __init__(self, root: Path, db_name: str) -> None:
        self.root = root
        self.db_name = db_name
        self.secret = secrets.token_urlsafe(32)
        self.db: EmbeddedDatabase | None = None
        self.hub: HubProcess | None = None
        self.ctx: AppContext | None = None
        self._hub_thread_done = threading.Event()

    async def start_database(self) -> EmbeddedDatabase:
        """Start the embedded database on a free port."""
        self.db = EmbeddedDatabase(self.root / "db" / "data", free_port(), self.root / "db" / "secantusd.log")
        await self.db.start()
        assert self.db.process is not None
        track_process_group(self.db.process.pid)
        log(f"embedded database on port {self.db.port}")
        return self.db

    async def open_context(self, **settings: Any) -> AppContext:
        """This process's access to the run's database, indexes ensured; `settings` adds Settings fields."""
        assert self.db is not None
        self.ctx = AppContext(
            settings=Settings(secret=self.secret, db_name=self.db_name, **settings),
            db=Database(self.db.uri, self.db_name),
        )
        await self.ctx.db.ensure_indexes()
        return self.ctx

    async def start_hub(
        self, rasa_url: str, port: int | None = None, env: dict[str, str] | None = None
    ) -> HubProcess:
        """Start `hub serve` against the run's database (port None: a free one); waits until it is up."""
        assert self.db is not None
        self.hub = HubProcess(
            self.root / "hub",
            self.db.uri,
            rasa_url,
            port=port,
            env={"HUB_SECRET": self.secret, "HUB_DB_NAME": self.db_name, **(env or {})},
        )
        await asyncio.to_thread(self._start_hub)
        return self.hub

    def _start_hub(self) -> None:
        assert self.hub is not None
        try:
            self.hub.start(120)
        finally:
            if self.hub.process is not None:
                track_process_group(self.hub.process.pid)
            self._hub_thread_done.set()

    async def stop(self) -> None:
        """Stop whatever was started, newest first; safe after a partial start."""
        await self.stop_hub()
        await self.stop_database()

    async def stop_hub(self) -> None:
        """Stop the hub process, if one was started."""
        if self.hub is not None:
            # a start still running in its thread may not have spawned the process yet
            for _ in range(100):
                if self.hub.process is not None or self._hub_thread_done.is_set():
                    break
                await asyncio.sleep(0.05)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.hub.stop)

    async def stop_database(self) -> None:
        """Close this process's database access, then stop the embedded database."""
        if self.ctx is not None:
            with contextlib.suppress(Exception):
                await self.ctx.db.close()
        if self.db is not None:
            with contextlib.suppress(Exception):
                await self.db.stop()


def clean_up_run_dir(root: Path, *, succeeded: bool, keep: bool, contents: str) -> None:
    """Delete the run's temporary directory after a success without --keep; else say where it is."""
    if succeeded and not keep:
        shutil.rmtree(root, ignore_errors=True)
    else:
        log(f"{contents} kept in {root}")


# -- entry point and report -----------------------------------------------------------------------


def run_to_completion(run: Callable[[], Coroutine[Any, Any, Result]]) -> Result:
    """Run the benchmark with SIGTERM cancelling it; exit 130 when interrupted and 1 on a
    RuntimeError, and always kill the process groups it left behind."""

    async def entry() -> Result:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await run()

    coroutine: Coroutine[Any, Any, Result] = entry()
    try:
        return asyncio.run(coroutine)
    except (KeyboardInterrupt, asyncio.CancelledError):
        log("interrupted")
        sys.exit(130)
    except RuntimeError as exc:
        log(f"error: {exc}")
        sys.exit(1)
    finally:
        kill_leftovers()


def print_report(
    title: str,
    rows: Sequence[tuple[str, str]],
    result: Result,
    *,
    name_width: int,
    console_width: int | None = None,
    ensure_ascii: bool = True,
) -> None:
    """Readable figures (a rich table when rich is installed), then the JSON line last."""
    if importlib.util.find_spec("rich") is not None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        table.add_column("figure")
        table.add_column("value")
        for name, value in rows:
            table.add_row(name, value)
        Console(width=console_width).print(table)
    else:
        print(title)
        for name, value in rows:
            print(f"  {name:{name_width}} {value}")
    sys.stdout.flush()
    print(json.dumps(result, ensure_ascii=ensure_ascii), flush=True)
