"""Report tables: one description of a table, rendered as Markdown, CSV, LaTeX and HTML.

A :class:`Table` is a DataFrame plus a description of its columns: header text,
number of decimals, and which direction is "best" (``"max"`` or ``"min"``). The best
value of each such column is marked (bold) within each group of ``group_by`` (for
example per dataset). CSV keeps the full precision and machine column names so it
parses back to the same numbers; the other formats round for reading.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

METRIC_LABELS = {"psnr": "PSNR", "ms-ssim": "MS-SSIM"}


@dataclass(frozen=True)
class Column:
    """How one column is shown. ``digits`` None means text, 0 an integer."""

    key: str
    header: str
    digits: int | None = None
    best: str | None = None  # "max" | "min" | None
    latex: bool = True  # shown in the LaTeX version
    scale: float = 1.0  # shown value = stored value x scale (CSV keeps the stored value)

    @property
    def numeric(self) -> bool:
        return self.digits is not None


@dataclass(frozen=True, eq=False)
class Table:
    name: str
    title: str
    frame: pd.DataFrame
    columns: tuple[Column, ...]
    group_by: tuple[str, ...] = ()
    caption: str = ""
    best: dict = field(default=None, compare=False)  # key -> bool array, filled lazily

    def __post_init__(self):
        if self.best is None:
            object.__setattr__(self, "best", best_marks(self.frame, self.columns, self.group_by))

    def subset(self, mask: np.ndarray | pd.Series, name: str, title: str | None = None) -> Table:
        """The rows where ``mask`` holds, keeping the best marks of the whole table."""
        mask = np.asarray(mask, dtype=bool)
        best = {key: marks[mask] for key, marks in self.best.items()}
        return replace(self, name=name, title=title or self.title,
                       frame=self.frame[mask].reset_index(drop=True), best=best)


# --- best values ------------------------------------------------------------------------

def best_marks(frame: pd.DataFrame, columns: Sequence[Column],
               group_by: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Per column with a ``best`` direction: True where the value is the group's best.

    Only finite values compete; ties are all marked.
    """
    marks = {}
    for col in columns:
        if col.best not in ("max", "min") or col.key not in frame:
            continue
        values = pd.to_numeric(frame[col.key], errors="coerce").astype(float)
        finite = values.where(np.isfinite(values))
        if group_by:
            keys = [frame[g] for g in group_by]
            target = finite.groupby(keys, sort=False).transform(col.best)
        else:
            target = pd.Series(getattr(finite, col.best)(), index=finite.index)
        marks[col.key] = ((finite == target) & finite.notna()).to_numpy()
    return marks


# --- cell formatting --------------------------------------------------------------------

