#!/usr/bin/env bash
# Install Rasa 3.6.21 into .venv-rasa (recipe checked in ../shared/DESIGN.md).
# The environment is 2.7 GB and takes minutes to build, so it lives in a cache
# keyed by the hash of this recipe and .venv-rasa is a symlink to it; a later run
# with the same recipe reuses it, a changed recipe builds a fresh one.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
recipe_hash=$(cat scripts/install_rasa.sh scripts/rasa_requirements.py | sha256sum | cut -c1-16)
cache_root=${CONTACT_HUB_CACHE:-$HOME/.cache/contact-hub}
target="$cache_root/venv-rasa-$recipe_hash"

if [ -f "$target/.installed" ]; then
  ln -sfn "$target" .venv-rasa
  echo "rasa environment: cached ($target)"
  exit 0
fi

mkdir -p "$cache_root"
rm -rf "$target.tmp"
"$PYTHON" -m venv "$target.tmp"
pip="$target.tmp/bin/pip"
"$pip" install --quiet --upgrade "pip<25" wheel packaging
"$pip" install --quiet --no-deps --ignore-requires-python rasa==3.6.21 rasa-sdk==3.6.2
"$target.tmp/bin/python" scripts/rasa_requirements.py > "$target.tmp/requirements.txt"
"$pip" install --quiet -r "$target.tmp/requirements.txt"
# venvs hard-code their own path in scripts: build in place under the final name.
rm -rf "$target"
mv "$target.tmp" "$target"
# fix the shebangs and activate scripts that still point at the .tmp directory
grep -rlI -- "$target.tmp" "$target/bin" | xargs -r sed -i "s#$target.tmp#$target#g"
"$target/bin/python" -c "import rasa, rasa.version; print('rasa', rasa.version.__version__)"
touch "$target/.installed"
ln -sfn "$target" .venv-rasa
