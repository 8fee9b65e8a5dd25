"""The ``harness`` command line.

Exit status: 0 success; 1 the command finished but something failed (a measurement,
an unreadable image, an unavailable codec) — the summary says what; 2 usage or input
error (bad arguments, dataset unavailable, unreadable store); 130 interrupted (Ctrl-C;
finished work is kept).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from harness import __version__
from harness.api import DEFAULT_CODECS, DEFAULT_STORE, REPORT_FOLDER
from harness.conventions import MAX_RATE_GAP
from harness.errors import HarnessError, UsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EPILOG = """exit status: 0 success; 1 finished, but something failed (see the summary);
2 usage or input error; 130 interrupted (finished work is kept)."""


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _parse_quality(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return int(value) if value.is_integer() else value


def _parse_seconds(text: str) -> float:
    """A time limit: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a time limit is a positive, finite number of seconds (there is no"
            " way to turn it off; give a large value instead)")
    return value


# --- harness run ----------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from harness import api
    from harness.aggregate import format_table, summarize

    result = api.run(args.datasets, args.codecs, args.qualities, args.store, args.jobs,
                     data_dir=args.data_dir, follow_symlinks=args.follow_symlinks,
                     checkpoint=args.checkpoint, device=args.device, lenient=args.lenient,
                     timeout=args.timeout, setup_timeout=args.setup_timeout,
                     scheduler=args.scheduler, progress=not args.no_progress,
                     report=False if args.no_report else (args.report or True),
                     save=args.save)
    summary = summarize(result.rows)
    if not summary.empty:
        print(format_table(summary))
    print(f"\n{result.measured} measured in {result.seconds:.1f} s, {result.reused} reused;"
          f" results in {args.store}")
    if result.report:
        print(f"report: {result.report / 'index.html'}")
    for problem in result.problems:
        _say(f"error: {problem}")
    if result.interrupted:
        _say("interrupted: finished measurements are stored; run the same command to resume")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if result.problems else EXIT_OK


# --- harness codecs / datasets ----------------------------------------------------------

def cmd_codecs(args: argparse.Namespace) -> int:
    from harness.registry import codec_entries, create_codec

    for name, entry in codec_entries().items():
        try:
            codec = create_codec(name)
        except UsageError as exc:
            print(f"{name:12s} unavailable: {exc}")
            continue
        available = codec.availability() if args.check else codec.quick_availability()
        notes = codec.quality_notes(args.check) if available.ok else []
        state = ("unavailable: " + available.reason if not available.ok
                 else "available" if not notes else "installed; see below for weights")
        points = ", ".join(f"{q:g}" for q in codec.qualities)
        origin = {"plugin": f" [plugin from {entry.origin}]",
                  "model": " [your model: harness models show " + name + "]"}.get(entry.kind, "")
        print(f"{name:12s} {state}{origin}\n{'':12s} {codec.description}\n"
              f"{'':12s} {codec.quality_label}: {points}"
              + "".join(f"\n{'':12s} {note}" for note in notes))
    return EXIT_OK


def cmd_datasets(args: argparse.Namespace) -> int:
    from harness.datasets import default_data_dir, list_manifests

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    for info in list_manifests(data_dir):
        print(info.describe())
    print(f"\ndata dir: {data_dir} (--data-dir, or $HARNESS_DATA); any folder of images"
          " works too: --datasets ./my_images")
    return EXIT_OK


# --- harness export / import ------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    from harness.api import require_store
    from harness.interchange import export_store
    from harness.store import ResultsStore

    require_store(args.store)
    with ResultsStore(args.store, readonly=True) as store:
        paths = export_store(store, args.out, args.aggregate, args.rate)
    for path in paths:
        print(path)
    if not paths:
        _say(f"nothing to export: {args.store} holds no successful measurement")
        return EXIT_FAILED
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from harness.interchange import import_results, remove_imported
    from harness.store import ResultsStore

    if bool(args.files) == bool(args.remove):
        raise UsageError("give results files to import, or --remove NAME, not both")
    with ResultsStore(args.store) as store:
        for name in args.remove or ():
            count = remove_imported(store, name, args.dataset)
            print(f"removed {name}: {count} curve(s)")
        for path in args.files:
            info = import_results(store, path, args.dataset)
            print(f"imported {info['name']} on {info['dataset']}: {info['points']} points")
    return EXIT_OK


