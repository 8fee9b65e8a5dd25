"""Plan, execute and store a benchmark: codec x quality x image.

The parent process hashes the images (cached in the store by file size and mtime),
skips every measurement the store already holds, and hands the rest to joblib
workers. Each worker loads the image, encodes, decodes and measures; the parent
writes each result as it arrives, so an interrupted run keeps all finished work and
the next run resumes with what is missing.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness import artefacts, metrics
from harness.checkpoints import known_digests, remember_digests
from harness.codec import Codec, Quality
from harness.datasets import Dataset
from harness.errors import HarnessError, ImageLoadError
from harness.images import image_content_hash, load_image
from harness.metrics.registry import DEFAULT_SET, MetricSet, metric_entries
from harness.processes import pid_alive
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
    save: tuple[str, ...] = ()  # artefact kinds to keep (harness.artefacts)
    seconds: float = 0.0  # estimated (harness.scheduling): the plan's order and the ETA
    memory: int = 0  # estimated peak bytes: what may run side by side
    metrics: MetricSet = DEFAULT_SET  # what is measured besides PSNR and MS-SSIM
    holds_model: bool = False  # its codec keeps a network: a worker keeps to one
    device: str = "cpu"  # where its codec computes: tasks on a GPU get a worker of their own


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
                and old.file_mtime_ns == stat.st_mtime_ns
                and old.file_ctime_ns == stat.st_ctime_ns):
            record = old
        else:
            try:
                loaded = load_image(ref.path)
            except ImageLoadError as exc:
                record = ImageRecord(dataset.id, ref.image_id, str(ref.path), None, None, None,
                                     stat.st_size, stat.st_mtime_ns, None, str(exc),
                                     stat.st_ctime_ns)
            else:
                height, width = loaded.pixels.shape[:2]
                record = ImageRecord(dataset.id, ref.image_id, str(ref.path),
                                     loaded.content_hash, width, height, stat.st_size,
                                     stat.st_mtime_ns, "; ".join(loaded.warnings) or None,
                                     file_ctime_ns=stat.st_ctime_ns)
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
    store.keep_images(dataset.id, (ref.image_id for ref in dataset.images))
    return report


def plan(codecs: Sequence[tuple[CodecSpec, Codec]], qualities: dict[str, Sequence[Quality]],
         images: Sequence[PreparedImage], store: ResultsStore,
         save: tuple[str, ...] = (), metrics: MetricSet = DEFAULT_SET
         ) -> tuple[list[Task], int]:
    """Tasks not yet in the store, longest first in groups of one (codec, quality)
    (:func:`harness.scheduling.longest_first`), each with its estimated seconds and
    memory.

    ``save``: artefact kinds to keep; a stored measurement without them is made again.
    ``metrics``: a stored measurement without one of them (or with another fingerprint
    of it) is made again, with the metrics it had besides (a new decode replaces them).
    Returns the tasks and the number of measurements found in the store already.
    """
    from harness.scheduling import estimate_seconds, longest_first, measured_speeds

    tasks: list[Task] = []
    seen: set[tuple[str, float, str]] = set()
    cached = 0
    speeds = measured_speeds(store)
    fingerprints = {codec.name: codec.fingerprint() for _, codec in codecs}
    finished = {name: store.finished_keys(fp) for name, fp in fingerprints.items()}
    if save:
        finished = {name: keys & artefacts.kept_keys(store, fingerprints[name], save)
                    for name, keys in finished.items()}
    wanted = metrics.fingerprints()
    stored = {name: store.metric_fingerprints(fp) for name, fp in fingerprints.items()}
    if wanted:
        finished = {name: {k for k in keys if all(stored[name].get(k, {}).get(m) == f
                                                  for m, f in wanted.items())}
                    for name, keys in finished.items()}
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
                pixels = image.width * image.height
                had = stored[codec.name].get((float(quality), image.image_hash), {})
                tasks.append(Task(codec.name, spec, fingerprint, quality, image.path,
                                  image.image_hash, image.width, image.height, save,
                                  estimate_seconds(codec.name, codec.seconds_per_megapixel,
                                                   quality, pixels, speeds),
                                  codec.memory_bytes(quality, pixels),
                                  _with_stored(metrics, had), codec.holds_model,
                                  getattr(codec, "device", "cpu")))
    return longest_first(tasks), cached


def _with_stored(metrics: MetricSet, had: dict[str, str]) -> MetricSet:
    """``metrics`` plus the ones a row being measured again had that still run here."""
    known = metric_entries()
    more = tuple(n for n in had if n not in metrics.names and n in known)
    if more:
        try:
            extended = MetricSet(metrics.names + more, metrics.ycbcr)
            extended.check_available()
            return extended
        except HarnessError:  # a plugin gone or broken since: measured without it
            pass
    return metrics


# --- the worker side ----------------------------------------------------------------

_torch_threads: int | None = None


def _limit_torch_threads(threads: int) -> None:
    """Keep workers x threads <= cores (an oversubscribed 2-core box stalls). A worker
    kept from an earlier run of this process may get another share."""
    global _torch_threads
    if _torch_threads != threads:
        import torch

        torch.set_num_threads(threads)
        _torch_threads = threads


_held: tuple[tuple, Codec] | None = None  # ((spec, quality), codec) of the model held here


def _hold(task: Task, codec: Codec) -> tuple[int, str | None]:
    """Make the task's (codec, quality) the one model this worker process holds,
    releasing the one held before: a worker never holds two networks. Returns the
    process id and, when the task's model is new here, its name (a model load)."""
    global _held
    key = (task.spec, float(task.quality))
    if _held is not None and _held[0] == key:
        return os.getpid(), None
    if _held is not None:
        _held[1].release_models()
    _held = (key, codec)
    return os.getpid(), f"{task.codec} q={float(task.quality):g}" if codec.holds_model else None


