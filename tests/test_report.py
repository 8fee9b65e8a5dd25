"""The report: tables, plots, the whole folder from a real run, the page in a browser."""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import harness.report as report_pkg
from harness.curves import Curve
from harness.errors import UsageError
from harness.report import build_report, curves_frame
from harness.report import html as report_html
from harness.report import plots as report_plots
from harness.report.tables import (
    bd_summary_table,
    latex_escape,
    means_table,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
)
from tests.conftest import run_cli

# --- hand-made inputs -------------------------------------------------------------------

SUMMARY_COLUMNS = ["codec", "codec_fingerprint", "dataset", "quality", "images", "errors",
                   "lossless", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s"]


def small_summary() -> pd.DataFrame:
    rows = [
        # codec, fp, dataset, q, images, errors, lossless, bpp, psnr, ms_ssim, db, enc, dec
        ("jpeg_444", "f1", "kodak", 50, 24, 0, 0, 0.80, 31.25, 0.9700, 15.23, 0.010, 0.004),
        ("jpeg_444", "f1", "kodak", 90, 24, 0, 0, 1.90, 36.50, 0.9900, 20.00, 0.012, 0.005),
        ("a&b%", "f2", "kodak", 1, 23, 1, 2, 0.50, 33.10, 0.9800, 16.99, 0.300, 0.200),
        ("a&b%", "f2", "kodak", 2, 24, 0, 0, 1.20, 38.75, float("nan"), float("nan"),
         0.400, 0.002),
        ("jpeg_444", "f1", "clic", 50, 41, 0, 0, 0.70, 30.00, 0.9600, 13.98, 0.020, 0.001),
    ]
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return frame.assign(payload_bpp=frame["bpp"])  # file formats: the payload is the file


def make_curve(name, dataset, origin, bpp, psnr, ms_ssim_db=None) -> Curve:
    n = len(bpp)
    db = np.full(n, np.nan) if ms_ssim_db is None else np.asarray(ms_ssim_db, float)
    points = pd.DataFrame({"bpp": bpp, "psnr": psnr, "ms_ssim": 1 - 10 ** (-db / 10),
                           "ms_ssim_db": db, "quality": np.arange(n, dtype=float),
                           "encode_s": np.nan, "decode_s": np.nan})
    return Curve(name, dataset, origin, points)


def hand_curves() -> list[Curve]:
    return [
        make_curve("jpeg", "kodak", "measured", [0.3, 0.6, 1.2], [28.0, 31.0, 34.0],
                   [10.0, 13.0, 16.0]),
        make_curve("webp", "kodak", "measured", [0.25, 0.5, 1.0], [29.0, 32.0, 35.0],
                   [11.0, 14.0, 17.0]),
        make_curve("vtm@published", "kodak", "published", [0.1, 0.3, 0.8, 1.5],
                   [29.0, 32.5, 36.0, 39.0], [10.0, 13.5, 17.0, 20.0]),
        make_curve("psnr_only@published", "kodak", "published", [0.2, 0.4, 0.9],
                   [28.5, 31.5, 35.5]),
    ]


# --- tables -----------------------------------------------------------------------------

def test_latex_escape_special_characters():
    assert latex_escape("jpeg_444") == r"jpeg\_444"
    assert latex_escape("a&b%$#{}") == r"a\&b\%\$\#\{\}"
    assert latex_escape("x~y^z\\") == r"x\textasciitilde{}y\textasciicircum{}z\textbackslash{}"


def test_means_table_markdown_marks_best_per_dataset():
    table = means_table(small_summary())
    text = to_markdown(table)
    lines = [line for line in text.splitlines() if line.startswith("| kodak")]
    assert len(lines) == 4
    # highest PSNR on kodak is 38.75 (a&b% q=2); on clic the only row is best
    assert "**38.75**" in text and "**30.00**" in text
    assert "**36.50**" not in text
    # lowest times: encode 10 ms (jpeg_444 q=50), decode 2 ms (a&b% q=2)
    kodak_enc = [line for line in lines if "**10.00**" in line]
    assert len(kodak_enc) == 1 and "jpeg_444" in kodak_enc[0]
    assert "**2.00**" in text
    # a missing MS-SSIM is shown as "-" and never bold
    assert "| - |" in text


def test_means_table_latex_booktabs_bold_and_escaping():
    text = to_latex(means_table(small_summary()))
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\end{tabular}"):
        assert rule in text
    assert r"jpeg\_444" in text and r"a\&b\%" in text
    assert "jpeg_444" not in text.replace(r"jpeg\_444", "")
    body = text.split(r"\midrule", 1)[1]
    assert body.count(r"\textbf{38.75}") == 1
    assert body.count(r"\textbf{0.9900}") == 1  # best MS-SSIM on kodak (NaN left out)
    assert r"\textbf{31.25}" not in body
    # one bold per best column and dataset (ties aside): PSNR, MS-SSIM, dB, enc, dec x 2
    assert body.count(r"\textbf{") == 10
    # clic starts a new block
    assert body.count(r"\midrule") == 1


def test_means_table_csv_parses_back_to_the_same_numbers():
    summary = small_summary()
    table = means_table(summary)
    parsed = pd.read_csv(io.StringIO(to_csv(table)))
    frame = table.frame
    assert list(parsed.columns) == [c.key for c in table.columns]
    for key in ("bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s", "decode_s", "quality"):
        np.testing.assert_array_equal(parsed[key].to_numpy(float), frame[key].to_numpy(float))
    assert parsed["codec"].tolist() == frame["codec"].tolist()


def test_bd_table_best_is_lowest_rate_and_highest_quality():
    bd = pd.DataFrame([
        ("kodak", "psnr", "webp", "jpeg", -20.0, 1.1, "pchip", 3, ""),
        ("kodak", "psnr", "x_y", "jpeg", -35.5, 0.9, "pchip", 3, "anchor covers 80%"),
        ("kodak", "ms-ssim", "webp", "jpeg", -10.0, 0.5, "pchip", 3, ""),
        ("kodak", "ms-ssim", "x_y", "jpeg", 4.0, -0.2, "pchip", 3, ""),
    ], columns=["dataset", "metric", "codec", "anchor", "bd_rate", "bd_quality", "method",
                "points", "warning"])
    table = bd_summary_table(bd, origins={("kodak", "webp"): "measured",
                                          ("kodak", "x_y"): "imported"})
    assert table.frame["codec"].tolist() == ["webp", "x_y"]
    latex = to_latex(table)
    assert r"\textbf{$-$35.50}" in latex and r"\textbf{1.100}" in latex
    assert r"\textbf{$-$10.00}" in latex and r"\textbf{0.500}" in latex
    assert r"x\_y" in latex
    markdown = to_markdown(table)
    assert "PSNR: anchor covers 80%" in markdown
    parsed = pd.read_csv(io.StringIO(to_csv(table)))
    assert parsed["bd_rate_psnr"].tolist() == [-20.0, -35.5]
    assert parsed["bd_quality_ms-ssim"].tolist() == [0.5, -0.2]
    html = to_html(table, "bd-test")
    assert html.count('class="best"') == 4 and 'data-v="-35.5"' in html


def test_infinite_and_missing_values():
    summary = small_summary()
    summary.loc[0, "psnr"] = math.inf
    table = means_table(summary)
    assert "inf" in to_markdown(table)
    assert r"$\infty$" in to_latex(table)
    assert 'data-v="Infinity"' in to_html(table)
    parsed = pd.read_csv(io.StringIO(to_csv(table)))
    assert math.isinf(parsed.loc[table.frame["psnr"] == math.inf, "psnr"].iloc[0])
    # infinity is not "best": only finite values compete
    assert r"\textbf{$\infty$}" not in to_latex(table)


# --- plots ------------------------------------------------------------------------------

def _lines(fig):
    return {line.get_label(): line for line in fig.axes[0].get_lines()}


def test_rd_figure_styles_anchor_published_and_fonts():
    curves = hand_curves()
    fig = report_plots.rd_figure(curves, "psnr", anchor="jpeg")
    lines = _lines(fig)
    assert set(lines) == {"jpeg (anchor)", "webp", "vtm@published", "psnr_only@published"}
    assert lines["vtm@published"].get_linestyle() == "--"
    assert lines["webp"].get_linestyle() == "-"
    assert lines["jpeg (anchor)"].get_linewidth() > 2 * lines["webp"].get_linewidth()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0] == "jpeg (anchor)"
    assert fig.axes[0].get_xlabel() == "bpp (payload rate)"
    assert fig.axes[0].get_ylabel() == "PSNR (dB)"
    width, height = fig.get_size_inches()
    assert width == pytest.approx(3.5) and height == pytest.approx(2.6)
    fig.canvas.draw()
    sizes = [t.get_fontsize() for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))
             if getattr(t, "get_text", lambda: "")()]
    assert sizes and min(sizes) >= 7


