"""``psnr-hvs`` and ``psnr-hvs-m`` (Egiazarian et al. 2006; Ponomarenko et al. 2007), with
the psnr_hvsm package (``pip install 'lic-harness[metrics]'``; JPEG AI's framework uses it
too), on JPEG AI's input:

- the Y' code values of :mod:`harness.metrics.ycbcr` (BT.709, 10-bit by default) divided by
  the peak M to [0, 1], padded (bottom, right, repeating the edge) to a multiple of 8;
- non-overlapping 8x8 blocks, orthonormal 2-D DCT of both;
- PSNR-HVS: MSE of the DCT differences weighted by the contrast sensitivity table;
- PSNR-HVS-M: the same after contrast masking: each AC difference is reduced by the
  larger of the two blocks' masking thresholds (their AC energy weighted by the masking
  table, scaled by how the block's variance splits over its four 4x4 quarters), and
  dropped when below it;
- PSNR = 10 log10(1 / MSE); identical images give inf (psnr_hvsm writes 100).

JPEG AI's framework reports the first of the two (PSNR-HVS) under the name ``psnr_hvsm``.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from harness.metrics.registry import Pair, YCbCrMetric
from harness.metrics.ycbcr import psnr_of_mse

INSTALL = "pip install 'lic-harness[metrics]'"


def hvs_mse(original: np.ndarray, reconstruction: np.ndarray) -> tuple[float, float]:
    """(PSNR-HVS MSE, PSNR-HVS-M MSE) of two planes in [0, 1], padded to multiples of 8."""
    # the package prints a notice on import when torch-dct is missing
    with contextlib.redirect_stdout(io.StringIO()):
        from psnr_hvsm.numpy import hvs_hvsm_mse

    def padded(plane):
        height, width = plane.shape
        return np.pad(plane, ((0, -height % 8), (0, -width % 8)), mode="edge")

    with np.errstate(invalid="ignore"):  # a flat block: 0 / 0, which the package discards
        hvs, hvsm = hvs_hvsm_mse(padded(original), padded(reconstruction))
    return float(hvs), float(hvsm)


class _HVS(YCbCrMetric):
    needs, install, unit = ("psnr_hvsm",), INSTALL, "dB"
    which = 0  # 0: PSNR-HVS, 1: PSNR-HVS-M

    def measure(self, pair: Pair) -> float:
        original, reconstruction = pair.ycbcr(self.ycbcr)
        peak = self.ycbcr.peak
        return psnr_of_mse(hvs_mse(original[0] / peak, reconstruction[0] / peak)[self.which],
                           1.0)


class PSNRHVS(_HVS):
    name, which = "psnr-hvs", 0
    description = "PSNR-HVS of Y' (8x8 DCT, CSF-weighted; JPEG AI's psnr_hvsm), psnr_hvsm"


class PSNRHVSM(_HVS):
    name, which = "psnr-hvs-m", 1
    description = "PSNR-HVS-M of Y' (8x8 DCT, CSF and contrast masking), psnr_hvsm"