@lru_cache(maxsize=4)
def _pixels(path: str, image_hash: str) -> np.ndarray:
    pixels = load_image(path).pixels
    if image_content_hash(pixels) != image_hash:
        raise ImageLoadError(f"{path}: the file changed while the run was going on")
    return pixels


def measure(task: Task, torch_threads: int = 1, timeout: float | None = None,
            marker: Path | None = None) -> ResultRow:
    """Encode, decode and measure one task; any failure becomes an error row.

    ``timeout`` limits the encode, decode and metrics (SIGALRM, main thread only), not
    the one-time set-up before them (imports, model loading, warm-up), which an
    interrupted import could leave broken: the set-up has its own, longer limit, which
    the parent's watchdog enforces. ``marker`` is rewritten when the set-up ends.
    A task on a GPU that runs out of the GPU's memory is measured again on the CPU, its
    row's note saying so (``device_fallback``).
    """
    row = _new_row(task)
    stage = ["loading the image"]  # how far it got: the error row says
    try:
        _limit_torch_threads(torch_threads)
        image = _pixels(task.path, task.image_hash)
        codec = task.spec.create()
        try:
            row.worker = _hold(task, codec)
            _code_and_measure(task, codec, image, row, stage, timeout, marker)
        except Exception as exc:
            if not out_of_device_memory(exc, codec):
                raise
            said = str(exc).strip().splitlines()
            reason = said[0][:200] if said else type(exc).__name__
            row = _new_row(task, note=f"{DEVICE_FALLBACK}: out of memory on {task.device}"
                           f" ({reason}); measured on the CPU")
            _on_the_cpu(task, codec, image, row, stage, timeout, marker)
    except Exception as exc:  # one bad image or codec must not end the run
        last = traceback.extract_tb(exc.__traceback__)[-1]
        row.error = (f"{stage[0]}: {type(exc).__name__}: {exc}"
                     f" ({os.path.basename(last.filename)}:{last.lineno})")
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return row


