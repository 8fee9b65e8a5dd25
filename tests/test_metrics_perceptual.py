"""piq-based metrics (VIF, FSIM, IW-SSIM) on JPEG AI's inputs. VIF is checked against a
float64 re-computation of LIVE's pixel-domain VIF (vifp_mscale) written here from its
description; FSIM and IW-SSIM were not checked against a second implementation (none is
installable here): only their identities and ordering are tested."""

import numpy as np
import pytest
from scipy.signal import correlate2d

from harness.metrics.registry import MetricSet
from tests.test_metrics_ycbcr import independent_codes

pytest.importorskip("piq")


def _gaussian(size: int, sigma: float) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return kernel / kernel.sum()


def vifp_reference(ref: np.ndarray, dist: np.ndarray) -> float:
    """Pixel-domain VIF: 4 scales, window 2^(5-s)+1 with sigma N/5, sigma_n^2 = 2."""
    eps, sigma_nsq, num, den = 1e-10, 2.0, 0.0, 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _gaussian(n, n / 5)

        def filt(a, win=win):
            return correlate2d(a, win, mode="valid")
        if scale > 1:
            ref, dist = filt(ref)[::2, ::2], filt(dist)[::2, ::2]
        mu1, mu2 = filt(ref), filt(dist)
        s1 = np.maximum(filt(ref * ref) - mu1 * mu1, 0)
        s2 = np.maximum(filt(dist * dist) - mu2 * mu2, 0)
        s12 = filt(ref * dist) - mu1 * mu2
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        flat1 = s1 < eps
        g[flat1], sv[flat1], s1[flat1] = 0, s2[flat1], 0
        flat2 = s2 < eps
        g[flat2], sv[flat2] = 0, 0
        negative = g < 0
        sv[negative], g[negative] = s2[negative], 0
        sv[sv <= eps] = eps
        num += np.log10(1 + g * g * s1 / (sv + sigma_nsq)).sum()
        den += np.log10(1 + s1 / sigma_nsq).sum()
    return num / den


def _noisy(a, amount, seed=7):
    noise = np.random.default_rng(seed).integers(-amount, amount + 1, a.shape)
    return np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)


def value(name, a, b):
    return MetricSet((name,)).measure(a, b)[name][0]


def test_vif_matches_a_float64_recomputation_of_vifp(sample_pixels):
    a = sample_pixels[:192, :256]
    b = _noisy(a, 20)
    ref, dist = (independent_codes(x)[0] / 1023 * 255 for x in (a, b))
    expected = vifp_reference(ref, dist)
    assert 0.2 < expected < 0.9
    assert value("vif", a, b) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("name", ["vif", "fsim", "iw-ssim"])
def test_identity_and_ordering(sample_pixels, name):
    a = sample_pixels[:192, :256]
    assert value(name, a, a) == pytest.approx(1.0, abs=1e-5)
    light, heavy = value(name, a, _noisy(a, 6)), value(name, a, _noisy(a, 30))
    assert 0 < heavy < light < 1


def test_small_images_are_padded_not_refused():
    a = np.random.default_rng(8).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    found = MetricSet(("vif", "fsim", "iw-ssim")).measure(a, _noisy(a, 10))
    assert all(0 < v < 1 for v, _ in found.values())
