"""SIGKILL at random moments, then resume: rows lost, rows changed, orphans left.

Workload: the 4 embedded sample photos x JPEG and WebP at qualities 2..99 (784
measurements) with `--jobs 2`, the report included, so kills land
in start-up, measuring, writing and rendering alike. Each trial starts `harness run`
on the same store and SIGKILLs it after a random delay: the whole process group (as a
machine losing power would), or the parent alone (as the OOM killer might), in turn.
After each kill the store is compared with what it held before: every row must still
be there, byte for byte, and `PRAGMA integrity_check` must say ok. After a parent-only
kill, the run's worker processes must be gone within 5 s. At the end one more run
resumes and must find exactly the missing measurements and finish with every key once.

Usage: python bench/kill_resume.py [--kills N] [--seed S]
Target: 0 rows lost or changed, 0 duplicates, 0 orphans, integrity ok after every kill.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def rows(store: Path) -> list[tuple]:
    if not store.exists():
        return []
    with sqlite3.connect(store, timeout=30) as db:
        found = db.execute("SELECT codec_fingerprint, quality, image_hash, bytes, psnr, created"
                           " FROM results ORDER BY 1, 2, 3").fetchall()
    db.close()
    return found


def integrity(store: Path) -> str:
    if not store.exists():
        return "ok"
    with sqlite3.connect(store, timeout=30) as db:
        answer = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="kill-resume-"))
    store = work / "r.sqlite"
    command = [sys.executable, "-m", "harness", "run", "--datasets", "sample", "--codecs",
               "jpeg", "webp", "--qualities", *map(str, range(2, 100)), "--jobs", "2",
               "--store", str(store),
               "--report", str(work / "report"), "--no-progress"]
    lost = changed = orphans = bad = 0
    mid_run = 0
    kept = rows(store)
    for trial in range(args.kills):
        parent_only = trial % 2 == 1
        process = subprocess.Popen(command, cwd=work, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(3.0, 9.0))
        family = psutil.Process(process.pid).children(recursive=True)
        if process.poll() is None:
            mid_run += 1
        try:
            if parent_only:
                os.kill(process.pid, signal.SIGKILL)
            else:
                os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:  # it had finished
            pass
        process.wait()
        if parent_only:
            deadline = time.monotonic() + 5
            alive = family
            while alive and time.monotonic() < deadline:
                time.sleep(0.2)
                alive = [p for p in family
                         if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            orphans += len(alive)
            for leftover in alive:
                leftover.kill()
        now = rows(store)
        before = {r[:3]: r for r in kept}
        after = {r[:3]: r for r in now}
        lost += len(set(before) - set(after))
        changed += sum(1 for key, row in before.items() if key in after and after[key] != row)
        bad += integrity(store) != "ok"
        print(f"kill {trial + 1:2d} ({'parent' if parent_only else 'group '}):"
              f" {len(now)} rows stored", flush=True)
        kept = now
    resumed = subprocess.run(command, cwd=work, capture_output=True, text=True)
    final = rows(store)
    keys = [r[:3] for r in final]
    line = next((x for x in resumed.stderr.splitlines() if "measurements to make" in x), "")
    print(f"\n{args.kills} kills ({mid_run} while the run was still going), seed {args.seed}")
    print(f"rows lost: {lost}, rows changed: {changed}, integrity failures: {bad},"
          f" orphaned processes: {orphans}")
    print(f"resume: rc {resumed.returncode}; {line.strip()}")
    print(f"final: {len(final)} rows, {len(set(keys))} distinct keys (expected 784)")


if __name__ == "__main__":
    main()