def _code_and_measure(task: Task, codec: Codec, image: np.ndarray, row: ResultRow,
                      stage: list[str], timeout: float | None, marker: Path | None) -> None:
    """Warm ``codec`` up, then encode, decode and measure ``image`` into ``row``."""
    stage[0] = "warming up"
    codec.warm_up(task.quality)
    if marker is not None:
        marker.write_text(f"{MEASURING} {task_key(task)}")  # the task limit starts now
    if timeout:
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    stage[0] = "encoding"
    start = time.perf_counter()
    bitstream = codec.encode(image, task.quality)
    row.encode_s = time.perf_counter() - start
    if not isinstance(bitstream, bytes | bytearray) or len(bitstream) == 0:
        raise ValueError(f"the encoder returned {type(bitstream).__name__} of length "
                         f"{len(bitstream) if hasattr(bitstream, '__len__') else '?'}")
    row.bytes = len(bitstream)
    row.payload_bytes = codec.payload_size(bytes(bitstream))
    row.bpp = metrics.bits_per_pixel(len(bitstream), task.height, task.width)
    stage[0] = "decoding"
    start = time.perf_counter()
    reconstruction = codec.decode(bytes(bitstream))
    row.decode_s = time.perf_counter() - start
    if (not isinstance(reconstruction, np.ndarray) or reconstruction.dtype != np.uint8
            or reconstruction.shape != image.shape):
        raise ValueError(
            f"the decoder returned {getattr(reconstruction, 'dtype', '?')} "
            f"{getattr(reconstruction, 'shape', '?')}; expected uint8 {image.shape}")
    stage[0] = "measuring"
    row.psnr = metrics.psnr(image, reconstruction)
    row.ms_ssim, note = metrics.ms_ssim(image, reconstruction)
    row.note = "; ".join(filter(None, [row.note, note])) or None
    row.ms_ssim_db = metrics.ms_ssim_db(row.ms_ssim)
    row.metrics = task.metrics.measure(image, reconstruction)
    if task.save:
        stage[0] = "keeping " + " and ".join(task.save)
        row.artefacts = artefacts.encode(task.save, bitstream, reconstruction)


DEVICE_FALLBACK = "device_fallback"  # how a row measured on the CPU instead begins its note


def out_of_device_memory(exc: BaseException, codec: Codec) -> bool:
    """Whether ``exc`` is ``codec``'s GPU (or other accelerator) running out of memory."""
    if getattr(codec, "device", "cpu") == "cpu":
        return False
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _new_row(task: Task, note: str | None = None) -> ResultRow:
    return ResultRow(task.codec, task.fingerprint, float(task.quality), task.image_hash,
                     task.width, task.height, note=note)


def _on_the_cpu(task: Task, codec: Codec, image: np.ndarray, row: ResultRow,
                stage: list[str], timeout: float | None, marker: Path | None) -> None:
    """Measure the task into ``row`` on the CPU after ``codec``'s device ran out of
    memory: the row stays the task's (same codec fingerprint); its note says where it
    was measured. The worker holds no model afterwards: the next task loads its own on
    the device again."""
    global _held
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, 0)
    codec.release_models()
    _held = None
    if marker is not None:
        marker.write_text(f"{SETTING_UP} {task_key(task)}")  # loading again: set-up
    on_cpu = create_codec(task.spec.name, **(dict(task.spec.options) | {"device": "cpu"}))
    row.worker = (os.getpid(), f"{task.codec} q={float(task.quality):g} on the CPU"
                  if on_cpu.holds_model else None)
    try:
        _code_and_measure(task, on_cpu, image, row, stage, timeout, marker)
    finally:
        on_cpu.release_models()


# --- the parent side ----------------------------------------------------------------

