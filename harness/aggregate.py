"""Per-image rows -> per codec/dataset/quality means, and the tables users read.

Means follow CompressAI's evaluation: the arithmetic mean over images of per-image
bpp, PSNR (dB) and MS-SSIM. Policy for lossless reconstructions (PSNR = inf): the
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

GROUP = ["codec", "codec_fingerprint", "dataset", "quality"]
MEASURES = ["bpp", "payload_bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s"]


def _finite_mean(values: pd.Series) -> float:
    finite = values[np.isfinite(values)]
    if len(finite):
        return float(finite.mean())
    return math.inf if (values == math.inf).any() else math.nan


def summarize(rows: Sequence[dict]) -> pd.DataFrame:
    """One line per codec, fingerprint, dataset and quality, sorted by rate."""
    columns = GROUP + ["images", "errors", "lossless"] + MEASURES
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame.from_records(rows)
    # the rate of the coded payload alone, as CompressAI counts it (header left out)
    payload = frame["payload_bytes"].astype(float) if "payload_bytes" in frame else math.nan
    frame["payload_bpp"] = 8.0 * payload / (frame["width"] * frame["height"])
    frame[MEASURES] = frame[MEASURES].astype(float)
    ok = frame[frame["error"].isna()]
    lines = []
    for key, group in frame.groupby(GROUP, sort=True):
        good = ok.loc[ok.index.intersection(group.index)]
        line = dict(zip(GROUP, key))
        line["images"] = len(good)
        line["errors"] = len(group) - len(good)
        line["lossless"] = int((good["psnr"] == math.inf).sum())
        for measure in MEASURES:
            line[measure] = _finite_mean(good[measure]) if len(good) else math.nan
        lines.append(line)
    out = pd.DataFrame(lines, columns=columns)
    return out.sort_values(["dataset", "codec", "bpp"], kind="stable").reset_index(drop=True)


def _fmt(value: float, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def format_table(summary: pd.DataFrame) -> str:
    """A plain-text table: one line per codec, dataset and quality."""
    header = ["dataset", "codec", "quality", "images", "bpp", "PSNR dB", "MS-SSIM",
              "MS-SSIM dB", "enc s", "dec s", "errors"]
    lines = []
    for r in summary.itertuples(index=False):
        psnr = _fmt(r.psnr, 2) + (f" (+{r.lossless} lossless)" if r.lossless else "")
        lines.append([r.dataset, r.codec, f"{r.quality:g}", str(r.images), _fmt(r.bpp, 4),
                      psnr, _fmt(r.ms_ssim, 4), _fmt(r.ms_ssim_db, 2), _fmt(r.encode_s, 4),
                      _fmt(r.decode_s, 4), str(r.errors) if r.errors else ""])
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    numeric = set(range(2, len(header)))

    def render(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([render(header), rule] + [render(line) for line in lines])