def test_curve_without_metric_is_left_out_of_that_plot():
    curves = hand_curves()
    fig = report_plots.rd_figure(curves, "ms-ssim", anchor="jpeg")
    assert "psnr_only@published" not in _lines(fig)
    assert fig.axes[0].get_ylabel() == "MS-SSIM (dB) [mean-linear]"
    only = [c for c in curves if c.name == "psnr_only@published"]
    assert report_plots.rd_figure(only, "ms-ssim") is None


def test_crowded_plot_keeps_measured_and_anchor():
    curves = hand_curves() + [
        make_curve(f"paper{i:02d}@published", "kodak", "published", [0.2, 0.5, 1.0],
                   [28.0 + i / 10, 31.0, 34.0]) for i in range(20)]
    drawn, left_out = report_plots.select_curves(curves, "psnr", "vtm@published", limit=6)
    names = [c.name for c in drawn]
    assert len(drawn) == 6 and len(left_out) == len(curves) - 6
    assert {"jpeg", "webp", "vtm@published"} <= set(names)
    drawn, left_out = report_plots.select_curves(curves, "psnr", "jpeg", limit=6,
                                                 optional=lambda c: False)
    assert not left_out


def test_render_plots_files(tmp_path):
    plots = report_plots.render_plots(hand_curves(), {"kodak": "jpeg"}, tmp_path)
    assert [(p.dataset, p.metric) for p in plots] == [("kodak", "psnr"), ("kodak", "ms-ssim")]
    for plot in plots:
        assert plot.png.stat().st_size > 10_000
        with Image.open(plot.png) as im:
            assert im.info["dpi"][0] >= 199
            assert np.asarray(im.convert("L")).std() > 10
        root = ET.parse(plot.svg).getroot()
        assert root.tag.endswith("svg")
        pdf = plot.pdf.read_bytes()
        # for papers: fonts embedded as TrueType (publishers' checkers refuse Type 3)
        assert pdf.startswith(b"%PDF") and b"/FontFile2" in pdf and b"/Type3" not in pdf
        svg = plot.svg.read_text()
        assert "stroke-dasharray" in svg  # the published curve
        assert "jpeg (anchor)" in svg and "webp" in svg
    assert "psnr_only@published" in plots[0].svg.read_text()
    again = report_plots.render_plots(hand_curves(), {"kodak": "jpeg"}, tmp_path / "again")
    assert [p.pdf.read_bytes() for p in again] == [p.pdf.read_bytes() for p in plots]
    assert "psnr_only@published" not in plots[1].svg.read_text()


