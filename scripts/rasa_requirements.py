"""Print Rasa 3.6's own requirements, resolved as if we ran on Python 3.10.

Why: Rasa 3.6 declares Python < 3.11, but runs on 3.11 when its dependencies are
the versions it was built against. We install rasa itself with --no-deps, then
install this list normally. Markers are evaluated as Python 3.10 so the pins meant
for older Pythons apply (numpy 1.23, scipy 1.10, ...), and matplotlib is lifted to
3.6 because nothing older has 3.11 wheels. Run inside .venv-rasa.
"""

from __future__ import annotations

import sys
from importlib.metadata import requires

from packaging.markers import default_environment
from packaging.requirements import Requirement

OVERRIDES = {"matplotlib": "matplotlib>=3.6,<3.7"}


def main() -> None:
    env = default_environment()
    env.update(python_version="3.10", python_full_version="3.10.13")
    seen: set[str] = set()
    for dist in ("rasa", "rasa-sdk"):
        for line in requires(dist) or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
            name = req.name.lower()
            if name in seen or name in ("rasa", "rasa-sdk"):
                continue
            seen.add(name)
            req.marker = None
            sys.stdout.write(OVERRIDES.get(name, str(req)) + "\n")


if __name__ == "__main__":
    main()
