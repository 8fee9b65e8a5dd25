"""Image loading: any file Pillow reads becomes a uint8 H x W x 3 RGB array.

Conversions (grayscale, palette, alpha, CMYK, 16-bit, ...) are reported as plain
sentences in ``LoadedImage.warnings``; files that cannot be decoded completely raise
``ImageLoadError`` with a one-sentence message naming the file.  EXIF orientation is
not applied: benchmarks use the stored pixels.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from harness.errors import ImageLoadError

__all__ = [
    "IMAGE_SUFFIXES",
    "LoadedImage",
    "image_content_hash",
    "load_image",
]

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff", ".webp"}
)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}


@dataclass(frozen=True)
class LoadedImage:
    """Decoded pixels (read-only uint8 H x W x 3 RGB) with what was done to get them."""

    pixels: np.ndarray
    warnings: tuple[str, ...]
    content_hash: str

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def image_content_hash(pixels: np.ndarray) -> str:
    """SHA-256 (hex) of the pixel bytes, keyed by dtype and shape.

    The shape is part of the hash, so a 1x12 and a 2x6 image with the same bytes differ.
    """
    arr = np.ascontiguousarray(pixels)
    digest = hashlib.sha256()
    digest.update(f"{arr.dtype.str}:{'x'.join(str(n) for n in arr.shape)}:".encode("ascii"))
    digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()


def load_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Read ``path`` completely and return its pixels as uint8 RGB.

    Raises ``ImageLoadError`` for empty, unreadable, truncated, corrupt, oversized or
    non-image files.
    """
    label = os.fspath(path)
    data = _read_bytes(Path(path), label)
    if data.startswith(_PNG_SIGNATURE):
        problem = _png_structure_problem(data)
        if problem is not None:
            raise ImageLoadError(f"{label}: truncated or corrupt PNG data ({problem}).")
    im = _open_fully(data, label)
    try:
        pixels, notes = _to_rgb(im, data, label)
    finally:
        im.close()
    if not pixels.flags.c_contiguous:
        pixels = np.ascontiguousarray(pixels)
    if pixels.flags.writeable:
        pixels.setflags(write=False)
    digest = image_content_hash(pixels)
    return LoadedImage(pixels=pixels, warnings=tuple(notes), content_hash=digest)


# Largest image file read (bytes); HARNESS_MAX_IMAGE_BYTES overrides it.
MAX_IMAGE_BYTES = 1 << 30


def max_image_bytes() -> int:
    return int(os.environ.get("HARNESS_MAX_IMAGE_BYTES", MAX_IMAGE_BYTES))


def _read_bytes(path: Path, label: str) -> bytes:
    """Read a regular file of at most ``max_image_bytes()`` bytes.

    Opened non-blocking so a FIFO cannot hang the run; the type and size are checked on
    the open descriptor, and the read stops one byte past the cap (a device has no size).
    """
    cap = max_image_bytes()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(st.st_mode):
                raise ImageLoadError(
                    f"{label}: not a regular file (a folder, FIFO, socket or device); skipped.")
            if st.st_size > cap:
                raise ImageLoadError(
                    f"{label}: the file is {st.st_size} bytes, above the {cap}-byte limit "
                    "for an image file (set HARNESS_MAX_IMAGE_BYTES to raise it).")
            with os.fdopen(fd, "rb", closefd=False) as fh:
                data = fh.read(cap + 1)
        finally:
            os.close(fd)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        if path.is_symlink():
            raise ImageLoadError(
                f"{label}: broken symbolic link (its target does not exist)."
            ) from None
        raise ImageLoadError(f"{label}: file not found.") from None
    except IsADirectoryError:
        raise ImageLoadError(f"{label}: is a folder, not an image file.") from None
    except PermissionError:
        raise ImageLoadError(f"{label}: permission denied (the file cannot be read).") from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ImageLoadError(f"{label}: the file cannot be read ({reason}).") from None
    if len(data) > cap:
        raise ImageLoadError(f"{label}: the file grew past the {cap}-byte limit while read.")
    if not data:
        raise ImageLoadError(f"{label}: the file is empty (0 bytes).")
    return data


def _png_structure_problem(data: bytes) -> str | None:
    """Walk the PNG chunks and check their lengths and CRCs; return a problem or None.

    Pillow skips the CRC of image-data chunks, so a flipped bit there could otherwise
    decode silently into wrong pixels.
    """
    pos = len(_PNG_SIGNATURE)
    size = len(data)
    first = True
    while True:
        if pos + 8 > size:
            return f"file ends at byte {size} before the IEND chunk"
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        name = ctype.decode("latin-1")
        if not ctype.isalpha():
            return f"invalid chunk type {ctype!r} at byte {pos}"
        if first and ctype != b"IHDR":
            return f"the first chunk is {name}, not IHDR"
        first = False
        if length > 0x7FFFFFFF:
            return f"chunk {name} at byte {pos} claims an impossible length of {length} bytes"
        end = pos + 8 + length
        if end + 4 > size:
            return f"file ends at byte {size} inside the {name} chunk that starts at byte {pos}"
        stored = struct.unpack(">I", data[end : end + 4])[0]
        if zlib.crc32(data[pos + 4 : end]) != stored:
            return f"bad CRC in the {name} chunk at byte {pos}"
        if ctype == b"IEND":
            return None
        pos = end + 4


