"""The order a run's measurements go in, and how much of the machine each may take.

A mixed plan costs from milliseconds (JPEG) to a minute (VTM, Entroformer) per task, so
the order decides the wall time: the longest tasks go first (a slow task started last
leaves every other worker idle), and the tasks of one (codec, quality) stay together, so
a worker loads that model once and runs it on image after image.

Time: each task's seconds are estimated from the store's own timings of that codec
(median encode + decode seconds per megapixel at that quality, else at any quality,
plus the metrics), else from the codec's declared ``seconds_per_megapixel``. The same
estimates drive the progress bar's ETA, which a rate of finished tasks gets wrong on a
mixed plan (many quick JPEG tasks first, the slow ones still to come).

Memory: each task's peak is estimated by its codec (``Codec.memory_bytes``: a learned
codec's network from its weights file, plus feature maps per pixel); tasks run side by
side only while their estimates fit in ``--max-memory`` (default: :data:`MEMORY_SHARE`
of the machine's RAM); a task that does not fit waits, while lighter ones use the free
workers.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Sequence

METRICS_SECONDS_PER_MEGAPIXEL = 0.25  # PSNR and MS-SSIM, one core
MEMORY_SHARE = 0.7  # of the machine's RAM, the default --max-memory


def default_max_memory() -> int:
    """:data:`MEMORY_SHARE` of the machine's physical memory, in bytes."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return int(MEMORY_SHARE * total)


def parse_memory(text: str) -> int:
    """``16G``, ``512M``, ``2.5GiB`` or a number of bytes -> bytes (ValueError if not)."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(value[-1:], 1)
    number = float(value[:-1] if scale > 1 else value)
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError(text)
    return int(number * scale)


def measured_speeds(store) -> dict[tuple[str, float | None], float]:
    """Seconds per megapixel of encode + decode, from the store's rows without error:
    the median per (codec, quality) and per (codec, None)."""
    samples: dict[tuple[str, float | None], list[float]] = defaultdict(list)
    for codec, quality, seconds, pixels in store.timings():
        per_megapixel = seconds / (pixels / 1e6)
        samples[(codec, quality)].append(per_megapixel)
        samples[(codec, None)].append(per_megapixel)
    return {key: statistics.median(values) for key, values in samples.items()}


def estimate_seconds(codec_name: str, declared: float, quality: float, pixels: int,
                     speeds: dict[tuple[str, float | None], float]) -> float:
    """One task's estimated seconds (see the module's docstring)."""
    measured = speeds.get((codec_name, float(quality)), speeds.get((codec_name, None)))
    per_megapixel = (declared if measured is None
                     else measured + METRICS_SECONDS_PER_MEGAPIXEL)
    return per_megapixel * pixels / 1e6


def longest_first(tasks: Sequence) -> list:
    """``tasks`` (with ``codec``, ``quality``, ``seconds``) in groups of one (codec,
    quality), the groups with the longest tasks first, each group's largest images
    first."""
    groups: dict[tuple, list] = defaultdict(list)
    for task in tasks:
        groups[(task.codec, float(task.quality))].append(task)
    ordered = sorted(groups.values(), key=lambda group: -max(t.seconds for t in group))
    return [task for group in ordered for task in sorted(group, key=lambda t: -t.seconds)]
