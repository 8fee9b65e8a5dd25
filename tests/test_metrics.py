import math

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as reference_ms_ssim

from harness import metrics


def test_psnr_of_a_known_error():
    a = np.full((4, 4, 3), 100, np.uint8)
    b = a.copy()
    b[0, 0, 0] = 110  # one sample off by 10: MSE = 100 / 48
    expected = 10 * math.log10(255**2 / (100 / 48))
    assert metrics.psnr(a, b) == pytest.approx(expected, abs=1e-12)
    assert metrics.mse(a, b) == 100 / 48


def test_psnr_is_exact_for_large_errors_and_symmetric():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    expected_mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    assert metrics.mse(a, b) == pytest.approx(expected_mse, rel=1e-15)
    assert metrics.psnr(a, b) == metrics.psnr(b, a)


def test_identical_images_have_infinite_psnr():
    a = np.zeros((8, 8, 3), np.uint8)
    assert metrics.psnr(a, a) == math.inf


def test_ms_ssim_matches_pytorch_msssim(sample_pixels):
    a = sample_pixels[:256, :256]
    b = np.clip(a.astype(int) + np.random.default_rng(1).integers(-20, 21, a.shape), 0, 255)
    b = b.astype(np.uint8)
    value, reason = metrics.ms_ssim(a, b)
    as_t = lambda x: torch.from_numpy(x.astype(np.float64)).permute(2, 0, 1)[None]  # noqa: E731
    expected = float(reference_ms_ssim(as_t(a), as_t(b), data_range=255))
    assert reason is None and 0.5 < value < 1
    assert value == pytest.approx(expected, abs=1e-5)
    assert metrics.ms_ssim(a, a)[0] == pytest.approx(1.0, abs=1e-6)


def test_ms_ssim_of_a_small_image_is_nan_with_the_reason():
    a = np.zeros((160, 500, 3), np.uint8)
    value, reason = metrics.ms_ssim(a, a)
    assert math.isnan(value)
    assert "161" in reason and "500x160" in reason


def test_ms_ssim_db():
    assert metrics.ms_ssim_db(0.99) == pytest.approx(20.0)
    assert metrics.ms_ssim_db(1.0) == math.inf
    assert math.isnan(metrics.ms_ssim_db(math.nan))


def test_bpp_counts_the_whole_bitstream():
    assert metrics.bits_per_pixel(1000, 100, 80) == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
