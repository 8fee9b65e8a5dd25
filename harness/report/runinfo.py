"""The run summary: codecs and fingerprints, datasets, versions, runs, errors, notes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from harness.report.tables import Column, Table, codec_labels, to_markdown

ROW_COLUMNS = ["codec", "codec_fingerprint", "quality", "dataset", "image_id", "image_hash",
               "width", "height", "bytes", "bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_s",
               "decode_s", "error", "note", "run_id"]


def rows_frame(rows: Sequence[dict]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(rows), columns=ROW_COLUMNS)
    return frame


def _join(values) -> str:
    return ", ".join(str(v) for v in sorted(set(values), key=str))


def codecs_table(rows: pd.DataFrame) -> Table:
    cols = (Column("codec", "codec"), Column("codec_fingerprint", "fingerprint"),
            Column("datasets", "datasets"), Column("qualities", "qualities", 0),
            Column("measurements", "measurements", 0), Column("errors", "errors", 0))
    lines = []
    for (codec, fingerprint), group in rows.groupby(["codec", "codec_fingerprint"], sort=True):
        lines.append({"codec": codec, "codec_fingerprint": fingerprint,
                      "datasets": _join(group["dataset"]),
                      "qualities": group["quality"].nunique(), "measurements": len(group),
                      "errors": int(group["error"].notna().sum())})
    return Table("codecs", "Codecs", pd.DataFrame(lines, columns=[c.key for c in cols]), cols)


def datasets_table(rows: pd.DataFrame) -> Table:
    cols = (Column("dataset", "dataset"), Column("images", "images", 0),
            Column("codecs", "codecs", 0), Column("measurements", "measurements", 0),
            Column("errors", "errors", 0))
    lines = []
    for dataset, group in rows.groupby("dataset", sort=True):
        lines.append({"dataset": dataset, "images": group["image_id"].nunique(),
                      "codecs": group["codec"].nunique(), "measurements": len(group),
                      "errors": int(group["error"].notna().sum())})
    return Table("datasets", "Datasets", pd.DataFrame(lines, columns=[c.key for c in cols]),
                 cols)


def _compact_json(text) -> str:
    if text is None:
        return ""
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(", ", ": "))
    except (TypeError, ValueError):
        return str(text)


def runs_table(runs: Sequence[dict]) -> Table:
    cols = (Column("run_id", "run", 0), Column("started", "started"), Column("ended", "ended"),
            Column("status", "status"), Column("config", "config"),
            Column("versions", "versions"), Column("host", "host"))
    lines = [{"run_id": r.get("run_id"), "started": r.get("started") or "",
              "ended": r.get("ended") or "", "status": r.get("status") or "",
              "config": _compact_json(r.get("config")),
              "versions": _compact_json(r.get("versions")),
              "host": _compact_json(r.get("host"))} for r in runs]
    return Table("runs", "Runs", pd.DataFrame(lines, columns=[c.key for c in cols]), cols)


def _flatten(document: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = str(value)
    return out


def versions_table(runs: Sequence[dict]) -> Table:
    """Component -> version, with the runs that used it (several lines when they differ)."""
    cols = (Column("component", "component"), Column("version", "version"),
            Column("runs", "runs"))
    seen: dict[tuple[str, str], list] = {}
    for run in runs:
        try:
            document = json.loads(run.get("versions") or "{}")
        except ValueError:
            continue
        if not isinstance(document, dict):
            continue
        for key, value in _flatten(document).items():
            seen.setdefault((key, value), []).append(run.get("run_id"))
    lines = [{"component": key, "version": value, "runs": _join(ids)}
             for (key, value), ids in sorted(seen.items())]
    return Table("versions", "Versions", pd.DataFrame(lines, columns=[c.key for c in cols]),
                 cols)


def errors_table(rows: pd.DataFrame) -> Table:
    """Rows whose ``error`` is set, grouped by message, most frequent first."""
    cols = (Column("message", "error"), Column("count", "count", 0),
            Column("codecs", "codecs"), Column("datasets", "datasets"),
            Column("example", "example image"))
    failed = rows[rows["error"].notna()]
    lines = []
    for message, group in failed.groupby("error", sort=False):
        first = group.iloc[0]
        lines.append({"message": message, "count": len(group),
                      "codecs": _join(group["codec"]), "datasets": _join(group["dataset"]),
                      "example": f"{first['dataset']}/{first['image_id']} "
                                 f"({first['codec']} q={first['quality']:g})"})
    frame = pd.DataFrame(lines, columns=[c.key for c in cols])
    if len(frame):
        frame = frame.sort_values(["count", "message"], ascending=[False, True],
                                  kind="stable").reset_index(drop=True)
    return Table("errors", "Errors", frame, cols)


def collect_notes(summary: pd.DataFrame, rows: pd.DataFrame, runs: Sequence[dict],
                  bd: pd.DataFrame, curves: Sequence,
                  latest: dict[str, str] | None = None, has=None) -> list[str]:
    notes = []
    if len(summary):
        labels = codec_labels(summary, latest)
        lossless = summary.assign(label=labels)
        lossless = lossless[lossless["lossless"] > 0]
        for (dataset, codec), group in lossless.groupby(["dataset", "label"], sort=True):
            count = int(group["lossless"].sum())
            qualities = ", ".join(f"{q:g}" for q in group["quality"])
            notes.append(f"{codec} on {dataset}: {count} lossless reconstruction"
                         f"{'s' if count != 1 else ''} (PSNR = inf) at quality {qualities}, "
                         "left out of the mean PSNR.")
    noted = rows[rows["note"].notna() & (rows["note"].astype(str) != "")]
    for message, group in noted.groupby("note", sort=True):
        notes.append(f"{len(group)} measurement{'s' if len(group) != 1 else ''}: {message}")
    for run in runs:
        status = run.get("status")
        if status == "running":
            notes.append(f"run {run.get('run_id')} (started {run.get('started')}) has no end: "
                         "it was killed, or is still running.")
        elif status and status != "done":
            notes.append(f"run {run.get('run_id')} (started {run.get('started')}) ended "
                         f"with status {status!r}.")
    if len(bd):
        warned = bd[bd["warning"].astype(str) != ""]
        if len(warned):
            notes.append(f"{len(warned)} BD value{'s' if len(warned) != 1 else ''} came with a "
                         "warning (see the warning column of the BD table).")
        undefined = bd[~np.isfinite(bd["bd_rate"].astype(float))]
        if len(undefined):
            are = "values are" if len(undefined) != 1 else "value is"
            notes.append(f"{len(undefined)} BD-rate {are} undefined (no overlap, no anchor, "
                         "or too few points).")
    missing: dict[tuple[str, str], list[str]] = {}
    for curve in curves:
        for metric, label in (("psnr", "PSNR"), ("ms-ssim", "MS-SSIM")):
            if not (has(curve, metric) if has else curve.has(metric)):
                missing.setdefault((curve.dataset, label), []).append(curve.name)
    for (dataset, label), names in sorted(missing.items()):
        notes.append(f"{dataset}: {len(names)} curve{'s have' if len(names) != 1 else ' has'} "
                     f"no {label} values and {'are' if len(names) != 1 else 'is'} left out of "
                     f"the {label} plot and BD: {', '.join(sorted(names))}.")
    return notes


@dataclass
class RunSummary:
    codecs: Table
    datasets: Table
    versions: Table
    runs: Table
    errors: Table
    notes: list[str] = field(default_factory=list)
    report_env: dict[str, str] = field(default_factory=dict)


def run_summary(summary: pd.DataFrame, rows: pd.DataFrame, runs: Sequence[dict],
                bd: pd.DataFrame, curves: Sequence,
                latest: dict[str, str] | None = None, has=None) -> RunSummary:
    return RunSummary(codecs_table(rows), datasets_table(rows), versions_table(runs),
                      runs_table(runs), errors_table(rows),
                      collect_notes(summary, rows, runs, bd, curves, latest, has),
                      report_environment())


def report_environment() -> dict[str, str]:
    import platform

    import matplotlib

    from harness import __version__

    return {"harness": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "pandas": pd.__version__,
            "matplotlib": matplotlib.__version__}


def summary_markdown(info: RunSummary, *, title: str, header: Sequence[str] = ()) -> str:
    """``summary.md``: the run summary as Markdown."""
    parts = [f"# {title}\n"]
    parts.extend(f"- {line}" for line in header)
    if header:
        parts.append("")
    for table in (info.codecs, info.datasets, info.versions, _code_cells(info.runs)):
        parts.append(to_markdown(table, heading="##"))
    parts.append("## Errors\n")
    if len(info.errors.frame):
        parts.append(to_markdown(replace(info.errors, title="")))
    else:
        parts.append("No errors.\n")
    parts.append("## Notes\n")
    parts.extend(f"- {note}" for note in info.notes or ["None."])
    env = ", ".join(f"{k} {v}" for k, v in info.report_env.items())
    parts.append(f"\nReport built with {env}.\n")
    return "\n".join(parts)


def _code_cells(table: Table) -> Table:
    frame = table.frame.copy()
    for key in ("config", "versions", "host"):
        frame[key] = [f"`{v}`" if v else "" for v in frame[key]]
    return replace(table, frame=frame)
