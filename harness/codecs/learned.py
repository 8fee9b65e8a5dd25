"""Learned codecs: any CompressAI-style network as a harness codec.

The adapter makes the usual mistakes impossible or loud:

- entropy-model CDF tables are rebuilt (``update()``) when a checkpoint lacks them,
  and the harness says so;
- images are zero-padded (centred) to the multiple the network needs and cropped back;
- bpp counts the whole byte string the encoder returns, read back by a decoder that
  has nothing but those bytes (a fresh process decodes it);
- checkpoints load strictly, with a readable diff when they do not fit.

The byte string (:func:`pack` / :func:`unpack`) is a small versioned header followed by
the entropy-coded strings::

    b"LICB" | version (1 byte) | architecture | quality | original height, width |
    latent shape | number of strings | each string: length + bytes

It holds only what a decoder needs: the architecture's name (never a checkpoint file's
or a model's name, so renaming a file changes no byte), the quality that picks the
weights, and the shapes. Version 1 wrote the codec name there.

Integers are LEB128 varints, texts are length-prefixed UTF-8. The CompressAI-compatible
rate (strings only, as ``compressai.utils.eval_model`` counts it) is
:func:`payload_bytes`; the header's share is the rest.
"""

from __future__ import annotations

import os
import struct
import sys
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.checkpoints import (
    CheckpointError,
    CheckpointMismatch,
    file_state,
    load_strict,
    manifest_for,
    read_state_dict,
    sha256_of,
    verify_entry,
)
from harness.codec import Availability, Codec, Quality, check_image, fingerprint_of
from harness.errors import CodecUnavailable

# compressai's import of torch.jit.script is deprecated in this torch; nothing to act on
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)

MAGIC = b"LICB"
FORMAT_VERSION = 2


# --- the byte string --------------------------------------------------------------------

