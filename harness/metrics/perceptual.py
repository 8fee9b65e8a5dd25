"""Perceptual metrics of JPEG AI's test conditions, computed with piq
(``pip install 'lic-harness[metrics]'``), on the inputs JPEG AI's framework gives them:

- ``vif``: pixel-domain VIF (VIFp: 4 scales, Gaussian windows, sigma_n^2 = 2, on 0..255
  values) of the Y' plane, the reconstruction against the original; a plane smaller than
  64 px is zero-padded to 64 first;
- ``fsim``: FSIM with its chromatic part (FSIMc) on RGB rounded to the internal bit depth
  (``round(x / 255 * M) / M``, data range 1);
- ``iw-ssim``: information-weighted SSIM (5 scales, window 11, sigma 1.5) of the Y'
  plane scaled to 0..255, zero-padded to 256 px when smaller.

The Y' plane is the one of :mod:`harness.metrics.ycbcr` (BT.709, 10-bit by default).
"""

from __future__ import annotations

import numpy as np

from harness.metrics import rgb_tensor
from harness.metrics.registry import Pair, YCbCrMetric
from harness.metrics.ycbcr import padded_tensor

PIQ = ("torch", "piq")
INSTALL = "pip install 'lic-harness[metrics]'"


class _Piq(YCbCrMetric):
    needs, install = PIQ, INSTALL

    def luma(self, pair: Pair, scale: float, pad: int):
        """Both Y' planes as tensors in 0..``scale``, padded to ``pad`` px."""
        original, reconstruction = pair.ycbcr(self.ycbcr)
        peak = self.ycbcr.peak
        return (padded_tensor(original[0] / peak * scale, pad),
                padded_tensor(reconstruction[0] / peak * scale, pad))

    def measure(self, pair: Pair) -> float:
        import torch

        with torch.inference_mode():
            return float(self.score(pair))


class VIF(_Piq):
    name = "vif"
    description = "pixel-domain VIF (VIFp) of Y' (JPEG AI's VIF), with piq"

    def score(self, pair):
        import piq

        original, reconstruction = self.luma(pair, 1.0, 64)
        return piq.vif_p(reconstruction, original, data_range=1.0)


class FSIM(_Piq):
    name = "fsim"
    description = "FSIMc on RGB at the internal bit depth (JPEG AI's FSIM), with piq"

    def score(self, pair):
        import piq
        import torch

        peak = self.ycbcr.peak

        def rgb(image: np.ndarray) -> torch.Tensor:
            return rgb_tensor(np.rint(image.astype(np.float64) / 255.0 * peak) / peak)

        return piq.fsim(rgb(pair.reconstruction), rgb(pair.original), data_range=1.0,
                        chromatic=True)


class IWSSIM(_Piq):
    name = "iw-ssim"
    description = "information-weighted SSIM of Y' (JPEG AI's IW-SSIM), with piq"

    def score(self, pair):
        import piq

        original, reconstruction = self.luma(pair, 255.0, 256)
        return piq.information_weighted_ssim(reconstruction, original, data_range=255.0)
