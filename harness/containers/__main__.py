"""``python -m harness.containers``: the same as ``harness containers``."""

import sys

from harness.containers.cli import main

sys.exit(main())
