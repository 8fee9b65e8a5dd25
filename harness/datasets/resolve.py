"""Dataset names -> datasets: look-up of names, aliases and parameters, the listing."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.datasets.archives import _ensure_archive
from harness.datasets.dataset import Dataset, ImageRef, default_data_dir
from harness.datasets.download import LOCK_NAME, _check_embedded, _ensure_files
from harness.datasets.folders import _folder_dataset
from harness.datasets.manifests import Manifest, _all_manifests, load_manifest
from harness.errors import UsageError


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
