"""Web-chat benchmark: N concurrent widget sessions talking to the real Rasa bot through the hub.

    python -m bench.chat [--sessions 100] [--messages 5] [--hub-url URL --tenant SLUG [--rasa-url URL]]

Without --hub-url it starts, on free ports in a temporary directory, the embedded
database, the real Rasa server (its custom actions pointing at the hub) and a hub
process, and seeds the demo tenant. Each session says hello, then sends its
messages one after another, waiting for the ack and the bot's first reply before
the next. Reply latency runs from sending the message frame to receiving the first
bot message for it. At the end every transcript is replayed (reconnect with
last_seq=0) and, when the benchmark owns the database, read from MongoDB, to count
lost and duplicated messages. For comparison on a noisy machine the same texts are
sent straight to Rasa's REST channel, sequentially and with the same concurrency.

Readable figures go to stdout; its last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pymongo.errors import PyMongoError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.common import (
    HubStack,
    clean_up_run_dir,
    db_round_trips_ms,
    log,
    own_cpu_seconds,
    percentile,
    print_report,
    process_cpu_seconds,
    ratio,
    rounded,
    run_to_completion,
    track_process_group,
)
from bot.actions import FALLBACK_TEXT, HANDOFF_TEXT, action_token
from bot.rasa_server import RasaServer
from bot.training import default_model_cache, ensure_model
from bot.turns import UNAVAILABLE_TEXT
from hub.contacts import open_contact
from hub.context import AppContext
from hub.db import Doc
from hub.demo import DEMO_TENANT, seed_demo
from hub.embedded_db import free_port
from hub.rasa_supervisor import RASA_BIN, RASA_PROJECT

# Messages the bot answers by itself (no handoff); the router one is an FAQ from the KB.
TEXTS = ("hello", "when are you open", "how do I pay my bill", "how do I set up my router", "thanks")
HANDOFF_TEXTS = {HANDOFF_TEXT, FALLBACK_TEXT, UNAVAILABLE_TEXT}
DB_NAME = "bench"
BOT_CLIENT_ID = re.compile(r"^bot:([0-9a-f]{32}):")
VERIFY_CONCURRENCY = 20
CLOSE_UNKNOWN_TENANT = 4404


def texts_for(session: int, count: int) -> list[str]:
    """The session's messages: the mix, rotated per session so turns interleave."""
    return [TEXTS[(session + i) % len(TEXTS)] for i in range(count)]


# -- the widget client ---------------------------------------------------------------------------


@dataclass
class Sent:
    """One visitor message and what came back for it."""

    client_id: str
    text: str
    t_sent: float
    ack_id: str | None = None
    ack_seq: int | None = None
    ack_ms: float | None = None
    reply_ms: float | None = None
    reply_text: str | None = None


