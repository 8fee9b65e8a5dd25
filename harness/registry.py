"""Codec registry: built-in codecs by name, third-party ones by entry point.

Built-ins are named here as ``"module:attribute"`` strings and imported only when
used, so listing codecs stays fast. A third-party package registers a codec with an
entry point in the group ``harness.codecs``::

    [project.entry-points."harness.codecs"]
    my-codec = "my_package.codec:MyCodec"

The target is a :class:`harness.codec.Codec` subclass (or any callable returning a
Codec instance). A plugin that fails to import does not break the harness: it is
listed as unavailable with the error, and using it raises a clear message.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.metadata import entry_points

from harness.codec import Codec
from harness.errors import UsageError

ENTRY_POINT_GROUP = "harness.codecs"

BUILTIN_CODECS: dict[str, str] = {
    "jpeg": "harness.codecs.pillow:JPEG",
    "jpeg-444": "harness.codecs.pillow:JPEG444",
    "webp": "harness.codecs.pillow:WebP",
    "jpeg2000": "harness.codecs.pillow:JPEG2000",
    "bpg": "harness.codecs.external:BPG",
    "vtm": "harness.codecs.external:VTM",
    "x265": "harness.codecs.external:X265",
    "avif": "harness.codecs.external:AVIF",
    "jpegxl": "harness.codecs.external:JPEGXL",
    "webp-cli": "harness.codecs.external:WebPCLI",
    "jpeg2000-cli": "harness.codecs.external:JPEG2000CLI",
    "stf": "harness.codecs.transformers:STF",
    "wacnn": "harness.codecs.transformers:WACNN",
    "tcm": "harness.codecs.transformers:TCM",
    "tcm-large": "harness.codecs.transformers:TCMLarge",
    "shen2023": "harness.codecs.shen2023:Shen2023",
    "tic": "harness.codecs.tic_entroformer:TIC",
    "entroformer": "harness.codecs.tic_entroformer:EntroformerSequential",
    "entroformer-parallel": "harness.codecs.tic_entroformer:EntroformerParallel",
}
# CompressAI's zoo, MSE- and MS-SSIM-trained: "bmshj2018-hyperprior", "mbt2018-ms-ssim" ...
BUILTIN_CODECS.update({
    f"{arch}{suffix}": f"harness.codecs.learned:ZOO_CODECS[{arch}{suffix}]"
    for arch in ("bmshj2018-factorized", "bmshj2018-hyperprior", "mbt2018-mean", "mbt2018",
                 "cheng2020-anchor", "cheng2020-attn")
    for suffix in ("", "-ms-ssim")
})


@dataclass(frozen=True)
class CodecEntry:
    """Where a codec comes from: ``target`` is ``module:attribute``."""

    name: str
    target: str
    origin: str  # "built-in", the distribution of a plugin, or a model's manifest
    kind: str = "built-in"  # "built-in" | "plugin" | "model" (harness models add)


@lru_cache(maxsize=1)
def codec_entries() -> dict[str, CodecEntry]:
    """Every known codec name: built-ins, then plugins, then models of your own
    (``harness models add``); none can shadow an earlier one."""
    from harness.user_models import model_manifests

    entries = {name: CodecEntry(name, target, origin, "built-in" if origin == "built-in"
                                else "plugin")
               for name, (target, origin) in declared(ENTRY_POINT_GROUP, BUILTIN_CODECS).items()}
    for name, path, _, _ in model_manifests():
        entries.setdefault(name, CodecEntry(name, f"harness.user_models:MODELS[{name}]",
                                            str(path), "model"))
    return entries


def declared(group: str, builtins: dict[str, str]) -> dict[str, tuple[str, str]]:
    """name -> (``module:attribute`` target, origin): the built-ins, then the entry points
    of ``group`` (a plugin cannot shadow a built-in or an earlier plugin); the origin is
    "built-in" or the plugin's distribution. Shared by codecs and metrics."""
    found = {name: (target, "built-in") for name, target in builtins.items()}
    for ep in entry_points(group=group):
        if ep.name not in found:
            found[ep.name] = (ep.value, ep.dist.name if ep.dist is not None
                              else "unknown distribution")
    return found


def codec_names() -> list[str]:
    return list(codec_entries())


def _load_target(target: str):
    """Import ``module:attribute`` (``module:mapping[key]`` picks one entry of a dict)."""
    module_name, _, attribute = target.partition(":")
    attribute, _, key = attribute.partition("[")
    obj = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj[key.rstrip("]")] if key else obj


def create_codec(name: str, **options) -> Codec:
    """Return the codec registered as ``name`` (one instance per name, options and process).

    ``options`` go to the codec's constructor (e.g. ``checkpoint=PATH``, ``device="cuda"``
    for learned codecs); a codec that takes none refuses them.

    Raises:
        UsageError: the name is unknown (with the closest names), or its plugin
            cannot be loaded.
    """
    return _create_codec(name, tuple(sorted(options.items())))


@cache
def _create_codec(name: str, options: tuple) -> Codec:
    return new_codec(name, **dict(options))


def new_codec(name: str, **options) -> Codec:
    """A new instance of codec ``name``, shared with no one (``create_codec`` gives the
    process's shared one): for changes that must not reach other users, e.g. random
    weights for a complexity profile."""
    entries = codec_entries()
    entry = entries.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, entries, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UsageError(
            f"unknown codec {name!r}.{hint} Known codecs: {', '.join(entries)}"
            " (`harness codecs` lists them with their quality points)."
        )
    try:
        factory = _load_target(entry.target)
        codec = factory(**options)
    except Exception as exc:  # a broken plugin must not take the harness down
        fix = (f"Fix the model's manifest, or add it again (harness models add {name}"
               " --replace ...)" if entry.kind == "model" else "Reinstall or fix that package")
        raise UsageError(
            f"codec {name!r} ({entry.target}, from {entry.origin}) failed to load: "
            f"{type(exc).__name__}: {exc}. {fix}."
        ) from exc
    if not isinstance(codec, Codec):
        raise UsageError(
            f"codec {name!r} ({entry.target}) is not a harness.codec.Codec "
            f"(got {type(codec).__name__})."
        )
    if codec.name != name and not options:
        # The registry name is the one users type and results are stored under.
        codec.name = name
    return codec
