"""Checkpoints of learned codecs: safe loading, strict matching, manifests.

Loading never unpickles arbitrary objects: files are read with
``torch.load(weights_only=True)``. The usual containers are unwrapped
(``state_dict``, ``model``, ``net``, ``network``, ``model_state_dict``) and DataParallel
``module.`` prefixes dropped; when loading, the entropy bottleneck's parameters are
renamed to the naming the network uses (``matrices.0``, ``_matrix0`` or ``_matrices.0``,
as CompressAI's versions and the authors' forks differ). Loading into a network is strict: a file
that does not fit raises :class:`CheckpointMismatch` with the missing, unexpected and
mis-shaped keys grouped by module.

A manifest (TOML, one per codec) lists a codec's checkpoints by quality::

    codec = "bmshj2018-hyperprior"
    [[checkpoints]]
    quality = 3
    path = "/data/ckpt/hyperprior-q3.pth.tar"   # or url = "https://..."
    sha256 = "..."                               # verified before loading
    metric = "mse"
    lambda = 0.0067
    [checkpoints.config]                         # architecture arguments
    N = 128
    M = 192
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tomllib
import zipfile
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError, UsageError

CONTAINER_KEYS = ("state_dict", "model", "net", "network", "model_state_dict")


class CheckpointError(HarnessError):
    """A checkpoint cannot be used: unreadable, unsafe, wrong checksum or wrong layout."""


class CheckpointMismatch(CheckpointError):
    """A state_dict does not fit the network; the message lists the differences."""


# file state -> sha256: a file is hashed once while it stays the same file, unchanged
_DIGESTS: dict[tuple, str] = {}


def file_state(path: str | os.PathLike) -> tuple:
    """What changes when a file is replaced or written: its path, device and inode,
    size, and modification and status-change times (the latter cannot be set back)."""
    found = os.stat(path)
    return (os.path.realpath(path), found.st_dev, found.st_ino, found.st_size,
            found.st_mtime_ns, found.st_ctime_ns)


def sha256_of(path: str | os.PathLike) -> str:
    """The file's SHA-256, hashed once per process while the file stays unchanged (or
    told by :func:`remember_digests`)."""
    state = file_state(path)
    if state not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[state] = digest.hexdigest()
    return _DIGESTS[state]


def known_digests() -> dict[tuple, str]:
    """The digests this process has computed, by file state (for its worker processes)."""
    return dict(_DIGESTS)


def remember_digests(digests: dict[tuple, str]) -> None:
    """Take the digests another process of this run computed: a worker need not hash
    again what the parent verified (a file changed since has another state)."""
    _DIGESTS.update(digests)


# Largest checkpoint, counted as its records' unpacked size; HARNESS_MAX_CHECKPOINT_BYTES
# overrides it. The largest released learned-codec files are a few hundred MB.
MAX_CHECKPOINT_BYTES = 4 << 30


def check_checkpoint_format(path: str | os.PathLike) -> bool:
    """Refuse, before anything of it is deserialised, a file that is not plain weights.

    Only a torch zip archive (``torch.save``; records are stored, ``data.pkl`` holds the
    structure) or a legacy torch pickle is read. A TorchScript archive is a program
    (``torch.load`` hands it to ``torch.jit.load``, which runs its code), so it is
    refused, as is an archive whose records unpack past the size cap.

    Returns whether the file can be memory-mapped: a zip archive whose records are all
    stored uncompressed, as ``torch.save`` writes them (not a legacy pickle, nor an
    archive zipped again with compression).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist"
                              + (" (it is a folder)" if path.is_dir() else ""))
    with path.open("rb") as handle:
        head = handle.read(4)
    if not head:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    if head[:1] == b"\x80":  # a pickle: the legacy torch format, read by the unpicklers
        return False
    if head != b"PK\x03\x04":
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint: it is neither a torch.save zip"
            f" archive nor a pickle (it starts with {head!r}). Save the weights with"
            " torch.save(model.state_dict(), PATH)")
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: a damaged zip"
                              f" archive ({exc})") from None
    names = [r.filename for r in records]
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        raise CheckpointError(
            f"{path} is a TorchScript archive (torch.jit.save): a program, whose code would"
            " run when it is loaded, not a file of weights; refused. Save the weights with"
            " torch.save(model.state_dict(), PATH)")
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        raise CheckpointError(f"{path} is a zip archive but not a torch.save checkpoint (no"
                              " data.pkl record)")
    limit = int(os.environ.get("HARNESS_MAX_CHECKPOINT_BYTES", MAX_CHECKPOINT_BYTES))
    unpacked = sum(r.file_size for r in records)
    if unpacked > limit:
        raise CheckpointError(
            f"{path} ({path.stat().st_size} bytes) unpacks to {unpacked} bytes, over the"
            f" {limit}-byte limit for a checkpoint; refused before reading it (set"
            " HARNESS_MAX_CHECKPOINT_BYTES to raise the limit for a genuine file)")
    return all(r.compress_type == zipfile.ZIP_STORED for r in records)


