import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from harness.errors import ImageLoadError
from harness.images import IMAGE_SUFFIXES, LoadedImage, image_content_hash, load_image

RNG = np.random.default_rng(1234)


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + ctype
        + payload
        + struct.pack(">I", zlib.crc32(ctype + payload))
    )


def _filter_rows(raw: np.ndarray, bpp: int) -> bytes:
    """PNG-filter each row of ``raw`` (rows x bytes), cycling None, Sub, Up, Average, Paeth."""
    out = bytearray()
    prior = np.zeros(raw.shape[1], dtype=np.int32)
    for y, row in enumerate(raw.astype(np.int32)):
        kind = y % 5
        left = np.concatenate([np.zeros(bpp, np.int32), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prior[:-bpp]])
        if kind == 0:
            pred = np.zeros_like(row)
        elif kind == 1:
            pred = left
        elif kind == 2:
            pred = prior
        elif kind == 3:
            pred = (left + prior) // 2
        else:
            p = left + prior - upleft
            pa, pb, pc = np.abs(p - left), np.abs(p - prior), np.abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, upleft))
        out.append(kind)
        out += ((row - pred) % 256).astype(np.uint8).tobytes()
        prior = row
    return bytes(out)


def png16_bytes(values: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour PNGs)."""
    height, width = values.shape[:2]
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    samples = values.reshape(height, width * channels).astype(">u2")
    raw = np.frombuffer(samples.tobytes(), dtype=np.uint8).reshape(height, -1)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    idat = zlib.compress(_filter_rows(raw, 2 * channels))
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def round257(values: np.ndarray) -> np.ndarray:
    return np.floor(values.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)


def save(tmp_path, name, im: Image.Image, **kwargs):
    path = tmp_path / name
    im.save(path, **kwargs)
    return path


@pytest.fixture
def rgb() -> np.ndarray:
    return RNG.integers(0, 256, size=(17, 23, 3), dtype=np.uint8)


def test_suffixes_are_lower_case_and_dotted():
    assert ".png" in IMAGE_SUFFIXES and ".tiff" in IMAGE_SUFFIXES and ".webp" in IMAGE_SUFFIXES
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)


def test_plain_rgb_png_round_trip(tmp_path, rgb):
    path = save(tmp_path, "plain.png", Image.fromarray(rgb))
    loaded = load_image(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.shape == (17, 23, 3)
    assert loaded.pixels.flags.c_contiguous
    np.testing.assert_array_equal(loaded.pixels, rgb)
    assert loaded.warnings == ()
    assert loaded.content_hash == image_content_hash(rgb)
    assert (loaded.height, loaded.width) == (17, 23)


def test_pixels_are_read_only(tmp_path, rgb):
    loaded = load_image(save(tmp_path, "ro.png", Image.fromarray(rgb)))
    with pytest.raises(ValueError):
        loaded.pixels[0, 0, 0] = 1


def test_exif_orientation_is_not_applied(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = save(tmp_path, "rot.png", Image.fromarray(rgb), exif=exif)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels, rgb)
    assert loaded.warnings == ()


def test_grayscale_8bit(tmp_path):
    gray = RNG.integers(0, 256, size=(9, 11), dtype=np.uint8)
    loaded = load_image(save(tmp_path, "gray.png", Image.fromarray(gray)))
    assert loaded.pixels.shape == (9, 11, 3)
    for c in range(3):
        np.testing.assert_array_equal(loaded.pixels[..., c], gray)
    assert len(loaded.warnings) == 1 and "8-bit grayscale PNG" in loaded.warnings[0]


def test_grayscale_16bit_is_rounded_not_truncated(tmp_path):
    values = np.array(
        [[0, 128, 129, 256, 385, 386], [1000, 32767, 65407, 65408, 65534, 65535]], dtype=np.uint16
    )
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    loaded = load_image(path)
    expected = round257(values)
    np.testing.assert_array_equal(loaded.pixels[..., 0], expected)
    np.testing.assert_array_equal(loaded.pixels[..., 2], expected)
    assert expected[0].tolist() == [0, 0, 1, 1, 1, 2]
    assert loaded.warnings == (
        "16-bit grayscale PNG converted to 8-bit RGB (values scaled by 1/257 and rounded).",
    )


def test_hand_written_16bit_gray_png_matches(tmp_path):
    values = RNG.integers(0, 65536, size=(7, 13), dtype=np.uint16)
    path = tmp_path / "g16.png"
    path.write_bytes(png16_bytes(values, 0))
    np.testing.assert_array_equal(load_image(path).pixels[..., 1], round257(values))


@pytest.mark.parametrize("colour_type", [2, 6])
def test_16bit_colour_png_is_rounded_from_full_values(tmp_path, colour_type):
    channels = 3 if colour_type == 2 else 4
    values = RNG.integers(0, 65536, size=(21, 19, channels), dtype=np.uint16)
    values[0, 0, :3] = [128, 129, 65535]
    path = tmp_path / "c16.png"
    path.write_bytes(png16_bytes(values, colour_type))
    loaded = load_image(path)
    expected = round257(values[..., :3])
    np.testing.assert_array_equal(loaded.pixels, expected)
    assert loaded.pixels[0, 0].tolist() == [0, 1, 255]
    assert not np.array_equal(expected, (values[..., :3] >> 8).astype(np.uint8))
    assert len(loaded.warnings) == 1
    assert "scaled by 1/257 and rounded" in loaded.warnings[0]
    if colour_type == 6:
        assert "alpha channel was dropped (not composited)" in loaded.warnings[0]
    else:
        assert loaded.warnings[0].startswith("16-bit RGB PNG")


def test_16bit_gray_alpha_png(tmp_path):
    values = RNG.integers(0, 65536, size=(6, 9, 2), dtype=np.uint16)
    path = tmp_path / "la16.png"
    path.write_bytes(png16_bytes(values, 4))
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels[..., 2], round257(values[..., 0]))
    assert "alpha channel was dropped" in loaded.warnings[0]


def test_palette_png(tmp_path, rgb):
    im = Image.fromarray(rgb).quantize(colors=16)
    path = save(tmp_path, "pal.png", im)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels, np.asarray(im.convert("RGB")))
    assert loaded.warnings == ("palette PNG converted to RGB through its palette.",)


def test_palette_with_transparency(tmp_path, rgb):
    im = Image.fromarray(rgb).quantize(colors=8)
    path = save(tmp_path, "palt.png", im, transparency=0)
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.pixels, np.asarray(im.convert("RGB")))
    assert "transparency was dropped (not composited)" in loaded.warnings[0]


def test_rgba_alpha_dropped_not_composited(tmp_path, rgb):
    alpha = np.zeros(rgb.shape[:2] + (1,), dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=2)
    loaded = load_image(save(tmp_path, "rgba.png", Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(loaded.pixels, rgb)
    assert loaded.warnings == (
        "PNG image with an alpha channel converted to RGB; the alpha channel was dropped "
        "(not composited).",
    )


def test_gray_alpha(tmp_path):
    la = RNG.integers(0, 256, size=(5, 4, 2), dtype=np.uint8)
    loaded = load_image(save(tmp_path, "la.png", Image.fromarray(la, "LA")))
    np.testing.assert_array_equal(loaded.pixels[..., 1], la[..., 0])
    assert "alpha channel was dropped" in loaded.warnings[0]


def test_cmyk_jpeg(tmp_path, rgb):
    path = save(tmp_path, "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    assert Image.open(path).mode == "CMYK"
    loaded = load_image(path)
    assert loaded.pixels.shape == rgb.shape and loaded.pixels.dtype == np.uint8
    with Image.open(path) as im:
        np.testing.assert_array_equal(loaded.pixels, np.asarray(im.convert("RGB")))
    assert loaded.warnings[0].startswith("CMYK JPEG converted to RGB")


def test_one_bit(tmp_path):
    bits = RNG.integers(0, 2, size=(8, 10)).astype(bool)
    loaded = load_image(save(tmp_path, "bw.png", Image.fromarray(bits)))
    np.testing.assert_array_equal(loaded.pixels[..., 0], np.where(bits, 255, 0))
    assert "1-bit" in loaded.warnings[0]


def test_float_tiff(tmp_path):
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    loaded = load_image(save(tmp_path, "f.tif", Image.fromarray(values, "F")))
    assert loaded.pixels[0, :, 0].tolist() == [0, 128, 255]
    assert "float" in loaded.warnings[0]


def test_ycbcr_jpeg_loads_as_rgb_without_warning(tmp_path, rgb):
    path = save(tmp_path, "photo.jpg", Image.fromarray(rgb), quality=90)
    loaded = load_image(path)
    assert loaded.pixels.shape == rgb.shape
    assert loaded.warnings == ()


def test_zero_byte_file(tmp_path):
    path = tmp_path / "kodim01.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert str(info.value) == f"{path}: the file is empty (0 bytes)."


def test_truncated_png(tmp_path, rgb):
    good = tmp_path / "good.png"
    Image.fromarray(rgb).save(good)
    data = good.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError) as info:
        load_image(cut)
    message = str(info.value)
    assert message.startswith(f"{cut}: truncated or corrupt PNG data (")
    assert "IDAT" in message


def test_truncated_png_even_with_load_truncated_images(tmp_path, rgb, monkeypatch):
    good = tmp_path / "good.png"
    Image.fromarray(rgb).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:-20])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(ImageLoadError, match="truncated or corrupt PNG data"):
        load_image(cut)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_png_with_bad_crc_in_image_data(tmp_path, rgb):
    good = tmp_path / "good.png"
    Image.fromarray(rgb).save(good)
    data = bytearray(good.read_bytes())
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4 : idat])[0]
    data[idat + 4 + length] ^= 0xFF
    bad = tmp_path / "badcrc.png"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError) as info:
        load_image(bad)
    assert f"{bad}: truncated or corrupt PNG data (bad CRC in the IDAT chunk" in str(info.value)


def test_png_with_bad_crc_in_header(tmp_path, rgb):
    good = tmp_path / "good.png"
    Image.fromarray(rgb).save(good)
    data = bytearray(good.read_bytes())
    data[29] ^= 0x01
    bad = tmp_path / "badhdr.png"
    bad.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match="bad CRC in the IHDR chunk"):
        load_image(bad)


def test_jpeg_truncated(tmp_path, rgb):
    good = save(tmp_path, "good.jpg", Image.fromarray(rgb), quality=90)
    data = good.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError) as info:
        load_image(cut)
    assert str(info.value).startswith(f"{cut}: truncated or corrupt JPEG data (")


def test_jpeg_with_damaged_entropy_data_decodes_silently(tmp_path, rgb):
    # libjpeg treats damaged entropy-coded data as a recoverable warning and Pillow does
    # not surface it, so such a file decodes to wrong pixels without an error.  The loader
    # cannot tell; this test records that behaviour.
    big = np.kron(rgb, np.ones((4, 4, 1), dtype=np.uint8))
    good = save(tmp_path, "good.jpg", Image.fromarray(big), quality=90)
    data = bytearray(good.read_bytes())
    start = data.index(b"\xff\xda")
    for offset in range(start + 40, len(data) - 10, 97):
        if data[offset] != 0xFF and data[offset - 1] != 0xFF:
            data[offset] = 0xFF - data[offset] if data[offset] != 0 else 1
    bad = tmp_path / "damaged.jpg"
    bad.write_bytes(bytes(data))
    try:
        loaded = load_image(bad)
    except ImageLoadError as exc:
        assert str(exc).startswith(f"{bad}: truncated or corrupt JPEG data (")
    else:
        assert loaded.pixels.shape == big.shape
        assert not np.array_equal(loaded.pixels, load_image(good).pixels)


def test_non_image_with_png_suffix(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n" * 10)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert str(info.value) == f"{path}: not an image file Pillow can read."


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "absent.png")
    with pytest.raises(ImageLoadError, match="is a folder"):
        load_image(tmp_path)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root (or a system without POSIX permissions) can read a chmod 000 file",
)
def test_unreadable_file(tmp_path, rgb):
    path = save(tmp_path, "locked.png", Image.fromarray(rgb))
    path.chmod(0)
    try:
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
        assert str(info.value) == f"{path}: permission denied (the file cannot be read)."
    finally:
        path.chmod(0o644)


def test_permission_error_message_without_chmod(tmp_path, rgb, monkeypatch):
    path = save(tmp_path, "locked2.png", Image.fromarray(rgb))

    def denied(name, flags):
        raise PermissionError(13, "Permission denied", str(name))

    monkeypatch.setattr("harness.images.os.open", denied)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert str(info.value) == f"{path}: permission denied (the file cannot be read)."


def _bomb_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


def test_decompression_bomb_error(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_bomb_png(20000, 20000))
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith(f"{path}: the image is too large (20000x20000 = 400000000 pixels)")
    assert "MAX_IMAGE_PIXELS" in message


def test_decompression_bomb_warning_range_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    path = tmp_path / "warn.png"
    path.write_bytes(_bomb_png(40, 40))
    with pytest.raises(ImageLoadError, match="too large .40x40 = 1600 pixels"):
        load_image(path)


def test_content_hash_depends_on_shape():
    flat = np.arange(36, dtype=np.uint8).reshape(1, 12, 3)
    tall = flat.reshape(2, 6, 3)
    assert flat.tobytes() == tall.tobytes()
    assert image_content_hash(flat) != image_content_hash(tall)
    assert image_content_hash(flat) == image_content_hash(flat.copy())
    assert len(image_content_hash(flat)) == 64


def test_content_hash_of_non_contiguous_view():
    base = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    view = base[:, ::2]
    assert image_content_hash(view) == image_content_hash(np.ascontiguousarray(view))


def test_other_formats(tmp_path, rgb):
    for name, kwargs in [
        ("a.bmp", {}),
        ("a.ppm", {}),
        ("a.tif", {}),
        ("a.webp", {"lossless": True}),
    ]:
        loaded = load_image(save(tmp_path, name, Image.fromarray(rgb), **kwargs))
        np.testing.assert_array_equal(loaded.pixels, rgb)
        assert loaded.warnings == ()


def test_bytes_io_unused_but_pillow_reads_what_we_wrote(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 20, 30)).save(buf, "PNG")
    path = tmp_path / "tiny.png"
    path.write_bytes(buf.getvalue())
    assert load_image(path).pixels[1, 2].tolist() == [10, 20, 30]


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageLoadError, match="not a regular file"):
        load_image(fifo)


def test_a_link_to_a_device_is_refused(tmp_path):
    link = tmp_path / "zero.png"
    link.symlink_to("/dev/zero")
    with pytest.raises(ImageLoadError, match="not a regular file"):
        load_image(link)


def test_files_above_the_size_cap_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    load_image(path)
    monkeypatch.setenv("HARNESS_MAX_IMAGE_BYTES", "100")
    with pytest.raises(ImageLoadError, match="above the 100-byte limit"):
        load_image(path)
