"""A mixed plan at --jobs 1 and 2: wall time against its lower bound, model loads, memory.

    python bench/mixed_plan.py [--jobs 1 2] [--tree DIR]

The plan: jpeg, webp-cli and x265 (containers, or native binaries) and two learned
codecs with random weights of their released layouts, registered as models of one's
own at 3 rate points each (bmshj2018-hyperprior and stf), on the four sample photos.
Each --jobs value runs on a fresh store. The lower bound of a parallel run is
max(wall time at 1 job / jobs, the longest task), the wall time at 1 job being the sum
of the task times as this runner pays them (model loads included). Peak memory: the
largest summed resident set of the harness and its workers, sampled every 0.2 s.
``--tree DIR`` runs another checkout's harness (e.g. the previous runner, from a
``git worktree``) on the same plan.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODECS = ["jpeg", "webp-cli", "x265", "rand-hyperprior", "rand-stf"]
LEARNED = {"rand-hyperprior": "bmshj2018-hyperprior", "rand-stf": "stf"}


def _tree_rss(root: int) -> int:
    """Summed resident set (bytes) of ``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
            rss[int(entry.name)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def _models(folder: Path, env: dict) -> None:
    """Random weights of the released layouts saved as checkpoints, registered as models."""
    import torch

    from harness.registry import new_codec

    for name, architecture in LEARNED.items():
        files = []
        for quality in (1, 2, 3):
            torch.manual_seed(quality)
            net = new_codec(architecture).random_network(quality)
            files.append(folder / f"{name}-{quality}.pth")
            torch.save(net.state_dict(), files[-1])
        subprocess.run([sys.executable, "-m", "harness", "models", "add", name, "--arch",
                        architecture, "--checkpoints", *map(str, files)], env=env, check=True,
                       capture_output=True)


def _run(jobs: int, folder: Path, env: dict) -> dict:
    store = folder / f"jobs{jobs}.sqlite"
    command = [sys.executable, "-m", "harness", "run", "--datasets", "sample", "--codecs",
               *CODECS, "--jobs", str(jobs), "--store", str(store), "--no-progress",
               "--no-report"]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the run failed ({process.returncode}):\n{err[-3000:]}")
    with sqlite3.connect(store) as db:
        times = [t for (t,) in db.execute("SELECT encode_s + decode_s FROM results")]
    loads = re.search(r"model loads: (\d+) in (\d+) worker", out)
    return {"wall": wall, "tasks": len(times), "longest": max(times), "peak": peak,
            "loads": loads.group(0) if loads else "(not reported)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--tree", help="another checkout whose harness runs the plan")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mixed-plan-") as tmp:
        folder = Path(tmp)
        env = dict(os.environ, HARNESS_CHECKPOINTS=str(folder / "manifests"),
                   PYTHONPATH=os.pathsep.join(filter(None, [args.tree,
                                                            os.environ.get("PYTHONPATH")])))
        _models(folder, env)
        results = {jobs: _run(jobs, folder, env) for jobs in sorted(args.jobs)}
    serial = results[min(results)]["wall"] * min(results)  # the sum of the task times
    print("| jobs | tasks | wall s | lower bound s | wall / bound | longest task s |"
          " peak RSS GiB | model loads |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for jobs, r in results.items():
        bound = max(serial / jobs, r["longest"])
        print(f"| {jobs} | {r['tasks']} | {r['wall']:.1f} | {bound:.1f} |"
              f" {r['wall'] / bound:.3f} | {r['longest']:.1f} | {r['peak'] / 2**30:.2f} |"
              f" {r['loads']} |")


if __name__ == "__main__":
    main()
