"""The Rasa project trains, is cached by content, serves REST and survives a crash.

These run the real Rasa 3.6 from .venv-rasa (scripts/install_rasa.sh). The model
is cached under the default model cache, so only the first run on a machine pays
for training (seconds); starting `rasa run` costs about a minute each time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from bot.rasa_server import RasaServer
from bot.training import default_model_cache, ensure_model, project_hash
from tests.fake_rasa import fake_rasa

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "bot" / "rasa"
RASA_BIN = ROOT / ".venv-rasa" / "bin" / "rasa"

GREET_TEXT = (
    "Hi, I'm the Northwind assistant. I can check your balance, report an outage, "
    "explain how to pay a bill, answer questions, or connect you to an agent."
)

# Phrasings that are not in data/nlu.yml; the hub relies on these being right.
UNSEEN = {
    "what is my balance": "check_balance",
    "I want to talk to a human": "talk_to_agent",
    "there's a power cut on my street": "report_outage",
    "how do I pay my bill": "pay_bill",
    "when are you open": "opening_hours",
    "how do I set up my router": "ask_faq",
    "put me through to a real person": "talk_to_agent",
    "the electricity is out in my building": "report_outage",
    "how much money do I owe": "check_balance",
    "can I pay with a debit card": "pay_bill",
    "how do I reset my password": "ask_faq",
    "are you open on sunday": "opening_hours",
    "tell me a joke": "out_of_scope",
}

pytestmark = [
    pytest.mark.rasa,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not RASA_BIN.exists(), reason="Rasa not installed (scripts/install_rasa.sh)"),
]


def _free_port() -> int:
    """A port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log_tail(path: Path, lines: int = 40) -> str:
    """End of the Rasa log, for failure messages."""
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def test_project_hash_is_stable_and_tracks_nlu_changes(tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns(".rasa", "models"))
    original = project_hash(PROJECT)
    assert len(original) == 16
    assert project_hash(copy) == original
    assert project_hash(copy) == original

    # credentials.yml does not change what the model learns.
    (copy / "credentials.yml").write_text("rest:\nsocketio:\n")
    assert project_hash(copy) == original

    nlu = copy / "data" / "nlu.yml"
    nlu.write_text(nlu.read_text().replace("- hiya\n", "- hiya\n      - hey ho\n", 1))
    changed = project_hash(copy)
    assert changed != original

    (copy / "data" / "extra.yml").write_text('version: "3.1"\n')
    assert project_hash(copy) not in {original, changed}


def test_ensure_model_trains_once_then_uses_cache() -> None:
    cache = default_model_cache()
    messages: list[str] = []
    started = time.monotonic()
    model = ensure_model(PROJECT, RASA_BIN, cache, log=messages.append)
    elapsed = time.monotonic() - started
    assert model == cache / f"{project_hash(PROJECT)}.tar.gz"
    assert model.is_file() and model.stat().st_size > 10_000
    trained = any("training" in m for m in messages)
    print(f"first ensure_model: {elapsed:.1f} s, trained={trained}, messages={messages}")

    mtime = model.stat().st_mtime_ns
    again: list[str] = []
    started = time.monotonic()
    assert ensure_model(PROJECT, RASA_BIN, cache, log=again.append) == model
    assert time.monotonic() - started < 1.0
    assert again == []
    assert model.stat().st_mtime_ns == mtime
    assert not (PROJECT / ".rasa").exists(), "training must not litter the project folder"


def test_ensure_model_concurrent_callers_train_once(tmp_path: Path) -> None:
    fake, calls = fake_rasa(tmp_path)
    cache = tmp_path / "cache"
    logs: list[str] = []
    lock = threading.Lock()

    def log(msg: str) -> None:
        with lock:
            logs.append(msg)

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: ensure_model(PROJECT, fake, cache, log=log), range(3)))
    assert len(set(results)) == 1 and results[0].read_bytes() == b"model"
    assert len(calls.read_text().splitlines()) == 1
    assert sum("reusing" in m for m in logs) == 2
    # Nothing but the model and the lock file stays in the cache.
    assert sorted(p.name for p in cache.iterdir()) == sorted([results[0].name, ".train.lock"])


def test_ensure_model_failure_reports_rasa_output(tmp_path: Path) -> None:
    failure = ["line one of the output", "YamlValidationException: broken domain"]
    fake, _ = fake_rasa(tmp_path, failure=failure)
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="YamlValidationException: broken domain"):
        ensure_model(PROJECT, fake, cache)
    assert [p.name for p in cache.iterdir()] == [".train.lock"]


@pytest.fixture(scope="module")
async def rasa_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RasaServer]:
    """One real `rasa run` for the module, already under watch()."""
    model = ensure_model(PROJECT, RASA_BIN, default_model_cache())
    work_dir = tmp_path_factory.mktemp("rasa-run")
    # Nothing listens there: the messages below never call a custom action.
    action_url = f"http://127.0.0.1:{_free_port()}/webhooks/actions"
    server = RasaServer(RASA_BIN, PROJECT, model, _free_port(), action_url, work_dir)
    started = time.monotonic()
    await server.start()
    if not await server.wait_ready(timeout=240):
        await server.stop()
        pytest.fail(f"rasa did not start:\n{_log_tail(server.log_path)}")
    print(f"rasa ready in {time.monotonic() - started:.1f} s")
    assert server.state == "ready"
    watcher = asyncio.create_task(server.watch())
    try:
        yield server
    finally:
        await server.stop()
        await asyncio.wait_for(watcher, 30)
        assert server.state == "stopped" and server.pid is None


async def _say(server: RasaServer, sender: str, text: str) -> list[str]:
    """One REST-channel turn; returns the bot's texts."""
    async with httpx.AsyncClient(timeout=30) as client:
        resp = await client.post(
            f"{server.url}/webhooks/rest/webhook", json={"sender": sender, "message": text}
        )
    resp.raise_for_status()
    return [m["text"] for m in resp.json() if "text" in m]


async def test_rest_greeting(rasa_server: RasaServer) -> None:
    endpoints = yaml.safe_load(rasa_server.endpoints_path.read_text())
    assert endpoints["action_endpoint"]["url"] == rasa_server.action_url
    assert await _say(rasa_server, "t1", "hello") == [GREET_TEXT]


async def test_nlu_understands_unseen_phrasings(rasa_server: RasaServer) -> None:
    wrong: dict[str, tuple[str, float]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for text, expected in UNSEEN.items():
            resp = await client.post(f"{rasa_server.url}/model/parse", json={"text": text})
            resp.raise_for_status()
            intent = resp.json()["intent"]
            if intent["name"] != expected:
                wrong[text] = (intent["name"], intent["confidence"])
    assert wrong == {}


async def test_watch_restarts_after_crash(rasa_server: RasaServer) -> None:
    old_pid = rasa_server.pid
    assert old_pid is not None and rasa_server.restarts == 0
    os.killpg(old_pid, signal.SIGKILL)
    started = time.monotonic()
    deadline = started + 300
    while not (rasa_server.restarts == 1 and rasa_server.state == "ready"):
        assert time.monotonic() < deadline, f"no restart:\n{_log_tail(rasa_server.log_path)}"
        await asyncio.sleep(0.5)
    print(f"rasa restarted and ready in {time.monotonic() - started:.1f} s")
    assert rasa_server.pid not in (None, old_pid)
    assert await _say(rasa_server, "t1", "hello") == [GREET_TEXT]
    assert rasa_server.restarts == 1
