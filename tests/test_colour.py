import numpy as np
import pytest

from harness import colour


@pytest.fixture(scope="module")
def random_rgb() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (256, 256, 3), dtype=np.uint8)


def _grid() -> np.ndarray:
    """Every RGB triple on a stride-5 grid plus the extremes (52^3 samples)."""
    axis = np.unique(np.r_[np.arange(0, 256, 5), 255]).astype(np.uint8)
    r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], axis=-1).reshape(-1, 1, 3)


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_round_trip_changes_no_sample_by_more_than_one(matrix, random_rgb):
    for image in (random_rgb, _grid()):
        back = colour.ycbcr_to_rgb(colour.rgb_to_ycbcr(image, matrix), matrix)
        error = back.astype(int) - image.astype(int)
        assert np.abs(error).max() <= 1
        # rounding, not truncation: no bias (truncation would give about -0.5)
        assert abs(error.mean()) < 0.01


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_round_trip_of_a_photo_is_near_lossless(matrix, sample_pixels):
    back = colour.ycbcr_to_rgb(colour.rgb_to_ycbcr(sample_pixels, matrix), matrix)
    mse = np.mean((back.astype(float) - sample_pixels) ** 2)
    assert 10 * np.log10(255 ** 2 / mse) > 50  # truncating both ways caps it near 44 dB


@pytest.mark.parametrize("matrix", ["bt601", "bt709"])
def test_forward_rounds_the_exact_values(matrix, random_rgb):
    exact = colour.rgb_to_ycbcr_float(random_rgb, matrix)
    ycc = colour.rgb_to_ycbcr(random_rgb, matrix)
    assert np.array_equal(ycc, np.clip(np.rint(exact), 0, 255).astype(np.uint8))
    assert np.abs(ycc - exact).max() <= 0.5 + 1e-9  # clipping 255.5 -> 255 included
    assert abs((ycc - exact).mean()) < 0.01


def test_known_values_bt601_jfif():
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0],
                        [128, 128, 128]]], dtype=np.uint8)
    ycc = colour.rgb_to_ycbcr(pixels, colour.BT601)
    assert ycc[0].tolist() == [[76, 85, 255], [150, 44, 21], [29, 255, 107],
                               [255, 128, 128], [0, 128, 128], [128, 128, 128]]


def test_known_values_bt709():
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]],
                      dtype=np.uint8)
    ycc = colour.rgb_to_ycbcr(pixels, "bt709")
    assert ycc[0].tolist() == [[54, 99, 255], [182, 30, 12], [18, 255, 116], [255, 128, 128]]
    exact = colour.rgb_to_ycbcr_float(pixels, "bt709")
    assert exact[0, 0, 0] == pytest.approx(0.2126 * 255)
    assert exact[0, 2, 1] == pytest.approx(255.5)


@pytest.mark.parametrize("matrix", [colour.BT601, colour.BT709])
def test_matrices_are_exact_inverses(matrix):
    assert np.allclose(matrix.forward() @ matrix.inverse(), np.eye(3), atol=1e-12)
    assert matrix.kr + matrix.kg + matrix.kb == pytest.approx(1.0)


def test_greys_stay_grey():
    greys = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
    for matrix in ("bt601", "bt709"):
        ycc = colour.rgb_to_ycbcr(greys, matrix)
        assert np.array_equal(ycc[..., 0], greys[..., 0])
        assert (ycc[..., 1:] == 128).all()
        assert np.array_equal(colour.ycbcr_to_rgb(ycc, matrix), greys)


def test_planar_layout_round_trip():
    image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    data = colour.to_planar(image)
    assert len(data) == 3 * 5 * 7
    assert data[:35] == image[..., 0].tobytes()
    assert data[70:] == image[..., 2].tobytes()
    assert np.array_equal(colour.from_planar(data, 5, 7), image)
    with pytest.raises(ValueError, match="needs 105 bytes"):
        colour.from_planar(data[:-1], 5, 7)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        colour.rgb_to_ycbcr(np.zeros((2, 2, 3), dtype=np.float32), "bt601")
    with pytest.raises(ValueError, match="unknown colour matrix"):
        colour.rgb_to_ycbcr(np.zeros((2, 2, 3), dtype=np.uint8), "bt2020")
