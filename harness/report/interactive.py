"""The interactive RD plots of ``index.html``: plotly.js, drawn from a JSON block.

The page holds its curves as JSON (``<script type="application/json" id="rd-data">``)
and a small script of ours (``assets/rd.js``, inlined) turns them into plotly figures:
zoom, pan, hover (codec, quality, bpp, value), a click on a legend entry hides or shows
a curve, a metric selector and a log / linear rate axis per plot. plotly's offline
bundle is one file in the report folder (``plotly.min.js``), shared by the page and
never fetched from the network, so the report works from its folder alone.

Every curve of a dataset is in its plots; a crowded plot shows the anchor, the measured
and imported curves, the classical codecs and the few best learned published curves
(lowest BD-rate against the anchor), and lists the rest in its legend, one click away.
"""

from __future__ import annotations

import filecmp
import importlib.util
import json
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import HarnessError

BUNDLE = "plotly.min.js"  # its name in the report folder
SCRIPT = Path(__file__).with_name("assets") / "rd.js"
# point columns that are no quality metric (the rate, the setting, the timings)
NOT_METRICS = {"bpp", "bpp_payload", "bpp_file", "quality", "encode_s", "decode_s"}
METRIC_LABELS = {"psnr": "PSNR (dB)", "ms_ssim_db": "MS-SSIM (dB)", "ms_ssim": "MS-SSIM"}
# a static plot's metric -> the point column its interactive twin shows first
PANEL_METRIC = {"psnr": "psnr", "ms-ssim": "ms_ssim_db"}
BEST_LEARNED = 4  # published learned curves shown by default, per dataset
SYMBOLS = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond",
           "v": "triangle-down", "P": "cross", "X": "x", "<": "triangle-left",
           ">": "triangle-right", "h": "hexagon"}
DASHES = {"measured": "solid", "published": "dash", "imported": "dashdot"}


def bundle_source() -> Path:
    """plotly's offline bundle as installed with the ``plotly`` package."""
    spec = importlib.util.find_spec("plotly")
    path = Path(spec.origin).parent / "package_data" / BUNDLE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise HarnessError(
            "the report's interactive plots need plotly's offline bundle (plotly.min.js),"
            " which comes with the Python package plotly; it is not installed here. Install"
            " it (pip install 'plotly>=5.0') and render the report again; the results store"
            " is not affected.")
    return path


def write_bundle(folder: Path, previous: Path | None = None) -> Path:
    """``folder/plotly.min.js``: a hard link to ``previous``'s copy when that one is the
    same file (nothing written), else a copy of the installed bundle."""
    source, target = bundle_source(), folder / BUNDLE
    old = previous / BUNDLE if previous is not None else None
    if old is not None and old.is_file() and filecmp.cmp(old, source, shallow=False):
        try:
            os.link(old, target)
            return target
        except OSError:  # a file system without hard links: copy it
            pass
    shutil.copyfile(source, target)
    return target


def _numbers(values) -> list:
    """Floats for JSON: 6 significant digits, null for what is not a finite number."""
    return [float(f"{v:.6g}") if math.isfinite(v) else None
            for v in np.asarray(values, dtype=float)]


def _metrics(curves: Sequence) -> list[str]:
    """The point columns some curve has a value for: PSNR, MS-SSIM dB first."""
    found = []
    for curve in curves:
        for column in curve.points.columns:
            if column in NOT_METRICS or column in found:
                continue
            values = pd.to_numeric(curve.points[column], errors="coerce").to_numpy(float)
            if np.isfinite(values).any():
                found.append(column)
    first = [m for m in METRIC_LABELS if m in found]
    return first + sorted(m for m in found if m not in first)


def default_shown(curves: Sequence, anchor: str | None, bd: pd.DataFrame) -> set[str]:
    """Labels a dataset's plots show when the page opens: the anchor, every curve that is
    not published, the published classical codecs, and the ``BEST_LEARNED`` published
    learned curves with the lowest PSNR BD-rate against the anchor (MS-SSIM's when no
    PSNR one is known)."""
    from harness.report.plots import CLASSICAL, base_name

    shown = {c.label for c in curves
             if c.label == anchor or c.origin != "published" or base_name(c.name) in CLASSICAL}
    learned = {c.label for c in curves if c.label not in shown}
    if len(bd) and learned:
        mine = bd[bd["codec"].isin(learned) & np.isfinite(bd["bd_rate"].astype(float))]
        for metric in ("psnr", "ms-ssim"):
            ranked = mine[mine["metric"] == metric].sort_values(["bd_rate", "codec"])
            if len(ranked):
                shown.update(ranked["codec"].head(BEST_LEARNED))
                break
    return shown


def _rgb(color: tuple) -> str:
    return "rgb({},{},{})".format(*(round(255 * c) for c in color[:3]))


def figure_data(curves: Sequence, anchors: dict[str, str | None], bd: pd.DataFrame,
                log_rate: bool = False) -> dict:
    """What rd.js draws: per dataset its curves (points, style, shown or in the legend
    only) and the metrics they hold; ``log`` the rate axis the page opens with."""
    from harness.report.plots import ANCHOR_COLOR, base_name, curve_styles, ordered

    styles = curve_styles(c.name for c in curves)
    datasets = {}
    for dataset in sorted({c.dataset for c in curves}):
        anchor = anchors.get(dataset)
        mine = ordered([c for c in curves if c.dataset == dataset], anchor)
        metrics = _metrics(mine)
        bd_mine = bd[bd["dataset"] == dataset] if len(bd) else bd
        shown = default_shown(mine, anchor, bd_mine)
        entries = []
        for curve in mine:
            points = curve.points[np.isfinite(curve.points["bpp"].astype(float))]
            style = styles[base_name(curve.name)]
            is_anchor = curve.label == anchor
            values = {}
            for metric in metrics:
                if metric in points:
                    column = _numbers(pd.to_numeric(points[metric], errors="coerce"))
                    if any(v is not None for v in column):
                        values[metric] = column
            if not values:
                continue
            quality = points["quality"] if "quality" in points else [math.nan] * len(points)
            entries.append({
                "name": f"{curve.label} (anchor)" if is_anchor else curve.label,
                "origin": curve.origin, "shown": curve.label in shown,
                "color": _rgb(ANCHOR_COLOR if is_anchor else style.color),
                "symbol": SYMBOLS.get(style.marker, "circle")
                + ("" if curve.origin == "measured" else "-open"),
                "dash": DASHES.get(curve.origin, "dot"), "width": 3 if is_anchor else 1.5,
                "x": _numbers(points["bpp"]), "q": _numbers(quality), "y": values})
        if entries:
            rates = "/".join(sorted({c.rate for c in mine}))
            datasets[dataset] = {
                "anchor": anchor, "rate": rates, "curves": entries,
                "metrics": [[m, METRIC_LABELS.get(m, m)] for m in metrics
                            if any(m in e["y"] for e in entries)]}
    return {"log": bool(log_rate), "datasets": datasets}


def page_scripts(data: dict) -> str:
    """The JSON block, the bundle's ``<script src>`` and our script, for the page's end."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c")  # nothing in the data can close the script element
    return (f'<script type="application/json" id="rd-data">{text}</script>\n'
            f'<script src="{BUNDLE}"></script>\n'
            f"<script>{SCRIPT.read_text(encoding='utf-8')}</script>\n")
