"""The Python API: what the command line does, as functions a notebook can call.

``harness.load_results``, ``harness.benchmark``, ``harness.curves``, ``harness.bd_table``,
``harness.report`` and ``harness.check`` are the functions of this module; the command
line (``harness.cli``) parses arguments, calls them and prints. Only the standard
library is imported here at module level, so ``import harness`` and ``harness --help``
stay fast; each function imports what it needs.

Notes and warnings met on the way (an image skipped, a codec unavailable) are printed
to stderr as the command line prints them; errors in the arguments or the input are
raised as :class:`harness.errors.UsageError` (a :class:`harness.errors.HarnessError`).
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import __version__
from harness.conventions import MAX_RATE_GAP
from harness.errors import CodecUnavailable, HarnessError, UsageError

DEFAULT_STORE = Path("reports") / "results.sqlite"
DEFAULT_CODECS = ("jpeg", "webp", "jpeg2000")
REPORT_FOLDER = "report"  # a run's report goes beside its store, in this folder
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".tar", ".ckpt", ".bin")


def say(message: str) -> None:
    """A note, warning or progress line for the person at the keyboard (stderr)."""
    print(message, file=sys.stderr)


def default_report(store) -> Path:
    """The report folder of a store when none is named: beside the store."""
    return Path(store).parent / REPORT_FOLDER


def require_store(path) -> None:
    """Refuse a store path with no file: reading never creates an empty store."""
    if not Path(path).is_file():
        raise UsageError(f"no results store at {path}; run `harness run` first or pass --store")


# --- reading results -------------------------------------------------------------------

def load_results(store=DEFAULT_STORE, datasets: Sequence[str] | None = None,
                 codecs: Sequence[str] | None = None, per_image: bool = True,
                 aggregate: str | None = None):
    """The measurements of a results store as a pandas DataFrame.

    Args:
        store: the SQLite results file (``harness run --store``). A missing file is an
            error (:class:`UsageError`); the store is opened read-only and never changed.
        datasets: only these datasets (names, aliases or folders as ``run`` takes them).
        codecs: only these codec names.
        per_image: True: one row per image, codec and quality (failed measurements
            included, with their ``error``); False: one row per dataset, codec and
            quality, the means over images (see :func:`harness.aggregate.summarize`).
        aggregate: how MS-SSIM dB is averaged when ``per_image`` is False
            (default ``mean-linear``).
    """
    import pandas as pd

    from harness.aggregate import DEFAULT_AGGREGATE, summarize
    from harness.store import ResultsStore

    require_store(store)
    with ResultsStore(store, readonly=True) as opened:
        rows = opened.rows(datasets=_dataset_ids(datasets), codecs=codecs)
    if not per_image:
        return summarize(rows, aggregate or DEFAULT_AGGREGATE)
    return pd.DataFrame(rows)


def _dataset_ids(datasets: Sequence[str] | None) -> list[str] | None:
    from harness.datasets import dataset_id

    return [dataset_id(d) for d in datasets] if datasets else None


# --- measuring ---------------------------------------------------------------------------

@dataclass
class RunResult:
    """What :func:`run` did: the rows of its codecs, the problems met, the report."""

    rows: list[dict]
    problems: list[str]
    measured: int
    reused: int
    seconds: float
    interrupted: bool
    datasets: list = field(default_factory=list)
    codecs: list = field(default_factory=list)
    report: Path | None = None
    loads: dict[int, list[str]] = field(default_factory=dict)  # worker pid -> models loaded
    # measurements made on the CPU after their GPU ran out of memory (note: device_fallback)
    fallbacks: int = 0


def resolve_datasets(specs: Sequence[str], data_dir=None, follow_symlinks: bool = False):
    """The datasets named by ``specs`` (names, aliases or folders), with their notes said."""
    from harness.datasets import resolve_dataset

    data_dir = Path(data_dir) if data_dir else None
    datasets = [resolve_dataset(spec, data_dir, follow_symlinks=follow_symlinks)
                for spec in specs]
    for dataset in datasets:
        for note in dataset.notes:
            say(f"note: {dataset.id}: {note}")
    return datasets


def prepare_codecs(names: Sequence[str], qualities=None, checkpoint=None, device=None,
                   lenient: bool = False, load: bool = True):
    """The codecs asked for, each with its quality points ready to run here.

    Returns ``[(spec, codec)]``, ``{name: qualities}`` and the problems met (an
    unavailable codec or quality is left out, with the reason). ``load=False`` skips
    each quality's :meth:`~harness.codec.Codec.prepare` (fetching and loading weights):
    :func:`measure` then fetches only the qualities with work to do
    (:meth:`~harness.codec.Codec.fetch`) and the workers load them.
    """
    from harness.runner import CodecSpec

    names = list(dict.fromkeys(names))
    if checkpoint and len(names) != 1:
        raise UsageError("--checkpoint needs exactly one codec in --codecs (its architecture)")
    codecs, ready_qualities, problems = [], {}, []
    for name in names:
        spec = CodecSpec(name)
        codec = spec.create()
        options = {"checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
                   "device": device, "lenient": True if lenient else None}
        options = {k: v for k, v in options.items() if v is not None}
        refused = set(options) - set(codec.accepted_options)
        if "checkpoint" in refused:
            raise UsageError(f"codec {name} takes no --checkpoint (it is not a learned codec,"
                             " or it is a model of your own, whose files are registered)")
        if "lenient" in refused:
            raise UsageError(f"codec {name} takes no --lenient (only codecs whose official"
                             " loader was lenient do)")
        options = {k: v for k, v in options.items() if k not in refused}
        if options:
            spec = CodecSpec(name, tuple(sorted(options.items())))
            codec = spec.create()
        available = codec.availability()
        if not available.ok:
            problems.append(f"codec {codec.name} skipped: {available.reason}")
            continue
        wanted = qualities or ([1] if checkpoint else list(codec.qualities))
        if checkpoint and len(wanted) != 1:
            raise UsageError("--checkpoint is one rate point: give at most one --qualities value")
        ready = []
        for quality in wanted:
            try:
                quality = codec.check_quality(quality)
            except ValueError as exc:
                raise UsageError(f"--qualities: {exc}") from exc
            try:
                if load:
                    codec.prepare(quality)
            except HarnessError as exc:
                problems.append(f"{codec.name} q={quality:g} skipped: {exc}")
                continue
            ready.append(quality)
        if ready:
            codecs.append((spec, codec))
            ready_qualities[codec.name] = ready
    return codecs, ready_qualities, problems


def measure(store_path, datasets, codecs, qualities, problems: list[str], *,
            command: str = "run", jobs: int | None = None, progress: bool = False,
            timeout: float | None = None, setup_timeout: float | None = None,
            scheduler: str | None = None, save: tuple[str, ...] = (),
            max_memory: int | None = None, metrics=None):
    """Measure what the store lacks; return the runner's outcome and the rows of these codecs.

    Unreadable images and failed measurements are appended to ``problems``. ``save``:
    the artefact kinds to keep beside the store (see :mod:`harness.artefacts`).
    ``max_memory``: bytes the measurements running side by side may take together (by
    their estimates; see :mod:`harness.scheduling`).
    ``metrics``: a :class:`harness.metrics.registry.MetricSet` (default: PSNR and
    MS-SSIM on RGB only).
    """
    from harness import artefacts, runner
    from harness.store import ResultsStore

    if jobs is not None and jobs < 1:
        raise UsageError("--jobs must be at least 1")
    jobs = jobs or runner.default_jobs()
    metrics = metrics or runner.DEFAULT_SET
    with ResultsStore(store_path) as store:
        config = {"command": command, "datasets": [d.id for d in datasets],
                  "codecs": [c.name for _, c in codecs], "qualities": qualities, "jobs": jobs,
                  "options": {c.name: dict(spec.options) for spec, c in codecs if spec.options},
                  "metrics": metrics.fingerprints()}
        run_id = store.start_run(config, _versions([c for _, c in codecs]))
        images = []
        for dataset in datasets:
            report = runner.prepare_images(dataset, store)
            images.extend(report.images)
            for warning in report.warnings:
                say(f"warning: {warning}")
            problems.extend(f"image skipped: {error}" for error in report.errors)

        tasks, cached = runner.plan(codecs, qualities, images, store, save, metrics)
        if not scheduler:
            runner.start_workers(tasks, jobs)
        tasks = _prepared(tasks, problems)
        say(f"{len(images)} images x {len(codecs)} codecs: {len(tasks)} measurements to make,"
            f" {cached} already in {store.path}")
        started = time.perf_counter()
        outcome = runner.execute(tasks, store, run_id, jobs, progress=progress, timeout=timeout,
                                 setup_timeout=setup_timeout or runner.DEFAULT_SETUP_TIMEOUT,
                                 scheduler=scheduler, max_memory=max_memory,
                                 kept=artefacts.ArtefactFolder(artefacts.folder_for(store.path)))
        outcome.seconds, outcome.cached = time.perf_counter() - started, cached
        status = ("interrupted" if outcome.interrupted
                  else "failed" if outcome.failed else "done")
        store.end_run(run_id, status)
        cleaned = artefacts.clean_store(store, run_id)
        if cleaned.removed or cleaned.temporary:
            say(f"removed {cleaned.removed} saved files no result points to"
                f" ({cleaned.bytes / 1e6:.1f} MB) and {cleaned.temporary} unfinished ones")
        rows = store.rows(datasets=[d.id for d in datasets], codecs=[c.name for _, c in codecs],
                          fingerprints=[c.fingerprint() for _, c in codecs])
    problems.extend(f"{count} x {message}" for message, count in outcome.errors.most_common())
    return outcome, rows


def _prepared(tasks: list, problems: list[str]) -> list:
    """``tasks`` of the (codec, quality) pairs that are ready to run: each pair with work
    to do is fetched once here, before any worker (:meth:`~harness.codec.Codec.fetch`:
    weights downloaded and checked against their manifest; a missing or changed file
    stops its pair here, with the reason in ``problems``)."""
    refused = set()
    for spec, quality, name in dict.fromkeys((t.spec, float(t.quality), t.codec)
                                             for t in tasks):
        try:
            spec.create().fetch(quality)
        except HarnessError as exc:
            problems.append(f"{name} q={quality:g} skipped: {exc}")
            refused.add((spec, quality))
    return [t for t in tasks if (t.spec, float(t.quality)) not in refused]


def _versions(codecs) -> dict:
    import numpy
    import PIL

    return {"harness": __version__, "numpy": numpy.__version__, "pillow": PIL.__version__,
            "codecs": {c.name: c.fingerprint() for c in codecs}}


def run(datasets: Sequence[str] = ("sample",), codecs: Sequence[str] = DEFAULT_CODECS,
        qualities: Sequence[float] | None = None, store=DEFAULT_STORE, jobs: int | None = None,
        *, data_dir=None, follow_symlinks: bool = False, checkpoint=None, device=None,
        lenient: bool = False, timeout: float = 3600, setup_timeout: float | None = None,
        scheduler: str | None = None, progress: bool = False,
        report: str | Path | bool = True, save: str | Sequence[str] | None = None,
        max_memory: int | str | None = None, metrics: Sequence[str] = (),
        ycbcr_matrix: str = "bt709", ycbcr_bits: int = 10) -> RunResult:
    """``harness run``: measure, store, and render the report of the whole store; see
    :func:`benchmark`.

    ``report``: the report folder, True for the folder beside the store, False for none.
    ``save``: ``recon`` and / or ``bitstreams`` (a list or a comma list): keep the decoded
    images (PNG) and / or the bitstreams in the folder beside the store
    (``results.artefacts``, see :mod:`harness.artefacts`); the report's gallery shows
    the decoded images.
    ``max_memory``: bytes (or ``16G``, ``512M``) the measurements running side by side
    may take together; default :func:`harness.scheduling.default_max_memory`.
    ``metrics``: metric names or groups (``jpeg-ai``) measured besides PSNR and MS-SSIM
    on RGB (``harness metrics`` lists them); a stored row without one is measured again.
    ``ycbcr_matrix`` (bt709, bt601, bt2020) and ``ycbcr_bits`` (10, 8): how the Y'CbCr
    metrics convert (:mod:`harness.metrics.ycbcr`).
    Everything that can be refused (the scheduler address, the report folder) is refused
    before anything is measured.
    """
    from harness.artefacts import parse_save

    save = parse_save(save)
    if isinstance(max_memory, str):
        from harness.scheduling import parse_memory

        try:
            max_memory = parse_memory(max_memory)
        except ValueError:
            raise UsageError(f"--max-memory {max_memory!r}: give a size such as 16G, 512M"
                             " or a number of bytes") from None
    if max_memory is not None and max_memory <= 0:
        raise UsageError("--max-memory must be positive")
    metric_set = metric_selection(metrics, ycbcr_matrix, ycbcr_bits)
    if scheduler:
        from harness.cluster import parse_scheduler

        parse_scheduler(scheduler)
    if report is True:
        report = default_report(store)
    if report:
        from harness.report import check_report_folder

        check_report_folder(report, store)  # before measuring, not after
    datasets = resolve_datasets(datasets, data_dir, follow_symlinks)
    ready, ready_qualities, problems = prepare_codecs(codecs, qualities, checkpoint, device,
                                                      lenient, load=False)
    outcome, rows = measure(store, datasets, ready, ready_qualities, problems, jobs=jobs,
                            progress=progress, timeout=timeout, setup_timeout=setup_timeout,
                            scheduler=scheduler, save=save, max_memory=max_memory,
                            metrics=metric_set)
    result = RunResult(rows, problems, outcome.done, outcome.cached, outcome.seconds,
                       outcome.interrupted, datasets, [c for _, c in ready],
                       loads=outcome.loads, fallbacks=outcome.fallbacks)
    if rows and report and not outcome.interrupted:
        from harness.processes import deferred_interrupts

        with deferred_interrupts():  # importing the plotting libraries included
            from harness.report import build_report
        # the report of the whole store: a run adds to it, nothing measured before vanishes
        result.report = build_report(store, report)
    return result


def metric_selection(names: Sequence[str] = (), ycbcr_matrix: str = "bt709",
                     ycbcr_bits: int = 10):
    """The :class:`~harness.metrics.registry.MetricSet` of ``names`` (groups expanded),
    refused before anything is measured when a name is unknown or cannot run here."""
    from harness.metrics.registry import MetricSet, expand
    from harness.metrics.ycbcr import YCbCrSettings

    try:
        settings = YCbCrSettings(ycbcr_matrix, int(ycbcr_bits))
    except ValueError as exc:
        raise UsageError(f"--ycbcr-matrix / --ycbcr-bits: {exc}") from None
    selected = MetricSet(expand(names), settings)
    selected.check_available()
    return selected


@dataclass
class MetricsAdded:
    """What ``harness metrics add`` did: rows given the metrics, counted by where their
    decoded image came from (``recon``: the kept reconstruction; ``bitstream``: the kept
    bitstream decoded again; ``re-encoded``: encoded and decoded anew), rows that had
    them already, rows with neither file kept that were not re-encoded, and rows that
    could not be measured, with why."""

    added: Counter = field(default_factory=Counter)  # source -> rows
    had: int = 0
    to_reencode: list[str] = field(default_factory=list)  # "codec q=Q dataset/image"
    failed: list[str] = field(default_factory=list)  # "codec q=Q dataset/image: why"
    metrics: tuple[str, ...] = ()


def add_metrics(names: Sequence[str], store=DEFAULT_STORE, ycbcr_matrix: str = "bt709",
                ycbcr_bits: int = 10, reencode: bool = False) -> MetricsAdded:
    """``harness metrics add``: compute registry metrics for rows already in the store.

    Each row's decoded image is, by preference, its reconstruction kept with ``--save
    recon``, or its bitstream kept with ``--save bitstreams`` decoded again by the codec
    the row names (refused when that codec is not available here or its fingerprint
    differs from the row's: another version might decode otherwise), or, with
    ``reencode``, the image encoded and decoded anew by that codec (refused when the new
    bitstream's size differs from the row's: then it is not the row's bitstream). Rows
    with neither file are listed in ``to_reencode`` otherwise. The result rows themselves
    are never rewritten.
    """
    from harness.artefacts import ArtefactFolder, folder_for
    from harness.images import image_content_hash, load_image
    from harness.store import ResultsStore

    selection = metric_selection(names, ycbcr_matrix, ycbcr_bits)
    wanted = selection.fingerprints()
    if not wanted:
        raise UsageError("psnr-rgb and ms-ssim-rgb are in every row already; name a metric"
                         " of the metrics table (`harness metrics` lists them), e.g. psnr-y")
    if not Path(store).is_file():
        raise UsageError(f"no results store at {store}; run `harness run` first or pass --store")
    outcome = MetricsAdded(metrics=tuple(wanted))
    codecs: dict[str, object] = {}
    with ResultsStore(store) as db:
        folder, kept = ArtefactFolder(folder_for(db.path)), db.artefacts()
        stored: dict[str, dict] = {}
        images: dict[str, dict] = {}
        seen: set[tuple] = set()
        for row in db.rows():
            key = (row["codec_fingerprint"], float(row["quality"]), row["image_hash"])
            if row["error"] or key in seen:
                continue
            seen.add(key)
            if key[0] not in stored:
                stored[key[0]] = db.metric_fingerprints(key[0])
            if all(stored[key[0]].get(key[1:], {}).get(m) == f for m, f in wanted.items()):
                outcome.had += 1
                continue
            label = f"{row['codec']} q={row['quality']:g} {row['dataset']}/{row['image_id']}"
            files = {kind: sha for kind, sha in kept.get(key, {}).items()
                     if folder.has(sha, kind)}
            if not files and not reencode:
                outcome.to_reencode.append(label)
                continue
            if row["dataset"] not in images:
                images[row["dataset"]] = db.known_images(row["dataset"])
            original = load_image(images[row["dataset"]][row["image_id"]].path).pixels
            if image_content_hash(original) != key[2]:
                outcome.failed.append(f"{label}: the image file changed since it was measured")
                continue
            try:
                source, decoded = _decoded_again(row, files, folder, original, codecs)
            except (HarnessError, ValueError) as exc:
                outcome.failed.append(f"{label}: {exc}")
                continue
            db.put_metrics(key, selection.measure(original, decoded))
            outcome.added[source] += 1
    return outcome


def _decoded_again(row: dict, files: dict[str, str], folder, original, codecs: dict):
    """(source, decoded image) of a stored row: its kept reconstruction, its kept bitstream
    decoded again, or the original encoded and decoded anew (``metrics add``)."""
    from harness.images import load_image

    if "recon" in files:
        return "recon", load_image(folder.path(files["recon"], "recon")).pixels
    codec = _codec_of(row, codecs)
    if "bitstream" in files:
        source, bitstream = "bitstream", folder.path(files["bitstream"], "bitstream").read_bytes()
    else:
        source, bitstream = "re-encoded", codec.encode(original, row["quality"])
        if len(bitstream) != row["bytes"]:
            raise ValueError(f"encoding again gave {len(bitstream)} bytes, the row has"
                             f" {row['bytes']}: not the row's bitstream, so not measured")
    try:
        decoded = codec.decode(bytes(bitstream))
    except Exception as exc:  # a codec's own failure, reported for this row only
        raise ValueError(f"{codec.name} could not decode it: {type(exc).__name__}: {exc}"
                         ) from exc
    if getattr(decoded, "shape", None) != original.shape:
        raise ValueError(f"{codec.name} decoded {getattr(decoded, 'shape', '?')}, the image"
                         f" is {original.shape}")
    return source, decoded


def _codec_of(row: dict, codecs: dict):
    """The codec that made ``row``, as it is here; refused when it is unavailable or its
    fingerprint is not the row's."""
    from harness.registry import create_codec

    name = row["codec"]
    if name not in codecs:
        try:
            codec = create_codec(name)
            available = codec.availability()
            codecs[name] = codec if available.ok else CodecUnavailable(
                f"codec {name} is not available here ({available.reason})")
        except HarnessError as exc:
            codecs[name] = exc
    codec = codecs[name]
    if isinstance(codec, HarnessError):
        raise codec
    if codec.fingerprint() != row["codec_fingerprint"]:
        raise CodecUnavailable(
            f"codec {name} here has fingerprint {codec.fingerprint()}, the row"
            f" {row['codec_fingerprint']}: another version or setting, which may decode"
            " differently; run it again with `harness run`")
    return codec


def benchmark(datasets: Sequence[str] = ("sample",), codecs: Sequence[str] = DEFAULT_CODECS,
              qualities: Sequence[float] | None = None, store=DEFAULT_STORE,
              jobs: int | None = None, metrics: Sequence[str] | None = None, **options):
    """Measure codecs on datasets and return the rows measured or reused, one per image.

    What the store already holds (same codec fingerprint, quality and image pixels) is
    reused, not measured again; each new measurement is committed as it arrives, so an
    interrupted call loses nothing finished, and calling again measures what is missing.

    Args:
        datasets: dataset names (``kodak``, ``clic``, ``sample`` ...) or image folders.
        codecs: codec names, see ``harness codecs``.
        qualities: quality points for every codec (default: each codec's own sweep).
        store: the SQLite results file; created if missing.
        jobs: parallel workers (default: all cores).
        metrics: the metric columns to return besides the keys (``bpp``, ``psnr``,
            ``ms_ssim``, ``ms_ssim_db``, ``encode_s`` ...); default all. Names of the
            metric registry (``psnr-y``, ``vif``) or its groups (``jpeg-ai``) are also
            measured (``harness run --metrics``); the results-table ones always are.
        options: the other options of ``harness run``, as keywords: ``data_dir``,
            ``follow_symlinks``, ``checkpoint``, ``device``, ``lenient``, ``timeout``,
            ``setup_timeout``, ``scheduler``, ``progress``, ``save``, ``max_memory``.

    Returns:
        A pandas DataFrame of the rows of these codecs and datasets. Problems met (an
        unavailable codec, a skipped image, failed measurements) are issued as
        :class:`harness.errors.HarnessWarning`; failed rows carry their ``error``.

    Raises:
        UsageError: bad arguments or input, before anything is measured.
        KeyboardInterrupt: interrupted; finished measurements are stored.
    """
    import warnings

    import pandas as pd

    from harness.errors import HarnessWarning
    from harness.metrics.registry import GROUPS, create_metric, metric_entries

    registry = [m for m in metrics or () if m in metric_entries() or m in GROUPS]
    result = run(datasets, codecs, qualities, store, jobs, report=False, metrics=registry,
                 **options)
    for problem in result.problems:
        warnings.warn(problem, HarnessWarning, stacklevel=2)
    if result.interrupted:
        raise KeyboardInterrupt("finished measurements are stored; call again to resume")
    frame = pd.DataFrame(result.rows)
    if metrics is not None:
        metrics = [create_metric(n).column or n if n in metric_entries() else n
                   for m in metrics for n in GROUPS.get(m, (m,))]  # psnr-rgb -> psnr
        unknown = [m for m in metrics if m not in frame.columns]
        if unknown and not frame.empty:
            raise UsageError(f"unknown metric column(s) {', '.join(unknown)}; the rows have"
                             f" {', '.join(frame.columns)}")
        keys = ["dataset", "image_id", "codec", "quality", "error"]
        frame = frame[[c for c in frame.columns if c in keys or c in metrics]]
    return frame


# --- curves and BD -------------------------------------------------------------------------

def curves(store=DEFAULT_STORE, datasets: Sequence[str] | None = None,
           codecs: Sequence[str] | None = None, files: Sequence[str] = (),
           published: Sequence[str] | None = None, aggregate: str | None = None,
           rate: str | None = None) -> list:
    """RD curves from the store (measured and imported), results files and published names.

    Args:
        store: the results store; a missing store is an error (the default path may
            be missing: then the curves come from ``files`` and ``published`` alone).
        datasets: only these datasets (names, aliases or folders as ``run`` takes them).
        codecs: only these measured codecs.
        files: CompressAI-style results JSON, each ``[DATASET=]FILE``.
        published: published curve names (``vtm``, ``bpg`` ...) on the datasets in play.
        aggregate, rate: the conventions of the measured curves (default: mean-linear,
            payload).

    Returns:
        A list of :class:`harness.curves.Curve` (``.name``, ``.dataset``, ``.rd(metric)``),
        each label unique per dataset.
    """
    from harness.aggregate import DEFAULT_AGGREGATE, DEFAULT_RATE
    from harness.curves import imported_curves, measured_curves, published_curves, unique_labels
    from harness.store import ResultsStore

    datasets = _dataset_ids(datasets)
    aggregate, rate = aggregate or DEFAULT_AGGREGATE, rate or DEFAULT_RATE
    found = []
    if Path(store).is_file():
        with ResultsStore(store, readonly=True) as opened:
            found += measured_curves(opened, datasets=datasets, codecs=codecs,
                                     aggregate=aggregate, rate=rate)
            found += imported_curves(opened, want_rate=rate)
    elif Path(store) != DEFAULT_STORE:
        require_store(store)
    found += file_curves(files, rate)
    in_play = datasets or list(dict.fromkeys(c.dataset for c in found))
    if published:
        found += published_curves(in_play, published)
    if datasets:
        missing = [d for d in datasets if not any(c.dataset == d for c in found)]
        if missing and found:
            from harness.errors import did_you_mean

            known = {c.dataset for c in found}
            message = (f"no curve on {', '.join(missing)}.{did_you_mean(missing[0], known)}"
                       f" Datasets with curves: {', '.join(sorted(known))}")
            if len(missing) == len(datasets):
                raise UsageError(message)  # none of the datasets asked for: nothing to do
            say(f"warning: {message}")
        found = [c for c in found if c.dataset in datasets]
    return unique_labels(found)


def file_curves(items, rate: str | None = None) -> list:
    """Curves of ``[DATASET=]FILE`` arguments (dataset: the prefix, the file's meta, or its
    folder's name)."""
    from harness.curves import curve_from_file

    found = []
    for item in items or ():
        dataset, _, path = item.rpartition("=")
        found.append(curve_from_file(path, dataset or None, want_rate=rate))
    return found


def bd_table(curves: Sequence | None = None, anchor: str | None = None,
             metrics: Sequence[str] = ("psnr", "ms-ssim"), method: str = "pchip", *,
             mixed_conventions: bool = False, min_overlap: float | None = None,
             min_spacing: float | None = None, ci: bool = False, resamples: int = 1000,
             seed: int = 0, **curve_options):
    """BD-rate (%) and BD quality (dB) of every curve against an anchor, per dataset.

    Args:
        curves: the curves to compare (from :func:`curves`); default: ``curves(**curve_options)``.
        anchor: the anchor curve's label (e.g. ``vtm@published``, ``jpeg``); default per
            dataset: VTM, else BPG, else JPEG.
        metrics: ``psnr`` and / or ``ms-ssim`` (MS-SSIM in dB).
        method: the interpolation, ``pchip``, ``akima`` or ``cubic``.
        mixed_conventions: allow curves made by different aggregate / rate rules.
        min_overlap, min_spacing: the BD guards (default: :mod:`harness.bd`'s).
        ci: add a bootstrap 95 % interval over images of each BD-rate (``ci_low``,
            ``ci_high``, ``ci_reason``; measured curves only, see
            :mod:`harness.uncertainty`), from ``resamples`` resamples seeded with ``seed``.

    Returns:
        A DataFrame, one row per dataset, metric and codec: ``bd_rate``, ``bd_quality``,
        ``points``, ``reason`` (why a value is NaN) and ``warning``; its
        ``attrs["conventions"]`` says how the curves were made (``attrs["ci"]`` how the
        intervals were).
    """
    from harness import bd
    from harness.curves import bd_table as compute
    from harness.curves import check_conventions, require_anchor

    if curves is None:
        from harness.api import curves as find_curves  # the argument hides the function

        curves = find_curves(**curve_options)
    elif curve_options:
        raise UsageError(f"give curves or the options to find them ({', '.join(curve_options)}),"
                         " not both")
    if not curves:
        raise UsageError("no curves to compare: run `harness run` first, or pass --files or"
                         " --published")
    require_anchor(anchor, curves)
    conventions = check_conventions(curves, mixed_conventions)
    guards = dict(min_overlap=bd.MIN_OVERLAP if min_overlap is None else min_overlap,
                  min_spacing=bd.MIN_RATE_SPACING if min_spacing is None else min_spacing)
    table = compute(curves, anchor=anchor, metrics=metrics, method=method, **guards)
    table.attrs["conventions"] = conventions
    if ci:
        from harness.uncertainty import add_intervals

        if resamples < 1 or seed < 0:
            raise UsageError("--resamples must be at least 1 and --seed at least 0")
        table = add_intervals(table, curves, method, resamples, seed, **guards)
    return table


# --- report ----------------------------------------------------------------------------------

def report(store=DEFAULT_STORE, out=None, *, datasets: Sequence[str] | None = None,
           codecs: Sequence[str] | None = None, anchor: str | None = None,
           method: str = "pchip", published: Sequence[str] | bool = True,
           files: Sequence[str] = (), title: str = "Benchmark report",
           aggregate: str | None = None, rate: str | None = None,
           mixed_conventions: bool = False, min_overlap: float | None = None,
           min_spacing: float | None = None, gallery_images: Sequence[str] = (),
           gallery_bpp: float = 0.5, gallery_crop: int = 256, log_rate: bool = False) -> Path:
    """Render the report of a store: RD plots, tables and one ``index.html``.

    Args:
        store: the results store (must exist; opened read-only).
        out: the report folder (default: ``report`` beside the store); a previous
            harness report there is replaced once the new one is complete.
        datasets, codecs: only these datasets / measured codecs.
        anchor, method: the BD anchor and interpolation (see :func:`bd_table`).
        published: True: the published curves of the report's datasets; a list of names:
            those; False: none.
        files: more curves from CompressAI-style results JSON (``[DATASET=]FILE``).
        title: the page title.
        aggregate, rate, mixed_conventions, min_overlap, min_spacing: as :func:`bd_table`.
        gallery_images, gallery_bpp, gallery_crop: the gallery of kept reconstructions
            (``run --save recon``): these images (``IMAGE`` or ``DATASET/IMAGE``; default
            the first two of each dataset), each codec at its quality nearest this bpp,
            crops of this side.
        log_rate: a logarithmic bpp axis in the plot files, and in the page's interactive
            plots when it opens.

    Returns:
        The report folder; open ``index.html`` in it.
    """
    from harness.aggregate import DEFAULT_AGGREGATE, DEFAULT_RATE
    from harness.processes import deferred_interrupts

    with deferred_interrupts():  # importing the plotting libraries included
        from harness.report import build_report
        from harness.report.gallery import GalleryOptions
    gallery = GalleryOptions(tuple(gallery_images or ()), gallery_bpp, gallery_crop)
    aggregate, rate = aggregate or DEFAULT_AGGREGATE, rate or DEFAULT_RATE
    return build_report(store, out or default_report(store), datasets=_dataset_ids(datasets),
                        codecs=codecs, anchor=anchor, method=method,
                        include_published=published, extra_curves=file_curves(files, rate),
                        title=title, aggregate=aggregate, rate=rate,
                        mixed_conventions=mixed_conventions, min_overlap=min_overlap,
                        min_spacing=min_spacing, gallery=gallery, log_rate=log_rate)


# --- check -------------------------------------------------------------------------------------

def check(codec: str, checkpoints: Sequence[str], baseline: Sequence[str] | str, *,
          datasets: Sequence[str] = ("sample",), store=DEFAULT_STORE, data_dir=None,
          jobs: int | None = None, device: str | None = None, lenient: bool = False,
          metric: str = "psnr", method: str = "pchip", max_bd_rate: float = 0.5,
          max_psnr_drop: float = 0.05, max_rate_increase: float = 1.0,
          forward_tolerance_db: float = 40.0, max_rate_gap: float = MAX_RATE_GAP,
          image_psnr: float = 0.1, image_bpp: float = 2.0, gate_images: int = 2,
          gate_crop: int = 256, golden=None, write_golden=None, portable: bool = False,
          aggregate: str | None = None, rate: str | None = None,
          mixed_conventions: bool = False, progress: bool = False):
    """Regression-check new checkpoints of a learned codec against a baseline.

    The correctness gates (strict load, decode == forward, determinism, rate gap, finite
    values, optional golden bitstreams, optional ``portable`` thread matrix) run on
    ``gate_images`` images of the first dataset; then the new checkpoint(s) are
    measured (reusing the store) and compared with the baseline: BD-rate for a set, PSNR
    and rate differences for one point.

    Args:
        codec: the architecture of the checkpoints (``mbt2018``, ``stf`` ...).
        checkpoints: the new checkpoint file(s), one per rate point.
        baseline: ``NAME@published``, a CompressAI results JSON, a codec measured in the
            store, or checkpoint file(s).
        The other arguments are the options of ``harness check`` (thresholds in % or dB).
        ``metric``: ``psnr``, ``ms-ssim`` or a registry metric; one where lower is better
        (``nlpd``, ``lpips`` ...) is compared negated, so every quality difference in
        the report reads "higher is better".

    Returns:
        A :class:`harness.check.CheckReport`: ``.verdict``, ``.gates``, ``.comparisons``,
        ``.exit_code``; ``harness.check.to_text / to_json / to_markdown / to_junit``
        format it.

    Raises:
        UsageError: bad arguments, missing files, no baseline curve, before any gate.
        KeyboardInterrupt: interrupted while measuring; finished measurements are stored.
    """
    from harness import check as _check
    from harness.aggregate import DEFAULT_AGGREGATE, DEFAULT_RATE, convention_text
    from harness.checkpoints import CheckpointError, CheckpointMismatch
    from harness.images import load_image
    from harness.runner import CodecSpec
    from harness.verify import rate_gap_failure, verify_quality

    baseline = [baseline] if isinstance(baseline, str | Path) else list(baseline)
    checkpoints = [str(p) for p in checkpoints]
    aggregate, rate = aggregate or DEFAULT_AGGREGATE, rate or DEFAULT_RATE
    # everything that can be refused is refused here, before any gate or measurement
    tol = _check.Tolerances(max_bd_rate, max_psnr_drop, max_rate_increase,
                            forward_tolerance_db, max_rate_gap, image_psnr, image_bpp)
    _check_thresholds(tol, gate_images, gate_crop)
    from harness.curves import METRICS, metric_column, oriented

    metric_column(metric)  # an unknown metric is refused here
    metric_set = metric_selection([] if metric in METRICS else [metric])
    for path in checkpoints:
        if not Path(path).is_file():
            raise UsageError(f"checkpoint {path} does not exist")
    baseline_ckpts = [b for b in baseline if str(b).endswith(CHECKPOINT_SUFFIXES)]
    if baseline_ckpts and len(baseline_ckpts) != len(baseline):
        raise UsageError("--baseline is either checkpoint files or one curve, not both")
    if len(baseline) > 1 and not baseline_ckpts:
        raise UsageError("--baseline takes one curve (NAME@published, a results JSON or a"
                         " codec in the store) or several checkpoint files")
    for path in baseline_ckpts:
        if not Path(path).is_file():
            raise UsageError(f"baseline checkpoint {path} does not exist")
    datasets = resolve_datasets(datasets, data_dir)
    baselines = {} if baseline_ckpts else _baseline_curves(
        str(baseline[0]), datasets, store, aggregate, rate, mixed_conventions)
    label = ", ".join(Path(p).name for p in checkpoints)
    report = _check.CheckReport(f"{codec} [{label}]", " ".join(map(str, baseline)), method)

    # the correctness gates, on a few images of the first dataset
    gate_pixels = [(ref.image_id, load_image(ref.path).pixels[:gate_crop, :gate_crop])
                   for ref in datasets[0].images[:gate_images]]
    new_codecs, failures = [], {}

    def spec_of(path: str):
        options = {"checkpoint": str(Path(path).resolve())}
        if device:
            options["device"] = device
        if lenient:
            options["lenient"] = True
        return CodecSpec(codec, tuple(sorted(options.items())))

    for path in checkpoints:
        spec = spec_of(path)
        new = spec.create()
        if "checkpoint" not in new.accepted_options:
            raise UsageError(f"harness check compares checkpoints; {codec} takes none")
        try:
            new.prepare(1)
        except CheckpointMismatch as exc:
            failures.setdefault("loads-strictly", []).append(str(exc))
            continue
        except CheckpointError as exc:
            raise UsageError(f"checkpoint {path} cannot be used: {exc}") from exc
        new_codecs.append((spec, new))
        result = verify_quality(new, spec.name, dict(spec.options), 1, gate_pixels,
                                tol.forward_match_db, max_rate_gap=tol.max_rate_gap)
        name = Path(path).name
        if result.forward_match_db < tol.forward_match_db:
            failures.setdefault("decodes-to-forward", []).append(
                f"{name}: {result.forward_match_db:.2f} dB < {tol.forward_match_db:g} dB")
        if not (result.deterministic and result.fresh_process):
            failures.setdefault("deterministic", []).append(
                f"{name}: same bytes {result.deterministic}, fresh process {result.fresh_process}")
        gap = rate_gap_failure(result, tol.max_rate_gap)
        if not all(math.isfinite(v) for v in (result.real_bpp, result.estimated_bpp,
                                              result.rate_gap)):
            failures.setdefault("finite", []).append(f"{name}: NaN or inf in rates")
        elif gap:
            failures.setdefault("rate-gap", []).append(f"{name}: {gap}")
    for gate in ("loads-strictly", "decodes-to-forward", "deterministic", "rate-gap", "finite"):
        problems = failures.get(gate)
        report.gates.append(_check.Gate(gate, not problems, "; ".join(problems or [
            f"{len(checkpoints)} checkpoint(s) on {len(gate_pixels)} image(s)"])))
    if golden or write_golden:
        if len(new_codecs) != 1:
            raise UsageError("--golden and --write-golden take exactly one checkpoint")
        first = new_codecs[0][1]
        if write_golden:
            _check.write_golden(first, gate_pixels, 1, Path(write_golden))
            say(f"golden bitstreams written to {write_golden}")
        if golden:
            report.gates.append(_check.check_golden(first, Path(golden)))
    if portable:
        report.gates.append(_check.portable_gate(new_codecs, gate_pixels[0][1]))

    if report.verdict == _check.FAILED_GATE:
        report.gates.append(_check.Gate("rd", False, "not compared: a correctness gate failed"))
        return report

    # the RD comparison
    qualities = {c.name: [1] for _, c in new_codecs}
    base_codecs = []
    for path in baseline_ckpts:
        spec = spec_of(path)
        base = spec.create()
        try:
            base.prepare(1)
        except CheckpointError as exc:
            raise UsageError(f"baseline checkpoint {path} cannot be used: {exc}") from exc
        base_codecs.append((spec, base))
        qualities[base.name] = [1]
    problems: list[str] = []
    outcome, rows = measure(store, datasets, new_codecs + base_codecs, qualities, problems,
                            command="check", jobs=jobs, progress=progress,
                            metrics=metric_set)
    for problem in problems:
        say(f"error: {problem}")
    if outcome.interrupted:
        raise KeyboardInterrupt("finished measurements are stored")
    # codecs are told apart by fingerprint: two files may share a name
    new_names = {c.fingerprint() for _, c in new_codecs}
    base_names = {c.fingerprint() for _, c in base_codecs}
    for dataset in datasets:
        in_set = [r for r in rows if r["dataset"] == dataset.id]
        new_curve = _points(in_set, new_names, metric, aggregate, rate)
        if baseline_ckpts:
            base_curve = _points(in_set, base_names, metric, aggregate, rate)
        else:
            base_curve = baselines[dataset.id].rd(metric)
        # a metric where lower is better enters negated: the gates read "higher is better"
        new_curve, base_curve = oriented(metric, new_curve), oriented(metric, base_curve)
        if len(new_curve[0]) == 0:
            raise UsageError(f"no successful measurement of the new checkpoint(s) on"
                             f" {dataset.id}")
        if len(new_curve[0]) == 1 and len(base_curve[0]) == 1:
            comparison = _check.compare_points(
                dataset.id, (new_curve[0][0], new_curve[1][0]),
                (base_curve[0][0], base_curve[1][0]), tol)
        elif len(new_curve[0]) == 1:
            comparison = _check.compare_point_to_curve(
                dataset.id, (new_curve[0][0], new_curve[1][0]), base_curve, tol, method)
        else:
            comparison = _check.compare_curve(dataset.id, new_curve, base_curve, tol, method)
        if len(new_names) == 1 and len(base_names) == 1:
            comparison.moved_images = _check.moved_images(
                [r for r in in_set if r["codec_fingerprint"] in new_names],
                [r for r in in_set if r["codec_fingerprint"] in base_names], tol)
        report.comparisons.append(comparison)
    report.conventions = convention_text(aggregate, rate)
    verdicts = [f"{c.dataset}: {c.verdict} ({c.numbers.get('reason', '')})"
                for c in report.comparisons]
    report.gates.append(_check.Gate("rd", all(c.verdict == _check.PASS
                                              for c in report.comparisons), "; ".join(verdicts)))
    return report


_THRESHOLD_FLAGS = {"max_bd_rate": "--max-bd-rate", "max_psnr_drop": "--max-psnr-drop",
                    "max_rate_increase": "--max-rate-increase",
                    "forward_match_db": "--forward-tolerance-db",
                    "max_rate_gap": "--max-rate-gap", "image_psnr": "--image-psnr",
                    "image_bpp": "--image-bpp"}


def _check_thresholds(tol, gate_images: int, gate_crop: int) -> None:
    """Thresholds that no result could meet or fail (NaN, negative tolerances) are refused."""
    for name, flag in _THRESHOLD_FLAGS.items():
        value = getattr(tol, name)
        if math.isnan(value):
            raise UsageError(f"{flag} is NaN: every comparison with it would pass")
        if value < 0 and name in ("max_rate_gap", "image_psnr", "image_bpp"):
            raise UsageError(f"{flag} is a tolerance on a size of change: give a value >= 0")
    if gate_images < 1 or gate_crop < 1:
        raise UsageError("--gate-images and --gate-crop must be at least 1 (the gates need"
                         " an image to check)")


def _baseline_curves(spec: str, datasets, store_path, aggregate: str, rate: str,
                     mixed_conventions: bool) -> dict:
    """The baseline curve ``spec`` on each dataset, found before anything is measured.

    Raises:
        UsageError: the file, store or curve is missing on a dataset, with what exists.
    """
    from harness.curves import curve_from_file, measured_curves, published_curve, published_names
    from harness.store import ResultsStore

    found = {}
    for dataset in datasets:
        if spec.endswith("@published"):
            curve = published_curve(spec, dataset.id)
            known = ", ".join(f"{n}@published" for n in published_names(dataset.id))
            where = f"published curves on {dataset.id}: {known or 'none'}"
        elif spec.endswith(".json"):
            curve = curve_from_file(spec, dataset.id, want_rate=rate)  # unreadable: refused here
            where = ""
        else:
            if not Path(store_path).is_file():
                raise UsageError(f"--baseline {spec}: no results store at {store_path} to"
                                 " find it in (measure it there first, or pass --store)")
            with ResultsStore(store_path, readonly=True) as store:
                measured = measured_curves(store, datasets=[dataset.id], aggregate=aggregate,
                                           rate=rate)
            curve = next((c for c in measured if c.name == spec), None)
            where = (f"codecs measured on {dataset.id} in {store_path}:"
                     f" {', '.join(c.name for c in measured) or 'none'}")
        if curve is None:
            raise UsageError(f"no baseline curve {spec!r} on {dataset.id} ({where}): name a"
                             " published curve (vtm@published), a results JSON, a codec"
                             " measured in the store, or checkpoint files")
        if curve.convention != (aggregate, rate) and not mixed_conventions:
            raise UsageError(
                f"the baseline {spec} was made with aggregation {curve.aggregate} and rate"
                f" {curve.rate}, the new checkpoints are measured with {aggregate} and"
                f" {rate}: comparing them would measure the rules, not the checkpoints."
                " Pass the baseline's --aggregate / --rate, or --mixed-conventions")
        found[dataset.id] = curve
    return found


def _points(rows: list[dict], fingerprints: set[str], metric: str, aggregate: str, rate: str):
    """(bpp, quality) of each codec's mean over images, sorted by rate."""
    import numpy as np

    from harness.aggregate import RATE_COLUMN, summarize
    from harness.curves import metric_column

    summary = summarize([r for r in rows if r["codec_fingerprint"] in fingerprints], aggregate)
    summary = summary[summary["images"] > 0].sort_values(RATE_COLUMN[rate])
    column = metric_column(metric)
    if column not in summary:  # measured before the metric was asked for: no points
        return np.array([]), np.array([])
    return summary[RATE_COLUMN[rate]].to_numpy(), summary[column].to_numpy()


# --- verify --------------------------------------------------------------------------------

@dataclass
class Verification:
    """What :func:`verify` found: one check per quality, the thread matrices
    (``(quality, matrix)``, with ``cross``) and the problems of preparing the codec."""

    checks: list = field(default_factory=list)
    matrices: list = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks) and not self.problems


def verify(codec: str, *, dataset: str = "sample", images: int = 1, crop: int | None = None,
           qualities=None, checkpoint: str | None = None, device: str | None = None,
           lenient: bool = False, tolerance_db: float = 40.0,
           max_rate_gap: float = MAX_RATE_GAP, cross: bool = False, store=None,
           progress=None) -> Verification:
    """Check that a learned codec decodes from its bytes alone, per quality: decoded ==
    forward output, the same bytes twice, a fresh process decodes them alike, the real
    rate near the estimate. ``cross``: also the thread matrix (bytes written at 1, 2 and
    all threads, each decoded at each), recorded in ``store`` when given (the report
    shows it). ``progress`` receives a line per quality."""
    from harness.codecs.learned import LearnedCodec
    from harness.datasets import resolve_dataset
    from harness.images import image_content_hash, load_image
    from harness.verify import cross_matrix, default_threads, portable_failures, verify_quality

    if images < 1 or (crop is not None and crop < 1):
        raise UsageError("--images and --crop must be at least 1 (nothing would be verified)")
    result = Verification()
    codecs, ready, result.problems = prepare_codecs([codec], qualities, checkpoint, device,
                                                    lenient)
    if not codecs:  # the codec or its checkpoint cannot be used at all
        raise UsageError("; ".join(result.problems) or f"{codec} cannot be used here")
    ((spec, learned),) = codecs
    if not isinstance(learned, LearnedCodec):
        raise UsageError(f"harness verify checks learned codecs; {codec} is not one")
    pixels = [(ref.image_id, load_image(ref.path).pixels)
              for ref in resolve_dataset(dataset).images[:images]]
    if crop:
        pixels = [(i, p[:crop, :crop]) for i, p in pixels]
    for quality in ready[learned.name]:
        check = verify_quality(learned, spec.name, dict(spec.options), quality, pixels,
                               tolerance_db, max_rate_gap=max_rate_gap)
        result.checks.append(check)
        if progress:
            progress(f"q={quality:g}: {'ok' if check.ok else 'FAILED'}")
        if cross:  # the thread matrix on the first image
            matrix = cross_matrix(spec.name, dict(spec.options), quality, pixels[0][1],
                                  default_threads())
            check.failures += portable_failures(learned.name, matrix)
            result.matrices.append((quality, matrix))
            if store is not None:
                from harness.store import ResultsStore

                document = matrix.as_document() | {"failures": portable_failures("", matrix)}
                with ResultsStore(store) as opened:
                    opened.put_diagnostic("portability", learned.name, learned.fingerprint(),
                                          quality, image_content_hash(pixels[0][1]), document)
    return result


# --- complexity ------------------------------------------------------------------------------

def profile(codec: str, size: tuple[int, int] = (512, 768), *, device: str = "cpu",
            checkpoint: str | None = None, quality: float | None = None, runs: int = 3,
            threads: int = 1, memory: bool = True, store=None):
    """The complexity profile of a learned codec at ``size`` (height, width).

    Without ``checkpoint`` the network is built in its released layout with random
    weights (complexity is the architecture's). Returns a
    :class:`harness.profile.Profile`: parameters in total and per part, kMAC per pixel
    of the forward pass, of encoding and of decoding, median encode / decode seconds
    over ``runs`` calls after a warm-up, and peak memory of each (``memory=False``
    skips the two fresh processes that measure it). With ``store``, the profile is kept
    there (the report's complexity table shows it).
    """
    from harness.profile import profile as measure

    found = measure(codec, *size, device=device, checkpoint=checkpoint, quality=quality,
                    runs=runs, threads=threads, memory=memory)
    if store is not None:
        from harness.checkpoints import sha256_of
        from harness.store import ResultsStore

        weights = f"sha256:{sha256_of(Path(checkpoint))}" if checkpoint else "random-weights"
        with ResultsStore(store) as opened:
            opened.put_diagnostic("profile", found.codec, weights, found.quality,
                                  f"{found.height}x{found.width} {found.device}"
                                  f" {found.threads} threads", found.as_dict())
    return found
