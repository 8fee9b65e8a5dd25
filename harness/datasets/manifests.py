"""Dataset manifests: their schema, reading and validating them, the shipped ones.

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

import hashlib
import importlib.resources
import os
import re
import string
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_FORMATTER = string.Formatter()


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
    return Path(__file__).resolve().parents[2] / "datasets"


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
