"""``harness verify``: does a learned codec really decode, from its bytes alone?

Per quality, on a few images:

- the reconstruction decoded from the bytes matches the network's forward
  reconstruction (PSNR between the two at least ``tolerance_db``; identical gives inf);
- two encodes of the same image give identical bytes;
- a separate Python process, given only the bytes, decodes the same image;
- the estimated rate (likelihoods of the forward pass) against the real rate, and the
  header's share of the bytes;
- forward, encode and decode seconds.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.codecs.learned import LearnedCodec, payload_bytes
from harness.conventions import MAX_RATE_GAP
from harness.metrics import bits_per_pixel, psnr

_DECODE_ELSEWHERE = """
import json, sys, numpy as np
from harness.registry import create_codec
name, options, source, target = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
codec = create_codec(name, **options)
np.save(target, codec.decode(open(source, "rb").read()))
"""


def rate_gap_failure(check: QualityCheck, limit: float = MAX_RATE_GAP) -> str | None:
    """The rate-gap gate of ``verify`` and ``check``: the real payload rate more than
    ``limit`` percent from the estimated one, either way (None when it passes)."""
    gap = 100 * check.rate_gap
    if math.isfinite(gap) and abs(gap) > limit:
        return f"real rate {gap:+.2f} % from the estimate (limit {limit:g} %)"
    return None


@dataclass
class QualityCheck:
    quality: float
    images: int = 0
    forward_match_db: float = math.inf  # worst PSNR between decoded and forward output
    deterministic: bool = True
    fresh_process: bool = True
    real_bpp: float = 0.0
    payload_bpp: float = 0.0
    estimated_bpp: float = 0.0
    header_bytes: float = 0.0
    forward_s: float = 0.0
    encode_s: float = 0.0
    decode_s: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def rate_gap(self) -> float:
        """Real (payload) over estimated rate, minus 1."""
        return self.payload_bpp / self.estimated_bpp - 1 if self.estimated_bpp else math.nan


def verify_quality(codec: LearnedCodec, registry_name: str, options: dict, quality,
                   images: list[tuple[str, np.ndarray]], tolerance_db: float = 40.0,
                   fresh_process: bool = True, max_rate_gap: float = MAX_RATE_GAP) -> QualityCheck:
    check = QualityCheck(float(quality))
    if not images:  # passing on nothing checked would be a lie
        check.failures.append("no images to check")
        return check
    codec.model(quality)  # load once, outside the timings
    for image_id, image in images:
        start = time.perf_counter()
        forward_image, estimated = codec.forward(image, quality)
        check.forward_s += time.perf_counter() - start
        start = time.perf_counter()
        data = codec.encode(image, quality)
        check.encode_s += time.perf_counter() - start
        start = time.perf_counter()
        decoded = codec.decode(data)
        check.decode_s += time.perf_counter() - start

        height, width = image.shape[:2]
        check.images += 1
        check.real_bpp += bits_per_pixel(len(data), height, width)
        payload = payload_bytes(data)
        check.payload_bpp += bits_per_pixel(payload, height, width)
        check.header_bytes += len(data) - payload
        check.estimated_bpp += estimated

        match = psnr(forward_image, decoded)
        check.forward_match_db = min(check.forward_match_db, match)
        if match < tolerance_db:
            check.failures.append(f"{image_id}: decoded output differs from the forward"
                                  f" reconstruction ({match:.2f} dB < {tolerance_db:g} dB)")
        if codec.encode(image, quality) != data:
            check.deterministic = False
            check.failures.append(f"{image_id}: two encodes gave different bytes")
        if fresh_process:
            elsewhere = _decode_in_fresh_process(registry_name, options, data)
            if elsewhere is None or not np.array_equal(elsewhere, decoded):
                check.fresh_process = False
                check.failures.append(f"{image_id}: a fresh process decoded the bytes"
                                      " differently" if elsewhere is not None else
                                      f"{image_id}: a fresh process could not decode the bytes")
    n = max(check.images, 1)
    for name in ("real_bpp", "payload_bpp", "estimated_bpp", "header_bytes", "forward_s",
                 "encode_s", "decode_s"):
        setattr(check, name, getattr(check, name) / n)
    gap = rate_gap_failure(check, max_rate_gap)
    if gap:
        check.failures.append(gap)
    return check


def _decode_in_fresh_process(name: str, options: dict, data: bytes) -> np.ndarray | None:
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "stream.bin", Path(tmp) / "decoded.npy"
        source.write_bytes(data)
        done = subprocess.run([sys.executable, "-c", _DECODE_ELSEWHERE, name, json.dumps(options),
                               str(source), str(target)], capture_output=True, text=True)
        if done.returncode != 0 or not target.is_file():
            sys.stderr.write(done.stderr[-2000:])
            return None
        return np.load(target)


def format_checks(checks: list[QualityCheck]) -> str:
    header = ("quality  images  verdict  fwd-match dB  same bytes  fresh proc  bpp real"
              "  bpp payload  bpp est  gap %  header B  fwd s  enc s  dec s")
    lines = [header, "-" * len(header)]
    for c in checks:
        lines.append(
            f"{c.quality:7g}  {c.images:6d}  {'ok' if c.ok else 'FAILED':7s}"
            f"  {c.forward_match_db:12.2f}  {str(c.deterministic):10s}  {str(c.fresh_process):10s}"
            f"  {c.real_bpp:8.4f}  {c.payload_bpp:11.4f}  {c.estimated_bpp:7.4f}"
            f"  {100 * c.rate_gap:5.2f}  {c.header_bytes:8.1f}  {c.forward_s:5.2f}"
            f"  {c.encode_s:5.2f}  {c.decode_s:5.2f}")
    for c in checks:
        lines.extend(f"FAILED q={c.quality:g}: {f}" for f in c.failures)
    return "\n".join(lines)


# --- the thread matrix (``harness verify --cross``) -------------------------------------------

# The decoder records every symbol that CompressAI's rANS decoder returns (all learned
# codecs entropy-decode through it), so the matrix compares the entropy-decoded latents
# themselves, not only the images the synthesis transform makes of them.
_CROSS_WORKER = """
import hashlib, json, sys, numpy as np, torch
setting, name, options, quality, phase = (sys.argv[1], sys.argv[2], json.loads(sys.argv[3]),
                                          float(sys.argv[4]), sys.argv[5])
