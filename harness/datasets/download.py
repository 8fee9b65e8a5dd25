"""Fetching files with checksums, and the SHA256SUMS that pins a dataset folder.

A dataset listed file by file ([[files]]) is downloaded with pooch, checked against
the manifest's SHA-256 (or its set check), then pinned in ``SHA256SUMS``; a small
stat cache beside it keeps later runs from re-hashing unchanged files.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.datasets.manifests import _SHA256_RE, FileEntry, Manifest
from harness.errors import DatasetUnavailable
from harness.files import write_atomically

log = logging.getLogger(__name__)


LOCK_NAME = "SHA256SUMS"
STAT_CACHE_NAME = ".SHA256SUMS.stat.json"


_CHUNK = 1 << 20


class ChecksumMismatch(DatasetUnavailable):
    """A file's content does not match the checksum the manifest or the lock gives."""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class _Lock:
    """SHA256SUMS of a folder plus a (size, mtime_ns) cache that avoids re-hashing."""

    def __init__(self, root: Path):
        self.root = root
        self.sums = self._read_sums(root / LOCK_NAME)
        self.stats: dict[str, list[Any]] = {}
        self._stats_dirty = False
        try:
            raw = json.loads((root / STAT_CACHE_NAME).read_text(encoding="utf-8"))
            if isinstance(raw, dict):
                self.stats = {k: v for k, v in raw.items() if isinstance(v, list) and len(v) == 3}
        except (OSError, ValueError):
            self.stats = {}

    @staticmethod
    def _read_sums(path: Path) -> dict[str, str]:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return {}
        sums = {}
        for line in text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            digest, _, name = line.partition("  ")
            if not name:
                digest, _, name = line.partition(" *")
            if _SHA256_RE.match(digest.lower()) and name:
                sums[name] = digest.lower()
        return sums

    def hash_of(self, name: str) -> str:
        path = self.root / name
        st = path.stat()
        cached = self.stats.get(name)
        if cached and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
            return str(cached[2])
        digest = _sha256_file(path)
        self.remember(name, digest)
        return digest

    def remember(self, name: str, digest: str) -> None:
        try:
            st = (self.root / name).stat()
        except OSError:
            return
        self.stats[name] = [st.st_size, st.st_mtime_ns, digest]
        self._stats_dirty = True

    def write_sums(self, sums: dict[str, str]) -> None:
        self.sums = dict(sums)
        lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))
        write_atomically(self.root / LOCK_NAME, lines)

    def save_stats(self) -> None:
        if not self._stats_dirty:
            return
        keep = {k: v for k, v in self.stats.items() if (self.root / k).exists()}
        try:
            write_atomically(self.root / STAT_CACHE_NAME, json.dumps(keep, sort_keys=True))
            self._stats_dirty = False
        except OSError:
            pass


class _DownloadFailed(Exception):
    pass


def _progressbar() -> bool:
    return importlib.util.find_spec("tqdm") is not None and sys.stderr.isatty()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    name = type(exc).__name__
    return f"{name}: {detail}" if detail else name


