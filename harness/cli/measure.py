"""Commands that encode and decode: ``run``, ``check``, ``verify``."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.api import DEFAULT_CODECS, DEFAULT_STORE, REPORT_FOLDER
from harness.cli.common import (
    EPILOG,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_convention_options,
    parse_quality,
    parse_seconds,
    say,
)
from harness.conventions import MAX_RATE_GAP
from harness.errors import UsageError


def cmd_run(args: argparse.Namespace) -> int:
    from harness import api
    from harness.aggregate import format_table, summarize

    result = api.run(args.datasets, args.codecs, args.qualities, args.store, args.jobs,
                     data_dir=args.data_dir, follow_symlinks=args.follow_symlinks,
                     checkpoint=args.checkpoint, device=args.device, lenient=args.lenient,
                     timeout=args.timeout, setup_timeout=args.setup_timeout,
                     scheduler=args.scheduler, progress=not args.no_progress,
                     report=False if args.no_report else (args.report or True),
                     save=args.save, max_memory=args.max_memory, metrics=args.metrics,
                     ycbcr_matrix=args.ycbcr_matrix, ycbcr_bits=args.ycbcr_bits)
    summary = summarize(result.rows)
    if not summary.empty:
        print(format_table(summary))
    print(f"\n{result.measured} measured in {result.seconds:.1f} s, {result.reused} reused;"
          f" results in {args.store}")
    if result.loads:
        loads = sum(len(models) for models in result.loads.values())
        print(f"model loads: {loads} in {len(result.loads)} worker(s) ("
              + "; ".join(f"{', '.join(models)}" for models in result.loads.values()) + ")")
    if result.fallbacks:
        print(f"{result.fallbacks} measurement(s) ran out of GPU memory and were made on the"
              " CPU instead (their rows' note begins with device_fallback)")
    if result.report:
        print(f"report: {result.report / 'index.html'}")
    for problem in result.problems:
        say(f"error: {problem}")
    if result.interrupted:
        say("interrupted: finished measurements are stored; run the same command to resume")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if result.problems else EXIT_OK

def cmd_check(args: argparse.Namespace) -> int:
    from harness import api, check

    for flag, path in (("--junit", args.junit), ("--markdown", args.markdown)):
        if path and not Path(path).resolve().parent.is_dir():
            raise UsageError(f"{flag} {path}: the folder {Path(path).resolve().parent} does"
                             " not exist")
    report = api.check(
        args.codec, args.checkpoints, args.baseline, datasets=args.datasets,
        store=args.store, data_dir=args.data_dir, jobs=args.jobs, device=args.device,
        lenient=args.lenient, metric=args.metric, method=args.method,
        max_bd_rate=args.max_bd_rate, max_psnr_drop=args.max_psnr_drop,
        max_rate_increase=args.max_rate_increase,
        forward_tolerance_db=args.forward_tolerance_db, max_rate_gap=args.max_rate_gap,
        image_psnr=args.image_psnr, image_bpp=args.image_bpp, gate_images=args.gate_images,
        gate_crop=args.gate_crop, golden=args.golden, write_golden=args.write_golden,
        portable=args.portable,
        aggregate=args.aggregate, rate=args.rate, mixed_conventions=args.mixed_conventions,
        progress=not args.no_progress)
    if args.junit:
        Path(args.junit).write_text(check.to_junit(report))
    if args.markdown:
        Path(args.markdown).write_text(check.to_markdown(report))
    print(check.to_json(report) if args.json else check.to_text(report))
    return report.exit_code

def cmd_verify(args: argparse.Namespace) -> int:
    from harness import api
    from harness.verify import format_checks, format_cross

    result = api.verify(args.codec, dataset=args.dataset, images=args.images, crop=args.crop,
                        qualities=args.qualities, checkpoint=args.checkpoint,
                        device=args.device, lenient=args.lenient,
                        tolerance_db=args.tolerance_db, max_rate_gap=args.max_rate_gap,
                        cross=args.cross, store=args.store if args.cross else None,
                        progress=say)
    for problem in result.problems:
        say(f"error: {problem}")
    for quality, matrix in result.matrices:
        print(f"q={float(quality):g} {format_cross(args.codec, matrix)}")
    print(format_checks(result.checks))
    return EXIT_OK if result.ok else EXIT_FAILED


def add_parsers(commands) -> None:
    run = commands.add_parser(
        "run", epilog=EPILOG, help="measure codecs on datasets (resumable)",
        description="Encode and decode every image of the datasets with every codec at each"
                    " quality, measure bpp / PSNR / MS-SSIM / times, store each result as it"
                    " arrives, and print a table. Re-running skips what is stored.")
    run.add_argument("--datasets", nargs="+", default=["sample"], metavar="DATASET",
                     help="dataset names (kodak, clic, tecnick[:PHASE], tecnick-100, sample)"
                          " or folders of images (default: sample)")
    run.add_argument("--codecs", nargs="+", default=list(DEFAULT_CODECS), metavar="CODEC",
                     help="codec names, see `harness codecs`"
                          f" (default: {' '.join(DEFAULT_CODECS)})")
    run.add_argument("--qualities", nargs="+", type=parse_quality, metavar="Q",
                     help="quality points for every codec (default: each codec's own sweep)")
    run.add_argument("--jobs", type=int, metavar="N", help="parallel workers (default: all cores)")
    run.add_argument("--timeout", type=parse_seconds, default=3600, metavar="S",
                     help="time limit of one measurement (encode, decode, metrics); past it"
                          " the task is an error row (default 3600 s)")
    run.add_argument("--setup-timeout", type=parse_seconds, default=3600, metavar="S",
                     help="time limit of a worker's set-up for a task (loading the codec or"
                          " model, warm-up), apart from --timeout (default 3600 s)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on a Dask cluster: tcp://HOST:PORT, or local:N for a local"
                          " cluster of N worker processes (pip install 'lic-harness[dask]')")
    run.add_argument("--checkpoint", metavar="PATH",
                     help="run one checkpoint of a learned codec (one rate point; --codecs"
                          " names its architecture)")
    run.add_argument("--lenient", action="store_true",
                     help="load the entries of the checkpoint that fit and report every"
                          " skipped one (codecs that allow it)")
    run.add_argument("--device", metavar="DEVICE",
                     help="torch device of learned codecs: cpu (default) or cuda")
    run.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH",
                     help=f"SQLite results file (default: {DEFAULT_STORE})")
    run.add_argument("--data-dir", metavar="DIR",
                     help="dataset cache (default: $HARNESS_DATA or ~/.cache/lic-harness)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--follow-symlinks", action="store_true",
                     help="read links in a dataset folder that lead outside it")
    run.add_argument("--report", metavar="DIR",
                     help="where the report of the whole store goes, re-rendered only when"
                          f" its content changed (default: {REPORT_FOLDER}/ beside the store)")
    run.add_argument("--no-report", action="store_true", help="print the table only")
    run.add_argument("--max-memory", metavar="SIZE",
                     help="memory the measurements running side by side may take together,"
                          " by their estimates (e.g. 16G; default: 70 %% of the RAM)")
    run.add_argument("--save", action="append", metavar="WHAT",
                     help="keep recon (decoded images, PNG) and/or bitstreams, named by their"
                          " hash, in the folder beside the store (results.artefacts/ for"
                          " results.sqlite); repeat or give a comma list")
    run.add_argument("--metrics", nargs="+", default=[], metavar="NAME",
                     help="metrics besides psnr-rgb and ms-ssim-rgb (always measured): names"
                          " from `harness metrics`, or jpeg-ai for JPEG AI's set (psnr-y,"
                          " psnr-u, psnr-v, psnr-yuv, ms-ssim-y); stored rows without them"
                          " are measured again")
    run.add_argument("--ycbcr-matrix", default="bt709", choices=["bt709", "bt601", "bt2020"],
                     help="matrix of the Y'CbCr metrics (default bt709, as JPEG AI)")
    run.add_argument("--ycbcr-bits", type=int, default=10, choices=[10, 8],
                     help="internal bit depth of the Y'CbCr metrics (default 10, as JPEG AI)")
    run.set_defaults(handler=cmd_run)

    chk = commands.add_parser(
        "check", epilog="exit status: 0 pass; 1 regression, failed gate or cannot compare;"
                        " 2 usage or input error (e.g. an unreadable checkpoint).",
        help="regression-check new checkpoints against a baseline (for CI)",
        description="Correctness gates (strict load, decode == forward, determinism, rate"
                    " gap, finite values, optional golden bitstreams), then the RD comparison"
                    " of the new checkpoint(s) with the baseline: BD-rate for a set, the PSNR"
                    " and rate differences for one point. Measurements are reused from the"
                    " store.")
    chk.add_argument("codec", help="the architecture of the checkpoints (e.g. mbt2018, stf)")
    chk.add_argument("--checkpoints", nargs="+", required=True, metavar="NEW")
    chk.add_argument("--baseline", nargs="+", required=True, metavar="BASELINE",
                     help="NAME@published, a CompressAI results JSON, a codec measured in"
                          " the store, or checkpoint file(s)")
    chk.add_argument("--datasets", nargs="+", default=["sample"], metavar="DATASET")
    chk.add_argument("--data-dir", metavar="DIR")
    chk.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH")
    chk.add_argument("--jobs", type=int, metavar="N")
    chk.add_argument("--device", metavar="DEVICE")
    chk.add_argument("--lenient", action="store_true",
                     help="load the entries of the checkpoint that fit and report every"
                          " skipped one (codecs that allow it)")
    chk.add_argument("--metric", default="psnr",
                     help="psnr (default) or ms-ssim on RGB, or a metric measured with run"
                          " --metrics (psnr-y, ms-ssim-y ...)")
    chk.add_argument("--method", default="pchip", choices=["pchip", "akima", "cubic"])
    chk.add_argument("--max-bd-rate", type=float, default=0.5, metavar="PCT",
                     help="largest BD-rate increase that passes (default +0.5 %%)")
    chk.add_argument("--max-psnr-drop", type=float, default=0.05, metavar="DB",
                     help="largest PSNR drop at equal rate that passes (default 0.05 dB)")
    chk.add_argument("--max-rate-increase", type=float, default=1.0, metavar="PCT",
                     help="largest rate increase at equal PSNR that passes (default 1 %%)")
    chk.add_argument("--forward-tolerance-db", type=float, default=40.0, metavar="DB")
    chk.add_argument("--max-rate-gap", type=float, default=MAX_RATE_GAP, metavar="PCT",
                     help="largest gap between real and estimated rate (default 10 %%)")
    chk.add_argument("--image-psnr", type=float, default=0.1, metavar="DB",
                     help="per-image PSNR change that lists an image (default 0.1 dB)")
    chk.add_argument("--image-bpp", type=float, default=2.0, metavar="PCT",
                     help="per-image bpp change that lists an image (default 2 %%)")
    chk.add_argument("--gate-images", type=int, default=2, metavar="N")
    chk.add_argument("--gate-crop", type=int, default=256, metavar="PX")
    chk.add_argument("--golden", metavar="DIR", help="bitstreams + md5 that must decode unchanged")
    chk.add_argument("--write-golden", metavar="DIR", help="write a golden set for later checks")
    chk.add_argument("--portable", action="store_true",
                     help="gate 'portable': the bytes decode alike at 1, 2 and all threads")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.add_argument("--junit", metavar="FILE", help="write JUnit XML, one case per gate")
    chk.add_argument("--markdown", metavar="FILE", help="write a pull-request comment")
    chk.add_argument("--no-progress", action="store_true")
    add_convention_options(chk)
    chk.set_defaults(handler=cmd_check)

    verify = commands.add_parser(
        "verify", epilog=EPILOG, help="check a learned codec decodes from its bytes alone",
        description="Per quality on a few images: decoded output vs the forward"
                    " reconstruction, identical bytes from two encodes, decoding in a fresh"
                    " process, estimated vs real bpp, header overhead, timings.")
    verify.add_argument("codec")
    verify.add_argument("--checkpoint", metavar="PATH")
    verify.add_argument("--qualities", nargs="+", type=parse_quality, metavar="Q")
    verify.add_argument("--dataset", default="sample", help="images to use (default: sample)")
    verify.add_argument("--images", type=int, default=2, help="how many images (default 2)")
    verify.add_argument("--crop", type=int, metavar="PX", help="crop images to PX x PX first")
    verify.add_argument("--tolerance-db", type=float, default=40.0,
                        help="least PSNR between decoded and forward output (default 40)")
    verify.add_argument("--max-rate-gap", type=float, default=MAX_RATE_GAP, metavar="PCT",
                        help="largest gap between real and estimated rate, as in harness"
                             " check (default 10 %%)")
    verify.add_argument("--device", metavar="DEVICE")
    verify.add_argument("--cross", action="store_true",
                        help="also decode the bytes written at 1, 2 and all threads (and on"
                             " the GPU, if any) at each of them in fresh processes, print the"
                             " matrix and record it in --store, whose report shows it")
    verify.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH",
                        help=f"where --cross records its matrix (default: {DEFAULT_STORE})")
    verify.add_argument("--lenient", action="store_true",
                     help="load the entries of the checkpoint that fit and report every"
                          " skipped one (codecs that allow it)")
    verify.set_defaults(handler=cmd_verify)