class ChatClient:
    """A widget session (docs/protocol.md) that records timings, frames and reconnects."""

    def __init__(self, ws_url: str, tenant: str, name: str, timeout: float, max_reconnects: int = 5) -> None:
        self.url = f"{ws_url}/ws/chat?tenant={tenant}"
        self.name = name
        self.timeout = timeout
        self.max_reconnects = max_reconnects
        self.ws: ClientConnection | None = None
        self.token: str | None = None
        self.contact_id: str | None = None
        self.last_seq = 0
        self.welcomed = False
        self.sent: list[Sent] = []
        self.by_client: dict[str, Sent] = {}
        self.received: Counter[str] = Counter()  # message id -> frames received
        self.first_seen: dict[str, float] = {}  # message id -> perf_counter at first receipt
        self.messages: dict[str, dict[str, Any]] = {}
        self.replies: dict[str, list[str]] = {}  # visitor message id -> bot message ids
        self.statuses: list[str] = []
        self.errors: list[str] = []
        self.reconnects = 0

    async def connect(self) -> None:
        """Open the socket, say hello (resuming token, contact and seq) and wait for welcome."""
        self.ws = await connect(self.url, max_size=2**22, open_timeout=self.timeout, ping_interval=None)
        self.welcomed = False
        hello = {
            "type": "hello",
            "visitor_token": self.token,
            "contact_id": self.contact_id,
            "last_seq": self.last_seq,
        }
        await self.ws.send(json.dumps(hello))
        if not await self.recv_until(lambda: self.welcomed, time.perf_counter() + self.timeout):
            raise TimeoutError("no welcome")

    async def close(self) -> None:
        """Close the socket if open."""
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
            self.ws = None

    async def recv_until(self, done: Callable[[], bool], deadline: float) -> bool:
        """Handle frames until done() holds (True) or the deadline passes (False)."""
        while not done():
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or self.ws is None:
                return False
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except TimeoutError:
                return done()
            self.handle(json.loads(raw), time.perf_counter())
        return True

    def handle(self, frame: dict[str, Any], now: float) -> None:
        """Record one hub frame."""
        kind = frame.get("type")
        if frame.get("contact_id"):
            self.contact_id = frame["contact_id"]
        if kind == "welcome":
            self.welcomed = True
            self.token = frame["visitor_token"]
        elif kind == "ack":
            self._acked(self.by_client.get(frame["client_id"]), frame["id"], frame["seq"], now)
        elif kind == "message":
            self._message(frame, now)
        elif kind == "status":
            self.statuses.append(frame["status"])
        elif kind == "error":
            self.errors.append(f"error frame {frame.get('code')}: {frame.get('message')}")

    def _acked(self, sent: Sent | None, message_id: str, seq: int, now: float) -> None:
        if sent is not None and sent.ack_id is None:
            sent.ack_id, sent.ack_seq = message_id, seq
            sent.ack_ms = (now - sent.t_sent) * 1000

    def _message(self, frame: dict[str, Any], now: float) -> None:
        message_id = frame["id"]
        self.received[message_id] += 1
        if message_id in self.messages:
            return
        self.messages[message_id] = frame
        self.first_seen[message_id] = now
        self.last_seq = max(self.last_seq, frame["seq"])
        if frame["author"] == "visitor" and frame.get("client_id") in self.by_client:
            # after a reconnect the stored echo stands in for a lost ack
            self._acked(self.by_client[frame["client_id"]], message_id, frame["seq"], now)
        elif frame["author"] == "bot":
            visitor_id = self._visitor_message_for(frame)
            if visitor_id is not None:
                self.replies.setdefault(visitor_id, []).append(message_id)

    def _visitor_message_for(self, frame: dict[str, Any]) -> str | None:
        """The visitor message a bot message answers: from its client_id, else by seq."""
        match = BOT_CLIENT_ID.match(frame.get("client_id") or "")
        if match:
            return match.group(1)
        earlier = [s for s in self.sent if s.ack_seq is not None and s.ack_seq < frame["seq"]]
        return max(earlier, key=lambda s: s.ack_seq or 0).ack_id if earlier else None

    async def say(self, text: str) -> Sent:
        """Send one message; wait for its ack and the bot's first reply (reconnecting if need be)."""
        sent = Sent(f"{self.name}-{len(self.sent) + 1}-{uuid.uuid4().hex[:8]}", text, time.perf_counter())
        self.sent.append(sent)
        self.by_client[sent.client_id] = sent
        deadline = sent.t_sent + self.timeout
        frame = json.dumps({"type": "message", "client_id": sent.client_id, "text": text})
        needs_send = True
        while time.perf_counter() < deadline:
            try:
                if self.ws is None:
                    await self._reconnect()
                    needs_send = sent.ack_id is None  # the widget resends what has no ack
                assert self.ws is not None
                if needs_send:
                    await self.ws.send(frame)
                    needs_send = False
                if not await self.recv_until(lambda: sent.ack_id is not None, deadline):
                    break
                if await self.recv_until(lambda: bool(self.replies.get(sent.ack_id or "")), deadline):
                    first = self.replies[sent.ack_id or ""][0]
                    sent.reply_ms = (self.first_seen[first] - sent.t_sent) * 1000
                    sent.reply_text = self.messages[first]["text"]
                break
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                await self.close()
                if isinstance(exc, ConnectionClosed) and exc.rcvd and exc.rcvd.code == CLOSE_UNKNOWN_TENANT:
                    self.reconnects = self.max_reconnects  # the widget gives up on 4404 too
                if self.reconnects >= self.max_reconnects:
                    break
        return sent

    async def _reconnect(self) -> None:
        """Back off (0.5 s doubling, as the widget does) and connect again."""
        delay = min(0.5 * 2**self.reconnects, 10.0)
        self.reconnects += 1
        await asyncio.sleep(delay)
        await self.connect()


