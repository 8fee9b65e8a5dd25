"""A dataset once resolved: its images, and where manifest datasets are kept."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


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


def default_data_dir() -> Path:
    """$HARNESS_DATA, else $XDG_CACHE_HOME/lic-harness, else ~/.cache/lic-harness."""
    env = os.environ.get("HARNESS_DATA")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "lic-harness"
    return Path.home() / ".cache" / "lic-harness"


def describe(dataset: Dataset) -> str:
    """One line: id, image count, where the files are."""
    count = len(dataset.images)
    noun = "image" if count == 1 else "images"
    return f"{dataset.id}: {count} {noun} in {dataset.root} ({dataset.source})"
