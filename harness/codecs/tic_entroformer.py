"""TIC and Entroformer as harness codecs.

``tic``: the network of :mod:`harness.models.tic`; the released quality-3 file (the
"2022" layout, with its unused CNN modules) loads strictly; a file in the later layout
("head", depths 2, 4, 6, 2, 2) is recognised by its keys. Sides are padded to multiples
of 128. The rate reported is that of the real bitstream, which differs from the
likelihood estimate of the network's forward pass (see :mod:`harness.models.tic`).

``entroformer`` (the sequential context model, the paper's) and ``entroformer-parallel``
(the checkerboard one): :mod:`harness.models.entroformer`. The official files are
pickled whole modules, read with a restricted unpickler that never runs code from the
file; a plain state_dict with the same keys loads too. The authors released their MSE
models as one Google Drive folder without saying which file has which lambda or context
model, so no quality points are shipped: register each file under the quality you give
it (1 = lowest rate), e.g. ``harness checkpoints add entroformer --quality 1 --path
model_epoch_500.pth --lambda 0.02``; a file of the other context model is refused with
the codec it fits. Images are padded to multiples of 64 by repeating their borders, as
the official evaluation does. Our bitstreams are not byte-compatible with the official
``.bin`` files (see :mod:`harness.models.entroformer`).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from harness.checkpoints import CheckpointError, CheckpointMismatch, manifest_for, read_state_dict
from harness.codec import Quality
from harness.codecs.learned import LearnedCodec
from harness.codecs.transformers import ReleasedTransformerCodec, released_checkpoints


def _shape(state_dict: Mapping, key: str):
    for name in (key, f"module.{key}"):
        if name in state_dict:
            return tuple(state_dict[name].shape)
    return None


def tic_config(state_dict: Mapping) -> dict:
    """N, M and the layout (``revision``) a TIC state_dict was made with."""
    config = {}
    if (first := _shape(state_dict, "g_a0.weight")) is not None:
        config["N"] = first[0]
    if (last := _shape(state_dict, "g_a6.weight")) is not None:
        config["M"] = last[0]
    head = any(k.split("module.")[-1].startswith("g_a1.residual_group.blocks.1.")
               for k in state_dict)
    config["revision"] = "head" if head else "2022"
    return config


class TIC(ReleasedTransformerCodec):
    name = "tic"
    seconds_per_megapixel = 30.0  # declared, on one core
    network = released = "tic"
    qualities = (3,)
    pad_multiple = 128
    description = ("Lu et al. 2022 Transformer-based Image Compression (TIC), the released"
                   " quality-3 weights (lambda 0.0067, MSE), serial context-model coder")

    def build(self, state_dict: dict, quality: Quality):
        from harness.models import create

        config = tic_config(state_dict)
        self._check_released_config(config, state_dict, quality)
        try:
            net = create("tic", **config)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointMismatch(f"cannot build tic with {config} ({exc});"
                                     f" {self.layout_hint(state_dict)}") from exc
        for note in net.conform_state_dict(state_dict):
            self.notes.append(note)
            print(f"note: {self.name}: {note}", file=sys.stderr)
        return net

    def layout_hint(self, state_dict: dict) -> str:
        if _shape(state_dict, "g_a0.weight") is None:
            return "this file is not a TIC checkpoint (no g_a0.weight)"
        config = tic_config(state_dict)
        return ("this file looks like a TIC checkpoint ("
                + ", ".join(f"{k}={v}" for k, v in config.items()) + ")")


ENTROFORMER_FOLDER = "https://drive.google.com/drive/folders/1pBljoMLghpaGS0t5iywuUkMwCTV0GeSe"


class EntroformerSequential(LearnedCodec):
    name = "entroformer"
    seconds_per_megapixel = 130.0  # declared, on one core
    na = "unidirectional"
    pad_multiple = 64
    latent_stride = 64  # the header's shape is z's
    pad_mode = "replicate"
    quality_label = "your numbering of the registered files, 1 = lowest rate"
    description = ("Qian et al. 2022 Entroformer, sequential (causal) transformer context"
                   " model, official MSE weights, incremental decoder")

    @property
    def qualities(self) -> tuple[float, ...]:  # type: ignore[override]
        """The qualities registered in the manifest (1 when there are none yet)."""
        manifest = manifest_for(self.name) or released_checkpoints(self.name)
        registered = sorted(e.quality for e in manifest.entries) if manifest else []
        return tuple(registered) or (1,)

    def read_weights(self, path) -> dict:
        """A plain state_dict, else an official pickled-module file (restricted reader)."""
        from harness.models.entroformer import read_official_checkpoint

        try:
            return read_state_dict(path)
        except CheckpointError:
            return read_official_checkpoint(path)

    def build(self, state_dict: dict, quality: Quality):
        from harness.models import create, infer_config

        variant = infer_config("entroformer", state_dict).get("na")
        if variant is not None and variant != self.na:
            other = {"unidirectional": ("sequential", "entroformer"),
                     "bidirectional": ("checkerboard", "entroformer-parallel")}[variant]
            raise CheckpointMismatch(f"this file is the {other[0]} Entroformer (na={variant});"
                                     f" run it as codec {other[1]}")
        return create("entroformer", na=self.na)

    def random_network(self, quality: Quality):
        from harness.models import create

        return create("entroformer", na=self.na)

    def layout_hint(self, state_dict: dict) -> str:
        from harness.models import describe_layout

        return describe_layout(state_dict)

    def _no_weights_message(self, quality: Quality) -> str:
        return (f"{super()._no_weights_message(quality)}. The authors' MSE models are in"
                f" {ENTROFORMER_FOLDER} (their lambdas and context models are not listed"
                " there; the file says which context model it has)")


class EntroformerParallel(EntroformerSequential):
    name = "entroformer-parallel"
    seconds_per_megapixel = 20.0  # declared, on one core
    na = "bidirectional"
    description = ("Qian et al. 2022 Entroformer, checkerboard (two-pass) transformer"
                   " context model, official MSE weights")
