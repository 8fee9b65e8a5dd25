"""Forward / compress / decompress seconds of TIC (random weights, 2 threads).

    python bench/tic_entroformer_speed.py [--size 512x768] [--official DIR]

``--official DIR``: a directory holding a runnable copy of the official TIC code as
``tic_2022.py`` (module importable from DIR); it then runs on the same weights and the
bitstreams and reconstructions are compared. Entroformer is not benchmarked yet.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="512x768")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--official", default=None)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(args.threads)
    from harness.models import create

    torch.manual_seed(0)
    ours = create("tic", revision="2022").eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ours.update(force=True)
    x = torch.rand(1, 3, height, width)
    nets = {"ours": ours}
    if args.official:
        sys.path.insert(0, args.official)
        from tic_2022 import TIC as Official

        official = Official(128, 192).eval()
        theirs = dict(official.named_parameters())
        with torch.no_grad():
            for key, value in ours.named_parameters():
                theirs[key].copy_(value)
        official.entropy_bottleneck.update(force=True)
        official.update(force=True)
        nets["official"] = official
    results = {}
    with torch.no_grad():
        for name, net in nets.items():
            net(x)  # warm-up
            _, fwd = timed(lambda net=net: net(x))
            enc, t_enc = timed(lambda net=net: net.compress(x))
            dec, t_dec = timed(lambda net=net, enc=enc: net.decompress(enc["strings"],
                                                                        enc["shape"]))
            results[name] = (enc, dec)
            size = sum(len(s[0]) for s in enc["strings"])
            print(f"tic {name:8s} {height}x{width} forward {fwd:.2f} s  compress {t_enc:.2f} s"
                  f"  decompress {t_dec:.2f} s  {8 * size / height / width:.3f} bpp")
    if "official" in results:
        (ea, da), (eb, db) = results["ours"], results["official"]
        same = ea["strings"] == eb["strings"]
        diff = (da["x_hat"] - db["x_hat"]).abs().max().item()
        print(f"bitstreams identical: {same}; decoded max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
