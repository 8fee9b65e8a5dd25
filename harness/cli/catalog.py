"""Commands that list what there is: ``codecs``, ``metrics``, ``datasets``, ``published``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.api import DEFAULT_STORE
from harness.cli.common import EXIT_OK
from harness.errors import UsageError


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


def cmd_metrics(args: argparse.Namespace) -> int:
    from harness.metrics.registry import DEFAULT_METRICS, GROUPS, describe

    if args.action == "add":
        return _add_metrics(args)

    entries = describe()
    if args.format == "json":
        print(json.dumps(entries, indent=1))
        return EXIT_OK
    for e in entries:
        state = "available" if e["available"] else f"unavailable: {e['why']}"
        better = {True: "higher is better", False: "lower is better", None: ""}
        origin = "" if e["origin"] == "built-in" else f" [plugin from {e['origin']}]"
        print(f"{e['name']:12s} {state}{origin}\n{'':12s} {e['description']}\n"
              f"{'':12s} needs: {', '.join(e['needs']) or 'numpy only'};"
              f" {better[e['higher_is_better']]}; stored in {e['stored'] or '-'};"
              f" fingerprint {e['fingerprint'] or '-'}")
    print(f"\nalways measured: {', '.join(DEFAULT_METRICS)}; groups: "
          + "; ".join(f"{g} = {' '.join(names)}" for g, names in GROUPS.items())
          + " (harness run --metrics NAME ...)")
    return EXIT_OK


def _add_metrics(args: argparse.Namespace) -> int:
    from harness import api
    from harness.cli.common import EXIT_FAILED, say

    done = api.add_metrics(args.names, args.store, args.ycbcr_matrix, args.ycbcr_bits,
                           reencode=args.reencode)
    added = done.added
    print(f"{', '.join(done.metrics)}: added to {sum(added.values())} rows"
          f" ({added['recon']} from kept reconstructions, {added['bitstream']} from kept"
          f" bitstreams decoded again, {added['re-encoded']} re-encoded); {done.had} rows"
          " had them already")
    if done.to_reencode:
        say(f"{len(done.to_reencode)} rows have neither a kept reconstruction nor a kept"
            f" bitstream (e.g. {done.to_reencode[0]}): add --reencode to encode and decode"
            " them again here, or run `harness run` with their datasets and codecs and"
            f" --metrics {' '.join(args.names)} (add --save bitstreams to keep what the"
            " next metric needs)")
    for problem in done.failed[:5]:
        say(f"not measured: {problem}")
    if len(done.failed) > 5:
        say(f"... and {len(done.failed) - 5} more rows not measured")
    return EXIT_FAILED if done.to_reencode or done.failed else EXIT_OK


def cmd_datasets(args: argparse.Namespace) -> int:
    from harness.datasets import default_data_dir, list_manifests

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    for info in list_manifests(data_dir):
        print(info.describe())
    print(f"\ndata dir: {data_dir} (--data-dir, or $HARNESS_DATA); any folder of images"
          " works too: --datasets ./my_images")
    return EXIT_OK

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


def add_parsers(commands) -> None:
    codecs = commands.add_parser("codecs", help="list codecs, quality points, availability")
    codecs.add_argument("--check", action="store_true",
                        help="probe each codec fully (import the learned codecs' libraries,"
                             " look up their published files): slower")
    codecs.set_defaults(handler=cmd_codecs)

    metrics = commands.add_parser(
        "metrics", help="list quality metrics: what each needs, whether it runs here",
        description="Every quality metric `harness run --metrics` can measure: built-ins and"
                    " plugins (entry-point group harness.metrics), what each needs, whether"
                    " it can run here, its fingerprint and direction.")
    metrics.add_argument("--format", choices=["text", "json"], default="text")
    metrics.set_defaults(handler=cmd_metrics, action=None)
    actions = metrics.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser(
        "add", help="compute metrics for rows already stored, from kept files",
        description="Compute metrics for the rows of a store that lack them, from the"
                    " reconstructions kept with `harness run --save recon`, else from the"
                    " bitstreams kept with --save bitstreams, decoded again by the row's"
                    " codec (same fingerprint), else, with --reencode, by encoding and"
                    " decoding anew; the output counts rows per source.")
    add.add_argument("names", nargs="+", metavar="NAME", help="metric names or jpeg-ai")
    add.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH")
    add.add_argument("--ycbcr-matrix", default="bt709", choices=["bt709", "bt601", "bt2020"])
    add.add_argument("--ycbcr-bits", type=int, default=10, choices=[10, 8])
    add.add_argument("--reencode", action="store_true",
                     help="encode and decode anew the rows that kept neither file (refused"
                          " for a row when the new bitstream's size differs from its own)")

    datasets = commands.add_parser("datasets", help="list the known datasets")
    datasets.add_argument("--data-dir", metavar="DIR", help="dataset cache to look in")
    datasets.set_defaults(handler=cmd_datasets)

    pub = commands.add_parser(
        "published", help="list the shipped published curves: dataset, source, metrics",
        description="Every published curve shipped with the harness (usable as NAME@published"
                    " in bd, report and check), with its dataset, metrics and source"
                    " (repository, path, commit).")
    pub.add_argument("--datasets", nargs="+", metavar="DATASET",
                     help="only these datasets (published sets or names `run` accepts)")
    pub.add_argument("--format", choices=["text", "json"], default="text")
    pub.set_defaults(handler=cmd_published)
