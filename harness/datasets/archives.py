"""Datasets that come as one archive: fetch, verify, and extract the images safely.

Members are selected by a glob, flattened into the dataset folder, refused when
their names or kinds could write outside it, and capped in size while streaming.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.datasets.download import (
    _CHUNK,
    LOCK_NAME,
    ChecksumMismatch,
    _download,
    _DownloadFailed,
    _Lock,
    _one_line,
    _reject,
)
from harness.datasets.manifests import ArchiveEntry, Manifest
from harness.errors import DatasetUnavailable, HarnessError
from harness.images import IMAGE_SUFFIXES, max_image_bytes

log = logging.getLogger(__name__)


ARCHIVE_DIR_NAME = "_archives"


def _existing_images(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _unavailable_archive(
    m: Manifest, ident: str, root: Path, archive_path: Path, reason: str
) -> DatasetUnavailable:
    a = m.archives[0]
    title = m.title
    if m.parameters:
        regex = m.id_regex()
        match = regex.match(ident) if regex else None
        title = m.title.format(**(match.groupdict() if match else m.default_parameters()))
    return DatasetUnavailable(
        f"Dataset '{ident}' ({title}) is not available: "
        f"its images are not in {root} and {reason}. Download {a.url} and save it as "
        f"{archive_path} (it is checked and the images are extracted on the next run), or put "
        f"the {m.image_count} extracted images directly in {root}{os.sep}. Any folder of images "
        "also works: --datasets /path/to/folder."
    )


def _ensure_archive(
    m: Manifest,
    params: dict[str, str],
    ident: str,
    root: Path,
    data_dir: Path,
    download: bool,
    notes: list[str],
) -> list[str]:
    a = m.archives[0]
    archive_dir = data_dir / ARCHIVE_DIR_NAME
    archive_path = archive_dir / a.filename
    lock = _Lock(root)
    try:
        if lock.sums:
            missing = [n for n in lock.sums if not (root / n).is_file()]
            if not missing:
                for name, expected in sorted(lock.sums.items()):
                    digest = lock.hash_of(name)
                    if digest != expected:
                        raise ChecksumMismatch(
                            f"Checksum mismatch for {root / name}: {root / LOCK_NAME} expects "
                            f"SHA-256 {expected}, the file has {digest}. Delete the file to "
                            "extract it again (or delete SHA256SUMS if you replaced it on "
                            "purpose)."
                        )
                return sorted(lock.sums, key=lambda n: n.split("/"))
        elif not archive_path.is_file():
            present = _existing_images(root)
            if present and len(present) == m.image_count:
                sums = {name: lock.hash_of(name) for name in present}
                lock.write_sums(sums)
                note = (
                    f"{ident}: {len(present)} images found in {root} without a record of their "
                    f"origin; they were not checked against {a.filename} and are pinned in "
                    f"{root / LOCK_NAME} from now on."
                )
                log.warning(note)
                notes.append(note)
                return present

        fresh = False
        if not archive_path.is_file():
            if not download:
                raise _unavailable_archive(
                    m, ident, root, archive_path, "downloading is switched off"
                )
            log.info("Downloading %s for dataset %s", a.url, ident)
            if not a.sha256:
                log.warning(
                    "%s has no published checksum; its SHA-256 is recorded in %s on this "
                    "first download and checked on later use (trust on first use).",
                    a.filename,
                    archive_dir / LOCK_NAME,
                )
            try:
                _download(a.url, archive_path, a.sha256)
            except _DownloadFailed as exc:
                raise _unavailable_archive(
                    m, ident, root, archive_path, f"downloading it failed ({exc})"
                ) from None
            fresh = True
        _verify_archive(a, archive_path, fresh)
        names = _extract(a, archive_path, params, root, lock)
        sums = {n: lock.hash_of(n) for n in names}
        changed = [n for n in names if n in lock.sums and lock.sums[n] != sums[n]]
        if changed:
            raise ChecksumMismatch(
                f"Checksum mismatch: {len(changed)} file(s) extracted again from {archive_path} "
                f"(first: {changed[0]}) differ from {root / LOCK_NAME}. The archive is not the "
                "one the dataset was first built from; delete the folder and the archive to "
                "start over."
            )
        lock.write_sums(sums)
        return names
    finally:
        lock.save_stats()


def _verify_archive(a: ArchiveEntry, path: Path, fresh: bool) -> None:
    alock = _Lock(path.parent)
    try:
        digest = alock.hash_of(path.name)
        expected = a.sha256 or alock.sums.get(path.name)
        if expected and digest != expected:
            if fresh:
                _reject(path.parent, [path.name])
            if a.sha256:
                origin = f"the manifest ({a.sha256_source})" if a.sha256_source else "the manifest"
            else:
                origin = str(path.parent / LOCK_NAME)
            kept = " It was removed." if fresh else " Delete it to download it again."
            raise ChecksumMismatch(
                f"Checksum mismatch for {path}: {origin} expects SHA-256 {expected}, the file "
                f"has {digest}.{kept}"
            )
        try:
            _open_archive(a.format, path).close()
        except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
            head = ""
            with contextlib.suppress(OSError), open(path, "rb") as fh:
                head = fh.read(256).lstrip().lower().decode("latin-1")
            if fresh:
                _reject(path.parent, [path.name])
            html = (
                " (it looks like a web page, not the archive)"
                if head.startswith(("<!doctype", "<html"))
                else ""
            )
            raise DatasetUnavailable(
                f"{path} is not a readable {a.format} archive{html}: {_one_line(exc)}. "
                f"Download {a.url} again (in a browser if need be) and save it there."
            ) from None
        if not a.sha256 and path.name not in alock.sums:
            sums = dict(alock.sums)
            sums[path.name] = digest
            alock.write_sums(sums)
    finally:
        alock.save_stats()


def _open_archive(fmt: str, path: Path) -> zipfile.ZipFile | tarfile.TarFile:
    if fmt == "zip":
        return zipfile.ZipFile(path)
    return tarfile.open(path, mode="r:*")


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Glob over '/'-separated paths: '*' and '?' stay within a folder, '**/' spans any."""
    out = ""
    segments = pattern.strip("/").split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out += ".*" if last else "(?:[^/]+/)*"
            continue
        j = 0
        while j < len(seg):
            c = seg[j]
            if c == "*":
                out += "[^/]*"
            elif c == "?":
                out += "[^/]"
            elif c == "[":
                end = seg.find("]", j + 2)
                if end == -1:
                    out += re.escape(c)
                else:
                    body = seg[j + 1 : end].replace("\\", "\\\\")
                    if body.startswith("!"):
                        body = "^" + body[1:]
                    out += f"[{body}]"
                    j = end
            else:
                out += re.escape(c)
            j += 1
        if not last:
            out += "/"
    return re.compile(f"^{out}$")


