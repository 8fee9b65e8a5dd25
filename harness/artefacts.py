"""Reconstructions and bitstreams kept beside the store (``harness run --save``).

A store ``results.sqlite`` keeps them in the folder ``results.artefacts/``, never in the
SQLite file. Each file is named by the SHA-256 of its bytes (``ab/abcd....png`` for a
decoded image, ``....bin`` for a bitstream), so equal files are kept once and a file
can be checked against its name. The store's ``artefacts`` table says which files
belong to which result row.

Writes are atomic: a file is written under a temporary name (``.tmp-PID-...``) and
renamed to its hash only when complete, and the parent writes a result row only after
its files exist. A killed write leaves at most a temporary file, which never counts as
an artefact and is removed by the next clean. Files no row points to (rows replaced or
deleted, a run killed between a file and its row) are removed at the end of every run
and by ``harness store clean``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import StoreError, UsageError
from harness.files import write_atomically

SUFFIXES = {"recon": ".png", "bitstream": ".bin"}  # kind -> file suffix
_ALIASES = {"recon": "recon", "recons": "recon", "reconstructions": "recon",
            "bitstream": "bitstream", "bitstreams": "bitstream"}
_NAME = re.compile(r"^[0-9a-f]{64}\.(png|bin)$")
_TEMP_PREFIX = ".tmp-"


def parse_save(values: str | Iterable[str] | None) -> tuple[str, ...]:
    """The artefact kinds asked for by ``--save`` values (repeated or comma lists)."""
    if not values:
        return ()
    if isinstance(values, str):
        values = [values]
    kinds = []
    for value in values:
        for word in str(value).split(","):
            word = word.strip().lower()
            if not word:
                continue
            if word not in _ALIASES:
                from harness.errors import did_you_mean

                raise UsageError(f"--save {word!r}: what can be kept is recon (decoded images,"
                                 " PNG) and bitstreams (the encoded bytes); e.g. --save"
                                 f" recon,bitstreams.{did_you_mean(word, _ALIASES)}")
            kinds.append(_ALIASES[word])
    return tuple(sorted(set(kinds)))


def folder_for(store_path: str | os.PathLike) -> Path:
    """The artefacts folder of a store: ``results.sqlite`` -> ``results.artefacts``."""
    path = Path(store_path)
    folder = path.with_suffix(".artefacts")
    return folder if folder != path else path.with_name(path.name + ".d")


def png_bytes(pixels: np.ndarray) -> bytes:
    """A decoded image as PNG (Pillow's fast setting: the gallery reads these back)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def encode(kinds: Sequence[str], bitstream: bytes, reconstruction: np.ndarray
           ) -> dict[str, bytes]:
    """The bytes of each kind asked for (in a worker: the parent writes them)."""
    made = {"recon": lambda: png_bytes(reconstruction), "bitstream": lambda: bytes(bitstream)}
    return {kind: made[kind]() for kind in kinds}


@dataclass
class Cleaned:
    removed: int = 0  # artefact files no row points to
    bytes: int = 0
    temporary: int = 0  # left by killed writes
    kept: int = 0  # artefact files in use
    skipped: str | None = None  # why nothing was removed


class ArtefactFolder:
    """The content-addressed folder of one store."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    def path(self, sha256: str, kind: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}{SUFFIXES[kind]}"

    def has(self, sha256: str, kind: str) -> bool:
        return self.path(sha256, kind).is_file()

    def put(self, data: bytes, kind: str) -> str:
        """Write ``data`` under its hash (atomically) unless it is there; return the hash."""
        sha256 = hashlib.sha256(data).hexdigest()
        final = self.path(sha256, kind)
        with contextlib.suppress(OSError):
            if final.stat().st_size == len(data):  # kept already (a damaged one is replaced)
                return sha256
        try:
            write_atomically(final, data, temp_dir=self.folder,
                             temp_prefix=f"{_TEMP_PREFIX}{os.getpid()}-")
        except OSError as exc:
            raise StoreError(
                f"cannot write a saved {kind} into {self.folder}: {exc.strerror or exc}."
                " Every result written before it is kept; free some space (or run without"
                " --save) and run the same command again to resume.") from exc
        return sha256

    def files(self) -> dict[str, Path]:
        """Every artefact file (named by a hash): hash + suffix -> path."""
        if not self.folder.is_dir():
            return {}
        return {path.name: path for path in self.folder.glob("??/*")
                if _NAME.match(path.name) and path.parent.name == path.name[:2]}

    def clean(self, in_use: Iterable[tuple[str, str]]) -> Cleaned:
        """Remove the files not in ``in_use`` ((hash, kind) pairs) and killed writes' files.

        The caller makes sure no other run is writing (see :func:`clean_store`).
        """
        keep = {f"{sha256}{SUFFIXES[kind]}" for sha256, kind in in_use}
        outcome = Cleaned()
        for name, path in self.files().items():
            if name in keep:
                outcome.kept += 1
                continue
            with contextlib.suppress(FileNotFoundError):
                outcome.bytes += path.stat().st_size
                path.unlink()
                outcome.removed += 1
        if self.folder.is_dir():
            for path in self.folder.glob(f"{_TEMP_PREFIX}*"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    outcome.temporary += 1
            for sub in self.folder.glob("??"):
                with contextlib.suppress(OSError):
                    sub.rmdir()  # only when empty
        return outcome


def clean_store(store, run_id: int | None = None) -> Cleaned:
    """Remove the artefacts of ``store`` (a writable ResultsStore) that no row points to.

    Done while holding the store's write lock and only when no other run of the store
    is running (a run writes its files before their rows; ``run_id`` is the caller's own
    run): another run starting meanwhile waits for the lock before writing anything.
    """
    folder = ArtefactFolder(folder_for(store.path))
    if not folder.folder.is_dir():
        return Cleaned()
    with store.write_lock():
        others = [r for r in store.runs() if r["status"] == "running" and r["run_id"] != run_id]
        if others:
            return Cleaned(skipped=f"run {others[0]['run_id']} of this store is still running;"
                                   " its end cleans the artefacts")
        store.drop_dangling_artefacts()
        return folder.clean(store.artefacts_in_use())


def kept_keys(store, fingerprint: str, kinds: Sequence[str]) -> set[tuple[float, str]]:
    """(quality, image hash) of the rows of ``fingerprint`` whose files of ``kinds`` exist."""
    folder = ArtefactFolder(folder_for(store.path))
    return {(quality, image_hash)
            for (_, quality, image_hash), files in store.artefacts([fingerprint]).items()
            if all(kind in files and folder.has(files[kind], kind) for kind in kinds)}
