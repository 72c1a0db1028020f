# Two commands do everything: `make run` (dashboards) and `make test` (the whole suite).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8866
export WORKBENCH_HOME ?= $(CURDIR)

.PHONY: install run test bench chromium postgresql screenshots

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

install: $(VENV)/.installed

# Prints the dashboards' URL, with its token (WORKBENCH_TOKEN, else a random one), once they are ready.
run: install
	$(VENV)/bin/workbench demo --if-empty
	$(VENV)/bin/workbench serve --host $(HOST) --port $(PORT)

# Refreshes the README's docs/screenshots/*.png (the tests themselves write theirs to a temporary folder).
screenshots: install chromium
	WORKBENCH_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/test_browser.py -q -k "renders or end_to_end or typed_user"

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

postgresql:
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

test: install chromium postgresql
	$(VENV)/bin/ruff check --quiet .
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install chromium
	$(PY) bench/report.py
