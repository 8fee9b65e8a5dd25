"""Models of your own: a name, an architecture and one checkpoint per rate point.

``harness models add mine --arch tcm --checkpoints q1.pth q2.pth q3.pth`` loads every
file strictly into the architecture's network (a file that does not fit is refused
then, with the differences), and writes a checkpoint manifest ``mine.toml`` beside the
others (:func:`harness.checkpoints.manifests_dir`) that also names the architecture::

    codec = "mine"
    architecture = "tcm"
    description = "..."
    [[checkpoints]]
    quality = 1          # the rate order the files were given in, 1 = lowest rate
    path = "/abs/q1.pth"
    sha256 = "..."
    lambda = 0.0025      # --lambdas: a label, shown by `harness codecs` and `models show`

From then on ``mine`` is a codec like the built-in ones (the registry reads these
manifests in every process, workers included): its qualities are 1..n, its fingerprint
holds every file's sha256 (a replaced file is refused until it is added again, and
re-adding it re-measures), and its curve is its own: a released codec's curve never
mixes in your files. The network's widths (TCM's N, the zoo's N and M) are read from
each file, as for ``--checkpoint``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from harness.checkpoints import (
    CheckpointEntry,
    CheckpointError,
    Manifest,
    manifests_dir,
    read_manifest,
    sha256_of,
    verify_entry,
    write_manifest,
)
from harness.errors import UsageError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def model_manifests() -> Iterator[tuple[str, Path, Manifest | None, str]]:
    """``(name, path, manifest, error)`` of every manifest that may be a model.

    A readable manifest without ``architecture`` is a built-in codec's and is skipped;
    an unreadable one is given with its error (``manifest`` None), so that using its
    name says what is wrong with the file.
    """
    folder = manifests_dir()
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
        try:
            manifest = read_manifest(path)
        except UsageError as exc:
            yield path.stem, path, None, str(exc)
            continue
        if manifest.architecture:
            yield path.stem, path, manifest, ""


def model_manifest(name: str) -> Manifest | None:
    """The manifest of model ``name``, or None when ``name`` is not a model."""
    path = manifests_dir() / f"{name}.toml"
    if not path.is_file():
        return None
    manifest = read_manifest(path)
    return manifest if manifest.architecture else None


# --- the codec --------------------------------------------------------------------------

class OwnModel:
    """Mixin put before a learned codec class: its weights are the manifest's files only
    (never a download, never a released model's configuration)."""

    accepted_options = ("device",)
    released = ""  # no shipped manifest of released widths to hold the files to

    def weights_path(self, quality) -> Path:
        manifest = model_manifest(self.name)
        entry = manifest.entry(quality) if manifest else None
        if entry is None:
            raise UsageError(f"model {self.name} has no checkpoint {quality:g}"
                             " (`harness models show` lists them)")
        verify_entry(entry, self.name, again=f"`harness models add {self.name} --replace`")
        return Path(entry.path)

    def missing_weights(self, quality, check: bool = False) -> str | None:
        from harness.codecs.learned import LearnedCodec

        return LearnedCodec.missing_weights(self, quality)  # the files only, never a download

    def quality_notes(self, check: bool = False) -> list[str]:
        from harness.codecs.learned import LearnedCodec

        return LearnedCodec.quality_notes(self, check)

    def _no_weights_message(self, quality) -> str:
        return (f"model {self.name} has no file for checkpoint {quality:g} here (`harness"
                f" models show {self.name}` lists its files; register them again with"
                f" `harness models add {self.name} --replace ...`)")


def architectures() -> dict[str, type]:
    """Learned codec classes a model can be built on, by their codec name."""
    from harness.codecs.learned import LearnedCodec
    from harness.registry import _load_target, codec_entries

    found = {}
    for name, entry in codec_entries().items():
        if entry.kind == "model":
            continue
        try:
            target = _load_target(entry.target)
        except Exception:  # a broken plugin is no architecture
            continue
        if isinstance(target, type) and issubclass(target, LearnedCodec):
            found[name] = target
    return found


def codec_class(manifest: Manifest) -> type:
    """The codec class of a model: its architecture's class, named and limited to its files."""
    base = architectures().get(manifest.architecture)
    if base is None:
        raise UsageError(f"model {manifest.codec} ({manifest.path}): architecture"
                         f" {manifest.architecture!r} is not a learned codec here")
    entries = sorted(manifest.entries, key=lambda e: e.quality)
    lambdas = [e.lmbda for e in entries]
    label = "checkpoint, 1 = lowest rate"
    if all(v is not None for v in lambdas):
        label += f" (lambda {', '.join(f'{v:g}' for v in lambdas)})"
    description = manifest.description or "your model"
    return type(f"{base.__name__}Model", (OwnModel, base), {
        "name": manifest.codec,
        "architecture": base.architecture,  # its bitstreams are its architecture's
        "qualities": tuple(int(e.quality) if e.quality.is_integer() else e.quality
                           for e in entries),
        "quality_label": label,
        "description": f"{description} [{manifest.architecture}, {len(entries)} checkpoints,"
                       f" {manifest.path}]",
        "__module__": __name__,
    })


class _Models(Mapping):
    """``MODELS[name]``: the codec class of a model (the registry's target for it)."""

    def __getitem__(self, name: str) -> type:
        manifest = read_manifest(manifests_dir() / f"{name}.toml")  # its error if unreadable
        if not manifest.architecture:
            raise KeyError(name)
        return codec_class(manifest)

    def __iter__(self):
        return (name for name, *_ in model_manifests())

    def __len__(self) -> int:
        return sum(1 for _ in self)


MODELS = _Models()


# --- adding and removing ------------------------------------------------------------------

def add_model(name: str, architecture: str, checkpoints: Sequence[str],
              lambdas: Sequence[float] | None = None, description: str | None = None,
              metric: str | None = None, replace: bool = False) -> Manifest:
    """Register model ``name``: every checkpoint is loaded into ``architecture`` first.

    Raises:
        UsageError: a bad name (a built-in codec's, a plugin's, an existing model's
            without ``replace``), an unknown architecture, a count of lambdas that is
            not the count of files, a file given twice.
        CheckpointError: a file is unreadable or does not fit the architecture (the
            message lists the differences).
    """
    from harness.registry import codec_entries

    if not NAME.match(name):
        raise UsageError(f"model name {name!r}: use letters, digits, '.', '_' and '-',"
                         " starting with a letter or digit (it names the codec and its file)")
    entry = codec_entries().get(name)
    if entry is not None and entry.kind != "model":
        what = "a built-in codec" if entry.kind == "built-in" else f"a codec of {entry.origin}"
        raise UsageError(f"{name} is already {what}; a model of your own needs a name of its"
                         f" own, so that its curve is never mixed with {name}'s (e.g."
                         f" my-{name})")
    existing = manifests_dir() / f"{name}.toml"
    if existing.is_file() and not replace:
        kind = "a model" if entry is not None else "a checkpoint manifest"
        raise UsageError(f"{existing} already holds {kind} named {name}: pass --replace to"
                         f" overwrite it, or `harness models remove {name}` first")
    learned = architectures()
    if architecture not in learned:
        raise UsageError(f"--arch {architecture!r} is not a learned architecture here; one of:"
                         f" {', '.join(learned)}")
    if lambdas is not None and len(lambdas) != len(checkpoints):
        raise UsageError(f"{len(lambdas)} --lambdas for {len(checkpoints)} --checkpoints: give"
                         " one lambda per checkpoint, in the same order")
    entries, seen = [], {}
    for i, given in enumerate(checkpoints):
        path = Path(given).resolve()
        if not path.is_file():
            raise UsageError(f"checkpoint {given} does not exist")
        sha256 = sha256_of(path)
        if sha256 in seen:
            raise UsageError(f"{given} and {seen[sha256]} are the same file (sha256"
                             f" {sha256[:16]}...): each rate point needs its own checkpoint")
        seen[sha256] = given
        _load_into(learned[architecture], architecture, path, i + 1)
        entries.append(CheckpointEntry(i + 1, str(path), None, sha256, metric,
                                       None if lambdas is None else float(lambdas[i])))
    manifest = Manifest(name, entries, existing, architecture, description)
    write_manifest(manifest)
    codec_entries.cache_clear()
    return manifest


def _load_into(cls: type, architecture: str, path: Path, index: int) -> None:
    """Load ``path`` strictly into a network of ``cls`` the way a run will, or refuse it."""
    try:
        cls(checkpoint=str(path)).model(1)
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {index} ({path}) is not a {architecture}"
                              f" network, refused:\n{exc}") from exc


