# sd1job: every target runs inside .venv, created from the locked dependency set.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= configs/local.yaml
# Demo recordings for the local profile: 3 minutes of training audio, half-second test riffs (sliding-
# window inference costs n LSTM steps per output sample, so riff length drives eval time on a CPU).
SYNTH_ARGS ?= --riff-seconds 0.5
# Contexts trained at once by `make local-run` (one single-threaded trainer per core).
JOBS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: install lock system-deps test lint bench local-run local-run-s3 demo-data synth-plots clean help

help:
	@echo "make install    create .venv from requirements.lock (a no-op when up to date)"
	@echo "make test       lint and run the test suite"
	@echo "make local-run  generate demo data and run the whole sweep on this machine"
	@echo "make bench      run the benchmarks under bench/"
	@echo "make bench-nam  NAM's own trainer against sd1job on the same data and budget (BUDGET=150 SEEDS=3 BENCH_DATA=demo|realdata)"
	@echo "make local-run-s3  the same sweep through real S3, Pushgateway and Prometheus on loopback"
	@echo "make image      build the GPU image (docker, podman or buildah; VARIANT=cpu for the CPU one); make lint-docker checks it statically"
	@echo "make image-test build the CPU image and run the Argo stages in containers against real S3 and Prometheus"
	@echo "make sweep-template / make sweep   install the Argo template / submit a sweep to the cluster"

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Re-resolve requirements/requirements.in into the locks (run by hand when dependencies change):
# its [runtime] section into requirements/runtime.lock (what the image installs), then the [dev]
# section on top of those pins; requirements.lock is the full set, requirements/dev.lock the rest.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	awk '/^# \[dev\]/ {exit} 1' requirements/requirements.in > .venv-lock/runtime.in
	awk 'dev; /^# \[dev\]/ {dev = 1}' requirements/requirements.in > .venv-lock/dev.in
	.venv-lock/bin/pip install --quiet -r .venv-lock/runtime.in
	.venv-lock/bin/pip freeze --exclude-editable > requirements/runtime.lock
	.venv-lock/bin/pip install --quiet -r .venv-lock/dev.in -c requirements/runtime.lock
	.venv-lock/bin/pip freeze --exclude-editable > requirements.lock
	grep -v -x -F -f requirements/runtime.lock requirements.lock > requirements/dev.lock
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
	$(PY) -m pytest -m "not container" $(PYTEST_ARGS)

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
# make image               the GPU image (TensorFlow's GPU base) as IMAGE
# make image VARIANT=cpu   the CPU image on a local Debian bookworm + Python 3.11 base (CPU_BASE,
#                          made with debootstrap when missing), tensorflow_cpu from the lock
# make image-push          build, then push IMAGE to the registry its name starts with
# Any engine: docker (when its engine answers), else podman, else buildah.
VARIANT ?= gpu
ifeq ($(VARIANT),cpu)
IMAGE ?= localhost:5000/sd1job:0.1.0-cpu
else
IMAGE ?= localhost:5000/sd1job:0.1.0
endif
CPU_BASE ?= localhost/sd1job-base:bookworm-py3.11
# The CPU image `make image-test` builds and runs.
TEST_IMAGE ?= localhost/sd1job:test-cpu
# podman/buildah settings for this machine (runc, cgroupfs, ulimits), written under .venv, not /etc.
# Set CONTAINERS_CONF to use another file.
CONTAINERS_CONF_FILE := $(VENV)/containers.conf
export CONTAINERS_CONF ?= $(CURDIR)/$(CONTAINERS_CONF_FILE)
export CPU_BASE
NAMESPACE ?= sd1job
RUN_ID ?= context-experiments
SWEEP_ARGS ?=
CONTAINER_STAMP := $(VENV)/.container-tools

.PHONY: image image-push image-test container-tools lint-docker sweep-template sweep

$(CONTAINERS_CONF_FILE): scripts/container/containers-conf.sh
	bash scripts/container/containers-conf.sh $(CONTAINERS_CONF_FILE)

