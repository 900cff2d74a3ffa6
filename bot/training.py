"""Train the Rasa project once per content and keep the model in a cache.

Rasa runs in its own virtual environment (it pins pydantic 1), so training is a
subprocess. Models are keyed by a hash of the project files, so an unchanged
project never retrains and two hub processes starting together train only once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

RASA_VERSION_TAG = "rasa-3.6.21"
TRAIN_TIMEOUT_S = 900.0
_OUTPUT_TAIL_LINES = 40

# Quiet, offline Rasa: no telemetry, no TensorFlow chatter, no warning floods.
RASA_ENV: dict[str, str] = {
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "PYTHONWARNINGS": "ignore",
}


def rasa_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for every Rasa subprocess (ours on top of the caller's)."""
    env = dict(os.environ)
    env.update(RASA_ENV)
    if extra:
        env.update(extra)
    return env


def default_model_cache() -> Path:
    """Where trained models live; shared by all checkouts on the machine."""
    root = os.environ.get("CONTACT_HUB_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "contact-hub"
    return base / "rasa-models"


def _project_files(project_dir: Path) -> list[Path]:
    """The files that decide what a model learns (not credentials or endpoints)."""
    files = [project_dir / "config.yml", project_dir / "domain.yml"]
    data_dir = project_dir / "data"
    if data_dir.is_dir():
        files.extend(p for p in data_dir.rglob("*") if p.is_file())
    return sorted(files, key=lambda p: p.relative_to(project_dir).as_posix())


def project_hash(project_dir: Path) -> str:
    """Content hash of the project plus the Rasa version: the model's cache key."""
    digest = hashlib.sha256()
    for path in _project_files(project_dir):
        rel = path.relative_to(project_dir).as_posix()
        # Length-prefix each part so file boundaries cannot be shifted undetected.
        content = path.read_bytes()
        digest.update(f"{len(rel)}:{rel}\n{len(content)}:".encode())
        digest.update(content)
    digest.update(RASA_VERSION_TAG.encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock across processes; released when the file closes."""
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _tail(text: str, lines: int = _OUTPUT_TAIL_LINES) -> str:
    """Last lines of Rasa's output, with progress-bar carriage returns collapsed."""
    cleaned = [line.rsplit("\r", 1)[-1] for line in text.splitlines()]
    return "\n".join(cleaned[-lines:])


def ensure_model(
    project_dir: Path,
    rasa_bin: Path,
    cache_dir: Path,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Return the cached model for this project, training it first if needed."""
    project_dir = project_dir.resolve()
    key = project_hash(project_dir)
    target = cache_dir / f"{key}.tar.gz"
    if target.is_file():
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / ".train.lock"):
        # Another process may have trained it while we waited for the lock.
        if target.is_file():
            if log:
                log(f"rasa model {key}: trained by another process, reusing it")
            return target
        _train(project_dir, rasa_bin, cache_dir, key, target, log)
    return target


def _train(
    project_dir: Path,
    rasa_bin: Path,
    cache_dir: Path,
    key: str,
    target: Path,
    log: Callable[[str], None] | None,
) -> None:
    """Run `rasa train` into a scratch dir in the cache, then rename into place."""
    if not rasa_bin.is_file():
        raise RuntimeError(f"rasa executable not found at {rasa_bin} (run scripts/install_rasa.sh)")
    if log:
        log(f"rasa model {key}: training (takes a few seconds to a minute)")
    started = time.monotonic()
    # Scratch dir inside the cache so the final rename is atomic (same filesystem).
    with tempfile.TemporaryDirectory(prefix=f".train-{key}-", dir=cache_dir) as scratch:
        scratch_dir = Path(scratch)
        out_dir = scratch_dir / "out"
        cmd = [
            str(rasa_bin),
            "train",
            "--config",
            str(project_dir / "config.yml"),
            "--domain",
            str(project_dir / "domain.yml"),
            "--data",
            str(project_dir / "data"),
            "--out",
            str(out_dir),
            "--fixed-model-name",
            key,
        ]
        # Rasa's training cache would otherwise land in project_dir/.rasa.
        env = rasa_env({"RASA_CACHE_DIRECTORY": str(scratch_dir / "rasa-cache")})
        try:
            proc = subprocess.run(
                cmd,
                cwd=project_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=TRAIN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            output = exc.output if isinstance(exc.output, str) else ""
            raise RuntimeError(
                f"rasa train timed out after {TRAIN_TIMEOUT_S:.0f} s:\n{_tail(output)}"
            ) from exc
        produced = out_dir / f"{key}.tar.gz"
        if proc.returncode != 0 or not produced.is_file():
            raise RuntimeError(
                f"rasa train failed (exit code {proc.returncode}) for {project_dir}:\n{_tail(proc.stdout)}"
            )
        os.replace(produced, target)
    if log:
        log(f"rasa model {key}: trained in {time.monotonic() - started:.1f} s -> {target}")