@dataclass
class ExecutionOutcome:
    done: int = 0
    failed: int = 0
    cached: int = 0  # measurements found in the store, not made again
    seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)  # message -> count
    interrupted: bool = False
    loads: dict[int, list[str]] = field(default_factory=dict)  # worker pid -> models loaded
    fallbacks: int = 0  # measured on the CPU after their GPU ran out of memory


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


class TaskTimeout(Exception):
    """A measurement ran longer than the per-task time limit."""


def _on_alarm(signum, frame):
    raise TaskTimeout("the measurement exceeded the per-task time limit")


SETTING_UP, MEASURING = "setup", "measure"  # the phases a task's marker names


def measure_marked(task: Task, torch_threads: int, marker_dir: str,
                   timeout: float | None, digests: dict | None = None) -> ResultRow:
    """:func:`measure` in a worker process, leaving a marker while it runs.

    The marker (named by the worker's pid, holding the phase and the task key) tells the
    parent which task a crashed or hung worker was running; the parent's watchdog kills a
    worker whose marker is older than the limit of its phase (set-up or measurement):
    native code that SIGALRM cannot stop. ``digests``: the sha256 of weights files the
    parent verified (:func:`harness.checkpoints.known_digests`), not hashed again here.
    """
    if digests:
        remember_digests(digests)
    marker = Path(marker_dir) / str(os.getpid())
    marker.write_text(f"{SETTING_UP} {task_key(task)}")
    try:
        return measure(task, torch_threads, timeout, marker)
    finally:
        marker.unlink(missing_ok=True)


