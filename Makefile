# sd1job: every target runs inside .venv, created from the locked dependency set.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/local.yaml

.PHONY: install lock system-deps test lint bench local-run local-run-s3 clean help

help:
	@echo "make install    create .venv from requirements.lock (a no-op when up to date)"
	@echo "make test       lint and run the test suite"
	@echo "make local-run  generate demo data and run the whole sweep on this machine"
	@echo "make bench      run the benchmarks under bench/"

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Re-resolve requirements/requirements.in into the lock (run by hand when dependencies change).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -r requirements/requirements.in
	.venv-lock/bin/pip freeze --exclude-editable > requirements.lock
	rm -rf .venv-lock

lint: $(STAMP)
	$(VENV)/bin/ruff check sd1job tests bench
	$(VENV)/bin/ruff format --check sd1job tests bench

SYSTEM_STAMP := $(VENV)/.system-deps

# Prometheus, Pushgateway and Chromium for the tests (Debian packages; apt-get as root or sudo).
$(SYSTEM_STAMP): scripts/install-system-deps.sh | $(STAMP)
	bash scripts/install-system-deps.sh
	touch $(SYSTEM_STAMP)

system-deps: $(SYSTEM_STAMP)

test: $(STAMP) $(SYSTEM_STAMP)
	$(VENV)/bin/ruff check sd1job tests bench
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run_all.py $(BENCH)

# The whole sweep on this machine with the built-in demo data (synth skips recordings already there).
local-run: $(STAMP)
	$(PY) -m sd1job synth --config $(CONFIG)
	$(PY) -m sd1job sweep --config $(CONFIG)

# The same through a real S3 server, Pushgateway and Prometheus started on loopback, then stopped.
local-run-s3: $(STAMP) $(SYSTEM_STAMP)
	$(PY) scripts/local_cloud.py --config $(CONFIG)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
