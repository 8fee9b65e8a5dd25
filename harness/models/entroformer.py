"""Entroformer (Qian et al., ICLR 2022): reading the official checkpoints safely.

The official files are ``torch.save`` of a dict ``{"encode", "decode", "cit_he",
"cit_hd", "prob", "cit_ar", "cit_pn"}`` whose values are whole pickled modules.
:func:`read_official_checkpoint` reads such a file with a restricted unpickler: the
known class names of the official code and of torch's layers become inert stand-ins
(objects that only keep the attributes the pickle gives them), tensors are rebuilt
with torch's own tensor-rebuild functions, and any other global is refused with a
message naming it. Nothing in the file is ever executed. The result is one flat
state_dict with the seven prefixes above (``encode.encoder.0.weight`` ...).

The network and its coder are not part of this module yet.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from pathlib import Path

import torch

from harness.checkpoints import CheckpointError

PARTS = ("encode", "decode", "cit_he", "cit_hd", "prob", "cit_ar", "cit_pn")

#: classes of the official code, by module
OFFICIAL_CLASSES = {
    "module.ballenet": {"Balle2Encoder", "Balle2Decoder"},
    "module.ops": {"GDN", "GSDN", "Upsample", "UpPixelShuffle", "MaskedConv2d"},
    "module.entroformer": {"TransDecoder", "TransDecoder2", "TransHyperScale"},
    "module.entroformer_helper": {"Config", "Block", "AttentionBlock", "Attention",
                                  "PreNorm", "FeedForward"},
    "module.prob_model": {"Entropy"},
    "module.quant": {"SteQuant", "NoiseQuant"},
}
#: torch layer modules whose classes become stand-ins
TORCH_LAYER_MODULES = ("torch.nn.modules.", "torch.nn.parallel.")
TORCH_OTHER_CLASSES = {("torch.distributions.uniform", "Uniform")}

#: the only real callables a file may name: torch's tensor rebuilders and containers
SAFE_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"):
        torch._utils._rebuild_parameter_with_state,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
}
for _module in ("builtins", "__builtin__"):
    for _container in (set, frozenset, dict, list, tuple):
        SAFE_GLOBALS[(_module, _container.__name__)] = _container
for _name in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char",
              "Byte", "Bool"):
    SAFE_GLOBALS[("torch", f"{_name}Storage")] = getattr(torch, f"{_name}Storage")
for _dtype in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16",
               "int8", "uint8", "bool"):
    SAFE_GLOBALS[("torch", _dtype)] = getattr(torch, _dtype)


class StandIn:
    """An inert object in place of a pickled class: it only stores its state."""

    qualified_name = ""

    def __init__(self, *args, **kwargs):
        self._args = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<stand-in for {self.qualified_name}>"


def _stand_in(module: str, name: str) -> type:
    return type(name, (StandIn,), {"qualified_name": f"{module}.{name}"})


def _reconstructor(cls, base, state):
    """``copyreg._reconstructor`` restricted to stand-in classes."""
    if not (isinstance(cls, type) and issubclass(cls, StandIn)):
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return cls.__new__(cls)


class RestrictedUnpickler(pickle.Unpickler):
    """Maps the official and torch layer class names to stand-ins; refuses the rest."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stand_ins: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in SAFE_GLOBALS:
            return SAFE_GLOBALS[key]
        if key == ("copyreg", "_reconstructor"):
            return _reconstructor
        if key in (("builtins", "object"), ("__builtin__", "object")):
            return object
        known = (name in OFFICIAL_CLASSES.get(module, ())
                 or key in TORCH_OTHER_CLASSES
                 or (module.startswith(TORCH_LAYER_MODULES) and name[:1].isupper()))
        if known:
            if key not in self._stand_ins:
                self._stand_ins[key] = _stand_in(module, name)
            return self._stand_ins[key]
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: this checkpoint reader only accepts the"
            " classes of the official Entroformer code, torch layers and tensors")


class _RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` needs, with the restricted unpickler."""

    Unpickler = RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()


def _flatten(obj, prefix: str, out: dict) -> None:
    state = getattr(obj, "__dict__", {})
    non_persistent = state.get("_non_persistent_buffers_set", set()) or set()
    for kind in ("_parameters", "_buffers"):
        for name, value in (state.get(kind) or {}).items():
            if value is None or (kind == "_buffers" and name in non_persistent):
                continue
            out[f"{prefix}{name}"] = value.detach() if isinstance(value, torch.Tensor) \
                else value
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            _flatten(child, f"{prefix}{name}.", out)


def read_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The flat state_dict (``encode.*`` ... ``cit_pn.*``) of an official Entroformer file.

    Raises :class:`CheckpointError` for a file that names any other class or callable
    (nothing of it is run), or that is not a dict of the seven official modules.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read()
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False,
                         pickle_module=_RestrictedPickleModule)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path.name}: {exc}") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path.name}: cannot read it as a torch checkpoint"
                              f" ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or not set(PARTS) <= set(obj):
        found = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path.name}: an official Entroformer file is a dict of the"
                              f" modules {', '.join(PARTS)}; found {found}")
    out: dict[str, torch.Tensor] = {}
    for part in PARTS:
        module = obj[part]
        if not isinstance(module, StandIn):
            raise CheckpointError(f"{path.name}: {part} is not a pickled module")
        _flatten(module, f"{part}.", out)
    bad = [k for k, v in out.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path.name}: entries that are not tensors: {bad[:5]}")
    return out


__all__ = ["OFFICIAL_CLASSES", "PARTS", "RestrictedUnpickler", "StandIn",
           "read_official_checkpoint"]
