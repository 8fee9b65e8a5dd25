"""WACNN: the window-attention CNN of Zou, Song and Zhang (CVPR 2022), released with STF.

Strided 5x5 convolutions with GDN, with window-attention modules after the second
and fourth layer (and their mirror images in synthesis), the hyperprior of STF with
its own widths, and 10 channel slices of 32 conditioned on the first 5 decoded ones.
Module names follow the authors' ``WACNN`` (``g_a``, ``g_s``, ``h_a``, ...); the
attention modules are their ``Win_noShift_Attention`` (which, despite the name,
alternates no shift / shift by w/2 through its ``shift_size``). Input sides must be
multiples of 64.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import GaussianConditional
from compressai.layers import GDN
from compressai.models.utils import conv, deconv
from torch import Tensor, nn

from harness.models.layers import (
    LegacyEntropyBottleneck,
    SliceCompressionModel,
    WindowAttention,
    conv_stack,
    drop_path,
    hyper_analysis,
    hyper_synthesis,
    region_mask,
    window_merge,
    window_partition,
)


class ResidualUnit(nn.Module):
    """1x1 halve, GELU, 3x3, GELU, 1x1 restore, plus the input, then GELU."""

    def __init__(self, channels: int):
        super().__init__()
        half = channels // 2
        self.conv = nn.Sequential(
            nn.Conv2d(channels, half, kernel_size=1), nn.GELU(),
            nn.Conv2d(half, half, kernel_size=3, padding=1), nn.GELU(),
            nn.Conv2d(half, channels, kernel_size=1))
        self.relu = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        out += x
        return self.relu(out)


class WindowSelfAttention(nn.Module):
    """Residual (shifted-)window attention on an NCHW map, without norm or MLP.

    The map's sides must be multiples of the window (no padding); the shift mask is
    that of the map's own size.
    """

    def __init__(self, dim: int = 192, num_heads: int = 8, window_size: int = 8,
                 shift_size: int = 0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ValueError("shift_size must be in [0, window_size)")
        self.window_size, self.shift_size = window_size, shift_size
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias, qk_scale,
                                    attn_drop, drop)
        self.drop_path = drop_path(drop_path_rate)

    def forward(self, x: Tensor) -> Tensor:
        _, _, height, width = x.shape
        w, s = self.window_size, self.shift_size
        if height % w or width % w:
            raise ValueError(f"a {height}x{width} map does not split into {w}x{w} windows;"
                             " pad the image to a multiple of 64")
        tokens = x.permute(0, 2, 3, 1)
        mask = None
        if s:
            mask = region_mask(height, width, w, s, x.device, fill=-100.0)
            tokens = torch.roll(tokens, shifts=(-s, -s), dims=(1, 2))
        out = window_merge(self.attn(window_partition(tokens, w), mask), w, height, width)
        if s:
            out = torch.roll(out, shifts=(s, s), dims=(1, 2))
        return x + self.drop_path(out.permute(0, 3, 1, 2).contiguous())


class WindowAttentionModule(nn.Module):
    """x + conv_a(x) * sigmoid(conv_b(x)); conv_b starts with window self-attention."""

    def __init__(self, dim: int, num_heads: int = 8, window_size: int = 8, shift_size: int = 0):
        super().__init__()
        self.conv_a = nn.Sequential(ResidualUnit(dim), ResidualUnit(dim), ResidualUnit(dim))
        self.conv_b = nn.Sequential(
            WindowSelfAttention(dim, num_heads, window_size, shift_size),
            ResidualUnit(dim), ResidualUnit(dim), ResidualUnit(dim),
            nn.Conv2d(dim, dim, kernel_size=1))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_a(x) * torch.sigmoid(self.conv_b(x))
        out += x
        return out


class WACNN(SliceCompressionModel):
    """WACNN(N, M) as released: N=192, M=320."""

    stale_prefixes = ("h_s.",)

    def __init__(self, N: int = 192, M: int = 320, **kwargs):  # noqa: N803
        super().__init__()
        kwargs.pop("init_weights", None)  # accepted by the original base class, no effect
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        self.N, self.M = N, M
        self.num_slices = 10
        self.max_support_slices = 5
        self.g_a = nn.Sequential(
            conv(3, N, kernel_size=5, stride=2), GDN(N),
            conv(N, N, kernel_size=5, stride=2), GDN(N),
            WindowAttentionModule(N, num_heads=8, window_size=8, shift_size=4),
            conv(N, N, kernel_size=5, stride=2), GDN(N),
            conv(N, M, kernel_size=5, stride=2),
            WindowAttentionModule(M, num_heads=8, window_size=4, shift_size=2))
        self.g_s = nn.Sequential(
            WindowAttentionModule(M, num_heads=8, window_size=4, shift_size=2),
            deconv(M, N, kernel_size=5, stride=2), GDN(N, inverse=True),
            deconv(N, N, kernel_size=5, stride=2), GDN(N, inverse=True),
            WindowAttentionModule(N, num_heads=8, window_size=8, shift_size=4),
            deconv(N, N, kernel_size=5, stride=2), GDN(N, inverse=True),
            deconv(N, 3, kernel_size=5, stride=2))
        self.h_a = hyper_analysis((M, 320, 288, 256, 224, 192))
        self.h_mean_s = hyper_synthesis((192, 192, 224, 256, 288, M))
        self.h_scale_s = hyper_synthesis((192, 192, 224, 256, 288, M))

        width, support = M // self.num_slices, self.max_support_slices
        head = (224, 176, 128, 64, width)
        self.cc_mean_transforms = nn.ModuleList(
            conv_stack(M + width * min(i, support), head) for i in range(self.num_slices))
        self.cc_scale_transforms = nn.ModuleList(
            conv_stack(M + width * min(i, support), head) for i in range(self.num_slices))
        self.lrp_transforms = nn.ModuleList(
            conv_stack(M + width * min(i + 1, support + 1), head)
            for i in range(self.num_slices))
        self.entropy_bottleneck = LegacyEntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)

    def analysis(self, x: Tensor) -> Tensor:
        return self.g_a(x)

    def synthesis(self, y_hat: Tensor) -> Tensor:
        return self.g_s(y_hat)
