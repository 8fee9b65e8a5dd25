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