def read_state_dict(path: str | os.PathLike) -> dict:
    """The tensors of a checkpoint file, unwrapped and with keys normalised.

    Raises:
        CheckpointError: the file is missing, not a torch file, holds pickled objects
            other than tensors and plain containers, or holds no state_dict.
    """
    import torch

    path = Path(path)
    mappable = check_checkpoint_format(path)
    try:
        # mapped, the tensors are the file's cached pages: no copy of the whole file is
        # read first (STF's 400 MB: 0.05 s instead of 0.25 s), and the network's load
        # copies each tensor once
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=mappable)
    except pickle.UnpicklingError as exc:
        found = re.findall(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it contains {', '.join(dict.fromkeys(found))})" if found else ""
        raise CheckpointError(
            f"{path} holds pickled Python objects besides tensors{what}; the harness loads"
            " checkpoints with weights_only=True and will not run code from a file. Re-save"
            " it as a plain state_dict: torch.save(model.state_dict(), PATH) in the"
            " environment that made it."
        ) from exc
    except Exception as exc:  # zip/format errors: not a torch checkpoint at all
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({exc})") from exc
    return normalise_state_dict(unwrap(loaded, path))


def unwrap(loaded, path: Path | str = "checkpoint") -> dict:
    """The state_dict inside the usual containers."""
    import torch

    current = loaded
    for _ in range(3):
        if not isinstance(current, Mapping):
            break
        if current and all(isinstance(v, torch.Tensor) for v in current.values()):
            return dict(current)
        inner = next((current[k] for k in CONTAINER_KEYS if k in current), None)
        if inner is None:
            break
        current = inner
    keys = list(loaded)[:8] if isinstance(loaded, Mapping) else type(loaded).__name__
    raise CheckpointError(
        f"{path} holds no state_dict of tensors (top-level: {keys}); expected a state_dict"
        f" or a dict with one under {', '.join(CONTAINER_KEYS)}")


def normalise_state_dict(state_dict: Mapping) -> dict:
    """Drop DataParallel ``module.`` prefixes."""
    out = {}
    for key, value in state_dict.items():
        while key.startswith("module."):
            key = key[len("module."):]
        out[key] = value
    return out


# Entropy-bottleneck parameters have had three names: "matrices.0" (compressai >= 1.2.6),
# "_matrix0" (older releases and the STF/TIC forks) and "_matrices.0" (the oldest).
_EB_NAME = re.compile(r"^(?P<prefix>.*)\.(?:_?(?P<plural>biases|matrices|factors)\.(?P<i>\d+)"
                      r"|_(?P<singular>bias|matrix|factor)(?P<j>\d+))$")
_PLURAL = {"bias": "biases", "matrix": "matrices", "factor": "factors"}


