"""``ciede2000``: the mean CIEDE2000 colour difference (ΔE00) over the image's pixels,
lower is better, 0 for identical images. With scikit-image
(``pip install 'lic-harness[metrics]'``).

Each 8-bit sRGB pixel goes to CIE L*a*b* (D65, 2° observer) as IEC 61966-2-1 defines
sRGB, in float64 (``skimage.color.rgb2lab``):

1. c = x / 255; linear c' = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055)^2.4;
2. XYZ = M (R', G', B') with sRGB's D65 matrix
   M = [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
   [0.019334, 0.119193, 0.950227]];
3. L*a*b* against the D65 white (0.95047, 1, 1.08883), CIE 1976's cube root with its
   linear segment below (6/29)^3.

ΔE00 per pixel is Sharma, Wu & Dalal's (2005) formula with kL = kC = kH = 1
(``skimage.color.deltaE_ciede2000``); the metric is its mean over all pixels.
"""

from __future__ import annotations

import numpy as np

from harness.metrics.registry import Metric

INSTALL = "pip install 'lic-harness[metrics]'"


def srgb_to_lab(image: np.ndarray) -> np.ndarray:
    """uint8 sRGB (H x W x 3) -> CIE L*a*b* (D65, 2°), float64."""
    from skimage.color import rgb2lab

    return rgb2lab(image.astype(np.float64) / 255.0, illuminant="D65", observer="2")


def delta_e00(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference of L*a*b* values (last axis), kL = kC = kH = 1."""
    from skimage.color import deltaE_ciede2000

    return deltaE_ciede2000(lab1, lab2, kL=1, kC=1, kH=1)


class CIEDE2000(Metric):
    name, higher_is_better = "ciede2000", False
    needs, install = ("skimage",), INSTALL
    description = "mean CIEDE2000 colour difference, sRGB -> L*a*b* D65 (lower is better)"

    def compute(self, original, reconstruction):
        return float(np.mean(delta_e00(srgb_to_lab(original), srgb_to_lab(reconstruction))))
