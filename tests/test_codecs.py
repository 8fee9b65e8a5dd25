"""Built-in in-process codecs: real encoders, real bytes, on a real photograph."""

import numpy as np
import pytest

from harness.codec import Codec
from harness.metrics import bits_per_pixel, psnr
from harness.registry import BUILTIN_CODECS, create_codec

PILLOW = sorted(n for n, target in BUILTIN_CODECS.items()
                if target.startswith("harness.codecs.pillow:"))


@pytest.mark.parametrize("name", PILLOW)
def test_round_trip_on_a_photo(name, sample_pixels):
    codec = create_codec(name)
    assert isinstance(codec, Codec) and codec.availability().ok
    image = sample_pixels[:200, :328]
    low, high = codec.qualities[0], codec.qualities[-1]
    small, large = codec.encode(image, low), codec.encode(image, high)
    assert isinstance(small, bytes) and 0 < len(small) < len(large)
    decoded_small, decoded_large = codec.decode(small), codec.decode(large)
    for decoded in (decoded_small, decoded_large):
        assert decoded.dtype == np.uint8 and decoded.shape == image.shape
    # more bits buy a better reconstruction, and a lossy one
    assert 20 < psnr(image, decoded_small) < psnr(image, decoded_large) < 60
    assert bits_per_pixel(len(large), 200, 328) > bits_per_pixel(len(small), 200, 328)


@pytest.mark.parametrize("name", PILLOW)
def test_encoding_is_deterministic_and_fingerprinted(name, sample_pixels):
    codec = create_codec(name)
    image = sample_pixels[:64, :96]
    quality = codec.qualities[len(codec.qualities) // 2]
    assert codec.encode(image, quality) == codec.encode(image, quality)
    assert codec.fingerprint() == codec.fingerprint()
    others = {create_codec(n).fingerprint() for n in PILLOW if n != name}
    assert codec.fingerprint() not in others


def test_chroma_subsampling_variants_differ(sample_pixels):
    image = sample_pixels[:128, :128]
    assert len(create_codec("jpeg-444").encode(image, 75)) > len(
        create_codec("jpeg").encode(image, 75))


@pytest.mark.parametrize("name,quality", [("jpeg", 101), ("jpeg", 50.5), ("webp", -1),
                                          ("jpeg2000", 5)])
def test_out_of_range_quality_is_refused(name, quality, sample_pixels):
    with pytest.raises(ValueError, match="quality"):
        create_codec(name).encode(sample_pixels[:32, :32], quality)


def test_non_rgb_input_is_refused():
    with pytest.raises(ValueError, match="H x W x 3"):
        create_codec("jpeg").encode(np.zeros((8, 8), np.uint8), 50)
    with pytest.raises(ValueError, match="uint8"):
        create_codec("jpeg").encode(np.zeros((8, 8, 3), np.float32), 50)


def test_jpeg2000_meets_its_psnr_target(sample_pixels):
    image = sample_pixels[:256, :256]
    codec = create_codec("jpeg2000")
    achieved = psnr(image, codec.decode(codec.encode(image, 32)))
    assert abs(achieved - 32) < 1.0
