"""RGB <-> Y'CbCr conversions for codecs that are fed raw YUV by the harness.

Video encoders (x265, VTM) take planar Y'CbCr, not RGB, so the conversion is part of
the anchor and must be the one papers use, done well:

- arithmetic in float64, then **rounded** to the nearest integer (``numpy.rint``) and
  clipped to 0..255; never truncated (``astype(np.uint8)`` on floats floors, which
  biases every sample by -0.5 on average and caps a lossless round trip at ~44 dB
  instead of ~53 dB);
- **full range** (Y' and Cb/Cr use all of 0..255, chroma centred on 128, as in
  ITU-T H.273 with VideoFullRangeFlag = 1 and in JFIF); never ffmpeg's implicit default
  (BT.601 *limited* range with inexact rounding, which costs 12-15 % rate at equal
  RGB-PSNR);
- 4:4:4 (no chroma subsampling).

Matrices, per codec:

- ``BT601`` (Kr = 0.299, Kb = 0.114): BPG444 (``bpgenc -c ycbcr``, the default, is
  BT.601 full range; bpgenc converts internally) and the harness's x265 HEVC-intra
  anchor, which is fed the same conversion so that it codes what BPG codes.
- ``BT709`` (Kr = 0.2126, Kb = 0.0722): VTM 4:4:4, as CompressAI's benchmark feeds VTM
  (BT.709 coefficients, full range). CompressAI scales floats in [0, 1] by 255 (chroma
  offset 127.5) and truncates; here the chroma offset is 128 (H.273) and samples are
  rounded.

For a matrix (Kr, Kb), with Kg = 1 - Kr - Kb and R, G, B in 0..255::

    Y' = Kr R + Kg G + Kb B
    Cb = (B - Y') / (2 (1 - Kb)) + 128
    Cr = (R - Y') / (2 (1 - Kr)) + 128

and the exact inverse of that matrix on the way back. A round trip RGB -> Y'CbCr ->
RGB changes no sample by more than 1 (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ColourMatrix:
    """A Y'CbCr matrix given by its luma weights for red and blue."""

    name: str
    kr: float
    kb: float

    @property
    def kg(self) -> float:
        return 1.0 - self.kr - self.kb

    def forward(self) -> np.ndarray:
        """3 x 3 matrix: (R, G, B) -> (Y', Cb - 128, Cr - 128)."""
        kr, kg, kb = self.kr, self.kg, self.kb
        return np.array([
            [kr, kg, kb],
            [-kr / (2 * (1 - kb)), -kg / (2 * (1 - kb)), 0.5],
            [0.5, -kg / (2 * (1 - kr)), -kb / (2 * (1 - kr))],
        ], dtype=np.float64)

    def inverse(self) -> np.ndarray:
        """3 x 3 matrix: (Y', Cb - 128, Cr - 128) -> (R, G, B)."""
        kr, kg, kb = self.kr, self.kg, self.kb
        return np.array([
            [1.0, 0.0, 2 * (1 - kr)],
            [1.0, -2 * (1 - kb) * kb / kg, -2 * (1 - kr) * kr / kg],
            [1.0, 2 * (1 - kb), 0.0],
        ], dtype=np.float64)


BT601 = ColourMatrix("bt601", 0.299, 0.114)
BT709 = ColourMatrix("bt709", 0.2126, 0.0722)
MATRICES = {m.name: m for m in (BT601, BT709)}  # the codecs' matrices
BT2020 = ColourMatrix("bt2020", 0.2627, 0.0593)  # for the Y'CbCr metrics (metrics.ycbcr)
CHROMA_OFFSET = 128.0


def _matrix(matrix: ColourMatrix | str) -> ColourMatrix:
    if isinstance(matrix, ColourMatrix):
        return matrix
    try:
        return MATRICES[matrix]
    except KeyError:
        raise ValueError(f"unknown colour matrix {matrix!r}; known: {', '.join(MATRICES)}") \
            from None


def _check_rgb(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 H x W x 3 array, got "
                         f"{getattr(image, 'dtype', type(image).__name__)} "
                         f"{getattr(image, 'shape', '')}")


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def rgb_to_ycbcr_float(image: np.ndarray, matrix: ColourMatrix | str) -> np.ndarray:
    """The exact Y'CbCr values (float64, H x W x 3) of a uint8 RGB image."""
    _check_rgb(image)
    m = _matrix(matrix)
    ycc = image.astype(np.float64) @ m.forward().T
    ycc[..., 1:] += CHROMA_OFFSET
    return ycc


def rgb_to_ycbcr(image: np.ndarray, matrix: ColourMatrix | str) -> np.ndarray:
    """uint8 RGB (H x W x 3) -> uint8 full-range Y'CbCr 4:4:4 (H x W x 3), rounded."""
    return _to_uint8(rgb_to_ycbcr_float(image, matrix))


def ycbcr_to_rgb(ycbcr: np.ndarray, matrix: ColourMatrix | str) -> np.ndarray:
    """uint8 full-range Y'CbCr 4:4:4 (H x W x 3) -> uint8 RGB (H x W x 3), rounded."""
    _check_rgb(ycbcr)
    m = _matrix(matrix)
    centred = ycbcr.astype(np.float64)
    centred[..., 1:] -= CHROMA_OFFSET
    return _to_uint8(centred @ m.inverse().T)


def to_planar(ycbcr: np.ndarray) -> bytes:
    """H x W x 3 uint8 -> planar bytes (all of Y', then Cb, then Cr): raw 4:4:4 YUV."""
    _check_rgb(ycbcr)
    return np.ascontiguousarray(ycbcr.transpose(2, 0, 1)).tobytes()


def from_planar(data: bytes, height: int, width: int) -> np.ndarray:
    """Planar 8-bit 4:4:4 bytes -> H x W x 3 uint8 (one frame; extra bytes are an error)."""
    expected = 3 * height * width
    if len(data) != expected:
        raise ValueError(f"raw 4:4:4 frame of {width}x{height} needs {expected} bytes, "
                         f"got {len(data)}")
    planes = np.frombuffer(data, dtype=np.uint8).reshape(3, height, width)
    return np.ascontiguousarray(planes.transpose(1, 2, 0))
