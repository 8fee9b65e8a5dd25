"""Building blocks shared by the transformer codecs (STF, WACNN, TCM).

Module and parameter names follow the published networks, so that their released
``state_dict`` files load without renaming; the arithmetic follows the order of
operations of the published code, so that the same weights give the same floats and
therefore the same bitstreams.

- window attention with a relative position bias, Swin blocks and stages, patch
  merging / splitting (the STF layout: ``attn.qkv``, ``attn.relative_position_bias_table``,
  ``downsample.reduction`` ...);
- shifted-window masks, computed once per feature-map size and kept in a small cache;
- :class:`LegacyEntropyBottleneck`: CompressAI's factorized prior with the parameter
  names (``_matrix0`` ...) and the sign-flipped pmf arithmetic of CompressAI <= 1.2.4,
  which the STF/WACNN code base carries;
- :class:`SliceCompressionModel`: the channel-conditional entropy model with latent
  residual prediction (y cut into slices along channels, each coded with a mean and a
  scale predicted from the hyperprior and the slices decoded before it), including
  ``compress`` / ``decompress`` with one rANS stream for y.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, MutableMapping, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from compressai.entropy_models import EntropyBottleneck, EntropyModel, GaussianConditional
from compressai.layers import conv3x3, subpel_conv3x3
from compressai.models import CompressionModel
from compressai.models.utils import update_registered_buffers
from torch import Tensor, nn

__all__ = [
    "DropPath", "LegacyEntropyBottleneck", "Mlp", "PatchMerging", "PatchSplit",
    "SliceCompressionModel", "SwinBlock", "SwinStage", "WindowAttention", "check_two_groups",
    "compress_each", "conv_stack", "decompress_each", "drop_path", "hyper_analysis",
    "hyper_synthesis", "region_mask", "relative_position_index", "single_thread",
    "ste_round", "window_merge", "window_partition",
]


@contextmanager
def single_thread():
    """One intra-op thread: the serial coders run thousands of tiny ops, which extra
    threads only slow down (and on a busy CPU, a lot)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def compress_each(compress, x: Tensor) -> dict:
    """A batch through a one-image ``compress``: ``{"strings": [[y...], [z...]], "shape"}``."""
    outs = [compress(x[i:i + 1]) for i in range(x.size(0))]
    return {"strings": [[o["strings"][0][0] for o in outs], [o["strings"][1][0] for o in outs]],
            "shape": outs[0]["shape"]}


def check_two_groups(strings) -> None:
    if not isinstance(strings, (list, tuple)) or len(strings) != 2:
        raise ValueError("expected two groups of strings: [[y], [z]]")


def decompress_each(decompress, strings: list, shape) -> dict:
    """The strings of :func:`compress_each` through a one-image ``decompress``."""
    outs = [decompress([[y], [z]], shape)["x_hat"] for y, z in zip(strings[0], strings[1])]
    return {"x_hat": torch.cat(outs)}


def ste_round(x: Tensor) -> Tensor:
    """Round, with the identity as gradient (straight-through)."""
    return torch.round(x) - x.detach() + x


class DropPath(nn.Module):
    """Stochastic depth: while training, drop a residual branch for whole samples."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        kept = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * kept / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path(p: float) -> nn.Module:
    return DropPath(p) if p > 0 else nn.Identity()


class Mlp(nn.Module):
    """Token MLP of a transformer block: Linear, activation, Linear (``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int, out: int | None = None,
                 act_layer: Callable[[], nn.Module] = nn.GELU, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden, out or dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def conv_stack(in_ch: int, widths: Sequence[int]) -> nn.Sequential:
    """3x3 convs (stride 1) through ``widths``, GELU between them (indices 0, 2, 4 ...)."""
    layers: list[nn.Module] = []
    for out_ch in widths:
        if layers:
            layers.append(nn.GELU())
        layers.append(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1))
        in_ch = out_ch
    return nn.Sequential(*layers)


def hyper_analysis(widths: Sequence[int]) -> nn.Sequential:
    """y -> z: five 3x3 convs through ``widths`` (6 entries), the 3rd and 5th of stride 2."""
    layers: list[nn.Module] = []
    for i, stride in enumerate((1, 1, 2, 1, 2)):
        if layers:
            layers.append(nn.GELU())
        layers.append(conv3x3(widths[i], widths[i + 1], stride=stride))
    return nn.Sequential(*layers)