def _watch_parent(parent: int) -> None:
    """End this worker soon after ``parent``, the harness, is gone (SIGKILLed, say).

    Runs first in every worker process. An orphan is adopted by another process, so its
    parent pid changes; a thread looks twice a second (also right away: the parent may
    have died while this worker was starting).
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="harness-parent-watch", daemon=True).start()


def _start_worker(parent: int) -> None:
    """Runs first in every worker process: watch the parent, and keep the worker for
    good. loky ends a worker whose memory grew 300 MB past its size after its first
    task, taking it for a leak; a worker that loads a model after its first task (a
    warm-up import, a switch to a larger network) grows so by design, and a new worker
    would import torch and load the model again."""
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = float("inf")
    _watch_parent(parent)


def task_key(task: Task) -> str:
    return measurement_key(task.fingerprint, task.quality, task.image_hash)


def measurement_key(fingerprint: str, quality: Quality, image_hash: str) -> str:
    return f"{fingerprint}|{float(quality)!r}|{image_hash}"


def failed_row(task: Task, message: str) -> ResultRow:
    row = _new_row(task)
    row.error = message
    return row


DEFAULT_SETUP_TIMEOUT = 3600.0  # seconds: a worker's set-up of a task (model load, warm-up)


def execute(tasks: Sequence[Task], store: ResultsStore, run_id: int, jobs: int,
            progress: bool = True, timeout: float | None = None, scheduler: str | None = None,
            on_result: Callable[[ResultRow], None] | None = None,
            setup_timeout: float | None = DEFAULT_SETUP_TIMEOUT,
            kept: artefacts.ArtefactFolder | None = None,
            max_memory: int | None = None) -> ExecutionOutcome:
    """Run ``tasks`` on ``jobs`` worker processes, writing each result as it arrives.

    A worker that crashes (a segfault in a codec, say), hangs past ``timeout`` while
    measuring or past ``setup_timeout`` while setting up (loading, warming up) costs
    one error row for the task it was running; the other tasks go on. Tasks that were in
    flight beside a crash are run again, one at a time, so only the culprit is blamed.
    ``scheduler`` runs the tasks on a Dask cluster instead (``tcp://HOST:PORT``, or
    ``local:N`` for a local cluster of N worker processes).
    Ctrl-C stops the run: finished results are already stored; ``interrupted`` is set.
    ``kept``: where the artefacts rows bring (``--save``) are written, before their row.
    ``max_memory``: bytes the tasks running side by side may take together, by their
    estimates (default: :func:`harness.scheduling.default_max_memory`).
    The progress bar advances by each task's estimated seconds, so its ETA weighs the
    slow tasks still to come (:mod:`harness.scheduling`).
    """
    from tqdm import tqdm

    from harness.scheduling import default_max_memory

    outcome = ExecutionOutcome()
    if not tasks:
        return outcome
    weights = {task_key(t): max(t.seconds, 1e-3) for t in tasks}
    bar = tqdm(total=sum(weights.values()), disable=not progress, dynamic_ncols=True,
               desc="measuring", bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}"
               " [{elapsed}<{remaining}]")
    bar.set_postfix_str(f"0/{len(tasks)} tasks")

    def record(row: ResultRow) -> None:
        hashes = {kind: kept.put(data, kind) for kind, data in (row.artefacts or {}).items()}
        store.put_result(row, run_id, hashes)
        row.artefacts = None  # written: no need to hold the bytes
        outcome.done += 1
        if row.error:
            outcome.failed += 1
            outcome.errors[f"{row.codec} q={row.quality:g}: {row.error}"] += 1
        if row.note and row.note.startswith(DEVICE_FALLBACK):
            outcome.fallbacks += 1
        if row.worker is not None and row.worker[1]:
            outcome.loads.setdefault(row.worker[0], []).append(row.worker[1])
        if on_result is not None:
            on_result(row)
        bar.update(weights.get(measurement_key(row.codec_fingerprint, row.quality,
                                               row.image_hash), 0))
        bar.set_postfix_str(f"{outcome.done}/{len(tasks)} tasks", refresh=False)

    try:
        if scheduler:
            from harness.cluster import execute_on_dask

            execute_on_dask(tasks, scheduler, record, bar)
        else:
            limits = {SETTING_UP: setup_timeout, MEASURING: timeout}
            _execute_local(tasks, max(1, jobs), limits, record, bar,
                           max_memory or default_max_memory())
    except KeyboardInterrupt:
        outcome.interrupted = True
    finally:
        bar.close()
    return outcome


WATCHDOG_GRACE = 10.0  # seconds past the time limit before a stuck worker is killed


@dataclass
class _Worker:
    """One worker process, in a pool of its own: the parent chooses what each runs."""

    executor: object
    model: tuple | None = None  # (codec spec, quality) of the model it holds or loads
    futures: dict = field(default_factory=dict)  # future -> task key, in submission order
    device: str = "cpu"  # the tasks it runs: the CPU's, or those of one GPU


def worker_devices(tasks: Sequence[Task], jobs: int) -> list[str]:
    """The device of each worker process a run of ``tasks`` starts: up to ``jobs`` for
    the tasks on the CPU, and one for each GPU the tasks use, so that the CPU's workers
    measure the classical codecs while the GPU's runs the learned ones."""
    on_cpu = sum(t.device == "cpu" for t in tasks)
    return (["cpu"] * max(0, min(jobs, on_cpu))
            + sorted({t.device for t in tasks} - {"cpu"}))


_pools: list = []  # one-process pools, kept for the next run of this process


def _pool(index: int, fresh: bool = False):
    """The ``index``-th one-process pool (a new one if ``fresh`` or none yet)."""
    from joblib.externals.loky import ProcessPoolExecutor

    while len(_pools) <= index:
        _pools.append(None)
    pool = _pools[index]
    if fresh or pool is None or pool._flags.broken or pool._flags.shutdown:
        if pool is not None:
            pool.shutdown(wait=False, kill_workers=True)
        _pools[index] = ProcessPoolExecutor(max_workers=1, initializer=_start_worker,
                                            initargs=(os.getpid(),))
    return _pools[index]


