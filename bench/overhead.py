"""Harness overhead, parallel efficiency, cached re-run and start-up time.

Workload: the embedded `sample` set (4 photos) x JPEG + WebP at 50 quality points each
(400 measurements: encode, decode, PSNR, MS-SSIM). Compares the wall time of
`harness run --jobs 1` with a bare Python loop doing the same work in one process
(both timed as whole processes, imports included, since both need torch).

Usage: python bench/overhead.py [--qualities N]
Targets: overhead <= 1.05, start-up < 1.5 s, --jobs 2 >= 1.8x --jobs 1, fully cached
re-run < 3 s; a Dask local cluster of 2 workers <= 1.15x the time of --jobs 2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_LOOP = """
import sys, time
from harness.datasets import resolve_dataset
from harness.images import load_image
from harness.registry import create_codec
from harness import metrics
import torch
torch.set_num_threads({threads})
qualities = {qualities}
images = [load_image(ref.path).pixels for ref in resolve_dataset("sample").images]
start = time.perf_counter()
for image in images:
    for name in ("jpeg", "webp"):
        codec = create_codec(name)
        for q in qualities:
            data = codec.encode(image, q)
            rec = codec.decode(data)
            metrics.psnr(image, rec)
            metrics.ms_ssim(image, rec)
print(time.perf_counter() - start, file=sys.stderr)
"""


def timed(command: list[str]) -> tuple[float, str]:
    # both sides run with the OpenMP policy the harness sets (threads sleep when idle)
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{command} failed:\n{done.stderr}")
    return elapsed, done.stderr


def _per_task_seconds(store: Path) -> float:
    import sqlite3

    with sqlite3.connect(store) as db:
        (mean,) = db.execute("SELECT AVG(encode_s + decode_s) FROM results").fetchone()
    return float(mean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--qualities", type=int, default=50, help="points per codec")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of short timings")
    args = parser.parse_args()
    qualities = [round(2 + i * 98 / (args.qualities - 1)) for i in range(args.qualities)]
    harness = [sys.executable, "-m", "harness"]
    with tempfile.TemporaryDirectory() as tmp:
        def run(jobs: int, store: str) -> float:
            return timed(harness + ["run", "--datasets", "sample", "--codecs", "jpeg", "webp",
                                    "--qualities", *map(str, qualities), "--jobs", str(jobs),
                                    "--store", str(Path(tmp) / store), "--no-progress",
                                    "--no-report"])[0]

        startup = statistics.median(timed(harness + ["--version"])[0] for _ in range(args.repeat))
        listing = statistics.median(timed(harness + ["codecs"])[0] for _ in range(args.repeat))
        bare_wall, bare_err = timed([sys.executable, "-c", BARE_LOOP.format(
            qualities=qualities, threads=2)])
        bare_loop = float(bare_err.strip().splitlines()[-1])
        one_job = run(1, "one.sqlite")
        cached = statistics.median(run(1, "one.sqlite") for _ in range(args.repeat))
        two_jobs = run(2, "two.sqlite")
        dask_local = timed(harness + ["run", "--datasets", "sample", "--codecs", "jpeg", "webp",
                                      "--qualities", *map(str, qualities), "--scheduler",
                                      "local:2", "--store", str(Path(tmp) / "dask.sqlite"),
                                      "--no-progress", "--no-report"])[0]
        per_task = _per_task_seconds(Path(tmp) / "one.sqlite")
    n = 4 * 2 * len(qualities)
    print(f"workload: sample set (4 photos) x jpeg, webp x {len(qualities)} qualities = {n}"
          " measurements")
    print(f"bare loop process: {bare_wall:.2f} s wall ({bare_loop:.2f} s in the loop)")
    print(f"harness run --jobs 1: {one_job:.2f} s wall")
    print(f"overhead ratio (harness / bare, whole processes): {one_job / bare_wall:.3f}"
          "  target <= 1.05")
    print(f"harness run --jobs 2: {two_jobs:.2f} s wall; speed-up vs --jobs 1:"
          f" {one_job / two_jobs:.2f}x  target >= 1.8x")
    print(f"fully cached re-run: {cached:.2f} s  target < 3 s")
    print(f"Dask local cluster of 2 workers: {dask_local:.2f} s wall; ratio to --jobs 2:"
          f" {dask_local / two_jobs:.3f}  target <= 1.15")
    whole = one_job / n
    print(f"per task: {per_task * 1000:.1f} ms of encode + decode, {whole * 1000:.1f} ms in all"
          f" (--jobs 1 wall / tasks); with W workers the plan needs about {n} x {whole:.3f} s"
          f" / W plus start-up, e.g. {n * whole / 8:.1f} s on 8 workers, while the client"
          " keeps up (it writes one SQLite row per result, well under a millisecond each)")
    print(f"start-up (harness --version): {startup:.2f} s; harness codecs: {listing:.2f} s"
          "  target < 1.5 s")


if __name__ == "__main__":
    main()
