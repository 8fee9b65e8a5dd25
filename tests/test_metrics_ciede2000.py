"""ciede2000: ΔE00 checked against rows of Sharma, Wu & Dalal's test data (Color Res.
Appl. 30(1), 2005, table 1), the sRGB -> L*a*b* step against sRGB primaries' published
L*a*b* values, and the metric's identity and direction."""

import numpy as np
import pytest

from harness.metrics.registry import MetricSet

pytest.importorskip("skimage")

from harness.metrics.colour_difference import delta_e00, srgb_to_lab  # noqa: E402

# (L1, a1, b1), (L2, a2, b2), ΔE00: pairs 1, 7, 8, 13, 17, 19, 21, 25 and 34 of the table
SHARMA_2005 = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),  # hue angle across 0/360
    ((50.0, -0.001, 2.49), (50.0, 0.0009, -2.49), 4.8045),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    ((50.0, 2.5, 0.0), (50.0, 3.1736, 0.5854), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize("lab1, lab2, expected", SHARMA_2005)
def test_delta_e00_matches_sharma_wu_dalal(lab1, lab2, expected):
    got = delta_e00(np.array([lab1]), np.array([lab2]))[0]
    assert got == pytest.approx(expected, abs=5e-5)  # the table gives 4 decimals


@pytest.mark.parametrize("rgb, lab", [
    # sRGB white, red and mid grey under D65 (CIE 1976 L*a*b*, 2° observer)
    ((255, 255, 255), (100.0, 0.0, 0.0)),
    ((255, 0, 0), (53.2408, 80.0925, 67.2032)),
    ((128, 128, 128), (53.5850, 0.0, 0.0)),
])
def test_srgb_to_lab_is_d65(rgb, lab):
    got = srgb_to_lab(np.array([[rgb]], np.uint8))[0, 0]
    # the matrix's six-decimal entries put white 0.005 off neutral
    assert got == pytest.approx(lab, abs=6e-3)


def value(a, b):
    return MetricSet(("ciede2000",)).measure(a, b)["ciede2000"][0]


def test_identity_is_zero_and_more_noise_is_further(sample_pixels):
    a = sample_pixels[:64, :96]
    rng = np.random.default_rng(5)

    def noisy(amount):
        noise = rng.integers(-amount, amount + 1, a.shape)
        return np.clip(a.astype(int) + noise, 0, 255).astype(np.uint8)

    assert value(a, a) == 0.0
    assert 0 < value(a, noisy(3)) < value(a, noisy(20))


def test_value_is_the_mean_of_per_pixel_differences():
    a = np.zeros((2, 2, 3), np.uint8)
    b = a.copy()
    b[0, 0] = (255, 0, 0)  # one pixel red instead of black: one quarter of its ΔE00
    expected = delta_e00(srgb_to_lab(a[:1, :1]), srgb_to_lab(b[:1, :1]))[0, 0] / 4
    assert value(a, b) == pytest.approx(expected, rel=1e-12)
    assert expected > 10
