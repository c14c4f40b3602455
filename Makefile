# sd1job: every target runs inside .venv, created from the locked dependency set.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/local.yaml
# Demo recordings for the local profile: 3 minutes of training audio, 1-second test riffs (sliding-
# window inference costs n LSTM steps per output sample, so riff length drives eval time on a CPU).
SYNTH_ARGS ?= --riff-seconds 1
# Contexts trained at once by `make local-run` (one single-threaded trainer per core).
JOBS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: install lock system-deps test lint bench local-run local-run-s3 demo-data synth-plots clean help

help:
	@echo "make install    create .venv from requirements.lock (a no-op when up to date)"
	@echo "make test       lint and run the test suite"
	@echo "make local-run  generate demo data and run the whole sweep on this machine"
	@echo "make bench      run the benchmarks under bench/"
	@echo "make local-run-s3  the same sweep through real S3, Pushgateway and Prometheus on loopback"
	@echo "make image      build the GPU image (needs a Docker engine); make lint-docker checks it statically"
	@echo "make sweep-template / make sweep   install the Argo template / submit a sweep to the cluster"

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
	$(VENV)/bin/ruff check sd1job tests bench scripts
	$(VENV)/bin/ruff format --check sd1job tests bench scripts

SYSTEM_STAMP := $(VENV)/.system-deps

# Prometheus, Pushgateway and Chromium for the tests (Debian packages; apt-get as root or sudo).
$(SYSTEM_STAMP): scripts/install-system-deps.sh | $(STAMP)
	bash scripts/install-system-deps.sh
	touch $(SYSTEM_STAMP)

system-deps: $(SYSTEM_STAMP)

test: $(STAMP) $(SYSTEM_STAMP)
	$(VENV)/bin/ruff check sd1job tests bench scripts
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run_all.py $(BENCH)

# The whole sweep on this machine with the built-in demo data (synth skips recordings already there).
local-run: $(STAMP)
	$(PY) -m sd1job synth --config $(CONFIG) $(SYNTH_ARGS)
	$(PY) -m sd1job sweep --config $(CONFIG) --jobs $(JOBS)

# The demo recordings alone (a no-op when the same settings were already generated).
demo-data: $(STAMP)
	$(PY) -m sd1job synth --config $(CONFIG) $(SYNTH_ARGS)

# The README's figures of the virtual pedal.
synth-plots: $(STAMP)
	$(PY) scripts/plot_synth.py docs/img

# The same through a real S3 server, Pushgateway and Prometheus started on loopback, then stopped.
local-run-s3: $(STAMP) $(SYSTEM_STAMP)
	$(PY) scripts/local_cloud.py --config $(CONFIG)

# --- cluster: image, static Dockerfile checks, Argo sweep -------------------------------------
IMAGE ?= localhost:5000/sd1job:0.1.0
NAMESPACE ?= sd1job
RUN_ID ?= context-experiments
SWEEP_ARGS ?=

.PHONY: image image-push lint-docker sweep-template sweep

# Build the GPU image (needs a Docker engine; `make lint-docker` checks the Dockerfile without one).
image:
	@docker info >/dev/null 2>&1 || { echo "error: make image needs a running Docker engine; make lint-docker checks the Dockerfile without one"; exit 1; }
	docker build -t $(IMAGE) .

image-push: image
	docker push $(IMAGE)

# hadolint, base image pinned to the locked TensorFlow, lock file, entry point, non-root user.
lint-docker: $(STAMP)
	$(PY) scripts/check_dockerfile.py

# Install or update the WorkflowTemplate (the first document of argo/sweep.yaml) in the cluster.
sweep-template: $(STAMP)
	set -o pipefail; $(PY) -c 'import sys, yaml; yaml.safe_dump_all([d for d in yaml.safe_load_all(open("argo/sweep.yaml")) if d and d["kind"] == "WorkflowTemplate"], sys.stdout, sort_keys=False)' \
	  | kubectl apply -n $(NAMESPACE) -f -

# Submit a sweep and follow it: with the argo CLI if installed, else through the Argo Server API
# (ARGO_SERVER, ARGO_TOKEN). Extra parameters: make sweep SWEEP_ARGS="-p store=s3://sd1job/runs2".
sweep: $(STAMP)
	@if command -v argo >/dev/null; then \
	  argo submit -n $(NAMESPACE) argo/sweep.yaml -p image=$(IMAGE) -p run-id=$(RUN_ID) $(SWEEP_ARGS) --watch; \
	else \
	  $(PY) -m sd1job submit -n $(NAMESPACE) -p image=$(IMAGE) -p run-id=$(RUN_ID) $(SWEEP_ARGS) --watch; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