def _is_missing(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_cells(values: Sequence, column: Column, *, missing: str = "-",
                 infinity: str = "inf") -> list[str]:
    """Text of each cell of one column."""
    out = []
    digits = column.digits
    for value in values:
        if _is_missing(value):
            out.append(missing)
        elif digits is None:
            out.append(str(value))
        else:
            number = float(value) * column.scale
            if math.isinf(number):
                out.append(infinity if number > 0 else "-" + infinity)
            elif digits == 0:
                out.append(f"{number:.0f}")
            else:
                out.append(f"{number:.{digits}f}")
    return out


def _column_values(table: Table, column: Column) -> list:
    if column.key in table.frame:
        return table.frame[column.key].tolist()
    return [None] * len(table.frame)


# --- Markdown ---------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table, heading: str = "###") -> str:
    cols = table.columns
    cells = []
    for col in cols:
        texts = format_cells(_column_values(table, col), col)
        marks = table.best.get(col.key)
        texts = [_md_escape(t) for t in texts]
        if marks is not None:
            texts = [f"**{t}**" if m else t for t, m in zip(texts, marks)]
        cells.append(texts)
    lines = ["| " + " | ".join(_md_escape(c.header) for c in cols) + " |",
             "|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in zip(*cells))
    out = []
    if table.title:
        out.append(f"{heading} {table.title}\n")
    if table.caption:
        out.append(table.caption + "\n")
    out.append("\n".join(lines) + "\n")
    return "\n".join(out)


# --- CSV --------------------------------------------------------------------------------

def to_csv(table: Table) -> str:
    keys = [c.key for c in table.columns]
    frame = table.frame.reindex(columns=keys)
    return frame.to_csv(index=False, lineterminator="\n")


# --- LaTeX ------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    """Text safe in a LaTeX table cell (``jpeg_444`` -> ``jpeg\\_444``)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_number(text: str) -> str:
    if text == "-" + r"$\infty$":
        return r"$-\infty$"
    if text.startswith("-") and text != "--":
        return "$-$" + text[1:]
    return text


def to_latex(table: Table) -> str:
    """A booktabs ``tabular``; the best value of each marked column in \\textbf{}."""
    cols = [c for c in table.columns if c.latex]
    cells = []
    for col in cols:
        texts = format_cells(_column_values(table, col), col, missing="--",
                             infinity=r"$\infty$")
        if not col.numeric:
            texts = [latex_escape(t) for t in texts]
        else:
            texts = [_latex_number(t) for t in texts]
        marks = table.best.get(col.key)
        if marks is not None:
            texts = [rf"\textbf{{{t}}}" if m else t for t, m in zip(texts, marks)]
        cells.append(texts)
    spec = "".join("r" if c.numeric else "l" for c in cols)
    lines = []
    if table.title:
        lines.append(f"% {table.title}")
    if table.caption:
        lines.extend(f"% {line}" for line in table.caption.splitlines())
    lines += ["% requires \\usepackage{booktabs}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
              " & ".join(latex_escape(c.header) for c in cols) + r" \\", r"\midrule"]
    groups = _group_ids(table)
    previous = None
    for i, row in enumerate(zip(*cells)):
        if previous is not None and groups[i] != previous:
            lines.append(r"\midrule")
        previous = groups[i]
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _group_ids(table: Table) -> list:
    if not table.group_by or table.frame.empty:
        return [0] * len(table.frame)
    return list(zip(*(table.frame[g].tolist() for g in table.group_by)))


# --- HTML -------------------------------------------------------------------------------

def _sort_value(value, column: Column) -> str:
    if _is_missing(value):
        return ""
    number = float(value)
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return repr(number)


LONG_TEXT = 90


def _long_cell(escaped: str) -> str:
    """A long text cell: its start, the whole text on a click."""
    cut = escaped[:LONG_TEXT - 20].rsplit(" ", 1)[0].rsplit("&", 1)[0]
    return (f'<td class="long"><details><summary>{cut} …</summary>{escaped}</details></td>')


def to_html(table: Table, table_id: str | None = None) -> str:
    """A sortable HTML table (the page's script sorts on a header click)."""
    cols = table.columns
    head = "".join(
        f'<th data-type="{"num" if c.numeric else "text"}" title="sort by {html.escape(c.header)}">'
        f"{html.escape(c.header)}</th>" for c in cols)
    columns = []
    for col in cols:
        values = _column_values(table, col)
        texts = [html.escape(t) for t in format_cells(values, col, missing="–")]
        marks = table.best.get(col.key)
        if col.numeric:
            keys = [_sort_value(v, col) for v in values]
            if marks is not None:
                cells = [f'<td class="best" data-v="{k}">{t}</td>' if m
                         else f'<td data-v="{k}">{t}</td>' for t, k, m in zip(texts, keys, marks)]
            else:
                cells = [f'<td data-v="{k}">{t}</td>' for t, k in zip(texts, keys)]
        else:
            cells = [_long_cell(t) if len(t) > LONG_TEXT else f"<td>{t}</td>" for t in texts]
        columns.append(cells)
    body = "\n".join("<tr>" + "".join(row) + "</tr>" for row in zip(*columns))
    ident = html.escape(table_id or table.name)
    return (f'<table class="sortable" id="{ident}">\n<thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody>\n</table>")


def write_table(table: Table, folder: Path) -> list[Path]:
    """``<name>.md``, ``<name>.csv`` and ``<name>.tex`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, render in ((".md", to_markdown), (".csv", to_csv), (".tex", to_latex)):
        path = folder / f"{table.name}{suffix}"
        path.write_text(render(table), encoding="utf-8")
        paths.append(path)
    return paths


# --- the report's tables ----------------------------------------------------------------

MEANS_COLUMNS = (
    Column("dataset", "dataset"),
    Column("codec", "codec"),
    Column("quality", "quality", 4, latex=True),
    Column("images", "images", 0),
    Column("payload_bpp", "bpp", 4),
    Column("bpp", "file bpp", 4),
    Column("psnr", "PSNR (dB)", 2, "max"),
    Column("ms_ssim", "MS-SSIM", 4, "max"),
    Column("ms_ssim_db", "MS-SSIM (dB)", 2, "max"),
    Column("encode_s", "enc (ms)", 2, "min", scale=1e3),
    Column("decode_s", "dec (ms)", 2, "min", scale=1e3),
    Column("lossless", "lossless", 0),
    Column("errors", "errors", 0),
)


def latest_fingerprints(rows: pd.DataFrame) -> dict[str, str]:
    """Codec -> the fingerprint of its most recent run (the one shown by its plain name)."""
    if rows.empty:
        return {}
    runs = pd.to_numeric(rows["run_id"], errors="coerce").fillna(0)
    ordered = rows.assign(_run=runs).sort_values("_run", kind="stable")
    return ordered.groupby("codec")["codec_fingerprint"].last().to_dict()


def codec_labels(frame: pd.DataFrame, latest: dict[str, str] | None = None) -> pd.Series:
    """The codec name, or ``codec@fingerprint`` for a codec's older fingerprints.

    Without ``latest``, every fingerprint of a codec measured under several is named.
    """
    if frame.empty:
        return pd.Series([], dtype=object)
    if latest is None:
        plain = frame.groupby("codec")["codec_fingerprint"].transform("nunique") <= 1
    else:
        plain = frame["codec_fingerprint"] == frame["codec"].map(latest)
    return frame["codec"].where(plain, frame["codec"] + "@" + frame["codec_fingerprint"])


def means_table(summary: pd.DataFrame, latest: dict[str, str] | None = None,
                conventions: str = "") -> Table:
    """Per codec and quality means (from :func:`harness.aggregate.summarize`)."""
    frame = summary.copy()
    frame["codec"] = codec_labels(summary, latest)
    frame = frame.sort_values(["dataset", "codec", "bpp"], kind="stable").reset_index(drop=True)
    frame = frame[[c.key for c in MEANS_COLUMNS]]
    frame["quality"] = frame["quality"].astype(float)
    columns = tuple(replace(c, digits=_quality_digits(frame["quality"])) if c.key == "quality"
                    else c for c in MEANS_COLUMNS)
    return Table("means", "Per-quality means", frame, columns, group_by=("dataset",),
                 caption="Arithmetic means over images; bpp is the payload's, file bpp the "
                         "whole file's; best value per dataset in bold (highest PSNR / MS-SSIM,"
                         f" lowest time). {conventions}".rstrip())


def _quality_digits(values: pd.Series) -> int:
    finite = values[np.isfinite(values)]
    if finite.empty or (finite == finite.round()).all():
        return 0
    return 2


BD_METRIC_ORDER = ("psnr", "ms-ssim")


def bd_wide(bd: pd.DataFrame) -> pd.DataFrame:
    """The long BD table (one row per dataset, metric, codec) as one row per codec."""
    metrics = [m for m in BD_METRIC_ORDER if m in set(bd["metric"])] if len(bd) else []
    metrics += sorted(set(bd["metric"]) - set(metrics)) if len(bd) else []
    keys = ["dataset", "anchor", "codec"]
    out = bd[keys].drop_duplicates().reset_index(drop=True) if len(bd) else pd.DataFrame(
        columns=keys)
    for metric in metrics:
        part = bd[bd["metric"] == metric]
        part = part[keys + ["bd_rate", "bd_quality", "points"]].assign(
            **({"ci": [interval_text(lo, hi) for lo, hi in zip(part["ci_low"], part["ci_high"])]}
               if "ci_low" in bd else {}))
        part = part.rename(columns={"bd_rate": f"bd_rate_{metric}",
                                    "bd_quality": f"bd_quality_{metric}",
                                    "points": f"points_{metric}", "ci": f"ci_{metric}"})
        out = out.merge(part, on=keys, how="left")
    warnings, reasons = [], []
    for row in out.itertuples(index=False):
        found = bd[(bd["dataset"] == row.dataset) & (bd["codec"] == row.codec)
                   & (bd["anchor"] == row.anchor)]
        texts = [f"{METRIC_LABELS.get(m, m)}: {w}" for m, w in zip(found["metric"],
                                                                     found["warning"]) if w]
        warnings.append("; ".join(texts))
        codes = found["reason"] if "reason" in found else []
        reasons.append(" ".join(f"{m}:{c}" for m, c in zip(found["metric"], codes) if c))
    out["warning"] = warnings
    out["reason"] = reasons
    out.attrs["metrics"] = metrics
    return out


def interval_text(low: float, high: float) -> str:
    """A BD-rate interval as the tables show it: "[low, high]", "~" when it spans 0."""
    from harness.uncertainty import spans_zero

    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f"[{low:.2f}, {high:.2f}]" + ("~" if spans_zero(low, high) else "")


def bd_columns(metrics: Sequence[str], intervals: bool = False) -> tuple[Column, ...]:
    from harness.curves import quality_sign, quality_unit

    cols = [Column("dataset", "dataset"), Column("anchor", "anchor"), Column("codec", "codec"),
            Column("origin", "origin")]
    for metric in metrics:
        label = METRIC_LABELS.get(metric, metric)
        cols.append(Column(f"bd_rate_{metric}", f"BD-rate {label} (%)", 2, "min"))
        if intervals:
            cols.append(Column(f"ci_{metric}", f"95 % interval {label}"))
        unit = quality_unit(metric)
        cols.append(Column(f"bd_quality_{metric}", f"BD-{label}" + (f" ({unit})" if unit else ""),
                           3, "max" if quality_sign(metric) > 0 else "min"))
    for metric in metrics:
        label = METRIC_LABELS.get(metric, metric)
        cols.append(Column(f"points_{metric}", f"points {label}", 0, latex=False))
    cols.append(Column("reason", "reason"))
    cols.append(Column("warning", "warning", latex=False))
    return tuple(cols)


ORIGIN_ORDER = {"measured": 0, "imported": 1, "published": 2}


def bd_summary_table(bd: pd.DataFrame, method: str = "pchip",
                     origins: dict[tuple[str, str], str] | None = None,
                     conventions: str = "", interval: str = "") -> Table:
    """BD-rate (lowest best) and BD quality (highest best) per codec, per dataset.

    ``origins`` maps (dataset, curve name) to the curve's origin; rows are sorted by
    dataset, origin (measured first) and name.
    """
    wide = bd_wide(bd)
    metrics = wide.attrs.get("metrics", [])
    origins = origins or {}
    wide.insert(3, "origin", [origins.get((d, c), "") for d, c in zip(wide["dataset"],
                                                                     wide["codec"])])
    rank = wide["origin"].map(ORIGIN_ORDER).fillna(len(ORIGIN_ORDER))
    wide = (wide.assign(_rank=rank).sort_values(["dataset", "_rank", "codec"], kind="stable")
            .drop(columns="_rank").reset_index(drop=True))
    return Table("bd", "Bjøntegaard deltas", wide, bd_columns(metrics, "ci_low" in bd),
                 group_by=("dataset",),
                 caption=f"Against the anchor of each dataset, {method} interpolation; "
                         "negative BD-rate = fewer bits for the same quality. Best per "
                         "dataset in bold; reason: why a value is missing or partial"
                         f" (METRIC:CODE). {conventions}".rstrip().rstrip(".") + "."
                         + (" BD-rate intervals (curves with per-image rows only):"
                            f" {interval.removeprefix('interval: ')}." if interval else ""))


PER_IMAGE_COLUMNS = (
    Column("dataset", "dataset"),
    Column("image_id", "image"),
    Column("codec", "codec"),
    Column("quality", "quality", 2),
    Column("width", "width", 0, latex=False),
    Column("height", "height", 0, latex=False),
    Column("bytes", "bytes", 0),
    Column("bpp", "bpp", 4),
    Column("psnr", "PSNR (dB)", 2),
    Column("ms_ssim", "MS-SSIM", 4),
    Column("ms_ssim_db", "MS-SSIM (dB)", 2),
    Column("encode_s", "enc (ms)", 2, scale=1e3),
    Column("decode_s", "dec (ms)", 2, scale=1e3),
    Column("error", "error"),
    Column("note", "note", latex=False),
)


def per_image_table(rows: pd.DataFrame | Sequence[dict]) -> Table:
    """One line per image and measurement (no best marks: qualities differ per row)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows)
    keys = [c.key for c in PER_IMAGE_COLUMNS]
    latest = latest_fingerprints(frame) if len(frame) else {}
    frame = frame.reindex(columns=keys + ["codec_fingerprint"])
    if len(frame):
        frame["codec"] = codec_labels(frame, latest)
        frame = frame.sort_values(["dataset", "image_id", "codec", "bpp"], kind="stable")
    frame = frame[keys].reset_index(drop=True)
    for key in ("quality", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s"):
        frame[key] = pd.to_numeric(frame[key], errors="coerce").astype(float)
    columns = tuple(replace(c, digits=_quality_digits(frame["quality"])) if c.key == "quality"
                    else c for c in PER_IMAGE_COLUMNS)
    return Table("per_image", "Per-image results", frame, columns, group_by=("dataset",))
