"""``index.html``: one page that needs nothing but its report folder (CSS and scripts
inline, plotly's bundle beside it; no network request).

The RD plots are interactive (:mod:`harness.report.interactive`); each links its
column-width PNG, SVG and PDF files.

Tables sort on a click on their header (again: reverse). The address fragment
``#sort=<table id>:<column index>:<asc|desc>`` sorts a table when the page opens, so a
sorted view can be bookmarked or shared.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import replace

from harness.report import interactive
from harness.report.plots import METRIC_AXIS, Plot, slug
from harness.report.runinfo import RunSummary
from harness.report.tables import Table, to_html

CSS = """
:root { --fg: #1d1f23; --muted: #5d636e; --line: #d9dce1; --head: #f3f4f6;
        --best: #e3f2e6; --accent: #24548f; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); margin: 0; background: #fff; }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
main { padding: 0 28px 40px; max-width: 1400px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 10px 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.notes { background: #fbf7e9; border: 1px solid #eadfb8; padding: 8px 14px 8px 30px;
         margin: 10px 0; }
.side { display: flex; flex-wrap: wrap; gap: 0 36px; align-items: flex-start; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr));
         gap: 12px 20px; }
figure { margin: 0; }
figure svg { width: 100%; height: auto; display: block; }
.rd-controls { font-size: 13px; color: var(--muted); display: flex; gap: 18px;
               align-items: center; margin: 2px 0 4px; }
.rd-controls select { font: inherit; }
.rd-plot { height: 460px; }
.plots figure.wide { grid-column: 1 / -1; }
figcaption { font-size: 12px; color: var(--muted); }
figcaption a { color: var(--accent); }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0 12px; }
td { white-space: nowrap; }
td.long, td.mono { white-space: normal; }
th, td { padding: 3px 9px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: var(--head); cursor: pointer; user-select: none; white-space: nowrap;
     position: sticky; top: 0; }