def stop_workers() -> None:
    """End the worker processes now. They hold no results between runs, only imports and
    networks: a command that is done need not wait a second while each unloads them."""
    for pool in filter(None, _pools):
        pool.shutdown(wait=False, kill_workers=True)
    _pools.clear()


def _import(modules: Sequence[str]) -> None:
    import importlib

    for module in modules:
        importlib.import_module(module)


def start_workers(tasks: Sequence[Task], jobs: int) -> None:
    """Start the worker processes of :func:`execute` now, each importing what the tasks
    will need (torch; compressai for learned codecs): seconds that then overlap the
    parent's own preparation instead of following it."""
    if not tasks:
        return
    modules = ["torch", "harness.runner"] + (
        ["compressai"] if any(t.holds_model for t in tasks) else [])
    for index in range(len(worker_devices(tasks, jobs))):
        _pool(index).submit(_import, modules)


def _model_of(task: Task) -> tuple | None:
    return (task.spec, float(task.quality)) if task.holds_model else None


def _next_task(queue: list[str], pending: dict[str, Task], worker: _Worker,
               workers: Sequence[_Worker], in_flight: Sequence[str],
               max_memory: int) -> str | None:
    """What ``worker`` runs next: the first task of ``queue`` on the worker's device
    whose memory estimate fits beside those in flight (with nothing in flight, the first
    whatever its estimate: it runs alone), preferring the model the worker holds, then
    tasks whose model no other worker holds; another worker's model only when nothing
    else is left and this worker is idle (the tail: a second load beats waiting)."""
    free = max_memory - sum(pending[key].memory for key in in_flight)
    fitting = [key for key in queue if pending[key].device == worker.device
               and (not in_flight or pending[key].memory <= free)]
    held = {w.model for w in workers if w is not worker and w.model is not None}
    return (next((k for k in fitting if worker.model is not None
                  and _model_of(pending[k]) == worker.model), None)
            or next((k for k in fitting if _model_of(pending[k]) not in held), None)
            or (next(iter(fitting), None) if not worker.futures else None))