def cmd_store(args: argparse.Namespace) -> int:
    from harness.api import require_store
    from harness.artefacts import clean_store, folder_for
    from harness.store import ResultsStore

    require_store(args.store)
    with ResultsStore(args.store) as store:
        cleaned = clean_store(store)
    if cleaned.skipped:
        _say(f"nothing removed: {cleaned.skipped}")
        return EXIT_FAILED
    print(f"{folder_for(args.store)}: removed {cleaned.removed} files no result points to"
          f" ({cleaned.bytes / 1e6:.1f} MB) and {cleaned.temporary} unfinished ones;"
          f" {cleaned.kept} kept")
    return EXIT_OK


# --- harness bd -------------------------------------------------------------------------

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
        _say("no comparison could be made (one curve per dataset?)")
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
    from harness.uncertainty import spans_zero

    blocks = []
    for (dataset, metric), group in table.groupby(["dataset", "metric"], sort=False):
        quality = "BD-PSNR dB" if metric == "psnr" else "BD-MS-SSIM dB"
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


# --- harness published ------------------------------------------------------------------

def cmd_published(args: argparse.Namespace) -> int:
    from harness.curves import DEFAULT_ANCHORS, no_anchor_message, published_catalog

    entries = published_catalog(args.datasets)
    if args.format == "json":
        print(json.dumps(entries, indent=1))
        return EXIT_OK
    for dataset in dict.fromkeys(e["dataset"] for e in entries):
        group = [e for e in entries if e["dataset"] == dataset]
        names = {a for e in group for a in (e["name"].removesuffix("@published"), *e["aliases"])}
        anchors = [a for a in DEFAULT_ANCHORS if "@" not in a and a in names]
        print(f"{dataset}: {len(group)} curves; "
              + (f"anchors: {', '.join(anchors)}" if anchors else no_anchor_message(dataset)))
        print(f"  {'curve':44s} {'metrics':13s} {'points':>6s}  source")
        for e in group:
            sources = "; ".join(
                f"{s['repo']}:{s['path']}@{s['commit'][:12]}" if s.get("repo")
                else s.get("description", "") for s in e["sources"])
            print(f"  {e['name']:44s} {','.join(e['metrics']):13s} {e['points']:6d}  {sources}")
            if e["aliases"]:
                print(f"    also: {', '.join(e['aliases'])}")
        print()
    return EXIT_OK


# --- harness report ---------------------------------------------------------------------

def cmd_report(args: argparse.Namespace) -> int:
    from harness import api

    published = False if args.no_published else (args.published or True)
    report = api.report(args.store, args.out, datasets=args.datasets, codecs=args.codecs,
                        anchor=args.anchor, method=args.method, published=published,
                        files=args.files or (), title=args.title, aggregate=args.aggregate,
                        rate=args.rate, mixed_conventions=args.mixed_conventions,
                        min_overlap=args.min_overlap, min_spacing=args.min_spacing,
                        gallery_images=args.gallery_images, gallery_bpp=args.gallery_bpp,
                        gallery_crop=args.gallery_crop)
    print(report / "index.html")
    return EXIT_OK


# --- harness checkpoints / verify -------------------------------------------------------------

