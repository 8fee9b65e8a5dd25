"""Cost of each quality metric on one Kodak-size image (768x512), on one thread.

    python bench/metrics_cost.py [--repeat 5] [--markdown]

The image is a real photograph (the sample set's coffee.png, resized to 768x512 as
harness.profile does); the reconstruction is its JPEG at quality 50. Each metric is
timed alone, as the worker runs it (conversion included), median of ``--repeat``
runs after one warm-up (vmaf, which runs in a container, also the first call of a
process, which starts the container); then the whole ``--metrics jpeg-ai`` set as one
call (the Y'CbCr conversion is shared), and for scale the encode + decode of JPEG, x265
(when its binary is here) and STF with random weights in its released layout (no checkpoint
here; the time of a network does not depend on its weights' values, the entropy coder's
a little). ``lpips`` and ``dists``, when their weight files are not here, are timed the
same way: their networks with random weights of the official shapes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _median_seconds(call, repeat: int) -> float:
    call()  # warm-up: imports, first allocations
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _codec_seconds(codec, quality, image, repeat: int) -> float:
    def round_trip():
        codec.decode(codec.encode(image, quality))
    codec.warm_up(quality)
    return _median_seconds(round_trip, repeat)


def _random_weights(names: tuple[str, ...]) -> dict:
    """Random state dicts of the official files' shapes (lpips's and dists's networks)."""
    import torch
    import torchvision

    made = {}
    for name in names:
        if name in ("alexnet", "vgg16"):
            made[name] = getattr(torchvision.models, name)(weights=None).state_dict()
        elif name == "lpips-alex":
            made[name] = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1)
                          for k, c in enumerate((64, 192, 384, 256, 256))}
        else:  # dists: alpha and beta over the input's and the 5 stages' channels
            made[name] = {"alpha": torch.rand(1, 1475, 1, 1), "beta": torch.rand(1, 1475, 1, 1)}
    return made


def _with_random_weights(metric):
    """``metric`` (lpips or dists) with its network built on random weights."""
    from harness.metrics import learned

    weights = _random_weights(metric.files)
    verified = learned.load
    learned.load = lambda w: weights[next(k for k, v in learned.WEIGHTS.items() if v == w)]
    try:
        metric.network()
    finally:
        learned.load = verified
    return metric


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from harness.metrics.registry import GROUPS, MetricSet, expand, metric_entries
    from harness.profile import test_image
    from harness.registry import create_codec, new_codec

    image = test_image(512, 768)
    jpeg = create_codec("jpeg")
    decoded = jpeg.decode(jpeg.encode(image, 50))
    rows = []
    for name in metric_entries():
        selected = MetricSet((name,))
        metric = selected.metrics()[0]
        note = ""
        if metric.unavailable() and name in ("lpips", "dists"):
            metric, note = _with_random_weights(metric), "random weights (none here)"
            selected = None
        elif metric.unavailable():
            rows.append((name, None, metric.unavailable()))
            continue
        if name == "vmaf":  # a process's first call also starts its worker container
            from harness.containers import close_workers

            close_workers()
            start = time.perf_counter()
            selected.measure(image, decoded)
            rows.append(("vmaf, first call of a process", time.perf_counter() - start,
                         "starts the worker container"))
        if metric.column or selected is None:  # timed through the metric object
            seconds = _median_seconds(lambda m=metric: m.compute(image, decoded), args.repeat)
        else:
            seconds = _median_seconds(lambda s=selected: s.measure(image, decoded), args.repeat)
        rows.append((name, seconds, note))
    everything = MetricSet(expand(["jpeg-ai"]))
    jpeg_ai = _median_seconds(lambda: (
        [m.compute(image, decoded) for m in everything.metrics() if m.column],
        everything.measure(image, decoded)), args.repeat)
    rows.append((f"jpeg-ai set ({', '.join(expand(['jpeg-ai']))})", jpeg_ai, "one call"))

    references = [("JPEG q50 encode+decode", _codec_seconds(jpeg, 50, image, args.repeat))]
    x265 = create_codec("x265")
    if x265.availability().ok:
        quality = x265.qualities[len(x265.qualities) // 2]
        references.append((f"x265 q{quality:g} encode+decode",
                           _codec_seconds(x265, quality, image, args.repeat)))
    stf = new_codec("stf")
    try:
        stf.use_random_weights(stf.qualities[0])
        references.append(("STF (random weights) encode+decode",
                           _codec_seconds(stf, stf.qualities[0], image, max(1, args.repeat // 2))))
    except Exception as exc:  # noqa: BLE001  (a benchmark reports what it could not time)
        references.append((f"STF: not timed ({type(exc).__name__}: {exc})", None))

    if args.markdown:
        print("| metric | ms per 768x512 image (1 thread) | note |\n|---|---:|---|")
        for name, seconds, note in rows:
            print(f"| {name} | {'-' if seconds is None else f'{seconds * 1e3:.1f}'} | {note} |")
        print("\n| reference | ms | jpeg-ai set / reference |\n|---|---:|---:|")
        for name, seconds in references:
            ratio = "-" if seconds is None else f"{jpeg_ai / seconds:.2f}"
            print(f"| {name} | {'-' if seconds is None else f'{seconds * 1e3:.1f}'} | {ratio} |")
        return
    for name, seconds, note in rows:
        print(f"{name:60s} {'-' if seconds is None else f'{seconds * 1e3:9.1f} ms'}  {note}")
    for name, seconds in references:
        if seconds is None:
            print(name)
        else:
            print(f"{name:60s} {seconds * 1e3:9.1f} ms  (jpeg-ai set: {jpeg_ai / seconds:.2f}x)")
    print(f"groups: {GROUPS}")


if __name__ == "__main__":
    main()
