"""Run every benchmark in this folder, one subprocess each, and echo their figures.

Each `bench_*.py` prints one line per figure and its ratios against a baseline measured in the
same run. `make bench` runs them all but `bench_real.py` (pretraining on real data: hours on a
CPU, `make bench-real`); pass names to run a subset: `run_all.py preprocess`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

SEPARATE = {"bench_real"}  # its own target, `make bench-real`


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    scripts = sorted(here.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(name in s.stem for name in argv)]
    else:
        scripts = [s for s in scripts if s.stem not in SEPARATE]
    failures = 0
    for script in scripts:
        print(f"== {script.stem} ==", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], check=False)
        print(f"== {script.stem}: exit {result.returncode}, {time.perf_counter() - start:.0f} s\n",
              flush=True)
        failures += result.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
