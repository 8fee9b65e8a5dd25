"""Datasets: manifests -> verified local image files.

A dataset is named on the command line by a manifest name or alias (``kodak``, ``clic``,
``tecnick:T01R01``, ``sample``), by a manifest file (``my.toml``) or by a folder of images
(``./my_images``).  Manifest datasets live in ``<data dir>/<id>/``; they are downloaded
with pooch when absent, checked against the checksums the manifest gives, and pinned by
``SHA256SUMS`` in that folder (``sha256sum -c SHA256SUMS`` works there).  A small stat
cache next to it keeps later runs from re-hashing unchanged files.

Manifest schema (TOML, one file per dataset in the top-level ``datasets/`` folder)::

    schema = 1
    name = "kodak"               # lookup name (defaults to the file name)
    id = "kodak"                 # stored with results; may use {parameter} fields
    aliases = ["kodak24"]
    title, description, homepage, licence, integrity = "..."
    image_count = 24
    notes = ["..."]              # shown whenever the dataset is used
    embedded = "sample"          # files ship in this folder next to the manifest
    [parameters.<name>]          # e.g. phase: default, pattern (regex), known, description
    [set_check]                  # one digest over the concatenated files, in order
    algorithm, digest, covers, source
    [[files]]                    # name, url, optional sha256
    [[archives]]                 # url, filename, format ("zip" | "tar"), optional sha256,
                                 # sha256_source, size, members (glob; "**" spans folders)
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import re
import shutil
import stat
import string
import sys
import tarfile
import tempfile
import tomllib
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.errors import DatasetUnavailable, HarnessError, UsageError
from harness.images import IMAGE_SUFFIXES, max_image_bytes

__all__ = [
    "ChecksumMismatch",
    "Dataset",
    "DatasetInfo",
    "ImageRef",
    "Manifest",
    "default_data_dir",
    "describe",
    "list_manifests",
    "load_manifest",
    "resolve_dataset",
]

log = logging.getLogger(__name__)

LOCK_NAME = "SHA256SUMS"
STAT_CACHE_NAME = ".SHA256SUMS.stat.json"
ARCHIVE_DIR_NAME = "_archives"
_CHUNK = 1 << 20
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_FORMATTER = string.Formatter()


class ChecksumMismatch(DatasetUnavailable):
    """A file's content does not match the checksum the manifest or the lock gives."""


@dataclass(frozen=True)
class ImageRef:
    dataset: str
    image_id: str
    path: Path


@dataclass(frozen=True)
class Dataset:
    id: str
    title: str
    root: Path
    images: tuple[ImageRef, ...]
    source: str
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    id: str
    aliases: tuple[str, ...]
    title: str
    image_count: int
    licence: str
    homepage: str
    source: str
    parameters: dict[str, str]
    present: bool
    manifest_path: Path

    def describe(self) -> str:
        """One line for listings: name, stored id, size, state, title and aliases."""
        if self.source == "embedded":
            state = "embedded"
        else:
            state = "present" if self.present else "not downloaded"
        spec = self.name
        if self.parameters:
            spec += ":" + ",".join(f"{k}={v}" for k, v in self.parameters.items())
        aliases = f" (aliases: {', '.join(self.aliases)})" if self.aliases else ""
        return (
            f"{spec:24s} id {self.id:20s} {self.image_count:4d} images  {state:14s} "
            f"{self.title}{aliases}"
        )


@dataclass(frozen=True)
class FileEntry:
    name: str
    url: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ArchiveEntry:
    url: str
    filename: str
    format: str
    members: str
    sha256: str | None = None
    sha256_source: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class SetCheck:
    algorithm: str
    digest: str
    covers: str = ""
    source: str = ""


