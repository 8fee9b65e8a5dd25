"""Classical codecs that run in-process through Pillow's bundled libraries.

- ``jpeg``: libjpeg, baseline, standard Huffman tables, chroma 4:2:0 — Pillow's
  defaults, as CompressAI's JPEG reference curves were made.
- ``jpeg-444``: the same without chroma subsampling.
- ``webp``: libwebp lossy (always 4:2:0), Pillow's default effort (method 4).
- ``jpeg2000``: OpenJPEG, raw J2K codestream (no JP2 boxes), 9/7 irreversible wavelet
  with the irreversible colour transform; the quality number is the target PSNR in
  dB of the single quality layer (OpenJPEG's fixed-quality mode, ``opj_compress -q``).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, features

from harness.codec import (
    Availability,
    Codec,
    Quality,
    check_image,
    fingerprint_of,
    integer_quality,
)


def _decode_with_pillow(bitstream: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(bitstream)) as im:
        im.load()
        if im.mode != "RGB":
            im = im.convert("RGB")
        return np.asarray(im)


class PillowCodec(Codec):
    """A codec run through ``PIL.Image.save``; subclasses give the save options."""

    pillow_format: str = ""
    feature: str = ""  # PIL.features name of the library behind it

    def availability(self) -> Availability:
        if not features.check(self.feature):
            return Availability(False, f"this Pillow build lacks {self.feature}; "
                                       "install a Pillow wheel from PyPI")
        return Availability(True)

    def save_options(self, quality: Quality) -> dict:
        raise NotImplementedError

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        check_image(image)
        buffer = io.BytesIO()
        Image.fromarray(image, "RGB").save(buffer, format=self.pillow_format,
                                           **self.save_options(self.check_quality(quality)))
        return buffer.getvalue()

    def decode(self, bitstream: bytes) -> np.ndarray:
        return _decode_with_pillow(bitstream)

    def fingerprint(self) -> str:
        import PIL

        return fingerprint_of(self.name, "pillow", PIL.__version__,
                              features.version(self.feature), sorted(self.save_options(50).items()))

    def check_quality(self, quality: Quality) -> Quality:
        return integer_quality(quality, 0, 100, f"{self.name} quality")


class JPEG(PillowCodec):
    name = "jpeg"
    seconds_per_megapixel = 0.3  # declared, on one core
    description = "JPEG (libjpeg via Pillow), baseline, 4:2:0"
    qualities = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
    quality_label = "libjpeg quality 0-100"
    pillow_format = "JPEG"
    feature = "jpg"
    subsampling = 2  # Pillow: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0

    def save_options(self, quality: Quality) -> dict:
        return {"quality": quality, "subsampling": self.subsampling}


class JPEG444(JPEG):
    name = "jpeg-444"
    description = "JPEG (libjpeg via Pillow), baseline, 4:4:4"
    subsampling = 0


class WebP(PillowCodec):
    name = "webp"
    seconds_per_megapixel = 0.6  # declared, on one core
    description = "WebP lossy (libwebp via Pillow), 4:2:0, method 4"
    qualities = (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
    quality_label = "libwebp quality 0-100"
    pillow_format = "WEBP"
    feature = "webp"

    def save_options(self, quality: Quality) -> dict:
        return {"quality": quality, "method": 4, "lossless": False, "exact": False}


class JPEG2000(PillowCodec):
    name = "jpeg2000"
    seconds_per_megapixel = 0.8  # declared, on one core
    description = "JPEG 2000 (OpenJPEG via Pillow), J2K codestream, 9/7 + ICT, fixed PSNR"
    qualities = (26, 28, 30, 32, 34, 36, 38, 40)
    quality_label = "target PSNR in dB"
    pillow_format = "JPEG2000"
    feature = "jpg_2000"

    def save_options(self, quality: Quality) -> dict:
        return {"quality_mode": "dB", "quality_layers": [quality], "irreversible": True,
                "mct": 1, "no_jp2": True}

    def check_quality(self, quality: Quality) -> Quality:
        if not 10 <= quality <= 80:
            raise ValueError(f"jpeg2000 quality is a target PSNR in dB (10..80), got {quality}")
        return float(quality)