def test_curves_frame_keeps_every_point():
    frame = curves_frame(hand_curves())
    assert len(frame) == 3 + 3 + 4 + 3
    assert set(frame["origin"]) == {"measured", "published"}


# --- build_report from a real run -------------------------------------------------------

@pytest.fixture(scope="module")
def real_store(tmp_path_factory, sample_pixels) -> Path:
    """A store made by the real CLI: jpeg and webp on two crops of a real photo."""
    base = tmp_path_factory.mktemp("real")
    folder = base / "photos"
    folder.mkdir()
    Image.fromarray(sample_pixels[:192, :256]).save(folder / "a.png")
    Image.fromarray(sample_pixels[100:292, 200:456]).save(folder / "b.png")
    store = base / "results.sqlite"
    done = run_cli("run", "--datasets", str(folder), "--codecs", "jpeg", "webp",
                   "--qualities", "20", "50", "80", "--jobs", "1", "--store", str(store),
                   "--no-progress")
    assert done.returncode == 0, done.stderr
    return store


@pytest.fixture(scope="module")
def real_report(real_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "report"
    return build_report(real_store, out, anchor="jpeg", title="Photo crops")


EXPECTED_FILES = ["index.html", "summary.md", "report.json", "plotly.min.js"] + [
    f"tables/{name}.{ext}" for name in ("means", "bd", "per_image", "curves", "per_image_bd")
    for ext in ("md", "csv", "tex")] + [
    f"plots/{{photos}}_{metric}.{ext}" for metric in ("psnr", "ms-ssim")
    for ext in ("png", "svg", "pdf")] + [
    f"plots/{{photos}}_per_image_bd.{ext}" for ext in ("png", "svg")]


def _photos_id(store_path: Path) -> str:
    """The folder dataset's id: its name plus a hash of its path."""
    from harness.store import ResultsStore

    with ResultsStore(store_path) as store:
        (ident,) = {row["dataset"] for row in store.rows()}
    assert ident.startswith("folder:photos-")
    return ident


def test_report_from_real_run_has_every_artefact(real_report, real_store):
    from harness.aggregate import summarize
    from harness.store import ResultsStore

    photos = _photos_id(real_store)
    expected = [n.format(photos=photos.replace(":", "_")) for n in EXPECTED_FILES]
    for name in expected:
        path = real_report / name
        assert path.is_file() and path.stat().st_size > 0, name
        if path.suffix in (".md", ".csv", ".tex", ".html", ".svg"):
            text = path.read_text()
            assert "jpeg" in text, name
            if name != "tables/bd.csv" and "bd." not in name:
                assert "webp" in text, name
    manifest = json.loads((real_report / "report.json").read_text())
    assert manifest["kind"] == "harness-report"
    assert sorted(manifest["files"]) == sorted(expected)
    assert manifest["anchors"] == {photos: "jpeg"}

    with ResultsStore(real_store) as store:
        rows = store.rows()
        runs = store.runs()
    summary = summarize(rows)
    means = pd.read_csv(real_report / "tables" / "means.csv")
    assert len(means) == 6
    merged = means.merge(summary, on=["codec", "quality"], suffixes=("", "_s"))
    np.testing.assert_allclose(merged["psnr"], merged["psnr_s"], rtol=1e-12)
    np.testing.assert_allclose(merged["bpp"], merged["bpp_s"], rtol=1e-12)

    bd = pd.read_csv(real_report / "tables" / "bd.csv")
    assert bd["codec"].tolist() == ["webp"] and bd["anchor"].tolist() == ["jpeg"]
    assert np.isfinite(bd["bd_rate_psnr"]).all()
    assert "webp" in (real_report / "tables" / "bd.md").read_text()

    per_image = pd.read_csv(real_report / "tables" / "per_image.csv")
    assert len(per_image) == 12 and set(per_image["image_id"]) == {"a.png", "b.png"}

    summary_md = (real_report / "summary.md").read_text()
    for row in rows[:1]:
        assert row["codec_fingerprint"] in summary_md
    assert f"| {runs[0]['run_id']} | {runs[0]['started']}" in summary_md
    assert f"| {photos} | 2 |" in summary_md  # dataset with its image count
    assert "No errors." in summary_md

    page = (real_report / "index.html").read_text()
    for section in ('id="summary"', 'id="bd"', 'id="plots"', 'id="means"', 'id="per-image"',
                    'id="errors"'):
        assert section in page
    assert "<details><summary>Show the per-image table (12 rows)" in page
    for needle in ("<link", 'src="http', "href=\"http", "@import"):
        assert needle not in page
    assert re.findall(r"<script src=\"([^\"]*)\"", page) == ["plotly.min.js"]
    assert not re.search(r"url\((?!#)", page)  # only references inside the page
    assert "<title>Photo crops</title>" in page


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_interrupted_render_leaves_no_report(real_store, tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "reports" / "report"
    monkeypatch.setattr(report_plots, "render_plots", interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_report(real_store, out)
    assert not out.exists()
    assert _entries(out.parent) == []  # no half-written folder, hidden or not

    monkeypatch.undo()
    monkeypatch.setattr(report_html, "render_html", interrupt)
    with pytest.raises(KeyboardInterrupt):
        build_report(real_store, out)
    assert _entries(out.parent) == []

    # what a killed render (SIGKILL) leaves is hidden, and removed by the next render
    stale = out.parent / ".report.tmp-999999999-0bad"
    (stale / "tables").mkdir(parents=True)
    monkeypatch.undo()
    build_report(real_store, out)
    assert _entries(out.parent) == ["report"]


def test_failed_render_keeps_the_old_report(real_store, tmp_path, monkeypatch):
    out = tmp_path / "report"
    build_report(real_store, out, anchor="jpeg")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_html, "render_html", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(real_store, out, anchor="webp")
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert _entries(tmp_path) == ["report"]

    monkeypatch.undo()
    build_report(real_store, out, anchor="webp")
    assert json.loads((out / "report.json").read_text())["anchors"] == {
        _photos_id(real_store): "webp"}
    assert _entries(tmp_path) == ["report"]


def test_refuses_to_replace_a_folder_that_is_not_a_report(real_store, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a harness report"):
        build_report(real_store, out)
    assert (out / "notes.txt").read_text() == "keep me"
    with pytest.raises(UsageError, match="no results store"):
        build_report(tmp_path / "missing.sqlite", tmp_path / "r")


def test_extra_curves_and_errors_in_report(real_store, tmp_path):
    extra = make_curve("my_model", "folder:photos", "imported", [0.3, 0.6, 1.2],
                       [30.0, 33.0, 36.0], [12.0, 15.0, 18.0])
    out = build_report(real_store, tmp_path / "r", anchor="jpeg", extra_curves=[extra])
    bd = pd.read_csv(out / "tables" / "bd.csv")
    assert set(bd["codec"]) == {"webp", "my_model [imported]"}
    assert r"my\_model" in (out / "tables" / "bd.tex").read_text()
    svg = (out / "plots" / "folder_photos_psnr.svg").read_text()
    assert "my_model" in svg


# --- the report of the whole store, re-rendered only when its content changed -------------

def test_run_adds_to_the_report_of_the_whole_store(real_store, tmp_path, photo_folder):
    """A later `harness run` of another codec and dataset keeps what the store held, and
    imported curves on datasets nothing was measured on are in the report too."""
    store = tmp_path / "results.sqlite"
    shutil.copy(real_store, store)
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"name": "my-model", "results": {
        "bpp": [0.2, 0.4, 0.8], "psnr-rgb": [30.0, 32.5, 35.5]}}))
    done = run_cli("import", str(mine), "--dataset", "kodak", "--store", str(store))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "report"
    done = run_cli("run", "--datasets", str(photo_folder), "--codecs", "jpeg", "--qualities",
                   "50", "80", "--jobs", "1", "--store", str(store), "--report", str(out),
                   "--no-progress")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "report.json").read_text())
    shown = {(c["dataset"], c["name"]) for c in manifest["curves"]}
    assert {(_photos_id(real_store), "jpeg"), (_photos_id(real_store), "webp")} <= shown
    assert any(d == "kodak" and name.startswith("my-model") for d, name in shown)  # imported
    assert any(d.startswith("folder:photos-") and d != _photos_id(real_store)
               for d, name in shown if name == "jpeg")  # this run's dataset
    assert any(origin == "published" for origin in
               (c["origin"] for c in manifest["curves"] if c["dataset"] == "kodak"))


