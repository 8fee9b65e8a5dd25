"""Metric registry: built-in metrics by name, third-party ones by entry point.

Same pattern as the codec registry (:mod:`harness.registry`): built-ins are named as
``"module:attribute"`` strings and imported only when used; a package adds a metric
with an entry point in the group ``harness.metrics``::

    [project.entry-points."harness.metrics"]
    my-metric = "my_package.metric:MyMetric"

whose target is a :class:`Metric` subclass (or a callable returning an instance). A
plugin that fails to load is listed as unavailable with the error; using it is a clear
usage error.

``psnr-rgb`` and ``ms-ssim-rgb`` are always measured and kept in the results table
(columns ``psnr`` and ``ms_ssim``); every other metric is stored in the store's long
``metrics`` table, one value per result row and metric, with the metric's fingerprint:
a row whose stored fingerprint differs from the selected metric's is measured again.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np

from harness import metrics as _base
from harness.errors import UsageError, did_you_mean
from harness.metrics import ycbcr
from harness.metrics.ycbcr import DEFAULT_YCBCR, YCbCrSettings

ENTRY_POINT_GROUP = "harness.metrics"

BUILTIN_METRICS: dict[str, str] = {
    "psnr-rgb": "harness.metrics.registry:PSNRRGB",
    "ms-ssim-rgb": "harness.metrics.registry:MSSSIMRGB",
    "psnr-y": "harness.metrics.registry:PSNRY",
    "psnr-u": "harness.metrics.registry:PSNRU",
    "psnr-v": "harness.metrics.registry:PSNRV",
    "psnr-yuv": "harness.metrics.registry:PSNRYUV",
    "ms-ssim-y": "harness.metrics.registry:MSSSIMY",
    "ciede2000": "harness.metrics.colour_difference:CIEDE2000",
    "psnr-hvs": "harness.metrics.hvs:PSNRHVS",
    "psnr-hvs-m": "harness.metrics.hvs:PSNRHVSM",
    "nlpd": "harness.metrics.nlpd:NLPD",
    "lpips": "harness.metrics.learned:LPIPS",
    "dists": "harness.metrics.learned:DISTS",
    "vif": "harness.metrics.perceptual:VIF",
    "fsim": "harness.metrics.perceptual:FSIM",
    "iw-ssim": "harness.metrics.perceptual:IWSSIM",
    "vmaf": "harness.metrics.vmaf:VMAF",
}
DEFAULT_METRICS = ("psnr-rgb", "ms-ssim-rgb")  # always measured, as before metrics existed
# names that select several metrics at once
GROUPS = {"jpeg-ai": ("psnr-y", "psnr-u", "psnr-v", "psnr-yuv", "ms-ssim-y", "vif", "fsim",
                     "iw-ssim", "psnr-hvs", "nlpd")}
# the results-table columns: no metric may take one of these names
RESERVED = {"bpp", "psnr", "ms_ssim", "ms_ssim_db", "bytes", "quality", "codec", "dataset",
            "image_id", "image_hash", "width", "height", "error", "note", "encode_s",
            "decode_s", "payload_bytes", "payload_bpp", "run_id", "codec_fingerprint",
            "psnr-rgb", "ms-ssim-rgb", "ms-ssim", "lossless", "images", "errors"} - set(
    BUILTIN_METRICS)


class Pair:
    """An original and its reconstruction, with conversions shared by the metrics."""

    def __init__(self, original: np.ndarray, reconstruction: np.ndarray):
        _base._check_pair(original, reconstruction)
        self.original, self.reconstruction = original, reconstruction
        self._codes: dict[YCbCrSettings, tuple[np.ndarray, np.ndarray]] = {}

    def ycbcr(self, settings: YCbCrSettings) -> tuple[np.ndarray, np.ndarray]:
        """(original, reconstruction) as Y, U, V code values (see :mod:`.ycbcr`)."""
        if settings not in self._codes:
            self._codes[settings] = (ycbcr.to_codes(self.original, settings),
                                     ycbcr.to_codes(self.reconstruction, settings))
        return self._codes[settings]


class Metric:
    """A quality metric of a decoded image against its original.

    Subclasses set the class attributes and implement :meth:`compute` (or
    :meth:`measure`, to share conversions through a :class:`Pair`).
    """

    name: str = ""
    version: str = "1"  # change it when the definition changes: stored values are redone
    higher_is_better: bool = True
    needs: tuple[str, ...] = ()  # modules it imports, e.g. ("torch", "piq")
    install: str = ""  # how to get what it needs, shown when something is missing
    description: str = ""
    in_db: bool = False  # a similarity in [0, 1]: BD and plots use -10 log10(1 - value)
    unit: str = ""  # of its values on the curves' quality axis ("dB" when in_db)
    column: str | None = None  # a results-table column (psnr-rgb, ms-ssim-rgb) or None

    def compute(self, original: np.ndarray, reconstruction: np.ndarray) -> float:
        raise NotImplementedError

    def measure(self, pair: Pair) -> float:
        return float(self.compute(pair.original, pair.reconstruction))

    def settings(self) -> str:
        """What, besides name and version, decides the value (a colour matrix, say)."""
        return ""

    def fingerprint(self) -> str:
        return "/".join(p for p in (self.name, f"v{self.version}", self.settings()) if p)

    def unavailable(self) -> str | None:
        """Why it cannot run here (a missing module), or None when it can."""
        missing = [m for m in self.needs if importlib.util.find_spec(m) is None]
        if not missing:
            return None
        return f"needs {', '.join(missing)}" + (f" ({self.install})" if self.install else "")


class PSNRRGB(Metric):
    name, column, unit = "psnr-rgb", "psnr", "dB"
    description = "PSNR over RGB 0..255, MSE over all channels (CompressAI's psnr-rgb)"

    def compute(self, original, reconstruction):
        return _base.psnr(original, reconstruction)


class MSSSIMRGB(Metric):
    name, column, in_db = "ms-ssim-rgb", "ms_ssim", True
    needs = ("torch", "pytorch_msssim")
    description = "MS-SSIM on RGB, data range 255 (CompressAI's ms-ssim-rgb)"

    def compute(self, original, reconstruction):
        return _base.ms_ssim(original, reconstruction)[0]


class YCbCrMetric(Metric):
    """A metric on JPEG AI's Y'CbCr code values (:mod:`harness.metrics.ycbcr`)."""

    def __init__(self, ycbcr: YCbCrSettings = DEFAULT_YCBCR):
        self.ycbcr = ycbcr

    def settings(self) -> str:
        return self.ycbcr.label()


class _PSNRPlane(YCbCrMetric):
    unit = "dB"
    plane = 0

    def measure(self, pair):
        original, reconstruction = pair.ycbcr(self.ycbcr)
        return ycbcr.plane_psnr(original[self.plane], reconstruction[self.plane],
                                self.ycbcr.peak)


class PSNRY(_PSNRPlane):
    name, plane = "psnr-y", 0
    description = "PSNR of Y' (JPEG AI: BT.709, 10-bit code values by default)"


class PSNRU(_PSNRPlane):
    name, plane = "psnr-u", 1
    description = "PSNR of Cb (JPEG AI: BT.709, 10-bit code values by default)"


class PSNRV(_PSNRPlane):
    name, plane = "psnr-v", 2
    description = "PSNR of Cr (JPEG AI: BT.709, 10-bit code values by default)"


class PSNRYUV(YCbCrMetric):
    name, unit = "psnr-yuv", "dB"
    description = "(6 PSNR-Y + PSNR-U + PSNR-V) / 8"

    def measure(self, pair):
        original, reconstruction = pair.ycbcr(self.ycbcr)
        return ycbcr.psnr_yuv(*(ycbcr.plane_psnr(o, r, self.ycbcr.peak)
                                for o, r in zip(original, reconstruction)))


class MSSSIMY(YCbCrMetric):
    name, in_db = "ms-ssim-y", True
    needs = ("torch", "pytorch_msssim")
    description = "MS-SSIM of Y' code values (JPEG AI: padded to 164 px)"

    def measure(self, pair):
        original, reconstruction = pair.ycbcr(self.ycbcr)
        return ycbcr.ms_ssim_plane(original[0], reconstruction[0], self.ycbcr.peak)


@dataclass(frozen=True)
class MetricEntry:
    name: str
    target: str
    origin: str  # "built-in" or the distribution of a plugin


@lru_cache(maxsize=1)
def metric_entries() -> dict[str, MetricEntry]:
    """Every known metric: built-ins, then plugins (which cannot shadow a built-in)."""
    from harness.registry import declared

    return {name: MetricEntry(name, target, origin)
            for name, (target, origin) in declared(ENTRY_POINT_GROUP, BUILTIN_METRICS).items()}


@cache
def create_metric(name: str, ycbcr: YCbCrSettings = DEFAULT_YCBCR) -> Metric:
    """The metric registered as ``name`` (one instance per name and settings, per process).

    Raises:
        UsageError: an unknown name (with the closest ones), or a plugin that does not
            load or is not a valid :class:`Metric`.
    """
    from harness.registry import _load_target

    entries = metric_entries()
    entry = entries.get(name)
    if entry is None:
        raise UsageError(f"unknown metric {name!r}.{did_you_mean(name, [*entries, *GROUPS])}"
                         f" Known: {', '.join([*entries, *GROUPS])} (`harness metrics` lists"
                         " them).")
    try:
        factory = _load_target(entry.target)
        is_ycbcr = isinstance(factory, type) and issubclass(factory, YCbCrMetric)
        metric = factory(ycbcr) if is_ycbcr else factory()
    except Exception as exc:  # a broken plugin must not take the harness down
        raise UsageError(f"metric {name!r} ({entry.target}, from {entry.origin}) failed to"
                         f" load: {type(exc).__name__}: {exc}. Reinstall or fix that"
                         " package.") from exc
    problem = _invalid(metric, name)
    if problem:
        raise UsageError(f"metric {name!r} ({entry.target}, from {entry.origin}) {problem}.")
    return metric


def _invalid(metric, name: str) -> str | None:
    if not isinstance(metric, Metric):
        return f"is not a harness.metrics.registry.Metric (got {type(metric).__name__})"
    if metric.name != name:
        return f"calls itself {metric.name!r}; its entry point must have the same name"
    if name in RESERVED or not name or not name.isprintable() or len(name) > 40:
        return "has a name that is taken by a results column or is not a short printable word"
    if not isinstance(metric.higher_is_better, bool):
        return "must say higher_is_better as True or False"
    return None


def expand(names: Iterable[str]) -> tuple[str, ...]:
    """Metric names with groups (``jpeg-ai``) expanded, the defaults first, no repeats.

    Raises:
        UsageError: an unknown name.
    """
    out = list(DEFAULT_METRICS)
    known = metric_entries()
    for name in names:
        if name in GROUPS:
            out.extend(GROUPS[name])
        elif name in known:
            out.append(name)
        else:
            create_metric(name)  # raises the error naming the closest metrics
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class MetricSet:
    """The metrics a run measures (sent to the workers with each task)."""

    names: tuple[str, ...] = DEFAULT_METRICS
    ycbcr: YCbCrSettings = field(default_factory=YCbCrSettings)

    def metrics(self) -> list[Metric]:
        return [create_metric(name, self.ycbcr) for name in self.names]

    def extra(self) -> list[Metric]:
        """The metrics kept in the store's ``metrics`` table (not results columns)."""
        return [m for m in self.metrics() if m.column is None]

    def fingerprints(self) -> dict[str, str]:
        return {m.name: m.fingerprint() for m in self.extra()}

    def check_available(self) -> None:
        """Raises UsageError when a selected metric cannot run here."""
        for metric in self.metrics():
            reason = metric.unavailable()
            if reason:
                raise UsageError(f"metric {metric.name!r} cannot run here: it {reason}."
                                 " `harness metrics` lists what each metric needs.")

    def measure(self, original: np.ndarray, reconstruction: np.ndarray
                ) -> dict[str, tuple[float, str]]:
        """name -> (value, fingerprint) of every extra metric; NaN when undefined."""
        extra = self.extra()
        if not extra:
            return {}
        pair = Pair(original, reconstruction)
        found = {}
        for metric in extra:
            value = float(metric.measure(pair))
            found[metric.name] = (math.nan if math.isnan(value) else value, metric.fingerprint())
        return found