async def replay_transcript(
    ws_url: str, tenant: str, token: str, contact_id: str, wait_s: float
) -> list[dict[str, Any]]:
    """Every stored message of a contact, as a reconnect with last_seq=0 replays it."""
    url = f"{ws_url}/ws/chat?tenant={tenant}"
    frames: list[dict[str, Any]] = []
    async with connect(url, max_size=2**24, open_timeout=wait_s, ping_interval=None) as ws:
        await ws.send(
            json.dumps({"type": "hello", "visitor_token": token, "contact_id": contact_id, "last_seq": 0})
        )
        # hello() sends the whole replay before the hub reads the next frame, so pong ends it
        await ws.send(json.dumps({"type": "ping"}))
        async with asyncio.timeout(wait_s):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "welcome" and frame["contact_id"] != contact_id:
                    raise RuntimeError(f"replay opened {frame['contact_id']}, not {contact_id}")
                if frame["type"] == "message":
                    frames.append(frame)
                elif frame["type"] == "pong":
                    return frames


# -- direct Rasa baseline -------------------------------------------------------------------------


async def rasa_conversation(
    http: httpx.AsyncClient, rasa_url: str, sender: str, texts: Sequence[str]
) -> tuple[list[float], int]:
    """Send texts to Rasa's REST channel in turn; (latencies in ms, failed calls)."""
    latencies: list[float] = []
    failures = 0
    for text in texts:
        started = time.perf_counter()
        try:
            response = await http.post(
                f"{rasa_url}/webhooks/rest/webhook", json={"sender": sender, "message": text}
            )
            answered = response.status_code == 200 and bool(response.json())
        except (httpx.HTTPError, ValueError):
            answered = False
        if answered:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            failures += 1
    return latencies, failures


# -- the stack this benchmark starts --------------------------------------------------------------


class LocalStack(HubStack):
    """Embedded database, real Rasa and one hub process, in a temporary directory."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, DB_NAME)
        self.rasa: RasaServer | None = None

    async def start(self) -> None:
        """Start everything and seed the demo tenant; raises if a part does not come up."""
        db = await self.start_database()
        model = await asyncio.to_thread(ensure_model, RASA_PROJECT, RASA_BIN, default_model_cache(), log)
        hub_port = free_port()
        rasa_port = free_port()
        while rasa_port in (hub_port, db.port):
            rasa_port = free_port()
        action_url = f"http://127.0.0.1:{hub_port}/webhooks/actions?token={action_token(self.secret)}"
        self.rasa = RasaServer(RASA_BIN, RASA_PROJECT, model, rasa_port, action_url, self.root / "rasa")
        await self.rasa.start()
        if self.rasa.pid is not None:
            track_process_group(self.rasa.pid)
        log(f"rasa starting on port {rasa_port} (model {model.name}); log {self.rasa.log_path}")
        hub = await self.start_hub(self.rasa.url, port=hub_port)
        log(f"hub on {hub.url}; log {hub.var_dir}")
        ctx = await self.open_context(port=hub_port)
        await seed_demo(ctx)
        log("demo tenant seeded")
        if not await self.rasa.wait_ready(300):
            raise RuntimeError(f"Rasa did not get ready; see {self.rasa.log_path}")
        await wait_hub_healthy(hub.url, 60)
        log("rasa ready, hub healthy")

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each started process (and this one)."""
        out = {"bench": own_cpu_seconds()}
        pids = {
            "hub": self.hub.process.pid if self.hub and self.hub.process else None,
            "rasa": self.rasa.pid if self.rasa else None,
            "db": self.db.process.pid if self.db and self.db.process else None,
        }
        for name, pid in pids.items():
            if pid is not None:
                out[name] = process_cpu_seconds(pid)
        return out

    async def stop(self) -> None:
        """Stop whatever was started, newest first; safe after a partial start."""
        await self.stop_hub()
        if self.rasa is not None:
            with contextlib.suppress(Exception):
                await self.rasa.stop()
        await self.stop_database()


