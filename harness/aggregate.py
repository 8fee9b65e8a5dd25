"""Per-image rows -> per codec/dataset/quality means, and the tables users read.

Conventions (one place, used by every table, curve, BD value, plot and check):

- aggregation ``mean-linear`` (default, the literature's: CompressAI's results files,
  its plots and the papers): per quality, the means over images of bpp, PSNR (dB) and
  *linear* MS-SSIM; MS-SSIM dB = -10*log10(1 - mean MS-SSIM). ``mean-db`` is the
  named alternative: the mean of per-image MS-SSIM dB (bpp and PSNR are the same).
- rate ``payload`` (default, as CompressAI and the papers count it): the entropy-coded
  payload alone (``payload_bytes``; for file formats the whole file); ``file``: the
  whole bitstream, the harness's header included.

Metrics of the store's ``metrics`` table (``psnr-y`` ...) are columns named by the
metric and averaged like PSNR; a similarity in [0, 1] (``ms-ssim-y``) also gets its dB
column (``ms-ssim-y-db``) by the same ``aggregate`` rule as MS-SSIM.

Policy for lossless reconstructions (PSNR = inf): the
mean PSNR is taken over the finite values and the ``lossless`` column counts the
images left out; when every image is lossless the mean is inf. MS-SSIM NaN (image
too small for 5 scales) is left out of the MS-SSIM mean the same way, and rows with
an error are counted in ``errors`` and left out of every mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from harness.conventions import AGGREGATES, DEFAULT_AGGREGATE, DEFAULT_RATE, RATES  # noqa: F401

GROUP = ["codec", "codec_fingerprint", "dataset", "quality"]
MEASURES = ["bpp", "payload_bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s"]
# columns of measurements, summaries and curves that are not metrics of the metrics table
_NOT_METRICS = {*MEASURES, *GROUP, "images", "errors", "lossless", "bpp_file", "bpp_payload"}
# rate convention -> the summary column that holds it
RATE_COLUMN = {"payload": "payload_bpp", "file": "bpp"}


def check_convention(aggregate: str, rate: str) -> None:
    from harness.errors import UsageError

    if aggregate not in AGGREGATES:
        raise UsageError(f"unknown aggregation {aggregate!r}; use one of {', '.join(AGGREGATES)}")
    if rate not in RATES:
        raise UsageError(f"unknown rate {rate!r}; use one of {', '.join(RATES)}")


def convention_text(aggregate: str, rate: str) -> str:
    """The one line every output carries to say how its numbers were made."""
    rates = {"payload": "entropy-coded payload bpp, header left out",
             "file": "whole-file bpp, header included"}
    aggregates = {"mean-linear": "means over images, MS-SSIM dB of the mean linear MS-SSIM",
                  "mean-db": "means over images, MS-SSIM dB as the mean of per-image dB"}
    return f"rate: {rate} ({rates[rate]}); aggregation: {aggregate} ({aggregates[aggregate]})"


def _finite_mean(values: pd.Series) -> float:
    finite = values[np.isfinite(values)]
    if len(finite):
        return float(finite.mean())
    return math.inf if (values == math.inf).any() else math.nan


def _db(similarity):
    """-10 log10(1 - x) of a similarity in [0, 1]: inf at 1, NaN outside."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return -10 * np.log10(1 - np.asarray(similarity, dtype=float))


