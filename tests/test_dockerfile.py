"""Static checks of the Dockerfile (scripts/check_dockerfile.py), and that they catch real mistakes."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

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


def test_image_runs_the_package_entry_point_as_non_root() -> None:
    instructions = checker.parse_dockerfile((REPO_ROOT / "Dockerfile").read_text())
    entry = [i.argument for i in instructions if i.keyword == "ENTRYPOINT"]
    assert entry == ['["python", "-m", "sd1job"]']
    assert (REPO_ROOT / "sd1job" / "__main__.py").is_file()
    users = [i.argument for i in instructions if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] == "10001"


def test_image_filter_keeps_every_runtime_dependency() -> None:
    """The lock lines the image drops are tensorflow_cpu plus tools sd1job never imports."""
    instructions = checker.parse_dockerfile((REPO_ROOT / "Dockerfile").read_text())
    removed = checker.lock_filter(instructions)
    lock = checker.read_lock(REPO_ROOT / "requirements.lock")
    assert "tensorflow-cpu" in removed
    kept = set(lock) - removed
    for runtime in ("numpy", "scipy", "soundfile", "boto3", "pydantic", "pydantic-settings", "pyyaml", "keras"):
        assert runtime in kept, runtime


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The files the checker reads, copied so a test can break one."""
    for name in ("Dockerfile", ".dockerignore", "Makefile", "requirements.lock", "pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    shutil.copytree(REPO_ROOT / "sd1job", tmp_path / "sd1job", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("filename", "old", "new", "expected"),
    [
        ("Dockerfile", "tensorflow:2.21.0-gpu", "tensorflow:2.20.0-gpu", "is not tensorflow/tensorflow:2.21.0-gpu"),
        ("Dockerfile", "tensorflow:2.21.0-gpu", "tensorflow:latest", "not pinned"),
        ("Dockerfile", "FROM tensorflow/tensorflow:2.21.0-gpu", "FROM tensorflow/tensorflow", "not pinned"),
        ("Dockerfile", "tensorflow_cpu|", "", "tensorflow-cpu from the lock is not filtered out"),
        ("Dockerfile", "|selenium)==", "|selenium|boto3)==", "sd1job imports boto3"),
        ("Dockerfile", "|selenium)==", "|selenium|not-a-package)==", "stale name"),
        ("Dockerfile", "USER 10001:10001", "USER root", "non-root USER"),
        ("Dockerfile", '"-m", "sd1job"]', '"-m", "sd1job.nope"]', "has no __main__.py"),
        ("Dockerfile", "COPY pyproject.toml README.md ./", "COPY pyproject.toml ./", "readme README.md is not copied"),
        ("Dockerfile", "--no-deps .", ".", "--no-deps"),
        ("Makefile", "-r requirements.lock", "-r requirements-other.lock", "requirements-other.lock"),
        (".dockerignore", "!sd1job/", "", ".dockerignore excludes sd1job/"),
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
        ("requirements.lock", False),
        (".venv/bin/python", True),
        ("tests/test_dockerfile.py", True),
    ],
)
def test_dockerignore_matching(path: str, excluded: bool) -> None:
    patterns = checker.read_dockerignore(REPO_ROOT / ".dockerignore")
    assert checker.dockerignore_excludes(patterns, path) is excluded
