"""Plan, execute and store a benchmark: codec x quality x image.

The parent process hashes the images (cached in the store by file size and mtime),
skips every measurement the store already holds, and hands the rest to joblib
workers. Each worker loads the image, encodes, decodes and measures; the parent
writes each result as it arrives, so an interrupted run keeps all finished work and
the next run resumes with what is missing.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from harness import metrics
from harness.codec import Codec, Quality
from harness.datasets import Dataset
from harness.errors import ImageLoadError
from harness.images import image_content_hash, load_image
from harness.registry import create_codec
from harness.store import ImageRecord, ResultRow, ResultsStore


@dataclass(frozen=True)
class PreparedImage:
    """A dataset image whose pixels were hashed (the key of its measurements)."""

    dataset: str
    image_id: str
    path: str
    image_hash: str
    width: int
    height: int


@dataclass(frozen=True)
class CodecSpec:
    """How a worker builds a codec: its registry name and constructor options."""

    name: str
    options: tuple = ()

    def create(self) -> Codec:
        return create_codec(self.name, **dict(self.options))


@dataclass(frozen=True)
class Task:
    """One measurement to make: a codec at a quality on an image."""

    codec: str  # the name results are stored under
    spec: CodecSpec
    fingerprint: str
    quality: Quality
    path: str
    image_hash: str
    width: int
    height: int


@dataclass
class ImagesReport:
    images: list[PreparedImage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # "dataset/image: what was converted"
    errors: list[str] = field(default_factory=list)  # "dataset/image: why it was skipped"


def prepare_images(dataset: Dataset, store: ResultsStore) -> ImagesReport:
    """Hash each image of ``dataset``; unchanged files reuse the hash the store has.

    A file that cannot be read becomes an entry in ``errors`` (and in the store's
    ``images`` table); the other images go on.
    """
    known = store.known_images(dataset.id)
    report, records = ImagesReport(), []
    for ref in dataset.images:
        label = f"{dataset.id}/{ref.image_id}"
        try:
            stat = os.stat(ref.path)
        except OSError as exc:
            report.errors.append(f"{label}: cannot read the file ({exc.strerror})")
            continue
        old = known.get(ref.image_id)
        if (old is not None and old.image_hash and old.error is None
                and old.path == str(ref.path) and old.file_size == stat.st_size
                and old.file_mtime_ns == stat.st_mtime_ns):
            record = old
        else:
            try:
                loaded = load_image(ref.path)
            except ImageLoadError as exc:
                record = ImageRecord(dataset.id, ref.image_id, str(ref.path), None, None, None,
                                     stat.st_size, stat.st_mtime_ns, None, str(exc))
            else:
                height, width = loaded.pixels.shape[:2]
                record = ImageRecord(dataset.id, ref.image_id, str(ref.path),
                                     loaded.content_hash, width, height, stat.st_size,
                                     stat.st_mtime_ns, "; ".join(loaded.warnings) or None)
            records.append(record)
        if record.error:
            report.errors.append(f"{label}: {record.error}")
            continue
        if record.warning:
            report.warnings.append(f"{label}: {record.warning}")
        report.images.append(PreparedImage(dataset.id, ref.image_id, str(ref.path),
                                           record.image_hash, record.width, record.height))
    if records:
        store.put_images(records)
    return report


def plan(codecs: Sequence[tuple[CodecSpec, Codec]], qualities: dict[str, Sequence[Quality]],
         images: Sequence[PreparedImage], store: ResultsStore) -> tuple[list[Task], int]:
    """Tasks not yet in the store, image-major (a worker reuses a loaded image).

    Returns the tasks and the number of measurements found in the store already.
    """
    tasks: list[Task] = []
    seen: set[tuple[str, float, str]] = set()
    cached = 0
    fingerprints = {codec.name: codec.fingerprint() for _, codec in codecs}
    finished = {name: store.finished_keys(fp) for name, fp in fingerprints.items()}
    for image in images:
        for spec, codec in codecs:
            fingerprint = fingerprints[codec.name]
            for quality in qualities[codec.name]:
                key = (fingerprint, float(quality), image.image_hash)
                if key in seen:  # the same pixels in two datasets: measured once
                    continue
                seen.add(key)
                if (float(quality), image.image_hash) in finished[codec.name]:
                    cached += 1
                    continue
                tasks.append(Task(codec.name, spec, fingerprint, quality, image.path,
                                  image.image_hash, image.width, image.height))
    return tasks, cached


# --- the worker side ----------------------------------------------------------------

_torch_threads_set = False


def _limit_torch_threads(threads: int) -> None:
    """Keep workers x threads <= cores (an oversubscribed 2-core box stalls)."""
    global _torch_threads_set
    if not _torch_threads_set:
        import torch

        torch.set_num_threads(threads)
        _torch_threads_set = True


@lru_cache(maxsize=4)
def _pixels(path: str, image_hash: str) -> np.ndarray:
    pixels = load_image(path).pixels
    if image_content_hash(pixels) != image_hash:
        raise ImageLoadError(f"{path}: the file changed while the run was going on")
    return pixels


def measure(task: Task, torch_threads: int = 1) -> ResultRow:
    """Encode, decode and measure one task; any failure becomes an error row."""
    row = ResultRow(task.codec, task.fingerprint, float(task.quality), task.image_hash,
                    task.width, task.height)
    stage = "loading the image"
    try:
        _limit_torch_threads(torch_threads)
        image = _pixels(task.path, task.image_hash)
        codec = task.spec.create()
        stage = "warming up"
        codec.warm_up(task.quality)
        stage = "encoding"
        start = time.perf_counter()
        bitstream = codec.encode(image, task.quality)
        row.encode_s = time.perf_counter() - start
        if not isinstance(bitstream, bytes | bytearray) or len(bitstream) == 0:
            raise ValueError(f"the encoder returned {type(bitstream).__name__} of length "
                             f"{len(bitstream) if hasattr(bitstream, '__len__') else '?'}")
        row.bytes = len(bitstream)
        row.payload_bytes = codec.payload_size(bytes(bitstream))
        row.bpp = metrics.bits_per_pixel(len(bitstream), task.height, task.width)
        stage = "decoding"
        start = time.perf_counter()
        reconstruction = codec.decode(bytes(bitstream))
        row.decode_s = time.perf_counter() - start
        if (not isinstance(reconstruction, np.ndarray) or reconstruction.dtype != np.uint8
                or reconstruction.shape != image.shape):
            raise ValueError(
                f"the decoder returned {getattr(reconstruction, 'dtype', '?')} "
                f"{getattr(reconstruction, 'shape', '?')}; expected uint8 {image.shape}")
        stage = "measuring"
        row.psnr = metrics.psnr(image, reconstruction)
        row.ms_ssim, row.note = metrics.ms_ssim(image, reconstruction)
        row.ms_ssim_db = metrics.ms_ssim_db(row.ms_ssim)
    except Exception as exc:  # one bad image or codec must not end the run
        last = traceback.extract_tb(exc.__traceback__)[-1]
        row.error = (f"{stage}: {type(exc).__name__}: {exc}"
                     f" ({os.path.basename(last.filename)}:{last.lineno})")
    return row


# --- the parent side ----------------------------------------------------------------

@dataclass
class ExecutionOutcome:
    done: int = 0
    failed: int = 0
    cached: int = 0  # measurements found in the store, not made again
    seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)  # message -> count
    interrupted: bool = False


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def execute(tasks: Sequence[Task], store: ResultsStore, run_id: int, jobs: int,
            progress: bool = True,
            on_result: Callable[[ResultRow], None] | None = None) -> ExecutionOutcome:
    """Run ``tasks`` on ``jobs`` workers, writing each result as it arrives.

    Ctrl-C stops the run: finished results are already stored; ``interrupted`` is set.
    """
    from joblib import Parallel, delayed
    from tqdm import tqdm

    outcome = ExecutionOutcome()
    if not tasks:
        return outcome
    jobs = max(1, min(jobs, len(tasks)))
    torch_threads = max(1, default_jobs() // jobs)
    results: Iterable[ResultRow] = Parallel(n_jobs=jobs, return_as="generator_unordered")(
        delayed(measure)(task, torch_threads) for task in tasks)
    bar = tqdm(total=len(tasks), disable=not progress, unit="task", dynamic_ncols=True,
               desc=f"measuring ({jobs} job{'s' if jobs > 1 else ''})")
    try:
        for row in results:
            store.put_result(row, run_id)
            outcome.done += 1
            if row.error:
                outcome.failed += 1
                outcome.errors[f"{row.codec} q={row.quality:g}: {row.error}"] += 1
            if on_result is not None:
                on_result(row)
            bar.update()
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        bar.close()
    return outcome
