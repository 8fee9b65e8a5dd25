"""Start-up times: `harness --help`, `harness codecs`, `python -c "import harness"`.

Each command runs in a fresh interpreter, as a user types it; the median of --repeat
runs is printed beside its target (issue 17: < 0.3 s, < 2 s, < 0.3 s), in wall seconds
and in CPU seconds (user + system), which a busy machine inflates less.

    python bench/startup.py --repeat 5
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "harness --help": ([sys.executable, "-m", "harness", "--help"], 0.3),
    "harness codecs": ([sys.executable, "-m", "harness", "codecs"], 2.0),
    'python -c "import harness"': ([sys.executable, "-c", "import harness"], 0.3),
}


def seconds(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"| command | wall (median of {args.repeat}) | CPU | target |\n|---|---|---|---|")
    for name, (argv, target) in COMMANDS.items():
        runs = [seconds(argv) for _ in range(args.repeat)]
        wall, cpu = (statistics.median(r[i] for r in runs) for i in (0, 1))
        print(f"| `{name}` | {wall:.2f} s | {cpu:.2f} s | < {target:g} s |")


if __name__ == "__main__":
    main()
