"""Commands that compare curves: ``bd`` and ``report``."""

from __future__ import annotations

import argparse
import math

from harness.api import DEFAULT_STORE, REPORT_FOLDER
from harness.cli.common import EPILOG, EXIT_FAILED, EXIT_OK, add_convention_options, say


def cmd_bd(args: argparse.Namespace) -> int:
    from harness import api

    table = api.bd_table(anchor=args.anchor, metrics=args.metrics, method=args.method,
                         mixed_conventions=args.mixed_conventions,
                         min_overlap=args.min_overlap, min_spacing=args.min_spacing,
                         store=args.store, datasets=args.datasets, codecs=args.codecs,
                         files=args.files or (), published=args.published,
                         aggregate=args.aggregate, rate=args.rate, ci=args.ci,
                         resamples=args.resamples, seed=args.seed)
    conventions = table.attrs["conventions"]
    if args.ci:
        conventions += "\n" + table.attrs["ci"]
    if table.empty:
        say("no comparison could be made (one curve per dataset?)")
        return EXIT_FAILED
    if args.format == "csv":
        print(table.to_csv(index=False), end="")
    elif args.format == "json":
        import json

        from harness.check import _plain

        print(json.dumps({"conventions": table.attrs["conventions"],
                          "interval": table.attrs.get("ci"), "rows": _plain(
            table.to_dict(orient="records"))}, indent=2, allow_nan=False))
    else:
        print(_format_bd_text(table) + f"\n\n{conventions}")
    return EXIT_FAILED if table["bd_rate"].isna().all() else EXIT_OK