th[data-type="num"], td[data-v] { text-align: right; font-variant-numeric: tabular-nums; }
th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 10px; }
th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 10px; }
tbody tr:nth-child(even) { background: #fafbfc; }
td.long { font-size: 12px; min-width: 20em; max-width: 44em; color: var(--muted); }
td.long details { margin: 0; }
td.long summary { color: var(--muted); }
td.long details[open] summary { display: none; }
td.best { background: var(--best); font-weight: 600; }
td code, .mono { font: 12px ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
details { margin: 8px 0; }
summary { cursor: pointer; color: var(--accent); }
.muted { color: var(--muted); }
footer { color: var(--muted); font-size: 12px; padding: 10px 28px 30px; }
"""

SCRIPT = """
(function () {
  "use strict";
  function key(cell, numeric) {
    if (!cell) { return null; }
    var v = cell.getAttribute("data-v");
    if (v === null) { v = cell.textContent; }
    if (numeric) { var x = parseFloat(v); return isNaN(x) ? null : x; }
    return v.toLowerCase();
  }
  function sortTable(table, col, dir) {
    var head = table.tHead.rows[0].cells;
    if (col < 0 || col >= head.length) { return false; }
    var numeric = head[col].getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return [key(row.cells[col], numeric), i, row];
    });
    rows.sort(function (a, b) {
      if (a[0] === b[0]) { return a[1] - b[1]; }
      if (a[0] === null) { return 1; }
      if (b[0] === null) { return -1; }
      var c = a[0] < b[0] ? -1 : 1;
      return dir === "desc" ? -c : c;
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r[2]); });
    body.appendChild(frag);
    for (var i = 0; i < head.length; i++) { head[i].removeAttribute("aria-sort"); }
    head[col].setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
    return true;
  }
  function fromHash() {
    var m = /^#sort=([^:]+):(\\d+):(asc|desc)$/.exec(decodeURIComponent(location.hash));
    if (!m) { return; }
    var table = document.getElementById(m[1]);
    if (table && table.tHead) {
      var d = table.closest("details"); if (d) { d.open = true; }
      sortTable(table, parseInt(m[2], 10), m[3]);
    }
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (t) {
    if (!t.tHead) { return; }
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (th, i) {
      th.addEventListener("click", function () {
        var now = th.getAttribute("aria-sort");
        var dir = now === "ascending" ? "desc" : (now === "descending" ? "asc" :
                  (th.getAttribute("data-type") === "num" ? "desc" : "asc"));
        sortTable(t, i, dir);
      });
    });
  });
  fromHash();
  window.addEventListener("hashchange", fromHash);
  document.documentElement.setAttribute("data-sortable-ready", "1");
})();
"""


def _e(text) -> str:
    return html.escape(str(text))


def _without(table: Table, keys: Sequence[str]) -> Table:
    return replace(table, columns=tuple(c for c in table.columns if c.key not in keys))


def _table_block(table: Table, table_id: str) -> str:
    return f'<div class="scroll">{to_html(table, table_id)}</div>'


def _json_table(table: Table, table_id: str) -> str:
    """A table whose JSON cells are shown in a monospace font."""
    return _table_block(table, table_id).replace("<td>{", '<td class="mono">{')


def _per_dataset(table: Table, datasets: Sequence[str], prefix: str,
                 drop: Sequence[str]) -> str:
    """One table per dataset; published rows (if an ``origin`` column says so) folded."""
    parts = []
    for dataset in datasets:
        mine = (table.frame["dataset"] == dataset).to_numpy()
        if not mine.any():
            continue
        heading = f"<h3>{_e(dataset)}</h3>"
        if "anchor" in table.frame:
            anchor = table.frame["anchor"][mine].iloc[0]
            heading = f"<h3>{_e(dataset)} <span class='muted'>— anchor {_e(anchor)}</span></h3>"
        name = f"{prefix}-{slug(dataset)}"
        if "origin" not in table.frame:
            part = table.subset(mine, name=name)
            parts.append(heading + _table_block(_without(part, drop), part.name))
            continue
        published = (table.frame["origin"] == "published").to_numpy()
        block = [heading]
        if (mine & ~published).any():
            part = table.subset(mine & ~published, name=name)
            block.append(_table_block(_without(part, drop), part.name))
        if (mine & published).any():
            part = table.subset(mine & published, name=f"{name}-published")
            block.append(f"<details><summary>Published curves ({int((mine & published).sum())})"
                         f"</summary>{_table_block(_without(part, drop), part.name)}</details>")
        parts.append("\n".join(block))
    return "\n".join(parts) or "<p class='muted'>Nothing to show.</p>"


def _left_out(plot: Plot) -> str:
    if not plot.left_out:
        return ""
    names = ", ".join(plot.left_out)
    return (f' (<abbr title="{_e(names)}">{len(plot.left_out)} more published curves</abbr>'
            " left out of it; all are in this plot's legend and the BD table)")


def _plots_section(plots: Sequence[Plot], datasets: Sequence[str], folder_name: str) -> str:
    parts = []
    for dataset in datasets:
        mine = [p for p in plots if p.dataset == dataset]
        if not mine:
            continue
        figures = []
        for plot in mine:
            label = METRIC_AXIS.get(plot.metric, plot.metric)
            png = f"{folder_name}/{plot.png.name}"
            metric = interactive.PANEL_METRIC.get(plot.metric, plot.metric)
            figures.append(
                f'<figure class="rd" id="plot-{slug(dataset)}-{plot.metric}" '
                f'data-dataset="{_e(dataset)}" data-metric="{_e(metric)}">'
                '<div class="rd-controls"><label>metric <select class="rd-metric"></select>'
                '</label><label><input type="checkbox" class="rd-log"> log rate</label></div>'
                f'<div class="rd-plot"></div><noscript><img src="{png}" alt="{_e(label)} vs bpp"'
                ' width="100%"></noscript>'
                f"<figcaption>{_e(dataset)}: {_e(label)} vs bpp; the static plot draws "
                f"{len(plot.curves)} curves{_left_out(plot)}. A click on a legend entry hides"
                " or shows its curve, a double click shows it alone; drag to zoom, double"
                " click to zoom out. Column-width files: "
                f'<a href="{png}">PNG</a> · <a href="{folder_name}/{plot.svg.name}">SVG</a> · '
                f'<a href="{folder_name}/{plot.pdf.name}">PDF</a></figcaption></figure>')
        parts.append(f"<h3>{_e(dataset)}</h3>\n<div class='plots'>{''.join(figures)}</div>")
    return "\n".join(parts) or "<p class='muted'>No curve has values to plot.</p>"


def add_section(page: str, html_section: str, section_id: str, label: str) -> str:
    """Put a section into index.html (before the means, else at the end of ``<main>``)
    and a link to it into the page's ``<nav>`` (nothing for an empty section)."""
    if not html_section:
        return page
    for anchor in ('<section id="means">', "</main>"):
        if anchor in page:
            page = page.replace(anchor, html_section + anchor, 1)
            break
    return page.replace("</nav>", f'<a href="#{section_id}">{_e(label)}</a></nav>', 1)


