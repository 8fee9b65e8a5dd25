"""CompressAI-style results JSON: the field's interchange format for RD curves.

A file holds one codec's curve on one dataset::

    {"name": "jpeg", "description": "...",
     "meta": {"dataset": "kodak", "aggregate": "mean-linear", "rate": "payload", ...},
     "results": {"bpp": [...], "bpp-file": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...],
                 "psnr-y": [...], ...}}

Every list has one value per rate point. ``export_store`` writes one such file per
codec and dataset (points sorted by rate): ``bpp`` is the rate of the chosen
convention (by default the entropy-coded payload, as CompressAI counts it),
``bpp-payload`` and ``bpp-file`` both rates, each metric measured with ``run --metrics``
under its own name (``psnr-y``, ``ms-ssim-y`` linear ...), ``meta`` the exact dataset id
and the conventions. A value that is not a finite number is written as ``null`` (JSON has no
NaN or Infinity): an MS-SSIM that could not be measured, or the PSNR of a point where
every image was lossless. ``read_results_json`` reads files from CompressAI, papers'
repositories or other runs, older key names (``psnr``, ``ms-ssim``) included, and
refuses values that are not numbers or out of range, naming the key and the point.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path

from harness import __version__
from harness.errors import HarnessWarning, UsageError
from harness.store import ResultsStore

QUALITY_KEYS = ("psnr-rgb", "ms-ssim-rgb", "ms-ssim-db-rgb")
# keys older files use -> the current key
_ALIASES = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb", "msssim": "ms-ssim-rgb"}
# key -> (lowest, highest, +inf allowed); a value outside is refused
_RANGES = {"bpp": (0.0, 64.0, False), "bpp-payload": (0.0, 64.0, False),
           "bpp-file": (0.0, 64.0, False), "psnr-rgb": (0.0, 150.0, True),
           "ms-ssim-rgb": (0.0, 1.0, False), "ms-ssim-db-rgb": (0.0, 150.0, True),
           "quality": (-math.inf, math.inf, False), "encoding_time": (0.0, math.inf, False),
           "decoding_time": (0.0, math.inf, False),
           # the registry's Y'CbCr metrics (harness.metrics), exported under their names
           **dict.fromkeys(("psnr-y", "psnr-u", "psnr-v", "psnr-yuv"), (0.0, 150.0, True)),
           "ms-ssim-y": (0.0, 1.0, False)}
MAX_NAME = 200


def export_store(store: ResultsStore, out_dir: str | os.PathLike, aggregate: str | None = None,
                 rate: str | None = None) -> list[Path]:
    """Write one results JSON per measured curve (codec and dataset); return the paths."""
    from harness.aggregate import DEFAULT_AGGREGATE, DEFAULT_RATE
    from harness.curves import measured_curves

    out = Path(out_dir)
    written = []
    for curve in measured_curves(store, aggregate=aggregate or DEFAULT_AGGREGATE,
                                 rate=rate or DEFAULT_RATE):
        document = curve.to_results_json()
        document["description"] += (f"; lic-harness {__version__}, means of per-image values"
                                    f" ({curve.aggregate}, rate {curve.rate})")
        path = out / _safe_name(curve.dataset) / f"{_safe_name(curve.name)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        tmp.replace(path)
        written.append(path)
    return written


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text)


def validate_document(document: dict, where: str) -> list[str]:
    """Check a results document's name and values; return notes on left-out points.

    Values must be numbers (not strings or booleans) within each key's range (bpp in
    (0, 64), PSNR in [0, 150] or +inf for lossless, MS-SSIM in [0, 1], ...); null is a
    missing value and NaN or -inf are refused. Notes name every point that a curve
    will leave out (null, or an infinite PSNR).

    Raises:
        UsageError: the first bad value, naming its key and index.
    """
    name = document.get("name")
    if name is not None and not isinstance(name, str):
        raise UsageError(f"{where}: the name must be a string, not {name!r}")
    if isinstance(name, str) and (len(name) > MAX_NAME or not name.isprintable()):
        raise UsageError(f"{where}: the name {name[:60]!r} must be printable text of at most"
                         f" {MAX_NAME} characters")
    meta = document.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise UsageError(f"{where}: meta must be an object")
    if meta and not isinstance(meta.get("dataset", ""), str):
        raise UsageError(f"{where}: meta.dataset must be a string")
    results = document.get("results")
    if not isinstance(results, dict):
        raise UsageError(f"{where}: results must be an object of lists")
    notes = []
    for key, (low, high, inf_ok) in _RANGES.items():
        values = results.get(key)
        if values is None:
            continue
        if not isinstance(values, list):
            raise UsageError(f"{where}: results[{key!r}] must be a list of numbers")
        left_out = []
        for i, value in enumerate(values):
            if value is None and key != "bpp":
                left_out.append(i)
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UsageError(f"{where}: results[{key!r}][{i}] is {value!r}, not a number")
            if value == math.inf and inf_ok:
                left_out.append(i)
                continue
            if not (math.isfinite(value) and low <= value <= high) or (
                    key.startswith("bpp") and value <= 0):
                bounds = f"{'(' if key.startswith('bpp') else '['}{low:g}, {high:g}]"
                raise UsageError(f"{where}: results[{key!r}][{i}] is {value!r}; it must be a"
                                 f" finite number in {bounds}"
                                 + (" (or Infinity for lossless)" if inf_ok else ""))
        if left_out:
            notes.append(f"{where}: {key} of point(s) {', '.join(map(str, left_out))} is null"
                         " or infinite; those points are left out of that metric's curve")
    return notes


def read_results_json(path: str | os.PathLike) -> dict:
    """Read and validate a results JSON; keys normalised (``psnr`` -> ``psnr-rgb``).

    Points a curve will leave out (null or infinite values) are reported as warnings.

    Raises:
        UsageError: not JSON, not the results shape, or a bad value, with what is wrong.
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8 or JSON, huge ints
        raise UsageError(f"{path}: cannot read a results JSON ({exc})") from exc
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, dict) or "bpp" not in results:
        raise UsageError(f"{path}: not a CompressAI-style results file: expected"
                         ' {"name": ..., "results": {"bpp": [...], "psnr-rgb": [...]}}')
    normalised = {_ALIASES.get(key, key): value for key, value in results.items()}
    lengths = {key: len(value) for key, value in normalised.items() if isinstance(value, list)}
    if len(set(lengths.values())) > 1:
        raise UsageError(f"{path}: the results lists differ in length: {lengths}")
    if not any(key in normalised for key in QUALITY_KEYS):
        raise UsageError(f"{path}: results have none of {', '.join(QUALITY_KEYS)}")
    document = dict(document, results=normalised)
    for note in validate_document(document, str(path)):
        warnings.warn(HarnessWarning(note), stacklevel=2)
    name = document.get("name") or path.stem
    return {"name": name, "description": str(document.get("description", "")),
            "meta": document.get("meta") or {}, "results": normalised}


