"""VMAF through Netflix's libvmaf, in the container of ``codecs/vmaf/``, the way JPEG AI's
objective-quality framework measures it: the original and the reconstruction converted
to Y'CbCr 4:4:4 code values at the internal bit depth (:mod:`harness.metrics.ycbcr`:
BT.709, 10-bit by default; 8-bit optional), written as raw planar YUV (8-bit: one byte a
sample; 10-bit: two bytes, little-endian) and scored with the ``vmaf`` tool and its
built-in model ``vmaf_v0.6.1``. One image is one frame, so the score is that frame's
(the pooled mean over one frame). JPEG AI's framework runs the same command (its
defaults: 10 bits, BT.709, the tool's default model v0.6.1) with libvmaf 2.2.1's
binary; here it is libvmaf 3.2.0 (whether the two versions give the same score was not
checked).

On one frame nothing moves (the model's motion feature is 0), so identical images score
about 97.4, not 100.

The tool runs in this process's long-lived worker container of the image (started on
first use, a few milliseconds a call after that): the two YUV files and the JSON output
go through the worker's exchange folder.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from functools import cache

import numpy as np

from harness.errors import HarnessError
from harness.metrics.registry import Pair, YCbCrMetric

RECIPE = "vmaf"
MODEL = "vmaf_v0.6.1"
VERSION_LABEL = "org.lic-harness.vmaf-version"  # set by codecs/vmaf/Dockerfile
TIMEOUT_S = 600.0
BUILD_HINT = ("needs the vmaf image, which is not built here: harness containers build vmaf"
              " (offline: add --source with a vmaf release tarball or git repository; see"
              " codecs/vmaf/Dockerfile)")

_calls = itertools.count()


class VMAFError(HarnessError):
    """The vmaf tool failed or wrote no score."""


def planar_yuv(codes: np.ndarray, bits: int) -> bytes:
    """3 x H x W code values -> raw planar 4:4:4 YUV at ``bits`` (16-bit little-endian
    samples above 8 bits, as the vmaf tool reads them)."""
    dtype = np.uint8 if bits == 8 else np.dtype("<u2")
    return np.ascontiguousarray(codes).astype(dtype).tobytes()


def pooled_score(text: str, model_name: str = "vmaf") -> float:
    """The pooled mean of the vmaf tool's JSON output (``--json``)."""
    try:
        value = json.loads(text)["pooled_metrics"][model_name]["mean"]
    except (ValueError, KeyError, TypeError) as exc:
        raise VMAFError(f"the vmaf tool's JSON output has no pooled {model_name} mean"
                        f" ({type(exc).__name__}: {exc}): {text[:200]!r}") from None
    return math.nan if value is None else float(value)


def vmaf_argv(reference: str, distorted: str, output: str, width: int, height: int,
              bits: int) -> list[str]:
    return ["vmaf", "--reference", reference, "--distorted", distorted,
            "--width", str(width), "--height", str(height), "--pixel_format", "444",
            "--bitdepth", str(bits), "--model", f"version={MODEL}", "--json",
            "--output", output, "--quiet"]


@cache
def _image() -> tuple[str, str]:
    """(tag, libvmaf version) of the vmaf image; VMAFError saying why when there is none."""
    from harness.containers import ContainerError, docker_client, find_image

    try:
        client = docker_client(timeout=30)
    except ContainerError as exc:
        raise VMAFError("needs the vmaf image and a Docker engine: "
                        + str(exc).rstrip(".")) from None
    try:
        tag = find_image(RECIPE, client)
        if tag is None:
            raise VMAFError(BUILD_HINT)
        version = client.images.get(tag).labels.get(VERSION_LABEL)
    except ContainerError as exc:
        raise VMAFError("needs the vmaf image: " + str(exc).rstrip(".")) from None
    finally:
        client.close()
    if not version:
        raise VMAFError(f"needs an image built from codecs/vmaf: {tag} has no"
                        f" {VERSION_LABEL} label (harness containers build vmaf)")
    return tag, version


class VMAF(YCbCrMetric):
    name = "vmaf"
    needs = ("docker",)  # the SDK; and the engine with the built image (unavailable())
    install = "pip install 'docker>=7.1'"
    description = (f"VMAF (libvmaf, model {MODEL}) of Y'CbCr 4:4:4 at the internal bit"
                   " depth (JPEG AI's VMAF), in the codecs/vmaf container")

    def unavailable(self) -> str | None:
        missing = super().unavailable()
        if missing:
            return missing
        try:
            _image()
        except VMAFError as exc:  # not cached: it may be built later in this process
            return str(exc)
        return None

    def settings(self) -> str:
        try:
            tool = f"libvmaf-{_image()[1]}"
        except VMAFError:
            tool = "libvmaf-unknown"  # not measurable here; listed only
        return f"{self.ycbcr.label()}/{MODEL}/{tool}"

    def measure(self, pair: Pair) -> float:
        from harness.containers import get_worker

        original, reconstruction = pair.ycbcr(self.ycbcr)
        _, height, width = original.shape
        bits = self.ycbcr.bits
        worker = get_worker(_image()[0], call_timeout=TIMEOUT_S)
        prefix = f"vmaf-{os.getpid()}-{next(_calls)}-"
        names = [prefix + suffix for suffix in ("ref.yuv", "dist.yuv", "out.json")]
        paths = [worker.host_dir / name for name in names]
        try:
            for path, codes in zip(paths, (original, reconstruction)):
                path.write_bytes(planar_yuv(codes, bits))
                path.chmod(0o644)  # readable by the container's user whatever the umask
            result = worker.run(vmaf_argv(*names, width, height, bits), TIMEOUT_S)
            if result.returncode != 0:
                raise VMAFError(f"vmaf failed with exit status {result.returncode}"
                                f"{' (timed out)' if result.timed_out else ''}:"
                                f" {result.tail() or 'no message'}")
            try:
                text = paths[2].read_text()
            except OSError:
                raise VMAFError("vmaf wrote no output file") from None
            return pooled_score(text)
        finally:
            for path in paths:
                path.unlink(missing_ok=True)
