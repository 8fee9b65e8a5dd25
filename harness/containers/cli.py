"""The ``harness containers`` command line (wired by :func:`add_containers_parser`, or
``python -m harness.containers``)::

    harness containers build [NAME ...] [--source PATH] [--build-arg K=V] [--no-cache]
    harness containers list
    harness containers clean
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from harness.containers.builder import LABEL_SOURCE, build
from harness.containers.engine import _import_docker, docker_client
from harness.containers.recipe import LABEL_RECIPE, recipes, recipes_dir
from harness.containers.workers import LABEL_WORKER, remove_stale_workers
from harness.errors import HarnessError, UsageError


def _parse_build_args(items: Sequence[str] | None) -> dict[str, str]:
    result = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--build-arg {item!r}: expected KEY=VALUE")
        result[key] = value
    return result


def cmd_build(args: argparse.Namespace) -> int:
    names = list(dict.fromkeys(args.names))
    if args.source and len(names) != 1:
        raise UsageError("--source needs exactly one recipe name (e.g. build bpg --source "
                         "libbpg-0.9.8.tar.gz)")
    build_args = _parse_build_args(args.build_arg)
    build(names, source=args.source, build_args=build_args, no_cache=args.no_cache,
          log=None if args.verbose else _quiet_log())
    return 0


def _quiet_log() -> Callable[[str], None]:
    """Print the build log's step lines and errors (the whole log with --verbose)."""
    def log(text: str) -> None:
        for line in text.splitlines():
            if line.startswith(("Step ", "WARNING", "Successfully", "E: ", "error", "make: ***",
                                "CMake Error")) or "verified" in line or "provenance" in line:
                print(line if len(line) <= 160 else line[:157] + "...", flush=True)
    return log


def _format_size(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size else "-"


def cmd_list(args: argparse.Namespace) -> int:
    known = recipes()
    client = docker_client()
    docker = _import_docker()
    images = client.images.list(filters={"label": LABEL_RECIPE})
    rows = []
    for name, recipe in known.items():
        tag = recipe.tag()
        try:
            image = client.images.get(tag)
            created = image.attrs.get("Created", "")[:19].replace("T", " ")
            rows.append((name, tag, "built", _format_size(image.attrs.get("Size", 0)), created,
                         image.labels.get(LABEL_SOURCE, "")))
        except docker.errors.ImageNotFound:
            rows.append((name, tag, "not built", "-", "-",
                         f"harness containers build {name}"))
    others = []
    for image in images:
        for tag in image.tags:
            name = image.labels.get(LABEL_RECIPE, "?")
            if name in known and tag == known[name].tag():
                continue
            others.append((name, tag, "outdated" if name in known else "unknown recipe",
                           _format_size(image.attrs.get("Size", 0)),
                           image.attrs.get("Created", "")[:19].replace("T", " "),
                           "an earlier version of the recipe"))
    header = ("recipe", "image", "state", "size", "created", "source / to build")
    table = [header, *rows, *others]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    workers = client.containers.list(all=True, filters={"label": LABEL_WORKER},
                                     ignore_removed=True)
    if workers:
        print(f"\n{len(workers)} worker container(s): "
              + ", ".join(f"{c.name} ({c.status})" for c in workers))
    print(f"\nrecipes: {recipes_dir()}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    removed = remove_stale_workers(everything=args.all)
    print(f"removed {len(removed)} worker container(s)"
          + (": " + ", ".join(removed) if removed else ""))
    return 0


def add_containers_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``containers`` (build, list, clean) to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "containers", help="build and list the codec containers (codecs/*/Dockerfile)",
        description="Build the container images of the external codecs (BPG, VTM, and the"
                    " Debian image with x265, AVIF, JPEG XL, WebP, JPEG 2000), tagged with"
                    " their recipe's content hash: an unchanged recipe is never rebuilt.")
    _add_actions(parser)
    return parser


def _add_actions(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="containers_action", metavar="ACTION", required=True)
    build_parser = actions.add_parser("build", help="build recipes (all if none named)")
    build_parser.add_argument("names", nargs="*", metavar="NAME",
                              help="recipe names: folders of codecs/ (debian, bpg, vtm, vmaf)")
    build_parser.add_argument("--source", metavar="PATH",
                              help="build from a local source tarball, tree or git repository"
                                   " instead of downloading it (one recipe)")
    build_parser.add_argument("--build-arg", action="append", metavar="KEY=VALUE",
                              help="a Dockerfile build argument (e.g. VTM_TAG=VTM-23.13)")
    build_parser.add_argument("--no-cache", action="store_true",
                              help="rebuild from scratch even if the image exists")
    build_parser.add_argument("-v", "--verbose", action="store_true",
                              help="print the whole build log (default: steps and errors)")
    build_parser.set_defaults(handler=cmd_build)
    list_parser = actions.add_parser("list", help="recipes, their images and state")
    list_parser.set_defaults(handler=cmd_list)
    clean_parser = actions.add_parser(
        "clean", help="remove worker containers whose process is gone")
    clean_parser.add_argument("--all", action="store_true",
                              help="remove every worker container, running ones too")
    clean_parser.set_defaults(handler=cmd_clean)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.containers",
        description="Build and list the codec containers (same as `harness containers`).")
    _add_actions(parser)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