def _unsafe_name(name: str) -> str | None:
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in parts:
        return "a '..' component"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "a control character (it could forge a line in SHA256SUMS)"
    return None


@dataclass
class _Member:
    name: str
    kind: str  # "file", "dir", "symlink", "hardlink", "device", "other"
    open: Callable[[], IO[bytes]]
    size: int = 0  # as the header says


def _members(archive: zipfile.ZipFile | tarfile.TarFile) -> Iterator[_Member]:
    if isinstance(archive, zipfile.ZipFile):
        for info in archive.infolist():
            mode = info.external_attr >> 16
            if info.is_dir():
                kind = "dir"
            elif info.create_system == 3 and stat.S_ISLNK(mode):
                kind = "symlink"
            elif (
                info.create_system == 3
                and mode
                and not stat.S_ISREG(mode)
                and (stat.S_IFMT(mode) != 0)
            ):
                kind = "device"
            else:
                kind = "file"
            yield _Member(info.filename, kind, lambda info=info: archive.open(info),
                          info.file_size)
    else:
        for tinfo in archive:
            if tinfo.isdir():
                kind = "dir"
            elif tinfo.issym():
                kind = "symlink"
            elif tinfo.islnk():
                kind = "hardlink"
            elif tinfo.isreg():
                kind = "file"
            elif tinfo.ischr() or tinfo.isblk() or tinfo.isfifo():
                kind = "device"
            else:
                kind = "other"

            def opener(tinfo: tarfile.TarInfo = tinfo) -> IO[bytes]:
                fh = archive.extractfile(tinfo)
                if fh is None:
                    raise OSError(f"cannot read member {tinfo.name}")
                return fh

            yield _Member(tinfo.name, kind, opener, tinfo.size)


