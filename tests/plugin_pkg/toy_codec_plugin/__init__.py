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


class ToyModel(ToyQuantizer):
    """Holds a "model" per quality, as a learned codec holds a network: its loads, and
    each task's start and end, are logged to $TOY_LOG (pid, event, quality, time); it
    says its memory is $TOY_MODEL_BYTES and each measurement takes $TOY_TASK_S seconds.
    Holding two models at once is an error."""

    name = "toy-model"
    holds_model = True

    def __init__(self):
        self._models = set()

    def _log(self, event, quality):
        with open(os.environ["TOY_LOG"], "a") as log:
            log.write(f"{os.getpid()} {event} {float(quality):g} {time.time():.6f}\n")

    def warm_up(self, quality):
        if float(quality) not in self._models:
            self._models.add(float(quality))
            self._log("load", quality)

    def release_models(self):
        self._models.clear()

    def memory_bytes(self, quality, pixels):
        return int(os.environ.get("TOY_MODEL_BYTES", 2**20))

    def encode(self, image, quality):
        if len(self._models) > 1:
            raise RuntimeError(f"holding {len(self._models)} models at once")
        self._log("start", quality)
        time.sleep(float(os.environ.get("TOY_TASK_S", "0")))
        data = super().encode(image, quality)
        self._log("end", quality)
        return data


class ToyDeviceModel(ToyModel):
    """A ToyModel that takes a ``device`` option as learned codecs do (``--device
    cuda``) but computes on the CPU whatever it is told, so that the runner's GPU
    workers are tested on any machine. Its log lines end with the device. At quality 2
    on any device but the CPU, it runs out of that device's memory: for real where
    PyTorch sees a GPU (it asks for a PiB), else by raising what PyTorch would. With
    $TOY_CPU_FAILS set, quality 2 also fails on the CPU."""

    name = "toy-device-model"
    accepted_options = ("device",)

    def __init__(self, device=None):
        super().__init__()
        self.device = device or "cpu"

    def fingerprint(self):
        return fingerprint_of(self.name, "0.1", self.device)

    def _log(self, event, quality):
        with open(os.environ["TOY_LOG"], "a") as log:
            log.write(f"{os.getpid()} {event} {float(quality):g} {time.time():.6f}"
                      f" {self.device}\n")

    def encode(self, image, quality):
        if int(quality) == 2 and self.device != "cpu":
            import torch

            if torch.cuda.is_available():
                torch.empty(2**50, dtype=torch.uint8, device=self.device)
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 20.00 GiB (a test plugin on"
                f" {self.device})")
        if int(quality) == 2 and os.environ.get("TOY_CPU_FAILS"):
            raise ValueError("the CPU cannot either (a test plugin)")
        return super().encode(image, quality)


class OutOfMemoryAtTwo(ToyQuantizer):
    """At quality 2, allocates 4 GiB past a 512 MiB address-space limit it sets on its
    own process: the allocation fails as it would on a full machine."""

    name = "toy-oom"

    def encode(self, image, quality):
        if int(quality) == 2:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            with open("/proc/self/statm") as statm:
                mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            resource.setrlimit(resource.RLIMIT_AS, (mapped + 2**29, hard))
            try:
                np.ones(2**32, dtype=np.uint8)
            finally:
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        return super().encode(image, quality)


class KilledAtTwo(ToyQuantizer):
    """At quality 2, its process receives SIGKILL, as from the kernel's OOM killer."""

    name = "toy-oom-killed"

    def encode(self, image, quality):
        if int(quality) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encode(image, quality)


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
