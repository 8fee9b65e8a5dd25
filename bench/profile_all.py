"""Complexity profile of every built-in learned codec (random weights, released layouts).

    python bench/profile_all.py [--size 256x256] [--runs 3] [--codecs NAME ...]

Runs ``harness profile`` (harness/profile.py) for each codec on 1 thread and prints the
paper-style table (parameters, kMAC per pixel of the forward pass and of decoding,
median encode / decode seconds, peak memory of encoding / decoding) for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time

from harness.profile import profile
from harness.report.diagnostics import complexity_table
from harness.report.tables import to_markdown

CODECS = ["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018",
          "cheng2020-anchor", "cheng2020-attn", "stf", "wacnn", "tcm", "tcm-large", "tic",
          "entroformer-parallel", "entroformer", "shen2023"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--codecs", nargs="+", default=CODECS)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    profiles = []
    for name in args.codecs:
        start = time.perf_counter()
        profiles.append(profile(name, height, width, runs=args.runs))
        print(f"{name}: profiled in {time.perf_counter() - start:.0f} s", flush=True)
    # the report's complexity table (harness/report/diagnostics.py), as Markdown
    records = [{"document": p.as_dict(), "quality": p.quality, "measured": ""}
               for p in profiles]
    print(to_markdown(complexity_table(records)))


if __name__ == "__main__":
    main()