def _extract(
    a: ArchiveEntry,
    archive_path: Path,
    params: dict[str, str],
    root: Path,
    lock: _Lock,
) -> list[str]:
    """Extract the members selected by ``a.members`` into ``root``, flattened, safely."""
    pattern = a.members.format(**params)
    regex = _glob_regex(pattern)
    selected: dict[str, str] = {}
    sample: list[str] = []
    root.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    try:
        with _open_archive(a.format, archive_path) as archive:
            for member in _members(archive):
                problem = _unsafe_name(member.name)
                if problem:
                    raise HarnessError(
                        f"Refusing to extract {archive_path}: member '{member.name}' has "
                        f"{problem}. The archive may be damaged or malicious; nothing was "
                        "written outside the dataset folder."
                    )
                name = member.name.replace("\\", "/").strip("/")
                parts = name.split("/")
                if member.kind == "dir" or any(p.startswith(".") or p == "__MACOSX" for p in parts):
                    continue
                if len(sample) < 5:
                    sample.append(name)
                if not regex.match(name):
                    continue
                if member.kind != "file":
                    raise HarnessError(
                        f"Refusing to extract {archive_path}: member '{member.name}' is a "
                        f"{member.kind}, not a regular file. The archive may be damaged or "
                        "malicious; nothing was written."
                    )
                target = parts[-1]
                if target in selected:
                    raise HarnessError(
                        f"Cannot extract {archive_path}: members '{selected[target]}' and "
                        f"'{name}' would both become {root / target}."
                    )
                selected[target] = name
                digest = _write_member(member, root / target, archive_path)
                written.append(target)
                lock.remember(target, digest)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        _reject(root, written)
        raise DatasetUnavailable(
            f"Extracting {archive_path} failed ({_one_line(exc)}). Delete it to download it again."
        ) from None
    except HarnessError:
        _reject(root, written)
        raise
    if not selected:
        shown = ", ".join(sample) if sample else "no files"
        raise DatasetUnavailable(
            f"No member of {archive_path} matches '{pattern}' (first members: {shown}). "
            "The archive layout may have changed, or the parameter value does not exist in it."
        )
    return sorted(selected)


def _write_member(member: _Member, target: Path, archive_path: Path) -> str:
    """Copy one member to a temporary name beside ``target``, then rename it into place.

    A member is an image file, so it gets the image size cap, counted while streaming
    (a header's size can lie, and a compressed stream can inflate a thousandfold).
    """
    cap = max_image_bytes()
    if member.size > cap:
        raise _too_large(archive_path, member.name, cap)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    digest = hashlib.sha256()
    written = 0
    try:
        with os.fdopen(fd, "wb") as out, member.open() as src:
            for block in iter(lambda: src.read(_CHUNK), b""):
                written += len(block)
                if written > cap:
                    raise _too_large(archive_path, member.name, cap)
                digest.update(block)
                out.write(block)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return digest.hexdigest()


def _too_large(archive_path: Path, name: str, cap: int) -> HarnessError:
    return HarnessError(
        f"Refusing to extract {archive_path}: member '{name}' is larger than the {cap}-byte "
        "limit for an image file (set HARNESS_MAX_IMAGE_BYTES to raise it). The archive may "
        "be damaged or a decompression bomb; what was extracted from it was removed."
    )
