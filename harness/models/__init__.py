"""Transformer-based learned codecs whose released checkpoints load unchanged.

``create(name, **config)`` builds a network with the keyword arguments of the
original constructor:

- ``"stf"``: Symmetrical TransFormer (Zou et al. 2022), released configuration by default;
- ``"wacnn"``: the window-attention CNN released with it, ``WACNN(N=192, M=320)``;
- ``"tcm"``: the mixed Transformer-CNN codec (Liu et al. 2023), ``N=64`` (small) or
  ``N=128`` (large, the default), ``M=320``;
- ``"tic"``: Transformer-based Image Compression (Lu et al. 2022), ``revision="2022"``
  (the released checkpoint's layout) or ``"head"``;
- ``"shen2023"``: STF with the spatial-channel context model and LRCP (Shen & Liu 2023);
- ``"entroformer"``: Entroformer (Qian et al. 2022), ``na="unidirectional"`` (sequential)
  or ``"bidirectional"`` (checkerboard).

Their ``state_dict()`` keys, shapes, buffers and order are those of the original
networks, and the arithmetic follows the original order of operations, so that the
same weights give the same reconstructions and the same bytes (Entroformer: the same
reconstructions; its coder is ours, see :mod:`harness.models.entroformer`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, MutableMapping

MODELS = {
    "stf": "harness.models.stf:SymmetricalTransformer",
    "wacnn": "harness.models.wacnn:WACNN",
    "tcm": "harness.models.tcm:TCM",
    "tic": "harness.models.tic:TIC",
    "shen2023": "harness.models.shen2023:ShenLiu2023",
    "entroformer": "harness.models.entroformer:Entroformer",
}


def model_class(name: str):
    try:
        module, _, attribute = MODELS[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None
    return getattr(importlib.import_module(module), attribute)


def create(name: str, **config):
    """A randomly initialised network ``name`` built with ``config`` (original keywords)."""
    return model_class(name)(**config)


def _shape(state_dict: Mapping, key: str) -> tuple[int, ...] | None:
    value = state_dict.get(key)
    if value is None:
        value = state_dict.get(f"module.{key}")
    return tuple(value.shape) if value is not None else None


def infer_config(name: str, state_dict: Mapping) -> dict:
    """The constructor arguments a released ``state_dict`` of ``name`` was made with.

    STF's released files all use the default configuration; WACNN's widths come from
    ``g_a.0`` (N) and ``g_a.7`` (M); TCM's from ``g_a.0.conv1`` (2N) and ``g_a.9`` (M);
    Entroformer's context model (``na``) from the start token only the sequential one has.
    Keys that are absent leave the defaults (a strict load then says what is missing).
    """
    if name == "wacnn":
        n, m = _shape(state_dict, "g_a.0.weight"), _shape(state_dict, "g_a.7.weight")
        return {k: v[0] for k, v in (("N", n), ("M", m)) if v is not None}
    if name == "tcm":
        config = {}
        if (wide := _shape(state_dict, "g_a.0.conv1.weight")) is not None:
            config["N"] = wide[0] // 2
        if (latent := _shape(state_dict, "g_a.9.weight")) is not None:
            config["M"] = latent[0]
        return config
    if name == "entroformer":
        if _shape(state_dict, "encode.encoder.0.weight") is None:
            return {}
        sequential = _shape(state_dict, "cit_ar.sos_pred_token") is not None
        return {"na": "unidirectional" if sequential else "bidirectional"}
    model_class(name)  # refuses unknown names
    return {}


def describe_layout(state_dict: Mapping) -> str:
    """Which of these networks a state_dict looks like, as a hint for a failed load."""
    if _shape(state_dict, "patch_embed.proj.weight") is not None:
        return "this file looks like an STF checkpoint (create('stf'))"
    if _shape(state_dict, "atten_mean.0.0.in_conv.weight") is not None:
        config = infer_config("tcm", state_dict)
        args = ", ".join(f"{k}={v}" for k, v in config.items())
        size = {64: "small", 96: "middle", 128: "large"}.get(config.get("N"), "")
        return f"this file looks like a TCM{' ' + size if size else ''} checkpoint ({args})"
    if (na := infer_config("entroformer", state_dict).get("na")) is not None:
        return f"this file looks like an Entroformer checkpoint (create('entroformer', na={na!r}))"
    if _shape(state_dict, "g_a.4.conv_a.0.conv.0.weight") is not None:
        args = ", ".join(f"{k}={v}" for k, v in infer_config("wacnn", state_dict).items())
        return f"this file looks like a WACNN checkpoint ({args})"
    return "this file is not an STF, WACNN, TCM or Entroformer checkpoint"


def conform_state_dict(net, state_dict: MutableMapping) -> list[str]:
    """Rename a released ``state_dict`` in place to ``net``'s conventions; notes returned.

    See :meth:`harness.models.layers.SliceCompressionModel.conform_state_dict`.
    """
    return net.conform_state_dict(state_dict)


__all__ = ["MODELS", "conform_state_dict", "create", "describe_layout", "infer_config",
           "model_class"]
