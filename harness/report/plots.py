"""Rate-distortion plots (matplotlib figures drawn off-screen, no pyplot, no global state).

One plot per dataset and metric: PSNR-bpp and MS-SSIM (dB)-bpp, one line per curve with
markers at its points, on a linear or (``log_rate``) logarithmic rate axis. The anchor
is drawn thicker, in black, and listed first; published curves are dashed, imported ones
dash-dotted. A codec keeps its colour on every plot, and a published curve of the same
codec (``jpeg@published``) shares the measured one's colour.
Two sizes: ``column`` (3.5 in wide, fonts 7-8 pt, for a paper column; the PNG, SVG and
PDF files) and ``page`` (larger). The HTML page draws its plots interactively instead
(:mod:`harness.report.interactive`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

METRIC_AXIS = {"psnr": "PSNR (dB)", "ms-ssim": "MS-SSIM (dB)"}
LINESTYLES = {"measured": "-", "published": "--", "imported": "-."}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
PNG_DPI = 200
ANCHOR_COLOR = (0.0, 0.0, 0.0)
PLOT_LIMIT = 12  # curves per plot; optional (published) curves beyond it are left out
CLASSICAL = ("vtm", "hm", "bpg444", "bpg", "av1", "jpeg2000", "webp", "jpeg")

SIZES = {
    # width, base height (in), font size, tick/legend font size
    "column": (3.5, 2.6, 8.0, 7.0),
    "page": (7.2, 4.4, 10.0, 9.0),
}

_RC = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "path.simplify": False,
}


def base_name(name: str) -> str:
    """``vtm@published`` -> ``vtm``: the codec a curve shows."""
    return name.split("@", 1)[0]


def plain_text(text: str) -> str:
    """Text matplotlib shows as written: ``$`` escaped so that no name is read as math
    (a curve named ``$\\frac{a}$`` would otherwise fail to render)."""
    return text.replace("$", r"\$")


def slug(text: str) -> str:
    """A file-name and HTML-id safe version of a dataset id (``folder:x`` -> ``folder_x``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


class RDCache:
    """``curve.rd(metric)`` computed once per curve and metric."""

    def __init__(self):
        self._values: dict[tuple[int, str], tuple] = {}

    def rd(self, curve, metric: str):
        key = (id(curve), metric)
        found = self._values.get(key)
        if found is None or found[0] is not curve:
            found = (curve, curve.rd(metric))
            self._values[key] = found
        return found[1]

    def has(self, curve, metric: str) -> bool:
        return len(self.rd(curve, metric)[0]) > 0


@dataclass(frozen=True)
class Style:
    color: tuple
    marker: str


def curve_styles(names: Iterable[str]) -> dict[str, Style]:
    """A stable colour and marker per codec (by base name, sorted)."""
    from matplotlib import colormaps

    bases = sorted({base_name(n) for n in names})
    palette = colormaps["tab10"].colors if len(bases) <= 10 else colormaps["tab20"].colors
    styles = {}
    for i, base in enumerate(bases):
        marker = MARKERS[(i + i // len(palette)) % len(MARKERS)]
        styles[base] = Style(tuple(palette[i % len(palette)]), marker)
    return styles


def select_curves(curves: Sequence, metric: str, anchor: str | None, *,
                  limit: int = PLOT_LIMIT, optional=None,
                  cache: RDCache | None = None) -> tuple[list, list]:
    """(drawn, left out) for one plot.

    Every curve with values for ``metric`` is drawn, except that ``optional`` ones
    (default: published curves) only fill the room left below ``limit``, in this order:
    the published version of a drawn codec, classical codecs (VTM, HM, BPG, AV1,
    JPEG 2000, WebP, JPEG), authors' curves, then CompressAI's runs. The anchor is
    always drawn.
    """
    if optional is None:
        def optional(curve):
            return curve.origin == "published"
    cache = cache or RDCache()
    have = [c for c in curves if cache.has(c, metric)]
    fixed = [c for c in have if c.label == anchor or not optional(c)]
    fixed_ids = {id(c) for c in fixed}
    drawn_bases = {base_name(c.name) for c in fixed}

    def rank(curve):
        base = base_name(curve.name)
        if base in drawn_bases:
            return (0, 0, curve.label)
        if base in CLASSICAL:
            return (1, CLASSICAL.index(base), curve.label)
        return (3 if base.startswith("compressai-") else 2, 0, curve.label)

    rest = sorted((c for c in have if id(c) not in fixed_ids), key=rank)
    room = max(0, limit - len(fixed))
    return fixed + rest[:room], rest[room:]


def ordered(curves: Sequence, anchor: str | None) -> list:
    """Legend order: the anchor, then measured, imported and published curves."""
    rank = {"measured": 0, "imported": 1, "published": 2}
    return sorted(curves, key=lambda c: (c.label != anchor, rank.get(c.origin, 3), c.label))


def rd_figure(curves: Sequence, metric: str, *, anchor: str | None = None,
              title: str | None = None, size: str = "column",
              styles: dict[str, Style] | None = None,
              cache: RDCache | None = None, log_rate: bool = False) -> Figure | None:
    """The RD figure of ``curves`` (one dataset) for ``metric``; None if none has values.

    ``log_rate``: a logarithmic bpp axis, which spreads out the low rates."""
    cache = cache or RDCache()
    shown = [c for c in curves if cache.has(c, metric)]
    if not shown:
        return None
    styles = styles or curve_styles(c.name for c in shown)
    width, height, font, small = SIZES[size]
    shown = ordered(shown, anchor)
    many = len(shown) > 6 if size == "column" else False
    longest = max(len(c.label) for c in shown) + (9 if anchor else 0)
    if many:
        ncols = max(1, min(3, int(3.45 // (0.054 * longest + 0.45))))
        rows = -(-len(shown) // ncols)
        height += 0.15 * rows + 0.15
    elif size == "page":
        height = max(height, 0.22 * len(shown) + 0.8)
        width += max(0.0, 0.075 * longest - 1.6)
    with matplotlib.rc_context(_RC | {"font.size": font, "axes.labelsize": font,
                                      "axes.titlesize": font, "xtick.labelsize": small,
                                      "ytick.labelsize": small, "legend.fontsize": small}):
        fig = Figure(figsize=(width, height), layout="constrained")
        ax = fig.add_subplot()
        for curve in shown:
            bpp, quality = cache.rd(curve, metric)
            style = styles.get(base_name(curve.name)) or Style((0.3, 0.3, 0.3), "o")
            is_anchor = curve.label == anchor
            if is_anchor:
                style = Style(ANCHOR_COLOR, style.marker)
            label = plain_text(f"{curve.label} (anchor)" if is_anchor else curve.label)
            ax.plot(bpp, quality, linestyle=LINESTYLES.get(curve.origin, ":"),
                    color=style.color, marker=style.marker,
                    markersize=(4.2 if is_anchor else 3.0) * (1.3 if size == "page" else 1.0),
                    linewidth=(2.4 if is_anchor else 1.0) * (1.3 if size == "page" else 1.0),
                    markerfacecolor=style.color if curve.origin == "measured" else "white",
                    zorder=4 if is_anchor else 2, label=label, gid=f"curve-{slug(curve.label)}")
        # the axes say which conventions the points follow
        ax.set_xlabel(f"bpp ({'/'.join(sorted({c.rate for c in shown}))} rate)")
        ylabel = METRIC_AXIS.get(metric, metric)
        if metric == "ms-ssim":
            ylabel += f" [{'/'.join(sorted({c.aggregate for c in shown}))}]"
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(plain_text(title))
        if log_rate:
            ax.set_xscale("log")
        ax.grid(True, which="both" if log_rate else "major")
        ax.margins(x=0.03, y=0.05)
        if size == "page":
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                      frameon=False, handlelength=2.4)
        elif many:
            fig.legend(loc="outside lower center", ncols=ncols, frameon=False,
                       handlelength=2.2, columnspacing=1.0)
        else:
            ax.legend(loc="lower right", frameon=True, framealpha=0.85, handlelength=2.2)
    return fig


def save_figure(fig: Figure, base: Path, salt: str, pdf: bool = True) -> list[Path]:
    """``base.png`` (dpi >= 200), ``base.svg`` and, with ``pdf``, ``base.pdf`` (fonts
    embedded as TrueType, which costs about 0.2 s a figure; no date, so the same figure
    gives the same bytes)."""
    files = [base.with_suffix(s) for s in (".png", ".svg", ".pdf")[:3 if pdf else 2]]
    with matplotlib.rc_context(_RC | {"svg.hashsalt": salt, "pdf.fonttype": 42}):
        fig.savefig(files[0], dpi=PNG_DPI, facecolor="white", metadata={"Software": None})
        fig.set_layout_engine("none")  # keep the layout just computed (it is dpi-free)
        fig.savefig(files[1], format="svg", metadata={"Date": None, "Creator": None})
        if pdf:
            fig.savefig(files[2], format="pdf", metadata={"CreationDate": None,
                                                          "Creator": None, "Producer": None})
    return files


@dataclass(frozen=True)
class Plot:
    dataset: str
    metric: str
    png: Path
    svg: Path
    pdf: Path
    curves: tuple[str, ...]
    left_out: tuple[str, ...] = ()


def render_plots(curves: Sequence, anchors: dict[str, str | None], folder: Path,
                 metrics: Sequence[str] = ("psnr", "ms-ssim"), *, limit: int = PLOT_LIMIT,
                 optional=None, cache: RDCache | None = None,
                 log_rate: bool = False) -> list[Plot]:
    """Every dataset x metric plot, as column-width PNG, SVG and PDF files in ``folder``.

    See :func:`select_curves` for which curves a crowded plot leaves out.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cache = cache or RDCache()
    jobs = []
    for dataset in sorted({c.dataset for c in curves}):
        mine = [c for c in curves if c.dataset == dataset]
        anchor = anchors.get(dataset)
        for metric in metrics:
            drawn, left_out = select_curves(mine, metric, anchor, limit=limit,
                                            optional=optional, cache=cache)
            if drawn:
                jobs.append((dataset, metric, anchor, drawn, left_out))
    styles = curve_styles(c.name for job in jobs for c in job[3])
    plots = []
    for dataset, metric, anchor, drawn, left_out in jobs:
        key = f"{slug(dataset)}_{metric}"
        fig = rd_figure(drawn, metric, anchor=anchor, styles=styles, size="column",
                        cache=cache, log_rate=log_rate)
        files = save_figure(fig, folder / key, salt=key)
        names = tuple(c.label for c in ordered(drawn, anchor))
        plots.append(Plot(dataset, metric, *files, names, tuple(c.label for c in left_out)))
    return plots
