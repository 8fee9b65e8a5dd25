"""Commands that move results in and out of the store: ``export``, ``import``, ``store``."""

from __future__ import annotations

import argparse

from harness.api import DEFAULT_STORE
from harness.cli.common import EXIT_FAILED, EXIT_OK, add_convention_options, say
from harness.errors import UsageError


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
        say(f"nothing to export: {args.store} holds no successful measurement")
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
        say(f"nothing removed: {cleaned.skipped}")
        return EXIT_FAILED
    print(f"{folder_for(args.store)}: removed {cleaned.removed} files no result points to"
          f" ({cleaned.bytes / 1e6:.1f} MB) and {cleaned.temporary} unfinished ones;"
          f" {cleaned.kept} kept")
    return EXIT_OK


def add_parsers(commands) -> None:
    export = commands.add_parser(
        "export", help="write CompressAI-style results JSON per codec and dataset")
    export.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH")
    export.add_argument("--out", required=True, metavar="DIR")
    add_convention_options(export, compare=False)
    export.set_defaults(handler=cmd_export)

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