def render_html(*, title: str, facts: Sequence[tuple[str, str]], datasets: Sequence[str],
                bd: Table, means: Table, per_image: Table, plots: Sequence[Plot],
                info: RunSummary, files: Sequence[str] = (),
                plots_folder: str = "plots", rd_data: dict | None = None) -> str:
    """The whole page as one string; ``rd_data``: the interactive plots' curves
    (:func:`harness.report.interactive.figure_data`)."""
    fact_items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    notes = ""
    if info.notes:
        notes = "<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in info.notes) + "</ul>"
    file_links = " · ".join(f'<a href="{_e(f)}">{_e(f)}</a>' for f in files)
    runs = _json_table(info.runs, "runs")
    errors = (_table_block(info.errors, "errors-table") if len(info.errors.frame)
              else "<p>No errors.</p>")
    n_errors = int(info.errors.frame["count"].sum()) if len(info.errors.frame) else 0
    env = ", ".join(f"{k} {v}" for k, v in info.report_env.items())
    body = f"""
<header>
<h1>{_e(title)}</h1>
<nav><a href="#summary">Summary</a><a href="#bd">BD table</a><a href="#plots">RD plots</a>
<a href="#means">Per-quality means</a><a href="#per-image">Per-image</a>
<a href="#errors">Errors ({n_errors})</a></nav>
</header>
<main>
<section id="summary">
<h2>Summary</h2>
<dl class="facts">{fact_items}</dl>
{notes}
<div class="side"><div><h3>Codecs</h3>
{_table_block(info.codecs, "codecs")}</div>
<div><h3>Datasets</h3>
{_table_block(info.datasets, "datasets")}</div></div>
<details><summary>Versions ({len(info.versions.frame)} components)</summary>
{_table_block(info.versions, "versions")}</details>
<details><summary>Runs ({len(info.runs.frame)})</summary>
{runs}</details>
<p class="muted">Files: {file_links}</p>
</section>
<section id="bd">
<h2>BD table</h2>
<p class="muted">{_e(bd.caption)}</p>
{_per_dataset(bd, datasets, "bd", ("dataset", "anchor", "origin"))}
</section>
<section id="plots">
<h2>RD plots</h2>
{_plots_section(plots, datasets, plots_folder)}
</section>
<section id="means">
<h2>Per-quality means</h2>
<p class="muted">{_e(means.caption)}</p>
{_per_dataset(means, datasets, "means", ("dataset",))}
</section>
<section id="per-image">
<h2>Per-image results</h2>
<details><summary>Show the per-image table ({len(per_image.frame)} rows)</summary>
{_table_block(per_image, "per-image-table")}
</details>
</section>
<section id="errors">
<h2>Errors</h2>
{errors}
</section>
</main>
<footer>Built with {_e(env)}.</footer>
"""
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>{body}"
            f"<script>{SCRIPT}</script>\n{interactive.page_scripts(rd_data) if rd_data else ''}"
            "</body>\n</html>\n")