def _read_weights(codec_name: str, path) -> dict:
    """Read a checkpoint the way the codec will (some take more than plain state_dicts)."""
    from harness.checkpoints import read_state_dict
    from harness.registry import codec_entries, create_codec

    codec = create_codec(codec_name) if codec_name in codec_entries() else None
    reader = getattr(codec, "read_weights", None)
    return reader(path) if reader is not None else read_state_dict(path)


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from harness import checkpoints as ck

    if args.action == "add":
        path = Path(args.path).resolve()
        sha256 = ck.sha256_of(path) if path.is_file() else None
        if sha256 is None:
            raise UsageError(f"{path} does not exist")
        from harness.registry import codec_entries, create_codec
        from harness.user_models import released_mixing_warning

        entry = codec_entries().get(args.codec)
        if entry is not None and entry.kind == "model":
            raise UsageError(f"{args.codec} is a model of your own: its checkpoints are"
                             f" loaded into its architecture when added, with `harness models"
                             f" add {args.codec} --replace --arch ARCH --checkpoints FILE ...`")
        _read_weights(args.codec, path)  # refuse unsafe or unreadable files now
        if entry is not None:
            warning = released_mixing_warning(create_codec(args.codec), args.quality, sha256)
            if warning:
                _say(f"warning: {warning}")
        manifest = ck.manifest_for(args.codec) or ck.Manifest(args.codec, [])
        manifest.entries = [e for e in manifest.entries if e.quality != float(args.quality)]
        manifest.entries.append(ck.CheckpointEntry(float(args.quality), str(path), args.url,
                                                   sha256, args.metric, args.lmbda))
        written = ck.write_manifest(manifest)
        print(f"{args.codec} q={args.quality:g}: {path} (sha256 {sha256[:16]}...) -> {written}")
        return EXIT_OK
    folder = ck.manifests_dir()
    paths = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    if args.codec:
        paths = [p for p in paths if p.stem in args.codec]
    if not paths:
        print(f"no checkpoint manifests in {folder} ($HARNESS_CHECKPOINTS)")
        return EXIT_OK if args.action == "list" else EXIT_FAILED
    failed = False
    for path in paths:
        manifest = ck.read_manifest(path)
        print(f"{manifest.codec} ({path})")
        for entry in sorted(manifest.entries, key=lambda e: e.quality):
            where = entry.path or entry.url
            state = ""
            if args.action == "verify":
                try:
                    ck.verify_entry(entry, manifest.codec)
                    _read_weights(manifest.codec, entry.path)
                    state = "ok"
                except HarnessError as exc:
                    state, failed = f"FAILED: {exc}", True
            print(f"  q={entry.quality:g}  {where}  {state}".rstrip())
    return EXIT_FAILED if failed else EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from harness import user_models
    from harness.checkpoints import manifests_dir

    if args.action == "add":
        manifest = user_models.add_model(args.name, args.arch, args.checkpoints, args.lambdas,
                                         args.description, args.metric, args.replace)
        print(f"model {manifest.codec}: {len(manifest.entries)} checkpoints of"
              f" {manifest.architecture}, qualities 1..{len(manifest.entries)} -> {manifest.path}"
              f"\nmeasure it: harness run --codecs {manifest.codec} --datasets kodak")
        return EXIT_OK
    if args.action == "remove":
        print(f"removed {user_models.remove_model(args.name)} (the checkpoint files are kept)")
        return EXIT_OK
    found = list(user_models.model_manifests())
    if args.action == "show":
        found = [m for m in found if m[0] == args.name]
        if not found:
            known = ", ".join(m[0] for m in user_models.model_manifests()) or "none"
            raise UsageError(f"no model named {args.name} (models: {known})")
    if not found:
        print(f"no models in {manifests_dir()} (harness models add NAME --arch ARCH --checkpoints"
              " FILE ...)")
    for name, path, manifest, error in found:
        if manifest is None:
            print(f"{name}  UNREADABLE: {error}")
            continue
        print(f"{name}  {manifest.architecture}, {len(manifest.entries)} checkpoints  ({path})")
        if args.action == "show":
            if manifest.description:
                print(f"  {manifest.description}")
            for entry in sorted(manifest.entries, key=lambda e: e.quality):
                lmbda = "" if entry.lmbda is None else f"  lambda {entry.lmbda:g}"
                state = "" if Path(entry.path).is_file() else "  MISSING"
                print(f"  q={entry.quality:g}{lmbda}  {entry.path}  sha256"
                      f" {(entry.sha256 or '')[:16]}...{state}")
    return EXIT_OK


def cmd_profile(args: argparse.Namespace) -> int:
    from harness import api
    from harness.profile import format_text

    result = api.profile(args.codec, args.size, device=args.device or "cpu",
                         checkpoint=args.checkpoint, quality=args.quality, runs=args.runs,
                         threads=args.threads, memory=not args.no_memory)
    print(json.dumps(result.as_dict(), indent=2) if args.format == "json"
          else format_text(result))
    return EXIT_OK


def _parse_size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    try:
        size = (int(height), int(width))
    except ValueError:
        size = (0, 0)
    if not sep or min(size) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give HEIGHTxWIDTH, e.g. 512x768")
    return size


