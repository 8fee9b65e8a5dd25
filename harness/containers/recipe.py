"""Recipes: each folder ``codecs/<name>/`` with a ``Dockerfile``, and its image tag.

Its image is tagged ``lic-harness/<name>:<hash12>``, where the hash covers every file of
the folder and the build arguments, so a changed recipe builds a new image and an
unchanged one is never rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.containers.engine import ContainerError, _import_docker, docker_client
from harness.errors import UsageError

IMAGE_REPOSITORY = "lic-harness"
LABEL_RECIPE = "org.lic-harness.recipe"
RECIPES_ENV = "HARNESS_RECIPES"
IMAGE_ENV_PREFIX = "HARNESS_IMAGE_"  # HARNESS_IMAGE_VTM=lic-harness/vtm:<hash> picks an image


def recipes_dir() -> Path:
    """The ``codecs/`` folder of recipes: $HARNESS_RECIPES, the source checkout, or ./codecs."""
    env = os.environ.get(RECIPES_ENV)
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "codecs", Path.cwd() / "codecs"]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*/Dockerfile")):
            return candidate
    raise ContainerError(
        "no codec recipes found (a codecs/ folder with <name>/Dockerfile): run from a "
        f"checkout of lic-harness or set {RECIPES_ENV}")


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path

    def files(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)

    def content_hash(self, build_args: dict[str, str] | None = None) -> str:
        """sha256 of every file (path, executable bit, bytes) and the build arguments."""
        digest = hashlib.sha256()
        for file in self.files():
            rel = file.relative_to(self.path).as_posix()
            executable = "x" if os.access(file, os.X_OK) else "-"
            digest.update(f"{rel}\0{executable}\0{file.stat().st_size}\0".encode())
            digest.update(file.read_bytes())
        for key, value in sorted((build_args or {}).items()):
            digest.update(f"arg\0{key}={value}\0".encode())
        return digest.hexdigest()

    def tag(self, build_args: dict[str, str] | None = None) -> str:
        return f"{IMAGE_REPOSITORY}/{self.name}:{self.content_hash(build_args)[:12]}"

    def base_images(self, build_args: dict[str, str] | None = None) -> list[str]:
        """The images the Dockerfile's FROM lines name (stage names left out)."""
        text = (self.path / "Dockerfile").read_text()
        args: dict[str, str] = {}
        bases: list[str] = []
        stages: set[str] = set()
        for line in _logical_lines(text):
            words = line.split()
            if not words:
                continue
            keyword = words[0].upper()
            if keyword == "ARG" and len(words) > 1 and not bases:
                key, _, value = words[1].partition("=")
                args[key] = value.strip("\"'")
            elif keyword == "FROM" and len(words) > 1:
                image = _substitute(words[1], {**args, **(build_args or {})})
                if len(words) >= 4 and words[2].upper() == "AS":
                    stages.add(words[3])
                if image not in stages and image != "scratch" and image not in bases:
                    bases.append(image)
        return bases


def _substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), ""), text)


def _logical_lines(text: str) -> Iterable[str]:
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        yield current + line
        current = ""
    if current:
        yield current


def recipes() -> dict[str, Recipe]:
    root = recipes_dir()
    return {p.parent.name: Recipe(p.parent.name, p.parent)
            for p in sorted(root.glob("*/Dockerfile"))}


def get_recipe(name: str) -> Recipe:
    known = recipes()
    if name not in known:
        raise UsageError(f"unknown codec recipe {name!r}; known: {', '.join(known)}")
    return known[name]


def find_image(name: str, client=None) -> str | None:
    """The tag of the built image of recipe ``name`` as it is now, or None if not built.

    ``$HARNESS_IMAGE_<NAME>`` names another image (e.g. one built with build arguments).
    Without a recipes folder (an installed package, no checkout), the newest image
    labelled with that recipe is used.
    """
    own = client is None
    client = client or docker_client()
    docker = _import_docker()
    chosen = os.environ.get(IMAGE_ENV_PREFIX + name.upper().replace("-", "_"))
    try:
        if chosen:
            try:
                client.images.get(chosen)
            except docker.errors.ImageNotFound:
                raise ContainerError(f"{IMAGE_ENV_PREFIX}{name.upper()}={chosen}: no such "
                                     "image here (`harness containers list`)") from None
            return chosen
        try:
            tag = get_recipe(name).tag()
        except ContainerError:
            images = client.images.list(filters={"label": f"{LABEL_RECIPE}={name}"})
            images = [i for i in images if i.tags]
            if not images:
                return None
            newest = max(images, key=lambda i: i.attrs.get("Created", ""))
            return newest.tags[0]
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            return None
        return tag
    finally:
        if own:
            client.close()