def _format_bd_text(table) -> str:
    from harness.curves import quality_unit
    from harness.uncertainty import spans_zero

    blocks = []
    for (dataset, metric), group in table.groupby(["dataset", "metric"], sort=False):
        unit = quality_unit(metric)
        quality = f"BD-{metric.upper()}" + (f" {unit}" if unit else "")
        lines = [f"{dataset} / {metric}: BD against {group['anchor'].iloc[0]}"
                 f" ({group['method'].iloc[0]})",
                 f"  {'codec':40s} {'BD-rate %':>10s} {quality:>14s}  points"
                 + ("  95 % interval   " if "ci_low" in group else "") + "  reason"]
        for row in group.itertuples(index=False):
            interval = ""
            if "ci_low" in group:
                interval = (f"  [{row.ci_low:6.2f}, {row.ci_high:6.2f}]"
                            + ("~" if spans_zero(row.ci_low, row.ci_high) else " ")
                            if math.isfinite(row.ci_low) else f"  {row.ci_reason:17s}")
            lines.append(f"  {row.codec:40s} {row.bd_rate:10.2f} {row.bd_quality:14.3f}"
                         f"  {row.points:6d}{interval}  {row.reason}".rstrip())
            if row.warning:
                lines.append(f"    note: {row.warning}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)

def cmd_report(args: argparse.Namespace) -> int:
    from harness import api

    published = False if args.no_published else (args.published or True)
    report = api.report(args.store, args.out, datasets=args.datasets, codecs=args.codecs,
                        anchor=args.anchor, method=args.method, published=published,
                        files=args.files or (), title=args.title, aggregate=args.aggregate,
                        rate=args.rate, mixed_conventions=args.mixed_conventions,
                        min_overlap=args.min_overlap, min_spacing=args.min_spacing,
                        gallery_images=args.gallery_images, gallery_bpp=args.gallery_bpp,
                        gallery_crop=args.gallery_crop, log_rate=args.log_rate)
    print(report / "index.html")
    return EXIT_OK


def add_parsers(commands) -> None:
    bd = commands.add_parser(
        "bd", epilog=EPILOG, help="BD-rate / BD-PSNR table against an anchor",
        description="Bjontegaard deltas of every curve against an anchor, per dataset and"
                    " metric (MS-SSIM in dB), from the store, results JSON files and published"
                    " curves, mixed freely.")
    bd.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH")
    bd.add_argument("--files", nargs="+", metavar="[DATASET=]FILE",
                    help="CompressAI-style results JSON (dataset: the file's folder name)")
    bd.add_argument("--published", nargs="+", metavar="NAME",
                    help="published curves to include (vtm, bpg, stf, tcm, jpeg ...)")
    bd.add_argument("--datasets", nargs="+", metavar="DATASET", help="only these datasets")
    bd.add_argument("--codecs", nargs="+", metavar="CODEC", help="only these measured codecs")
    bd.add_argument("--anchor", metavar="NAME",
                    help="anchor curve (e.g. vtm@published, jpeg); default: VTM, else BPG,"
                         " else JPEG")
    bd.add_argument("--method", default="pchip", choices=["pchip", "akima", "cubic"])
    bd.add_argument("--metrics", nargs="+", default=["psnr", "ms-ssim"], metavar="METRIC",
                    help="psnr and / or ms-ssim (RGB; MS-SSIM in dB), or metrics measured"
                         " with run --metrics: psnr-y, ms-ssim-y (in dB) ... (default:"
                         " psnr ms-ssim)")
    bd.add_argument("--format", default="text", choices=["text", "csv", "json"])
    bd.add_argument("--ci", action="store_true",
                    help="a 95 %% bootstrap interval over images for each BD-rate of measured"
                         " curves (ci_low, ci_high); '~' marks one that spans 0")
    bd.add_argument("--resamples", type=int, default=1000, metavar="N",
                    help="bootstrap resamples of --ci (default 1000)")
    bd.add_argument("--seed", type=int, default=0, help="seed of --ci's resampling (default 0)")
    add_convention_options(bd)
    bd.set_defaults(handler=cmd_bd)

    rep = commands.add_parser(
        "report", epilog=EPILOG, help="RD plots, BD and means tables, one HTML page",
        description="Render a report folder from the store: RD plots (PNG, SVG, PDF), tables"
                    " (Markdown, CSV, LaTeX), a run summary and an index.html with interactive"
                    " RD plots that works offline from the report folder."
                    " Published curves of the same datasets are added unless --no-published.")
    rep.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH")
    rep.add_argument("--out", metavar="DIR",
                     help=f"the report folder (default: {REPORT_FOLDER}/ beside the store)")
    rep.add_argument("--datasets", nargs="+", metavar="DATASET")
    rep.add_argument("--codecs", nargs="+", metavar="CODEC")
    rep.add_argument("--anchor", metavar="NAME", help="BD anchor (default: VTM, else BPG, else"
                     " JPEG)")
    rep.add_argument("--method", default="pchip", choices=["pchip", "akima", "cubic"])
    rep.add_argument("--published", nargs="+", metavar="NAME",
                     help="only these published curves (all are drawn)")
    rep.add_argument("--no-published", action="store_true", help="no published curves")
    rep.add_argument("--files", nargs="+", metavar="[DATASET=]FILE",
                     help="more curves from CompressAI-style results JSON")
    rep.add_argument("--title", default="Benchmark report")
    rep.add_argument("--log-rate", action="store_true",
                     help="a logarithmic bpp axis in the PNG / SVG / PDF plots, and in the"
                          " page's interactive plots when it opens")
    rep.add_argument("--gallery-images", nargs="+", metavar="[DATASET/]IMAGE",
                     help="images of the gallery of kept reconstructions (run --save recon);"
                          " default: the first two of each dataset")
    rep.add_argument("--gallery-bpp", type=float, default=0.5, metavar="BPP",
                     help="the gallery shows each codec at its quality nearest this rate"
                          " (default 0.5)")
    rep.add_argument("--gallery-crop", type=int, default=256, metavar="N",
                     help="side of the gallery's crops in pixels (default 256)")
    add_convention_options(rep)
    rep.set_defaults(handler=cmd_report)