def cmd_verify(args: argparse.Namespace) -> int:
    from harness.api import prepare_codecs
    from harness.codecs.learned import LearnedCodec
    from harness.datasets import resolve_dataset
    from harness.images import load_image
    from harness.verify import cross_check, format_checks, verify_quality

    if args.images < 1 or (args.crop is not None and args.crop < 1):
        raise UsageError("--images and --crop must be at least 1 (nothing would be verified)")
    (codecs, qualities, problems) = prepare_codecs([args.codec], args.qualities, args.checkpoint,
                                                   args.device, args.lenient)
    for problem in problems:
        _say(f"error: {problem}")
    if not codecs:
        return EXIT_USAGE  # the codec or its checkpoint cannot be used at all
    ((spec, codec),) = codecs
    if not isinstance(codec, LearnedCodec):
        raise UsageError(f"harness verify checks learned codecs; {args.codec} is not one")
    dataset = resolve_dataset(args.dataset)
    images = [(ref.image_id, load_image(ref.path).pixels) for ref in dataset.images[:args.images]]
    if args.crop:
        images = [(i, p[:args.crop, :args.crop]) for i, p in images]
    checks = []
    for quality in qualities[codec.name]:
        checks.append(verify_quality(codec, spec.name, dict(spec.options), quality, images,
                                     args.tolerance_db, max_rate_gap=args.max_rate_gap))
        _say(f"q={quality:g}: {'ok' if checks[-1].ok else 'FAILED'}")
        if args.cross:  # the thread matrix on the first image
            text, failures = cross_check(spec.name, dict(spec.options), quality, images[0][1],
                                         codec.name)
            print(text)
            checks[-1].failures += failures
    print(format_checks(checks))
    return EXIT_OK if all(c.ok for c in checks) and not problems else EXIT_FAILED


# --- harness check ------------------------------------------------------------------------

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


# --- parser -------------------------------------------------------------------------------

