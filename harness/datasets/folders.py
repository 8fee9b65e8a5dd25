"""Any folder of images as a dataset: the walk, hidden files and links that leave it."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from harness.datasets.dataset import Dataset, ImageRef
from harness.errors import UsageError
from harness.images import IMAGE_SUFFIXES


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
