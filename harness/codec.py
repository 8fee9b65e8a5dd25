"""The contract every codec plugin implements.

A codec turns an image into a real bitstream and back. Images are ``numpy.uint8``
arrays of shape H x W x 3 (RGB); bitstreams are ``bytes`` that hold everything the
decoder needs, so that the bits counted are the bits a user would store.

A plugin subclasses :class:`Codec`, sets :attr:`Codec.name` and
:attr:`Codec.qualities`, and implements :meth:`Codec.encode`, :meth:`Codec.decode`
and :meth:`Codec.fingerprint`. Codecs are registered by name in
:mod:`harness.registry` (built-ins) or through the entry-point group
``harness.codecs`` (third-party packages).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Quality = int | float


@dataclass(frozen=True)
class Availability:
    """Whether a codec can run here, and if not, why (a sentence naming the fix)."""

    ok: bool
    reason: str = ""


class Codec(ABC):
    """A lossy image codec measured by the harness.

    Attributes:
        name: the registry name, kebab-case (``jpeg``, ``webp``, ``bpg``).
        accepted_options: the keyword arguments its constructor takes, passed from
            the command line (``checkpoint``, ``device``).
        qualities: the default quality points of a sweep, from low to high rate.
        quality_label: what a quality number means for this codec (shown to users).
        description: one line for ``harness codecs``.
        seconds_per_megapixel: the declared cost of one measurement (encode, decode,
            metrics) per megapixel on one core: it orders a run's plan (longest first)
            and its time estimate until the store has timings of the codec's own.
        holds_model: whether the codec keeps a network (or other large state) per
            quality in memory; a worker holds one such model at a time.
    """

    name: str = ""
    qualities: Sequence[Quality] = ()
    quality_label: str = "quality"
    description: str = ""
    accepted_options: tuple[str, ...] = ()  # constructor keywords, e.g. ("checkpoint",)
    seconds_per_megapixel: float = 0.5
    holds_model: bool = False

    def memory_bytes(self, quality: Quality, pixels: int) -> int:
        """Estimated peak memory of one measurement of an image of ``pixels`` pixels
        (the image, its reconstruction and the metrics' buffers: about 100 bytes a
        pixel, plus the process's own)."""
        return 64 * 2**20 + 100 * pixels

    def release_models(self) -> None:  # noqa: B027 - optional: most codecs hold nothing
        """Drop the networks (or other large state) loaded so far. Default: nothing."""

    def availability(self) -> Availability:
        """Say whether the codec can run on this machine. Default: it can."""
        return Availability(True)

    def quick_availability(self) -> Availability:
        """What ``harness codecs`` says without its ``--check``: as :meth:`availability`,
        unless a codec can answer without importing heavy libraries (learned codecs)."""
        return self.availability()

    def quality_notes(self, check: bool = False) -> list[str]:
        """Lines about single quality points for ``harness codecs`` (missing weights);
        ``check``: look as closely as using the codec would."""
        return []

    @abstractmethod
    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        """Compress ``image`` (uint8 H x W x 3 RGB) at ``quality`` into a bitstream."""

    @abstractmethod
    def decode(self, bitstream: bytes) -> np.ndarray:
        """Reconstruct a uint8 H x W x 3 RGB image from the bitstream alone."""

    @abstractmethod
    def fingerprint(self) -> str:
        """A string that changes whenever the codec's output may change.

        It keys the results cache: versions of the libraries or binaries, settings,
        checkpoint hashes. Use :func:`fingerprint_of` to build it.
        """

    def check_quality(self, quality: Quality) -> Quality:
        """Return ``quality`` if this codec accepts it; raise ValueError otherwise."""
        return quality

    def payload_size(self, bitstream: bytes) -> int:
        """Bytes of the coded payload alone, without the codec's own header.

        Learned codecs report the entropy-coded strings here (the rate CompressAI and
        papers count); for file formats the whole bitstream is the payload.
        """
        return len(bitstream)

    def prepare(self, quality: Quality) -> None:
        """Get ready to run ``quality`` here (download weights, say), in the parent process.

        Raises:
            CodecUnavailable: this quality cannot run here; the message names the fix.
        """
        return None

    def fetch(self, quality: Quality) -> None:
        """What a run does in the parent for a quality with work to do, before the
        workers start on it: get what they need (weights downloaded and verified, say)
        without loading it here. Default: :meth:`prepare`.

        Raises:
            CodecUnavailable: this quality cannot run here; the message names the fix.
        """
        self.prepare(quality)

    def warm_up(self, quality: Quality) -> None:
        """Load what ``quality`` needs before its first timed call (once per process).

        Timings exclude this: model loading, first-call allocations, starting a container.
        """
        return None


def fingerprint_of(*parts: object) -> str:
    """A short stable hash of the given parts (versions, settings)."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def integer_quality(quality: Quality, low: int, high: int, what: str) -> int:
    """``quality`` as an int if it is a whole number in [low, high]; ValueError otherwise.

    ``what`` names the quantity in the message, e.g. "webp quality" or "x265 QP".
    """
    if quality != int(quality) or not low <= quality <= high:
        raise ValueError(f"{what} must be an integer {low}..{high}, got {quality}")
    return int(quality)


def check_image(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` follows the contract (uint8, H x W x 3)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 numpy array, got {type(image).__name__}"
                         f" of {getattr(image, 'dtype', '?')}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
