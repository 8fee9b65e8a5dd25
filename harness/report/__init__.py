"""``harness report``: RD plots, tables and one self-contained HTML page from a store.

The report is rendered into a hidden temporary sibling folder and renamed into place
only once every file is written, so an interrupted render never leaves a half report
that looks complete, and an existing report of the same name is replaced only by a
complete one. A report folder holds ``index.html``, ``summary.md``, ``report.json``,
``tables/`` (means, bd, per_image, curves; Markdown, CSV and LaTeX), ``plots/``
(PNG, SVG and PDF per dataset and metric) and ``plotly.min.js``, the bundle the page's
interactive plots are drawn with.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError, UsageError
from harness.processes import deferred_interrupts, interrupt_point, pid_alive
from harness.report import diagnostics as _diagnostics
from harness.report import gallery as _gallery
from harness.report import runinfo as _runinfo
from harness.report import tables as _tables

__all__ = ["build_report", "check_report_folder", "curves_frame", "REPORT_MARKER"]

REPORT_MARKER = "report.json"
REPORT_KIND = "harness-report"
CURVE_COLUMNS = ["bpp", "psnr", "ms_ssim", "ms_ssim_db", "quality", "encode_s", "decode_s"]


class _Stages:
    """Wall time per stage, for the benchmark and for ``report.json``."""

    def __init__(self, sink: dict | None):
        self.times: dict[str, float] = sink if sink is not None else {}

    @contextmanager
    def __call__(self, name: str):
        interrupt_point()  # a held Ctrl-C stops the render between stages
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - start


def curves_frame(curves: Sequence) -> pd.DataFrame:
    """Every curve's points in one long table (dataset, curve, origin, points)."""
    parts = []
    for curve in curves:
        points = curve.points.reindex(columns=CURVE_COLUMNS).copy()
        points.insert(0, "source", curve.source)
        points.insert(0, "origin", curve.origin)
        points.insert(0, "curve", curve.label)
        points.insert(0, "dataset", curve.dataset)
        parts.append(points)
    columns = ["dataset", "curve", "origin", "source"] + CURVE_COLUMNS
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def curves_table(curves: Sequence) -> _tables.Table:
    C = _tables.Column
    cols = (C("dataset", "dataset"), C("curve", "curve"), C("origin", "origin"),
            C("quality", "quality", 2), C("bpp", "bpp", 4), C("psnr", "PSNR (dB)", 2),
            C("ms_ssim", "MS-SSIM", 4), C("ms_ssim_db", "MS-SSIM (dB)", 2),
            C("encode_s", "enc (ms)", 2, scale=1e3), C("decode_s", "dec (ms)", 2, scale=1e3),
            C("source", "source", latex=False))
    return _tables.Table("curves", "RD points of every curve", curves_frame(curves), cols,
                         group_by=("dataset",))


def _anchors(curves: Sequence, bd: pd.DataFrame, anchor: str | None,
             default_anchor) -> dict[str, str | None]:
    out = {}
    for dataset in sorted({c.dataset for c in curves}):
        found = bd[bd["dataset"] == dataset]["anchor"] if len(bd) else []
        if len(found):
            out[dataset] = str(found.iloc[0])
        elif anchor is not None:
            out[dataset] = anchor
        else:
            out[dataset] = default_anchor(curves, dataset)
    return out


# --- the folder: write aside, then rename into place ------------------------------------

def _clean_stale(parent: Path, name: str) -> None:
    """Remove temporary folders that killed renders of this report left behind."""
    for kind in ("tmp", "old"):
        for path in parent.glob(f".{name}.{kind}-*"):
            try:
                pid = int(path.name.split("-")[-2])
            except (ValueError, IndexError):
                continue
            if path.is_dir() and not pid_alive(pid):
                shutil.rmtree(path, ignore_errors=True)


def _check_replaceable(final: Path) -> None:
    if not final.exists():
        return
    if not final.is_dir():
        raise UsageError(f"{final} exists and is not a folder; choose another report folder")
    marker = final / REPORT_MARKER
    if any(final.iterdir()):
        try:
            kind = json.loads(marker.read_text(encoding="utf-8")).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind != REPORT_KIND:
            raise UsageError(
                f"{final} exists and is not a harness report (no {REPORT_MARKER}); it is not "
                "replaced. Choose another report folder or move it away.")