def extra_metrics(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` that hold metrics of the store's ``metrics`` table, in the
    registry's order (``harness metrics``), unknown names last."""
    from harness.metrics.registry import metric_entries
    from harness.store import VIEW_COLUMNS

    order = {name: i for i, name in enumerate(metric_entries())}
    found = [c for c in frame.columns if c not in VIEW_COLUMNS and c not in _NOT_METRICS
             and not c.endswith("-db")]
    return sorted(found, key=lambda c: (order.get(c, len(order)), c))


def extra_columns(frame: pd.DataFrame) -> list[str]:
    """:func:`extra_metrics`, then the dB columns of those that have one (``ms-ssim-y-db``)."""
    names = extra_metrics(frame)
    return [*names, *(f"{c}-db" for c in names if f"{c}-db" in frame.columns)]


def measurements(rows: Sequence[dict]) -> pd.DataFrame:
    """The store's rows as a table with both rates: ``bpp`` (whole file) and
    ``payload_bpp`` (the coded payload alone, as CompressAI counts it: header left out),
    and per-image dB columns of the extra similarity metrics."""
    from harness.metrics.registry import in_db

    frame = pd.DataFrame.from_records(rows)
    payload = frame["payload_bytes"].astype(float) if "payload_bytes" in frame else math.nan
    frame["payload_bpp"] = 8.0 * payload / (frame["width"] * frame["height"])
    frame[MEASURES] = frame[MEASURES].astype(float)
    for name in extra_metrics(frame):
        frame[name] = frame[name].astype(float)
        if in_db(name):
            frame[f"{name}-db"] = _db(frame[name])
    return frame


def summarize(rows: Sequence[dict] | pd.DataFrame,
              aggregate: str = DEFAULT_AGGREGATE) -> pd.DataFrame:
    """One line per codec, fingerprint, dataset and quality, sorted by rate.

    ``rows``: the store's rows, or :func:`measurements` of them. ``bpp`` is the
    whole-file rate and ``payload_bpp`` the payload's; ``ms_ssim_db`` follows
    ``aggregate`` (see the module's conventions).
    """
    if len(rows) == 0:
        return pd.DataFrame(columns=GROUP + ["images", "errors", "lossless"] + MEASURES)
    frame = rows if isinstance(rows, pd.DataFrame) else measurements(rows)
    extra = extra_columns(frame)
    measures = MEASURES + extra
    columns = GROUP + ["images", "errors", "lossless"] + measures
    ok = frame[frame["error"].isna()]
    lines = []
    for key, group in frame.groupby(GROUP, sort=True):
        good = ok.loc[ok.index.intersection(group.index)]
        line = dict(zip(GROUP, key))
        line["images"] = len(good)
        line["errors"] = len(group) - len(good)
        line["lossless"] = int((good["psnr"] == math.inf).sum())
        for measure in measures:
            line[measure] = _finite_mean(good[measure]) if len(good) else math.nan
        if aggregate == "mean-linear":
            for linear, db in [("ms_ssim", "ms_ssim_db")] + [
                    (c.removesuffix("-db"), c) for c in extra if c.endswith("-db")]:
                line[db] = float(_db(line[linear]))
        lines.append(line)
    out = pd.DataFrame(lines, columns=columns)
    return out.sort_values(["dataset", "codec", "bpp"], kind="stable").reset_index(drop=True)


def _fmt(value: float, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def format_table(summary: pd.DataFrame, aggregate: str = DEFAULT_AGGREGATE) -> str:
    """A plain-text table: one line per codec, dataset and quality, and its conventions.

    ``bpp`` is the payload rate (the one compared with published curves), ``file bpp``
    the whole file's.
    """
    header = ["dataset", "codec", "quality", "images", "bpp", "file bpp", "PSNR dB", "MS-SSIM",
              "MS-SSIM dB", "enc s", "dec s", "errors"]
    lines = []
    for r in summary.itertuples(index=False):
        psnr = _fmt(r.psnr, 2) + (f" (+{r.lossless} lossless)" if r.lossless else "")
        lines.append([r.dataset, r.codec, f"{r.quality:g}", str(r.images),
                      _fmt(r.payload_bpp, 4), _fmt(r.bpp, 4),
                      psnr, _fmt(r.ms_ssim, 4), _fmt(r.ms_ssim_db, 2), _fmt(r.encode_s, 4),
                      _fmt(r.decode_s, 4), str(r.errors) if r.errors else ""])
    blocks = [_text_table(header, lines)]
    extra = [c for c in extra_columns(summary) if not c.endswith("-db")]
    if extra:  # the metrics of the metrics table (run --metrics), below: the table stays narrow
        blocks.append(_text_table(
            ["dataset", "codec", "quality", *extra],
            [[r["dataset"], r["codec"], f"{r['quality']:g}",
              *(_fmt(r[c], 4 if abs(r[c]) <= 1 else 2) for c in extra)]
             for _, r in summary.iterrows()]))
    return "\n\n".join(blocks) + "\n" + convention_text(aggregate, "payload")


def _text_table(header: list[str], lines: list[list[str]]) -> str:
    """Columns padded to their widest cell; the first two left-aligned, the rest right."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]

    def render(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i >= 2 else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule] + [render(line) for line in lines])
