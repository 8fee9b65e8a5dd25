"""What the commands share: exit codes, argument types, the convention options."""

from __future__ import annotations

import argparse
import math
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EPILOG = """exit status: 0 success; 1 finished, but something failed (see the summary);
2 usage or input error; 130 interrupted (finished work is kept)."""


def say(message: str) -> None:
    print(message, file=sys.stderr)


def parse_quality(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return int(value) if value.is_integer() else value


def parse_seconds(text: str) -> float:
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



def parse_size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    try:
        size = (int(height), int(width))
    except ValueError:
        size = (0, 0)
    if not sep or min(size) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give HEIGHTxWIDTH, e.g. 512x768")
    return size



def add_convention_options(parser: argparse.ArgumentParser, compare: bool = True) -> None:
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

