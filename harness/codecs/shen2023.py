"""Shen & Liu 2023 (STF + spatial-channel auto-regressive context + LRCP) as a codec.

The network is :class:`harness.models.shen2023.ShenLiu2023`; the one released checkpoint
(lambda = 0.0035, ``harness/checkpoint_manifests/shen2023.toml``) is quality 1. Files in
the released format (``{"state_dict": ...}``, ``module.`` prefixes, the legacy
entropy-bottleneck names) load strictly; a file that does not fit is refused with the
differences. ``lenient=True`` (CLI ``--lenient``) loads every entry whose name and shape
fit and reports each one skipped, the way the official loader (``strict=False``) would
silently do; results measured so are kept apart from strict ones (own fingerprint).

Bitstream: one rANS string for the 24 chunks of y in coding order, one for z; images are
padded with centred zeros to a multiple of 64 and cropped back.
"""

from __future__ import annotations

import sys

from harness.checkpoints import align_entropy_bottleneck_names
from harness.codec import fingerprint_of
from harness.codecs.transformers import ReleasedTransformerCodec, _lambdas

LAYOUT_KEY = "cc_mean_transforms2.0.0.weight"


class Shen2023(ReleasedTransformerCodec):
    name = "shen2023"
    seconds_per_megapixel = 40.0  # declared, on one core
    network = released = "shen2023"
    qualities = (1,)
    pad_multiple = 64
    accepted_options = ("checkpoint", "device", "lenient")
    description = ("Shen & Liu 2023 Swin-transformer codec with spatial-channel"
                   " auto-regressive context and LRCP, released weights, MSE,"
                   f" lambda {_lambdas('shen2023')}")

    def __init__(self, device: str | None = None, checkpoint: str | None = None,
                 lenient: bool = False):
        super().__init__(device=device, checkpoint=checkpoint)
        self.lenient = bool(lenient)
        self.loads_strictly = not self.lenient  # lenient: what the file lacks keeps its init
        self.skipped: list[str] = []

    def layout_hint(self, state_dict: dict) -> str:
        if any(k.removeprefix("module.") == LAYOUT_KEY for k in state_dict):
            return "this file looks like a Shen & Liu 2023 checkpoint (create('shen2023'))"
        return super().layout_hint(state_dict)

    def fingerprint(self) -> str:
        if self._fingerprint is None and self.lenient:
            self._fingerprint = fingerprint_of(super().fingerprint(), "lenient")
        return super().fingerprint()

    def load_weights(self, net, state_dict: dict, path) -> None:
        if not self.lenient:
            return super().load_weights(net, state_dict, path)
        self.skipped = load_lenient(net, state_dict)
        self.notes.append(f"{path.name}: lenient load, {len(self.skipped)} entries skipped"
                          + "".join(f"\n  skipped: {entry}" for entry in self.skipped))
        print(f"warning: {self.name}: {self.notes[-1]}", file=sys.stderr)


CDF_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


def load_lenient(net, state_dict: dict) -> list[str]:
    """Load the entries of ``state_dict`` that fit ``net``; the skipped ones, described.

    ``state_dict`` is in the network's names already (see ``build``). Entries missing
    from the file keep the network's values; entries the network lacks and entries of
    another shape are skipped.
    """
    expected = net.state_dict()
    state_dict = align_entropy_bottleneck_names(state_dict, set(expected))
    skipped, fitting = [], {}
    for key, value in state_dict.items():
        if key not in expected:
            skipped.append(f"{key} (not in the network)")
        elif (not key.endswith(CDF_BUFFERS)
              and tuple(value.shape) != tuple(expected[key].shape)):
            skipped.append(f"{key} (file {tuple(value.shape)},"
                           f" network {tuple(expected[key].shape)})")
        else:
            fitting[key] = value
    skipped.extend(f"{key} (missing from the file)" for key in expected if key not in state_dict)
    net.load_state_dict(fitting, strict=False)
    return skipped