async def wait_hub_healthy(url: str, wait_s: float) -> None:
    """Poll /healthz until the hub reports db and rasa ok."""
    deadline = time.monotonic() + wait_s
    body: Any = None
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                body = (await http.get(f"{url}/healthz")).json()
                if body.get("status") == "ok":
                    return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"hub not healthy: {body}")


# -- phases ---------------------------------------------------------------------------------------


@dataclass
class Target:
    """Where to send traffic, and database access when this run owns the database."""

    http_url: str
    ws_url: str
    tenant: str
    rasa_url: str | None
    ctx: AppContext | None = None


@dataclass
class LoadResult:
    """The widget sessions of one load phase."""

    clients: list[ChatClient]
    elapsed_s: float
    loop_lag_ms: list[float] = field(default_factory=list)


async def run_sessions(
    target: Target, sessions: int, messages: int, wait_s: float, label: str = "s"
) -> LoadResult:
    """Run the widget sessions all at once; each sends its messages in turn."""
    clients = [ChatClient(target.ws_url, target.tenant, f"{label}{i}", wait_s) for i in range(sessions)]

    async def one(index: int, client: ChatClient) -> None:
        try:
            await client.connect()
        except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
            client.errors.append(f"connect: {type(exc).__name__}: {exc}")
            await client.close()
            if isinstance(exc, ConnectionClosed) and exc.rcvd and exc.rcvd.code == CLOSE_UNKNOWN_TENANT:
                return
        for text in texts_for(index, messages):
            await client.say(text)
        await client.close()

    lags: list[float] = []
    stop = asyncio.Event()

    async def watch_loop() -> None:
        """This process's own event-loop lag: large values mean the client itself is a bottleneck."""
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.1)
            lags.append((time.perf_counter() - before - 0.1) * 1000)

    watcher = asyncio.create_task(watch_loop())
    started = time.perf_counter()
    try:
        await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        await watcher
    return LoadResult(clients, elapsed, lags)


async def rasa_baseline(
    rasa_url: str, senders: list[str], messages: int, concurrent: bool
) -> tuple[list[float], int, float]:
    """The same texts straight to Rasa; one conversation per sender. (latencies, failures, seconds)."""
    limits = httpx.Limits(max_connections=max(10, len(senders)), max_keepalive_connections=len(senders))
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        started = time.perf_counter()
        calls = [
            rasa_conversation(http, rasa_url, sender, texts_for(i, messages))
            for i, sender in enumerate(senders)
        ]
        if concurrent:
            results = await asyncio.gather(*calls)
        else:
            results = [await call for call in calls]
        elapsed = time.perf_counter() - started
    return [v for lat, _ in results for v in lat], sum(f for _, f in results), elapsed


async def rasa_senders(target: Target, count: int, known: Sequence[str] = ()) -> list[str]:
    """Sender ids for direct Rasa calls, which must be contacts of the hub.

    Rasa's custom actions (the FAQ answer) look the sender up as a contact in the hub.
    With database access each sender is a fresh contact of the tenant; without it the
    contacts the widget sessions made (`known`) carry on their conversations.
    """
    if target.ctx is None:
        if not known:
            return [f"bench-{uuid.uuid4().hex}" for _ in range(count)]
        return [known[i % len(known)] for i in range(count)]
    tenant = await target.ctx.db.tenants.find_one({"slug": target.tenant})
    assert tenant is not None, f"no tenant {target.tenant}"
    return [
        (await open_contact(target.ctx, tenant["_id"], "webchat", visitor_id=f"bench-{uuid.uuid4().hex}"))[
            "_id"
        ]
        for _ in range(count)
    ]


async def db_requests(ctx: AppContext | None) -> int | None:
    """Wire requests the database server has answered so far (serverStatus), if it says."""
    if ctx is None:
        return None
    try:
        status = await ctx.db.client.admin.command("serverStatus")
        return int(status["network"]["numRequests"])
    except (PyMongoError, KeyError, TypeError, ValueError):
        return None


