"""Errors the harness raises on purpose.

Every error here carries a message a user can act on; the command line prints it
without a traceback and exits with status 2 (usage or input error).
"""


class HarnessError(Exception):
    """Base class of the errors the harness reports to users."""


class UsageError(HarnessError):
    """A command was called with arguments that cannot work."""


class DatasetUnavailable(HarnessError):
    """A dataset's files are absent and cannot be downloaded."""


class ImageLoadError(HarnessError):
    """An image file cannot be read as an image (corrupt, truncated, not an image)."""


class CodecUnavailable(HarnessError):
    """A codec cannot run on this machine (missing binary, library or feature)."""


class StoreError(HarnessError):
    """The results store cannot be opened or written."""


class HarnessWarning(UserWarning):
    """Something a user must know that does not stop the command (printed as ``warning:``)."""


def did_you_mean(name: str, known) -> str:
    """`` Did you mean a, b?`` with the closest of ``known`` names, or ``""``."""
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""
