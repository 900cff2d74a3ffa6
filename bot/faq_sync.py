"""Keep the bot in step with the published FAQ: training data, background retrain, model swap.

Rasa only has to learn that a customer's sentence *is an FAQ question* (intent `ask_faq`);
the answer still comes from the asking tenant's own knowledge base in `action_answer_faq`.
So the training data pools the published FAQ phrasings of every tenant (nothing a tenant
wrote ever reaches another tenant's customers, only the intent label is shared), capped
and shared fairly between tenants.

The loop runs in every hub process that supervises a Rasa server (see
`hub.rasa_supervisor`) and polls rather than using a change stream: a poll comparing a hash
of the published FAQ set works the same against the embedded server and any MongoDB, needs
no resume token, and notices changes made while the hub was down. Changes are debounced
(many publishes in a minute give one training). A lease in `bot_sync` lets one process
train; every process then loads the new model into its own running Rasa with
`PUT /model` (Rasa keeps answering with the old model until the new one is loaded). A
failed training keeps the old model, records why, and is retried only when the FAQ
changes again or after `RETRY_FAILED_S`.

Chinese phrasings are included: the pipeline's WhitespaceTokenizer keeps a run of Han
characters as one token (they are word characters) and the `char_wb` 2-4-gram count
vectors turn it into character n-grams, which is what the classifier learns from; no
jieba is needed (and segmenting only the training data would not match what customers
type).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from markdown_it import MarkdownIt
from pymongo.errors import DuplicateKeyError, PyMongoError

from bot.rasa_server import RasaServer
from bot.training import ensure_model, project_hash
from hub.context import AppContext
from hub.db import Doc
from hub.ids import new_id, utcnow

log = logging.getLogger(__name__)

STATE_ID = "faq"  # the one document in `bot_sync`
GENERATED_FILE = "faq_generated.yml"  # under data/ in the generated copy of the project
INTENT = "ask_faq"
MAX_EXAMPLES = 3000  # all tenants together: keeps training near a minute on 2 cores
MAX_PER_TENANT = 500  # one tenant cannot crowd out the others
MIN_CHARS, MAX_CHARS = 2, 200
POLL_S = 10.0
QUIET_S = 30.0
MAX_WAIT_S = 180.0
LEASE_S = 60.0
RETRY_FAILED_S = 600.0
SWAP_TIMEOUT_S = 300.0
RUNNING_WITHIN_S = 120.0

_ROOT = Path(__file__).resolve().parent.parent
_markdown = MarkdownIt("commonmark", {"html": False})
_TAGS = re.compile(r"<[^>]{0,200}>")
# Rasa's NLU format reads [text](entity), {"entity": ...} and a leading "- " as markup.
_RASA_SYNTAX = re.compile(r"[\[\]{}()<>|`*_#\\]")
_SPACES = re.compile(r"\s+")


def _is_file(path: str | Path) -> bool:
    """A model file check (a stat: cheap enough for the event loop)."""
    return os.path.isfile(path)


def _made(path: Path) -> Path:
    """`path`, created if missing."""
    path.mkdir(parents=True, exist_ok=True)
    return path


def clean_phrasing(text: str) -> str | None:
    """The plain words of one FAQ phrasing (Markdown, HTML and Rasa syntax removed), or None."""
    if not isinstance(text, str):
        return None
    one_line = _SPACES.sub(" ", text).strip()
    plain: list[str] = []
    for token in _markdown.parseInline(one_line):
        for child in token.children or []:
            if child.type in ("text", "code_inline"):
                plain.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                plain.append(" ")
    cleaned = _RASA_SYNTAX.sub(" ", _TAGS.sub(" ", "".join(plain)))
    cleaned = _SPACES.sub(" ", cleaned).strip().lstrip("-").strip()
    if len(cleaned) < MIN_CHARS:
        return None
    return cleaned[:MAX_CHARS].strip()


def _key(text: str) -> str:
    """Dedupe key: case and spacing do not make a different example."""
    return _SPACES.sub(" ", text.casefold()).strip(" ?.!\u3002\uff1f\uff01")


def base_example_keys(project_dir: Path) -> set[str]:
    """Examples the project already labels (any intent): never relabel them as FAQ."""
    keys: set[str] = set()
    for path in sorted((project_dir / "data").rglob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        for block in data.get("nlu") or []:
            for line in str(block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    keys.add(_key(line[2:]))
    return keys


def build_examples(
    rows: Iterable[tuple[str, list[str]]],
    skip_keys: set[str],
    cap: int = MAX_EXAMPLES,
    per_tenant: int = MAX_PER_TENANT,
) -> tuple[list[str], dict[str, int]]:
    """Deduped, cleaned examples from (tenant_id, phrasings) rows, taken round-robin per tenant.

    Returns the examples (sorted, so the hash does not depend on query order) and how many
    each tenant contributed.
    """
    per: dict[str, list[str]] = {}
    seen = set(skip_keys)
    for tenant_id, questions in sorted(rows, key=lambda row: row[0]):
        for raw in questions or []:
            text = clean_phrasing(raw)
            if text is None or _key(text) in seen:
                continue
            bucket = per.setdefault(tenant_id, [])
            if len(bucket) < per_tenant:
                seen.add(_key(text))
                bucket.append(text)
    chosen: list[str] = []
    counts: dict[str, int] = {}
    depth = 0
    while len(chosen) < cap and any(len(b) > depth for b in per.values()):
        for tenant_id in sorted(per):
            bucket = per[tenant_id]
            if depth < len(bucket) and len(chosen) < cap:
                chosen.append(bucket[depth])
                counts[tenant_id] = counts.get(tenant_id, 0) + 1
        depth += 1
    return sorted(chosen), counts


async def collect_examples(ctx: AppContext, skip_keys: set[str]) -> tuple[list[str], dict[str, int]]:
    """Published FAQ phrasings of every tenant (the intent label is shared; answers are not)."""
    cursor = ctx.db.kb_articles.find(
        {"kind": "faq", "status": "published"}, {"tenant_id": 1, "questions": 1}
    ).sort("_id", 1)
    rows = [(str(doc.get("tenant_id")), list(doc.get("questions") or [])) async for doc in cursor]
    return build_examples(rows, skip_keys)


def nlu_yaml(examples: list[str]) -> str:
    """The generated NLU file: one `ask_faq` block (Rasa merges it with data/nlu.yml)."""
    block = "".join(f"- {text}\n" for text in examples)
    data = {"version": "3.1", "nlu": [{"intent": INTENT, "examples": block}]}
    header = "# Generated by bot/faq_sync.py from the published FAQ; do not edit.\n"
    return header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)


def faq_hash(base_hash: str, examples: list[str]) -> str:
    """What the model should know: the base project plus these examples."""
    digest = hashlib.sha256(base_hash.encode())
    for text in examples:
        digest.update(f"{len(text)}:{text}".encode())
    return digest.hexdigest()[:16]


def write_project(base_dir: Path, dest: Path, examples: list[str]) -> Path:
    """A copy of the Rasa project plus the generated FAQ data (the repo copy stays untouched)."""
    shutil.copytree(base_dir, dest, ignore=shutil.ignore_patterns(".rasa", "models", "__pycache__"))
    if examples:
        (dest / "data" / GENERATED_FILE).write_text(nlu_yaml(examples))
    return dest


def train(base_dir: Path, rasa_bin: Path, cache_dir: Path, work_dir: Path, examples: list[str]) -> Path:
    """Blocking: generate the project in a scratch dir and train it through the model cache."""
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="faq-project-", dir=work_dir) as scratch:
        project = write_project(base_dir, Path(scratch) / "project", examples)
        return ensure_model(project, rasa_bin, cache_dir, log.info)


async def train_in_child(
    base_dir: Path, rasa_bin: Path, cache_dir: Path, work_dir: Path, examples: list[str]
) -> Path:
    """`train` in a child process group, so a hub shutting down can stop a training at once
    (a worker thread running `rasa train` could not be cancelled and would hold shutdown)."""
    with tempfile.TemporaryDirectory(prefix="faq-train-", dir=_made(work_dir)) as scratch:
        examples_file = Path(scratch) / "examples.json"
        examples_file.write_text(json.dumps(examples, ensure_ascii=False))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.faq_sync",
            str(base_dir),
            str(rasa_bin),
            str(cache_dir),
            str(work_dir),
            str(examples_file),
            cwd=_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = await proc.communicate()
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
    text = output.decode(errors="replace").strip()
    last = text.splitlines()[-1] if text else ""
    if proc.returncode != 0 or not last.startswith(_MODEL_PREFIX):
        raise RuntimeError(f"faq training exited with {proc.returncode}:\n{text[-3000:]}")
    return Path(last[len(_MODEL_PREFIX) :])


_MODEL_PREFIX = "MODEL "


def _child_main(argv: list[str]) -> int:
    """Entry point of the training child: train, print the model path last."""
    base_dir, rasa_bin, cache_dir, work_dir, examples_file = (Path(a) for a in argv)
    # SIGTERM unwinds (temporary dirs are removed, `rasa train` in our group is killed).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    examples = json.loads(examples_file.read_text())
    try:
        model = train(base_dir, rasa_bin, cache_dir, work_dir, examples)
    except RuntimeError as exc:
        print(exc, flush=True)
        return 1
    print(f"{_MODEL_PREFIX}{model}", flush=True)
    return 0


@dataclass(frozen=True)
class Timing:
    """How often to poll, how long the FAQ must stay unchanged before training, the lease."""

    poll_s: float = POLL_S
    quiet_s: float = QUIET_S  # train once the FAQ set has not changed for this long...
    max_wait_s: float = MAX_WAIT_S  # ...or at the latest this long after the first change
    lease_s: float = LEASE_S

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Timing:
        """Overrides from HUB_FAQ_SYNC_POLL_S / _QUIET_S / _MAX_WAIT_S (tests use short ones)."""
        e = os.environ if env is None else env
        return cls(
            poll_s=float(e.get("HUB_FAQ_SYNC_POLL_S", POLL_S)),
            quiet_s=float(e.get("HUB_FAQ_SYNC_QUIET_S", QUIET_S)),
            max_wait_s=float(e.get("HUB_FAQ_SYNC_MAX_WAIT_S", MAX_WAIT_S)),
        )


@dataclass
class FaqSync:
    """The poll / debounce / lease / train / swap loop of one hub process."""

    ctx: AppContext
    server: RasaServer | None
    base_dir: Path
    rasa_bin: Path
    cache_dir: Path
    work_dir: Path
    loaded_hash: str | None = None  # faq_hash of the model the server runs
    timing: Timing = field(default_factory=Timing)
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{new_id()[:8]}")
    trainings: int = 0  # trainings this process ran (tests count them)
    swaps: int = 0
    _base_hash: str = ""
    _skip: set[str] = field(default_factory=set)
    _pending: str | None = None
    _pending_since: float = 0.0
    _first_seen: float = 0.0

    def __post_init__(self) -> None:
        # Rasa resolves a relative model path against its own working directory.
        self.cache_dir, self.work_dir = self.cache_dir.resolve(), self.work_dir.resolve()
        self._base_hash = project_hash(self.base_dir)
        self._skip = base_example_keys(self.base_dir)
        if self.loaded_hash is None:
            self.loaded_hash = faq_hash(self._base_hash, [])

    @property
    def state(self) -> Any:
        return self.ctx.db.bot_sync

    async def run(self) -> None:
        """Until cancelled: one tick per poll; a database or Rasa hiccup only skips a tick."""
        await self._ensure_state()
        while True:
            try:
                await self.tick()
            except (PyMongoError, httpx.HTTPError, OSError) as exc:
                log.warning("faq sync: %s; trying again next poll", exc)
            except Exception:  # a bug here must not stop the loop (nor the hub): log it, go on
                log.exception("faq sync: unexpected error; trying again next poll")
            await asyncio.sleep(self.timing.poll_s)

    async def _ensure_state(self) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.state.update_one(
                {"_id": STATE_ID},
                {"$setOnInsert": {"lease_owner": None, "lease_until": None, "training": False}},
                upsert=True,
            )

    async def tick(self) -> None:
        """Compare the published FAQ with what is loaded; train and/or swap when due."""
        examples, counts = await collect_examples(self.ctx, self._skip)
        wanted = faq_hash(self._base_hash, examples)
        now = time.monotonic()
        state: Doc = await self.state.find_one({"_id": STATE_ID}) or {}
        if state.get("wanted_hash") != wanted:
            await self.state.update_one(
                {"_id": STATE_ID},
                {"$set": {"wanted_hash": wanted, "wanted_examples": len(examples), "wanted_at": utcnow()}},
            )
        await self.state.update_one({"_id": STATE_ID}, {"$set": {"polled_at": utcnow()}})
        if wanted == self.loaded_hash:
            self._pending, self._first_seen = None, 0.0
            return
        model_file = state.get("model_file")
        if state.get("faq_hash") == wanted and model_file and _is_file(model_file):
            await self.swap(Path(model_file), wanted)
            return
        if wanted != self._pending:
            self._pending, self._pending_since = wanted, now
            if not self._first_seen:
                self._first_seen = now
        quiet = now - self._pending_since >= self.timing.quiet_s
        overdue = now - self._first_seen >= self.timing.max_wait_s
        if not (quiet or overdue) or self._failed_recently(state, wanted):
            return
        if not await self._take_lease():
            return
        try:
            # Another process may have trained this set between our read and the lease.
            fresh: Doc = await self.state.find_one({"_id": STATE_ID}) or {}
            done = fresh.get("model_file")
            if fresh.get("faq_hash") == wanted and done and _is_file(done):
                model: Path | None = Path(done)
            else:
                model = await self._train(wanted, examples, counts)
        finally:
            await self._release_lease()
        if model is not None:
            self._first_seen = 0.0
            await self.swap(model, wanted)

    def _failed_recently(self, state: Doc, wanted: str) -> bool:
        """A set that failed to train is retried only after RETRY_FAILED_S."""
        failed_at = state.get("failed_at")
        if state.get("failed_hash") != wanted or failed_at is None:
            return False
        return bool((utcnow() - failed_at).total_seconds() < RETRY_FAILED_S)

    async def _take_lease(self) -> bool:
        """Atomic claim of the training lease (free, expired or already ours)."""
        now = utcnow()
        result = await self.state.update_one(
            {
                "_id": STATE_ID,
                "$or": [{"lease_owner": None}, {"lease_owner": self.owner}, {"lease_until": {"$lt": now}}],
            },
            {
                "$set": {
                    "lease_owner": self.owner,
                    "lease_until": now + timedelta(seconds=self.timing.lease_s),
                }
            },
        )
        return bool(result.matched_count == 1)

    async def _renew_lease(self) -> None:
        """Keeps the lease while a training runs (it may take longer than LEASE_S)."""
        while True:
            await asyncio.sleep(self.timing.lease_s / 3)
            with contextlib.suppress(PyMongoError):
                until = utcnow() + timedelta(seconds=self.timing.lease_s)
                await self.state.update_one(
                    {"_id": STATE_ID, "lease_owner": self.owner}, {"$set": {"lease_until": until}}
                )

    async def _release_lease(self) -> None:
        with contextlib.suppress(PyMongoError):
            await self.state.update_one(
                {"_id": STATE_ID, "lease_owner": self.owner},
                {"$set": {"lease_owner": None, "lease_until": None, "training": False}},
            )

    async def _train(self, wanted: str, examples: list[str], counts: dict[str, int]) -> Path | None:
        """Train in a child process; record the result or the error. None if it failed."""
        await self.state.update_one(
            {"_id": STATE_ID},
            {"$set": {"training": True, "training_hash": wanted, "training_started_at": utcnow()}},
        )
        renew = asyncio.create_task(self._renew_lease())
        started = time.monotonic()
        self.trainings += 1
        try:
            model = await train_in_child(
                self.base_dir, self.rasa_bin, self.cache_dir, self.work_dir, examples
            )
        except (RuntimeError, OSError) as exc:
            log.error("faq sync: training failed, the bot keeps its current model: %s", exc)
            await self.state.update_one(
                {"_id": STATE_ID},
                {
                    "$set": {
                        "training": False,
                        "failed_hash": wanted,
                        "failed_at": utcnow(),
                        "last_error": str(exc)[-4000:],
                        "last_error_at": utcnow(),
                    }
                },
            )
            return None
        finally:
            renew.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renew
        seconds = round(time.monotonic() - started, 1)
        log.info("faq sync: model %s ready in %.1f s (%d FAQ examples)", model.name, seconds, len(examples))
        await self.state.update_one(
            {"_id": STATE_ID},
            {
                "$set": {
                    "training": False,
                    "faq_hash": wanted,
                    "model_file": str(model),
                    "trained_at": utcnow(),
                    "train_seconds": seconds,
                    "examples": len(examples),
                    # dotted-free keys: tenant ids are hex, so they are safe field names
                    "tenant_examples": counts,
                    "failed_hash": None,
                    "last_error": None,
                }
            },
        )
        return model

    async def swap(self, model: Path, wanted: str) -> None:
        """Load `model` into the running Rasa; the old model answers until Rasa has it."""
        server = self.server
        if server is None or server.pid is None:
            return  # not running (restarting): tried again on the next poll
        try:
            async with httpx.AsyncClient(timeout=SWAP_TIMEOUT_S) as client:
                resp = await client.put(f"{server.url}/model", json={"model_file": str(model)})
        except httpx.HTTPError as exc:
            log.info("faq sync: rasa not reachable yet (%s); swapping at the next poll", exc)
            return
        if resp.status_code != 204:
            message = f"rasa refused model {model.name}: HTTP {resp.status_code} {resp.text[:500]}"
            log.error("faq sync: %s", message)
            await self.state.update_one(
                {"_id": STATE_ID}, {"$set": {"last_error": message, "last_error_at": utcnow()}}
            )
            return
        server.model_path = model  # a restart after a crash starts with the new model too
        self.loaded_hash = wanted
        self.swaps += 1
        self._pending = None
        log.info("faq sync: rasa at %s now runs %s", server.url, model.name)


async def initial_model(ctx: AppContext, base_dir: Path, base_model: Path) -> tuple[Path, str]:
    """The model a starting Rasa should load: the last FAQ model if it fits this project."""
    fallback = (base_model, faq_hash(project_hash(base_dir), []))
    try:
        state = await ctx.db.bot_sync.find_one({"_id": STATE_ID})
    except PyMongoError:
        return fallback
    if not state or not state.get("model_file") or not state.get("faq_hash"):
        return fallback
    path = Path(state["model_file"])
    if not _is_file(path):
        return fallback
    # The hash covers the base project, so a changed bot/rasa makes the old model unfit.
    examples, _ = await collect_examples(ctx, base_example_keys(base_dir))
    if faq_hash(project_hash(base_dir), examples) != state["faq_hash"]:
        return fallback
    return path, str(state["faq_hash"])


async def status(ctx: AppContext, tenant_id: str) -> dict[str, Any]:
    """What an editor sees: is the bot in step with the published FAQ, and if not, why."""
    state: Doc = await ctx.db.bot_sync.find_one({"_id": STATE_ID}) or {}
    polled = state.get("polled_at")
    trained = state.get("faq_hash")
    wanted = state.get("wanted_hash")
    mine = await ctx.db.kb_articles.count_documents(
        {"tenant_id": tenant_id, "kind": "faq", "status": "published"}
    )
    return {
        # a process that supervises Rasa polled lately (none: nobody keeps the bot in step)
        "running": polled is not None and (utcnow() - polled).total_seconds() < RUNNING_WITHIN_S,
        "polled_at": state.get("polled_at"),
        "in_step": bool(wanted) and trained == wanted,
        "trained_hash": trained,
        "model": Path(state["model_file"]).name if state.get("model_file") else None,
        "trained_at": state.get("trained_at"),
        "train_seconds": state.get("train_seconds"),
        "training": bool(state.get("training")),
        "training_started_at": state.get("training_started_at") if state.get("training") else None,
        # the end only: Rasa's output may quote training data, which pools all tenants
        "last_error": (state.get("last_error") or "").splitlines()[-1:][0][:300]
        if state.get("last_error")
        else None,
        "last_error_at": state.get("last_error_at"),
        "faq_entries": mine,
        "faq_examples": int((state.get("tenant_examples") or {}).get(tenant_id, 0)),
    }


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