@dataclass
class Verdict:
    """Lost and duplicated messages, by (session, client_id) key where it applies."""

    no_ack: set[tuple[str, str]] = field(default_factory=set)
    no_reply: set[tuple[str, str]] = field(default_factory=set)
    missing_stored: set[tuple[str, str]] = field(default_factory=set)
    dup_stored: set[tuple[str, str]] = field(default_factory=set)
    dup_seq: set[tuple[str, int]] = field(default_factory=set)  # (contact_id, seq) stored twice
    dup_bot_received: int = 0
    late_replies: int = 0
    out_of_order: int = 0
    pending_in_db: int = 0
    replay_failures: int = 0
    handoffs: int = 0

    @property
    def lost(self) -> int:
        """Messages with no ack, no reply in time, or missing from the transcript."""
        return len(self.no_ack | self.no_reply | self.missing_stored)

    @property
    def duplicated(self) -> int:
        """Visitor messages or seqs stored twice, plus bot replies received twice."""
        return len(self.dup_stored) + len(self.dup_seq) + self.dup_bot_received


def check_received(clients: list[ChatClient], verdict: Verdict) -> None:
    """What the sessions saw live: missing acks and replies, bot replies received twice."""
    for client in clients:
        for sent in client.sent:
            key = (client.name, sent.client_id)
            if sent.ack_id is None:
                verdict.no_ack.add(key)
            elif sent.reply_ms is None:
                verdict.no_reply.add(key)
            if sent.reply_text in HANDOFF_TEXTS:
                verdict.handoffs += 1
        for bot_ids in client.replies.values():
            per_client_id = Counter(client.messages[m].get("client_id") or m for m in bot_ids)
            verdict.dup_bot_received += sum(n - 1 for n in per_client_id.values())
            verdict.dup_bot_received += sum(client.received[m] - 1 for m in bot_ids)


def check_transcript(client: ChatClient, frames: list[dict[str, Any]], verdict: Verdict) -> None:
    """Compare a replayed transcript with what the session sent."""
    visitor = [f for f in sorted(frames, key=lambda f: f["seq"]) if f["author"] == "visitor"]
    stored = Counter(f.get("client_id") for f in visitor)
    seqs = Counter(f["seq"] for f in frames)
    verdict.dup_seq.update((client.contact_id or "", seq) for seq, n in seqs.items() if n > 1)
    for sent in client.sent:
        key = (client.name, sent.client_id)
        if stored[sent.client_id] == 0:
            verdict.missing_stored.add(key)
        elif stored[sent.client_id] > 1:
            verdict.dup_stored.add(key)
        if key in verdict.no_reply and any(
            BOT_CLIENT_ID.match(f.get("client_id") or "") and f["client_id"].split(":")[1] == sent.ack_id
            for f in frames
        ):
            verdict.late_replies += 1
    order = list(dict.fromkeys(f.get("client_id") for f in visitor if f.get("client_id") in client.by_client))
    expected = [s.client_id for s in client.sent if s.client_id in order]
    if order != expected:
        verdict.out_of_order += 1


async def verify(target: Target, clients: list[ChatClient], wait_s: float) -> Verdict:
    """Replay every session's transcript (and read the database when we own it)."""
    verdict = Verdict()
    check_received(clients, verdict)
    limit = asyncio.Semaphore(VERIFY_CONCURRENCY)

    async def replay(client: ChatClient) -> None:
        if not client.sent:
            return
        if client.token is None or client.contact_id is None:
            verdict.missing_stored.update((client.name, s.client_id) for s in client.sent)
            return
        async with limit:
            try:
                frames = await replay_transcript(
                    target.ws_url, target.tenant, client.token, client.contact_id, wait_s
                )
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError, RuntimeError) as exc:
                verdict.replay_failures += 1
                client.errors.append(f"replay: {type(exc).__name__}: {exc}")
                return
        check_transcript(client, frames, verdict)

    await asyncio.gather(*(replay(c) for c in clients))
    if target.ctx is not None:
        await check_database(target.ctx, clients, verdict)
    return verdict


