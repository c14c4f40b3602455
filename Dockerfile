# sd1job's image: one Dockerfile, two bases (`make image`, `make image VARIANT=cpu`).
#   GPU (the default, for the cluster): TensorFlow's official GPU image (CUDA, cuDNN, Python 3.11,
#     TensorFlow 2.21), which provides TensorFlow itself.
#   CPU (tests, CPU clusters): any Debian-like Python 3.11 base without TensorFlow, e.g. the
#     bookworm base scripts/container/build-base.sh makes; tensorflow_cpu comes from the lock.
# Only what the pods run goes in (requirements/runtime.lock, the package); no credentials: S3 keys,
# endpoint and the Pushgateway URL come from the environment at run time.
#
#   docker build -t REGISTRY/sd1job:TAG .
#   docker build --build-arg BASE_IMAGE=localhost/sd1job-base:bookworm-py3.11 -t sd1job:cpu .
#   docker run --rm --gpus all REGISTRY/sd1job:TAG train --config /etc/sd1job/config.yaml --unit c44-s25
# Fully qualified, so that podman and buildah (which resolve no short names by default) find it too.
ARG BASE_IMAGE=docker.io/tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE_IMAGE}

# PIP_BREAK_SYSTEM_PACKAGES: this image's Python is ours alone, install into it directly.
# HOME, MPLCONFIGDIR, NUMBA_CACHE_DIR: the pods run with a read-only root filesystem and an
# emptyDir at /tmp, so every cache (Keras, matplotlib, numba) goes there.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp \
    NUMBA_CACHE_DIR=/tmp/numba-cache

# The non-root user the pods run as (runAsUser/runAsGroup in argo/sweep.yaml).
RUN groupadd --gid 10001 sd1job \
    && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /tmp --shell /usr/sbin/nologin sd1job

WORKDIR /opt/sd1job

# The runtime pins (before the package, so that a code change rebuilds only the last layers).
# A base that ships TensorFlow (the GPU image) must ship the locked version, and the lock's
# tensorflow_cpu is then left out; a base without it gets tensorflow_cpu from the lock.
COPY requirements/runtime.lock requirements/
RUN locked="$(sed -n 's/^tensorflow_cpu==//p' requirements/runtime.lock)" \
    && if provided="$(python -c 'import importlib.metadata as m; print(m.version("tensorflow"))' 2>/dev/null)"; then \
         if [ "$provided" != "$locked" ]; then echo "base image has TensorFlow $provided, the lock pins $locked" >&2; exit 1; fi; \
         grep -v -E '^(tensorflow_cpu)==' requirements/runtime.lock > /tmp/requirements-image.txt; \
       else \
         cp requirements/runtime.lock /tmp/requirements-image.txt; \
       fi \
    && python -m pip install --no-cache-dir -r /tmp/requirements-image.txt \
    && rm /tmp/requirements-image.txt

# The package itself; its dependencies are all installed above from the lock. The source tree is
# removed after the install so that `python -m sd1job` here imports the installed, byte-compiled
# package (the read-only root filesystem keeps Python from caching bytecode at run time).
COPY pyproject.toml README.md ./
COPY sd1job ./sd1job
RUN python -m pip install --no-cache-dir --no-deps . \
    && rm -rf build sd1job.egg-info sd1job \
    && python -m sd1job --help >/dev/null \
    && python -c "import keras, tensorflow; print('tensorflow', tensorflow.__version__, 'keras', keras.__version__)"

USER 10001:10001

ENTRYPOINT ["python", "-m", "sd1job"]
CMD ["--help"]
