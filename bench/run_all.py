"""Run every ``bench/bench_*.py`` in its own process (so one's threads and caches do not skew another's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run only when named (`make bench BENCH=nam`): they have their own make target and take long.
ON_REQUEST = {"nam"}  # bench_nam.py: `make bench-nam`, an hour or more, needs .venv-nam


def main() -> int:
    selected = set(sys.argv[1:])
    failures = 0
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if (selected and name not in selected) or (not selected and name in ON_REQUEST):
            continue
        print(f"\n=== {name} ===", flush=True)
        failures += subprocess.call([sys.executable, str(script)], cwd=HERE.parent) != 0
    print(f"\nresults in {HERE / 'results'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