async def check_database(ctx: AppContext, clients: list[ChatClient], verdict: Verdict) -> None:
    """The stored transcripts straight from MongoDB: per-contact client_id and seq uniqueness."""
    contact_ids = [c.contact_id for c in clients if c.contact_id]
    stored: list[Doc] = [
        m async for m in ctx.db.messages.find({"contact_id": {"$in": contact_ids}}, {"text": 0, "data": 0})
    ]
    by_contact: dict[str, list[Doc]] = {}
    for message in stored:
        by_contact.setdefault(message["contact_id"], []).append(message)
    for client in clients:
        rows = by_contact.get(client.contact_id or "", [])
        counts = Counter(m.get("client_id") for m in rows if m["author"] == "visitor")
        seqs = Counter(m["seq"] for m in rows)
        verdict.dup_seq.update((client.contact_id or "", seq) for seq, n in seqs.items() if n > 1)
        verdict.pending_in_db += sum(1 for m in rows if m.get("bot_state") == "pending")
        for sent in client.sent:
            key = (client.name, sent.client_id)
            if counts[sent.client_id] == 0 and client.contact_id:
                verdict.missing_stored.add(key)
            elif counts[sent.client_id] > 1:
                verdict.dup_stored.add(key)


# -- the run --------------------------------------------------------------------------------------


def group_by_text(clients: list[ChatClient]) -> dict[str, list[Sent]]:
    """Sent messages by their text, in TEXTS order."""
    out: dict[str, list[Sent]] = {}
    for sent in sorted((s for c in clients for s in c.sent), key=lambda s: TEXTS.index(s.text)):
        out.setdefault(sent.text, []).append(sent)
    return out


def latencies(clients: list[ChatClient]) -> tuple[list[float], list[float]]:
    """(reply latencies, ack latencies) in ms over all sessions."""
    sent = [s for c in clients for s in c.sent]
    reply = [s.reply_ms for s in sent if s.reply_ms is not None]
    return reply, [s.ack_ms for s in sent if s.ack_ms is not None]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """All phases; returns the JSON summary."""
    run_started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    stack: LocalStack | None = None
    ok = False
    try:
        if args.hub_url:
            http_url = args.hub_url.rstrip("/")
            target = Target(
                http_url,
                re.sub(r"^http", "ws", http_url),
                args.tenant,
                args.rasa_url.rstrip("/") if args.rasa_url else None,
            )
        else:
            stack = LocalStack(root)
            await stack.start()
            assert stack.hub is not None and stack.rasa is not None
            target = Target(stack.hub.url, stack.hub.ws_url, DEMO_TENANT, stack.rasa.url, stack.ctx)
        setup_s = time.perf_counter() - run_started
        log(f"setup took {setup_s:.1f} s; warming up (1 session, {len(TEXTS)} messages)")
        warm = await run_sessions(target, 1, len(TEXTS), args.timeout, label="warm")
        warm_replies = [s.reply_text for s in warm.clients[0].sent]
        if not any(warm_replies):
            raise RuntimeError(f"warm-up session got no bot reply: {warm.clients[0].errors[:3]}")
        if any(r is None or r in HANDOFF_TEXTS for r in warm_replies):
            log(f"warning: warm-up replies {warm_replies!r}")
        warm_contacts = [c.contact_id for c in warm.clients if c.contact_id]
        if target.rasa_url:
            senders = await rasa_senders(target, 1, warm_contacts)
            await rasa_baseline(target.rasa_url, senders, len(TEXTS), False)

        async def sequential_baseline(known: list[str]) -> tuple[list[float], int]:
            if not target.rasa_url:
                return [], 0
            conversations = max(1, math.ceil(args.baseline_calls / args.messages))
            log(f"direct Rasa, sequential: {conversations} conversations x {args.messages} messages")
            senders = await rasa_senders(target, conversations, known)
            latencies, failures, _ = await rasa_baseline(target.rasa_url, senders, args.messages, False)
            return latencies, failures

        if target.ctx is not None:  # before the load, on fresh contacts
            rasa_seq, rasa_seq_fail = await sequential_baseline([])
        db_lat = await db_round_trips_ms(target.ctx, 200) if target.ctx else []
        log(f"load: {args.sessions} sessions x {args.messages} messages")
        cpu_before = stack.cpu_seconds() if stack else {}
        requests_before = await db_requests(target.ctx)
        load = await run_sessions(target, args.sessions, args.messages, args.timeout)
        requests_after = await db_requests(target.ctx)
        cpu_after = stack.cpu_seconds() if stack else {}
        log(f"load took {load.elapsed_s:.1f} s; verifying transcripts")
        verdict = await verify(target, load.clients, args.timeout)
        load_contacts = [c.contact_id for c in load.clients if c.contact_id]
        if target.ctx is None:  # after the load, carrying on the sessions' conversations
            rasa_seq, rasa_seq_fail = await sequential_baseline(load_contacts)
        rasa_conc: list[float] = []
        rasa_conc_fail = 0
        rasa_conc_s = 0.0
        if target.rasa_url and not args.no_concurrent_baseline:
            log(f"direct Rasa, concurrent: {args.sessions} conversations x {args.messages} messages")
            rasa_conc, rasa_conc_fail, rasa_conc_s = await rasa_baseline(
                target.rasa_url, await rasa_senders(target, args.sessions, load_contacts), args.messages, True
            )
        result = summarise(
            args, load, verdict, rasa_seq, rasa_seq_fail, rasa_conc, rasa_conc_fail, rasa_conc_s, setup_s
        )
        result["cpu_s"] = {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 1) for k in cpu_after}
        result["db_p50_ms"] = rounded(percentile(db_lat, 50), 2)
        sent = result["messages"]
        result["db_requests_per_message"] = (
            round((requests_after - requests_before) / sent, 1)
            if requests_after is not None and requests_before is not None and sent
            else None
        )
        result["total_s"] = round(time.perf_counter() - run_started, 1)
        ok = True
        return result
    finally:
        if stack is not None:
            log("stopping hub, rasa and database")
            await stack.stop()
        clean_up_run_dir(root, succeeded=ok, keep=args.keep, contents="logs and data")