def align_entropy_bottleneck_names(state_dict: Mapping, expected: set[str]) -> dict:
    """Rename entropy-bottleneck parameters to the naming the network uses."""
    out = {}
    for key, value in state_dict.items():
        match = _EB_NAME.match(key) if key not in expected else None
        if match:
            plural = match["plural"] or _PLURAL[match["singular"]]
            singular = next(k for k, v in _PLURAL.items() if v == plural)
            index, prefix = match["i"] or match["j"], match["prefix"]
            for candidate in (f"{prefix}.{plural}.{index}", f"{prefix}._{singular}{index}",
                              f"{prefix}._{plural}.{index}"):
                if candidate in expected:
                    key = candidate
                    break
        out[key] = value
    return out


def mismatch_report(model, state_dict: Mapping, limit: int = 12) -> str | None:
    """Readable differences between ``model``'s state_dict and ``state_dict``, or None.

    Entropy-model CDF buffers are exempt from shape checks: their sizes depend on the
    trained weights and are resized on load.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    cdf = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
    shapes = [f"{k}: file {tuple(state_dict[k].shape)}, network {tuple(expected[k].shape)}"
              for k in expected if k in state_dict and not k.endswith(cdf)
              and tuple(state_dict[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or shapes):
        return None

    def grouped(keys: list[str]) -> str:
        modules = defaultdict(list)
        for key in keys:
            modules[key.rsplit(".", 1)[0] if "." in key else key].append(key.rsplit(".", 1)[-1])
        lines = [f"    {m}: {', '.join(v[:6])}{' ...' if len(v) > 6 else ''}"
                 for m, v in list(modules.items())[:limit]]
        if len(modules) > limit:
            lines.append(f"    ... and {len(modules) - limit} more modules")
        return "\n".join(lines)

    parts = []
    if missing:
        parts.append(f"  missing from the file ({len(missing)} keys):\n{grouped(missing)}")
    if unexpected:
        parts.append(f"  not in the network ({len(unexpected)} keys):\n{grouped(unexpected)}")
    if shapes:
        more = f"\n    ... and {len(shapes) - limit} more" if len(shapes) > limit else ""
        parts.append(f"  different shapes ({len(shapes)}):\n    "
                     + "\n    ".join(shapes[:limit]) + more)
    return "\n".join(parts)


def load_strict(model, state_dict: Mapping, source: str,
                hint: str | Callable[[], str] = "") -> None:
    """Load ``state_dict`` into ``model`` strictly, or raise CheckpointMismatch.

    Entropy-bottleneck parameters are first renamed to the network's naming. ``hint``
    says what the file fits instead: text, or a function called only on a mismatch
    (finding out may build networks).
    """
    state_dict = align_entropy_bottleneck_names(state_dict, set(model.state_dict()))
    report = mismatch_report(model, state_dict)
    if report:
        advice = hint() if callable(hint) else hint
        raise CheckpointMismatch(
            f"{source} does not fit {type(model).__name__}:\n{report}"
            + (f"\n  {advice}" if advice else ""))
    model.load_state_dict(dict(state_dict), strict=True)


# --- manifests ------------------------------------------------------------------------------

@dataclass
class CheckpointEntry:
    quality: float
    path: str | None = None
    url: str | None = None
    sha256: str | None = None
    metric: str | None = None
    lmbda: float | None = None
    config: dict = field(default_factory=dict)

    def to_toml(self) -> str:
        fields = {"quality": int(self.quality) if float(self.quality).is_integer()
                  else self.quality, "path": self.path, "url": self.url,
                  "sha256": self.sha256, "metric": self.metric, "lambda": self.lmbda}
        lines = ["[[checkpoints]]"] + _toml_pairs(fields)
        if self.config:
            lines += ["[checkpoints.config]"] + _toml_pairs(self.config)
        return "\n".join(lines)


# A small TOML writer (the standard library only reads TOML): strings, booleans, numbers,
# arrays and inline tables, with every string escaped so that any path round-trips.
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n",
            "\f": "\\f", "\r": "\\r"}


def _toml_string(value: str) -> str:
    return '"' + "".join(_ESCAPES.get(c, f"\\u{ord(c):04x}" if ord(c) < 0x20 or c == "\x7f"
                                      else c) for c in value) + '"'


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_value(value) -> str:
    """``value`` as a TOML value; None and other types have no TOML form and are refused."""
    if isinstance(value, bool):  # before int: True is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("nan" if value != value else "inf" if value == float("inf")
                else "-inf" if value == float("-inf") else repr(value))
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise UsageError(f"cannot write {value!r} ({type(value).__name__}) into a manifest")


def _toml_pairs(values: Mapping) -> list[str]:
    """``key = value`` lines; None values are left out."""
    return [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in values.items() if v is not None]


@dataclass
class Manifest:
    """A codec's checkpoints. ``architecture`` is set for a model of your own
    (``harness models add``): the learned codec whose network every file fits."""

    codec: str
    entries: list[CheckpointEntry]
    path: Path | None = None
    architecture: str | None = None
    description: str | None = None

    def entry(self, quality: float) -> CheckpointEntry | None:
        return next((e for e in self.entries if e.quality == float(quality)), None)

    def to_toml(self) -> str:
        head = "\n".join(_toml_pairs({"codec": self.codec, "architecture": self.architecture,
                                      "description": self.description})) + "\n"
        return head + "".join("\n" + e.to_toml() + "\n" for e in
                              sorted(self.entries, key=lambda e: e.quality))


def manifests_dir() -> Path:
    """Where users' checkpoint manifests live: $HARNESS_CHECKPOINTS or <data dir>/checkpoints."""
    if os.environ.get("HARNESS_CHECKPOINTS"):
        return Path(os.environ["HARNESS_CHECKPOINTS"])
    from harness.datasets import default_data_dir

    return default_data_dir() / "checkpoints"


