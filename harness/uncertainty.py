"""How much a BD-rate depends on the images it was measured on.

Two views, both from the per-image rows of measured curves (published and imported
curves have only their means, so they get NaN with the reason ``no-per-image-data``):

- per-image BD-rates: each image's own curve (its bpp and quality at every quality
  setting) against the anchor's curve on the same image;
- a bootstrap interval: the images common to the curve and its anchor are resampled
  with replacement ``resamples`` times (seeded, so the interval is reproducible); each
  resample's per-quality means are taken with the curves' aggregation convention
  (harness/aggregate.py) and its BD-rate computed with the same method and guards as
  the table's. The interval is the central ``level`` share of those BD-rates
  (percentiles); resamples the guards refuse (a non-monotone mean curve, say) are left
  out and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness import bd
from harness.curves import Curve, find_curve, metric_column, quality_sign

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
#: least share of resamples that must give a BD-rate for an interval to be stated
MIN_VALID_SHARE = 0.5


def describe(resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> str:
    """The line every output with intervals carries."""
    return (f"interval: {100 * level:g} % bootstrap over images ({resamples} resamples,"
            f" seed {seed}); '~' marks an interval that spans 0")


@dataclass
class _Grid:
    """A measured curve's images x qualities: mean rate and mean averaged value of each
    image at each quality, for the images measured at every quality (sorted by hash)."""

    images: np.ndarray
    rate: np.ndarray  # images x qualities
    value: np.ndarray

    def rows(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        where = np.searchsorted(self.images, images)
        return self.rate[where], self.value[where]


def _images(curve: Curve, metric: str) -> _Grid | None:
    """The curve's :class:`_Grid` for ``metric`` (None: no per-image rows)."""
    if curve.per_image is None or curve.per_image.empty:
        return None
    column = _averaged(curve, metric)[0]
    rows = curve.per_image
    if column not in rows:
        return None
    bpp, value = (rows[c].to_numpy(dtype=float) for c in ("bpp", column))
    keep = np.isfinite(bpp) & np.isfinite(value) & (bpp > 0)
    images, image = np.unique(rows["image_hash"].to_numpy()[keep], return_inverse=True)
    qualities, quality = np.unique(rows["quality"].to_numpy(dtype=float)[keep],
                                   return_inverse=True)
    shape = (len(images), len(qualities))
    count, rate_sum, value_sum = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    np.add.at(count, (image, quality), 1)
    np.add.at(rate_sum, (image, quality), bpp[keep])
    np.add.at(value_sum, (image, quality), value[keep])
    complete = (count > 0).all(axis=1)
    with np.errstate(invalid="ignore"):
        return _Grid(images[complete], (rate_sum / count)[complete],
                     (value_sum / count)[complete])


def _averaged(curve: Curve, metric: str) -> tuple[str, bool]:
    """The per-image column whose means make ``metric``'s quality axis, and whether the
    means go to dB after (a similarity averaged linearly, as ``mean-linear`` says)."""
    column = metric_column(metric)  # psnr, ms_ssim_db, psnr-y, ms-ssim-y-db, nlpd ...
    if column.endswith("db") and curve.aggregate == "mean-linear":
        return ("ms_ssim" if column == "ms_ssim_db" else column.removesuffix("-db")), True
    return column, False


def _quality(curve: Curve, metric: str, means: np.ndarray) -> np.ndarray:
    """The curve's quality axis from means of the averaged value, as BD reads it
    (negated where lower is better: :func:`harness.curves.oriented`)."""
    if _averaged(curve, metric)[1]:
        with np.errstate(divide="ignore", invalid="ignore"):
            means = -10 * np.log10(1 - means)
    return quality_sign(metric) * means


def bootstrap_interval(curve: Curve, anchor: Curve, metric: str, method: str = "pchip",
                       resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL,
                       **guards) -> tuple[float, float, str]:
    """(low, high, reason) of the BD-rate of ``curve`` against ``anchor``; the reason is
    empty when the interval is stated, else why it is NaN."""
    test, reference = _images(curve, metric), _images(anchor, metric)
    if test is None or reference is None:
        return math.nan, math.nan, "no-per-image-data"
    common = np.intersect1d(test.images, reference.images)
    if len(common) < 2:
        return math.nan, math.nan, "too-few-common-images"
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(common), size=(resamples, len(common)))
    # how often each resample draws each image: one bincount over all resamples at once
    offsets = (picks + len(common) * np.arange(resamples)[:, None]).ravel()
    weights = np.bincount(offsets, minlength=resamples * len(common)).reshape(
        resamples, len(common)) / len(common)

    def means(grid: _Grid, which: Curve):
        rate, value = grid.rows(common)
        return weights @ rate, _quality(which, metric, weights @ value)

    (test_rate, test_quality), (anchor_rate, anchor_quality) = means(test, curve), means(
        reference, anchor)
    values = bd.bd_rate_many(anchor_rate, anchor_quality, test_rate, test_quality, method,
                             **guards)
    valid = values[np.isfinite(values)]
    if len(valid) < MIN_VALID_SHARE * resamples:
        return math.nan, math.nan, "bootstrap-refused"
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(valid, [tail, 100 - tail])
    return float(low), float(high), ""


def add_intervals(table: pd.DataFrame, curves: Sequence[Curve], method: str = "pchip",
                  resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL,
                  **guards) -> pd.DataFrame:
    """``table`` (from :func:`harness.curves.bd_table`) with ``ci_low``, ``ci_high`` and
    ``ci_reason`` for every row that has a BD-rate."""
    out = table.copy()
    low, high, reasons = [], [], []
    for row in table.itertuples(index=False):
        curve = find_curve(row.codec, row.dataset, curves)
        anchor = find_curve(row.anchor, row.dataset, curves) if row.anchor else None
        if curve is None or anchor is None or not math.isfinite(row.bd_rate):
            interval = (math.nan, math.nan, "no-bd-rate")
        else:
            interval = bootstrap_interval(curve, anchor, row.metric, method, resamples, seed,
                                          level, **guards)
        low.append(interval[0])
        high.append(interval[1])
        reasons.append(interval[2])
    out["ci_low"], out["ci_high"], out["ci_reason"] = low, high, reasons
    out.attrs = dict(table.attrs, ci=describe(resamples, seed, level))
    return out


def spans_zero(low: float, high: float) -> bool:
    return math.isfinite(low) and math.isfinite(high) and low <= 0 <= high


def per_image_bd(curves: Sequence[Curve], anchor: str, metric: str = "psnr",
                 method: str = "pchip", **guards) -> pd.DataFrame:
    """One BD-rate per image and measured curve: the image's own curve against the
    anchor's on that image (NaN where the guards refuse it)."""
    rows = []
    for curve in curves:
        reference = find_curve(anchor, curve.dataset, curves)
        if reference is None or curve is reference:
            continue
        test, base = _images(curve, metric), _images(reference, metric)
        if test is None or base is None:
            continue
        common = np.intersect1d(test.images, base.images)
        test_rate, test_value = test.rows(common)
        base_rate, base_value = base.rows(common)
        rates = bd.bd_rate_many(base_rate, _quality(reference, metric, base_value), test_rate,
                                _quality(curve, metric, test_value), method, **guards)
        rows += [{"dataset": curve.dataset, "codec": curve.label, "anchor": reference.label,
                  "metric": metric, "image_hash": image, "bd_rate": float(rate)}
                 for image, rate in zip(common, rates)]
    return pd.DataFrame(rows, columns=["dataset", "codec", "anchor", "metric", "image_hash",
                                       "bd_rate"])