def remove_model(name: str) -> Path:
    """Forget model ``name`` (its manifest; the checkpoint files stay where they are)."""
    manifest = model_manifest(name)
    if manifest is None:
        known = ", ".join(n for n, *_ in model_manifests()) or "none"
        raise UsageError(f"no model named {name} (models: {known})")
    manifest.path.unlink()
    return manifest.path


def released_mixing_warning(codec, quality: float, sha256: str) -> str | None:
    """What ``checkpoints add CODEC`` does when CODEC is a released model and the file
    may be a model of your own: it becomes one quality of the released curve."""
    from harness.codecs.learned import CompressAIZoo, LearnedCodec

    if not isinstance(codec, LearnedCodec):
        return None
    if isinstance(codec, CompressAIZoo) and float(quality) in map(float, codec.qualities):
        released = codec.published_url(quality).rsplit("/", 1)[-1]
        if sha256.startswith(released.rsplit("-", 1)[-1].split(".")[0]):
            return None  # CompressAI's own file for that quality
        what = f"is not CompressAI's released {released}"
    else:
        what = "is taken as the released weights of that quality"
    return (f"this file {what}: registered under {codec.name}, it becomes quality"
            f" {quality:g} of {codec.name}'s curve, beside the released weights of the other"
            f" qualities. To measure a model of your own as its own curve: harness models add"
            f" NAME --arch {codec.name} --checkpoints FILE [FILE ...]")
