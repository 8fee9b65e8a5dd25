"""STF, WACNN and TCM as harness codecs, with the authors' released weights.

The networks are :mod:`harness.models`; their released checkpoints load unchanged
(``{"state_dict": ...}`` or bare, ``module.`` prefixes, any of CompressAI's
entropy-bottleneck naming conventions, the stale ``h_s.*`` entries of the STF/WACNN
files), strictly. The quality axis is the list of released lambdas (quality n = the
n-th lambda, ascending); the download links and lambdas ship with the package
(``harness/checkpoint_manifests/``). With the files at hand::

    harness checkpoints add stf --quality 1 --path stf_0018.pth.tar
    harness run --codecs stf tcm --datasets kodak

Padding: STF and WACNN need sides that are multiples of 64; TCM multiples of 128 and
at least 256 (its entropy model's Swin windows need latents above 8x8).
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from harness.checkpoints import CheckpointMismatch, Manifest, read_manifest
from harness.codec import Quality
from harness.codecs.learned import LearnedCodec

SHIPPED_MANIFESTS = Path(__file__).resolve().parents[1] / "checkpoint_manifests"


@cache
def released_checkpoints(codec: str) -> Manifest | None:
    """The shipped manifest of ``codec``: released files by quality (url, lambda, config)."""
    path = SHIPPED_MANIFESTS / f"{codec}.toml"
    return read_manifest(path) if path.is_file() else None


class ReleasedTransformerCodec(LearnedCodec):
    """A network of :mod:`harness.models` at the quality points of its released weights."""

    network: str = ""  # name in harness.models
    released: str = ""  # shipped manifest (its codec name)
    quality_label = "released lambda, 1 = lowest (harness/checkpoint_manifests)"
    latent_stride = 64  # the header's shape is z's

    def build(self, state_dict: dict, quality: Quality):
        """The network with the widths the checkpoint's shapes give.

        ``state_dict`` is brought to the network's names in place (the adapter loads
        the dict it passed here): ``module.`` prefixes, entropy-bottleneck names, and
        the stale entries the original loaders drop.
        """
        from harness.models import conform_state_dict, create, infer_config

        config = infer_config(self.network, state_dict)
        self._check_released_config(config, state_dict, quality)
        try:
            net = create(self.network, **config)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointMismatch(
                f"cannot build {self.network} with {config} from this checkpoint ({exc});"
                f" {self.layout_hint(state_dict)}") from exc
        for note in conform_state_dict(net, state_dict):
            self.notes.append(note)
            print(f"note: {self.name}: {note}", file=sys.stderr)
        return net

    def random_network(self, quality: Quality):
        from harness.models import create

        manifest = released_checkpoints(self.released)
        entry = manifest.entry(quality) if manifest else None
        return create(self.network, **(entry.config if entry else {}))

    def _check_released_config(self, config: dict, state_dict: dict, quality: Quality) -> None:
        """Refuse a manifest file whose widths are not those of the released model.

        (With ``--checkpoint`` the widths are whatever the file has.)
        """
        manifest = released_checkpoints(self.released)
        entry = manifest.entry(quality) if manifest and self.checkpoint is None else None
        if entry is None:
            return
        wrong = {k: v for k, v in entry.config.items() if k in config and config[k] != v}
        if wrong:
            found = ", ".join(f"{k}={config[k]}" for k in wrong)
            wanted = ", ".join(f"{k}={v}" for k, v in wrong.items())
            raise CheckpointMismatch(
                f"{self.name} quality {quality:g} is the released model with {wanted}; the"
                f" registered file has {found} ({self.layout_hint(state_dict)}). Register"
                " it under the codec of its size, or run it with --checkpoint FILE")

    def layout_hint(self, state_dict: dict) -> str:
        from harness.models import describe_layout

        return describe_layout(state_dict)

    def _no_weights_message(self, quality: Quality) -> str:
        message = super()._no_weights_message(quality)
        manifest = released_checkpoints(self.released)
        entry = manifest.entry(quality) if manifest else None
        if entry is None or not entry.url:
            return message
        lmbda = f" (lambda = {entry.lmbda:g})" if entry.lmbda is not None else ""
        return f"{message}. The released file for quality {quality:g}{lmbda} is at {entry.url}"


def _lambdas(codec: str) -> str:
    manifest = released_checkpoints(codec)
    return ", ".join(f"{e.lmbda:g}" for e in sorted(manifest.entries, key=lambda e: e.quality))


class STF(ReleasedTransformerCodec):
    name = "stf"
    network = released = "stf"
    qualities = (1, 2, 3, 4, 5, 6)
    pad_multiple = 64
    description = ("Zou et al. 2022 Symmetrical TransFormer (STF), released weights, MSE,"
                   f" lambda {_lambdas('stf')}")


class WACNN(ReleasedTransformerCodec):
    name = "wacnn"
    network = released = "wacnn"
    qualities = (1, 2, 3, 4)
    pad_multiple = 64
    description = ("Zou et al. 2022 window-attention CNN (WACNN), released weights, MSE,"
                   f" lambda {_lambdas('wacnn')}")


class TCM(ReleasedTransformerCodec):
    name = "tcm"
    network = released = "tcm"
    qualities = (1, 2, 3, 4, 5, 6)
    pad_multiple = 128
    pad_minimum = 256
    description = ("Liu et al. 2023 mixed Transformer-CNN (TCM) small, N=64, released"
                   f" weights, MSE, lambda {_lambdas('tcm')}")


class TCMLarge(TCM):
    name = "tcm-large"
    released = "tcm-large"
    qualities = (1,)
    description = ("Liu et al. 2023 mixed Transformer-CNN (TCM) large, N=128, released"
                   f" weights, MSE, lambda {_lambdas('tcm-large')}")
