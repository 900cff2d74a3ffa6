"""A stand-in `rasa train` executable for the lock, cache and error paths of model training,
shared by the Rasa project and FAQ sync suites (the real Rasa takes minutes to train)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path


def fake_rasa(tmp_path: Path, *, failure: list[str] | None = None) -> tuple[Path, Path]:
    """A stand-in `rasa` that records each call in the returned calls file and writes a model
    file after a second; with `failure` it prints those lines and exits 1 instead."""
    calls = tmp_path / "calls.txt"
    script = tmp_path / "fake-rasa"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import sys, time
            from pathlib import Path
            args = sys.argv[1:]
            with open({str(calls)!r}, "a") as f:
                f.write(" ".join(args) + "\\n")
            failure = {failure!r}
            if failure is not None:
                print("\\n".join(failure))
                sys.exit(1)
            time.sleep(1.0)
            out = Path(args[args.index("--out") + 1])
            out.mkdir(parents=True, exist_ok=True)
            name = args[args.index("--fixed-model-name") + 1]
            (out / f"{{name}}.tar.gz").write_bytes(b"model")
            """
        )
    )
    script.chmod(0o755)
    return script, calls
