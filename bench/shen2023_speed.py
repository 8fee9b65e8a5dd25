"""Speed and memory of the Shen & Liu 2023 network (harness.models.shen2023) on CPU.

Forward, compress and decompress seconds at 768x512 (the sample set's coffee.png,
Lanczos-resized), 2 torch threads, minimum of --repeat runs after one warm-up at 64x64,
the ratio (compress + decompress) / forward, and the peak resident memory of the whole
process (network built once, as a worker loads it). Weights are random (417.8 M
parameters, as the released file); they cost what trained ones cost, but the bitstream
sizes mean nothing. The decoded image is checked against the forward reconstruction.

Usage: python bench/shen2023_speed.py [--size 768x512] [--repeat N] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="768x512")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    import numpy as np
    import torch
    from PIL import Image

    from harness.models import create

    torch.set_num_threads(args.threads)
    sample = Path(__file__).resolve().parents[1] / "datasets" / "sample" / "coffee.png"
    with Image.open(sample) as im:
        pixels = np.asarray(im.convert("RGB").resize((width, height), Image.LANCZOS))
    x = torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)[None]

    start = time.perf_counter()
    torch.manual_seed(0)
    net = create("shen2023").eval()
    net.update(force=True)
    built = time.perf_counter() - start
    params = sum(p.numel() for p in net.parameters())

    times: dict[str, float] = {}
    with torch.inference_mode():
        blank = torch.zeros(1, 3, 64, 64)
        warm = net.compress(blank)
        net.decompress(warm["strings"], warm["shape"])
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = net(x)
            times["forward"] = min(times.get("forward", 1e9), time.perf_counter() - t)
            t = time.perf_counter()
            coded = net.compress(x)
            times["compress"] = min(times.get("compress", 1e9), time.perf_counter() - t)
            t = time.perf_counter()
            decoded = net.decompress(coded["strings"], coded["shape"])["x_hat"]
            times["decompress"] = min(times.get("decompress", 1e9), time.perf_counter() - t)
    exact = torch.equal(decoded, out["x_hat"].clamp(0, 1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB -> GiB
    ratio = (times["compress"] + times["decompress"]) / times["forward"]
    nbytes = sum(len(s[0]) for s in coded["strings"])
    print(f"shen2023, {params / 1e6:.1f} M parameters, built in {built:.1f} s;"
          f" {width}x{height}, {args.threads} threads, torch {torch.__version__}")
    print("| forward s | compress s | decompress s | (c + d) / f | peak RSS GiB |"
          " bytes | decode == forward |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {times['forward']:.2f} | {times['compress']:.2f} | {times['decompress']:.2f}"
          f" | {ratio:.2f} | {peak:.2f} | {nbytes} | {exact} |")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
