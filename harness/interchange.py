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
import math
import os
import re
from pathlib import Path

from harness import __version__
from harness.aggregate import summarize
from harness.errors import UsageError
from harness.store import ResultsStore

# harness column -> CompressAI results key
EXPORT_KEYS = {
    "quality": "quality",
    "bpp": "bpp",
    "psnr": "psnr-rgb",
    "ms_ssim": "ms-ssim-rgb",
    "ms_ssim_db": "ms-ssim-rgb-db",
    "encode_s": "encoding_time",
    "decode_s": "decoding_time",
}
# keys CompressAI and papers use -> our canonical key
_ALIASES = {"psnr": "psnr-rgb", "ms-ssim": "ms-ssim-rgb", "msssim": "ms-ssim-rgb"}


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


def export_store(store: ResultsStore, out_dir: str | os.PathLike) -> list[Path]:
    """Write one results JSON per codec (and fingerprint) and dataset; return the paths."""
    summary = summarize(store.rows())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    fingerprints_per_codec = summary.groupby("codec")["codec_fingerprint"].nunique()
    for (dataset, codec, fingerprint), curve in summary.groupby(
            ["dataset", "codec", "codec_fingerprint"], sort=True):
        curve = curve[curve["images"] > 0].sort_values("bpp")
        if curve.empty:
            continue
        name = codec if fingerprints_per_codec[codec] == 1 else f"{codec}@{fingerprint}"
        document = {
            "name": name,
            "description": (f"{codec} (fingerprint {fingerprint}) on {dataset}, measured by"
                            f" lic-harness {__version__}; means over {int(curve['images'].max())}"
                            " images of per-image values"),
            "results": {key: [_json_number(float(v)) for v in curve[column]]
                        for column, key in EXPORT_KEYS.items()},
        }
        path = out / _safe_name(dataset) / f"{_safe_name(name)}.json"
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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: cannot read a results JSON ({exc})") from exc
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, dict) or "bpp" not in results:
        raise UsageError(f"{path}: not a CompressAI-style results file: expected"
                         ' {"name": ..., "results": {"bpp": [...], "psnr-rgb": [...]}}')
    normalised = {_ALIASES.get(key, key): value for key, value in results.items()}
    lengths = {key: len(value) for key, value in normalised.items() if isinstance(value, list)}
    if len(set(lengths.values())) > 1:
        raise UsageError(f"{path}: the results lists differ in length: {lengths}")
    if not any(key in normalised for key in ("psnr-rgb", "ms-ssim-rgb")):
        raise UsageError(f"{path}: results have no psnr-rgb or ms-ssim-rgb list")
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
