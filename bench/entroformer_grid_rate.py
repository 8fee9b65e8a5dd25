"""Rate of Entroformer's grid coder against the coder it replaced (tables from floats).

    python bench/entroformer_grid_rate.py [--size 128] [--images 3]
        [--levels N] [--steps N] [--scale-min S]

The y coder now picks each element's table from two integers (a scale index and a mean
on a grid, :func:`harness.models.entroformer.grid_keys`), so that encoder and decoder
agree whatever their floats' last bits. The coder it replaced built a 16-bit table per
element from the float32 likelihood of all 256 values. Both code the same ``y_hat`` with
the same entropy parameters (random weights, last encoder convolution scaled by 30, as
in the tests) on centre crops of the sample photos; printed: y bytes of each and the
grid coder's cost in per cent. ``--levels`` / ``--steps`` / ``--scale-min`` try other grids.

``--latents sampled`` codes, instead of the image's ``y_hat``, values drawn from the
model's own predicted distributions (position by position, in coding order, so every
context sees the values drawn before it): latents as a well-trained model's entropy
model sees them. With random weights the image's ``y_hat`` is far from what the
entropy parameters predict (about 14 % of elements lie 3 to 6 scales from their mean
instead of the Gaussian's 0.3 %), and the two coders differ mostly in how they round
such tails' tiny probabilities.
"""

from __future__ import annotations

import argparse
from contextlib import closing
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import harness.models.entroformer as ef

SAMPLES = Path(__file__).resolve().parent.parent / "datasets" / "sample"


def float_tables_bytes(net, hyper, y_hat) -> int:
    """y bytes of the replaced coder: per element, the float likelihood's 16-bit table."""
    from compressai.ans import BufferedRansEncoder

    encoder = BufferedRansEncoder()
    c = net.last_channels
    length, offset = net._symbols()
    values = torch.arange(-128, 128, dtype=torch.float32).expand(1, c, -1)
    with closing(net._coding_order(hyper, y_hat)) as order:
        for row, col, params in order:
            pmf = ef.y_likelihood(values, params.reshape(1, -1, 1))
            encoder.encode_with_indexes(y_hat[0, :, row, col].int().tolist(), list(range(c)),
                                        ef.quantised_cdfs(pmf.reshape(c, -1)), [length] * c,
                                        [offset] * c)
    return len(encoder.flush())


def sampled_latents(net, hyper, like: torch.Tensor, seed: int) -> torch.Tensor:
    """``y_hat`` drawn from the model's discretised Gaussians, in coding order."""
    generator = torch.Generator().manual_seed(seed)
    c = net.last_channels
    y_hat = torch.zeros_like(like)
    with closing(net._coding_order(hyper, y_hat)) as order:
        for row, col, params in order:
            scales = torch.clamp(params[:c], min=-7.0).exp()
            draw = params[c:2 * c] + scales * torch.randn(c, generator=generator)
            y_hat[0, :, row, col] = ef.quantize(draw)
    return y_hat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--variants", nargs="+", default=["unidirectional", "bidirectional"])
    parser.add_argument("--levels", type=int, default=ef.SCALE_LEVELS)
    parser.add_argument("--steps", type=int, default=ef.MEAN_STEPS)
    parser.add_argument("--scale-min", type=float, default=ef.SCALE_MIN)
    parser.add_argument("--latents", choices=["image", "sampled"], default="image")
    args = parser.parse_args()
    ef.SCALE_LEVELS, ef.MEAN_STEPS, ef.SCALE_MIN = args.levels, args.steps, args.scale_min
    ef._LOG_SCALE_MIN = np.log(args.scale_min)
    ef._LOG_SCALE_STEP = (np.log(ef.SCALE_MAX) - ef._LOG_SCALE_MIN) / (args.levels - 1)
    ef.grid_table.cache_clear()
    torch.set_num_threads(1)
    paths = sorted(SAMPLES.glob("*.png"))[:args.images]
    print(f"grid: {args.levels} scales from {args.scale_min:g}, means in 1/{args.steps};"
          f" crops {args.size}x{args.size}; latents: {args.latents}")
    for variant in args.variants:
        torch.manual_seed(0)
        net = ef.Entroformer(variant).eval()
        total_old = total_new = 0
        with torch.no_grad():
            net.encode.encoder[6].weight.mul_(30)
            for number, path in enumerate(paths):
                with Image.open(path) as im:
                    pixels = np.asarray(im.convert("RGB"))
                top, left = ((s - args.size) // 2 for s in pixels.shape[:2])
                crop = pixels[top:top + args.size, left:left + args.size]
                x = torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float() / 255
                y = net.encode(x * 2 - 1)
                y_hat = ef.quantize(y)
                hyper = net.cit_hd(ef.quantize(net.cit_he(y)))
                if args.latents == "sampled":
                    y_hat = sampled_latents(net, hyper, y_hat, seed=number)
                old = float_tables_bytes(net, hyper, y_hat)
                new = len(net._y_string(hyper, y_hat))
                total_old, total_new = total_old + old, total_new + new
                print(f"{variant:15s} {path.name:20s} float tables {old:7d} B  grid {new:7d} B"
                      f"  {100 * (new / old - 1):+6.2f} %")
        print(f"{variant:15s} {'all':20s} float tables {total_old:7d} B  grid {total_new:7d} B"
              f"  {100 * (total_new / total_old - 1):+6.2f} %")


if __name__ == "__main__":
    main()
