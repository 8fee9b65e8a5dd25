"""Third-party codecs for the plugin and fault tests: a bit-dropping toy, and faulty ones."""

import ctypes
import os
import signal
import struct
import time

import numpy as np

from harness.codec import Codec, fingerprint_of


class ToyQuantizer(Codec):
    name = "toy-quantizer"
    description = "keeps the top `quality` bits of every sample (a test plugin)"
    qualities = (2, 4, 6)
    quality_label = "bits kept per sample"

    def encode(self, image, quality):
        shift = 8 - int(quality)
        height, width, _ = image.shape
        kept = (image >> shift).astype(np.uint8)
        return struct.pack("<IIB", height, width, shift) + kept.tobytes()

    def decode(self, bitstream):
        height, width, shift = struct.unpack("<IIB", bitstream[:9])
        kept = np.frombuffer(bitstream[9:], dtype=np.uint8).reshape(height, width, 3)
        return ((kept.astype(np.uint16) << shift) + ((1 << shift) >> 1)).astype(np.uint8)

    def fingerprint(self):
        return fingerprint_of(self.name, "0.1")


class CrashAtTwo(ToyQuantizer):
    """Crashes its process (a segfault) when asked for quality 2."""

    name = "toy-crash"

    def encode(self, image, quality):
        if int(quality) == 2:
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        return super().encode(image, quality)


class HangAtTwo(ToyQuantizer):
    """Sleeps for an hour at quality 2 (a hang the time limit interrupts)."""

    name = "toy-hang"

    def encode(self, image, quality):
        if int(quality) == 2:
            time.sleep(3600)
        return super().encode(image, quality)


class StuckAtTwo(ToyQuantizer):
    """Hangs at quality 2 with the time-limit signal blocked, as native code can."""

    name = "toy-stuck"

    def encode(self, image, quality):
        if int(quality) == 2:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        return super().encode(image, quality)


class SlowWarmUp(ToyQuantizer):
    """Takes $TOY_WARM_UP_S seconds (default 13) to warm up, once per process, as a big
    model loading can; encoding and decoding are fast."""

    name = "toy-slow-warm-up"
    _warm = False

    def warm_up(self, quality):
        if not SlowWarmUp._warm:
            time.sleep(float(os.environ.get("TOY_WARM_UP_S", "13")))
            SlowWarmUp._warm = True


# --- metrics (entry-point group harness.metrics) ----------------------------------------

from harness.metrics.registry import Metric  # noqa: E402


class MeanAbsoluteError(Metric):
    name = "toy-mae"
    higher_is_better = False
    description = "mean absolute error over RGB (a test plugin)"

    def compute(self, original, reconstruction):
        return float(np.abs(original.astype(int) - reconstruction).mean())


class NeedsMissingModule(MeanAbsoluteError):
    name = "toy-needs-missing"
    needs = ("a_module_nobody_installed",)
    install = "pip install nothing"


class NotAMetric:
    name = "toy-not-a-metric"