def _add_convention_options(parser: argparse.ArgumentParser, compare: bool = True) -> None:
    """--aggregate and --rate (and, for commands that compare curves, the guards)."""
    from harness import conventions as bd
    from harness.conventions import AGGREGATES, RATES

    parser.add_argument("--aggregate", default=AGGREGATES[0], choices=AGGREGATES,
                        help="mean-linear (default, as CompressAI and the papers): MS-SSIM"
                             " dB of the mean linear MS-SSIM; mean-db: mean of per-image dB")
    parser.add_argument("--rate", default=RATES[0], choices=RATES,
                        help="payload (default, as CompressAI and the papers): the"
                             " entropy-coded payload; file: the whole file, header included")
    if not compare:
        return
    parser.add_argument("--mixed-conventions", action="store_true",
                        help="compare curves made by different --aggregate / --rate rules")
    parser.add_argument("--min-overlap", type=float, default=bd.MIN_OVERLAP, metavar="F",
                        help="least share of a curve's range the anchor must cover for a BD"
                             f" value (default {bd.MIN_OVERLAP:g})")
    parser.add_argument("--min-spacing", type=float, default=bd.MIN_RATE_SPACING, metavar="F",
                        help="least relative gap between two rates of a curve (default"
                             f" {bd.MIN_RATE_SPACING:g})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", epilog=EPILOG,
        description="Benchmark image codecs on real bitstreams: bpp, PSNR, MS-SSIM, timings.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    run.add_argument("--qualities", nargs="+", type=_parse_quality, metavar="Q",
                     help="quality points for every codec (default: each codec's own sweep)")
    run.add_argument("--jobs", type=int, metavar="N", help="parallel workers (default: all cores)")
    run.add_argument("--timeout", type=_parse_seconds, default=3600, metavar="S",
                     help="time limit of one measurement (encode, decode, metrics); past it"
                          " the task is an error row (default 3600 s)")
    run.add_argument("--setup-timeout", type=_parse_seconds, default=3600, metavar="S",
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
    run.add_argument("--save", action="append", metavar="WHAT",
                     help="keep recon (decoded images, PNG) and/or bitstreams, named by their"
                          " hash, in the folder beside the store (results.artefacts/ for"
                          " results.sqlite); repeat or give a comma list")
    run.set_defaults(handler=cmd_run)

    codecs = commands.add_parser("codecs", help="list codecs, quality points, availability")
    codecs.add_argument("--check", action="store_true",
                        help="probe each codec fully (import the learned codecs' libraries,"
                             " look up their published files): slower")
    codecs.set_defaults(handler=cmd_codecs)

    datasets = commands.add_parser("datasets", help="list the known datasets")
    datasets.add_argument("--data-dir", metavar="DIR", help="dataset cache to look in")
    datasets.set_defaults(handler=cmd_datasets)

    export = commands.add_parser(
        "export", help="write CompressAI-style results JSON per codec and dataset")
    export.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH")
    export.add_argument("--out", required=True, metavar="DIR")
    _add_convention_options(export, compare=False)
    export.set_defaults(handler=cmd_export)

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
    bd.add_argument("--metrics", nargs="+", default=["psnr", "ms-ssim"],
                    choices=["psnr", "ms-ssim"])
    bd.add_argument("--format", default="text", choices=["text", "csv", "json"])
    bd.add_argument("--ci", action="store_true",
                    help="a 95 %% bootstrap interval over images for each BD-rate of measured"
                         " curves (ci_low, ci_high); '~' marks one that spans 0")
    bd.add_argument("--resamples", type=int, default=1000, metavar="N",
                    help="bootstrap resamples of --ci (default 1000)")
    bd.add_argument("--seed", type=int, default=0, help="seed of --ci's resampling (default 0)")
    _add_convention_options(bd)
    bd.set_defaults(handler=cmd_bd)

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
    chk.add_argument("--metric", default="psnr", choices=["psnr", "ms-ssim"])
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
    _add_convention_options(chk)
    chk.set_defaults(handler=cmd_check)

    from harness.containers import add_containers_parser

    add_containers_parser(commands)

    pub = commands.add_parser(
        "published", help="list the shipped published curves: dataset, source, metrics",
        description="Every published curve shipped with the harness (usable as NAME@published"
                    " in bd, report and check), with its dataset, metrics and source"
                    " (repository, path, commit).")
    pub.add_argument("--datasets", nargs="+", metavar="DATASET",
                     help="only these datasets (published sets or names `run` accepts)")
    pub.add_argument("--format", choices=["text", "json"], default="text")
    pub.set_defaults(handler=cmd_published)

    rep = commands.add_parser(
        "report", epilog=EPILOG, help="RD plots, BD and means tables, one HTML page",
        description="Render a report folder from the store: RD plots (PNG, SVG), tables"
                    " (Markdown, CSV, LaTeX), a run summary and a self-contained index.html."
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
    rep.add_argument("--gallery-images", nargs="+", metavar="[DATASET/]IMAGE",
                     help="images of the gallery of kept reconstructions (run --save recon);"
                          " default: the first two of each dataset")
    rep.add_argument("--gallery-bpp", type=float, default=0.5, metavar="BPP",
                     help="the gallery shows each codec at its quality nearest this rate"
                          " (default 0.5)")
    rep.add_argument("--gallery-crop", type=int, default=256, metavar="N",
                     help="side of the gallery's crops in pixels (default 256)")
    _add_convention_options(rep)
    rep.set_defaults(handler=cmd_report)

    ckpt = commands.add_parser("checkpoints", help="register, list and verify checkpoints")
    ckpt_actions = ckpt.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = ckpt_actions.add_parser("add", help="register a checkpoint file for a quality point")
    add.add_argument("codec")
    add.add_argument("--quality", type=_parse_quality, required=True)
    add.add_argument("--path", required=True, metavar="FILE")
    add.add_argument("--url", help="where the file was published")
    add.add_argument("--metric", choices=["mse", "ms-ssim"])
    add.add_argument("--lambda", dest="lmbda", type=float, metavar="L")
    for action in ("list", "verify"):
        sub = ckpt_actions.add_parser(action, help=f"{action} the registered checkpoints")
        sub.add_argument("codec", nargs="*")
    ckpt.set_defaults(handler=cmd_checkpoints)

    models = commands.add_parser(
        "models", epilog=EPILOG, help="models of your own: one named codec, many checkpoints",
        description="Register a model of your own: a name, a learned architecture and one"
                    " checkpoint per rate point. It is then a codec like the built-in ones"
                    " (harness run --codecs NAME), measured at qualities 1..n, one curve.")
    model_actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = model_actions.add_parser(
        "add", help="register checkpoints (loaded strictly into the architecture first)")
    add.add_argument("name", help="the codec name of your model (not a built-in codec's)")
    add.add_argument("--arch", required=True, metavar="ARCH",
                     help="the learned codec whose network the files fit (bmshj2018-factorized,"
                          " mbt2018, cheng2020-attn, stf, wacnn, tcm, tic, shen2023,"
                          " entroformer ...); widths such as TCM's N are read from the files")
    add.add_argument("--checkpoints", nargs="+", required=True, metavar="FILE",
                     help="one file per rate point, lowest rate first (quality 1, 2, ...)")
    add.add_argument("--lambdas", nargs="+", type=float, metavar="L",
                     help="the lambda of each checkpoint (labels, same order)")
    add.add_argument("--description", help="one line for `harness codecs` and the report")
    add.add_argument("--metric", choices=["mse", "ms-ssim"], help="what it was trained for")
    add.add_argument("--replace", action="store_true", help="overwrite a model of that name")
    model_actions.add_parser("list", help="list your models")
    for action in ("show", "remove"):
        sub = model_actions.add_parser(
            action, help="show a model's checkpoints" if action == "show"
            else "forget a model (its files are kept)")
        sub.add_argument("name")
    models.set_defaults(handler=cmd_models)

    verify = commands.add_parser(
        "verify", epilog=EPILOG, help="check a learned codec decodes from its bytes alone",
        description="Per quality on a few images: decoded output vs the forward"
                    " reconstruction, identical bytes from two encodes, decoding in a fresh"
                    " process, estimated vs real bpp, header overhead, timings.")
    verify.add_argument("codec")
    verify.add_argument("--checkpoint", metavar="PATH")
    verify.add_argument("--qualities", nargs="+", type=_parse_quality, metavar="Q")
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
                        help="also decode each thread count's bytes with the others (fresh"
                             " processes at 1, 2 and all threads) and print the matrix")
    verify.add_argument("--lenient", action="store_true",
                     help="load the entries of the checkpoint that fit and report every"
                          " skipped one (codecs that allow it)")
    verify.set_defaults(handler=cmd_verify)

    prof = commands.add_parser(
        "profile", epilog=EPILOG, help="complexity of a learned codec: parameters, kMAC/pixel,"
                                       " time, memory",
        description="Parameters (total and per part), kMAC per pixel of the forward pass, of"
                    " encoding and of decoding, median encode / decode time and peak memory of"
                    " a learned codec at one input size. Without --checkpoint the network is"
                    " built in its released layout with random weights.")
    prof.add_argument("codec")
    prof.add_argument("--size", type=_parse_size, default=(512, 768), metavar="HxW",
                      help="input size (default 512x768, Kodak's)")
    prof.add_argument("--device", metavar="DEVICE", help="cpu (default) or cuda")
    prof.add_argument("--checkpoint", metavar="PATH")
    prof.add_argument("--quality", type=_parse_quality, metavar="Q",
                      help="quality point of the released layout (default: the first)")
    prof.add_argument("--runs", type=int, default=3, help="timed calls (default 3)")
    prof.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    prof.add_argument("--no-memory", action="store_true",
                      help="skip the two fresh processes that measure peak memory")
    prof.add_argument("--format", default="text", choices=["text", "json"])
    prof.set_defaults(handler=cmd_profile)

    imp = commands.add_parser("import", help="read CompressAI-style results JSON into the store")
    imp.add_argument("files", nargs="*", metavar="FILE")
    imp.add_argument("--dataset", help="dataset of the curves (default: the file's meta, else"
                                       " its folder name)")
    imp.add_argument("--remove", nargs="+", metavar="NAME",
                     help="remove these imported curves (their ids as bd and report show"
                          " them, without the [imported: ...] part)")
    imp.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH")
    imp.set_defaults(handler=cmd_import)

    sto = commands.add_parser("store", help="look after the results store")
    sto_actions = sto.add_subparsers(dest="action", metavar="ACTION", required=True)
    clean = sto_actions.add_parser(
        "clean", help="remove saved recon / bitstream files that no result points to",
        description="Remove the files of the artefacts folder beside the store (kept by"
                    " `harness run --save`) that no result row points to, and the pieces of"
                    " writes a killed run left. Every run does this at its end too.")
    clean.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH")
    clean.set_defaults(handler=cmd_store)
    return parser


def _show_harness_warnings() -> None:
    """Print HarnessWarnings as ``warning: ...`` lines (others as Python prints them)."""
    import warnings

    from harness.errors import HarnessWarning

    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, HarnessWarning):
            _say(f"warning: {message}")
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.simplefilter("always", HarnessWarning)


def main(argv: list[str] | None = None) -> int:
    # Idle OpenMP threads must sleep, not spin: spinning workers on a small shared
    # machine slow each other down many times over. Set before torch is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _show_harness_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.handler(args)
    except HarnessError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
