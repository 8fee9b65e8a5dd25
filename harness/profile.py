"""``harness profile``: the complexity of a learned codec, as papers report it.

For one input size: parameters (total and per part), multiply-accumulates per pixel
of the forward pass, of encoding and of decoding, peak memory of encoding and of
decoding, and median encode and decode times. Complexity is the architecture's, so
without a checkpoint the network is built in its released layout with random weights
(and the profile says so); with one, from the file.

How each figure is made:

- parameters: ``named_parameters()`` (each shared tensor once), per part by the name
  of the top-level module that holds it (:func:`part_of`);
- MACs: ``torch.utils.flop_counter.FlopCounterMode`` over the network's own calls
  (``forward``, ``compress``, ``decompress``), MACs = FLOPs / 2. It counts matrix
  products, convolutions and attention kernels; element-wise operations, normalisations
  and softmax are not counted, as in the papers' MAC figures, and neither is the range
  coder (native code);
- memory on CPU: the peak resident set size (sampled from /proc every millisecond)
  during the first encode, and the first decode, each in a fresh process, above the
  process's size once the network is loaded; on CUDA, ``torch.cuda.max_memory_allocated``
  above the allocation before the call;
- time: the median over ``runs`` calls of the codec's ``encode`` / ``decode`` (header,
  padding and range coding included) after one warm-up call; CUDA synchronised.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harness.metrics import bits_per_pixel

PARTS = ("analysis", "synthesis", "hyperprior", "context model / entropy parameters")
_ANALYSIS = ("g_a", "patch_embed", "layers", "encode")
_SYNTHESIS = ("g_s", "syn_layers", "end_conv", "decode")
_HYPER = ("h_a", "h_s", "h_mean_s", "h_scale_s", "entropy_bottleneck", "cit_he", "cit_hd",
          "prob")


def part_of(parameter: str) -> str:
    """The part a parameter belongs to, from its top-level module's name (``g_a3`` and
    ``g_a`` are both analysis; STF's ``layers`` are its analysis, ``syn_layers`` its
    synthesis; Entroformer's ``encode`` / ``decode`` / ``cit_he`` / ``cit_hd``)."""
    top = parameter.split(".", 1)[0]
    for part, names in (("analysis", _ANALYSIS), ("synthesis", _SYNTHESIS),
                        ("hyperprior", _HYPER)):
        if top in names or top.rstrip("0123456789") in names:
            return part
    return PARTS[3]


@dataclass
class Profile:
    codec: str
    weights: str  # the checkpoint, or "random (released layout)"
    height: int
    width: int
    device: str
    threads: int
    runs: int
    parameters: int = 0
    parameters_by_part: dict[str, int] = field(default_factory=dict)
    kmac_per_pixel: dict[str, float] = field(default_factory=dict)  # forward, encode, decode
    seconds: dict[str, float] = field(default_factory=dict)  # median encode, decode
    peak_memory_mib: dict[str, float] = field(default_factory=dict)  # encode, decode
    memory_measure: str = ""
    bpp: float = 0.0
    quality: float = 0.0  # the rate point whose network was profiled

    def as_dict(self) -> dict:
        return asdict(self)


def _network_and_codec(name: str, quality: float | None, checkpoint: str | None,
                       device: str):
    """(codec, network, quality): the codec coding with the file's weights, or with
    random ones in the released layout; ``quality`` defaults to the codec's first."""
    from harness.codecs.learned import LearnedCodec
    from harness.errors import UsageError
    from harness.registry import create_codec, new_codec

    if not isinstance(create_codec(name), LearnedCodec):
        raise UsageError(f"{name} is not a learned codec: a profile counts a network's"
                         " parameters and operations (time a classical codec with"
                         " `harness run`)")
    options = {"device": device} | ({"checkpoint": checkpoint} if checkpoint else {})
    codec = new_codec(name, **options)  # random weights must not reach the shared one
    if device != "cpu" and not (available := codec.availability()).ok:
        raise UsageError(f"cannot profile {name} on {device}: {available.reason}")
    quality = codec.qualities[0] if quality is None else quality
    try:
        codec.check_quality(quality)
    except ValueError as exc:
        raise UsageError(f"--quality: {exc}") from None
    if checkpoint is None:
        try:
            codec.use_random_weights(quality)
        except NotImplementedError as exc:
            raise UsageError(f"{exc}; pass --checkpoint FILE") from None
    return codec, codec.model(quality), quality


def test_image(height: int, width: int) -> np.ndarray:
    """A real photograph (the embedded sample set's coffee.png) resized to the size asked."""
    from PIL import Image

    from harness.datasets import resolve_dataset
    from harness.images import load_image

    sample = resolve_dataset("sample")
    coffee = next(ref for ref in sample.images if ref.image_id.startswith("coffee"))
    pixels = load_image(coffee.path).pixels
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.BICUBIC))