def test_unchanged_report_is_not_rendered_again(real_store, tmp_path, monkeypatch):
    store = tmp_path / "results.sqlite"
    shutil.copy(real_store, store)
    out = build_report(store, tmp_path / "report", anchor="jpeg")
    page = (out / "index.html").stat()

    def must_not_render(*args, **kwargs):
        raise AssertionError("an unchanged report was rendered again")

    monkeypatch.setattr(report_plots, "render_plots", must_not_render)
    assert build_report(store, out, anchor="jpeg") == out
    assert (out / "index.html").stat().st_mtime_ns == page.st_mtime_ns
    monkeypatch.undo()

    # a measurement fewer in the store: the report changes
    with sqlite3.connect(store) as db:
        db.execute("DELETE FROM results WHERE rowid = (SELECT MIN(rowid) FROM results)")
    db.close()
    before = json.loads((out / "report.json").read_text())
    build_report(store, out, anchor="jpeg")
    after = json.loads((out / "report.json").read_text())
    assert after["inputs"] != before["inputs"]
    assert "measurements: 11 " in (out / "summary.md").read_text()

    # the code or published data it is made from changed: rendered again
    source = tmp_path / "published.json"
    source.write_text("{}")
    monkeypatch.setattr(report_pkg, "render_sources", lambda: [source])
    build_report(store, out, anchor="jpeg")
    before = json.loads((out / "report.json").read_text())["inputs"]
    source.write_text('{"new": 1}')
    build_report(store, out, anchor="jpeg")
    assert json.loads((out / "report.json").read_text())["inputs"] != before
    monkeypatch.undo()

    # a file of the report lost: rendered again
    (out / "tables" / "bd.csv").unlink()
    build_report(store, out, anchor="jpeg")
    assert (out / "tables" / "bd.csv").is_file()