torch.set_num_threads(1 if setting == "cuda" else int(setting))
import compressai.ans
symbols = hashlib.sha256()

class RecordingDecoder(compressai.ans.RansDecoder):
    def decode_with_indexes(self, *args):
        out = super().decode_with_indexes(*args)
        symbols.update(json.dumps(out).encode())
        return out

    def decode_stream(self, *args):
        out = super().decode_stream(*args)
        symbols.update(json.dumps(out).encode())
        return out

compressai.ans.RansDecoder = RecordingDecoder
from harness.registry import create_codec
codec = create_codec(name, **options)
if phase == "encode":
    source, target = sys.argv[6:8]
    open(target, "wb").write(codec.encode(np.load(source), quality))
else:
    for source in sys.argv[6:]:
        symbols = hashlib.sha256()
        np.save(source + f".dec{setting}.npy", codec.decode(open(source, "rb").read()))
        open(source + f".sym{setting}", "w").write(symbols.hexdigest())
"""


@dataclass
class CrossMatrix:
    """Bytes from encoders at each setting, decoded at each setting: a CPU thread count,
    or ``"cuda"`` (the GPU, where there is one).

    ``max_error[(e, d)]``: the largest pixel difference between the image decoded with
    ``d`` threads from the bytes of the ``e``-thread encoder and the one decoded with
    ``e`` threads (the encoder's own setting); None where the decoder failed.
    ``latents[(e, d)]``: a digest of every symbol that decoder's rANS decoder returned
    (the entropy-decoded latents); None where the decoder failed.
    """
    threads: list  # settings: thread counts (int) and "cuda"
    same_bytes: bool = True
    max_error: dict[tuple[int, int], int | None] = field(default_factory=dict)
    latents: dict[tuple[int, int], str | None] = field(default_factory=dict)

    def latents_differ(self) -> list[tuple[int, int]]:
        """The (encoder, decoder) pairs whose latents are not the encoder's own setting's."""
        return [(e, d) for (e, d), digest in self.latents.items()
                if digest is None or digest != self.latents[(e, e)]]

    def worst(self) -> int | None:
        """The largest error of the matrix (None when a decode failed)."""
        errors = list(self.max_error.values())
        return None if None in errors else max(errors, default=0)

    def as_document(self) -> dict:
        """The matrix as plain JSON for the store (``diagnostics``, kind ``portability``)."""
        import platform

        import torch

        return {"threads": self.threads, "same_bytes": self.same_bytes,
                "max_error": [[e, d, err] for (e, d), err in self.max_error.items()],
                "latents_differ": [list(pair) for pair in self.latents_differ()],
                "gpu": torch.cuda.get_device_name() if "cuda" in self.threads else None,
                "machine": platform.machine(), "cpus": os.cpu_count(),
                "torch": torch.__version__}


def _run_worker(setting, name: str, options: dict, quality, phase: str, *paths: str) -> bool:
    """Run the encoder or decoders in a fresh process on the CPU with ``setting`` threads,
    or on the GPU (``"cuda"``)."""
    options = options | {"device": "cuda" if setting == "cuda" else "cpu"}
    done = subprocess.run([sys.executable, "-c", _CROSS_WORKER, str(setting), name,
                           json.dumps(options), str(float(quality)), phase, *paths],
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-2000:])
    return done.returncode == 0


def cross_matrix(name: str, options: dict, quality, image: np.ndarray,
                 threads: list[int]) -> CrossMatrix:
    """Encode ``image`` in a fresh process per setting (thread count, or ``"cuda"``), then
    decode every stream in a fresh process per setting (torch.set_num_threads in each)."""
    matrix = CrossMatrix(list(threads))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "image.npy"
        np.save(source, image)
        streams = {t: Path(tmp) / f"enc{t}.bin" for t in threads}
        for t, stream in streams.items():
            if not _run_worker(t, name, options, quality, "encode", str(source), str(stream)):
                raise RuntimeError(f"{name} could not encode at setting {t}")
        written = {stream.read_bytes() for stream in streams.values()}
        matrix.same_bytes = len(written) == 1
        for d in threads:
            _run_worker(d, name, options, quality, "decode", *map(str, streams.values()))

        def decoded(e: int, d: int):
            path = Path(f"{streams[e]}.dec{d}.npy")
            return np.load(path).astype(np.int16) if path.is_file() else None

        def latents(e: int, d: int) -> str | None:
            path = Path(f"{streams[e]}.sym{d}")
            return path.read_text() if path.is_file() else None

        for e in threads:
            own = decoded(e, e)
            for d in threads:
                other = decoded(e, d)
                matrix.max_error[(e, d)] = (None if own is None or other is None else
                                            int(np.abs(other - own).max()))
                matrix.latents[(e, d)] = latents(e, d)
    return matrix


def format_cross(name: str, matrix: CrossMatrix) -> str:
    """The matrix as a table: one row per encoder, one column per decoder."""
    lines = [f"{name}: bytes {'identical' if matrix.same_bytes else 'DIFFERENT'} across"
             f" encoders at {', '.join(map(str, matrix.threads))} (threads, or GPU);"
             " max pixel error against the decode at the encoder's thread count:",
             "enc \\ dec  " + "".join(f"{d!s:>8}" for d in matrix.threads)]
    for e in matrix.threads:
        cells = ("failed" if matrix.max_error[(e, d)] is None else str(matrix.max_error[(e, d)])
                 for d in matrix.threads)
        lines.append(f"{e!s:>9}  " + "".join(f"{c:>8s}" for c in cells))
    differ = [f"{e}->{d}" for e, d in matrix.latents_differ()]
    lines.append("entropy-decoded latents: " + (f"DIFFERENT ({', '.join(differ)})" if differ
                                                 else "identical across decoders"))
    return "\n".join(lines)


#: the largest pixel error a portable bitstream may show across the matrix: the synthesis
#: transform's rounding (a float differing in the last bit may round a pixel the other way)
PORTABLE_MAX_ERROR = 1


def default_threads() -> list:
    """1, 2 and all of the machine's threads, and "cuda" where PyTorch sees a GPU."""
    import torch

    gpu = ["cuda"] if torch.cuda.is_available() else []  # the CPU-GPU column (untested here)
    return sorted({1, 2, os.cpu_count() or 1}) + gpu


def portable_failures(name: str, matrix: CrossMatrix) -> list[str]:
    """Why the matrix is not portable (nothing when it is)."""
    worst = matrix.worst()
    if worst is None:
        return [f"{name}: a decoder failed on bytes written at another thread count or"
                " device"]
    if matrix.latents_differ():
        return [f"{name}: the entropy decoder returned other latents on bytes written at"
                " another thread count or device"]
    if worst > PORTABLE_MAX_ERROR:
        return [f"{name}: decoded images differ by up to {worst} levels across thread"
                f" counts or devices (at most {PORTABLE_MAX_ERROR} allowed)"]
    return []
