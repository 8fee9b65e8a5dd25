"""Entroformer (Qian et al., ICLR 2022): the network and its official checkpoints.

:class:`Entroformer` is the whole model of the official code as one module. Its
children are the seven official modules under their official names (``encode``,
``decode``, ``cit_he``, ``cit_hd``, ``prob``, ``cit_ar``, ``cit_pn``), with the
official sub-module trees, so its flat state_dict is that of an official checkpoint.
``na="unidirectional"`` is the sequential (causal raster-order) context model,
``na="bidirectional"`` the checkerboard one. ``forward`` computes what the official
evaluation computes: rounding ``floor(v + 0.5)`` clamped to the table, interleaved
qkv attention with 2-D relative-position buckets scaled by the model width, top-k
score filtering, the discretised Gaussian y likelihood with its edge bins and the
per-channel Gaussian z likelihood. Input sides must be multiples of 64; the images
are not padded here.

The official files are ``torch.save`` of a dict ``{"encode", "decode", "cit_he",
"cit_hd", "prob", "cit_ar", "cit_pn"}`` whose values are whole pickled modules.
:func:`read_official_checkpoint` reads such a file with a restricted unpickler: the
known class names of the official code and of torch's layers become inert stand-ins
(objects that only keep the attributes the pickle gives them), tensors are rebuilt
with torch's own tensor-rebuild functions, and any other global is refused with a
message naming it. Nothing in the file is ever executed. The result is one flat
state_dict with the seven prefixes above (``encode.encoder.0.weight`` ...), which
:class:`Entroformer` loads strictly.

The coder (:meth:`Entroformer.compress` / :meth:`Entroformer.decompress`) is ours:
CompressAI's rANS in the official symbol order; z with one 16-bit table per channel
(:func:`quantised_cdfs`), y with fixed tables chosen by integer grid keys of each
element's parameters (:func:`grid_keys`, :func:`grid_table`), so that floats differing
in the last bits (thread count, CPU, GPU) do not change the tables. The order: z channel
by channel, then y position by position in raster order with the channels inner (the
checkerboard variant: all anchor positions, then the others). The official files instead
use torchac's arithmetic coder with float16 tables, whose underflow makes almost every y
symbol cost 16 bits; our bitstreams are therefore not byte-compatible with the official
``.bin`` files, and their rates are close to the likelihood estimate. The sequential
decoder is incremental (:class:`IncrementalContext`): each new position's attention rows
are computed against the cached keys and values of the positions before it, where the
official decoder re-runs the context transformer on the whole map for every position.
Encoder and decoder compute each position's parameters with the same code on tensors of
the same shapes; the reconstruction does not depend on them (``y_hat`` is rounded
without the means) and equals the forward pass's exactly.
"""

from __future__ import annotations

import functools
import io
import math
import pickle
import statistics
from collections import OrderedDict
from contextlib import closing
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from harness.checkpoints import CheckpointError, check_checkpoint_format
from harness.models.layers import (
    check_two_groups,
    compress_each,
    decompress_each,
    single_thread,
)

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
        raise RefusedGlobal(f"refusing to reconstruct {cls!r}")
    return cls.__new__(cls)


class RefusedGlobal(pickle.UnpicklingError):
    """The file names a class or callable the reader does not accept."""


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
        raise RefusedGlobal(
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
    check_checkpoint_format(path)  # before torch.load, which runs a TorchScript archive
    try:
        with path.open("rb") as handle:
            data = handle.read()
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False,
                         pickle_module=_RestrictedPickleModule)
    except RefusedGlobal as exc:
        raise CheckpointError(f"{path.name}: {exc}") from None
    except (pickle.UnpicklingError, OSError, RuntimeError, EOFError, ValueError) as exc:
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


# ---------------------------------------------------------------------------
# The network


def quantize(v: Tensor, table_range: int = 128) -> Tensor:
    """Evaluation rounding: ``floor(v + 0.5)`` clamped to ``[-table_range, table_range-1]``."""
    return torch.clamp(torch.floor(v + 0.5), -table_range, table_range - 1)


def _gauss_cdf(v: Tensor) -> Tensor:
    return 0.5 * torch.erfc(torch.tensor(-(2 ** -0.5)) * v)


