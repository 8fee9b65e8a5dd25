"""Y'CbCr metrics the JPEG AI way, checked against values computed by hand and with the
ITU coefficients written out here (not taken from harness.colour)."""

import math

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as reference_ms_ssim

from harness.metrics import ycbcr
from harness.metrics.registry import MetricSet, create_metric
from harness.metrics.ycbcr import YCbCrSettings

# (Kr, Kg, Kb, 2 (1 - Kb), 2 (1 - Kr)) as Rec. ITU-R BT.709-6, BT.601-7 and BT.2020-2 give them
ITU = {"bt709": (0.2126, 0.7152, 0.0722, 1.8556, 1.5748),
       "bt601": (0.299, 0.587, 0.114, 1.772, 1.402),
       "bt2020": (0.2627, 0.6780, 0.0593, 1.8814, 1.4746)}


def independent_values(image, matrix="bt709", bits=10):
    """JPEG AI's conversion up to the last rounding, written from its description with
    the ITU numbers."""
    kr, kg, kb, d, e = ITU[matrix]
    top = 2**bits - 1
    r, g, b = (np.round(image[..., i] / 255 * top) / top for i in range(3))
    y = kr * r + kg * g + kb * b
    u = (b - y) / d + 0.5
    v = (r - y) / e + 0.5
    return [np.clip(p, 0, 1) * top for p in (y, u, v)]


def independent_codes(image, matrix="bt709", bits=10):
    return [np.round(p) for p in independent_values(image, matrix, bits)]


def agree_but_for_ties(codes, values):
    """The harness's codes are the values rounded; a value within 1e-9 of a tie may round
    either way (the last bit of the coefficients decides). Returns the codes to use."""
    ties = np.abs(values - np.floor(values) - 0.5) < 1e-9
    assert np.array_equal(codes[~ties], np.round(values)[~ties])
    assert np.all(np.abs(codes - values) <= 0.5 + 1e-9)
    return np.where(ties, codes, np.round(values))


def value(name, original, reconstruction, **settings):
    return MetricSet((name,), YCbCrSettings(**settings)).measure(original, reconstruction)[name][0]


@pytest.mark.parametrize("matrix, bits, expected", [
    # pure red, by hand: Y = Kr, U = 0.5 - Kr / (2 (1 - Kb)), V = 0.5 + (1 - Kr) / (2 (1 - Kr)) = 1
    ("bt709", 10, (217, 394, 1023)),  # 0.2126 * 1023 = 217.49; 0.38543 * 1023 = 394.29
    ("bt709", 8, (54, 98, 255)),      # 0.2126 * 255 = 54.21;    0.38543 * 255 = 98.28
    ("bt601", 10, (306, 339, 1023)),  # 0.299 * 1023 = 305.88;   0.33126 * 1023 = 338.88
    ("bt2020", 10, (269, 369, 1023)),  # 0.2627 * 1023 = 268.74; 0.36037 * 1023 = 368.66
])
def test_codes_of_pure_red_computed_by_hand(matrix, bits, expected):
    red = np.zeros((1, 1, 3), np.uint8)
    red[..., 0] = 255
    codes = ycbcr.to_codes(red, YCbCrSettings(matrix, bits))
    assert tuple(int(c) for c in codes[:, 0, 0]) == expected


@pytest.mark.parametrize("matrix, bits", [("bt709", 10), ("bt709", 8), ("bt601", 10),
                                          ("bt2020", 8)])
def test_codes_and_psnr_match_an_independent_computation(matrix, bits):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    settings = YCbCrSettings(matrix, bits)
    mine = [agree_but_for_ties(c, v) for c, v in zip(ycbcr.to_codes(a, settings),
                                                      independent_values(a, matrix, bits))]
    theirs = [agree_but_for_ties(c, v) for c, v in zip(ycbcr.to_codes(b, settings),
                                                        independent_values(b, matrix, bits))]
    top = 2**bits - 1
    psnrs = [10 * math.log10(top**2 / np.mean((p - q) ** 2)) for p, q in zip(mine, theirs)]
    for name, expected in zip(("psnr-y", "psnr-u", "psnr-v"), psnrs):
        assert value(name, a, b, matrix=matrix, bits=bits) == pytest.approx(expected, abs=1e-9)
    assert value("psnr-yuv", a, b, matrix=matrix, bits=bits) == pytest.approx(
        (6 * psnrs[0] + psnrs[1] + psnrs[2]) / 8, abs=1e-9)


def test_identical_images_and_grey_chroma():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    for name in ("psnr-y", "psnr-u", "psnr-v", "psnr-yuv"):
        assert value(name, a, a) == math.inf
    assert value("ms-ssim-y", a, a) == pytest.approx(1.0, abs=1e-6)
    # two greys: the luma differs, the chroma of any grey is the same (mid-scale)
    grey_a, grey_b = np.full((8, 8, 3), 100, np.uint8), np.full((8, 8, 3), 104, np.uint8)
    found = MetricSet(("psnr-y", "psnr-u", "psnr-v"), YCbCrSettings()).measure(grey_a, grey_b)
    assert found["psnr-u"][0] == math.inf and found["psnr-v"][0] == math.inf
    assert int(ycbcr.to_codes(grey_a, YCbCrSettings())[1, 0, 0]) in (511, 512)
    # Y = round(100/255*1023)/1023 vs round(104/255*1023)/1023: codes 401 and 417 (grey: Y = R)
    assert found["psnr-y"][0] == pytest.approx(10 * math.log10(1023**2 / 16**2), abs=1e-9)


def test_ms_ssim_y_matches_pytorch_msssim_on_the_luma(sample_pixels):
    a = sample_pixels[:200, :240]
    b = np.clip(a.astype(int) + np.random.default_rng(5).integers(-15, 16, a.shape), 0, 255)
    b = b.astype(np.uint8)
    y_a, y_b = independent_codes(a)[0], independent_codes(b)[0]
    as_t = lambda y: torch.from_numpy(y)[None, None]  # noqa: E731  (float64, unpadded)
    expected = float(reference_ms_ssim(as_t(y_a), as_t(y_b), data_range=1023))
    assert value("ms-ssim-y", a, b) == pytest.approx(expected, abs=1e-5)


def test_ms_ssim_y_pads_small_images_as_jpeg_ai_does():
    rng = np.random.default_rng(6)
    a = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    y_a, y_b = independent_codes(a)[0], independent_codes(b)[0]
    pad = lambda y: torch.from_numpy(np.pad(y, ((0, 100), (0, 68))))[None, None]  # noqa: E731
    expected = float(reference_ms_ssim(pad(y_a), pad(y_b), data_range=1023))
    assert value("ms-ssim-y", a, b) == pytest.approx(expected, abs=1e-5)


def test_settings_change_the_fingerprint_and_bad_settings_are_refused():
    default = create_metric("psnr-y")
    other = create_metric("psnr-y", YCbCrSettings("bt601", 8))
    assert default.fingerprint() == "psnr-y/v1/bt709-10bit"
    assert other.fingerprint() == "psnr-y/v1/bt601-8bit"
    with pytest.raises(ValueError, match="bt709"):
        YCbCrSettings("bt999")
    with pytest.raises(ValueError, match="8 or 10"):
        YCbCrSettings("bt709", 12)
