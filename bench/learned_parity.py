"""The harness's learned-codec numbers against CompressAI's own evaluation.

Same networks, same weights, same images: `python -m compressai.utils.eval_model
checkpoint` against `harness run --checkpoint`, both on the embedded sample photos.
The networks are CompressAI zoo layouts with random weights (no trained weights can be
downloaded here), saved after `update()` so both sides code with the same CDF tables.

Targets (issue 5): bpp counted the CompressAI way (payload strings only) equal to
1e-6, PSNR to 1e-4 dB, and time per image (encode + decode) <= 1.05x CompressAI's.

Usage: python bench/learned_parity.py [--architectures A ...] [--quality Q]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "datasets" / "sample"


def make_checkpoint(architecture: str, quality: int, folder: Path) -> Path:
    import torch
    from compressai.zoo.image import _load_model

    torch.manual_seed(1234)
    net = _load_model(architecture, "mse", quality).eval()
    net.update(force=True)
    path = folder / f"{architecture}-q{quality}.pth.tar"
    torch.save({"state_dict": net.state_dict()}, path)
    return path


def compressai_eval(architecture: str, checkpoint: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "compressai.utils.eval_model", "checkpoint", str(SAMPLE),
         "-a", architecture, "-p", str(checkpoint)],
        capture_output=True, text=True, check=True)
    return {key: values[0] for key, values in json.loads(done.stdout)["results"].items()}


def harness_eval(architecture: str, checkpoint: Path, store: Path) -> dict:
    subprocess.run([sys.executable, "-m", "harness", "run", "--datasets", "sample", "--codecs",
                    architecture, "--checkpoint", str(checkpoint), "--jobs", "1", "--store",
                    str(store), "--no-progress", "--no-report"],
                   capture_output=True, text=True, check=True)
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT payload_bytes * 8.0 / (width * height), bytes * 8.0 /"
                          " (width * height), psnr, ms_ssim, encode_s, decode_s"
                          " FROM results").fetchall()
    n = len(rows)
    mean = [sum(column) / n for column in zip(*rows)]
    return {"bpp": mean[0], "bpp-whole": mean[1], "psnr-rgb": mean[2], "ms-ssim-rgb": mean[3],
            "encoding_time": mean[4], "decoding_time": mean[5], "images": n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--architectures", nargs="+",
                        default=["bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean",
                                 "mbt2018"])
    parser.add_argument("--quality", type=int, default=3)
    args = parser.parse_args()
    print("| model | images | bpp CompressAI | bpp harness (payload) | Δbpp | bpp harness"
          " (whole stream) | PSNR CompressAI | ΔPSNR dB | ΔMS-SSIM | time CompressAI s |"
          " time harness s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for architecture in args.architectures:
            checkpoint = make_checkpoint(architecture, args.quality, Path(tmp))
            theirs = compressai_eval(architecture, checkpoint)
            ours = harness_eval(architecture, checkpoint, Path(tmp) / f"{architecture}.sqlite")
            their_time = theirs["encoding_time"] + theirs["decoding_time"]
            our_time = ours["encoding_time"] + ours["decoding_time"]
            print(f"| {architecture} q{args.quality} | {ours['images']} | {theirs['bpp']:.6f} |"
                  f" {ours['bpp']:.6f} | {ours['bpp'] - theirs['bpp']:.1e} |"
                  f" {ours['bpp-whole']:.6f} | {theirs['psnr-rgb']:.4f} |"
                  f" {ours['psnr-rgb'] - theirs['psnr-rgb']:.1e} |"
                  f" {ours['ms-ssim-rgb'] - theirs['ms-ssim-rgb']:.1e} | {their_time:.3f} |"
                  f" {our_time:.3f} | {our_time / their_time:.3f} |", flush=True)


if __name__ == "__main__":
    main()