def hyper_synthesis(widths: Sequence[int]) -> nn.Sequential:
    """z -> latent means or scales: conv, sub-pixel x2, conv, sub-pixel x2, conv (GELU)."""
    layers: list[nn.Module] = []
    for i, upsample in enumerate((False, True, False, True, False)):
        if layers:
            layers.append(nn.GELU())
        layers.append(subpel_conv3x3(widths[i], widths[i + 1], 2) if upsample
                      else conv3x3(widths[i], widths[i + 1]))
    return nn.Sequential(*layers)


# --- windows ----------------------------------------------------------------------------------

def relative_position_index(window: int) -> Tensor:
    """Index of every (query, key) pair of a window into a ((2w-1)^2)-entry bias table.

    Pair (p, q) with offset (dy, dx) = position(p) - position(q) maps to
    (dy + w - 1) * (2w - 1) + (dx + w - 1); shape (w*w, w*w), int64.
    """
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack((rows.flatten(), cols.flatten()))  # 2, w*w
    offsets = coords[:, :, None] - coords[:, None, :] + (window - 1)
    return offsets[0] * (2 * window - 1) + offsets[1]


def window_partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B * H/w * W/w, w*w, C), windows in raster order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_merge(windows: Tensor, window: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * nW, w*w, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.reshape(-1, height // window, width // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)


_MASKS: OrderedDict = OrderedDict()
_MASK_CACHE_SIZE = 24


def region_mask(height: int, width: int, window: int, shift: int, device=None,
                fill: float | None = None) -> Tensor:
    """Attention mask of shifted windows on a ``height`` x ``width`` map (cached).

    After a cyclic shift by ``-shift``, the windows of the last row and column hold
    pixels from up to four regions that were not adjacent in the image; pairs from
    different regions must not attend to each other. Returns, per window and pair,
    ``True`` where the pair crosses regions (shape (nW, w*w, w*w)), or, with ``fill``,
    a float32 additive mask holding ``fill`` there and 0 elsewhere.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    key = (height, width, window, shift, str(device), fill)
    mask = _MASKS.get(key)
    if mask is not None:
        _MASKS.move_to_end(key)
        return mask
    labels = torch.zeros(1, height, width, 1)
    bands = ((0, -window), (-window, -shift), (-shift, None))
    for i, (top, bottom) in enumerate(bands):
        for j, (left, right) in enumerate(bands):
            labels[:, top:bottom, left:right, :] = 3 * i + j
    per_window = window_partition(labels, window).squeeze(-1)  # nW, w*w
    crossing = per_window[:, None, :] != per_window[:, :, None]
    if fill is None:
        mask = crossing.to(device)
    else:
        mask = torch.zeros(crossing.shape).masked_fill(crossing, float(fill)).to(device)
    _MASKS[key] = mask
    while len(_MASKS) > _MASK_CACHE_SIZE:
        _MASKS.popitem(last=False)
    return mask


class WindowAttention(nn.Module):
    """Multi-head self-attention inside w x w windows, with a learned relative bias.

    Parameters: ``relative_position_bias_table`` ((2w-1)^2, heads), ``qkv``, ``proj``;
    buffer ``relative_position_index``. ``forward`` takes windows (B*nW, w*w, C) and
    an optional additive mask (nW, w*w, w*w).
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def relative_bias(self) -> Tensor:
        n = self.window_size ** 2
        table = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return table.view(n, n, -1).permute(2, 0, 1).contiguous()  # heads, n, n

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        qkv = qkv.contiguous()
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q * self.scale) @ k.transpose(-2, -1)
        scores = scores + self.relative_bias().unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            scores = scores.view(b // windows, windows, heads, n, n) + mask[None, :, None]
            scores = scores.view(-1, heads, n, n)
        weights = self.attn_drop(torch.softmax(scores, dim=-1))
        out = (weights @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(out))


class SwinBlock(nn.Module):
    """Pre-norm (shifted-)window attention and MLP, both residual, on (B, H*W, C) tokens.

    The map is zero-padded (after ``norm1``) to a multiple of the window when needed.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path_rate: float = 0.0,
                 act_layer: Callable[[], nn.Module] = nn.GELU,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm):
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError("shift_size must be in [0, window_size)")
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, qk_scale,
                                    attn_drop, drop)
        self.drop_path = drop_path(drop_path_rate)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)

    def forward(self, x: Tensor, height: int, width: int, mask: Tensor | None) -> Tensor:
        b, length, c = x.shape
        if length != height * width:
            raise ValueError(f"{length} tokens for a {height}x{width} map")
        w, s = self.window_size, self.shift_size
        shortcut = x
        x = self.norm1(x).view(b, height, width, c)
        pad_right, pad_bottom = -width % w, -height % w
        if pad_right or pad_bottom:
            x = F.pad(x, (0, 0, 0, pad_right, 0, pad_bottom))
        padded_h, padded_w = x.shape[1], x.shape[2]
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        x = window_merge(self.attn(window_partition(x, w), mask if s else None), w,
                         padded_h, padded_w)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        if pad_right or pad_bottom:
            x = x[:, :height, :width, :].contiguous()
        x = shortcut + self.drop_path(x.view(b, height * width, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Halve the resolution: concatenate 2x2 neighbours (4C), LayerNorm, Linear to 2C."""

    def __init__(self, dim: int, norm_layer: Callable[[int], nn.Module] = nn.LayerNorm):
        super().__init__()
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = norm_layer(4 * dim)

    @staticmethod
    def output_size(height: int, width: int) -> tuple[int, int]:
        return (height + 1) // 2, (width + 1) // 2

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        b, _, c = x.shape
        x = x.view(b, height, width, c)
        if height % 2 or width % 2:
            x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        # order: (even row, even col), (odd, even), (even, odd), (odd, odd)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2],
                       x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class PatchSplit(nn.Module):
    """Double the resolution: LayerNorm, Linear C -> 2C, pixel shuffle to C/2 channels."""

    def __init__(self, dim: int, norm_layer: Callable[[int], nn.Module] = nn.LayerNorm):
        super().__init__()
        self.dim = dim
        self.reduction = nn.Linear(dim, dim * 2, bias=False)
        self.norm = norm_layer(dim)
        self.shuffle = nn.PixelShuffle(2)

    @staticmethod
    def output_size(height: int, width: int) -> tuple[int, int]:
        return height * 2, width * 2

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:
        b, length, c = x.shape
        x = self.reduction(self.norm(x))
        x = x.permute(0, 2, 1).contiguous().view(b, 2 * c, height, width)
        x = self.shuffle(x)
        return x.permute(0, 2, 3, 1).contiguous().view(b, 4 * length, -1)


class SwinStage(nn.Module):
    """``depth`` Swin blocks (every second one shifted by w/2), then an optional resampler.

    The shifted-window mask is built once per stage call for the padded map size
    (and cached across calls of the same size).
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int = 7,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path_rates: float | list[float] = 0.0,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 resample: type[PatchMerging] | type[PatchSplit] | None = None,
                 use_checkpoint: bool = False):
        super().__init__()
        self.window_size, self.shift_size = window_size, window_size // 2
        self.use_checkpoint = use_checkpoint
        rates = (drop_path_rates if isinstance(drop_path_rates, list)
                 else [drop_path_rates] * depth)
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window_size, 0 if i % 2 == 0 else window_size // 2,
                      mlp_ratio, qkv_bias, qk_scale, drop, attn_drop, rates[i],
                      norm_layer=norm_layer)
            for i in range(depth))
        self.downsample = resample(dim=dim, norm_layer=norm_layer) if resample else None

    def forward(self, x: Tensor, height: int, width: int) -> tuple[Tensor, int, int]:
        w = self.window_size
        mask = None
        if len(self.blocks) > 1:
            mask = region_mask(-(-height // w) * w, -(-width // w) * w, w, self.shift_size,
                               x.device, fill=-100.0)
        for block in self.blocks:
            if self.use_checkpoint and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, height, width, mask,
                                                      use_reentrant=False)
            else:
                x = block(x, height, width, mask)
        if self.downsample is None:
            return x, height, width
        x = self.downsample(x, height, width)
        return (x, *self.downsample.output_size(height, width))


# --- entropy models ------------------------------------------------------------------------------

class LegacyEntropyBottleneck(EntropyBottleneck):
    """CompressAI's factorized prior as CompressAI <= 1.2.4 (and the STF code base) had it.

    Parameters are registered one by one as ``_matrix{i}``, ``_bias{i}``, ``_factor{i}``
    (CompressAI >= 1.2.6 keeps them in ``matrices``/``biases``/``factors`` lists), and the
    pmf is computed as ``|sigmoid(s * upper) - sigmoid(s * lower)|`` with
    ``s = -sign(lower + upper)`` (CompressAI >= 1.2.5: ``sigmoid(upper) -
    sigmoid(lower)``). Both the likelihoods of ``forward`` and the CDF tables built by
    :meth:`update` use it, so tables rebuilt here equal those of the original code to
    the last integer (the plain difference gives slightly different tables, hence
    different z bitstreams).
    """

    def __init__(self, channels: int, *args, tail_mass: float = 1e-9, init_scale: float = 10,
                 filters: tuple[int, ...] = (3, 3, 3, 3), **kwargs):
        EntropyModel.__init__(self, *args, **kwargs)
        self.channels = int(channels)
        self.filters = tuple(int(f) for f in filters)
        self.init_scale = float(init_scale)
        self.tail_mass = float(tail_mass)
        widths = (1, *self.filters, 1)
        scale = self.init_scale ** (1 / (len(self.filters) + 1))
        for i in range(len(self.filters) + 1):
            start = math.log(math.expm1(1 / scale / widths[i + 1]))
            matrix = torch.full((self.channels, widths[i + 1], widths[i]), start)
            self.register_parameter(f"_matrix{i}", nn.Parameter(matrix))
            bias = torch.empty(self.channels, widths[i + 1], 1).uniform_(-0.5, 0.5)
            self.register_parameter(f"_bias{i}", nn.Parameter(bias))
            if i < len(self.filters):
                factor = torch.zeros(self.channels, widths[i + 1], 1)
                self.register_parameter(f"_factor{i}", nn.Parameter(factor))
        quantiles = torch.tensor([-self.init_scale, 0.0, self.init_scale])
        self.quantiles = nn.Parameter(quantiles.repeat(self.channels, 1, 1))
        target = math.log(2 / self.tail_mass - 1)
        self.register_buffer("target", torch.tensor([-target, 0.0, target]))

    def _logits_cumulative(self, inputs: Tensor, stop_gradient: bool) -> Tensor:
        logits = inputs
        for i in range(len(self.filters) + 1):
            matrix = getattr(self, f"_matrix{i}")
            bias = getattr(self, f"_bias{i}")
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if i < len(self.filters):
                factor = getattr(self, f"_factor{i}")
                if stop_gradient:
                    factor = factor.detach()
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def _likelihood(self, inputs: Tensor, stop_gradient: bool = False
                    ) -> tuple[Tensor, Tensor, Tensor]:
        lower = self._logits_cumulative(inputs - 0.5, stop_gradient=stop_gradient)
        upper = self._logits_cumulative(inputs + 0.5, stop_gradient=stop_gradient)
        sign = -torch.sign(lower + upper).detach()
        likelihood = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return likelihood, lower, upper


_EB_PARAMETER = re.compile(r"^(?:_(?P<old>biases|matrices|factors)\.|_(?P<flat>bias|matrix|factor)"
                           r"|(?P<new>biases|matrices|factors)\.)(?P<index>\d+)$")
_PLURAL = {"bias": "biases", "matrix": "matrices", "factor": "factors"}
_SINGULAR = {v: k for k, v in _PLURAL.items()}


def _entropy_bottleneck_key(suffix: str, legacy: bool) -> str | None:
    """The name of an entropy-bottleneck parameter in the wanted convention, or None.

    Accepts ``_biases.0`` (CompressAI < 1.1), ``_bias0`` (1.1 - 1.2.5) and ``biases.0``
    (>= 1.2.6), and the same for matrices and factors.
    """
    match = _EB_PARAMETER.match(suffix)
    if not match:
        return None
    kind = match["flat"] or _SINGULAR[match["old"] or match["new"]]
    return f"_{kind}{match['index']}" if legacy else f"{_PLURAL[kind]}.{match['index']}"


# --- the channel-conditional slice model ---------------------------------------------------------

class SliceCompressionModel(CompressionModel):
    """Hyperprior + channel-conditional slices with latent residual prediction.

    Subclasses build ``h_a``, ``h_mean_s``, ``h_scale_s``, ``cc_mean_transforms``,
    ``cc_scale_transforms``, ``lrp_transforms``, ``entropy_bottleneck``,
    ``gaussian_conditional`` in the order of the original module tree, set
    ``num_slices`` and ``max_support_slices`` and implement :meth:`analysis` and
    :meth:`synthesis`. Slice ``i`` is predicted from the hyper means (scales) and the
    first ``max_support_slices`` decoded slices (all of them if negative); its
    reconstruction is ``round(y - mu) + mu + 0.5 * tanh(lrp(...))``.

    The byte string is CompressAI's: ``strings = [[y], [z]]`` with y one rANS stream
    holding all slices in order, ``shape`` = z's spatial size; y is four times z.
    """

    num_slices: int
    max_support_slices: int
    #: state_dict prefixes the original loaders drop before loading (stale modules)
    stale_prefixes: tuple[str, ...] = ()

    # what a subclass provides
    def analysis(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def synthesis(self, y_hat: Tensor) -> Tensor:
        raise NotImplementedError

    def condition(self, kind: str, index: int, support: Tensor) -> Tensor:
        """Transform the support of slice ``index`` before its mean/scale network."""
        return support

    # the entropy model
    def _support(self, decoded: list[Tensor]) -> list[Tensor]:
        limit = self.max_support_slices
        return decoded if limit < 0 else decoded[:limit]

    def _slice_parameters(self, index: int, latent_means: Tensor, latent_scales: Tensor,
                          support: list[Tensor], y_shape) -> tuple[Tensor, Tensor, Tensor]:
        mean_support = self.condition("mean", index, torch.cat([latent_means] + support, 1))
        mu = self.cc_mean_transforms[index](mean_support)[:, :, :y_shape[0], :y_shape[1]]
        scale_support = self.condition("scale", index,
                                       torch.cat([latent_scales] + support, 1))
        scale = self.cc_scale_transforms[index](scale_support)[:, :, :y_shape[0], :y_shape[1]]
        return mu, scale, mean_support

    def _residual(self, index: int, mean_support: Tensor, y_hat_slice: Tensor) -> Tensor:
        lrp = self.lrp_transforms[index](torch.cat([mean_support, y_hat_slice], dim=1))
        y_hat_slice += 0.5 * torch.tanh(lrp)
        return y_hat_slice

    def _hyper(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        return self.h_mean_s(z_hat), self.h_scale_s(z_hat)

    def forward(self, x: Tensor) -> dict:
        y = self.analysis(x)
        y_shape = y.shape[2:]
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_offset = self.entropy_bottleneck._get_medians()
        z_hat = ste_round(z - z_offset) + z_offset
        latent_means, latent_scales = self._hyper(z_hat)

        decoded, likelihoods, means, scales = [], [], [], []
        for index, y_slice in enumerate(y.chunk(self.num_slices, 1)):
            mu, scale, mean_support = self._slice_parameters(
                index, latent_means, latent_scales, self._support(decoded), y_shape)
            _, likelihood = self.gaussian_conditional(y_slice, scale, mu)
            likelihoods.append(likelihood)
            means.append(mu)
            scales.append(scale)
            y_hat_slice = ste_round(y_slice - mu) + mu
            decoded.append(self._residual(index, mean_support, y_hat_slice))

        x_hat = self.synthesis(torch.cat(decoded, dim=1))
        return {"x_hat": x_hat,
                "likelihoods": {"y": torch.cat(likelihoods, dim=1), "z": z_likelihoods},
                **self._forward_extras(y, means, scales)}

    def _forward_extras(self, y: Tensor, means: list[Tensor], scales: list[Tensor]) -> dict:
        return {}

    def _tables(self) -> tuple[list, list, list]:
        gc = self.gaussian_conditional
        return (gc.quantized_cdf.tolist(), gc.cdf_length.reshape(-1).int().tolist(),
                gc.offset.reshape(-1).int().tolist())

    def compress(self, x: Tensor) -> dict:
        from compressai.ans import BufferedRansEncoder

        y = self.analysis(x)
        y_shape = y.shape[2:]
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        latent_means, latent_scales = self._hyper(z_hat)

        cdf, cdf_lengths, offsets = self._tables()
        symbols, indexes, decoded = [], [], []
        slices = y.chunk(self.num_slices, 1)
        # later slices see only the first max_support_slices reconstructions: the residual
        # prediction of the others changes nothing in the bitstream and is skipped
        needed = len(slices) - 1
        if self.max_support_slices >= 0:
            needed = min(needed, self.max_support_slices)
        for index, y_slice in enumerate(slices):
            mu, scale, mean_support = self._slice_parameters(
                index, latent_means, latent_scales, self._support(decoded), y_shape)
            scale_index = self.gaussian_conditional.build_indexes(scale)
            y_q = self.gaussian_conditional.quantize(y_slice, "symbols", mu)
            symbols.extend(y_q.reshape(-1).tolist())
            indexes.extend(scale_index.reshape(-1).tolist())
            if index < needed:
                decoded.append(self._residual(index, mean_support, y_q + mu))

        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(symbols, indexes, cdf, cdf_lengths, offsets)
        return {"strings": [[encoder.flush()], z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings: list, shape) -> dict:
        from compressai.ans import RansDecoder

        if not isinstance(strings, (list, tuple)) or len(strings) != 2:
            raise ValueError("expected two groups of strings: [[y], [z]]")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        latent_means, latent_scales = self._hyper(z_hat)
        y_shape = (z_hat.shape[2] * 4, z_hat.shape[3] * 4)

        cdf, cdf_lengths, offsets = self._tables()
        decoder = RansDecoder()
        decoder.set_stream(strings[0][0])
        decoded = []
        for index in range(self.num_slices):
            mu, scale, mean_support = self._slice_parameters(
                index, latent_means, latent_scales, self._support(decoded), y_shape)
            scale_index = self.gaussian_conditional.build_indexes(scale)
            values = decoder.decode_stream(scale_index.reshape(-1).tolist(), cdf, cdf_lengths,
                                           offsets)
            y_q = torch.tensor(values, dtype=torch.int32).reshape(mu.shape)
            y_hat_slice = self.gaussian_conditional.dequantize(y_q, mu)
            decoded.append(self._residual(index, mean_support, y_hat_slice))
        x_hat = self.synthesis(torch.cat(decoded, dim=1)).clamp_(0, 1)
        return {"x_hat": x_hat}

    # weights
    def update(self, scale_table=None, force: bool = False,
               update_quantiles: bool = False) -> bool:
        """Build the CDF tables that are missing (all of them with ``force``)."""
        return super().update(scale_table, force=force, update_quantiles=update_quantiles)

    def conform_state_dict(self, state_dict: MutableMapping) -> list[str]:
        """Bring a released ``state_dict`` to this network's names, in place.

        Drops ``module.`` prefixes, renames entropy-bottleneck parameters between
        CompressAI's three conventions (``_biases.0``, ``_bias0``, ``biases.0``) to the
        one this network uses, and drops the stale entries the original loaders drop
        (:attr:`stale_prefixes`). Returns notes on what was dropped.
        """
        for key in list(state_dict):
            stripped = key
            while stripped.startswith("module."):
                stripped = stripped[len("module."):]
            if stripped != key:
                state_dict[stripped] = state_dict.pop(key)
        for name, module in self.named_modules():
            if not isinstance(module, EntropyBottleneck):
                continue
            legacy = isinstance(module, LegacyEntropyBottleneck)
            prefix = f"{name}."
            for key in [k for k in state_dict if k.startswith(prefix)]:
                renamed = _entropy_bottleneck_key(key[len(prefix):], legacy)
                if renamed is not None and prefix + renamed != key:
                    state_dict[prefix + renamed] = state_dict.pop(key)
        notes = []
        own = self.state_dict().keys()
        for stale in self.stale_prefixes:
            dropped = [k for k in state_dict if k.startswith(stale) and k not in own]
            for key in dropped:
                del state_dict[key]
            if dropped:
                notes.append(f"dropped {len(dropped)} stale {stale}* entries (the original"
                             " loader drops them too)")
        return notes

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load a state_dict in any of the released conventions; CDF tables are resized."""
        state_dict = dict(state_dict)
        self.conform_state_dict(state_dict)
        for name, module in self.named_modules():
            if isinstance(module, EntropyBottleneck):
                buffers = ["_quantized_cdf", "_offset", "_cdf_length"]
            elif isinstance(module, GaussianConditional):
                buffers = ["_quantized_cdf", "_offset", "_cdf_length", "scale_table"]
            else:
                continue
            present = [b for b in buffers if f"{name}.{b}" in state_dict]
            if present:
                update_registered_buffers(module, name, present, state_dict)
        return nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)