image: $(CONTAINERS_CONF_FILE)
	bash scripts/container/image.sh build $(VARIANT) $(IMAGE)

image-push: image
	bash scripts/container/image.sh push $(IMAGE)

# podman, buildah, runc and debootstrap from Debian (apt-get as root or sudo).
$(CONTAINER_STAMP): scripts/install-system-deps.sh | $(STAMP)
	bash scripts/install-system-deps.sh containers
	touch $(CONTAINER_STAMP)

container-tools: $(CONTAINER_STAMP)

# Build the CPU base and image (both reused when unchanged), then run the stages in containers as
# the Argo pods run them, against real S3, Pushgateway and Prometheus on loopback (tests/container).
image-test: $(STAMP) $(SYSTEM_STAMP) $(CONTAINER_STAMP) $(CONTAINERS_CONF_FILE)
	bash scripts/container/image.sh build cpu $(TEST_IMAGE)
	CONTAINER_TEST_IMAGE=$(TEST_IMAGE) $(PY) -m pytest -m container tests/container $(PYTEST_ARGS)

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

# --- check-nam: an exported .nam run by neural-amp-modeler's own loader, in its own virtualenv ------
# The project venv writes a stateful model with seeded random weights as $(CHECK_NAM_DIR)/model.nam,
# a riff and sd1job's streaming output; .venv-nam (PyTorch 2.13.0, the CPU wheel on this machine,
# and neural-amp-modeler, all pinned in requirements/check-nam.txt) loads the file with
# nam.models.init_from_nam, runs it on the riff and fails unless ESR(NAM, sd1job) <= 1e-4 and no
# sample differs by more than 1e-3. Then the same for sd1job's WaveNet (standard and lite presets).
NAM_VENV := .venv-nam
NAM_STAMP := $(NAM_VENV)/.installed
CHECK_NAM_DIR := artifacts/check-nam

.PHONY: check-nam

$(NAM_STAMP): requirements/check-nam.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(NAM_VENV)/bin/python || $(PYTHON) -m venv $(NAM_VENV)
	$(NAM_VENV)/bin/python -m pip install --quiet -r requirements/check-nam.txt
	$(NAM_VENV)/bin/python -c 'import torch; v = torch.__version__; assert v.split("+")[0] == "2.13.0", v'
	touch $(NAM_STAMP)

check-nam: $(STAMP) $(NAM_STAMP)
	$(PY) scripts/check_nam.py export --out $(CHECK_NAM_DIR)
	$(NAM_VENV)/bin/python scripts/check_nam.py compare --dir $(CHECK_NAM_DIR)
	for preset in standard lite; do \
	  $(PY) scripts/check_nam.py export --kind wavenet --preset $$preset --out $(CHECK_NAM_DIR)/wavenet-$$preset && \
	  $(NAM_VENV)/bin/python scripts/check_nam.py compare --dir $(CHECK_NAM_DIR)/wavenet-$$preset || exit 1; \
	done

# --- bench-nam: NAM's own trainer against sd1job's on one split, one thread, one budget per model ----
# BUDGET seconds of training per model, SEEDS seeds, BENCH_DATA demo or realdata (../shared/realdata; skipped
# when absent). 8 models x SEEDS x (BUDGET + ~20 s of start-up), then sd1job's predictions: about
# 75 minutes at the defaults. Results: bench/results/nam-$(BENCH_DATA).json and .md. BENCH_NAM_ARGS passes more options,
# e.g. "--recipes profile,nam-loss,nam-segments --jobs 2" (sd1job's models under NAM's recipe ingredients too).
BUDGET ?= 150
SEEDS ?= 3
BENCH_DATA ?= demo
BENCH_NAM_ARGS ?=

.PHONY: bench-nam

bench-nam: $(STAMP) $(NAM_STAMP)
	$(PY) bench/bench_nam.py --data $(BENCH_DATA) --budget $(BUDGET) --seeds $(SEEDS) $(BENCH_NAM_ARGS)
