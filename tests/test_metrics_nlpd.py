"""nlpd: a value worked out by hand (two flat images: only the low-pass residual differs),
identity, growth with noise, and IQA_pytorch's NLPD (the one JPEG AI's framework runs,
another variant of the same definition, written by other authors) agreeing within 2 %."""

import math

import numpy as np
import pytest

from harness.metrics.registry import MetricSet
from tests.test_metrics_ycbcr import independent_codes


def value(a, b):
    return MetricSet(("nlpd",)).measure(a, b)["nlpd"][0]


def _noisy(a, amount, seed=2):
    noise = np.random.default_rng(seed).integers(-amount, amount + 1, a.shape)
    return np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)


def test_two_flat_images_by_hand():
    # 64 x 64 flat planes: the five band-pass levels are 0 and the residual is 2 x 2 of
    # Y'. Level 6's filter has 0.2215 left of centre and 0.0717 right of it; convolved
    # with zeros outside, the left column sees its right neighbour through 0.2215, the
    # right column its left one through 0.0717; sigma is 0.2782.
    a, b = (np.full((64, 64, 3), grey, np.uint8) for grey in (100, 140))
    ya, yb = (independent_codes(x)[0][0, 0] / 1023 for x in (a, b))

    def normalised(y, weight):
        return y / (0.2782 + weight * y)
    left = normalised(ya, 0.2215) - normalised(yb, 0.2215)
    right = normalised(ya, 0.0717) - normalised(yb, 0.0717)
    expected = math.sqrt((left**2 + right**2) / 2) / 6
    assert value(a, b) == pytest.approx(expected, rel=1e-9)


def test_identity_is_zero_and_noise_increases_it(sample_pixels):
    a = sample_pixels[:96, :128]
    assert value(a, a) == 0.0
    light, medium, heavy = (value(a, _noisy(a, s)) for s in (3, 10, 30))
    assert 0 < light < medium < heavy


def test_agrees_with_iqa_pytorchs_variant(sample_pixels):
    torch = pytest.importorskip("torch")
    iqa = pytest.importorskip("IQA_pytorch")
    a = sample_pixels[:192, :256]
    b = _noisy(a, 10)
    ya, yb = (torch.tensor(independent_codes(x)[0] / 1023, dtype=torch.float32)[None, None]
              for x in (a, b))
    theirs = iqa.NLPD(channels=1)(yb, ya, as_loss=False).item()
    # measured: 1.1 % apart here, 0.6 % on the whole 600 x 400 photo (edges weigh less)
    assert value(a, b) == pytest.approx(theirs, rel=0.02)
