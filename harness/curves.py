"""RD curves from every source, and BD tables between them.

A :class:`Curve` is one codec's rate-distortion points on one dataset, whatever its
origin:

- ``measured``: means over images of what ``harness run`` stored;
- ``published``: the reference curves shipped in ``harness/published`` (CompressAI's
  results for its zoo and the classical anchors, the authors' numbers for STF, WACNN,
  TCM, Entroformer ...), each with its source; named ``NAME@published``;
- ``imported``: CompressAI-style results JSON read with ``harness import`` or given
  on the command line.

BD on MS-SSIM uses MS-SSIM in dB, as papers do.

Every curve carries the conventions that made it (``aggregate``, ``rate``: see
:mod:`harness.aggregate`). Published curves and imported CompressAI-form files are
``mean-linear`` + ``payload``: CompressAI's results files, its plots and the papers
average linear MS-SSIM and count the entropy-coded strings only. BD tables, plots and
``harness check`` refuse to compare curves of different conventions unless told
(:func:`check_conventions`).

A curve's ``label`` is its identity in tables and legends: measured curves keep their
codec name, published ones are ``NAME@published``, imported ones say where they came
from (``jpeg [imported: jpeg.json]``); :func:`unique_labels` numbers any that remain
alike.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from harness import bd
from harness.aggregate import (
    DEFAULT_AGGREGATE,
    DEFAULT_RATE,
    RATE_COLUMN,
    check_convention,
    convention_text,
    extra_columns,
    measurements,
    summarize,
)
from harness.errors import UsageError, did_you_mean

METRICS = ("psnr", "ms-ssim")
METRIC_COLUMN = {"psnr": "psnr", "ms-ssim": "ms_ssim_db"}
# the registry's names of the two results-table metrics
_METRIC_ALIASES = {"psnr-rgb": "psnr", "ms-ssim-rgb": "ms-ssim"}
POINT_COLUMNS = ["bpp", "psnr", "ms_ssim", "ms_ssim_db", "quality", "encode_s", "decode_s",
                 "bpp_payload", "bpp_file"]
PUBLISHED = "@published"
# anchors papers compare against, in the order a default is chosen
DEFAULT_ANCHORS = ("vtm", "vtm@published", "bpg", "bpg@published", "jpeg")
# results-JSON key -> point column
# (``bpp`` is the curve's rate; ``bpp-payload`` / ``bpp-file`` name both rates)
_RESULT_KEYS = {"bpp": "bpp", "psnr-rgb": "psnr", "ms-ssim-rgb": "ms_ssim",
                "ms-ssim-db-rgb": "ms_ssim_db", "quality": "quality",
                "encoding_time": "encode_s", "decoding_time": "decode_s",
                "bpp-payload": "bpp_payload", "bpp-file": "bpp_file"}


@dataclass(frozen=True, eq=False)
class Curve:
    """One codec's RD points on one dataset, sorted by rate."""

    name: str
    dataset: str
    origin: str  # "measured" | "published" | "imported"
    points: pd.DataFrame
    description: str = ""
    source: str = ""
    aggregate: str = DEFAULT_AGGREGATE
    rate: str = DEFAULT_RATE
    label: str = ""  # identity in tables and legends; default from name and origin
    # measured curves: one row per image and quality (image_hash, quality, bpp, psnr,
    # ms_ssim, ms_ssim_db; bpp in the curve's rate), for per-image BD and intervals
    per_image: pd.DataFrame | None = None

    def __post_init__(self):
        if not self.label:
            label = self.name
            if self.origin == "imported":
                label += f" [imported: {Path(self.source).name}]" if self.source else " [imported]"
            object.__setattr__(self, "label", label)

    @property
    def convention(self) -> tuple[str, str]:
        return self.aggregate, self.rate

    def has(self, metric: str) -> bool:
        return len(self.rd(metric)[0]) > 0

    def rd(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(bpp, quality) for ``metric`` (PSNR dB, MS-SSIM dB, or a metric of the registry:
        ``psnr-y``, ``ms-ssim-y`` in dB ...), unknown points left out; none when the curve
        lacks that metric."""
        column = metric_column(metric)
        if column not in self.points:
            return np.array([]), np.array([])
        frame = self.points[["bpp", column]].astype(float)
        frame = frame[np.isfinite(frame).all(axis=1)]
        return frame["bpp"].to_numpy(), frame[column].to_numpy()

    def extra_metrics(self) -> list[str]:
        """The registry metrics this curve has besides PSNR and MS-SSIM (``psnr-y`` ...)."""
        return [c for c in self.points.columns
                if c not in POINT_COLUMNS and not c.endswith("-db")]

    def to_results_json(self) -> dict:
        """This curve in CompressAI's results-JSON form.

        A value that is not a finite number (NaN, or the inf PSNR of an all-lossless
        point) is written as null: JSON has no NaN or Infinity.
        """
        results = {}
        for key, column in [*_RESULT_KEYS.items(), *((m, m) for m in self.extra_metrics())]:
            values = self.points[column].astype(float)
            if values.notna().any():
                results[key] = [float(v) if math.isfinite(v) else None for v in values]
        return {"name": self.name, "description": self.description,
                "meta": {"dataset": self.dataset, "origin": self.origin, "source": self.source,
                         "aggregate": self.aggregate, "rate": self.rate},
                "results": results}


def metric_column(metric: str) -> str:
    """The points column a BD or a plot of ``metric`` uses: ``psnr`` -> ``psnr``,
    ``ms-ssim`` -> ``ms_ssim_db``, ``psnr-y`` -> ``psnr-y``, ``ms-ssim-y`` ->
    ``ms-ssim-y-db`` (a similarity in dB, as MS-SSIM).

    Raises:
        UsageError: a name that is neither ``psnr``, ``ms-ssim`` nor a known metric.
    """
    from harness.metrics.registry import in_db, metric_entries

    metric = _METRIC_ALIASES.get(metric, metric)
    if metric in METRIC_COLUMN:
        return METRIC_COLUMN[metric]
    if metric not in metric_entries():
        known = [*METRICS, *(m for m in metric_entries() if m not in _METRIC_ALIASES)]
        raise UsageError(f"unknown metric {metric!r}.{did_you_mean(metric, known)} Use one of"
                         f" {', '.join(known)}.")
    return f"{metric}-db" if in_db(metric) else metric


def quality_sign(metric: str) -> float:
    """+1 where a higher value of ``metric`` is better (PSNR, MS-SSIM, VIF ...), -1 where
    a lower one is (NLPD, LPIPS, CIEDE2000 ...). BD interpolates over a quality that
    rises with the rate, so the latter enter it negated (see :func:`oriented`)."""
    from harness.metrics.registry import higher_is_better

    metric = _METRIC_ALIASES.get(metric, metric)
    return 1.0 if metric in METRICS or higher_is_better(metric) else -1.0


def oriented(metric: str, rd: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(rate, quality) with the quality negated where lower is better: what BD reads."""
    rate, quality = rd
    return rate, quality_sign(metric) * np.asarray(quality, dtype=float)


def quality_unit(metric: str) -> str:
    """``dB`` for PSNR, MS-SSIM and the metrics in dB, else ``""`` (VIF, NLPD ...)."""
    from harness.metrics.registry import quality_unit as unit

    metric = _METRIC_ALIASES.get(metric, metric)
    return "dB" if metric in METRICS else unit(metric)


def metric_names(curves: Iterable[Curve]) -> list[str]:
    """Every metric some of ``curves`` can be compared on: ``psnr``, ``ms-ssim``, then the
    registry metrics they hold (``psnr-y`` ...), for tables and plots."""
    curves = list(curves)
    extra = dict.fromkeys(m for c in curves for m in c.extra_metrics())
    return [m for m in (*METRICS, *extra) if any(c.has(m) for c in curves)]


def curve_from_results(name: str, dataset: str, origin: str, results: dict,
                       description: str = "", source: str = "",
                       aggregate: str = DEFAULT_AGGREGATE, rate: str = DEFAULT_RATE,
                       want_rate: str | None = None) -> Curve:
    """A curve from a results dict with CompressAI keys (``bpp``, ``psnr-rgb`` ...).

    ``aggregate`` and ``rate`` say how the file's ``bpp`` and MS-SSIM were made
    (CompressAI's files: ``mean-linear`` and ``payload``); ``want_rate`` picks the
    other rate when the file holds it (``bpp-file`` / ``bpp-payload``).
    """
    if want_rate and want_rate != rate and f"bpp-{want_rate}" in results:
        results = dict(results, bpp=results[f"bpp-{want_rate}"])
        rate = want_rate
    columns = {}
    for key, column in _RESULT_KEYS.items():
        if key in results:
            columns[column] = [math.nan if v is None else float(v) for v in results[key]]
    frame = pd.DataFrame(columns).reindex(columns=POINT_COLUMNS).astype(float)
    # MS-SSIM may come linear, in dB, or both: fill in the other form
    linear, db = frame["ms_ssim"], frame["ms_ssim_db"]
    frame["ms_ssim_db"] = db.fillna(-10 * np.log10(1 - linear))
    frame["ms_ssim"] = linear.fillna(1 - 10 ** (-db / 10))
    from harness.metrics.registry import in_db, metric_entries

    for key in results:  # the registry's other metrics (psnr-y, ...) under their names
        if key in metric_entries() and key not in _METRIC_ALIASES:
            frame[key] = [math.nan if v is None else float(v) for v in results[key]]
            if in_db(key):
                frame[f"{key}-db"] = -10 * np.log10(1 - frame[key])
    frame = frame.sort_values("bpp", kind="stable").reset_index(drop=True)
    return Curve(name, dataset, origin, frame, description, source, aggregate, rate)


# --- measured ---------------------------------------------------------------------------

def measured_curves(store, datasets: Sequence[str] | None = None,
                    codecs: Sequence[str] | None = None, aggregate: str = DEFAULT_AGGREGATE,
                    rate: str = DEFAULT_RATE) -> list[Curve]:
    """Curves of the measurements in ``store``, one per dataset, codec and fingerprint.

    The curve's ``bpp`` is the ``rate`` asked for; both rates are kept beside it
    (``bpp_payload``, ``bpp_file``).

    When a codec was measured under several fingerprints (a new library version, say),
    the most recently run one keeps the plain name and the others are named
    ``codec@fingerprint``.
    """
    rows = store.rows(datasets=datasets, codecs=codecs)
    latest: dict[str, tuple[int, str]] = {}
    for row in rows:
        run = row["run_id"] or 0
        if row["codec"] not in latest or run > latest[row["codec"]][0]:
            latest[row["codec"]] = (run, row["codec_fingerprint"])
    check_convention(aggregate, rate)
    frame = measurements(rows) if rows else None
    summary = summarize(rows if frame is None else frame, aggregate)
    summary["bpp_file"], summary["bpp_payload"] = summary["bpp"], summary["payload_bpp"]
    summary["bpp"] = summary[RATE_COLUMN[rate]]
    unknown = summary[(summary["images"] > 0) & summary["bpp"].isna()]
    if len(unknown):
        from harness.errors import HarnessWarning

        names = ", ".join(sorted(set(unknown["codec"])))
        warnings.warn(HarnessWarning(
            f"{names}: {len(unknown)} point(s) have no {rate} size (measured before it was"
            " stored) and are left out; measure again, or pass --rate file"), stacklevel=2)
    per_image = {} if frame is None else _per_image_rows(frame, rate)
    curves = []
    for (dataset, codec, fingerprint), group in summary.groupby(
            ["dataset", "codec", "codec_fingerprint"], sort=True):
        group = group[(group["images"] > 0) & group["bpp"].notna()]
        if group.empty:
            continue
        name = codec if latest[codec][1] == fingerprint else f"{codec}@{fingerprint}"
        images = int(group["images"].max())
        extra = [c for c in extra_columns(summary) if group[c].notna().any()]
        curves.append(Curve(
            name, dataset, "measured",
            group[POINT_COLUMNS + extra].sort_values("bpp", kind="stable")
            .reset_index(drop=True),
            description=f"{codec} measured on {images} images (fingerprint {fingerprint})",
            source=str(store.path), aggregate=aggregate, rate=rate,
            per_image=per_image.get((dataset, codec, fingerprint))))
    return curves


def _per_image_rows(frame: pd.DataFrame, rate: str) -> dict[tuple, pd.DataFrame]:
    """The error-free rows of :func:`measurements` per (dataset, codec, fingerprint),
    ``bpp`` in ``rate``."""
    frame = frame[frame["error"].isna()].copy()
    frame["bpp"] = frame[RATE_COLUMN[rate]]
    columns = ["image_hash", "image_id", "quality", "bpp", "psnr", "ms_ssim", "ms_ssim_db",
               *extra_columns(frame)]
    return {key: group.reindex(columns=columns).reset_index(drop=True)
            for key, group in frame.groupby(["dataset", "codec", "codec_fingerprint"])}


# --- published --------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _published_index() -> dict[str, dict[str, str]]:
    return json.loads(resources.files("harness").joinpath("published/index.json").read_text())


def _published_dataset(dataset: str) -> str | None:
    """The published set that stands for ``dataset`` (tecnick-<phase> -> tecnick)."""
    index = _published_index()
    if dataset in index:
        return dataset
    if dataset.startswith("tecnick-") and dataset != "tecnick-100":
        return "tecnick"
    return None


@cache
def _load_published(published_dataset: str, full_name: str) -> dict:
    path = resources.files("harness").joinpath(f"published/{published_dataset}/{full_name}.json")
    return json.loads(path.read_text())


def _published_curve(dataset: str, published_dataset: str, full_name: str) -> Curve:
    # CompressAI's and the papers' conventions: dB of the mean linear MS-SSIM, and the
    # entropy-coded payload's rate (the curve_from_results defaults)
    document = _load_published(published_dataset, full_name)
    meta = document["meta"]
    sources = "; ".join(
        " ".join(str(s.get(k)) for k in ("repo", "path", "commit", "description") if s.get(k))
        for s in meta["source"])
    description = document["description"]
    if published_dataset != dataset:
        description += f" (published on {published_dataset}: {meta.get('dataset_note', '')})"
    return curve_from_results(f"{full_name}{PUBLISHED}", dataset, "published",
                              document["results"], description, sources)


def published_names(dataset: str) -> dict[str, str]:
    """Alias -> full name of the published curves that stand for ``dataset``."""
    published_dataset = _published_dataset(dataset)
    return dict(_published_index().get(published_dataset, {})) if published_dataset else {}


def published_curve(name: str, dataset: str) -> Curve | None:
    """The published curve ``name`` (alias or full name, ``@published`` optional)."""
    alias = name.removesuffix(PUBLISHED)
    full = published_names(dataset).get(alias)
    if full is None:
        return None
    return _published_curve(dataset, _published_dataset(dataset), full)


def published_curves(datasets: Iterable[str], names: Iterable[str] | None = None) -> list[Curve]:
    """Published curves for each dataset: all of them, or those ``names`` give.

    Raises:
        UsageError: a name that is a published curve on none of the datasets.
    """
    datasets = list(datasets)
    if names is not None:
        known = {a for d in datasets for a in published_names(d)}
        for name in names:
            if name.removesuffix(PUBLISHED) not in known:
                raise UsageError(
                    f"no published curve named {name!r} on {', '.join(datasets) or 'any dataset'}"
                    f".{did_you_mean(name.removesuffix(PUBLISHED), known)} Published curves"
                    f" there: {', '.join(sorted(known)) or 'none'}.")
    curves = []
    for dataset in datasets:
        aliases = published_names(dataset)
        wanted = sorted(set(aliases.values())) if names is None else [
            aliases[n.removesuffix(PUBLISHED)] for n in names
            if n.removesuffix(PUBLISHED) in aliases]
        published_dataset = _published_dataset(dataset)
        curves.extend(_published_curve(dataset, published_dataset, full)
                      for full in dict.fromkeys(wanted))
    return curves


def published_catalog(datasets: Iterable[str] | None = None) -> list[dict]:
    """One entry per shipped published curve: its dataset, names, metrics and sources.

    ``datasets`` may name published sets (``tecnick-100``) or anything ``harness run``
    accepts (``clic``, ``tecnick:T01R01``); unknown names are an error.
    """
    index = _published_index()
    sets = list(index) if datasets is None else [_published_set_named(d) for d in datasets]
    entries = []
    for dataset in dict.fromkeys(sets):
        aliases = index[dataset]
        for full in sorted(set(aliases.values())):
            document = _load_published(dataset, full)
            curve = _published_curve(dataset, dataset, full)
            entries.append({
                "dataset": dataset, "name": f"{full}{PUBLISHED}",
                "aliases": sorted(a for a, f in aliases.items() if f == full and a != full),
                "metrics": [m for m in METRICS if curve.has(m)],
                "points": len(curve.points), "description": document["description"],
                "dataset_note": document["meta"].get("dataset_note", ""),
                "sources": document["meta"]["source"]})
    return entries


def _published_set_named(name: str) -> str:
    """The published set for a dataset name, alias or stored id."""
    from harness.datasets import dataset_id

    found = _published_dataset(name) or _published_dataset(dataset_id(name))
    if found is None:
        raise UsageError(f"no published curves for dataset {name!r}; the published sets are"
                         f" {', '.join(_published_index())}")
    return found


# --- imported ---------------------------------------------------------------------------

def _from_document(name: str, dataset: str, document: dict, source: str,
                   want_rate: str | None) -> Curve:
    """An imported curve from a validated results document (CompressAI conventions
    unless the file's ``meta`` says it was made otherwise, as our export does)."""
    meta = document.get("meta") or {}
    aggregate = meta.get("aggregate", DEFAULT_AGGREGATE)
    rate = meta.get("rate", DEFAULT_RATE)
    check_convention(aggregate, rate)
    return curve_from_results(name, dataset, "imported", document["results"],
                              document.get("description", ""), source, aggregate, rate,
                              want_rate)


def imported_curves(store, want_rate: str | None = None) -> list[Curve]:
    """Curves read into the store with ``harness import``.

    A stored curve that no longer passes validation (imported by an older version)
    is left out with a warning naming it, so one bad import cannot break every report.
    """
    from harness.errors import HarnessWarning
    from harness.interchange import validate_document

    curves = []
    for c in store.curves():
        try:
            validate_document(c["document"], f"imported curve {c['name']!r} on {c['dataset']}")
            curves.append(_from_document(c["name"], c["dataset"], c["document"], c["source"],
                                         want_rate))
        except UsageError as exc:
            warnings.warn(HarnessWarning(
                f"left out: {exc}. Remove it with `harness import --remove {c['name']}"
                f" --dataset {c['dataset']}`"), stacklevel=2)
    return curves


def curve_from_file(path, dataset: str | None = None, want_rate: str | None = None) -> Curve:
    """A curve from a CompressAI-style results JSON file.

    The dataset: ``dataset`` if given, else the one the file's ``meta`` names (our
    export writes it), else the file's folder name.
    """
    from harness.interchange import file_dataset, read_results_json

    document = read_results_json(path)
    return _from_document(document["name"], dataset or file_dataset(document, path), document,
                          str(path), want_rate)


# --- identity, conventions, anchors and BD tables -----------------------------------------

_ORIGIN_RANK = {"measured": 0, "imported": 1, "published": 2}


def unique_labels(curves: Sequence[Curve]) -> list[Curve]:
    """The curves with labels unique per dataset (``#2``, ``#3`` added to later twins)."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    for curve in curves:
        key = (curve.dataset, curve.label)
        seen[key] = seen.get(key, 0) + 1
        out.append(curve if seen[key] == 1 else replace(curve, label=f"{curve.label} #{seen[key]}"))
    return out


def check_conventions(curves: Sequence[Curve], allow_mixed: bool = False) -> str:
    """The conventions line of an output; an error when the curves mix conventions.

    Raises:
        UsageError: curves made by different aggregation or rate rules, unless
            ``allow_mixed`` (then the line says the comparison mixes them).
    """
    by_rule: dict[tuple[str, str], list[str]] = {}
    for curve in curves:
        by_rule.setdefault(curve.convention, []).append(curve.label)
    if len(by_rule) <= 1:
        aggregate, rate = next(iter(by_rule), (DEFAULT_AGGREGATE, DEFAULT_RATE))
        return convention_text(aggregate, rate)
    groups = "; ".join(f"aggregation {a}, rate {r}: {', '.join(names[:4])}"
                       + (f" and {len(names) - 4} more" if len(names) > 4 else "")
                       for (a, r), names in sorted(by_rule.items()))
    if not allow_mixed:
        raise UsageError(
            f"these curves were made by different rules ({groups}), so comparing them would "
            "measure the rules, not the codecs (mean of per-image MS-SSIM dB is not dB of the"
            " mean MS-SSIM; whole-file rate counts the header). Published and CompressAI"
            " curves are --aggregate mean-linear --rate payload, the default; pass"
            " --mixed-conventions to compare them anyway.")
    return f"MIXED conventions (--mixed-conventions): {groups}"


def find_curve(name: str, dataset: str, curves: Sequence[Curve]) -> Curve | None:
    """The curve called ``name`` on ``dataset``: its label, else its name (measured
    first, then imported, then published); ``X@published`` is looked up if absent."""
    mine = [c for c in curves if c.dataset == dataset]
    for curve in mine:
        if curve.label == name:
            return curve
    named = sorted((c for c in mine if c.name == name),
                   key=lambda c: _ORIGIN_RANK.get(c.origin, 3))
    if named:
        return named[0]
    if name.endswith(PUBLISHED):
        full = published_names(dataset).get(name.removesuffix(PUBLISHED))
        for curve in mine:
            if curve.name == f"{full}{PUBLISHED}":
                return curve
        return published_curve(name, dataset)
    return None


def default_anchor(curves: Sequence[Curve], dataset: str) -> str | None:
    """VTM if present (measured, then published), else BPG, else JPEG, else None."""
    for name in DEFAULT_ANCHORS:
        if find_curve(name, dataset, curves) is not None:
            return name
    return None


def no_anchor_message(dataset: str) -> str:
    """Why a dataset has no default anchor, and how to get one."""
    return (f"no anchor (VTM, BPG or JPEG) on {dataset}, measured or published: measure one"
            f" with `harness run --codecs vtm --datasets {dataset}` (or bpg, jpeg), or pass"
            " --anchor NAME")


def require_anchor(anchor: str | None, curves: Sequence[Curve]) -> None:
    """An anchor named on the command line must exist on some dataset: else an error
    with the closest names."""
    if anchor is None:
        return
    datasets = dict.fromkeys(c.dataset for c in curves)
    if any(find_curve(anchor, d, curves) is not None for d in datasets):
        return
    known = {c.label for c in curves} | {c.name for c in curves} | {
        f"{a}{PUBLISHED}" for d in datasets for a in published_names(d)}
    hint = (f" Did you mean {anchor}{PUBLISHED}?" if f"{anchor}{PUBLISHED}" in known
            else did_you_mean(anchor, known))
    raise UsageError(f"no anchor curve {anchor!r} on {', '.join(datasets) or 'any dataset'}."
                     f"{hint} Anchors are curve names as the BD table"
                     " shows them (a measured codec, NAME@published, an imported curve).")


BD_COLUMNS = ["dataset", "metric", "codec", "anchor", "bd_rate", "bd_quality", "method",
              "points", "reason", "warning", "rate", "aggregate"]


def bd_table(curves: Sequence[Curve], anchor: str | None = None,
             metrics: Sequence[str] = METRICS, method: str = "pchip", *,
             min_overlap: float = bd.MIN_OVERLAP,
             min_spacing: float = bd.MIN_RATE_SPACING) -> pd.DataFrame:
    """BD-rate (percent) and BD quality (the metric's units: dB for PSNR and MS-SSIM) of
    every curve against the anchor. A metric where lower is better (NLPD, LPIPS ...)
    enters BD negated, so its BD-rate has the usual sense (negative: fewer bits for the
    same quality) and its BD quality is the mean difference of the metric itself.

    One row per dataset, metric and codec other than the anchor; ``codec`` and
    ``anchor`` are curve labels. A comparison that cannot be made gives NaN; ``reason``
    holds the machine-readable code(s) (``no-anchor``, ``no-anchor-metric``,
    ``non-monotonic``, ``close-rates``, ``low-overlap``, ``no-overlap``,
    ``too-few-points``, ``bad-input``; ``partial-overlap`` beside a number) and
    ``warning`` the message.
    """
    if method not in bd.METHODS:
        raise UsageError(f"unknown BD method {method!r}; use one of {', '.join(bd.METHODS)}")
    for metric in metrics:
        metric_column(metric)  # an unknown name is refused before anything is computed
    rows = []
    for dataset in dict.fromkeys(c.dataset for c in curves):
        anchor_name = anchor or default_anchor(curves, dataset)
        reference = find_curve(anchor_name, dataset, curves) if anchor_name else None
        for metric in metrics:
            for curve in curves:
                if curve.dataset != dataset or curve is reference or not curve.has(metric):
                    continue
                row = {"dataset": dataset, "metric": metric, "codec": curve.label,
                       "anchor": reference.label if reference else (anchor_name or ""),
                       "bd_rate": math.nan, "bd_quality": math.nan, "method": method,
                       "points": len(curve.rd(metric)[0]), "reason": "", "warning": "",
                       "rate": curve.rate, "aggregate": curve.aggregate}
                if reference is None:
                    row["reason"] = "no-anchor"
                    row["warning"] = (f"no anchor {anchor_name!r} on {dataset}" if anchor_name
                                      else no_anchor_message(dataset))
                elif not reference.has(metric):
                    row["reason"] = "no-anchor-metric"
                    row["warning"] = f"the anchor has no {metric} values"
                else:
                    _fill_bd(row, reference.rd(metric), curve.rd(metric), method, metric,
                             min_overlap=min_overlap, min_spacing=min_spacing)
                rows.append(row)
    return pd.DataFrame(rows, columns=BD_COLUMNS)


def _fill_bd(row: dict, anchor_rd, test_rd, method: str, metric: str, **guards) -> None:
    """BD-rate and BD-quality of ``test_rd`` against ``anchor_rd``; BD-quality in the
    metric's own units and sense (NLPD's: negative is better)."""
    codes, messages = [], []
    sign = quality_sign(metric)
    anchor_rd, test_rd = oriented(metric, anchor_rd), oriented(metric, test_rd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bd.BDWarning)
        for key, function, scale in (("bd_rate", bd.bd_rate, 1.0),
                                     ("bd_quality", bd.bd_psnr, sign)):
            try:
                row[key] = scale * function(*anchor_rd, *test_rd, method=method, **guards)
            except bd.BDInputError as exc:
                codes.append(exc.code)
                messages.append(f"{key}: {exc}")
    for w in caught:
        if isinstance(w.message, bd.BDWarning):
            codes.append(w.message.code)
            messages.append(str(w.message))
    row["reason"] = ",".join(dict.fromkeys(codes))
    row["warning"] = "; ".join(dict.fromkeys(messages))
