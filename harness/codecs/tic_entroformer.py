"""TIC and Entroformer as harness codecs.

``tic``: the network of :mod:`harness.models.tic`; the released quality-3 file (the
"2022" layout, with its unused CNN modules) loads strictly; a file in the later layout
("head", depths 2, 4, 6, 2, 2) is recognised by its keys. Sides are padded to multiples
of 128. The rate reported is that of the real bitstream, which differs from the
likelihood estimate of the network's forward pass (see :mod:`harness.models.tic`).

``entroformer``: :mod:`harness.models.entroformer`; the official files are pickled
whole modules, read with a restricted unpickler that never runs code from the file.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from harness.checkpoints import CheckpointMismatch
from harness.codec import Quality
from harness.codecs.transformers import ReleasedTransformerCodec


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
