"""Forward / compress / decompress seconds of TIC (random weights, 2 threads).

    python bench/tic_entroformer_speed.py [--size 512x768] [--repeat 3] [--official DIR]

``--size`` is HEIGHTxWIDTH. ``--official DIR``: a directory holding a runnable copy of
the official TIC code as ``tic_2022.py`` (module importable from DIR); it then runs on
the same weights, ours and the official alternate run by run (the machine is shared,
so each figure is the minimum over ``--repeat`` runs), and the outputs are compared:
forward's x_hat and likelihoods, the bitstreams, the decoded images. The serial loop
of decompress is estimated as decompress minus the time of z decoding and of the two
synthesis transforms, timed apart on tensors of the same sizes. Peak RSS is the
process's after our warm-up pass (before the official network exists) and at the end.
Entroformer is not benchmarked here.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import torch


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def run_once(net, x) -> tuple[dict, dict, dict, dict]:
    fwd, t_fwd = timed(lambda: net(x))
    enc, t_enc = timed(lambda: net.compress(x))
    dec, t_dec = timed(lambda: net.decompress(enc["strings"], enc["shape"]))
    # what decompress spends outside its serial loop: z decoding and both synthesis
    # transforms (names differ: ours synthesis / hyper_synthesis, the official g_s / h_s)
    synthesis = getattr(net, "synthesis", None) or net.g_s
    hyper = getattr(net, "hyper_synthesis", None) or net.h_s
    z_hat, t_z = timed(lambda: net.entropy_bottleneck.decompress(enc["strings"][1],
                                                                 enc["shape"]))
    _, t_h = timed(lambda: hyper(z_hat))
    y_hat = fwd["x_hat"].new_zeros(1, 192, *(4 * s for s in z_hat.shape[2:]))
    _, t_s = timed(lambda: synthesis(y_hat))
    return fwd, enc, dec, {"forward": t_fwd, "compress": t_enc, "decompress": t_dec,
                           "decode loop": t_dec - t_z - t_h - t_s}


def same(a: torch.Tensor, b: torch.Tensor) -> str:
    return "identical" if torch.equal(a, b) else f"max |diff| {(a - b).abs().max().item():.2e}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="512x768", help="HEIGHTxWIDTH")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
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
    with torch.no_grad():
        run_once(ours, x)  # warm-up
    print(f"peak RSS after our warm-up pass: {peak_rss_gib():.2f} GiB")
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
        with torch.no_grad():
            official(x)  # warm-up
    times: dict[str, dict[str, list[float]]] = {name: {} for name in nets}
    outputs = {}
    with torch.no_grad():
        for _ in range(args.repeat):
            for name, net in nets.items():
                fwd, enc, dec, seconds = run_once(net, x)
                outputs[name] = (fwd, enc, dec)
                for key, value in seconds.items():
                    times[name].setdefault(key, []).append(value)
    for name, per in times.items():
        enc = outputs[name][1]
        size = sum(len(s[0]) for s in enc["strings"])
        best = {key: min(values) for key, values in per.items()}
        runs = "  ".join(f"{key} " + "/".join(f"{v:.2f}" for v in values)
                         for key, values in per.items())
        print(f"tic {name:8s} {height}x{width} min of {args.repeat}: forward "
              f"{best['forward']:.2f} s  compress {best['compress']:.2f} s  decompress "
              f"{best['decompress']:.2f} s (serial loop about {best['decode loop']:.2f} s)  "
              f"{8 * size / height / width:.3f} bpp   ({runs})")
    if "official" in outputs:
        (fa, ea, da), (fb, eb, db) = outputs["ours"], outputs["official"]
        best = {name: {key: min(v) for key, v in per.items()} for name, per in times.items()}
        print("ratio ours/official: " + "  ".join(
            f"{key} {best['ours'][key] / best['official'][key]:.3f}" for key in best["ours"]))
        print(f"forward x_hat {same(fa['x_hat'], fb['x_hat'])}; y likelihoods "
              f"{same(fa['likelihoods']['y'], fb['likelihoods']['y'])}; z likelihoods "
              f"{same(fa['likelihoods']['z'], fb['likelihoods']['z'])}")
        diff = (da["x_hat"] - db["x_hat"]).abs().max().item()
        print(f"bitstreams identical: {ea['strings'] == eb['strings']}; decoded max |diff| "
              f"{diff:.2e}")
    print(f"peak RSS at the end: {peak_rss_gib():.2f} GiB")


if __name__ == "__main__":
    main()
