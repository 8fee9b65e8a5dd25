"""The rules by which curves are made, compared and checked, in a module that imports nothing.

The command line names these in its options; keeping them apart from the numerical
modules (``harness.aggregate``, ``harness.bd``) keeps ``harness --help`` fast.
"""

AGGREGATES = ("mean-linear", "mean-db")
RATES = ("payload", "file")
DEFAULT_AGGREGATE, DEFAULT_RATE = AGGREGATES[0], RATES[0]

METHODS: tuple[str, ...] = ("pchip", "akima", "cubic")
"""Interpolation methods accepted by :func:`harness.bd.bd_rate` and :func:`harness.bd.bd_psnr`."""

MIN_RATE_SPACING = 0.005
"""Smallest relative gap between two rates of one curve (0.5 %)."""
MIN_OVERLAP = 0.2
"""Smallest share of the test curve's range the anchor must cover for a BD value."""

MAX_RATE_GAP = 10.0
"""Largest gap (percent, either way) between a learned codec's real payload rate and
the rate its forward pass estimates: the one gate of ``harness verify`` and ``check``."""