def file_dataset(document: dict, path: str | os.PathLike) -> str:
    """The dataset of a results file: what its meta says, else its folder's name."""
    return (document.get("meta") or {}).get("dataset") or Path(path).resolve().parent.name


def import_results(store: ResultsStore, path: str | os.PathLike, dataset: str | None) -> dict:
    """Store a results JSON as an imported curve; return its id, dataset and size.

    The dataset: ``dataset``, else the file's ``meta.dataset``, else its folder name.
    A curve keeps its name unless another file's curve of that name is stored on the
    dataset: then it gets the next free ``NAME-2``, ``NAME-3`` ... with a warning
    (CompressAI names several different files ``mbt2018``). Importing the same file
    again replaces its curve.
    """
    document = read_results_json(path)
    dataset = dataset or file_dataset(document, path)
    source = str(Path(path).resolve())
    name = document["name"]
    stored = {c["name"]: c for c in store.curves() if c["dataset"] == dataset}
    same_file = [c["name"] for c in stored.values()
                 if c["source"] == source and c["document"].get("name") == name]
    curve_id = same_file[0] if same_file else name
    if not same_file and name in stored:
        n = 2
        while f"{name}-{n}" in stored:
            n += 1
        curve_id = f"{name}-{n}"
        warnings.warn(HarnessWarning(
            f"a curve named {name!r} on {dataset} was already imported from"
            f" {stored[name]['source']}; the one in {source} is stored as {curve_id!r}"),
            stacklevel=2)
    store.put_curve(curve_id, dataset, source, document)
    return {"name": curve_id, "dataset": dataset, "points": len(document["results"]["bpp"])}


def remove_imported(store: ResultsStore, name: str, dataset: str | None) -> int:
    """Remove imported curves by id (on one dataset, or on all); return how many.

    Raises:
        UsageError: no imported curve has that id (the closest ids are named).
    """
    from harness.errors import did_you_mean

    removed = store.remove_curve(name, dataset)
    if not removed:
        known = {c["name"] for c in store.curves() if dataset in (None, c["dataset"])}
        raise UsageError(f"no imported curve {name!r}"
                         f"{f' on {dataset}' if dataset else ''}.{did_you_mean(name, known)}"
                         f" Imported: {', '.join(sorted(known)) or 'none'}.")
    return removed
