"""Building the image of a recipe.

Builds use the Docker engine's classic builder through the docker SDK
(``pip install docker``), never pull during the build, and stream the build log.
The base image ``debian:bookworm-slim`` is made offline by ``codecs/seed-base-image.sh``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.containers.engine import ContainerError, _import_docker, _short, docker_client
from harness.containers.recipe import (
    IMAGE_ENV_PREFIX,
    LABEL_RECIPE,
    Recipe,
    get_recipe,
    recipes,
    recipes_dir,
)
from harness.errors import UsageError

LABEL_RECIPE_HASH = "org.lic-harness.recipe-hash"
LABEL_SOURCE = "org.lic-harness.source"
LABEL_BUILD_ARGS = "org.lic-harness.build-args"
SEED_SCRIPT = "codecs/seed-base-image.sh"
LOCAL_SOURCE_DIR = "local-source"


@dataclass
class BuildResult:
    name: str
    tag: str
    built: bool  # False: the image existed already (recipe unchanged)
    seconds: float = 0.0
    size_bytes: int = 0


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def _build_context(recipe: Recipe, source: Path | None) -> tuple[tempfile.SpooledTemporaryFile,
                                                                  str]:
    """A tar of the recipe folder (+ the local source under local-source/)."""
    context = tempfile.SpooledTemporaryFile(max_size=32 << 20)
    local = ""
    with tarfile.open(fileobj=context, mode="w") as tar:
        for file in recipe.files():
            tar.add(file, arcname=file.relative_to(recipe.path).as_posix(), recursive=False,
                    filter=_normalised)
        if source is not None:
            if source.is_dir():
                local = LOCAL_SOURCE_DIR
            else:
                local = f"{LOCAL_SOURCE_DIR}/{source.name}"
            tar.add(source, arcname=local, filter=_normalised)
    context.seek(0)
    return context, local


def _ensure_base_images(client, recipe: Recipe, build_args: dict[str, str],
                        say: Callable[[str], None]) -> None:
    docker = _import_docker()
    for base in recipe.base_images(build_args):
        try:
            client.images.get(base)
            continue
        except docker.errors.ImageNotFound:
            pass
        say(f"base image {base} is not here; trying to pull it")
        try:
            client.images.pull(base)
        except Exception as exc:
            raise ContainerError(
                f"the base image {base} of recipe {recipe.name} is not on this machine and "
                f"cannot be pulled ({_short(exc, 160)}). Make it offline with: "
                f"sudo {recipes_dir() / 'seed-base-image.sh'} {base}") from None


def build_recipe(name: str, *, source: str | os.PathLike | None = None,
                 build_args: dict[str, str] | None = None, no_cache: bool = False,
                 client=None, say: Callable[[str], None] | None = None,
                 log: Callable[[str], None] | None = None) -> BuildResult:
    """Build recipe ``name`` unless its image (same content hash) exists already.

    ``say`` gets status lines, ``log`` the build log as it streams.
    """
    say = say or (lambda line: print(line, file=sys.stderr))
    log = log or (lambda line: print(line, end="", flush=True))
    client = client or docker_client(timeout=3600)
    docker = _import_docker()
    recipe = get_recipe(name)
    build_args = dict(build_args or {})
    tag = recipe.tag(build_args)
    if not no_cache:
        try:
            image = client.images.get(tag)
            say(f"{tag} is up to date (recipe unchanged); nothing to build"
                + (" (--no-cache rebuilds it from --source)" if source else ""))
            return BuildResult(name, tag, False, 0.0, image.attrs.get("Size", 0))
        except docker.errors.ImageNotFound:
            pass
    _ensure_base_images(client, recipe, build_args, say)
    source_path = Path(source).resolve() if source else None
    if source_path is not None and not source_path.exists():
        raise UsageError(f"--source {source}: no such file or folder")
    context, local = _build_context(recipe, source_path)
    if local:
        build_args["LOCAL_SOURCE"] = local
    labels = {
        LABEL_RECIPE: name,
        LABEL_RECIPE_HASH: recipe.content_hash({k: v for k, v in build_args.items()
                                                if k != "LOCAL_SOURCE"}),
        LABEL_SOURCE: f"local: {source_path}" if source_path else "upstream",
        LABEL_BUILD_ARGS: json.dumps(build_args, sort_keys=True),
    }
    say(f"building {tag} from {recipe.path}"
        + (f" with local source {source_path}" if source_path else ""))
    started = time.perf_counter()
    error = None
    image_id = None
    recent: list[str] = []  # the log's last lines, to tell why a step failed
    try:
        with context:
            stream = client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True,
                                      forcerm=True, pull=False, nocache=no_cache,
                                      buildargs=build_args, labels=labels, decode=True)
            for chunk in stream:
                if "stream" in chunk:
                    log(chunk["stream"])
                    recent = (recent + chunk["stream"].splitlines())[-40:]
                    found = re.match(r"Successfully built ([0-9a-f]+)", chunk["stream"])
                    if found:
                        image_id = found.group(1)
                elif "error" in chunk:
                    error = chunk["error"]
                elif "status" in chunk:
                    log(chunk["status"] + "\n")
    except docker.errors.APIError as exc:
        error = _short(exc, 2000)
    if error or image_id is None:
        raise ContainerError(build_failure(name, error or "", recent))
    seconds = time.perf_counter() - started
    size = client.images.get(tag).attrs.get("Size", 0)
    say(f"built {tag} in {seconds:.1f} s ({size / 1e6:.0f} MB)")
    if set(build_args) - {"LOCAL_SOURCE"}:
        say(f"the codecs use the image of the recipe without build arguments; to use this "
            f"one: {IMAGE_ENV_PREFIX}{name.upper()}={tag}")
    return BuildResult(name, tag, True, seconds, size)


# what a failed download prints (curl, wget, apt-get, git) when the network is missing
_OFFLINE = re.compile(r"Could not resolve|Temporary failure (in name )?resolv|unable to resolve"
                      r"|Network is unreachable|Failed to connect|Connection refused|timed out",
                      re.IGNORECASE)


def build_failure(name: str, error: str, log_lines: Sequence[str]) -> str:
    """One line saying why building recipe ``name`` failed, and what to do.

    Docker's own message for a failed step quotes the whole shell script of the step;
    that script is left out: the step's last log lines say more.
    """
    message = " ".join(error.split()) or "the build ended without an image"
    failed = re.match(r"The command '.*' returned a non-zero code: (\d+)$", message)
    if failed:
        message = f"a RUN step of {recipes_dir() / name / 'Dockerfile'} exited with {failed[1]}"
    offline = next((line.strip() for line in reversed(log_lines) if _OFFLINE.search(line)), None)
    if offline:
        return (f"building {name} failed: a download failed ({offline[:160]}); offline, give"
                f" the source yourself: harness containers build {name} --source FILE (see"
                f" {recipes_dir() / name / 'Dockerfile'} for the file it expects)")
    if "registry" in message or "no such host" in message or "pull access" in message:
        message += (f" (the base image must be on this machine: sudo "
                    f"{recipes_dir() / 'seed-base-image.sh'})")
    elif failed and log_lines:
        message += f"; its last output: {' | '.join(line.strip() for line in log_lines[-3:])}"
    return f"building {name} failed: {_short(message, 600)}"


def build(names: Sequence[str] = (), **kwargs) -> list[BuildResult]:
    """Build the named recipes (all if none), in order."""
    wanted = list(names) or list(recipes())
    for name in wanted:
        get_recipe(name)
    return [build_recipe(name, **kwargs) for name in wanted]
