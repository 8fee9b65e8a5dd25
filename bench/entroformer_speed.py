"""Forward / compress / decompress seconds and peak memory of Entroformer (random weights).

    python bench/entroformer_speed.py [--size 512x768] [--threads 2] [--variants ...]

Each context model runs in its own process, so the peak RSS printed is that variant's
alone (forward, compress and decompress of one image). The weights are random, with the
last encoder convolution scaled by 30 so that y is not rounded to zeros; the timings do
not depend on the values. Printed per variant: seconds (forward: min of --repeat runs),
real and estimated bpp (the estimate with each element's cost capped at 16 bits, what
16-bit tables can code), whether decoding reproduced the forward's x_hat exactly, and
peak RSS. The official code is timed separately (see bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(variant: str, height: int, width: int, threads: int, repeat: int) -> dict:
    import torch

    from harness.models.entroformer import Entroformer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = Entroformer(variant).eval()
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        net.encode.encoder[6].weight.mul_(30)
        forward_s = []
        for _ in range(repeat):
            start = time.perf_counter()
            forward = net(x)
            forward_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        out = net.compress(x)
        compress_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = net.decompress(out["strings"], out["shape"])
        decompress_s = time.perf_counter() - start
    pixels = height * width
    capped = sum(-torch.log2(v.clamp(min=2 ** -16)).sum().item()
                 for v in forward["likelihoods"].values())
    return {"variant": variant, "size": f"{height}x{width}", "threads": threads,
            "forward_s": min(forward_s), "compress_s": compress_s,
            "decompress_s": decompress_s,
            "positions": int(out["shape"][0] * out["shape"][1] * 16),
            "bpp": 8 * sum(len(s[0]) for s in out["strings"]) / pixels,
            "estimated_bpp": capped / pixels,
            "decoded_equals_forward": bool(torch.equal(decoded["x_hat"], forward["x_hat"])),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="512x768")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["unidirectional", "bidirectional"])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    if args.one:
        print(json.dumps(measure(args.variants[0], height, width, args.threads, args.repeat)))
        return
    for variant in args.variants:
        done = subprocess.run([sys.executable, __file__, "--one", "--size", args.size,
                               "--threads", str(args.threads), "--repeat", str(args.repeat),
                               "--variants", variant], capture_output=True, text=True,
                              check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        per_position = r["decompress_s"] / r["positions"] * 1000
        print(f"entroformer {r['variant']:14s} {r['size']} forward {r['forward_s']:.2f} s"
              f"  compress {r['compress_s']:.2f} s  decompress {r['decompress_s']:.2f} s"
              f" ({per_position:.1f} ms/position)  {r['bpp']:.4f} bpp (estimate"
              f" {r['estimated_bpp']:.4f})  exact: {r['decoded_equals_forward']}"
              f"  peak RSS {r['peak_rss_gib']:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
