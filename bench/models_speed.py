"""Speed of the STF, WACNN and TCM networks of harness.models on CPU, and of the
original code on the same weights.

Per model: forward, compress and decompress seconds at 768x512 (the sample set's
coffee.png, Lanczos-resized), CPU, 2 torch threads, minimum of --repeat runs after one
warm-up at 256x256. Weights are random (no trained weights can be downloaded here);
they cost what trained ones cost, but the bitstream sizes mean nothing.

Given a local copy of an original repository, the same weights run through the
original classes in a separate process, and the table adds their timings, whether the
compressed bytes are identical and the largest difference of the forward
reconstructions:

- ``--official-stf DIR``: a checkout of Googolxx/STF with its C++ extensions built in
  place (``python setup.py build_ext --inplace``); it provides the ``compressai``
  package that its models import (STF and WACNN);
- ``--official-tcm DIR``: a checkout of jmliu206/LIC_TCM (runs on the installed
  CompressAI; needs einops).

``timm`` (imported by both for DropPath / initialisers) is replaced by a minimal
stand-in when it is not installed. ``--rss MODEL`` adds the peak resident memory of
compress + decompress at 2048x1536 for one model (a fresh process).

Usage: python bench/models_speed.py [--models stf wacnn tcm] [--repeat N]
       [--official-stf DIR] [--official-tcm DIR] [--rss MODEL]
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "datasets" / "sample" / "coffee.png"
WIDTH, HEIGHT = 768, 512
CONFIGS = {"stf": {}, "wacnn": {}, "tcm": {"N": 64}, "tcm-large": {"N": 128}}


def photo(width: int = WIDTH, height: int = HEIGHT):
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(PHOTO) as im:
        pixels = np.asarray(im.convert("RGB").resize((width, height),
                                                    Image.Resampling.LANCZOS))
    return torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)[None].contiguous()


def make_weights(model: str, folder: Path) -> Path:
    """Random weights of ``model``, saved the way the original train.py saves them."""
    import torch

    from harness.models import create

    torch.manual_seed(1234)
    net = create(model.removesuffix("-large"), **CONFIGS[model])
    path = folder / f"{model}.pth.tar"
    torch.save({"epoch": 0, "state_dict": {f"module.{k}": v
                                           for k, v in net.state_dict().items()}}, path)
    return path


# --- workers (run in a fresh process) ------------------------------------------------------------

def _timm_stand_in() -> None:
    """Enough of timm for the original model files, when timm is not installed."""
    try:
        import timm.models.layers  # noqa: F401
        return
    except ImportError:
        pass
    import collections.abc

    import torch
    from torch import nn

    class DropPath(nn.Module):
        def __init__(self, drop_prob: float = 0.0):
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x):
            if not self.training or not self.drop_prob:
                return x
            keep = 1 - self.drop_prob
            return x * x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep) / keep

    def to_2tuple(x):
        iterable = isinstance(x, collections.abc.Iterable) and not isinstance(x, str)
        return tuple(x) if iterable else (x, x)

    def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0):
        return torch.nn.init.trunc_normal_(tensor, mean, std, a, b)

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.to_2tuple, layers.trunc_normal_ = DropPath, to_2tuple, trunc_normal_
    models = types.ModuleType("timm.models")
    models.layers = layers
    timm = types.ModuleType("timm")
    timm.models = models
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})


def _official_network(model: str, weights: Path, repo: Path):
    import torch

    _timm_stand_in()
    sys.path.insert(0, str(repo))
    state = torch.load(weights, map_location="cpu")["state_dict"]
    if model in ("stf", "wacnn"):
        from compressai.zoo import load_state_dict, models

        net = models["cnn" if model == "wacnn" else "stf"].from_state_dict(
            load_state_dict(state)).eval()
        net.update(force=True)
        return net
    from models.tcm import TCM

    state = {k.replace("module.", ""): v for k, v in state.items()}
    net = TCM(config=[2, 2, 2, 2, 2, 2], head_dim=[8, 16, 32, 32, 16, 8], drop_path_rate=0.0,
              N=state["g_a.0.conv1.weight"].shape[0] // 2, M=320).eval()
    net.load_state_dict(state)
    net.update()
    return net


def _our_network(model: str, weights: Path):
    from harness.checkpoints import load_strict, read_state_dict
    from harness.models import conform_state_dict, create, infer_config

    name = model.removesuffix("-large")
    state = read_state_dict(weights)
    net = create(name, **infer_config(name, state))
    conform_state_dict(net, state)
    load_strict(net, state, str(weights))
    net.update()
    return net.eval()


def _timed(function, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = function(*args)
    return time.perf_counter() - start, out


def worker(side: str, model: str, weights: Path, inputs: Path, out: Path, repeat: int,
           threads: int, repo: Path | None) -> None:
    import torch

    torch.set_num_threads(threads)
    net = _official_network(model, weights, repo) if side == "official" else _our_network(
        model, weights)
    x = torch.load(inputs)
    times = {"forward": [], "compress": [], "decompress": []}
    with torch.no_grad():
        small = torch.zeros(1, 3, 256, 256)
        coded = net.compress(small)
        net.decompress(coded["strings"], coded["shape"])
        for _ in range(repeat):
            seconds, forward = _timed(net, x)
            times["forward"].append(seconds)
            seconds, coded = _timed(net.compress, x)
            times["compress"].append(seconds)
            seconds, decoded = _timed(net.decompress, coded["strings"], coded["shape"])
            times["decompress"].append(seconds)
    torch.save({"times": times, "strings": coded["strings"], "x_hat": forward["x_hat"],
                "decoded": decoded["x_hat"],
                "params": sum(p.numel() for p in net.parameters())}, out)


def rss_worker(model: str, weights: Path, width: int, height: int, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    net = _our_network(model, weights)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    x = photo(width, height)
    with torch.no_grad():
        coded = net.compress(x)
        net.decompress(coded["strings"], coded["shape"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"loaded_kib": loaded, "peak_kib": peak}))


# --- the driver ------------------------------------------------------------------------------

def run_worker(args: list[str], threads: int, pythonpath: str | None = None):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    else:
        env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["stf", "wacnn", "tcm"],
                        choices=list(CONFIGS))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--official-stf", type=Path, help="checkout of Googolxx/STF, built")
    parser.add_argument("--official-tcm", type=Path, help="checkout of jmliu206/LIC_TCM")
    parser.add_argument("--rss", choices=list(CONFIGS), help="peak RSS at 2048x1536")
    parser.add_argument("--worker", nargs=5, metavar=("SIDE", "MODEL", "WEIGHTS", "INPUT", "OUT"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--repo", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rss-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        side, model, weights, inputs, out = args.worker
        worker(side, model, Path(weights), Path(inputs), Path(out), args.repeat, args.threads,
               args.repo)
        return
    if args.rss_worker:
        model, weights, width, height = args.rss_worker
        rss_worker(model, Path(weights), int(width), int(height), args.threads)
        return

    import torch

    official = {"stf": args.official_stf, "wacnn": args.official_stf,
                "tcm": args.official_tcm, "tcm-large": args.official_tcm}
    with_official = any(official[m] for m in args.models)
    head = ["model", "params (M)", "forward s", "compress s", "decompress s"]
    if with_official:
        head += ["original forward s", "original compress s", "original decompress s",
                 "same bytes", "max abs diff x_hat"]
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = folder / "x.pt"
        torch.save(photo(), inputs)
        for model in args.models:
            weights = make_weights(model, folder)
            results = {}
            for side in ("ours", "official"):
                repo = official[model] if side == "official" else None
                if side == "official" and repo is None:
                    continue
                out = folder / f"{model}-{side}.pt"
                extra = ["--repo", str(repo)] if repo else []
                done = run_worker(["--worker", side, model, str(weights), str(inputs), str(out),
                                   "--repeat", str(args.repeat), "--threads",
                                   str(args.threads), *extra], args.threads)
                if done.returncode != 0:
                    tail = done.stderr.strip().splitlines()[-1:] or ["?"]
                    notes.append(f"{model} ({side}) failed: {tail[0]}")
                    continue
                results[side] = torch.load(out)
            if "ours" not in results:
                continue
            ours = results["ours"]
            row = [model, f"{ours['params'] / 1e6:.1f}",
                   *(f"{min(ours['times'][k]):.2f}" for k in ("forward", "compress",
                                                               "decompress"))]
            if with_official:
                theirs = results.get("official")
                if theirs is None:
                    row += ["-"] * 5
                else:
                    delta = (ours["x_hat"] - theirs["x_hat"]).abs().max().item()
                    row += [*(f"{min(theirs['times'][k]):.2f}" for k in ("forward", "compress",
                                                                          "decompress")),
                            "yes" if ours["strings"] == theirs["strings"] else "NO",
                            f"{delta:.1e}"]
            rows.append(row)
        if args.rss:
            weights = make_weights(args.rss, folder)
            done = run_worker(["--rss-worker", args.rss, str(weights), "2048", "1536",
                               "--threads", str(args.threads)], args.threads)
            if done.returncode == 0:
                rss = json.loads(done.stdout.strip().splitlines()[-1])
                notes.append(f"peak RSS, {args.rss} compress + decompress at 2048x1536:"
                             f" {rss['peak_kib'] / 2**20:.2f} GiB (weights loaded:"
                             f" {rss['loaded_kib'] / 2**20:.2f} GiB)")
            else:
                notes.append(f"peak RSS run failed: {done.stderr.strip().splitlines()[-1:]}")

    print(f"CPU, {args.threads} threads, {WIDTH}x{HEIGHT}, min of {args.repeat} after a"
          f" warm-up; load average at the end {os.getloadavg()[0]:.1f}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for note in notes:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
