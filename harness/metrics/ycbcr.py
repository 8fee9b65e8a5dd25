"""Y'CbCr metrics the way JPEG AI's common test conditions compute them.

JPEG AI's objective-quality framework (its ``src/codec/metrics/metrics.py``) reads an
8-bit RGB image and, for an internal bit depth ``b`` (10 by default, 8 optional),
with ``M = 2**b - 1``:

1. scales RGB to [0, 1] (``x / 255``) and rounds it to the ``b``-bit grid:
   ``round(x / 255 * M) / M`` (nothing changes at 8 bits);
2. converts with the matrix's luma weights (Kr, Kb; Kg = 1 - Kr - Kb), full range,
   chroma centred on 0.5::

       Y = Kr R + Kg G + Kb B
       U = (B - Y) / (2 (1 - Kb)) + 0.5
       V = (R - Y) / (2 (1 - Kr)) + 0.5

3. clips to [0, 1] and rounds each plane to ``b``-bit code values ``round(v * M)``
   (round half to even, as torch and numpy round);
4. PSNR per plane on the code values, peak ``M``: ``10 log10(M^2 / MSE)``;
   PSNR-YUV = (6 PSNR-Y + PSNR-U + PSNR-V) / 8;
   MS-SSIM-Y: pytorch-msssim's MS-SSIM (5 scales, window 11) of the Y code values with
   data range ``M``, a plane smaller than 164 px on a side zero-padded (bottom, right)
   to 164 first.

Differences from JPEG AI's code, on purpose: identical planes give ``inf`` (JPEG AI
writes 100), arithmetic is float64 (JPEG AI's torch code is float32), and BT.2020 uses
the ITU value 2 (1 - Kr) = 1.4746 (JPEG AI's table says 1.4747).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.colour import BT601, BT709, BT2020

MATRICES = {m.name: m for m in (BT709, BT601, BT2020)}
MATRIX_NAMES = tuple(MATRICES)
BIT_DEPTHS = (8, 10)
MS_SSIM_PAD = 164  # JPEG AI pads planes to this size before MS-SSIM (5 scales need > 160)
YUV_WEIGHTS = (6, 1, 1)  # PSNR-YUV = (6 Y + U + V) / 8


@dataclass(frozen=True)
class YCbCrSettings:
    """Which matrix and internal bit depth the Y'CbCr metrics use."""

    matrix: str = "bt709"
    bits: int = 10

    def __post_init__(self):
        if self.matrix not in MATRIX_NAMES:
            raise ValueError(f"unknown Y'CbCr matrix {self.matrix!r}; use one of"
                             f" {', '.join(MATRIX_NAMES)}")
        if self.bits not in BIT_DEPTHS:
            raise ValueError(f"Y'CbCr internal bit depth {self.bits!r}: use 8 or 10")

    @property
    def peak(self) -> int:
        return (1 << self.bits) - 1

    def label(self) -> str:
        return f"{self.matrix}-{self.bits}bit"


DEFAULT_YCBCR = YCbCrSettings()


def to_codes(image: np.ndarray, settings: YCbCrSettings) -> np.ndarray:
    """uint8 RGB (H x W x 3) -> Y, U, V code values (float64, 3 x H x W), JPEG AI's way."""
    matrix = MATRICES[settings.matrix]
    peak = settings.peak
    rgb = np.rint(image.astype(np.float64) / 255.0 * peak) / peak
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # the formula's own order of operations: a sample exactly between two codes rounds alike
    y = matrix.kr * r + matrix.kg * g + matrix.kb * b
    u = (b - y) / (2 * (1 - matrix.kb)) + 0.5
    v = (r - y) / (2 * (1 - matrix.kr)) + 0.5
    return np.rint(np.clip(np.stack([y, u, v]), 0.0, 1.0) * peak)


def plane_psnr(original: np.ndarray, reconstruction: np.ndarray, peak: int) -> float:
    diff = (original - reconstruction).ravel()
    return psnr_of_mse(float(diff @ diff) / diff.size, peak)


def psnr_of_mse(error: float, peak: float) -> float:
    """10 log10(peak^2 / MSE); inf for an MSE of 0."""
    return math.inf if error == 0 else 10.0 * math.log10(peak * peak / error)


def psnr_yuv(psnr_y: float, psnr_u: float, psnr_v: float) -> float:
    wy, wu, wv = YUV_WEIGHTS
    return (wy * psnr_y + wu * psnr_u + wv * psnr_v) / (wy + wu + wv)


def ms_ssim_plane(original: np.ndarray, reconstruction: np.ndarray, peak: int) -> float:
    """MS-SSIM of one plane of code values (data range ``peak``), padded to 164 px."""
    import torch
    from pytorch_msssim import ms_ssim

    with torch.inference_mode():
        return float(ms_ssim(padded_tensor(original, MS_SSIM_PAD),
                             padded_tensor(reconstruction, MS_SSIM_PAD), data_range=peak))


def padded_tensor(plane: np.ndarray, size: int):
    """One plane as a 1 x 1 x H x W float32 tensor, zero-padded (bottom, right) to at
    least ``size`` x ``size``, as JPEG AI pads planes for metrics that need a minimum."""
    import torch

    height, width = plane.shape
    padded = np.zeros((max(height, size), max(width, size)), np.float32)
    padded[:height, :width] = plane
    return torch.from_numpy(padded)[None, None]
