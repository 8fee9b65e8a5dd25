"""Writing a file so that a reader never sees half of it: the bytes go to a temporary
file in the same file system, then one rename puts it in place (a killed writer leaves
only the temporary file, which its owner cleans up)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes | str, temp_dir: Path | None = None,
                     temp_prefix: str | None = None) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` in one step; ``temp_dir`` must be on
    the same file system (default: the file's folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix or f".{path.name}.", suffix=".tmp",
                               dir=temp_dir or path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide shared caches from other users
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
