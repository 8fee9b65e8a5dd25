"""CompressAI-style results JSON: the field's interchange format for RD curves.

A file holds one codec's curve on one dataset::

    {"name": "jpeg", "description": "...",
     "results": {"bpp": [...], "psnr-rgb": [...], "ms-ssim-rgb": [...], ...}}

Every list has one value per rate point. ``export_store`` writes one such file per
codec and dataset (points sorted by rate); ``read_results_json`` reads files from
CompressAI, papers' repositories or other runs, older key names (``psnr``,
``ms-ssim``) included.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from harness import __version__
from harness.errors import UsageError
from harness.store import ResultsStore

QUALITY_KEYS = ("psnr-rgb", "ms-ssim-rgb", "ms-ssim-db-rgb")
# keys older files use -> the current key
_ALIASES = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb", "msssim": "ms-ssim-rgb"}


def export_store(store: ResultsStore, out_dir: str | os.PathLike) -> list[Path]:
    """Write one results JSON per measured curve (codec and dataset); return the paths."""
    from harness.curves import measured_curves

    out = Path(out_dir)
    written = []
    for curve in measured_curves(store):
        document = curve.to_results_json()
        document["description"] += f"; lic-harness {__version__}, means of per-image values"
        path = out / _safe_name(curve.dataset) / f"{_safe_name(curve.name)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(document, indent=2) + "\n")
        tmp.replace(path)
        written.append(path)
    return written


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", text)


def read_results_json(path: str | os.PathLike) -> dict:
    """Read and validate a results JSON; keys normalised (``psnr`` -> ``psnr-rgb``).

    Raises:
        UsageError: not JSON, or not the results shape, with what is wrong.
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
    name = document.get("name") or path.stem
    return {"name": str(name), "description": str(document.get("description", "")),
            "results": normalised}


def import_results(store: ResultsStore, path: str | os.PathLike, dataset: str | None) -> dict:
    """Store a results JSON as a named curve; the dataset defaults to the parent folder."""
    document = read_results_json(path)
    dataset = dataset or Path(path).resolve().parent.name
    store.put_curve(document["name"], dataset, str(path), document)
    return {"name": document["name"], "dataset": dataset,
            "points": len(document["results"]["bpp"])}