@dataclass(frozen=True)
class Parameter:
    name: str
    default: str
    pattern: str
    known: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class Manifest:
    path: Path
    name: str
    id: str
    aliases: tuple[str, ...]
    title: str
    description: str
    licence: str
    homepage: str
    image_count: int
    integrity: str
    notes: tuple[str, ...]
    files: tuple[FileEntry, ...]
    archives: tuple[ArchiveEntry, ...]
    set_check: SetCheck | None
    parameters: dict[str, Parameter] = field(default_factory=dict)
    embedded: str | None = None

    @property
    def source(self) -> str:
        return "embedded" if self.embedded else "manifest"

    def default_parameters(self) -> dict[str, str]:
        return {name: p.default for name, p in self.parameters.items()}

    def stored_id(self, params: dict[str, str] | None = None) -> str:
        return self.id.format(**(params or self.default_parameters()))

    def keys(self) -> set[str]:
        keys = {self.name.lower(), *(a.lower() for a in self.aliases)}
        if not self.parameters:
            keys.add(self.id.lower())
        return keys

    def id_regex(self) -> re.Pattern[str] | None:
        """Regex matching a concrete stored id such as ``tecnick-T01R01``."""
        if not self.parameters:
            return None
        pattern = ""
        for literal, fname, _, _ in _FORMATTER.parse(self.id):
            pattern += re.escape(literal)
            if fname is not None:
                inner = self.parameters[fname].pattern.lstrip("^").rstrip("$")
                pattern += f"(?P<{fname}>{inner})"
        return re.compile(f"^{pattern}$", re.IGNORECASE)


# --------------------------------------------------------------------------- manifests


