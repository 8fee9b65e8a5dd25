"""Rebuild harness/published/ from the gathered reference RD data.

The published curves ship with the package in CompressAI's results-JSON form, one
file per dataset and codec (variant), with their provenance under "meta". The input
is the `lic-rd-reference/1` collection (one file per dataset, codec, variant and
metric, each naming its source repository, path and commit), the anchors kept in
tools/reference_extra/ (same schema: public VTM/BPG points for CLIC 2020 professional
validation and Tecnick-100 that the shared collection lacks) and the digitised
Entroformer curve. Usage:

    python tools/build_published.py SHARED_RESEARCH_DIR

where SHARED_RESEARCH_DIR holds rd/reference/ and models/rd/.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "harness" / "published"
EXTRA = Path(__file__).resolve().parent / "reference_extra"
# the reference collection's dataset ids -> the harness's stored ids (same image sets)
DATASET_IDS = {"clic-pro-valid": "clic2020-pro-valid"}
# which variant a name without variant means, most trustworthy first
VARIANT_PREFERENCE = [None, "paper", "8bit-cuda", "cuda", "cpu"]
# short names users type, for the curves papers compare against
EXTRA_ALIASES = {"bpg": "bpg444", "stf": "stf-mse", "wacnn": "stf-cnn-mse",
                 "tcm": "tcm-large-mse", "entroformer": "entroformer-mse",
                 "mlic": "mlic-mse", "mlic+": "mlicplus-mse", "mlic++": "mlicplusplus-mse"}
SKIP_FLAGS = {"mislabeled-duplicate-of-mse"}  # bit-identical copies of the MSE curves


def full_name(codec: str, variant: str | None) -> str:
    return codec if variant is None else f"{codec}.{variant}"


def load_reference(*folders: Path) -> dict[tuple[str, str, str | None], dict]:
    """Merge the per-metric files of each (dataset, codec, variant)."""
    merged: dict[tuple, dict] = {}
    for path in sorted(p for folder in folders for p in folder.glob("*/*.json")):
        entry = json.loads(path.read_text())
        if entry.get("schema") != "lic-rd-reference/1" or SKIP_FLAGS & set(entry["flags"]):
            continue
        dataset = DATASET_IDS.get(entry["dataset"], entry["dataset"])
        key = (dataset, entry["codec"], entry["variant"])
        target = merged.setdefault(key, {"entry": entry, "points": {}, "sources": [],
                                         "notes": [], "flags": set()})
        points = sorted(entry["points"], key=lambda p: p["bpp"])
        for point in points:
            slot = target["points"].setdefault(round(point["bpp"], 12), {})
            slot.update(point)
        target["sources"].append({"metric": entry["metric"], **entry["source"]})
        target["notes"].extend(n for n in entry["notes"] if n not in target["notes"])
        target["flags"].update(entry["flags"])
        target.setdefault("dataset_note", entry.get("dataset_note", ""))
    return merged


def document(dataset: str, codec: str, variant: str | None, merged: dict) -> dict:
    entry = merged["entry"]
    points = [merged["points"][k] for k in sorted(merged["points"])]
    results: dict[str, list] = {"bpp": [p["bpp"] for p in points]}
    for field, key in (("psnr", "psnr-rgb"), ("ms_ssim", "ms-ssim-rgb"),
                       ("ms_ssim_db", "ms-ssim-db-rgb"), ("quality", "quality"),
                       ("encoding_time", "encoding_time"), ("decoding_time", "decoding_time")):
        if any(field in p for p in points):
            results[key] = [p.get(field) for p in points]
    return {
        "name": full_name(codec, variant),
        "description": entry.get("codec_label", codec),
        "meta": {
            "source": merged["sources"],
            "dataset": dataset,
            "dataset_note": merged["dataset_note"],
            "codec": codec,
            "variant": variant,
            "family": entry.get("family"),
            "opt_metric": entry.get("opt_metric"),
            "aggregation": entry.get("aggregation"),
            "flags": sorted(merged["flags"]),
            "notes": merged["notes"],
        },
        "results": results,
    }


def entroformer(models_rd: Path) -> tuple[str, dict]:
    source = json.loads((models_rd / "entroformer_kodak_psnr.json").read_text())
    (series,) = source["series"]
    return "kodak", {
        "name": "entroformer-mse.paper",
        "description": source["model"],
        "meta": {"source": [{"metric": "psnr", "description": source["source"]}],
                 "dataset": "kodak", "codec": "entroformer-mse", "variant": "paper",
                 "family": "learned", "opt_metric": "mse",
                 "flags": ["digitized-from-figure"],
                 "notes": [source["notes"], f"approximate error: {source['approx_error']}"]},
        "results": {"bpp": series["bpp"], "psnr-rgb": series["psnr"]},
    }


def main(research: Path) -> None:
    merged = load_reference(research / "rd" / "reference", EXTRA)
    documents: dict[str, list[dict]] = defaultdict(list)
    for (dataset, codec, variant), item in sorted(merged.items(), key=str):
        documents[dataset].append(document(dataset, codec, variant, item))
    dataset, extra = entroformer(research / "models" / "rd")
    documents[dataset].append(extra)

    if OUT.exists():
        shutil.rmtree(OUT)
    index = {}
    for dataset, docs in sorted(documents.items()):
        aliases: dict[str, str] = {}
        by_codec: dict[str, list[dict]] = defaultdict(list)
        for doc in docs:
            aliases[doc["name"]] = doc["name"]
            by_codec[doc["meta"]["codec"]].append(doc)
        for codec, variants in by_codec.items():
            best = min(variants, key=lambda d: VARIANT_PREFERENCE.index(d["meta"]["variant"]))
            aliases.setdefault(codec, best["name"])
        for short, codec in EXTRA_ALIASES.items():
            if codec in aliases:
                aliases.setdefault(short, aliases[codec])
        folder = OUT / dataset
        folder.mkdir(parents=True)
        for doc in docs:
            (folder / f"{doc['name']}.json").write_text(json.dumps(doc, indent=1) + "\n")
        index[dataset] = dict(sorted(aliases.items()))
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(f"wrote {sum(len(d) for d in documents.values())} curves to {OUT}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
