"""psnr-hvs and psnr-hvs-m: a flat 8x8 block worked out by hand, and a block-by-block
float64 re-computation written here from Ponomarenko et al.'s definition (loops in the
paper's order, scipy's DCT; only the paper's two 8x8 tables are taken from the package).
No implementation by other authors could be run here to cross-check."""

import contextlib
import io
import math

import numpy as np
import pytest
from scipy.fft import dctn

from harness.metrics.registry import MetricSet
from tests.test_metrics_ycbcr import independent_codes

pytest.importorskip("psnr_hvsm")
with contextlib.redirect_stdout(io.StringIO()):
    from psnr_hvsm.numpy.psnr_hvsm import CSF_COEFF, MASK_COEFF

CSF, MASK = CSF_COEFF.reshape(8, 8), MASK_COEFF.reshape(8, 8)


def value(name, a, b):
    return MetricSet((name,)).measure(a, b)[name][0]


def test_a_flat_block_by_hand():
    # Y' 0 against a flat block: only the DC term differs, 8 d in an orthonormal DCT, and
    # a flat block masks nothing: both MSEs are (8 d CSF[0,0])^2 / 64 = (d * 1.608443)^2
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 10, np.uint8)
    d = independent_codes(b)[0][0, 0] / 1023  # Y' of grey 10 = 40 / 1023
    expected = 10 * math.log10(1 / (d * 1.608443) ** 2)
    assert value("psnr-hvs", a, b) == pytest.approx(expected, abs=1e-6)
    assert value("psnr-hvs-m", a, b) == pytest.approx(expected, abs=1e-6)


def _masking(block, coefficients):
    energy = sum(coefficients[k, m] ** 2 * MASK[k, m]
                 for k in range(8) for m in range(8) if (k, m) != (0, 0))

    def vari(x):  # MATLAB's var: divided by n - 1
        return np.var(x, ddof=1) * x.size
    whole = vari(block)
    if whole != 0:
        whole = (vari(block[:4, :4]) + vari(block[:4, 4:]) + vari(block[4:, 4:])
                 + vari(block[4:, :4])) / whole
    return math.sqrt(energy * whole) / 32


def reference(x, y):
    """(PSNR-HVS, PSNR-HVS-M) of two planes in [0, 1] whose sides are multiples of 8."""
    s_hvs = s_hvsm = 0.0
    n = 0
    for i in range(0, x.shape[0], 8):
        for j in range(0, x.shape[1], 8):
            a, b = x[i:i + 8, j:j + 8], y[i:i + 8, j:j + 8]
            da, db = dctn(a, norm="ortho"), dctn(b, norm="ortho")
            mask = max(_masking(a, da), _masking(b, db))
            for k in range(8):
                for m in range(8):
                    u = abs(da[k, m] - db[k, m])
                    s_hvs += (u * CSF[k, m]) ** 2
                    if (k, m) != (0, 0):
                        u = max(u - mask / MASK[k, m], 0.0)
                    s_hvsm += (u * CSF[k, m]) ** 2
                    n += 1
    return 10 * math.log10(n / s_hvs), 10 * math.log10(n / s_hvsm)


def test_matches_a_block_by_block_recomputation(sample_pixels):
    a = sample_pixels[:60, :84]  # not multiples of 8: padded by repeating the edge
    noise = np.random.default_rng(4).integers(-12, 13, a.shape)
    b = np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)
    ya, yb = (np.pad(independent_codes(x)[0] / 1023, ((0, 4), (0, 4)), mode="edge")
              for x in (a, b))
    hvs, hvsm = reference(ya, yb)
    assert hvsm > hvs  # masking hides part of the noise
    assert value("psnr-hvs", a, b) == pytest.approx(hvs, abs=1e-9)
    assert value("psnr-hvs-m", a, b) == pytest.approx(hvsm, abs=1e-9)


def test_identity_and_ordering(sample_pixels):
    a = sample_pixels[:64, :64]
    rng = np.random.default_rng(6)
    light, heavy = (np.clip(a.astype(int) + rng.integers(-s, s + 1, a.shape), 0, 255)
                    .astype(np.uint8) for s in (4, 30))
    for name in ("psnr-hvs", "psnr-hvs-m"):
        assert value(name, a, a) == math.inf
        assert value(name, a, heavy) < value(name, a, light)