def _require(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise UsageError(f"Dataset manifest {where}: required field '{key}' is missing.")
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(
            f"Dataset manifest {where}: field '{key}' must be {kind.__name__}, "
            f"not {type(value).__name__}."
        )
    return value


def _optional(data: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    if key not in data:
        return default
    return _require(data, key, kind, where)


def _check_sha256(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not _SHA256_RE.match(value):
        raise UsageError(f"Dataset manifest {where}: '{value}' is not a SHA-256 hex digest.")
    return value


def _safe_relative_name(name: str, where: str) -> str:
    parts = name.replace("\\", "/").split("/")
    if (
        not name
        or name.startswith(("/", "\\"))
        or any(p in ("", ".", "..") for p in parts)
        or "\n" in name
        or ":" in parts[0]
    ):
        raise UsageError(
            f"Dataset manifest {where}: file name '{name}' is not a plain relative path."
        )
    return "/".join(parts)


def _parse_manifest(text: str, path: Path) -> Manifest:
    where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"Dataset manifest {where} is not valid TOML ({exc}).") from None
    schema = _optional(data, "schema", int, where, 1)
    if schema != 1:
        raise UsageError(f"Dataset manifest {where}: schema {schema} is not supported (1 is).")
    name = _optional(data, "name", str, where, path.stem)
    ident = _require(data, "id", str, where)
    parameters: dict[str, Parameter] = {}
    for pname, pdata in _optional(data, "parameters", dict, where, {}).items():
        pwhere = f"{where} [parameters.{pname}]"
        default = _require(pdata, "default", str, pwhere)
        pattern = _optional(pdata, "pattern", str, pwhere, r"^[A-Za-z0-9_.-]+$")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise UsageError(f"Dataset manifest {pwhere}: bad pattern ({exc}).") from None
        if not compiled.match(default):
            raise UsageError(f"Dataset manifest {pwhere}: default does not match the pattern.")
        known = tuple(_optional(pdata, "known", list, pwhere, []))
        parameters[pname] = Parameter(
            pname, default, pattern, known, _optional(pdata, "description", str, pwhere, "")
        )
    used = {f for _, f, _, _ in _FORMATTER.parse(ident) if f is not None}
    if used != set(parameters):
        raise UsageError(
            f"Dataset manifest {where}: the id '{ident}' uses fields {sorted(used)} but the "
            f"manifest declares parameters {sorted(parameters)}."
        )

    files = []
    for i, fdata in enumerate(_optional(data, "files", list, where, [])):
        fwhere = f"{where} [[files]] #{i + 1}"
        files.append(
            FileEntry(
                name=_safe_relative_name(_require(fdata, "name", str, fwhere), fwhere),
                url=_optional(fdata, "url", str, fwhere, None),
                sha256=_check_sha256(_optional(fdata, "sha256", str, fwhere, None), fwhere),
            )
        )
    archives = []
    for i, adata in enumerate(_optional(data, "archives", list, where, [])):
        awhere = f"{where} [[archives]] #{i + 1}"
        url = _require(adata, "url", str, awhere)
        filename = _optional(adata, "filename", str, awhere, None)
        if filename is None:
            filename = Path(urllib.parse.urlparse(url).path).name
        if not filename or "/" in filename or "\\" in filename or filename.startswith("."):
            raise UsageError(f"Dataset manifest {awhere}: give a plain 'filename'.")
        fmt = _optional(adata, "format", str, awhere, None) or _guess_format(filename)
        if fmt not in ("zip", "tar"):
            raise UsageError(f"Dataset manifest {awhere}: format must be 'zip' or 'tar'.")
        archives.append(
            ArchiveEntry(
                url=url,
                filename=filename,
                format=fmt,
                members=_require(adata, "members", str, awhere),
                sha256=_check_sha256(_optional(adata, "sha256", str, awhere, None), awhere),
                sha256_source=_optional(adata, "sha256_source", str, awhere, None),
                size=_optional(adata, "size", int, awhere, None),
            )
        )
    if len(archives) > 1:
        raise UsageError(f"Dataset manifest {where}: only one [[archives]] entry is supported.")
    if files and archives:
        raise UsageError(f"Dataset manifest {where}: give [[files]] or [[archives]], not both.")
    embedded = _optional(data, "embedded", str, where, None)
    if embedded is not None:
        embedded = _safe_relative_name(embedded, where)
        if archives or not files:
            raise UsageError(f"Dataset manifest {where}: an embedded set lists its [[files]].")
    elif not files and not archives:
        raise UsageError(f"Dataset manifest {where}: no [[files]] and no [[archives]].")
    elif files and any(f.url is None for f in files):
        raise UsageError(f"Dataset manifest {where}: every [[files]] entry needs a 'url'.")

    set_check = None
    if "set_check" in data:
        sdata = _require(data, "set_check", dict, where)
        swhere = f"{where} [set_check]"
        algorithm = _require(sdata, "algorithm", str, swhere).lower()
        if algorithm not in hashlib.algorithms_guaranteed:
            raise UsageError(f"Dataset manifest {swhere}: unknown algorithm '{algorithm}'.")
        if not files:
            raise UsageError(f"Dataset manifest {swhere}: a set check needs [[files]].")
        set_check = SetCheck(
            algorithm=algorithm,
            digest=_require(sdata, "digest", str, swhere).strip().lower(),
            covers=_optional(sdata, "covers", str, swhere, ""),
            source=_optional(sdata, "source", str, swhere, ""),
        )
    image_count = _optional(data, "image_count", int, where, len(files))
    return Manifest(
        path=path,
        name=name,
        id=ident,
        aliases=tuple(_optional(data, "aliases", list, where, [])),
        title=_optional(data, "title", str, where, name).strip(),
        description=" ".join(_optional(data, "description", str, where, "").split()),
        licence=" ".join(_optional(data, "licence", str, where, "").split()),
        homepage=_optional(data, "homepage", str, where, ""),
        image_count=image_count,
        integrity=" ".join(_optional(data, "integrity", str, where, "").split()),
        notes=tuple(_optional(data, "notes", list, where, [])),
        files=tuple(files),
        archives=tuple(archives),
        set_check=set_check,
        parameters=parameters,
        embedded=embedded,
    )


def _guess_format(filename: str) -> str:
    lower = filename.lower()
    if lower.endswith(".zip"):
        return "zip"
    if any(
        lower.endswith(s)
        for s in (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
    ):
        return "tar"
    return ""


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate one manifest file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Dataset manifest {p} cannot be read ({exc.strerror}).") from None
    return _parse_manifest(text, p)


def _source_manifest_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "datasets"


def _manifest_paths() -> list[Path]:
    """Manifest files: from the installed package data, else from the source checkout."""
    found: dict[str, Path] = {}
    try:
        root = importlib.resources.files("harness._manifests")
        for child in root.iterdir():
            if child.name.endswith(".toml") and child.is_file():
                found.setdefault(child.name, Path(os.fspath(child)))  # type: ignore[arg-type]
    except (ModuleNotFoundError, TypeError, OSError):
        found = {}
    if not found:
        source = _source_manifest_dir()
        if source.is_dir():
            for child in source.glob("*.toml"):
                found.setdefault(child.name, child)
    return [found[name] for name in sorted(found)]


def _all_manifests() -> list[Manifest]:
    return [load_manifest(p) for p in _manifest_paths()]


# --------------------------------------------------------------------------- data dir


def default_data_dir() -> Path:
    """$HARNESS_DATA, else $XDG_CACHE_HOME/lic-harness, else ~/.cache/lic-harness."""
    env = os.environ.get("HARNESS_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "lic-harness"
    return Path.home() / ".cache" / "lic-harness"


def list_manifests(data_dir: Path | None = None) -> list[DatasetInfo]:
    """Every known manifest, with whether its files are in ``data_dir`` already."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    infos = []
    for m in _all_manifests():
        ident = m.stored_id()
        if m.embedded:
            present = True
        else:
            root = base / ident
            present = (root / LOCK_NAME).is_file() or (
                bool(m.files) and all((root / f.name).is_file() for f in m.files)
            )
        infos.append(
            DatasetInfo(
                name=m.name,
                id=ident,
                aliases=m.aliases,
                title=m.title.format(**m.default_parameters()),
                image_count=m.image_count,
                licence=m.licence,
                homepage=m.homepage,
                source=m.source,
                parameters=m.default_parameters(),
                present=present,
                manifest_path=m.path,
            )
        )
    return infos


def describe(dataset: Dataset) -> str:
    """One line: id, image count, where the files are."""
    count = len(dataset.images)
    noun = "image" if count == 1 else "images"
    return f"{dataset.id}: {count} {noun} in {dataset.root} ({dataset.source})"


# --------------------------------------------------------------------------- resolve


def resolve_dataset(
    spec: str | os.PathLike[str],
    data_dir: Path | None = None,
    download: bool = True,
    follow_symlinks: bool = False,
) -> Dataset:
    """Turn a dataset name, manifest file or folder path into a list of image files.

    In a folder, symbolic links that lead outside it are skipped (with a note) unless
    ``follow_symlinks``.
    """
    text = os.fspath(spec).strip()
    if not text:
        raise UsageError("Empty dataset name: give a dataset name such as 'kodak' or a folder.")
    base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if base.exists() and not base.is_dir():
        raise UsageError(f"the dataset cache {base} is a file, not a folder: point"
                         " --data-dir or $HARNESS_DATA at a folder (it is created if absent).")
    looks_like_path = (
        "/" in text or os.sep in text or text.startswith(("~", ".")) or Path(text).is_absolute()
    )
    candidate = Path(text).expanduser()
    if text.lower().endswith(".toml") and candidate.is_file():
        return _resolve_manifest(load_manifest(candidate), {}, base, download)
    if not looks_like_path:
        manifests = _all_manifests()
        found = _lookup(text, manifests)
        if found is not None:
            manifest, params = found
            return _resolve_manifest(manifest, params, base, download)
        if not candidate.is_dir():
            raise UsageError(_unknown_message(text, manifests))
    if candidate.is_dir():
        return _folder_dataset(candidate, follow_symlinks)
    if candidate.exists():
        raise UsageError(
            f"Dataset '{text}' is a file, not a folder of images or a manifest name; put the "
            "image in a folder and pass the folder."
        )
    raise UsageError(f"Dataset folder '{text}' does not exist.")


def dataset_id(spec: str, data_dir: Path | None = None) -> str:
    """The stored id a dataset name, alias or folder stands for, without fetching files.

    ``clic`` -> the id ``harness run --datasets clic`` stores under; a folder -> its
    folder id; anything else is taken as an id already (``folder:photos``).
    """
    found = _lookup(spec, _all_manifests()) if "/" not in spec else None
    if found is not None:
        manifest, params = found
        return manifest.stored_id(params)
    if Path(spec).expanduser().is_dir() and ("/" in spec or spec.startswith((".", "~"))):
        return resolve_dataset(spec, data_dir).id
    return spec


def _lookup(text: str, manifests: list[Manifest]) -> tuple[Manifest, dict[str, str]] | None:
    key, sep, arg = text.partition(":")
    key = key.strip().lower()
    for m in manifests:
        if key in m.keys():
            return m, _parse_parameters(m, arg.strip() if sep else None)
    if not sep:
        for m in manifests:
            regex = m.id_regex()
            match = regex.match(text) if regex else None
            if match:
                return m, _parse_parameters(
                    m, ",".join(f"{k}={v}" for k, v in match.groupdict().items())
                )
    return None


def _parse_parameters(m: Manifest, arg: str | None) -> dict[str, str]:
    params = m.default_parameters()
    if arg is None:
        return params
    if not m.parameters:
        raise UsageError(f"Dataset '{m.name}' takes no parameter (got ':{arg}').")
    names = list(m.parameters)
    for i, item in enumerate(p for p in arg.split(",") if p.strip()):
        pname, eq, value = item.partition("=")
        if not eq:
            if i >= len(names):
                raise UsageError(f"Dataset '{m.name}': too many parameters in ':{arg}'.")
            pname, value = names[i], item
        pname, value = pname.strip(), value.strip()
        if pname not in m.parameters:
            raise UsageError(
                f"Dataset '{m.name}' has no parameter '{pname}' (it has: {', '.join(names)})."
            )
        p = m.parameters[pname]
        if not re.match(p.pattern, value) and re.match(p.pattern, value.upper()):
            value = value.upper()
        if not re.match(p.pattern, value):
            known = f" Known values: {', '.join(p.known)}." if p.known else ""
            raise UsageError(
                f"Dataset '{m.name}': '{value}' is not a valid {pname} (expected a value "
                f"matching {p.pattern}, such as {p.default}).{known}"
            )
        params[pname] = value
    return params


def _unknown_message(text: str, manifests: list[Manifest]) -> str:
    names = sorted({m.name for m in manifests})
    keys = sorted({k for m in manifests for k in m.keys()})
    close = difflib.get_close_matches(text.lower().partition(":")[0], keys, n=1, cutoff=0.6)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return (
        f"Unknown dataset '{text}': it is neither a known dataset name nor an existing "
        f"folder.{hint} Known datasets: {', '.join(names)}; any folder of images also "
        "works (for example ./my_images)."
    )


# --------------------------------------------------------------------------- folders


def _folder_dataset(folder: Path, follow_symlinks: bool = False) -> Dataset:
    root = folder.absolute()
    found: list[str] = []
    notes: list[str] = []
    for rel in _walk_images(root, follow_symlinks, notes):
        found.append(rel)
    if not found:
        suffixes = " ".join(sorted(IMAGE_SUFFIXES))
        raise UsageError(
            f"No images found in folder {root}: it holds no files with the suffixes "
            f"{suffixes} (any case; hidden files and folders are skipped)."
        )
    found.sort(key=lambda rel: rel.split("/"))
    # the name for people, a hash of the resolved path so x/test and y/test stay apart
    resolved = root.resolve()
    path_hash = hashlib.sha256(os.fsencode(resolved)).hexdigest()[:8]
    ident = f"folder:{resolved.name or root.name}-{path_hash}"
    images = tuple(ImageRef(ident, rel, root.joinpath(*rel.split("/"))) for rel in found)
    return Dataset(id=ident, title=str(root), root=root, images=images, source="folder",
                   notes=tuple(notes))


def _link_leaves(root: Path, path: str, kind: str, notes: list[str] | None) -> bool:
    """Whether ``path`` is a symbolic link leading outside ``root``; noted if so."""
    if not os.path.islink(path):
        return False
    try:
        if Path(os.path.realpath(path)).is_relative_to(root.resolve()):
            return False
    except (OSError, ValueError):
        pass
    if notes is not None:
        notes.append(f"skipped {path}: a link to a {kind} outside {root} "
                     "(--follow-symlinks reads it)")
    return True


def _walk_images(root: Path, follow_symlinks: bool = False,
                 notes: list[str] | None = None) -> Iterator[str]:
    """The relative paths of the images under ``root``; ``notes`` get what was skipped and
    why (links leaving the folder, files that are not images by their suffix)."""
    others: list[str] = []
    yield from _walk(root, follow_symlinks, notes, others)
    if others and notes is not None:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5
                                         else "")
        notes.append(f"skipped {len(others)} file(s) that are not images by their suffix"
                     f" ({shown}); images end in {' '.join(sorted(IMAGE_SUFFIXES))}")


def _walk(root: Path, follow_symlinks: bool, notes: list[str] | None,
          others: list[str]) -> Iterator[str]:
    seen: set[tuple[int, int]] = set()
    try:
        st = root.stat()
        seen.add((st.st_dev, st.st_ino))
    except OSError:
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            path = os.path.join(dirpath, d)
            if not follow_symlinks and _link_leaves(root, path, "folder", notes):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            keep.append(d)
        dirnames[:] = keep
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
                others.append(name if rel_dir == "." else f"{rel_dir}/{name}")
                continue
            path = os.path.join(dirpath, name)
            if not follow_symlinks and _link_leaves(root, path, "file", notes):
                continue
            yield name if rel_dir == "." else f"{rel_dir}/{name}"


# --------------------------------------------------------------------------- hashing


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
        _atomic_write_text(self.root / LOCK_NAME, lines)

    def save_stats(self) -> None:
        if not self._stats_dirty:
            return
        keep = {k: v for k, v in self.stats.items() if (self.root / k).exists()}
        try:
            _atomic_write_text(self.root / STAT_CACHE_NAME, json.dumps(keep, sort_keys=True))
            self._stats_dirty = False
        except OSError:
            pass


# --------------------------------------------------------------------------- download


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


# --------------------------------------------------------------------------- manifests


def _resolve_manifest(
    m: Manifest, params: dict[str, str], data_dir: Path, download: bool
) -> Dataset:
    params = {**m.default_parameters(), **params}
    ident = m.stored_id(params)
    title = m.title.format(**params)
    notes = [n.format(**params) for n in m.notes]
    if m.embedded:
        root = m.path.parent / m.embedded
        names = _check_embedded(m, root)
        source = "embedded"
    elif m.files:
        root = data_dir / ident
        names = _ensure_files(m, ident, root, download, notes)
        source = "manifest"
    else:
        root = data_dir / ident
        names = _ensure_archive(m, params, ident, root, data_dir, download, notes)
        source = "manifest"
    if len(names) != m.image_count:
        notes.append(
            f"{ident}: the manifest expects {m.image_count} images but {len(names)} were found."
        )
    images = tuple(ImageRef(ident, n, root.joinpath(*n.split("/"))) for n in names)
    return Dataset(ident, title, root, images, source, tuple(notes))


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


# --------------------------------------------------------------------------- archives


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