_pillow_lock = threading.Lock()


@contextlib.contextmanager
def _strict_pillow() -> Iterator[None]:
    """Make truncation an error and turn Pillow's decompression-bomb warning into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        if not ImageFile.LOAD_TRUNCATED_IMAGES:
            yield
            return
        with _pillow_lock:
            saved = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            try:
                yield
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _format_name(data: bytes) -> str:
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[:1] == b"P" and data[1:2] in b"123456":
        return "PNM"
    return "image"


def _open_fully(data: bytes, label: str) -> Image.Image:
    fmt = _format_name(data)
    im = None
    try:
        with _strict_pillow():
            im = Image.open(io.BytesIO(data))
            fmt = im.format or fmt
            im.load()
        return im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        if im is not None:
            im.close()
        raise ImageLoadError(_bomb_message(label, data)) from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{label}: not an image file Pillow can read.") from None
    except MemoryError:
        if im is not None:
            im.close()
        raise ImageLoadError(f"{label}: not enough memory to decode the image.") from None
    except Exception as exc:  # Pillow signals corrupt data with many exception types
        if im is not None:
            im.close()
        detail = str(exc).strip().rstrip(".") or exc.__class__.__name__
        raise ImageLoadError(f"{label}: truncated or corrupt {fmt} data ({detail}).") from None


def _bomb_message(label: str, data: bytes) -> str:
    limit = Image.MAX_IMAGE_PIXELS
    size = ""
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        size = f" ({width}x{height} = {width * height} pixels)"
    return (
        f"{label}: the image is too large{size}; Pillow refuses images above "
        f"{limit} pixels as a decompression-bomb guard (raise PIL.Image.MAX_IMAGE_PIXELS "
        "if the file is trusted)."
    )


def _png_header(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG, or None for other formats."""
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 26:
        return None
    return data[24], data[25]


