"""How a BD-rate spreads over the images: each image's own BD-rate (its curve against the
anchor's curve on the same image, :func:`harness.uncertainty.per_image_bd`), drawn as
one dot per image with the quartiles as a box, per dataset, for every measured curve
whose dataset has a measured anchor (published and imported curves have only means).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report.plots import save_figure, slug
from harness.report.tables import Column, Table

# matplotlib 3.10 added ``orientation`` and deprecated ``vert`` (removed in 3.13)
_HORIZONTAL = ({"orientation": "horizontal"}
               if tuple(int(p) for p in matplotlib.__version__.split(".")[:2]) >= (3, 10)
               else {"vert": False})

SECTION_ID = "per-image-bd"


@dataclass(frozen=True)
class Spread:
    dataset: str
    anchor: str
    png: Path
    svg: Path
    codecs: int
    images: int
    refused: int  # (image, curve) pairs without a BD-rate (the guards: overlap, spacing)


def per_image_rates(curves: Sequence, anchors: dict[str, str | None], method: str,
                    **guards) -> pd.DataFrame:
    """Every image's BD-rate (PSNR) of each measured curve against its dataset's anchor."""
    from harness.uncertainty import per_image_bd

    parts = []
    for dataset, anchor in anchors.items():
        mine = [c for c in curves if c.dataset == dataset and c.per_image is not None]
        if anchor and len(mine) > 1:
            parts.append(per_image_bd(mine, anchor, "psnr", method, **guards))
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame()
    rates = pd.concat(parts, ignore_index=True)
    names = {(c.dataset, h): i for c in curves if c.per_image is not None
             for h, i in zip(c.per_image["image_hash"], c.per_image["image_id"])}
    rates.insert(4, "image_id", [names.get((d, h)) for d, h in zip(rates["dataset"],
                                                                      rates["image_hash"])])
    return rates


def _figure(rates: pd.DataFrame, anchor: str, title: str | None, width: float) -> Figure:
    rates = rates[np.isfinite(rates["bd_rate"])]  # images the guards refused are not drawn
    codecs = sorted(set(rates["codec"]), key=lambda c: rates.loc[rates["codec"] == c,
                                                                  "bd_rate"].median())
    fig = Figure(figsize=(width, 0.9 + 0.32 * len(codecs)), layout="constrained")
    ax = fig.add_subplot()
    jitter = np.random.default_rng(0)  # the same dots on every render
    for row, codec in enumerate(codecs):
        values = rates.loc[rates["codec"] == codec, "bd_rate"].to_numpy()
        ax.boxplot(values, positions=[row], widths=0.6, showfliers=False,
                   medianprops={"color": "black"}, **_HORIZONTAL)
        ax.scatter(values, row + jitter.uniform(-0.18, 0.18, len(values)), s=9, alpha=0.6,
                   color="tab:blue", linewidths=0)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(codecs)), codecs)
    ax.set_xlabel(f"BD-rate per image against {anchor}, PSNR (%)")
    ax.grid(axis="x")
    if title:
        ax.set_title(title)
    return fig


def render(rates: pd.DataFrame, folder: Path) -> list[Spread]:
    """One figure per dataset: PNG and SVG (the page shows it) files in ``folder``."""
    spreads = []
    if rates.empty:
        return spreads
    for (dataset, anchor), group in rates.groupby(["dataset", "anchor"], sort=True):
        if not np.isfinite(group["bd_rate"]).any():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        key = f"{slug(dataset)}_per_image_bd"
        # PNG and SVG (vector) only: a PDF's embedded font would add 0.2 s to every report
        png, svg = save_figure(_figure(group, anchor, f"{dataset}: against {anchor}", 4.5),
                               folder / key, salt=key, pdf=False)
        drawn = group[np.isfinite(group["bd_rate"])]
        spreads.append(Spread(dataset, anchor, png, svg, drawn["codec"].nunique(),
                              drawn["image_hash"].nunique(), len(group) - len(drawn)))
    return spreads


def section(spreads: Sequence[Spread], folder_name: str) -> str:
    """The report's section of per-image BD-rates ('' when there is none)."""
    if not spreads:
        return ""
    figures = "".join(
        f'<figure id="spread-{slug(s.dataset)}"><img src="{folder_name}/{s.svg.name}"'
        f' alt="BD-rate per image, {html.escape(s.dataset)}" style="max-width:100%">'
        f"<figcaption>{html.escape(s.dataset)}:"
        f" {s.images} images, {s.codecs} curves against {html.escape(s.anchor)}"
        + (f"; {s.refused} image-curve pairs without a BD-rate (the guards refused them:"
           " see tables/per_image_bd.csv)" if s.refused else "") + ". Files:"
        f' <a href="{folder_name}/{s.png.name}">PNG</a> ·'
        f' <a href="{folder_name}/{s.svg.name}">SVG</a></figcaption></figure>'
        for s in spreads)
    return (f'<section id="{SECTION_ID}"><h2>BD-rate per image</h2><p class="muted">Each dot'
            " is one image's BD-rate (PSNR): that image's curve against the anchor's curve on"
            " the same image, same interpolation and guards as the tables; the box spans the"
            " quartiles, the line is the median. A wide spread means the mean BD-rate depends"
            " on which images are in the set (the tables' intervals say how much).</p>"
            f"{figures}</section>")


def table(rates: pd.DataFrame) -> Table:
    """The per-image BD-rates as a table (CSV for one's own analysis)."""
    columns = (Column("dataset", "dataset"), Column("anchor", "anchor"), Column("codec", "codec"),
               Column("image_id", "image"),
               Column("image_hash", "pixel hash", latex=False),
               Column("bd_rate", "BD-rate PSNR (%)", 2))
    frame = rates.reindex(columns=[c.key for c in columns])
    return Table("per_image_bd", "BD-rate per image", frame, columns,
                 caption="Each image's curve against the anchor's curve on the same image.")