# --- the page in a real browser ---------------------------------------------------------

def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class _Tables(HTMLParser):
    """Tables of a DOM dump: id -> header cells (attrs) and rows of (data-v or text)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, dict] = {}
        self._table = None
        self._cell = None
        self._row = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._depth += 1
            if self._depth == 1:
                self._table = {"head": [], "rows": []}
                self.tables[attrs.get("id", f"t{len(self.tables)}")] = self._table
        elif self._table is not None and tag == "tr":
            self._row = []
        elif self._table is not None and tag in ("td", "th"):
            self._cell = {"tag": tag, "attrs": attrs, "text": ""}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            target = "head" if self._row and self._row[0]["tag"] == "th" else "rows"
            self._table[target].append(self._row)
            self._row = None
        elif tag == "table":
            self._depth -= 1
            if self._depth == 0:
                self._table = None


def _browser(args: list[str], url: str, profile: Path, timeout: float = 90):
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
               *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def test_page_renders_in_headless_chromium(real_report, real_store, tmp_path):
    if _chromium() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed, but CI must run the browser check")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = (real_report / "index.html").as_uri()
    profile = tmp_path / "profile"

    shot = tmp_path / "page.png"
    done = _browser([f"--screenshot={shot}", "--window-size=1280,2600"], page, profile)
    assert shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB")).astype(int)
    assert pixels.shape[1] == 1280
    # webp is the second codec: tab10 orange, a colour nothing but the plots uses
    orange = np.abs(pixels - np.array([255, 127, 14])).sum(axis=2) < 60
    ys, xs = np.nonzero(orange)
    assert (xs < 640).sum() > 200, "no webp curve in the left (PSNR) plot"
    assert (xs >= 640).sum() > 200, "no webp curve in the right (MS-SSIM) plot"
    top, bottom = ys.min(), ys.max()
    region = pixels[max(0, top - 150):bottom + 150]
    assert region.std() > 20
    non_white = (region.min(axis=2) < 200).mean()
    assert non_white > 0.02

    dom = _browser(["--dump-dom"], page, profile)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-sortable-ready="1"' in dom.stdout
    parsed = _Tables()
    parsed.feed(dom.stdout)
    tables = parsed.tables
    assert len(tables["per-image-table"]["rows"]) == 12
    photos = report_plots.slug(_photos_id(real_store))
    assert len(tables[f"bd-{photos}"]["rows"]) == 1
    means = tables[f"means-{photos}"]
    assert len(means["rows"]) == 6
    headers = [c["text"].strip() for c in means["head"][0]]
    column = headers.index("PSNR (dB)")
    unsorted = [float(r[column]["attrs"]["data-v"]) for r in means["rows"]]
    assert unsorted != sorted(unsorted, reverse=True)

    dom = _browser(["--dump-dom"], f"{page}#sort=means-{photos}:{column}:desc", profile)
    parsed = _Tables()
    parsed.feed(dom.stdout)
    means = parsed.tables[f"means-{photos}"]
    values = [float(r[column]["attrs"]["data-v"]) for r in means["rows"]]
    assert values == sorted(unsorted, reverse=True)
    assert means["head"][0][column]["attrs"].get("aria-sort") == "descending"
    assert len(parsed.tables["per-image-table"]["rows"]) == 12
