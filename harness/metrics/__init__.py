"""Distortion and rate metrics, with the conventions of the field.

- bpp: ``8 * len(bitstream) / (H * W)`` of the original image.
- PSNR: over RGB 0..255, the MSE averaged over all pixels and all three channels,
  computed exactly (integer sum of squares) and returned as float64. Identical
  images give ``inf``.
- MS-SSIM: 5 scales, Gaussian window 11, data range 255, on the RGB channels
  (pytorch-msssim, as CompressAI's evaluation does), in float32. An image whose
  shorter side is at most 160 pixels is too small for 5 scales: NaN with the reason.
- MS-SSIM in dB: ``-10 * log10(1 - MS-SSIM)``.
"""

from __future__ import annotations

import math

import numpy as np

MS_SSIM_MIN_SIDE = 161  # pytorch-msssim needs the shorter side > (win - 1) * 2**4 = 160


def bits_per_pixel(n_bytes: int, height: int, width: int) -> float:
    return 8.0 * n_bytes / (height * width)


def mse(original: np.ndarray, reconstruction: np.ndarray) -> float:
    _check_pair(original, reconstruction)
    diff = (original.astype(np.int64) - reconstruction).ravel()
    return int(diff @ diff) / diff.size  # exact integer sum of squares


def psnr(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """RGB PSNR in dB with peak 255; ``inf`` when the images are identical."""
    error = mse(original, reconstruction)
    if error == 0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / error)


def ms_ssim(original: np.ndarray, reconstruction: np.ndarray) -> tuple[float, str | None]:
    """MS-SSIM (data range 255) and, when it cannot be computed, NaN with the reason."""
    _check_pair(original, reconstruction)
    height, width = original.shape[:2]
    if min(height, width) < MS_SSIM_MIN_SIDE:
        return math.nan, (
            f"MS-SSIM needs both sides >= {MS_SSIM_MIN_SIDE} px for 5 scales;"
            f" this image is {width}x{height}"
        )
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    with torch.inference_mode():
        value = _ms_ssim(rgb_tensor(original), rgb_tensor(reconstruction), data_range=255)
    return float(value), None


def rgb_tensor(image: np.ndarray):
    """An H x W x 3 image as a 1 x 3 x H x W float32 tensor (values unchanged)."""
    import torch

    return torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB: ``-10 * log10(1 - value)``; ``inf`` for 1, NaN for NaN."""
    if math.isnan(value):
        return math.nan
    if value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - value)


def _check_pair(original: np.ndarray, reconstruction: np.ndarray) -> None:
    if original.shape != reconstruction.shape:
        raise ValueError(
            f"reconstruction has shape {reconstruction.shape}, original {original.shape}"
        )
