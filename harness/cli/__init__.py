"""The ``harness`` command line: each module of this package adds the subcommands of one
kind (measure, catalog, compare, results, models; containers has its own) and calls
:mod:`harness.api` or the module that does the work; this one assembles the parser.

Exit status: 0 success; 1 the command finished but something failed (a measurement,
an unreadable image, an unavailable codec) — the summary says what; 2 usage or input
error (bad arguments, dataset unavailable, unreadable store); 130 interrupted (Ctrl-C;
finished work is kept).
"""

from __future__ import annotations

import argparse
import os
import sys

from harness import __version__
from harness.cli import catalog, compare, measure, models, results
from harness.cli.common import EPILOG, EXIT_INTERRUPTED, EXIT_USAGE, say
from harness.errors import HarnessError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", epilog=EPILOG,
        description="Benchmark image codecs on real bitstreams: bpp, PSNR, MS-SSIM, timings.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    measure.add_parsers(commands)
    catalog.add_parsers(commands)
    compare.add_parsers(commands)
    results.add_parsers(commands)
    models.add_parsers(commands)

    from harness.containers import add_containers_parser

    add_containers_parser(commands)
    return parser


def _show_harness_warnings() -> None:
    """Print HarnessWarnings as ``warning: ...`` lines (others as Python prints them)."""
    import warnings

    from harness.errors import HarnessWarning

    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, HarnessWarning):
            say(f"warning: {message}")
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
        say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_INTERRUPTED
    finally:
        if "harness.runner" in sys.modules:  # a command that measured: its workers are idle
            sys.modules["harness.runner"].stop_workers()


if __name__ == "__main__":
    sys.exit(main())