def summarise(
    args: argparse.Namespace,
    load: LoadResult,
    verdict: Verdict,
    rasa_seq: list[float],
    rasa_seq_fail: int,
    rasa_conc: list[float],
    rasa_conc_fail: int,
    rasa_conc_s: float,
    setup_s: float,
) -> dict[str, Any]:
    """The JSON summary of a run."""
    reply, ack = latencies(load.clients)
    sent = sum(len(c.sent) for c in load.clients)
    errors = Counter(e.split(":")[0] for c in load.clients for e in c.errors)
    p50 = percentile(reply, 50)
    rasa_p50 = percentile(rasa_seq, 50)
    rasa_conc_p50 = percentile(rasa_conc, 50)
    return {
        "mode": "external" if args.hub_url else "local",
        "sessions": args.sessions,
        "messages": sent,
        "replied": len(reply),
        "elapsed_s": round(load.elapsed_s, 2),
        "messages_per_s": round(len(reply) / load.elapsed_s, 2) if load.elapsed_s else None,
        "p50_ms": rounded(p50),
        "p95_ms": rounded(percentile(reply, 95)),
        "p99_ms": rounded(percentile(reply, 99)),
        "max_ms": rounded(max(reply, default=None)),
        "ack_p50_ms": rounded(percentile(ack, 50)),
        "ack_p95_ms": rounded(percentile(ack, 95)),
        "p50_by_text_ms": {
            text: rounded(percentile([s.reply_ms for s in by_text if s.reply_ms is not None], 50))
            for text, by_text in group_by_text(load.clients).items()
        },
        "lost": verdict.lost,
        "duplicated": verdict.duplicated,
        "lost_detail": {
            "no_ack": len(verdict.no_ack),
            "no_reply": len(verdict.no_reply),
            "missing_stored": len(verdict.missing_stored),
            "late_replies": verdict.late_replies,
        },
        "duplicated_detail": {
            "stored_twice": len(verdict.dup_stored),
            "seq_twice": len(verdict.dup_seq),
            "bot_reply_received_twice": verdict.dup_bot_received,
        },
        "out_of_order": verdict.out_of_order,
        "pending_in_db": verdict.pending_in_db,
        "handoffs": verdict.handoffs,
        "replay_failures": verdict.replay_failures,
        "reconnects": sum(c.reconnects for c in load.clients),
        "errors": dict(errors),
        "rasa_p50_ms": rounded(rasa_p50),
        "rasa_p95_ms": rounded(percentile(rasa_seq, 95)),
        "rasa_calls": len(rasa_seq) + rasa_seq_fail,
        "rasa_failures": rasa_seq_fail,
        "hub_overhead_ratio": ratio(p50, rasa_p50),
        "rasa_concurrent_p50_ms": rounded(rasa_conc_p50),
        "rasa_concurrent_p95_ms": rounded(percentile(rasa_conc, 95)),
        "rasa_concurrent_per_s": round(len(rasa_conc) / rasa_conc_s, 2) if rasa_conc_s else None,
        "rasa_concurrent_failures": rasa_conc_fail,
        "hub_vs_rasa_concurrent_ratio": ratio(p50, rasa_conc_p50),
        "client_loop_lag_p95_ms": rounded(percentile(load.loop_lag_ms, 95)),
        "setup_s": round(setup_s, 1),
    }