def check_report_folder(out_dir, store_path) -> Path:
    """The absolute report folder, once it is known that a report may be written there.

    Raises:
        UsageError: the name is no folder, the folder holds something else than a
            harness report, or it holds the store.
    """
    final = Path(out_dir)
    if final.name in ("", ".", ".."):
        raise UsageError(f"{out_dir!r} cannot be a report folder; name a folder")
    final = final.absolute()
    _check_replaceable(final)
    if final in Path(store_path).absolute().parents:
        raise UsageError(f"the report folder {final} holds the store; choose another")
    return final


def _move_into_place(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.rename(tmp, final)
        return
    old = final.parent / f".{final.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


# --- build ------------------------------------------------------------------------------

@deferred_interrupts()  # Ctrl-C stops the render between stages, never inside native code
def build_report(store_path, out_dir="reports/report", *, datasets=None, codecs=None,
                 anchor=None, method="pchip", include_published=True, extra_curves=(),
                 title="Benchmark report", timings: dict | None = None,
                 aggregate: str = "mean-linear", rate: str = "payload",
                 mixed_conventions: bool = False, min_overlap: float | None = None,
                 min_spacing: float | None = None, gallery=None,
                 log_rate: bool = False) -> Path:
    """Render the report of the store at ``store_path`` into ``out_dir``; return its path.

    Args:
        store_path: the SQLite results store (must exist).
        out_dir: the report folder; an existing harness report there is replaced once
            the new one is complete. Another existing non-empty folder is refused.
        datasets, codecs: restrict to these dataset ids / codec names.
        anchor: BD anchor (default: per dataset, see ``harness.curves.default_anchor``).
        method: BD interpolation (``pchip``, ``akima``, ``cubic``).
        include_published: True: add the published curves of the report's datasets
            (a crowded plot draws only some of them; all are in the tables); a list of
            names: add those published curves and draw them all; False: none.
        extra_curves: more ``Curve`` objects to plot and compare.
        title: the page title.
        timings: if given, filled with seconds per stage.
        aggregate, rate: the conventions of the measured curves and the means table
            (see :mod:`harness.aggregate`); curves of other conventions are refused
            unless ``mixed_conventions``.
        min_overlap, min_spacing: the BD guards (default: :mod:`harness.bd`'s).
        gallery: the gallery's :class:`harness.report.gallery.GalleryOptions` (images,
            target bpp, crop size); default: its defaults.
        log_rate: a logarithmic rate axis in the static plots and, when the page opens,
            in the interactive ones.
    """
    from harness import curves as _curves
    from harness import uncertainty as _uncertainty
    from harness.aggregate import summarize
    from harness.store import ResultsStore

    stage = _Stages(timings)
    datasets = [datasets] if isinstance(datasets, str) else datasets
    codecs = [codecs] if isinstance(codecs, str) else codecs
    store_file = Path(store_path)
    if not store_file.is_file():
        raise UsageError(f"no results store at {store_file}; run `harness run` first")
    final = check_report_folder(out_dir, store_file)

    with stage("load"):
        with ResultsStore(store_file, readonly=True) as store:
            rows = store.rows(datasets=datasets, codecs=codecs)
            runs = store.runs()
            stored = store.curves()
            findings = store.diagnostics()  # verify --cross, profile --store
            extra = list(extra_curves)
            gallery = gallery or _gallery.GalleryOptions()
            picks = _gallery.choose(store, rows, gallery)
            options = dict(datasets=datasets, codecs=codecs, anchor=anchor, method=method,
                           include_published=include_published, title=title,
                           aggregate=aggregate, rate=rate, mixed_conventions=mixed_conventions,
                           min_overlap=min_overlap, min_spacing=min_spacing,
                           log_rate=log_rate)
            options["gallery"] = _gallery.inputs(picks, gallery)  # a changed recon re-renders
            options["diagnostics"] = findings
            inputs = inputs_hash(rows, runs, stored, extra, options)
            if _unchanged(final, inputs):
                return final  # nothing the report shows has changed: keep it as it is
            curves = list(_curves.measured_curves(store, datasets=datasets, codecs=codecs,
                                                  aggregate=aggregate, rate=rate))
            # the whole store by default: the datasets measured and those only imported
            wanted = list(datasets) if datasets else sorted(
                {c.dataset for c in curves} | {c["dataset"] for c in stored})
            chosen = None if include_published is True else list(include_published or ())
            if wanted and (include_published is True or chosen):
                curves += [c for c in _curves.published_curves(wanted, names=chosen)
                           if c.dataset in wanted]
            curves += [c for c in _curves.imported_curves(store, want_rate=rate)
                       if c.dataset in wanted]
            curves += extra
        curves = _curves.unique_labels(curves)
        _curves.require_anchor(anchor, curves)
        conventions = _curves.check_conventions(curves, mixed_conventions)
        frame = _runinfo.rows_frame(rows)
        summary = summarize(rows, aggregate)
    if not rows and not curves:
        raise UsageError(f"{store_file} holds nothing to report"
                         + (" for the datasets / codecs asked for" if datasets or codecs else ""))
    report_datasets = sorted({c.dataset for c in curves} | set(frame["dataset"].dropna()))

    from harness.report import html as _html  # matplotlib: only when rendering
    from harness.report import interactive as _interactive
    from harness.report import plots as _plots
    from harness.report import spread as _spread

    with stage("bd"):
        guards = {k: v for k, v in (("min_overlap", min_overlap), ("min_spacing", min_spacing))
                  if v is not None}
        bd = _curves.bd_table(curves, anchor=anchor, method=method, **guards)
        bd = _uncertainty.add_intervals(bd, curves, method, **guards)  # measured curves only
        anchors = _anchors(curves, bd, anchor, _curves.default_anchor)
        for dataset, name in anchors.items():
            # a BD anchor looked up outside ``curves`` (a published VTM, say) is drawn too
            if name and not any(c.dataset == dataset and c.label == name for c in curves):
                found = _curves.find_curve(name, dataset, curves)
                if found is not None:
                    curves.append(found)
        spread_rates = _spread.per_image_rates(curves, anchors, method, **guards)

    with stage("tables"):
        latest = _tables.latest_fingerprints(frame)
        means = _tables.means_table(summary, latest, conventions)
        origins = {(c.dataset, c.label): c.origin for c in curves}
        bd_table = _tables.bd_summary_table(bd, method, origins, conventions,
                                            bd.attrs.get("ci", ""))
        spread_table = _spread.table(spread_rates) if len(spread_rates) else None
        per_image = _tables.per_image_table(frame)
        matrices = [f for f in findings if f["kind"] == "portability"]
        profiles = [f for f in findings if f["kind"] == "profile"]
        codec_tables = (_diagnostics.complexity_table(profiles) if profiles else None,
                        _diagnostics.portability_table(matrices) if matrices else None)
        points = curves_table(curves)
        cache = _plots.RDCache()
        info = _runinfo.run_summary(summary, frame, runs, bd, curves, latest, cache.has)

    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _clean_stale(final.parent, final.name)
        tmp.mkdir()
        with stage("write tables"):
            files = []
            for table in (means, bd_table, per_image, points, spread_table,
                          *codec_tables):
                if table is not None:
                    files += _tables.write_table(table, tmp / "tables")
        with stage("plots"):
            optional = None if include_published is True else (lambda curve: False)
            plots = _plots.render_plots(curves, anchors, tmp / "plots", optional=optional,
                                        cache=cache, log_rate=log_rate)
            _interactive.write_bundle(tmp, final if final.is_dir() else None)
            rd_data = _interactive.figure_data(curves, anchors, bd, log_rate)
            info.notes.extend(_left_out_notes(plots))
            spreads = _spread.render(spread_rates, tmp / "plots")
        with stage("gallery"):
            shown, gallery_notes = _gallery.render(picks, store_file, tmp, gallery)
            info.notes.extend(gallery_notes)
        with stage("html"):
            generated = datetime.now(UTC).isoformat(timespec="seconds")
            facts = _facts(store_file, generated, report_datasets, curves, anchors, method,
                           rows, runs) + [("conventions", conventions)]
            relative = [str(p.relative_to(tmp)) for p in files]
            (tmp / "summary.md").write_text(
                _runinfo.summary_markdown(info, title=title,
                                          header=[f"{k}: {v}" for k, v in facts]),
                encoding="utf-8")
            page = _html.render_html(
                title=title, facts=facts, datasets=report_datasets, bd=bd_table, means=means,
                per_image=per_image, plots=plots, info=info,
                files=["summary.md"] + relative, rd_data=rd_data)
            page = _html.add_section(page, _gallery.section(shown, gallery), "gallery",
                                     "Gallery")
            page = _html.add_section(page, _spread.section(spreads, "plots"),
                                     _spread.SECTION_ID, "BD-rate per image")
            page = _html.add_section(page, _diagnostics.section(*codec_tables, matrices),
                                     _diagnostics.SECTION_ID, "Complexity, portability")
            (tmp / "index.html").write_text(page, encoding="utf-8")
            manifest = {
                "kind": REPORT_KIND, "title": title, "generated": generated,
                "inputs": inputs,
                "store": str(store_file.absolute()), "datasets": report_datasets,
                "anchors": anchors, "method": method, "conventions": conventions,
                "log_rate": log_rate,
                "curves": [{"name": c.label, "dataset": c.dataset, "origin": c.origin,
                            "aggregate": c.aggregate, "rate": c.rate} for c in curves],
                "bd": _json_rows(bd),
                "gallery": _gallery.manifest(shown),
                "environment": info.report_env,
                "files": sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
                + [REPORT_MARKER],
                "stage_seconds": {k: round(v, 4) for k, v in stage.times.items()},
            }
            (tmp / REPORT_MARKER).write_text(json.dumps(manifest, indent=2) + "\n",
                                             encoding="utf-8")
        with stage("finish"):
            _move_into_place(tmp, final)
    except OSError as exc:  # a full disk, a folder we may not write
        shutil.rmtree(tmp, ignore_errors=True)
        kept = " The previous report there is kept." if final.exists() else ""
        raise HarnessError(
            f"cannot write the report {final}: {exc.strerror or exc}. Nothing of it was"
            f" left behind.{kept} Free some space or choose another folder (--out, or"
            " --report for `harness run`), then run `harness report` again; the results"
            " store is not affected.") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def inputs_hash(rows: Sequence[dict], runs: Sequence[dict], stored_curves: Sequence[dict],
                extra_curves: Sequence, options: dict) -> str:
    """A content hash of everything a report shows, to skip re-rendering an unchanged one.

    It covers the measurements, the runs that made them (a fully cached run adds a run
    that measured nothing, so it does not count), the imported and extra curves, the
    options, and the code and published data it is made from (a new version renders
    afresh).
    """
    used = {r.get("run_id") for r in rows}
    digest = hashlib.sha256()
    for part in (rows, [r for r in runs if r.get("run_id") in used], stored_curves, options,
                 [(c.dataset, c.label, c.origin, c.points.to_json()) for c in extra_curves]):
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    for source in render_sources():
        digest.update(source.read_bytes())
    return digest.hexdigest()


def render_sources() -> list[Path]:
    """The code and data a report is made from: the report package and its page script,
    the curves, BD and means code, the published curves and plotly's bundle (a few MB,
    hashed in milliseconds)."""
    from harness.report.interactive import bundle_source

    package = Path(__file__).parent.parent
    return (sorted(Path(__file__).parent.glob("*.py"))
            + sorted(Path(__file__).parent.glob("assets/*")) + [bundle_source()]
            + [package / name for name in ("curves.py", "bd.py", "aggregate.py")]
            + sorted(p for p in (package / "published").rglob("*") if p.is_file()))


def _unchanged(final: Path, inputs: str) -> bool:
    """Whether the complete report at ``final`` was rendered from these very inputs."""
    try:
        manifest = json.loads((final / REPORT_MARKER).read_text(encoding="utf-8"))
        return (manifest.get("inputs") == inputs
                and all((final / name).is_file() for name in manifest.get("files", [])))
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def _json_rows(frame: pd.DataFrame) -> list[dict]:
    """Table rows for JSON: NaN and inf become null (with the reason code beside them)."""
    from harness.check import _plain

    return _plain(frame.to_dict(orient="records"))


def _left_out_notes(plots: Sequence) -> list[str]:
    from harness.report import plots as _plots

    notes = []
    for plot in plots:
        if plot.left_out:
            label = _plots.METRIC_AXIS.get(plot.metric, plot.metric).split(" (")[0]
            notes.append(f"{plot.dataset}: the static {label} plot draws {len(plot.curves)}"
                         f" curves; {len(plot.left_out)} more published curves are left out"
                         " of its files (they are in the page's interactive plot, the BD table and"
                         " tables/curves.csv).")
    return notes


def _facts(store_file: Path, generated: str, datasets: Sequence[str], curves: Sequence,
           anchors: dict, method: str, rows: Sequence[dict], runs: Sequence[dict]
           ) -> list[tuple[str, str]]:
    origins: dict[str, int] = {}
    for curve in curves:
        origins[curve.origin] = origins.get(curve.origin, 0) + 1
    errors = sum(1 for r in rows if r.get("error"))
    return [
        ("generated", generated),
        ("store", str(store_file)),
        ("datasets", ", ".join(datasets) or "none"),
        ("curves", ", ".join(f"{n} {o}" for o, n in sorted(origins.items())) or "none"),
        ("BD anchor", "; ".join(f"{d}: {a or 'none'}" for d, a in anchors.items()) or "none"),
        ("BD method", method),
        ("measurements", f"{len(rows)} ({errors} with an error)"),
        ("runs", str(len(runs))),
    ]