class GDN(nn.Module):
    """Divisive normalisation with the parameters ``beta (C)`` and ``gamma (C, C)`` only."""

    def __init__(self, ch: int, inverse: bool = False, beta_min: float = 1e-6,
                 gamma_init: float = 0.1, reparam_offset: float = 2 ** -18):
        super().__init__()
        self.inverse = inverse
        self.pedestal = reparam_offset ** 2
        self.beta_bound = (beta_min + self.pedestal) ** 0.5
        self.gamma_bound = reparam_offset
        self.beta = nn.Parameter(torch.sqrt(torch.ones(ch) + self.pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(ch) + self.pedestal))

    def forward(self, x: Tensor) -> Tensor:
        ch = x.shape[1]
        beta = torch.max(self.beta, torch.tensor([self.beta_bound], device=x.device))
        beta = beta ** 2 - self.pedestal
        gamma = torch.max(self.gamma, torch.tensor([self.gamma_bound], device=x.device))
        gamma = (gamma ** 2 - self.pedestal).view(ch, ch, 1, 1)
        norm = torch.sqrt(nn.functional.conv2d(x ** 2, gamma, beta))
        return x * norm if self.inverse else x / norm


class _Upsample(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.transpose = nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2,
                                            output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.transpose(x)


class _Analysis(nn.Module):
    def __init__(self, channels: int, last_channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate([(3, channels), (channels, channels),
                                         (channels, channels), (channels, last_channels)]):
            layers.append(nn.Conv2d(cin, cout, 5, stride=2, padding=2))
            if i < 3:
                layers.append(GDN(cout))
        self.encoder = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)


class _Synthesis(nn.Module):
    def __init__(self, channels: int, last_channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate([(last_channels, channels), (channels, channels),
                                         (channels, channels), (channels, 3)]):
            layers.append(_Upsample(cin, cout))
            if i < 3:
                layers.append(GDN(cout, inverse=True))
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(x)


#: query rows per run when attention runs without autograd
QUERY_RUN = 64


def query_runs(n: int) -> list[tuple[int, int]]:
    """``n`` query rows cut into near-equal runs of at least :data:`QUERY_RUN` rows.

    Without autograd, attention runs a run of queries at a time: the official code
    builds (n, n, 64) position embeddings and (heads, n, n) scores for the whole map
    (600 MB and 57 MB at 768x512), which the allocator maps and the kernel zero-fills
    afresh for every layer. Every query row goes through the same kernels either way
    (runs are never below 16 rows, where the matrix products take other kernels), so
    the floats are the official ones.
    """
    count = max(1, n // QUERY_RUN)
    return [(i * n // count, (i + 1) * n // count) for i in range(count)]


class PositionTable:
    """The relative-position embeddings of a map, looked up a run of queries at a time."""

    def __init__(self, embedding: nn.Embedding, index: Tensor):
        self.embedding, self.index = embedding, index

    def rows(self, first: int, last: int) -> Tensor:
        """(last - first, n, dim_head): the embeddings seen by the queries first..last-1."""
        return self.embedding(self.index[first:last])


class _SelfAttention(nn.Module):
    """Multi-head attention with contextual 2-D relative positions and top-k filtering.

    The qkv projection is interleaved (feature ``3f + c`` is component ``c`` of inner
    feature ``f``); scores are ``(q.k + q.r) * dim ** -0.5`` with ``dim`` the model width.
    """

    def __init__(self, dim: int, heads: int, dim_head: int, buckets: int, scaled: bool,
                 has_table: bool):
        super().__init__()
        if buckets % 2 != 1:
            raise ValueError(f"the number of position buckets must be odd, not {buckets}")
        self.heads, self.dim_head, self.buckets = heads, dim_head, buckets
        self.scale = dim ** -0.5 if scaled else 1.0
        self.qkv = nn.Linear(dim, heads * dim_head * 3, bias=False)
        self.o = nn.Linear(heads * dim_head, dim, bias=False)
        if has_table:
            self.relative_attention_bias = nn.Embedding(buckets ** 2, dim_head)

    def position_table(self, height: int, width: int) -> PositionTable:
        """The embeddings of the key-minus-query offsets of an (height, width) map."""
        device = self.relative_attention_bias.weight.device
        rows = torch.arange(height, device=device).repeat_interleave(width)
        cols = torch.arange(width, device=device).repeat(height)
        dv = rows[None, :] - rows[:, None]
        dh = cols[None, :] - cols[:, None]
        half = self.buckets // 2
        index = (dv + half) * self.buckets + (dh + half)
        index = torch.where(dv.abs() + dh.abs() <= half, index, torch.zeros_like(index))
        return PositionTable(self.relative_attention_bias, index)

    def forward(self, x: Tensor, table: PositionTable, mask: Tensor | None, topk: int
                ) -> Tensor:
        b, n = x.shape[:2]
        inner = self.heads * self.dim_head
        qkv = self.qkv(x).reshape(b, -1, 3)
        q, k, v = (qkv[..., i].view(b, -1, self.heads, self.dim_head).transpose(1, 2)
                   for i in range(3))
        runs = [(0, n)] if torch.is_grad_enabled() else query_runs(n)
        out = torch.cat([self._rows(q[:, :, first:last], k, v, table.rows(first, last),
                                    None if mask is None else mask[first:last], topk)
                         for first, last in runs], dim=2)
        return self.o(out.transpose(1, 2).contiguous().view(b, -1, inner))

    def _rows(self, q: Tensor, k: Tensor, v: Tensor, table: Tensor, mask: Tensor | None,
              topk: int) -> Tensor:
        """Attention of the queries ``q`` (b, heads, rows, d) over all keys."""
        b, _, rows, _ = q.shape
        n = k.shape[2]
        scores = torch.matmul(q, k.transpose(3, 2))
        per_query = q.permute(2, 0, 1, 3).reshape(rows, b * self.heads, self.dim_head)
        context = torch.matmul(per_query, table.transpose(1, 2))
        context = context.view(rows, b, self.heads, n).permute(1, 2, 0, 3)
        scores = (scores + context) * self.scale
        lowest = -torch.finfo(scores.dtype).max
        if mask is not None:
            scores = scores.masked_fill(~mask, lowest)
        if topk != -1:
            kth = scores.topk(min(topk, n), dim=-1, largest=True, sorted=True)[0][..., -1:]
            scores = scores.masked_fill(~(scores >= kth), lowest)
        weights = torch.softmax(scores.float(), dim=-1).type_as(scores)
        return torch.matmul(weights, v)


class _AttentionLayer(nn.Module):
    def __init__(self, dim: int, attention: _SelfAttention):
        super().__init__()
        self.SelfAttention = attention
        self.layer_norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor, table: PositionTable, mask: Tensor | None, topk: int
                ) -> Tensor:
        return x + self.SelfAttention(self.layer_norm(x), table, mask, topk)


class _FeedForward(nn.Module):
    def __init__(self, dim: int, mlp_ratio: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.LeakyReLU(0.2),
                                 nn.Linear(dim * mlp_ratio, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class _PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class _Block(nn.Module):
    """Pre-LN attention and pre-LN feed-forward, both residual."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_ratio: int, dropout: float,
                 buckets: int, scaled: bool, has_table: bool):
        super().__init__()
        attention = _SelfAttention(dim, heads, dim_head, buckets, scaled, has_table)
        self.layer = nn.ModuleList([_AttentionLayer(dim, attention),
                                    _PreNorm(dim, _FeedForward(dim, mlp_ratio, dropout))])

    @property
    def attention(self) -> _SelfAttention:
        return self.layer[0].SelfAttention

    def forward(self, x: Tensor, table: PositionTable, mask: Tensor | None, topk: int
                ) -> Tensor:
        x = self.layer[0](x, table, mask, topk)
        return x + self.layer[1](x)


def _blocks(count: int, buckets: int, shared: bool, **kw) -> nn.ModuleList:
    return nn.ModuleList([_Block(buckets=buckets, has_table=(i == 0 or not shared), **kw)
                          for i in range(count)])


def _run(blocks: nn.ModuleList, x: Tensor, height: int, width: int, mask: Tensor | None,
         topk: int, shared: bool) -> Tensor:
    table = None
    for block in blocks:
        if table is None or not shared:
            table = block.attention.position_table(height, width)
        x = block(x, table, mask, topk)
    return x


def _tokens(x: Tensor) -> Tensor:
    return x.flatten(2).transpose(1, 2)


def _map(tokens: Tensor, height: int, width: int) -> Tensor:
    # a channels-last view with the official strides: the convolutions that follow
    # pick their kernel (and their rounding) by the input's strides
    b, _, c = tokens.shape
    return tokens.reshape(b, height, width, c).permute(0, 3, 1, 2)


class _UpPixelShuffle(nn.Module):
    def __init__(self, dim: int, factor: int = 2):
        super().__init__()
        self.conv2d = nn.Conv2d(dim, dim * factor ** 2, 3, padding=1)
        self.up = nn.PixelShuffle(factor)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.conv2d(x))


class HyperTransformer(nn.Module):
    """The hyper encoder (``down``) or decoder: transformer stages between resamplings.

    Stage buckets shrink from fine to coarse (``position_num``, then halved, made odd,
    at least 5); top-k halves from fine to coarse (at least 2). The decoder's stages are
    stored coarse to fine.
    """

    def __init__(self, cin: int, cout: int, down: bool, *, dim: int, depth: int, heads: int,
                 dim_head: int, mlp_ratio: int, dropout: float, position_num: int,
                 attn_topk: int, scale: int, rpe_shared: bool, att_scale: bool):
        super().__init__()
        self.down, self.rpe_shared = down, rpe_shared
        self.to_patch_embedding = nn.Linear(cin, dim)
        self.mlp_head = (nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, cout)) if cout
                         else nn.Identity())
        self.scale_blocks = nn.ModuleList([
            nn.Conv2d(dim, dim, 3, 2, 1) if down else _UpPixelShuffle(dim)
            for _ in range(scale)])
        per_stage = depth // 2 // (scale + 1)
        stages, buckets = [], position_num
        for _ in range(scale + 1):
            stages.append(_blocks(per_stage, buckets, rpe_shared, dim=dim, heads=heads,
                                  dim_head=dim_head, mlp_ratio=mlp_ratio, dropout=dropout,
                                  scaled=att_scale))
            buckets = max(buckets // 2 + (1 - buckets // 2 % 2), 5)
        self.trans_blocks = nn.ModuleList(stages if down else stages[::-1])
        if attn_topk != -1:
            topks = [max(attn_topk // 2 ** i, 2) for i in range(scale + 1)]
        else:
            topks = [-1] * (scale + 1)
        self.topks = topks if down else topks[::-1]

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[2:]
        tokens = self.to_patch_embedding(_tokens(x))
        for i, resample in enumerate(self.scale_blocks):
            tokens = _run(self.trans_blocks[i], tokens, height, width, None, self.topks[i],
                          self.rpe_shared)
            fmap = resample(_map(tokens, height, width))
            height, width = fmap.shape[2:]
            tokens = _tokens(fmap)
        tokens = _run(self.trans_blocks[-1], tokens, height, width, None, self.topks[-1],
                      self.rpe_shared)
        return _map(self.mlp_head(tokens), height, width)


class ContextTransformer(nn.Module):
    """The context model on ``y_hat``.

    Sequential: causal raster-order attention (diagonal included), the output shifted
    one position with a learned start token, so position t sees ``y_hat`` before t.
    Checkerboard: only the (i+j)-odd positions are seen (plus each query itself), and
    the output is zero there.
    """

    def __init__(self, cin: int, checkerboard: bool, *, dim: int, depth: int, heads: int,
                 dim_head: int, mlp_ratio: int, dropout: float, position_num: int,
                 attn_topk: int, rpe_shared: bool, att_scale: bool):
        super().__init__()
        self.checkerboard, self.rpe_shared, self.topk = checkerboard, rpe_shared, attn_topk
        self.to_patch_embedding = nn.Linear(cin, dim)
        self.mlp_head = nn.Identity()
        if not checkerboard:
            self.sos_pred_token = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = _blocks(depth, position_num, rpe_shared, dim=dim, heads=heads,
                              dim_head=dim_head, mlp_ratio=mlp_ratio, dropout=dropout,
                              scaled=att_scale)

    @staticmethod
    def anchors(height: int, width: int, device=None) -> Tensor:
        """The (i+j)-odd positions, decoded first from the hyperprior alone."""
        i = torch.arange(height, device=device)[:, None]
        j = torch.arange(width, device=device)[None, :]
        return (i + j) % 2 == 1

    def forward(self, y_hat: Tensor) -> Tensor:
        b, _, height, width = y_hat.shape
        n = height * width
        if self.checkerboard:
            seen = self.anchors(height, width, y_hat.device)
            y_hat = y_hat.masked_fill(~seen, 0.0)
            eye = torch.eye(n, dtype=torch.bool, device=y_hat.device)
            mask = seen.view(1, n).expand(n, n) | eye
        else:
            mask = torch.tril(torch.ones(n, n, device=y_hat.device)).bool()
        tokens = _run(self.blocks, self.to_patch_embedding(_tokens(y_hat)), height, width,
                      mask, self.topk, self.rpe_shared)
        out = self.mlp_head(tokens)
        if not self.checkerboard:
            out = torch.cat((self.sos_pred_token.expand(b, -1, -1), out[:, :-1, :]), dim=1)
        out = _map(out, height, width)
        if self.checkerboard:
            out.masked_fill_(seen, 0.0)  # in place, keeping the official strides
        return out


class ChannelGaussian(nn.Module):
    """The z prior: one Gaussian per channel, likelihoods floored at 1e-12."""

    def __init__(self, channels: int):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_sigma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, z_hat: Tensor) -> Tensor:
        d = (z_hat - self.mu).abs()
        inv_std = torch.exp(-self.log_sigma)
        upper = _gauss_cdf(inv_std * (-d + 0.5))
        lower = _gauss_cdf(inv_std * (-d - 0.5))
        return torch.clamp(upper - lower, min=1e-12)


def y_likelihood(y_hat: Tensor, params: Tensor, table_range: int = 128) -> Tensor:
    """Likelihood of ``y_hat`` under the discretised Gaussian of ``params``.

    ``params`` holds log-scales (clamped at -7) in its first ``C`` channels and means in
    the next ``C``. Inner bins are ``Phi((0.5-d)/s) - Phi((-0.5-d)/s)`` with ``d = |y-mu|``,
    floored at 1e-12; the lowest value uses ``log sigmoid((0.5-d)/s)`` and the highest
    ``-softplus((-0.5-d)/s)``, as in the official loss.
    """
    c = y_hat.shape[1]
    log_scales = torch.clamp(params[:, :c], min=-7.0)
    means = params[:, c:2 * c]
    d = (y_hat - means).abs()
    inv_std = torch.exp(-log_scales)
    plus_in = inv_std * (-d + 0.5)
    min_in = inv_std * (-d - 0.5)
    inner = torch.log(torch.clamp(_gauss_cdf(plus_in) - _gauss_cdf(min_in), min=1e-12))
    low_edge = plus_in - nn.functional.softplus(plus_in)
    high_edge = -nn.functional.softplus(min_in)
    is_high = (y_hat > table_range - 1 - 0.001).float()
    log_p = is_high * high_edge + (1.0 - is_high) * inner
    is_low = (y_hat < -table_range + 0.001).float()
    log_p = is_low * low_edge + (1.0 - is_low) * log_p
    return torch.exp(log_p)


# ---------------------------------------------------------------------------
# The coder

#: precision of the rANS tables (CompressAI's coder works with 16-bit frequencies)
CDF_TOTAL = 1 << 16


def quantised_cdfs(pmf: Tensor) -> list[list[int]]:
    """16-bit rANS tables for rows of 256 probabilities (values -128..127), as lists.

    As in the official float32 path, the cumulative sum is clipped at 1 and the table
    ends at 1, so the highest value takes what the others leave. (The official edge
    formula gives the highest value a likelihood near 1 whatever the mean, since it is
    applied to ``|y - mu|``; the rows sum to about 2, and normalising them would cost
    every element a bit.) The cumulative sum is scaled to ``2**16 - 257`` and every
    value is given one extra count, so none is uncodable however small its probability.
    Each table has 258 entries: the 256 values, then CompressAI's escape symbol, which
    is never used (every value is in the table) and gets the one spare count.
    """
    cumulative = torch.cumsum(pmf, dim=-1).clamp_(max=1.0)
    cumulative[:, -1] = 1.0
    spread = CDF_TOTAL - pmf.shape[-1] - 1
    steps = torch.arange(1, pmf.shape[-1] + 1, dtype=torch.int32)
    inner = torch.round(cumulative * spread).to(torch.int32) + steps
    rows = pmf.shape[0]
    table = torch.cat([torch.zeros(rows, 1, dtype=torch.int32), inner,
                       torch.full((rows, 1), CDF_TOTAL, dtype=torch.int32)], dim=1)
    return table.tolist()


#: the y coder's fixed grids. A table is chosen by two integers computed from the
#: entropy parameters (a scale index and a mean on a grid), never built from their
#: floats, so an encoder and a decoder whose floats differ in the last bits (another
#: thread count, CPU or GPU) still pick the same table unless a parameter sits on a grid
#: boundary. Scales are log-spaced over CompressAI's range; means are on a 1/MEAN_STEPS
#: grid (the mean's fraction matters: ``y_hat`` is rounded without it).
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
MEAN_STEPS = 16
#: probability left outside a table (the coder's escape codes those values)
TAIL_MASS = 1e-9
_LOG_SCALE_MIN = math.log(SCALE_MIN)
_LOG_SCALE_STEP = (math.log(SCALE_MAX) - _LOG_SCALE_MIN) / (SCALE_LEVELS - 1)


def grid_keys(params: Tensor, channels: int) -> tuple[Tensor, Tensor]:
    """Integer scale indexes and means (in 1/MEAN_STEPS) of ``params``' elements.

    ``params`` holds log-scales in its first ``channels`` columns and means in the next.
    """
    log_scales = params[:, :channels].double()
    scales = torch.round((log_scales - _LOG_SCALE_MIN) / _LOG_SCALE_STEP)
    means = torch.round(params[:, channels:2 * channels].double() * MEAN_STEPS)
    return (scales.clamp_(0, SCALE_LEVELS - 1).long(),
            means.clamp_(-(1 << 30), 1 << 30).long())


@functools.cache
def grid_table(scale_index: int, fraction: int) -> tuple[list[int], int]:
    """The 16-bit table (escape last) and offset of a discretised Gaussian whose scale is
    grid scale ``scale_index`` and whose mean is ``fraction / MEAN_STEPS``, over the
    integers around it; computed in float64 from the two integers alone."""
    from compressai._CXX import pmf_to_quantized_cdf

    scale = math.exp(_LOG_SCALE_MIN + scale_index * _LOG_SCALE_STEP)
    mean = fraction / MEAN_STEPS
    reach = min(math.ceil(scale * _TAIL_Z) + 1, 256)  # 256: y_hat's whole range
    values = range(-reach, reach + 2)

    def below(v: float) -> float:
        return 0.5 * math.erfc(-(v - mean) / (scale * math.sqrt(2)))

    pmf = [below(v + 0.5) - below(v - 0.5) for v in values]
    pmf.append(max(1.0 - sum(pmf), 0.0))
    return pmf_to_quantized_cdf(pmf, 16), -reach


#: a Gaussian's mass beyond this many scales on both sides is TAIL_MASS
_TAIL_Z = -statistics.NormalDist().inv_cdf(TAIL_MASS / 2)


class IncrementalContext:
    """The sequential context transformer fed one ``y_hat`` position at a time.

    Positions come in raster order. Each block keeps the keys and values of the
    positions fed so far, and a new position costs one attention row per block against
    them, one feed-forward, and a gather of its relative-position terms, instead of the
    whole map. :attr:`feature` is the context feature of the next position: the start
    token first, then the transformer's output at the position just fed (the official
    output is shifted by one). The arithmetic is the forward's, row by row; results
    agree with the full-map forward to float rounding, not bit for bit.
    """

    def __init__(self, model: ContextTransformer, height: int, width: int):
        if model.checkerboard:
            raise ValueError("the checkerboard context model decodes in two passes, not"
                             " incrementally")
        self.model, self.width = model, width
        first = model.blocks[0].attention
        n = height * width
        device = model.sos_pred_token.device
        self.keys = [torch.empty(first.heads, n, first.dim_head, device=device)
                     for _ in model.blocks]
        self.values = [torch.empty_like(k) for k in self.keys]
        self.rows = torch.arange(height, device=device).repeat_interleave(width)
        self.cols = torch.arange(width, device=device).repeat(height)
        self.position = 0
        self.feature = model.sos_pred_token.reshape(-1)

    def _buckets(self, attention: _SelfAttention) -> Tensor:
        """Relative-position buckets of keys 0..t for the query t (key minus query)."""
        t = self.position
        dv = self.rows[:t + 1] - self.rows[t]
        dh = self.cols[:t + 1] - self.cols[t]
        half = attention.buckets // 2
        index = (dv + half) * attention.buckets + (dh + half)
        return torch.where(dv.abs() + dh.abs() <= half, index, torch.zeros_like(index))

    def push(self, y_hat: Tensor) -> Tensor:
        """Feed the decoded ``y_hat`` (C values) of the next position; its output returned."""
        model, t = self.model, self.position
        x = model.to_patch_embedding(y_hat.reshape(1, -1))
        table = None
        for block, keys, values in zip(model.blocks, self.keys, self.values):
            attention = block.attention
            if table is None or not model.rpe_shared:
                table = attention.relative_attention_bias.weight
                buckets = self._buckets(attention)
            heads, dim_head = attention.heads, attention.dim_head
            qkv = attention.qkv(block.layer[0].layer_norm(x)).reshape(-1, 3)
            q = qkv[:, 0].reshape(heads, 1, dim_head)
            keys[:, t] = qkv[:, 1].reshape(heads, dim_head)
            values[:, t] = qkv[:, 2].reshape(heads, dim_head)
            scores = torch.matmul(q, keys[:, :t + 1].transpose(1, 2))
            relative = torch.matmul(q, table.t())[..., buckets]
            scores = (scores + relative) * attention.scale
            if model.topk != -1 and t + 1 > model.topk:
                kth = scores.topk(model.topk, dim=-1, largest=True, sorted=True)[0][..., -1:]
                scores = scores.masked_fill(~(scores >= kth), -torch.finfo(scores.dtype).max)
            weights = torch.softmax(scores.float(), dim=-1).type_as(scores)
            out = torch.matmul(weights, values[:, :t + 1]).reshape(1, heads * dim_head)
            x = x + attention.o(out)
            x = x + block.layer[1](x)
        self.position += 1
        self.feature = model.mlp_head(x).reshape(-1)
        return self.feature


class Entroformer(nn.Module):
    """The official Entroformer with its keyword names and the scripts' defaults.

    ``forward(x)`` (x in [0, 1], sides multiples of 64) returns ``x_hat`` (clamped to
    [0, 1]) and the likelihoods of ``y_hat`` and ``z_hat``, as the official evaluation
    computes them.
    """

    def __init__(self, na: str = "unidirectional", channels: int = 192,
                 last_channels: int = 384, hyper_channels: int = 192, dim_embed: int = 384,
                 depth: int = 6, heads: int = 6, dim_head: int = 64, mlp_ratio: int = 4,
                 dropout: float = 0.0, position_num: int = 7, attn_topk: int = 32,
                 scale: int = 2, rpe_shared: bool = True, att_scale: bool = True,
                 norm: str = "GDN", distribution: str = "gauss", num_parameter: int = 2,
                 K: int = 1, table_range: int = 128, mask_ratio: float = 0.0):  # noqa: N803
        super().__init__()
        if na not in ("unidirectional", "bidirectional"):
            raise ValueError(f"na must be 'unidirectional' or 'bidirectional', not {na!r}")
        if norm != "GDN" or distribution != "gauss" or num_parameter != 2 or K != 1:
            raise ValueError("only the released configuration is supported: norm 'GDN',"
                             " distribution 'gauss', num_parameter 2, K 1")
        self.na, self.table_range, self.mask_ratio = na, table_range, mask_ratio
        self.last_channels, self.scale = last_channels, scale
        trans = dict(dim=dim_embed, depth=depth, heads=heads, dim_head=dim_head,
                     mlp_ratio=mlp_ratio, dropout=dropout, position_num=position_num,
                     attn_topk=attn_topk, rpe_shared=rpe_shared, att_scale=att_scale)
        self.encode = _Analysis(channels, last_channels)
        self.decode = _Synthesis(channels, last_channels)
        self.cit_he = HyperTransformer(last_channels, hyper_channels, True, scale=scale, **trans)
        self.cit_hd = HyperTransformer(hyper_channels, 0, False, scale=scale, **trans)
        self.prob = ChannelGaussian(hyper_channels)
        self.cit_ar = ContextTransformer(last_channels, na == "bidirectional", **trans)
        self.cit_pn = nn.Sequential(
            nn.Conv2d(dim_embed * 2, dim_embed * mlp_ratio, 1, 1, 0),
            nn.LeakyReLU(0.2),
            nn.Conv2d(dim_embed * mlp_ratio, last_channels * K * num_parameter, 1, 1, 0))

    def entropy_parameters(self, feat_hyper: Tensor, y_hat: Tensor) -> Tensor:
        return self.cit_pn(torch.cat([feat_hyper, self.cit_ar(y_hat)], 1))

    def forward(self, x: Tensor) -> dict:
        self._check_size(*x.shape[2:])
        y = self.encode(x * 2 - 1)
        y_hat = quantize(y, self.table_range)
        z_hat = quantize(self.cit_he(y), self.table_range)
        params = self.entropy_parameters(self.cit_hd(z_hat), y_hat)
        return {"x_hat": self.reconstruct(y_hat),
                "likelihoods": {"y": y_likelihood(y_hat, params, self.table_range),
                                "z": self.prob(z_hat)}}

    def reconstruct(self, y_hat: Tensor) -> Tensor:
        return torch.clamp(self.decode(y_hat) / 2 + 0.5, 0.0, 1.0)

    # the coder
    def update(self, force: bool = False) -> bool:
        """Nothing to build: the coder's tables are made per element while coding."""
        return False

    def _symbols(self) -> tuple[int, list[int]]:
        """Tables' length and the offset that maps values -R..R-1 to symbols 0..2R-1."""
        return 2 * self.table_range + 2, -self.table_range

    def _z_tables(self) -> list[list[int]]:
        """One table per z channel, made on the CPU whatever the model's device, so that
        a GPU's and a CPU's rounding of the same prior cannot give different tables."""
        channels = self.prob.mu.size(1)
        prior = ChannelGaussian(channels)
        prior.load_state_dict(self.prob.state_dict())
        values = torch.arange(-self.table_range, self.table_range, dtype=torch.float32)
        pmf = prior(values.expand(1, channels, -1).unsqueeze(2))
        return quantised_cdfs(pmf.reshape(channels, -1))

    def _y_coding(self, params: Tensor) -> tuple[list[int], tuple]:
        """One position's grid tables: the values' bases and the coder's arguments.

        Each of the C elements is coded as ``y_hat - base`` with the table of its grid
        keys (:func:`grid_keys`); only the distinct tables of the position are passed.
        """
        if not torch.isfinite(params).all():
            raise ValueError("the entropy parameters are not finite (NaN or inf): the"
                             " weights are broken")
        scales, means = grid_keys(params.reshape(1, -1), self.last_channels)
        bases = torch.div(means, MEAN_STEPS, rounding_mode="floor")
        fractions = (means - bases * MEAN_STEPS).tolist()
        slots: dict[tuple[int, int], int] = {}
        indexes = [slots.setdefault(key, len(slots))
                   for key in zip(scales.reshape(-1).tolist(), fractions[0])]
        tables = [grid_table(*key) for key in slots]
        return bases.reshape(-1).tolist(), (indexes, [t[0] for t in tables],
                                             [len(t[0]) for t in tables],
                                             [t[1] for t in tables])

    def _parameters_at(self, hyper: Tensor, context: Tensor) -> Tensor:
        """``cit_pn`` (two 1x1 convolutions) on one position's features."""
        first, act, last = self.cit_pn
        h = F.linear(torch.cat([hyper, context]).reshape(1, -1),
                     first.weight.flatten(1), first.bias)
        return F.linear(act(h), last.weight.flatten(1), last.bias).reshape(-1)

    def _coding_order(self, hyper: Tensor, y_hat: Tensor):
        """``(row, col, parameters)`` of every position, in coding order (close it when
        leaving early: the sequential order holds torch at one thread while it runs).

        The decoder writes each position's values into ``y_hat`` before asking for the
        next one; the encoder passes the whole ``y_hat``. Sequential: raster order, the
        context fed incrementally. Checkerboard: the anchors with a zero context, then
        the other positions with the context of the anchors.
        """
        height, width = y_hat.shape[2:]
        if self.na == "unidirectional":
            context = IncrementalContext(self.cit_ar, height, width)
            with single_thread():
                for t in range(height * width):
                    row, col = divmod(t, width)
                    yield row, col, self._parameters_at(hyper[0, :, row, col],
                                                        context.feature)
                    if t + 1 < height * width:
                        context.push(y_hat[0, :, row, col])
            return
        anchors = ContextTransformer.anchors(height, width)
        first = self.cit_pn(torch.cat([hyper, torch.zeros_like(hyper)], 1))
        for row, col in anchors.nonzero().tolist():
            yield row, col, first[0, :, row, col]
        second = self.entropy_parameters(hyper, y_hat)
        for row, col in (~anchors).nonzero().tolist():
            yield row, col, second[0, :, row, col]

    def compress(self, x: Tensor) -> dict:
        """``{"strings": [[y], [z]], "shape": z's size}`` for an image in [0, 1]."""
        from compressai.ans import RansEncoder

        if x.size(0) != 1:
            return compress_each(self.compress, x)
        self._check_size(*x.shape[2:])
        y = self.encode(x * 2 - 1)
        y_hat = quantize(y, self.table_range)
        z_hat = quantize(self.cit_he(y), self.table_range)
        length, offset = self._symbols()
        channels = z_hat.size(1)
        z_string = RansEncoder().encode_with_indexes(
            z_hat.reshape(-1).int().tolist(),
            torch.arange(channels).repeat_interleave(z_hat[0, 0].numel()).tolist(),
            self._z_tables(), [length] * channels, [offset] * channels)
        y_string = self._y_string(self.cit_hd(z_hat), y_hat)
        return {"strings": [[y_string], [z_string]], "shape": z_hat.shape[2:]}

    def _y_string(self, hyper: Tensor, y_hat: Tensor) -> bytes:
        """``y_hat`` coded with the grid tables of its entropy parameters."""
        from compressai.ans import BufferedRansEncoder

        encoder = BufferedRansEncoder()
        with closing(self._coding_order(hyper, y_hat)) as order:
            for row, col, params in order:
                bases, coding = self._y_coding(params)
                values = y_hat[0, :, row, col].int().tolist()
                encoder.encode_with_indexes([v - b for v, b in zip(values, bases)], *coding)
        return encoder.flush()

    def decompress(self, strings: list, shape) -> dict:
        """The reconstruction (``x_hat``) from :meth:`compress`'s strings and shape."""
        from compressai.ans import RansDecoder

        check_two_groups(strings)
        if len(strings[0]) != 1:
            return decompress_each(self.decompress, strings, shape)
        z_height, z_width = (int(v) for v in shape)
        device = self.prob.mu.device
        length, offset = self._symbols()
        channels = self.prob.mu.size(1)
        decoder = RansDecoder()
        decoder.set_stream(strings[1][0])
        z_values = decoder.decode_stream(
            torch.arange(channels).repeat_interleave(z_height * z_width).tolist(),
            self._z_tables(), [length] * channels, [offset] * channels)
        z_hat = torch.tensor(z_values, dtype=torch.float32, device=device)
        hyper = self.cit_hd(z_hat.reshape(1, channels, z_height, z_width))
        factor = 2 ** self.scale
        y_hat = torch.zeros(1, self.last_channels, z_height * factor, z_width * factor,
                            device=device)
        decoder.set_stream(strings[0][0])
        with closing(self._coding_order(hyper, y_hat)) as order:
            for row, col, params in order:
                bases, coding = self._y_coding(params)
                values = decoder.decode_stream(*coding)
                y_hat[0, :, row, col] = torch.tensor(
                    [v + b for v, b in zip(values, bases)], dtype=torch.float32,
                    device=device)
        return {"x_hat": self.reconstruct(y_hat), "y_hat": y_hat}

    @staticmethod
    def _check_size(height: int, width: int) -> None:
        if height % 64 or width % 64:
            raise ValueError(f"Entroformer needs sides that are multiples of 64, got"
                             f" {height}x{width}")


__all__ = ["OFFICIAL_CLASSES", "PARTS", "ChannelGaussian", "ContextTransformer", "Entroformer",
           "HyperTransformer", "RestrictedUnpickler", "StandIn", "quantize",
           "read_official_checkpoint", "y_likelihood"]
