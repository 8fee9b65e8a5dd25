"""A mixed plan at --jobs 1 and 2: wall time against its lower bound, model loads, memory.

    python bench/mixed_plan.py [--jobs 1 2] [--tree DIR] [--device cuda] [--classical C ...]
                               [--learned ARCH ...] [--rates N] [--datasets D ...]

The plan: jpeg, webp-cli and x265 (containers, or native binaries) and two learned
codecs with random weights of their released layouts, registered as models of one's
own at 3 rate points each (bmshj2018-hyperprior and stf), on the four sample photos.
``--learned`` names other architectures (e.g. ``bmshj2018-hyperprior stf wacnn tcm``).
Each --jobs value runs on a fresh store. Two lower bounds of a run at N jobs, each
max(time / N, the longest task): "all" takes the time of the run at 1 job (every cost
this runner pays: model loads, images, the parent; but learned codecs run there on
all cores, so it is low), "tasks" the sum of the run's own task times (encode + decode
from its rows, plus PSNR and MS-SSIM timed here on each image; no loads). Peak memory:
the largest summed resident set of the harness and its workers, sampled every 0.2 s.
``--tree DIR`` runs another checkout's harness (e.g. the previous runner, from a
``git worktree``) on the same plan. ``--device cuda`` runs the learned codecs on the GPU,
in a worker of their own beside the CPU's --jobs workers: the tasks bound is then
max(the classical tasks' sum / N, the learned tasks' sum, the longest task).
``--classical`` replaces the classical codecs (e.g. ``jpeg webp`` where no Docker is).
``--rates N``: the learned codecs at N rate points (default 3; papers show 4 to 6).
``--datasets``: what to measure on (default ``sample``; a folder of images works).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSICAL = ["jpeg", "webp-cli", "x265"]
LEARNED = ["bmshj2018-hyperprior", "stf"]  # architectures, registered as rand-<name>


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


def _models(folder: Path, env: dict, rates: int, learned: list[str]) -> list[str]:
    """Random weights of the released layouts saved as checkpoints, registered as models."""
    import torch

    from harness.registry import new_codec

    names = []
    for architecture in learned:
        name, files = f"rand-{architecture}", []
        names.append(name)
        for quality in range(1, rates + 1):
            torch.manual_seed(quality)
            net = new_codec(architecture).random_network(quality)
            files.append(folder / f"{name}-{quality}.pth")
            torch.save(net.state_dict(), files[-1])
        subprocess.run([sys.executable, "-m", "harness", "models", "add", name, "--arch",
                        architecture, "--checkpoints", *map(str, files)], env=env, cwd=folder,
                       check=True, capture_output=True)
    return names


def _run(jobs: int, folder: Path, env: dict, classical: list[str], learned: list[str],
         device: str, datasets: list[str]) -> dict:
    store = folder / f"jobs{jobs}.sqlite"
    command = [sys.executable, "-m", "harness", "run", "--datasets", *datasets, "--codecs",
               *classical, *learned, "--jobs", str(jobs), "--store", str(store),
               "--no-progress", "--no-report", "--device", device]
    start = time.perf_counter()
    # run from the temporary folder: `python -m` puts the working directory first on
    # sys.path, where a checkout's own harness would shadow --tree's
    process = subprocess.Popen(command, env=env, cwd=folder, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"the run failed ({process.returncode}):\n{err[-3000:]}")
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT codec, encode_s + decode_s, image_hash, error FROM results"
                          ).fetchall()
    if any(error for *_, error in rows):
        raise SystemExit(f"rows failed: {[r for r in rows if r[3]][:3]}")
    times = [(name in learned, t + _metrics_seconds(h, tuple(datasets)))
             for name, t, h, _ in rows]
    every = [t for _, t in times]
    if device == "cpu":
        bound = max(sum(every) / jobs, max(every))
    else:  # the learned codecs' worker runs beside the CPU's jobs workers
        bound = max(sum(t for learned, t in times if not learned) / jobs,
                    sum(t for learned, t in times if learned), max(every))
    loads = re.search(r"model loads: (\d+) in (\d+) worker", out)
    return {"wall": wall, "tasks": len(every), "longest": max(every), "bound": bound,
            "peak": peak, "loads": loads.group(0) if loads else "(not reported)"}


@functools.cache
def _metrics_seconds(image_hash: str, datasets: tuple[str, ...]) -> float:
    """PSNR and MS-SSIM of an image of ``datasets`` against a JPEG of it, timed (median
    of 3)."""
    import io

    from PIL import Image

    from harness import metrics
    from harness.datasets import resolve_dataset
    from harness.images import image_content_hash, load_image

    for ref in (ref for name in datasets for ref in resolve_dataset(name).images):
        image = load_image(ref.path).pixels
        if image_content_hash(image) == image_hash:
            break
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=50)
    decoded = np.asarray(Image.open(buffer).convert("RGB"))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        metrics.psnr(image, decoded)
        metrics.ms_ssim(image, decoded)
        times.append(time.perf_counter() - start)
    return sorted(times)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--tree", help="another checkout whose harness runs the plan")
    parser.add_argument("--device", default="cpu", help="the learned codecs' (default cpu)")
    parser.add_argument("--classical", nargs="+", default=CLASSICAL)
    parser.add_argument("--learned", nargs="+", default=LEARNED,
                        help="architectures with random weights (default: %(default)s)")
    parser.add_argument("--rates", type=int, default=3, help="rate points of each learned codec")
    parser.add_argument("--datasets", nargs="+", default=["sample"])
    args = parser.parse_args()
    # the runs start in a temporary folder: a folder of images is named absolutely
    datasets = [str(Path(d).resolve()) if Path(d).exists() else d for d in args.datasets]
    with tempfile.TemporaryDirectory(prefix="mixed-plan-") as tmp:
        folder = Path(tmp)
        env = dict(os.environ, HARNESS_CHECKPOINTS=str(folder / "manifests"),
                   PYTHONPATH=os.pathsep.join(filter(None, [args.tree,
                                                            os.environ.get("PYTHONPATH")])))
        if args.tree:  # the runs must use that checkout's harness, not an installed one
            probe = [sys.executable, "-c", "import harness; print(harness.__file__)"]
            found = subprocess.run(probe, env=env, cwd=folder, capture_output=True,
                                   text=True).stdout.strip()
            if not Path(found).resolve().is_relative_to(Path(args.tree).resolve()):
                raise SystemExit(f"--tree {args.tree}: the runs would import {found}")
        learned = _models(folder, env, args.rates, args.learned)
        results = {jobs: _run(jobs, folder, env, args.classical, learned, args.device,
                              datasets)
                   for jobs in sorted(args.jobs)}
    serial = results[min(results)]["wall"] * min(results)
    print("| jobs | tasks | wall s | bound all s | wall / bound all | bound tasks s |"
          " wall / bound tasks | longest task s | peak RSS GiB | model loads |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for jobs, r in results.items():
        every = max(serial / jobs, r["longest"])
        tasks = r["bound"]
        print(f"| {jobs} | {r['tasks']} | {r['wall']:.1f} | {every:.1f} |"
              f" {r['wall'] / every:.3f} | {tasks:.1f} | {r['wall'] / tasks:.3f} |"
              f" {r['longest']:.1f} | {r['peak'] / 2**30:.2f} | {r['loads']} |")


if __name__ == "__main__":
    main()
