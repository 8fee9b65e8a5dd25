"""Learned perceptual metrics: ``lpips`` (Zhang et al. 2018, v0.1, AlexNet) and ``dists``
(Ding et al. 2020), lower is better, on 8-bit RGB. Our own PyTorch code for both
networks (torchvision's AlexNet and VGG16 layouts); their weights are never downloaded:
they are read from a local folder, each file checked against its published sha256
before it is loaded (``torch.load(weights_only=True)``).

Where a file is looked for, in order: ``<data dir>/weights/metrics/`` (``$HARNESS_DATA``
sets the data dir), torch hub's ``checkpoints`` folder (where torchvision keeps its
backbones), and the copy an installed package ships (``lpips`` ships its linear layers,
``DISTS_pytorch`` its alpha/beta). A missing file makes the metric unavailable, with
one message naming the file, its sha256, its URL and where to put it.

- ``lpips``: x / 127.5 - 1, then (x - shift) / scale per channel; AlexNet's five ReLU
  outputs, each unit-normalised over channels; squared differences weighted per channel
  by LPIPS v0.1's linear layers, averaged over the image, summed over the five layers.
- ``dists``: x / 255 normalised with ImageNet's mean and std into VGG16 whose max-pools
  are L2 pools (3x3 Hann window, stride 2); for the input and the five stages, per
  channel, a structure term (means) and a texture term (variances and covariance),
  c1 = c2 = 1e-6, weighted by DISTS's alpha and beta (normalised to sum 1);
  DISTS = 1 - the weighted sum.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from harness.checkpoints import CheckpointError, load_strict, read_state_dict, sha256_of
from harness.metrics import rgb_tensor
from harness.metrics.registry import Metric


@dataclass(frozen=True)
class WeightFile:
    name: str  # the file's name in the weights folder
    sha256: str  # the whole digest, or the prefix torchvision publishes in its file names
    url: str
    source: str  # where that checksum is published
    package: tuple[str, str] | None = None  # (package, path inside it) of a shipped copy


WEIGHTS = {
    "alexnet": WeightFile(
        "alexnet-owt-7be5be79.pth", "7be5be79",
        "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "torchvision's file name (the first 8 hex digits of its sha256)"),
    "vgg16": WeightFile(
        "vgg16-397923af.pth", "397923af",
        "https://download.pytorch.org/models/vgg16-397923af.pth",
        "torchvision's file name (the first 8 hex digits of its sha256)"),
    "lpips-alex": WeightFile(
        "lpips-v0.1-alex.pth",
        "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"
        "alex.pth",
        "the RECORD of the lpips 0.1.4 wheel on PyPI (lpips/weights/v0.1/alex.pth)",
        ("lpips", "weights/v0.1/alex.pth")),
    "dists": WeightFile(
        "dists-weights.pt",
        "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
        "https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt",
        "the RECORD of the DISTS_pytorch 0.1 wheel on PyPI (DISTS_pytorch/weights.pt)",
        ("DISTS_pytorch", "weights.pt")),
}


def weights_dir() -> Path:
    from harness.datasets import default_data_dir

    return default_data_dir() / "weights" / "metrics"


def find(weights: WeightFile) -> Path | None:
    """Where ``weights`` is here, or None (nothing is hashed: see :func:`load`)."""
    from torch.hub import get_dir

    places = [weights_dir() / weights.name, Path(get_dir()) / "checkpoints" / weights.name]
    if weights.package:
        spec = importlib.util.find_spec(weights.package[0])
        if spec and spec.submodule_search_locations:
            places += [Path(p) / weights.package[1] for p in spec.submodule_search_locations]
    return next((p for p in places if p.is_file()), None)


def missing(files: list[WeightFile]) -> str | None:
    """One message naming every file of ``files`` that is not here, or None."""
    absent = [w for w in files if find(w) is None]
    if not absent:
        return None
    return ("needs " + "; ".join(
        f"{w.name} (sha256 {'' if len(w.sha256) == 64 else 'starting '}{w.sha256}, from"
        f" {w.url})"
        for w in absent) + f": put {'it' if len(absent) == 1 else 'them'} in {weights_dir()}"
        " (the harness downloads no weights)")


def wrong(weights: WeightFile, path: Path) -> str | None:
    """Why the file at ``path`` is not the published ``weights``, or None when it is."""
    digest = sha256_of(path)  # hashed once per process while the file is unchanged
    if digest.startswith(weights.sha256):
        return None
    return (f"{path} has sha256 {digest}, but the published {weights.name} has"
            f" {weights.sha256} ({weights.source}): it is another file, refused. Replace it"
            f" with {weights.url}")


def load(weights: WeightFile) -> dict:
    """The state_dict of ``weights``, after checking its sha256.

    Raises:
        CheckpointError: the file is absent, or is not the published one.
    """
    path = find(weights)
    if path is None:
        raise CheckpointError(missing([weights]))
    problem = wrong(weights, path)
    if problem:
        raise CheckpointError(problem)
    return read_state_dict(path)


class _Learned(Metric):
    higher_is_better = False
    needs, install = ("torch", "torchvision"), "pip install torchvision"
    files: tuple[str, ...] = ()

    def __init__(self):
        self._network = None

    def unavailable(self):
        files = [WEIGHTS[f] for f in self.files]
        return (super().unavailable() or missing(files)
                or next(filter(None, (wrong(w, find(w)) for w in files)), None))

    def network(self):
        if self._network is None:
            self._network = self.build()
        return self._network

    def compute(self, original, reconstruction):
        import torch

        with torch.inference_mode():
            return float(self.network()(rgb_tensor(original), rgb_tensor(reconstruction)))


def _backbone(kind: str):
    """torchvision's AlexNet or VGG16 convolutional part with the verified official
    weights (the file's classifier is not used)."""
    import torchvision

    features = getattr(torchvision.models, kind)(weights=None).features
    state = {k.removeprefix("features."): v for k, v in load(WEIGHTS[kind]).items()
             if k.startswith("features.")}
    load_strict(features, state, WEIGHTS[kind].name)
    return features.eval()


class LPIPSNetwork:
    # LPIPS v0.1's input scaling layer
    SHIFT, SCALE = (-0.030, -0.088, -0.188), (0.458, 0.448, 0.450)

    def __init__(self):
        import torch

        features = _backbone("alexnet")
        # up to each of AlexNet's five ReLUs
        self.stages = [features[a:b] for a, b in zip((0, 2, 5, 8, 10), (2, 5, 8, 10, 12))]
        linear = load(WEIGHTS["lpips-alex"])
        self.weights = [linear[f"lin{k}.model.1.weight"] for k in range(5)]
        self.shift = torch.tensor(self.SHIFT).view(1, 3, 1, 1)
        self.scale = torch.tensor(self.SCALE).view(1, 3, 1, 1)

    def features(self, x):
        h = (x / 127.5 - 1 - self.shift) / self.scale
        out = []
        for stage in self.stages:
            h = stage(h)
            out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def __call__(self, x, y):
        import torch.nn.functional as F

        return sum(F.conv2d((a - b) ** 2, w).mean()
                   for a, b, w in zip(self.features(x), self.features(y), self.weights))


class L2Pool:
    """sqrt of the squares low-passed by a 3x3 Hann window, stride 2 (DISTS's pooling)."""

    def __init__(self, channels: int):
        import torch

        window = torch.tensor([0.5, 1.0, 0.5])
        kernel = window[:, None] * window[None, :]
        self.kernel = (kernel / kernel.sum()).expand(channels, 1, 3, 3).contiguous()

    def __call__(self, x):
        import torch.nn.functional as F

        return (F.conv2d(x * x, self.kernel, stride=2, padding=1, groups=x.shape[1])
                + 1e-12).sqrt()


class DISTSNetwork:
    CHANNELS = (3, 64, 128, 256, 512, 512)
    POOLS = (4, 9, 16, 23)  # VGG16's max-pools before stages 2-5

    def __init__(self):
        import torch

        features = _backbone("vgg16")
        # the stages between the max-pools, which L2 pools replace
        self.stages = [features[a + 1:b] for a, b in zip((-1, *self.POOLS), (*self.POOLS, 30))]
        self.pools = [L2Pool(c) for c in self.CHANNELS[1:5]]
        head = load(WEIGHTS["dists"])
        total = head["alpha"].sum() + head["beta"].sum()
        self.alpha = torch.split(head["alpha"] / total, self.CHANNELS, dim=1)
        self.beta = torch.split(head["beta"] / total, self.CHANNELS, dim=1)
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(self, x):
        x = x / 255.0
        out = [x]
        h = (x - self.mean) / self.std
        for k, stage in enumerate(self.stages):
            if k:
                h = self.pools[k - 1](h)
            h = stage(h)
            out.append(h)
        return out

    def __call__(self, x, y):
        c1 = c2 = 1e-6
        similarity = 0.0
        for a, b, alpha, beta in zip(self.features(x), self.features(y), self.alpha, self.beta):
            mean_a, mean_b = a.mean((2, 3), keepdim=True), b.mean((2, 3), keepdim=True)
            structure = (2 * mean_a * mean_b + c1) / (mean_a**2 + mean_b**2 + c1)
            var_a = ((a - mean_a) ** 2).mean((2, 3), keepdim=True)
            var_b = ((b - mean_b) ** 2).mean((2, 3), keepdim=True)
            cov = (a * b).mean((2, 3), keepdim=True) - mean_a * mean_b
            texture = (2 * cov + c2) / (var_a + var_b + c2)
            similarity = similarity + (alpha * structure).sum() + (beta * texture).sum()
        return 1 - similarity


class LPIPS(_Learned):
    name, files = "lpips", ("alexnet", "lpips-alex")
    description = "LPIPS v0.1, AlexNet, on RGB (lower is better; local weights)"
    build = LPIPSNetwork


class DISTS(_Learned):
    name, files = "dists", ("vgg16", "dists")
    description = "DISTS, VGG16 with L2 pooling, on RGB (lower is better; local weights)"
    build = DISTSNetwork