@dataclass(frozen=True)
class Bitstream:
    codec: str
    quality: float
    height: int
    width: int
    shape: tuple  # ints, or tuples of ints (what the network's compress() returned)
    strings: tuple[bytes, ...]


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("the bitstream is truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ValueError("corrupt varint in the bitstream header")

    def text(self) -> str:
        return self.take(self.varint()).decode("utf-8")


def _shape_items(shape) -> list:
    return [tuple(int(v) for v in s) if hasattr(s, "__len__") else int(s) for s in shape]


def pack(stream: Bitstream) -> bytes:
    out = bytearray(MAGIC)
    out.append(FORMAT_VERSION)
    name = stream.codec.encode()
    out += _varint(len(name)) + name
    out += struct.pack("<d", float(stream.quality))
    out += _varint(stream.height) + _varint(stream.width)
    items = _shape_items(stream.shape)
    out += _varint(len(items))
    for item in items:
        if isinstance(item, tuple):
            out += _varint(len(item) + 1) + b"".join(_varint(v) for v in item)
        else:
            out += _varint(0) + _varint(item)
    out += _varint(len(stream.strings))
    for string in stream.strings:
        out += _varint(len(string)) + string
    return bytes(out)


def unpack(data: bytes) -> Bitstream:
    if data[:4] != MAGIC:
        raise ValueError("not a learned-codec bitstream of this harness (bad magic)")
    reader = _Reader(data)
    reader.take(4)
    version = reader.take(1)[0]
    if version != FORMAT_VERSION:
        raise ValueError(f"bitstream format version {version}; this harness reads"
                         f" {FORMAT_VERSION}")
    codec = reader.text()
    (quality,) = struct.unpack("<d", reader.take(8))
    height, width = reader.varint(), reader.varint()
    shape = []
    for _ in range(reader.varint()):
        kind = reader.varint()
        shape.append(reader.varint() if kind == 0 else
                     tuple(reader.varint() for _ in range(kind - 1)))
    strings = tuple(reader.take(reader.varint()) for _ in range(reader.varint()))
    if reader.pos != len(data):
        raise ValueError(f"{len(data) - reader.pos} stray bytes after the last string")
    return Bitstream(codec, quality, height, width, tuple(shape), strings)


# --- versions -------------------------------------------------------------------------------

def installed_version(package: str) -> str:
    """``package.__version__`` (torch: ``2.14.1+cu130``, with its build) read from the
    package's ``version.py`` without importing it: a run whose measurements are all in
    the store needs the fingerprint, not the seconds of importing torch and compressai."""
    import re
    from importlib.util import find_spec

    spec = find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            text = (Path(folder) / "version.py").read_text(encoding="utf-8")
        except OSError:
            continue
        found = re.search(r"^__version__\s*(?::\s*str\s*)?=\s*['\"]([^'\"]+)['\"]", text, re.M)
        if found:
            return found.group(1)
    import importlib

    return importlib.import_module(package).__version__


# --- building a network to load ---------------------------------------------------------------

def without_initialisation():
    """A context in which building a network skips ``torch.nn.init``'s random
    initialisation: a strict load overwrites every parameter and buffer it would fill,
    and on transformer codecs it is most of the load (STF: 3 s of 3.5 s here). A torch
    function mode is per thread, so a network built meanwhile elsewhere keeps its init.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    initialisers = {getattr(torch.nn.init, name) for name in dir(torch.nn.init)
                    if name.endswith("_") and not name.startswith("_")}

    class SkipInitialisation(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in initialisers:
                return args[0] if args else kwargs["tensor"]
            return func(*args, **kwargs)

    return SkipInitialisation()


# --- finiteness -----------------------------------------------------------------------------

class NonFiniteValues(CheckpointError):
    """NaN or inf in weights or in what the network gives the entropy coder: CompressAI's
    rANS coder loops forever on them, so they are refused before coding."""


def require_finite(tensor, what: str) -> None:
    import torch

    if not tensor.is_floating_point():
        return
    # a NaN or inf anywhere makes the sum NaN or inf: a finite sum proves every value
    # finite, at a twentieth of the cost of a boolean copy (0.03 s for STF's 100 M
    # weights); a sum that overflowed on finite values is told apart by the exact check
    if bool(torch.isfinite(tensor.sum())) or bool(torch.isfinite(tensor).all()):
        return
    bad = int((~torch.isfinite(tensor)).sum())
    raise NonFiniteValues(
        f"non-finite values in {what}: {bad} of {tensor.numel()} values are NaN or inf"
        " (a diverged or damaged checkpoint; nothing was entropy-coded)")


def _require_finite_output(module_name: str):
    """A forward hook refusing NaN/inf in a top-level module's output (latents, scales)."""
    def hook(module, inputs, output):
        import torch

        pending = [output]
        while pending:
            value = pending.pop()
            if isinstance(value, torch.Tensor):
                require_finite(value, f"the output of {module_name}")
            elif isinstance(value, list | tuple):
                pending.extend(value)
            elif isinstance(value, dict):
                pending.extend(value.values())
    return hook


# (device, network class, parameter shapes) of the networks warmed up in this process.
# Another network of the same layout (the next rate point, as a worker switches models)
# runs the same kernels on the same shapes: its first call measured as fast as its later
# ones, so it skips the warm-up run (TCM's is a 256x256 encode and decode, 1.4 s here).
_LAYOUTS_RUN: set[tuple] = set()


def payload_bytes(data: bytes) -> int:
    """Bytes of the entropy-coded strings alone (the rate CompressAI reports)."""
    return sum(len(s) for s in unpack(data).strings)


# --- padding ------------------------------------------------------------------------------

def padding(height: int, width: int, multiple: int, minimum: int = 0) -> tuple[int, ...]:
    """(left, right, top, bottom) zero padding, centred, to a multiple (and a minimum)."""
    out_h = max(-(-height // multiple) * multiple, minimum)
    out_w = max(-(-width // multiple) * multiple, minimum)
    left, top = (out_w - width) // 2, (out_h - height) // 2
    return left, out_w - width - left, top, out_h - height - top


# --- the adapter ----------------------------------------------------------------------------

class LearnedCodec(Codec):
    """A network with ``compress(x) -> {"strings", "shape"}`` and ``decompress``.

    Subclasses say how to build the network (:meth:`build`) and where a quality's
    weights come from (:meth:`weights_path`). Networks are loaded once per process.
    """

    # The network the bitstream needs, written in its header: a codec class's own name
    # unless it says otherwise (a model of your own names its architecture's).
    architecture: str = ""
    pad_multiple: int = 64
    pad_minimum: int = 0
    pad_mode: str = "constant"  # zeros; "replicate" repeats the border pixels
    # The padded image's size over the coded latent's (the shape in the header); None
    # when unknown (a plugin): then only a common stride of both sides is required.
    latent_stride: int | None = None
    quality_label = "quality index"
    accepted_options = ("checkpoint", "device")
    seconds_per_megapixel = 8.0  # STF-like: ~2.5 s a Kodak image on one core
    holds_model = True
    activation_bytes_per_pixel = 2048  # feature maps of the transforms and entropy model
    network_bytes = 2**30  # a network's memory when its weights file is not known here
    loads_strictly = True  # every parameter and buffer comes from the weights file

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in vars(cls) and "architecture" not in vars(cls):
            cls.architecture = cls.name

    def __init__(self, device: str | None = None, checkpoint: str | None = None):
        self.device = device or os.environ.get("HARNESS_DEVICE") or "cpu"
        self.checkpoint = checkpoint
        self._models: dict[float, object] = {}
        self._refused: dict[float, tuple] = {}  # quality -> (its file's state, the error)
        self._fingerprint: str | None = None
        self._warm: set[float] = set()
        self.notes: list[str] = []
        if checkpoint is not None:
            self.name = f"{self.name}:{Path(checkpoint).stem.split('.')[0]}"

    # what a subclass provides
    def build(self, state_dict: dict, quality: Quality):
        """A network (not yet loaded) whose layout fits ``state_dict``."""
        raise NotImplementedError

    def read_weights(self, path: str | Path) -> dict:
        """The state_dict of a checkpoint file (never running code from it)."""
        return read_state_dict(path)

    def weights_path(self, quality: Quality) -> Path:
        """The checkpoint file of ``quality``: the --checkpoint file, else the manifest."""
        if self.checkpoint is not None:
            return Path(self.checkpoint)
        manifest = manifest_for(self.name)
        entry = manifest.entry(quality) if manifest else None
        if entry is None:
            raise CodecUnavailable(self._no_weights_message(quality))
        verify_entry(entry, self.name)
        return Path(entry.path)

    def weights_identity(self, quality: Quality) -> str:
        """What names the weights of ``quality`` without loading them (a sha256)."""
        if self.checkpoint is not None:
            return sha256_of(self.checkpoint)
        manifest = manifest_for(self.name)
        entry = manifest.entry(quality) if manifest else None
        if entry is None:
            return "absent"
        return entry.sha256 or (sha256_of(entry.path) if entry.path else entry.url or "")

    def _no_weights_message(self, quality: Quality) -> str:
        return (f"no weights for {self.name} at quality {quality:g}: pass --checkpoint FILE,"
                f" or register the file with `harness checkpoints add {self.name} --quality"
                f" {quality:g} --path FILE`")

    def missing_weights(self, quality: Quality, check: bool = False) -> str | None:
        """None when the weights of ``quality`` are on this machine, else how to get them.

        Reads the manifest only: no file is loaded, hashed or downloaded.
        """
        path = self._local_weights(quality)
        return None if path is not None and path.is_file() else self._no_weights_message(quality)

    def _local_weights(self, quality: Quality) -> Path | None:
        """The --checkpoint file or the manifest's path for ``quality`` (not checked)."""
        if self.checkpoint is not None:
            return Path(self.checkpoint)
        manifest = manifest_for(self.name)
        entry = manifest.entry(quality) if manifest else None
        return Path(entry.path) if entry is not None and entry.path else None

    def quick_availability(self) -> Availability:
        from importlib.util import find_spec

        for module in ("torch", "compressai"):  # installed, without the seconds of importing
            if find_spec(module) is None:
                return Availability(False, f"{module} is not installed: pip install compressai")
        return Availability(True)

    def quality_notes(self, check: bool = False) -> list[str]:
        notes = []
        for quality in self.qualities:
            missing = self.missing_weights(quality, check)
            if missing:
                notes.append(missing)
        return notes

    # the contract
    def availability(self) -> Availability:
        installed = self.quick_availability()
        if not installed.ok or self.device == "cpu":
            return installed  # the seconds of importing torch and compressai are the workers'
        import torch

        try:
            torch.device(self.device)
        except RuntimeError:
            return Availability(False, f"device {self.device!r} (--device or $HARNESS_DEVICE)"
                                       " is not a torch device; use cpu, cuda, cuda:N or mps")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            return Availability(False, "--device cuda asked, but no CUDA device is here")
        return Availability(True)

    def check_quality(self, quality: Quality) -> Quality:
        if self.checkpoint is None and float(quality) not in {float(q) for q in self.qualities}:
            raise ValueError(f"{self.name} has quality points {list(self.qualities)};"
                             f" got {quality}")
        return quality

    def payload_size(self, bitstream: bytes) -> int:
        return payload_bytes(bitstream)

    def prepare(self, quality: Quality) -> None:
        """Fetch and strictly load the weights now, so a bad file stops the run early."""
        self.fetch(quality)
        self.model(quality)

    def fetch(self, quality: Quality) -> None:
        """Download the weights if need be and check them against their manifest
        (sha256); the workers load them, so the parent needs neither torch nor the
        seconds of a load. A file that does not fit is each task's error row."""
        available = self.availability()  # callers that skip it still get its reason
        if not available.ok:
            raise CodecUnavailable(f"{self.name}: {available.reason}")
        self.weights_path(quality)

    def fingerprint(self) -> str:
        """Hashes of the weights, code versions and device (computed once per process)."""
        if self._fingerprint is None:
            hashes = [self.weights_identity(q) for q in self.qualities]
            self._fingerprint = fingerprint_of(
                self.name, "learned", FORMAT_VERSION, type(self).__name__,
                installed_version("compressai"), installed_version("torch"), self.device,
                hashes)
        return self._fingerprint

    def model(self, quality: Quality):
        """The network of ``quality``, loaded strictly, CDFs ready, in eval mode."""
        key = float(quality)
        if key not in self._models:
            file = self._file_state(quality)
            refused = self._refused.get(key)
            if refused is not None and refused[0] == file:
                raise refused[1]  # the same file fails the same way: say so at once
            try:
                self._models[key] = self._load(quality)
            except CheckpointError as exc:
                self._refused[key] = (file, exc)
                raise
        return self._models[key]

    def _file_state(self, quality: Quality) -> tuple | None:
        """The weights file of ``quality`` as :func:`~harness.checkpoints.file_state`
        tells it apart; None if not known or not there."""
        path = self._local_weights(quality)
        if path is None:
            return None
        try:
            return file_state(path)
        except OSError:
            return None

    def _load(self, quality: Quality):
        """The network of ``quality`` read from its file (see :meth:`model`)."""
        path = self.weights_path(quality)
        state_dict = self.read_weights(path)
        # a strict load sets every value: building need not initialise them
        with without_initialisation() if self.loads_strictly else nullcontext():
            net = self.build(state_dict, quality)
        self.load_weights(net, state_dict, path)
        for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
            require_finite(tensor, f"{path.name}, tensor {name}")
        if net.update(force=False):
            self.notes.append(f"{path.name}: entropy-model CDF tables were absent and"
                              " have been rebuilt with update()")
            print(f"note: {self.notes[-1]}", file=sys.stderr)
        return self._ready(net)

    def _ready(self, net):
        """``net`` on the device, in eval mode, its modules' outputs checked for NaN."""

        # everything the coder gets comes out of a top-level module (g_a, h_s, ...)
        for name, child in net.named_children():
            child.register_forward_hook(_require_finite_output(name))
        # no autograd for its weights; never the process-wide switch, which would stop
        # the training of whoever imported the harness (encode, decode and forward run
        # under inference_mode anyway)
        net.requires_grad_(False)
        return net.eval().to(self.device)

    def random_network(self, quality: Quality):
        """The network of ``quality`` in its released layout, randomly initialised
        (complexity is the architecture's: profiles need no weights)."""
        raise NotImplementedError(f"{self.name} has no released layout to build")

    def use_random_weights(self, quality: Quality) -> None:
        """Code ``quality`` with :meth:`random_network` instead of loading weights: the
        same weights in every process (seeded), so one process decodes another's bytes."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = self.random_network(quality)
        net.update(force=True)
        self._models[float(quality)] = self._ready(net)

    def load_weights(self, net, state_dict: dict, path: Path) -> None:
        """Load ``state_dict`` into ``net``: strictly, a mismatch refused with its diff."""
        load_strict(net, state_dict, str(path), hint=lambda: self.layout_hint(state_dict))

    def layout_hint(self, state_dict: dict) -> str:
        return ""

    def memory_bytes(self, quality: Quality, pixels: int) -> int:
        """The network (twice its weights file: the state_dict read, the module built;
        ``network_bytes`` when the file is not known here) and its feature maps."""
        path = self._local_weights(quality)
        network = 2 * path.stat().st_size if path is not None and path.is_file() else (
            self.network_bytes)
        return super().memory_bytes(quality, pixels) + network + (
            self.activation_bytes_per_pixel * pixels)

    def release_models(self) -> None:
        self._models.clear()
        self._warm.clear()
        import gc

        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def warm_up(self, quality: Quality) -> None:
        """Load the network and, unless a network of its layout has run in this process
        already, run it once on a small image (first calls are slow)."""
        if float(quality) not in self._warm:
            net = self.model(quality)
            layout = (self.device, type(net), tuple(tuple(p.shape) for p in net.parameters()))
            if layout not in _LAYOUTS_RUN:
                blank = np.zeros((self.pad_multiple, self.pad_multiple, 3), np.uint8)
                self.decode(self.encode(blank, quality))
                _LAYOUTS_RUN.add(layout)
            self._warm.add(float(quality))

    def _synchronize(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()

    def to_tensor(self, image: np.ndarray):
        import torch
        import torch.nn.functional as F

        height, width = image.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(image).astype(np.float32) / 255.0)
        x = x.permute(2, 0, 1).unsqueeze(0).to(self.device)
        return F.pad(x, padding(height, width, self.pad_multiple, self.pad_minimum),
                     mode=self.pad_mode)

    def to_image(self, x_hat, height: int, width: int) -> np.ndarray:
        left, _, top, _ = padding(height, width, self.pad_multiple, self.pad_minimum)
        import torch

        cropped = x_hat[0, :, top:top + height, left:left + width]
        pixels = cropped.clamp(0, 1).mul(255).round().to("cpu", dtype=torch.uint8)
        return pixels.permute(1, 2, 0).contiguous().numpy()

    def encode(self, image: np.ndarray, quality: Quality) -> bytes:
        import torch

        check_image(image)
        net = self.model(self.check_quality(quality))
        with torch.inference_mode():
            out = net.compress(self.to_tensor(image))
        self._synchronize()
        strings = []
        for group in out["strings"]:
            if len(group) != 1:
                raise ValueError(f"expected one string per group for a batch of 1, got"
                                 f" {len(group)}")
            strings.append(bytes(group[0]))
        height, width = image.shape[:2]
        return pack(Bitstream(self.architecture, float(quality), height, width,
                              tuple(out["shape"]), tuple(strings)))

    def check_header(self, stream: Bitstream) -> None:
        """Refuse a header that does not fit this network or its payload.

        The native decoders trust what they are given (a latent larger than its string
        reads past the buffer), so every field is checked before they run.
        """
        from PIL import Image

        if stream.codec != self.architecture:
            raise ValueError(f"this bitstream was written by the {stream.codec!r} network;"
                             f" {self.name} is a {self.architecture!r} network")
        height, width = stream.height, stream.width
        if not (height >= 1 and width >= 1 and height * width <= Image.MAX_IMAGE_PIXELS):
            raise ValueError(f"the bitstream header claims a {height}x{width} image; an"
                             f" image has 1 to {Image.MAX_IMAGE_PIXELS} pixels")
        left, right, top, bottom = padding(height, width, self.pad_multiple, self.pad_minimum)
        padded = (height + top + bottom, width + left + right)
        shape = tuple(stream.shape)
        if len(shape) == 2 and all(isinstance(s, int) for s in shape):
            stride = self.latent_stride or (padded[0] // shape[0] if shape[0] else 0)
            expected = (padded[0] // stride, padded[1] // stride) if stride else None
            if shape != expected:
                raise ValueError(f"the bitstream header's latent shape {shape} does not fit"
                                 f" a {height}x{width} image"
                                 + (f" ({expected} expected)" if expected else ""))
        if not stream.strings or not all(stream.strings):
            raise ValueError("the bitstream holds an empty entropy-coded string; a coder"
                             " always writes at least its final state")

    def decode(self, bitstream: bytes) -> np.ndarray:
        import torch

        stream = unpack(bitstream)
        self.check_header(stream)
        net = self.model(stream.quality)
        shape = [torch.Size(s) if isinstance(s, tuple) else s for s in stream.shape]
        if all(isinstance(s, int) for s in shape):
            shape = torch.Size(shape)
        with torch.inference_mode():
            out = net.decompress([[s] for s in stream.strings], shape)
            image = self.to_image(out["x_hat"], stream.height, stream.width)
        self._synchronize()
        return image

    def forward(self, image: np.ndarray, quality: Quality):
        """The network's forward pass: (reconstruction uint8, estimated bpp)."""
        import torch

        net = self.model(quality)
        height, width = image.shape[:2]
        with torch.inference_mode():
            out = net(self.to_tensor(image))
        bits = sum(-torch.log2(v).sum().item() for v in out["likelihoods"].values())
        return self.to_image(out["x_hat"], height, width), bits / (height * width)


# --- CompressAI's zoo ----------------------------------------------------------------------

class CompressAIZoo(LearnedCodec):
    """A CompressAI zoo architecture at its published quality points.

    Weights come from the checkpoint manifest (``harness checkpoints add``), from the
    harness's cache of CompressAI's published files, or are downloaded from
    CompressAI's URLs (sha256 prefix in the file name verified) when online.
    """

    seconds_per_megapixel = 3.0  # convolutional: ~1 s a Kodak image
    network_bytes = 2**28

    architecture: str = ""
    metric: str = "mse"

    def build(self, state_dict: dict, quality: Quality):
        """The zoo network with the widths (N, M) the checkpoint's shapes give."""
        from compressai.zoo.image import model_architectures

        cls = model_architectures[self.architecture]
        if self.architecture.startswith("cheng2020"):
            key, widths = "g_a.0.conv1.weight", lambda: (state_dict[key].size(0),)
        else:
            key = "g_a.0.weight"
            widths = lambda: (state_dict[key].size(0), state_dict["g_a.6.weight"].size(0))  # noqa: E731
        try:
            return cls(*widths())
        except KeyError as exc:
            raise CheckpointMismatch(
                f"this checkpoint has no {exc.args[0]} key, which every {self.architecture}"
                f" has. {self.layout_hint(state_dict)}") from exc

    def random_network(self, quality: Quality):
        from compressai.zoo.image import cfgs, model_architectures

        return model_architectures[self.architecture](*cfgs[self.architecture][int(quality)])

    def weights_path(self, quality: Quality) -> Path:
        if self.checkpoint is not None:
            return Path(self.checkpoint)
        manifest = manifest_for(self.name)
        entry = manifest.entry(quality) if manifest else None
        if entry is not None:
            verify_entry(entry, self.name)
            return Path(entry.path)
        return self._published_weights(quality)

    def weights_identity(self, quality: Quality) -> str:
        identity = super().weights_identity(quality)
        if identity == "absent":  # CompressAI's file names carry their sha256 prefix
            return self.published_url(quality).rsplit("/", 1)[-1]
        return identity

    def missing_weights(self, quality: Quality, check: bool = False) -> str | None:
        missing = super().missing_weights(quality)
        if missing is None or self.checkpoint is not None:
            return missing
        url = self.published_url(quality)
        if self._cached_weights(url) is not None:
            return None
        return (f"no weights for {self.name} at quality {quality:g} here: {url} is fetched on"
                f" first use (online), or register a local copy with `harness checkpoints add"
                f" {self.name} --quality {quality:g} --path FILE`")

    def quality_notes(self, check: bool = False) -> list[str]:
        if check or self.checkpoint is not None or manifest_for(self.name) is not None:
            return super().quality_notes(check)
        # CompressAI's file names are known only by importing it, which takes seconds
        return ["weights: CompressAI's published files, fetched on first use;"
                " `harness codecs --check` says which are here"]

    def _cached_weights(self, url: str) -> Path | None:
        """The published file of ``url`` if it is here: in the harness's cache, or in torch
        hub's (``$TORCH_HOME/hub/checkpoints``), where CompressAI's own loader puts it."""
        from torch.hub import get_dir

        from harness.datasets import default_data_dir

        name = url.rsplit("/", 1)[-1]
        for folder in (default_data_dir() / "weights" / "compressai",
                       Path(get_dir()) / "checkpoints"):
            if (folder / name).is_file():
                return folder / name
        return None

    def published_url(self, quality: Quality) -> str:
        from compressai.zoo.image import model_urls

        return model_urls[self.architecture][self.metric][int(quality)]

    def _published_weights(self, quality: Quality) -> Path:
        import pooch

        from harness.datasets import default_data_dir

        url = self.published_url(quality)
        name = url.rsplit("/", 1)[-1]
        cache = default_data_dir() / "weights" / "compressai"
        path = self._cached_weights(url) or cache / name
        prefix = name.rsplit("-", 1)[-1].split(".")[0]
        if not path.is_file():
            try:
                pooch.retrieve(url, known_hash=None, fname=name, path=cache, progressbar=False)
            except Exception as exc:
                raise CodecUnavailable(
                    f"no weights for {self.name} at quality {quality:g}: {name} is not in"
                    f" {cache} and downloading {url} failed ({type(exc).__name__}). Put the"
                    f" file there, or register a local copy with `harness checkpoints add"
                    f" {self.name} --quality {quality:g} --path FILE`") from exc
        if not sha256_of(path).startswith(prefix):
            if path.parent != cache:  # torch hub's cache is not ours to clean
                raise CheckpointError(f"{path}: sha256 does not start with {prefix} as its"
                                      " name says; remove the file and run again")
            path.unlink()
            raise CheckpointError(f"{name}: sha256 does not start with {prefix} as its name"
                                  " says; the file was removed, download it again")
        return path

    def layout_hint(self, state_dict: dict) -> str:
        from compressai.zoo.image import model_architectures

        fits = []
        for name, cls in model_architectures.items():
            try:
                cls.from_state_dict(state_dict)  # strict: only an exact fit passes
            except Exception:
                continue
            fits.append(name)
        if fits:
            return f"this file fits the zoo architecture(s): {', '.join(fits)}"
        return "no CompressAI zoo architecture fits this file"


def _zoo_codec(architecture: str, metric: str, qualities: Sequence[int], description: str):
    suffix = "" if metric == "mse" else "-ms-ssim"
    return type(f"Zoo_{architecture}_{metric}".replace("-", "_"), (CompressAIZoo,), {
        "name": f"{architecture}{suffix}",
        "architecture": architecture,
        "metric": metric,
        # the factorized prior codes y (1/16); the others' header shape is z's (1/64)
        "latent_stride": 16 if architecture == "bmshj2018-factorized" else 64,
        "qualities": tuple(qualities),
        "description": f"{description}, CompressAI zoo, trained for {metric}",
    })


ZOO = {
    ("bmshj2018-factorized", "Balle et al. 2018 factorized prior", 8),
    ("bmshj2018-hyperprior", "Balle et al. 2018 scale hyperprior", 8),
    ("mbt2018-mean", "Minnen et al. 2018 mean-scale hyperprior", 8),
    ("mbt2018", "Minnen et al. 2018 joint autoregressive + hyperprior", 8),
    ("cheng2020-anchor", "Cheng et al. 2020 anchor", 6),
    ("cheng2020-attn", "Cheng et al. 2020 with attention", 6),
}
ZOO_CODECS = {
    codec.name: codec
    for architecture, description, top in sorted(ZOO)
    for metric in ("mse", "ms-ssim")
    for codec in [_zoo_codec(architecture, metric, range(1, top + 1), description)]
}