def _macs(call):
    """(multiply-accumulates of ``call``, what it returned)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        result = call()
    return counter.get_total_flops() / 2, result


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_above_baseline(call, device: str) -> float:
    """MiB that ``call`` needs above what the process holds before it."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        call()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    before = peak = _rss_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        call()
    finally:
        done.set()
        sampler.join()
    return (max(peak, _rss_bytes()) - before) / 2**20


_MEMORY_WORKER = """
import json, sys, numpy as np, torch
from harness.profile import _network_and_codec, peak_above_baseline
name, quality, checkpoint, device, threads, phase, path = json.loads(sys.argv[1])
torch.set_num_threads(threads)
codec, _, quality = _network_and_codec(name, quality, checkpoint, device)
if phase == "encode":
    image = np.load(path)
    print(peak_above_baseline(lambda: codec.encode(image, quality), device))
else:
    data = open(path, "rb").read()
    print(peak_above_baseline(lambda: codec.decode(data), device))
"""


def _memory_in_fresh_process(name, quality, checkpoint, device, threads, phase,
                             path) -> float:
    args = json.dumps([name, quality, checkpoint, device, threads, phase, str(path)])
    done = subprocess.run([sys.executable, "-c", _MEMORY_WORKER, args], capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {phase} memory probe failed: {done.stderr[-1000:]}")
    return float(done.stdout.split()[-1])


def profile(name: str, height: int = 512, width: int = 768, device: str = "cpu",
            checkpoint: str | None = None, quality: float | None = None, runs: int = 3,
            threads: int = 1, memory: bool = True) -> Profile:
    """The complexity profile of learned codec ``name`` at ``height`` x ``width``."""
    import torch

    from harness.errors import UsageError

    if runs < 1 or height < 1 or width < 1 or threads < 1:
        raise UsageError("--runs, --threads and the size must be at least 1")
    torch.set_num_threads(threads)
    codec, net, quality = _network_and_codec(name, quality, checkpoint, device)
    result = Profile(codec.name, checkpoint or "random (released layout)", height, width,
                     device, threads, runs, quality=float(quality))
    for parameter_name, parameter in net.named_parameters():
        part = part_of(parameter_name)
        result.parameters_by_part[part] = (result.parameters_by_part.get(part, 0)
                                           + parameter.numel())
    result.parameters = sum(result.parameters_by_part.values())

    net.requires_grad_(False)  # the flop counter's module tracker needs no autograd here
    image = test_image(height, width)
    x = codec.to_tensor(image)
    pixels = height * width
    with torch.inference_mode():
        macs = {"forward": _macs(lambda: net(x))[0]}
        macs["encode"], coded = _macs(lambda: net.compress(x))
        macs["decode"] = _macs(lambda: net.decompress(coded["strings"], coded["shape"]))[0]
    result.kmac_per_pixel = {phase: value / pixels / 1e3 for phase, value in macs.items()}

    data = codec.encode(image, quality)  # the warm-up
    codec.decode(data)
    result.bpp = bits_per_pixel(len(data), height, width)
    for phase, call in (("encode", lambda: codec.encode(image, quality)),
                        ("decode", lambda: codec.decode(data))):
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        result.seconds[phase] = statistics.median(times)

    if memory:
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "image.npy", image)
            (Path(tmp) / "stream.bin").write_bytes(data)
            for phase, path in (("encode", Path(tmp) / "image.npy"),
                                ("decode", Path(tmp) / "stream.bin")):
                result.peak_memory_mib[phase] = _memory_in_fresh_process(
                    name, quality, checkpoint, device, threads, phase, path)
        result.memory_measure = ("CUDA max_memory_allocated above the loaded network"
                                 if device.startswith("cuda") else
                                 "peak RSS of the first call in a fresh process, above the"
                                 " loaded network")
    return result


def format_text(p: Profile) -> str:
    lines = [f"{p.codec} at {p.height}x{p.width} on {p.device}, {p.threads} thread(s);"
             f" weights: {p.weights}",
             f"  parameters       {p.parameters / 1e6:10.2f} M"]
    for part in PARTS:
        if part in p.parameters_by_part:
            lines.append(f"    {part:34s} {p.parameters_by_part[part] / 1e6:8.2f} M")
    for phase, value in p.kmac_per_pixel.items():
        lines.append(f"  kMAC/pixel {phase:8s} {value:10.1f}")
    for phase, value in p.seconds.items():
        lines.append(f"  {phase} time      {value:10.3f} s (median of {p.runs})")
    for phase, value in p.peak_memory_mib.items():
        lines.append(f"  {phase} memory    {value:10.1f} MiB")
    if p.memory_measure:
        lines.append(f"  memory: {p.memory_measure}")
    lines.append("  MACs: matrix products, convolutions, attention (torch's flop counter);"
                 " element-wise ops, normalisation, softmax and the range coder not counted")
    return "\n".join(lines)
