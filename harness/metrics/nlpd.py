"""``nlpd``: normalised Laplacian pyramid distance (Laparra, Ballé, Berardino & Simoncelli,
"Perceptual image quality assessment using a normalized Laplacian pyramid", 2016), lower
is better, 0 for identical images. Our own float64 code (numpy and scipy), following the
authors' reference code (NLP_dist.m) step by step, on the Y' code values of
:mod:`harness.metrics.ycbcr` divided by the peak M (0..1):

1. a 6-level Laplacian pyramid (Burt & Adelson): low-pass with the separable filter
   [.05 .25 .4 .25 .05] (edges mirrored, edge sample repeated) and keep every second
   sample; the band is the level minus the low-pass upsampled back (edge replicated by 1,
   zeros inserted, x4, the same filter, zero outside, cropped); the 6th level is the
   low-pass residual;
2. each level divided point by point by (sigma + F * |level|), F a small learned filter
   convolved with zeros outside, sigma and F the paper's (McGill-trained) values;
3. the RMS difference of the two normalised pyramids per level, averaged over the levels.

JPEG AI's framework computes NLPD with IQA_pytorch's variant (bilinear upsampling, no
low-pass residual level), whose values differ from these.
"""

from __future__ import annotations

import numpy as np

from harness.metrics.registry import Pair, YCbCrMetric

LEVELS = 6
_TAPS = np.array([0.05, 0.25, 0.4, 0.25, 0.05])
LOWPASS = np.outer(_TAPS, _TAPS)
SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)
# the centre 3x3 of each level's 5x5 normalisation filter (the rest is 0), as published
DN_FILTERS = tuple(np.array(f) for f in (
    [[0, 0.1011, 0], [0.1493, 0, 0.1460], [0, 0.1015, 0]],
    [[0, 0.0757, 0], [0.1986, 0, 0.1846], [0, 0.0837, 0]],
    [[0, 0.0477, 0], [0.2138, 0, 0.2243], [0, 0.0467, 0]],
    [[0, 0, 0], [0.2503, 0, 0.2616], [0, 0, 0]],
    [[0, 0, 0], [0.2598, 0, 0.2552], [0, 0, 0]],
    [[0, 0, 0], [0.2215, 0, 0.0717], [0, 0, 0]],
))


def laplacian_pyramid(plane: np.ndarray) -> list[np.ndarray]:
    """Five band-pass levels, then the low-pass residual."""
    from scipy.ndimage import correlate

    levels = []
    current = plane
    for _ in range(LEVELS - 1):
        low = correlate(current, LOWPASS, mode="reflect")[::2, ::2]
        levels.append(current - _upsample(low, current.shape))
        current = low
    levels.append(current)
    return levels


def _upsample(low: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from scipy.ndimage import correlate

    padded = np.pad(low, 1, mode="edge")
    spread = np.zeros((2 * padded.shape[0], 2 * padded.shape[1]))
    spread[::2, ::2] = 4 * padded
    smooth = correlate(spread, LOWPASS, mode="constant")
    return smooth[2:2 + shape[0], 2:2 + shape[1]]


def normalised(plane: np.ndarray) -> list[np.ndarray]:
    from scipy.ndimage import convolve

    return [level / (sigma + convolve(np.abs(level), dn, mode="constant"))
            for level, sigma, dn in zip(laplacian_pyramid(plane), SIGMAS, DN_FILTERS)]


def nlpd(original: np.ndarray, reconstruction: np.ndarray) -> float:
    """NLPD of two planes in 0..1 (float64)."""
    return float(np.mean([np.sqrt(np.mean((a - b) ** 2))
                          for a, b in zip(normalised(original), normalised(reconstruction))]))


class NLPD(YCbCrMetric):
    name, higher_is_better = "nlpd", False
    needs = ("scipy",)
    description = "normalised Laplacian pyramid distance of Y' (lower is better)"

    def measure(self, pair: Pair) -> float:
        original, reconstruction = pair.ycbcr(self.ycbcr)
        peak = self.ycbcr.peak
        return nlpd(original[0] / peak, reconstruction[0] / peak)