ROWS = [
    ("sessions x messages", lambda r: f"{r['sessions']} sessions, {r['messages']} messages sent"),
    ("load phase", lambda r: f"{r['elapsed_s']} s, {r['messages_per_s']} replied messages/s"),
    (
        "reply latency (hub)",
        lambda r: f"p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms",
    ),
    ("ack latency", lambda r: f"p50 {r['ack_p50_ms']} ms, p95 {r['ack_p95_ms']} ms"),
    ("reply p50 by text", lambda r: ", ".join(f"{t!r} {v} ms" for t, v in r["p50_by_text_ms"].items())),
    (
        "direct Rasa, sequential",
        lambda r: (
            f"p50 {r['rasa_p50_ms']} ms, p95 {r['rasa_p95_ms']} ms "
            f"({r['rasa_calls']} calls, {r['rasa_failures']} failed)"
        ),
    ),
    (
        "direct Rasa, concurrent",
        lambda r: (
            f"p50 {r['rasa_concurrent_p50_ms']} ms, "
            f"p95 {r['rasa_concurrent_p95_ms']} ms, "
            f"{r['rasa_concurrent_per_s']} calls/s"
        ),
    ),
    (
        "hub p50 / Rasa p50",
        lambda r: (
            f"{r['hub_overhead_ratio']} (sequential Rasa), "
            f"{r['hub_vs_rasa_concurrent_ratio']} (same concurrency)"
        ),
    ),
    ("lost", lambda r: f"{r['lost']} {r['lost_detail']}"),
    ("duplicated", lambda r: f"{r['duplicated']} {r['duplicated_detail']}"),
    ("handoffs / out of order", lambda r: f"{r['handoffs']} / {r['out_of_order']}"),
    ("reconnects / errors", lambda r: f"{r['reconnects']} / {r['errors'] or 'none'}"),
    ("CPU seconds in load", lambda r: str(r.get("cpu_s") or "n/a")),
    (
        "database",
        lambda r: (
            f"{r.get('db_requests_per_message')} requests/message, one round trip p50 {r.get('db_p50_ms')} ms"
        ),
    ),
    ("client loop lag p95", lambda r: f"{r['client_loop_lag_p95_ms']} ms"),
]


def report(result: dict[str, Any]) -> None:
    """Readable figures (with rich when installed), then the JSON line last."""
    print_report("bench.chat", [(name, render(result)) for name, render in ROWS], result, name_width=26)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(prog="python -m bench.chat", description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=100, help="concurrent widget sessions (100)")
    p.add_argument("--messages", type=int, default=5, help="messages per session (5)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an ack or a reply (30)")
    p.add_argument("--hub-url", help="use a running hub instead of starting one (needs --tenant)")
    p.add_argument("--tenant", help="tenant slug on --hub-url (the bot must answer there)")
    p.add_argument("--rasa-url", help="with --hub-url: that hub's Rasa, for the direct baseline")
    p.add_argument("--baseline-calls", type=int, default=100, help="sequential direct Rasa calls (100)")
    p.add_argument(
        "--no-concurrent-baseline",
        action="store_true",
        help="skip direct Rasa calls with the same concurrency as the load",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    args = p.parse_args(argv)
    if args.hub_url and not args.tenant:
        p.error("--hub-url needs --tenant")
    if args.sessions < 1 or args.messages < 1:
        p.error("--sessions and --messages must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    """Entry point: run, report, and always clean up what was started."""
    args = parse_args(argv)
    report(run_to_completion(lambda: run(args)))


if __name__ == "__main__":
    main()