def _execute_local(tasks: Sequence[Task], jobs: int, limits: dict[str, float | None],
                   record: Callable[[ResultRow], None], bar, max_memory: int) -> None:
    """``limits``: seconds per phase of a task (SETTING_UP, MEASURING); None: no limit.

    Each worker process is a pool of its own, so the parent decides which worker runs
    what: a worker keeps to one (codec, quality) model while its tasks last, and a
    crash is the task that worker was running, nobody else's. Tasks are handed out in
    the plan's order while their memory estimates fit in ``max_memory`` together. Tasks
    on a GPU go to that GPU's worker (:func:`worker_devices`), the others to the
    CPU's ``jobs`` workers, all at the same time.
    """
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    devices = worker_devices(tasks, jobs)
    on_cpu = max(1, devices.count("cpu"))
    # the CPU's cores shared by its workers; a GPU's worker mostly waits for its GPU
    threads = {"cpu": max(1, default_jobs() // on_cpu)}
    pending = {task_key(t): t for t in tasks}
    queue = list(pending)  # the plan's order
    workers = [_Worker(_pool(i), device=device) for i, device in enumerate(devices)]
    digests = known_digests()  # the weights the parent verified: the workers trust them
    blind_crashes, crash = 0, None
    with tempfile.TemporaryDirectory(prefix="harness-tasks-") as marker_dir:
        bar.set_description(f"measuring ({len(workers)} worker{'s' if len(workers) > 1 else ''}"
                            + "".join(f", 1 on {d}" for d in devices if d != "cpu") + ")")
        killed: dict[str, str] = {}  # task key -> why its worker was killed
        while queue or any(w.futures for w in workers):
            # every idle worker gets a task before any gets a second one, queued behind
            # its running one to hide the parent's latency between quick tasks
            for depth, worker in [(d, w) for d in (1, 2) for w in workers]:
                while len(worker.futures) < depth:
                    in_flight = [k for w in workers for k in w.futures.values()]
                    key = _next_task(queue, pending, worker, workers, in_flight, max_memory)
                    if key is None:
                        break
                    queue.remove(key)
                    worker.model = _model_of(pending[key]) or worker.model
                    worker.futures[worker.executor.submit(
                        measure_marked, pending[key], threads.get(worker.device, 1),
                        marker_dir, limits[MEASURING], digests)] = key
            futures = [f for w in workers for f in w.futures]
            done, _ = wait(futures, timeout=1.0, return_when=FIRST_COMPLETED)
            for index, worker in enumerate(workers):
                for future in [f for f in worker.futures if f in done]:
                    key = worker.futures.pop(future)
                    try:
                        row = future.result()
                    except BrokenProcessPool as exc:
                        worker.futures[future] = key  # back, for the crash's account
                        crash = exc
                        blind_crashes += _crashed(worker, exc, pending, queue, killed,
                                                  marker_dir, record)
                        workers[index] = _Worker(_pool(index, fresh=True),
                                                 device=worker.device)
                        break
                    record(row)
                    pending.pop(key)
            if blind_crashes >= 3:  # workers die before any task starts: nothing runs here
                for key in list(pending):
                    record(failed_row(pending.pop(key), "worker processes keep dying"
                                      f" before measuring ({crash})"))
                return
            killed.update(_kill_stuck_workers(marker_dir, limits))


def _crashed(worker: _Worker, exc: BaseException, pending: dict[str, Task],
             queue: list[str], killed: dict[str, str], marker_dir: str,
             record: Callable[[ResultRow], None]) -> int:
    """Settle the tasks of a worker that died: the one it was running gets an error
    row, the ones queued behind it go back to the front of the queue. Returns 1 when it
    died before running any task (a blind crash), else 0."""
    keys = list(worker.futures.values())
    markers = {key: pid for pid, (_, key, _) in _markers(marker_dir).items()}
    running = next((key for key in keys if key in markers), None)
    for key in keys:
        if key in markers:
            Path(marker_dir, str(markers[key])).unlink(missing_ok=True)
    if running is None and not any(key in killed for key in keys):
        queue[:0] = keys
        return 1
    running = running if running is not None else next(k for k in keys if k in killed)
    record(failed_row(pending.pop(running), killed.pop(running, None) or _death(exc)))
    queue[:0] = [key for key in keys if key != running]
    return 0


def _death(exc: BaseException) -> str:
    """The error row of a task whose worker process died under it."""
    if "SIGKILL" in str(exc):  # not the watchdog's doing (that is handled apart)
        return ("out of memory, most likely: the worker process was killed (SIGKILL) while"
                " measuring, as the kernel's out-of-memory killer does; run fewer tasks side"
                " by side (--jobs, --max-memory) or give the machine more memory")
    return f"the worker process died while measuring ({exc})"


def _markers(marker_dir: str) -> dict[int, tuple[str, str, float]]:
    """Worker pid -> (phase, task key, when the phase began)."""
    found = {}
    for path in Path(marker_dir).iterdir():
        try:
            phase, key = path.read_text().split(" ", 1)
            found[int(path.name)] = (phase, key, path.stat().st_mtime)
        except (OSError, ValueError):  # gone, or caught while being rewritten
            continue
    return found


def _kill_stuck_workers(marker_dir: str, limits: dict[str, float | None]) -> dict[str, str]:
    """Kill workers whose task outlived its phase's limit (SIGALRM could not stop it).

    Returns task key -> the error its row gets.
    """
    killed = {}
    for pid, (phase, key, started) in _markers(marker_dir).items():
        limit = limits.get(phase)
        if limit and time.time() - started > limit + WATCHDOG_GRACE and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            what = "set-up (loading, warm-up)" if phase == SETTING_UP else "measurement"
            killed[key] = f"its {what} did not finish within {limit:g} s; its worker was killed"
    return killed