def read_manifest(path: str | os.PathLike) -> Manifest:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"checkpoint manifest {path}: {exc}") from exc
    if not isinstance(data.get("codec"), str):
        raise UsageError(f"checkpoint manifest {path}: needs codec = \"NAME\"")
    entries = []
    for i, raw in enumerate(data.get("checkpoints", [])):
        if "quality" not in raw or not ({"path", "url"} & set(raw)):
            raise UsageError(f"checkpoint manifest {path}: entry {i + 1} needs a quality and a"
                             " path or url")
        entries.append(CheckpointEntry(float(raw["quality"]), raw.get("path"), raw.get("url"),
                                       raw.get("sha256"), raw.get("metric"),
                                       raw.get("lambda"), dict(raw.get("config", {}))))
    return Manifest(data["codec"], entries, path, data.get("architecture"),
                    data.get("description"))


def manifest_for(codec: str) -> Manifest | None:
    path = manifests_dir() / f"{codec}.toml"
    return read_manifest(path) if path.is_file() else None


def write_manifest(manifest: Manifest) -> Path:
    path = manifest.path or manifests_dir() / f"{manifest.codec}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(manifest.to_toml())
    tmp.replace(path)
    return path


def verify_entry(entry: CheckpointEntry, codec: str,
                 again: str = "`harness checkpoints add` it again") -> str:
    """Check that a manifest entry's file exists and matches its sha256; return the hash.

    ``again`` says how to register a file that was replaced on purpose.
    """
    if not entry.path:
        raise CheckpointError(f"{codec} q={entry.quality:g}: no local file (url only:"
                              f" {entry.url}); download it and `harness checkpoints add`")
    if not Path(entry.path).is_file():
        raise CheckpointError(f"{codec} q={entry.quality:g}: {entry.path} does not exist")
    actual = sha256_of(entry.path)
    if entry.sha256 and not actual.startswith(entry.sha256.lower()):
        raise CheckpointError(
            f"{codec} q={entry.quality:g}: {entry.path} has sha256 {actual}, the manifest"
            f" says {entry.sha256}; the file is not the one listed (re-download it, or"
            f" {again} if it was replaced on purpose)")
    return actual