def _scale16(values: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255 as round(v / 257); exact in integers (no ties are possible)."""
    wide = values.astype(np.uint32)
    return ((wide * 2 + 257) // 514).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    out = np.empty(gray.shape + (3,), dtype=np.uint8)
    out[...] = gray[..., None]
    return out


def _to_rgb(im: Image.Image, data: bytes, label: str) -> tuple[np.ndarray, list[str]]:
    mode = im.mode
    fmt = im.format or _format_name(data)
    notes: list[str] = []
    frames = getattr(im, "n_frames", 1)
    if isinstance(frames, int) and frames > 1:
        notes.append(f"{fmt} file holds {frames} frames; only the first was used.")

    header = _png_header(data)
    if header is not None and header[0] == 16 and header[1] in (2, 4, 6):
        exact = _png16_colour(im, data, header[1])
        if exact is not None:
            pixels, sentence = exact
            notes.append(sentence)
            return pixels, notes
        notes.append(
            f"16-bit {_PNG_COLOUR_TYPES[header[1]]} PNG reduced to 8 bits by Pillow, which "
            "keeps the high byte of each value (truncated, not rounded)."
        )

    if mode == "RGB":
        return np.asarray(im), notes
    if mode in ("RGBA", "RGBa", "RGBX"):
        if mode == "RGBX":
            notes.append(f"{fmt} image with a padding channel (RGBX) converted to RGB.")
        else:
            notes.append(
                f"{fmt} image with an alpha channel converted to RGB; the alpha channel "
                "was dropped (not composited)."
            )
        return np.asarray(im)[..., :3], notes
    if mode == "1":
        notes.append(f"1-bit black-and-white {fmt} converted to 8-bit RGB (0 -> 0, 1 -> 255).")
        gray = np.asarray(im.convert("L"))
        return _gray_to_rgb(gray), notes
    if mode == "L":
        notes.append(
            f"8-bit grayscale {fmt} converted to RGB (the gray value copied to all three channels)."
        )
        return _gray_to_rgb(np.asarray(im)), notes
    if mode in ("LA", "La"):
        notes.append(
            f"8-bit grayscale {fmt} with an alpha channel converted to RGB (gray copied to "
            "all three channels); the alpha channel was dropped (not composited)."
        )
        return _gray_to_rgb(np.asarray(im)[..., 0]), notes
    if mode.startswith("I;16"):
        notes.append(
            f"16-bit grayscale {fmt} converted to 8-bit RGB (values scaled by 1/257 and rounded)."
        )
        return _gray_to_rgb(_scale16(np.asarray(im))), notes
    if mode == "I":
        values = np.asarray(im)
        lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if lo >= 0 and hi <= 65535:
            notes.append(
                f"32-bit integer grayscale {fmt} with values within 0..65535 treated as "
                "16-bit and converted to 8-bit RGB (values scaled by 1/257 and rounded)."
            )
        else:
            notes.append(
                f"32-bit integer grayscale {fmt} with values {lo}..{hi} clipped to 0..65535, "
                "then converted to 8-bit RGB (values scaled by 1/257 and rounded)."
            )
            values = np.clip(values, 0, 65535)
        return _gray_to_rgb(_scale16(values)), notes
    if mode == "F":
        values = np.asarray(im, dtype=np.float64)
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            notes.append(
                f"32-bit float grayscale {fmt} with values in 0..1 converted to 8-bit RGB "
                "(values multiplied by 255 and rounded)."
            )
            values = values * 255.0
        else:
            notes.append(
                f"32-bit float grayscale {fmt} with values {lo:g}..{hi:g} converted to 8-bit "
                "RGB (values clipped to 0..255 and rounded)."
            )
        values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return _gray_to_rgb(gray), notes
    if mode in ("P", "PA"):
        transparent = mode == "PA" or "transparency" in im.info
        sentence = f"palette {fmt} converted to RGB through its palette"
        if transparent:
            sentence += "; its transparency was dropped (not composited)"
        notes.append(sentence + ".")
        return np.asarray(im.convert("RGBA" if transparent else "RGB"))[..., :3], notes
    if mode == "CMYK":
        notes.append(
            f"CMYK {fmt} converted to RGB with Pillow's simple CMYK formula (no colour "
            "profile applied)."
        )
        return np.asarray(im.convert("RGB")), notes
    if mode == "YCbCr":
        notes.append(f"YCbCr {fmt} converted to RGB by Pillow (full-range BT.601 matrix).")
        return np.asarray(im.convert("RGB")), notes
    try:
        converted = im.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageLoadError(
            f"{label}: pixel mode {mode} cannot be converted to RGB ({exc})."
        ) from None
    notes.append(f"{mode} {fmt} converted to RGB by Pillow.")
    return np.asarray(converted), notes


_PNG16_RAWMODES = {
    # colour type: (mode Pillow opens it as, rawmode Pillow uses, rawmode for the low bytes)
    2: ("RGB", "RGB;16B", "RGB;16L"),
    6: ("RGBA", "RGBA;16B", "RGBA;16L"),
    4: ("RGBA", "LA;16B", "RGBA"),
}


def _decode_with_rawmode(data: bytes, mode: str, expected: str, rawmode: str) -> np.ndarray | None:
    """Decode a PNG again with another unpacker of the same bits per pixel.

    PNG unfiltering depends only on the bytes per pixel, so a rawmode of the same width
    gives access to the low bytes of 16-bit samples that Pillow's RGB modes discard.
    """
    with _strict_pillow():
        im = Image.open(io.BytesIO(data))
        try:
            if im.mode != mode or len(im.tile) != 1:
                return None
            tile = im.tile[0]
            args = tile[3]
            current = args if isinstance(args, str) else args[0]
            if current != expected:
                return None
            new_args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
            im.tile = [
                tile._replace(args=new_args)
                if hasattr(tile, "_replace")
                else (tile[0], tile[1], tile[2], new_args)
            ]
            im.load()
            return np.asarray(im)
        finally:
            im.close()


def _png16_colour(im: Image.Image, data: bytes, colour_type: int) -> tuple[np.ndarray, str] | None:
    """Exact 16-bit values of a colour (or gray+alpha) PNG, reduced with rounding."""
    mode, hi_raw, lo_raw = _PNG16_RAWMODES[colour_type]
    if im.mode != mode:
        return None
    try:
        lo = _decode_with_rawmode(data, mode, hi_raw, lo_raw)
    except Exception:
        return None
    if lo is None:
        return None
    if colour_type == 4:
        gray = lo[..., 0].astype(np.uint16) << 8 | lo[..., 1]
        sentence = (
            "16-bit grayscale PNG with an alpha channel converted to 8-bit RGB (values "
            "scaled by 1/257 and rounded); the alpha channel was dropped (not composited)."
        )
        return _gray_to_rgb(_scale16(gray)), sentence
    hi = np.asarray(im)
    values = hi[..., :3].astype(np.uint16) << 8 | lo[..., :3]
    sentence = "16-bit RGB PNG converted to 8-bit RGB (values scaled by 1/257 and rounded)"
    if colour_type == 6:
        sentence = (
            "16-bit RGBA PNG converted to 8-bit RGB (values scaled by 1/257 and rounded); "
            "the alpha channel was dropped (not composited)"
        )
    return _scale16(values), sentence + "."
