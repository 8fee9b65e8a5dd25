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
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from harness import bd
from harness.aggregate import summarize
from harness.errors import UsageError

METRICS = ("psnr", "ms-ssim")
METRIC_COLUMN = {"psnr": "psnr", "ms-ssim": "ms_ssim_db"}
POINT_COLUMNS = ["bpp", "psnr", "ms_ssim", "ms_ssim_db", "quality", "encode_s", "decode_s"]
PUBLISHED = "@published"
# anchors papers compare against, in the order a default is chosen
DEFAULT_ANCHORS = ("vtm", "vtm@published", "bpg", "bpg@published", "jpeg")
# results-JSON key -> point column
_RESULT_KEYS = {"bpp": "bpp", "psnr-rgb": "psnr", "ms-ssim-rgb": "ms_ssim",
                "ms-ssim-db-rgb": "ms_ssim_db", "quality": "quality",
                "encoding_time": "encode_s", "decoding_time": "decode_s"}


@dataclass(frozen=True, eq=False)
class Curve:
    """One codec's RD points on one dataset, sorted by rate."""

    name: str
    dataset: str
    origin: str  # "measured" | "published" | "imported"
    points: pd.DataFrame
    description: str = ""
    source: str = ""

    def has(self, metric: str) -> bool:
        return len(self.rd(metric)[0]) > 0

    def rd(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(bpp, quality) for ``metric`` (PSNR dB or MS-SSIM dB), unknown points left out."""
        if metric not in METRIC_COLUMN:
            raise UsageError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
        frame = self.points[["bpp", METRIC_COLUMN[metric]]].astype(float)
        frame = frame[np.isfinite(frame).all(axis=1)]
        return frame["bpp"].to_numpy(), frame[METRIC_COLUMN[metric]].to_numpy()

    def to_results_json(self) -> dict:
        """This curve in CompressAI's results-JSON form (NaN written as null)."""
        results = {}
        for key, column in _RESULT_KEYS.items():
            values = self.points[column].astype(float)
            if values.notna().any():
                results[key] = [None if math.isnan(v) else float(v) for v in values]
        return {"name": self.name, "description": self.description,
                "meta": {"dataset": self.dataset, "origin": self.origin, "source": self.source},
                "results": results}


def curve_from_results(name: str, dataset: str, origin: str, results: dict,
                       description: str = "", source: str = "") -> Curve:
    """A curve from a results dict with CompressAI keys (``bpp``, ``psnr-rgb`` ...)."""
    columns = {}
    for key, column in _RESULT_KEYS.items():
        if key in results:
            columns[column] = [math.nan if v is None else float(v) for v in results[key]]
    frame = pd.DataFrame(columns).reindex(columns=POINT_COLUMNS).astype(float)
    # MS-SSIM may come linear, in dB, or both: fill in the other form
    linear, db = frame["ms_ssim"], frame["ms_ssim_db"]
    frame["ms_ssim_db"] = db.fillna(-10 * np.log10(1 - linear))
    frame["ms_ssim"] = linear.fillna(1 - 10 ** (-db / 10))
    frame = frame.sort_values("bpp", kind="stable").reset_index(drop=True)
    return Curve(name, dataset, origin, frame, description, source)


# --- measured ---------------------------------------------------------------------------

def measured_curves(store, datasets: Sequence[str] | None = None,
                    codecs: Sequence[str] | None = None) -> list[Curve]:
    """Curves of the measurements in ``store``, one per dataset, codec and fingerprint.

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
    summary = summarize(rows)
    curves = []
    for (dataset, codec, fingerprint), group in summary.groupby(
            ["dataset", "codec", "codec_fingerprint"], sort=True):
        group = group[group["images"] > 0]
        if group.empty:
            continue
        name = codec if latest[codec][1] == fingerprint else f"{codec}@{fingerprint}"
        images = int(group["images"].max())
        curves.append(Curve(
            name, dataset, "measured",
            group[POINT_COLUMNS].sort_values("bpp", kind="stable").reset_index(drop=True),
            description=f"{codec} measured on {images} images (fingerprint {fingerprint})",
            source=str(store.path)))
    return curves


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
    """Published curves for each dataset: all of them, or those ``names`` give."""
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
    found = _published_dataset(name)
    if found is None:
        from harness.datasets import _all_manifests, _lookup

        match = _lookup(name, _all_manifests())
        if match is not None:
            manifest, params = match
            found = _published_dataset(manifest.stored_id(params or None))
    if found is None:
        raise UsageError(f"no published curves for dataset {name!r}; the published sets are"
                         f" {', '.join(_published_index())}")
    return found


# --- imported ---------------------------------------------------------------------------

def imported_curves(store) -> list[Curve]:
    """Curves read into the store with ``harness import``."""
    return [curve_from_results(c["name"], c["dataset"], "imported", c["document"]["results"],
                               c["document"].get("description", ""), c["source"])
            for c in store.curves()]


def curve_from_file(path, dataset: str) -> Curve:
    """A curve from a CompressAI-style results JSON file."""
    from harness.interchange import read_results_json

    document = read_results_json(path)
    return curve_from_results(document["name"], dataset, "imported", document["results"],
                              document["description"], str(path))


# --- anchors and BD tables --------------------------------------------------------------

def find_curve(name: str, dataset: str, curves: Sequence[Curve]) -> Curve | None:
    """The curve called ``name`` on ``dataset``; ``X@published`` is looked up if absent."""
    for curve in curves:
        if curve.dataset == dataset and curve.name == name:
            return curve
    if name.endswith(PUBLISHED):
        full = published_names(dataset).get(name.removesuffix(PUBLISHED))
        for curve in curves:
            if curve.dataset == dataset and curve.name == f"{full}{PUBLISHED}":
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


BD_COLUMNS = ["dataset", "metric", "codec", "anchor", "bd_rate", "bd_quality", "method",
              "points", "warning"]


def bd_table(curves: Sequence[Curve], anchor: str | None = None,
             metrics: Sequence[str] = METRICS, method: str = "pchip") -> pd.DataFrame:
    """BD-rate (percent) and BD quality (dB) of every curve against the anchor.

    One row per dataset, metric and codec other than the anchor. A comparison that
    cannot be made (no overlap, too few points, a non-monotonic curve, an anchor
    without that metric) gives NaN and says why in ``warning``.
    """
    if method not in bd.METHODS:
        raise UsageError(f"unknown BD method {method!r}; use one of {', '.join(bd.METHODS)}")
    rows = []
    for dataset in dict.fromkeys(c.dataset for c in curves):
        anchor_name = anchor or default_anchor(curves, dataset)
        reference = find_curve(anchor_name, dataset, curves) if anchor_name else None
        for metric in metrics:
            for curve in curves:
                if curve.dataset != dataset or curve is reference or not curve.has(metric):
                    continue
                row = {"dataset": dataset, "metric": metric, "codec": curve.name,
                       "anchor": reference.name if reference else (anchor_name or ""),
                       "bd_rate": math.nan, "bd_quality": math.nan, "method": method,
                       "points": len(curve.rd(metric)[0]), "warning": ""}
                if reference is None:
                    row["warning"] = (f"no anchor {anchor_name!r} on {dataset}" if anchor_name
                                      else no_anchor_message(dataset))
                elif not reference.has(metric):
                    row["warning"] = f"the anchor has no {metric} values"
                else:
                    _fill_bd(row, reference.rd(metric), curve.rd(metric), method)
                rows.append(row)
    return pd.DataFrame(rows, columns=BD_COLUMNS)


def _fill_bd(row: dict, anchor_rd, test_rd, method: str) -> None:
    messages = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bd.BDWarning)
        for key, function in (("bd_rate", bd.bd_rate), ("bd_quality", bd.bd_psnr)):
            try:
                row[key] = function(*anchor_rd, *test_rd, method=method)
            except bd.BDInputError as exc:
                messages.append(f"{key}: {exc}")
    messages.extend(str(w.message) for w in caught if issubclass(w.category, bd.BDWarning))
    row["warning"] = "; ".join(dict.fromkeys(messages))