DEFAULT_SET = MetricSet()


def describe(names: Sequence[str] | None = None) -> list[dict]:
    """One entry per metric: name, origin, needs, whether it runs here, fingerprint ..."""
    out = []
    for name, entry in metric_entries().items():
        if names is not None and name not in names:
            continue
        try:
            metric = create_metric(name)
        except UsageError as exc:
            out.append({"name": name, "origin": entry.origin, "needs": [],
                        "available": False, "why": str(exc), "fingerprint": "",
                        "higher_is_better": None, "stored": "", "description": ""})
            continue
        reason = metric.unavailable()
        out.append({"name": name, "origin": entry.origin, "needs": list(metric.needs),
                    "available": reason is None, "why": reason or "",
                    "fingerprint": metric.fingerprint(),
                    "higher_is_better": metric.higher_is_better,
                    "stored": f"results.{metric.column}" if metric.column else "metrics table",
                    "description": metric.description})
    return out


def in_db(name: str) -> bool:
    """Whether curves and BD use ``name`` in dB (``-10 log10(1 - value)``)."""
    try:
        return create_metric(name).in_db
    except UsageError:
        return False


def higher_is_better(name: str) -> bool:
    """Whether a higher value of ``name`` is the better one (unknown names: True)."""
    try:
        return create_metric(name).higher_is_better
    except UsageError:
        return True


def quality_unit(name: str) -> str:
    """The unit of ``name`` on the curves' quality axis: ``dB`` or ``""``."""
    try:
        metric = create_metric(name)
    except UsageError:
        return ""
    return "dB" if metric.in_db else metric.unit