def _download(url: str, dest: Path, sha256: str | None = None) -> str:
    """Fetch ``url`` to ``dest`` (temp name, then rename); return the file's SHA-256.

    ``file://`` URLs are copied; others go through pooch.  A checksum mismatch raises
    ``ChecksumMismatch`` and leaves nothing at ``dest``; other failures raise
    ``_DownloadFailed``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.download")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        if url.startswith("file:"):
            source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
            shutil.copyfile(source, tmp)
        else:
            import pooch

            pooch.retrieve(
                url,
                known_hash=f"sha256:{sha256}" if sha256 else None,
                fname=tmp.name,
                path=tmp.parent,
                progressbar=_progressbar(),
            )
    except ValueError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        match = re.search(r"got ([0-9a-fA-F]{64})", str(exc))
        if sha256 and ("hash" in str(exc).lower()):
            actual = match.group(1).lower() if match else "(not reported)"
            raise ChecksumMismatch(_mismatch_text(dest, url, sha256, actual)) from None
        raise _DownloadFailed(_one_line(exc)) from None
    except Exception as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise _DownloadFailed(_one_line(exc)) from None
    actual = _sha256_file(tmp)
    if sha256 and actual != sha256:
        tmp.unlink()
        raise ChecksumMismatch(_mismatch_text(dest, url, sha256, actual))
    os.replace(tmp, dest)
    return actual


def _mismatch_text(dest: Path, url: str, expected: str, actual: str) -> str:
    return (
        f"Checksum mismatch for {dest.name} downloaded from {url}: expected SHA-256 "
        f"{expected}, got {actual}. The file was not kept; the server may serve a "
        "different or damaged file. Retry later, or fetch it yourself and compare."
    )


def _check_embedded(m: Manifest, root: Path) -> list[str]:
    for f in m.files:
        path = root / f.name
        if not path.is_file():
            raise DatasetUnavailable(
                f"Embedded dataset '{m.name}' is incomplete: {path} is missing from the "
                "installed package. Reinstall the harness, or use --datasets with any folder "
                "of images."
            )
        if f.sha256:
            actual = _sha256_file(path)
            if actual != f.sha256:
                raise ChecksumMismatch(
                    f"Checksum mismatch for embedded file {path}: expected SHA-256 "
                    f"{f.sha256}, got {actual}. Reinstall the harness."
                )
    return [f.name for f in m.files]


def _url_hint(urls: list[str]) -> str:
    if len(urls) == 1:
        return urls[0]
    prefix = os.path.commonprefix(urls)
    prefix = prefix[: prefix.rfind("/") + 1]
    if len(prefix) > len("https://x/"):
        return f"{prefix}<file name> (for example {urls[0]})"
    shown = ", ".join(urls[:3])
    return shown + (f" and {len(urls) - 3} more" if len(urls) > 3 else "")


def _unavailable_files(
    m: Manifest, ident: str, root: Path, missing: list[FileEntry], reason: str
) -> DatasetUnavailable:
    names = [f.name for f in missing]
    listed = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    urls = _url_hint([f.url for f in missing if f.url])
    return DatasetUnavailable(
        f"Dataset '{ident}' ({m.title}) is not available: {len(names)} of its "
        f"{len(m.files)} files are missing from {root} ({listed}) and {reason}. "
        f"Download them from {urls} and put them in {root}{os.sep} (they are checked on "
        f"the next run; the list is in {m.path}). Any folder of images also works: "
        "--datasets /path/to/folder."
    )


def _ensure_files(
    m: Manifest, ident: str, root: Path, download: bool, notes: list[str]
) -> list[str]:
    missing = [f for f in m.files if not (root / f.name).is_file()]
    fetched: set[str] = set()
    if missing:
        if not download:
            raise _unavailable_files(m, ident, root, missing, "downloading is switched off")
        log.info("Downloading %d file(s) of dataset %s into %s", len(missing), ident, root)
        for i, f in enumerate(missing):
            assert f.url is not None
            try:
                _download(f.url, root / f.name, f.sha256)
            except _DownloadFailed as exc:
                raise _unavailable_files(
                    m, ident, root, missing[i:], f"downloading {f.url} failed ({exc})"
                ) from None
            fetched.add(f.name)

    lock = _Lock(root)
    actual: dict[str, str] = {}
    try:
        for f in m.files:
            digest = lock.hash_of(f.name)
            expected = f.sha256 or lock.sums.get(f.name)
            if expected and digest != expected:
                origin = "the manifest" if f.sha256 else f"{root / LOCK_NAME}"
                _reject(root, fetched if f.name in fetched else set())
                raise ChecksumMismatch(
                    f"Checksum mismatch for {root / f.name}: {origin} expects SHA-256 "
                    f"{expected}, the file has {digest}. Delete the file to download it "
                    "again (or delete SHA256SUMS if you replaced it on purpose)."
                )
            actual[f.name] = digest
        all_pinned = all(lock.sums.get(f.name) == actual[f.name] for f in m.files)
        if m.set_check and not all_pinned:
            _run_set_check(m, root, fetched)
        if not all_pinned or set(lock.sums) != set(actual):
            lock.write_sums(actual)
            if any(not f.sha256 for f in m.files) and not m.set_check:
                log.warning(
                    "Dataset %s has no published checksum; its files are now pinned in %s "
                    "(trust on first use).",
                    ident,
                    root / LOCK_NAME,
                )
    finally:
        lock.save_stats()
    return [f.name for f in m.files]


def _reject(root: Path, names: Iterable[str]) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            (root / name).unlink()


def _run_set_check(m: Manifest, root: Path, fetched: set[str]) -> None:
    sc = m.set_check
    assert sc is not None
    digest = hashlib.new(sc.algorithm)
    for f in m.files:
        with open(root / f.name, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(_CHUNK), b""):
                digest.update(block)
    actual = digest.hexdigest()
    if actual == sc.digest:
        return
    _reject(root, fetched)
    kept = (
        " The files downloaded just now were removed."
        if fetched
        else " Replace the files that differ from the originals, or delete them to download "
        "them again."
    )
    source = f" (published by {sc.source})" if sc.source else ""
    raise ChecksumMismatch(
        f"Checksum mismatch for dataset {m.stored_id()} in {root}: the {sc.algorithm.upper()} "
        f"of {sc.covers or 'the files in order'} should be {sc.digest}{source}, it is "
        f"{actual}; at least one of the {len(m.files)} files differs.{kept}"
    )
