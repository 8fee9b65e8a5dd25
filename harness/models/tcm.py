"""TCM: the mixed Transformer-CNN codec of Liu, Sun and Katto (CVPR 2023).

Residual conv blocks with stride / sub-pixel upsampling alternate with
Transformer-CNN mixture blocks (a 1x1 conv splits the channels: half through a residual
conv block, half through a Swin block, concatenated and fused by a 1x1 conv). The
entropy model is the channel-conditional one with 5 slices of 64, whose mean and scale
supports first pass through a Swin attention module ("SWAtten") at 128 channels. Small,
middle and large are N = 64, 96, 128 (N is half the mixture blocks' width); M = 320.

Module names follow the authors' ``TCM`` (``g_a.i.trans_block.msa.embedding_layer``,
``atten_mean.i.0.non_local_block.block_1`` ...), built on CompressAI 1.2.8 layers
(GDN, residual blocks, entropy models) as their code is. Input sides must be
multiples of 128 and at least 256 (smaller latents break the entropy model's Swin
windows, in the original code too).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import (
    AttentionBlock,
    ResidualBlock,
    ResidualBlockUpsample,
    ResidualBlockWithStride,
    conv3x3,
    subpel_conv3x3,
)
from torch import Tensor, nn

from harness.models.layers import SliceCompressionModel, conv_stack, drop_path, region_mask


class TCMWindowAttention(nn.Module):
    """(Shifted-)window multi-head attention on (B, H, W, C) maps, TCM's layout.

    Parameters: ``embedding_layer`` (q, k, v), ``relative_position_params``
    (heads, 2w-1, 2w-1), ``linear``. Scores are ``(q . k) * head_dim^-0.5`` plus the
    relative bias; pairs that cross regions after the cyclic shift get ``-inf``.
    """

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int,
                 type: str = "W"):  # noqa: A002
        super().__init__()
        if type not in ("W", "SW"):
            raise ValueError("type is 'W' or 'SW'")
        self.input_dim, self.output_dim, self.head_dim = input_dim, output_dim, head_dim
        self.scale = head_dim ** -0.5
        self.n_heads = input_dim // head_dim
        self.window_size = window_size
        self.type = type
        self.embedding_layer = nn.Linear(input_dim, 3 * input_dim, bias=True)
        span = 2 * window_size - 1
        self.relative_position_params = nn.Parameter(torch.zeros(self.n_heads, span, span))
        nn.init.trunc_normal_(self.relative_position_params, std=0.02)
        self.linear = nn.Linear(input_dim, output_dim)
        rows, cols = torch.meshgrid(torch.arange(window_size), torch.arange(window_size),
                                    indexing="ij")
        coords = torch.stack((rows.flatten(), cols.flatten()), dim=-1)  # w*w, 2
        offsets = coords[:, None, :] - coords[None, :, :] + window_size - 1
        self.register_buffer("_bias_rows", offsets[..., 0], persistent=False)
        self.register_buffer("_bias_cols", offsets[..., 1], persistent=False)

    def relative_embedding(self) -> Tensor:
        """(heads, w*w, w*w) bias of each (query, key) pair."""
        return self.relative_position_params[:, self._bias_rows, self._bias_cols]

    def forward(self, x: Tensor) -> Tensor:
        w = self.window_size
        shift = w // 2 if self.type == "SW" else 0
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        b, height, width, c = x.shape
        rows, cols = height // w, width // w
        x = x.reshape(b, rows, w, cols, w, c).permute(0, 1, 3, 2, 4, 5)
        x = x.reshape(b, rows * cols, w * w, c)
        qkv = self.embedding_layer(x)
        qkv = qkv.reshape(b, rows * cols, w * w, 3 * self.n_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 1, 2, 4).chunk(3, dim=0)
        scores = torch.einsum("hbwpc,hbwqc->hbwpq", q, k) * self.scale
        scores = scores + self.relative_embedding()[:, None, None]
        if shift:
            crossing = region_mask(height, width, w, shift, x.device)
            scores = scores.masked_fill_(crossing[None, None], float("-inf"))
        weights = nn.functional.softmax(scores, dim=-1)
        out = torch.einsum("hbwij,hbwjc->hbwic", weights, v)
        out = out.permute(1, 2, 3, 0, 4).reshape(b, rows * cols, w * w, -1)
        out = self.linear(out)
        out = out.reshape(b, rows, cols, w, w, self.output_dim).permute(0, 1, 3, 2, 4, 5)
        out = out.reshape(b, height, width, self.output_dim)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        return out


class TransformerBlock(nn.Module):
    """Pre-norm window attention and MLP (x4, GELU), both residual; (B, H, W, C) maps."""

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int,
                 drop_path_rate: float = 0.0, type: str = "W"):  # noqa: A002
        super().__init__()
        self.type = type
        self.ln1 = nn.LayerNorm(input_dim)
        self.msa = TCMWindowAttention(input_dim, input_dim, head_dim, window_size, type)
        self.drop_path = drop_path(drop_path_rate)
        self.ln2 = nn.LayerNorm(input_dim)
        self.mlp = nn.Sequential(nn.Linear(input_dim, 4 * input_dim), nn.GELU(),
                                 nn.Linear(4 * input_dim, output_dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.msa(self.ln1(x)))
        return x + self.drop_path(self.mlp(self.ln2(x)))


class ConvTransBlock(nn.Module):
    """Transformer-CNN mixture: split channels, conv and Swin branches, fuse, residual."""

    def __init__(self, conv_dim: int, trans_dim: int, head_dim: int, window_size: int,
                 drop_path_rate: float = 0.0, type: str = "W"):  # noqa: A002
        super().__init__()
        self.conv_dim, self.trans_dim = conv_dim, trans_dim
        width = conv_dim + trans_dim
        self.trans_block = TransformerBlock(trans_dim, trans_dim, head_dim, window_size,
                                            drop_path_rate, type)
        self.conv1_1 = nn.Conv2d(width, width, 1, 1, 0, bias=True)
        self.conv1_2 = nn.Conv2d(width, width, 1, 1, 0, bias=True)
        self.conv_block = ResidualBlock(conv_dim, conv_dim)

    def forward(self, x: Tensor) -> Tensor:
        conv_x, trans_x = torch.split(self.conv1_1(x), (self.conv_dim, self.trans_dim), dim=1)
        conv_x = self.conv_block(conv_x) + conv_x
        trans_x = self.trans_block(trans_x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.conv1_2(torch.cat((conv_x, trans_x), dim=1))


class SwinPair(nn.Module):
    """A window block then a shifted-window block, on NCHW maps."""

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.block_1 = TransformerBlock(input_dim, output_dim, head_dim, window_size,
                                        drop_path_rate, "W")
        self.block_2 = TransformerBlock(input_dim, output_dim, head_dim, window_size,
                                        drop_path_rate, "SW")
        self.window_size = window_size

    def forward(self, x: Tensor) -> Tensor:
        if x.size(-1) <= self.window_size or x.size(-2) <= self.window_size:
            raise ValueError(
                f"TCM's entropy model needs latents larger than {self.window_size}x"
                f"{self.window_size} (images of at least 256x256); got"
                f" {x.size(-2)}x{x.size(-1)}")
        return self.block_2(self.block_1(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)


class SWAtten(AttentionBlock):
    """Channel-squeezed attention on a slice support: 1x1 in, a * sigmoid(b) + x, 1x1 out.

    ``a`` = residual units on the squeezed input, ``b`` = residual units on its Swin
    transform (CompressAI's ``AttentionBlock`` applies them to the input itself).
    """

    def __init__(self, input_dim: int, output_dim: int, head_dim: int, window_size: int,
                 drop_path_rate: float = 0.0, inter_dim: int | None = 192):
        width = inter_dim if inter_dim is not None else input_dim
        super().__init__(N=width)
        self.non_local_block = SwinPair(width, width, head_dim, window_size, drop_path_rate)
        self.in_conv = self.out_conv = None
        if inter_dim is not None:
            self.in_conv = nn.Conv2d(input_dim, inter_dim, kernel_size=1)
            self.out_conv = nn.Conv2d(inter_dim, output_dim, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_conv is not None:
            x = self.in_conv(x)
        identity = x
        b = self.conv_b(self.non_local_block(x))
        out = self.conv_a(x) * torch.sigmoid(b)
        out += identity
        return self.out_conv(out) if self.out_conv is not None else out


class TCM(SliceCompressionModel):
    """TCM with the arguments of the authors' constructor (N=64 small, 128 large)."""

    def __init__(self, config: Sequence[int] = (2, 2, 2, 2, 2, 2),
                 head_dim: Sequence[int] = (8, 16, 32, 32, 16, 8), drop_path_rate: float = 0,
                 N: int = 128, M: int = 320, num_slices: int = 5,  # noqa: N803
                 max_support_slices: int = 5, **kwargs):
        super().__init__()
        kwargs.pop("entropy_bottleneck_channels", None)  # replaced by 192 in the original
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        self.entropy_bottleneck = EntropyBottleneck(192)  # first: the original's key order
        self.config, self.head_dim = list(config), list(head_dim)
        self.window_size = 8
        self.num_slices, self.max_support_slices = num_slices, max_support_slices
        self.N, self.M = N, M
        rates = [float(r) for r in torch.linspace(0, drop_path_rate, sum(self.config))]

        def mixture(count: int, heads_dim: int, window: int, with_rates: bool = True):
            return [ConvTransBlock(N, N, heads_dim, window, rates[i] if with_rates else 0.0,
                                   "W" if i % 2 == 0 else "SW") for i in range(count)]

        c, h = self.config, self.head_dim
        self.g_a = nn.Sequential(
            ResidualBlockWithStride(3, 2 * N, 2), *mixture(c[0], h[0], 8),
            ResidualBlockWithStride(2 * N, 2 * N, stride=2), *mixture(c[1], h[1], 8),
            ResidualBlockWithStride(2 * N, 2 * N, stride=2), *mixture(c[2], h[2], 8),
            conv3x3(2 * N, M, stride=2))
        self.g_s = nn.Sequential(
            ResidualBlockUpsample(M, 2 * N, 2), *mixture(c[3], h[3], 8),
            ResidualBlockUpsample(2 * N, 2 * N, 2), *mixture(c[4], h[4], 8),
            ResidualBlockUpsample(2 * N, 2 * N, 2), *mixture(c[5], h[5], 8),
            subpel_conv3x3(2 * N, 3, 2))
        self.h_a = nn.Sequential(
            ResidualBlockWithStride(M, 2 * N, 2), *mixture(c[0], 32, 4, False),
            conv3x3(2 * N, 192, stride=2))
        self.h_mean_s = nn.Sequential(
            ResidualBlockUpsample(192, 2 * N, 2), *mixture(c[3], 32, 4, False),
            subpel_conv3x3(2 * N, M, 2))
        self.h_scale_s = nn.Sequential(
            ResidualBlockUpsample(192, 2 * N, 2), *mixture(c[3], 32, 4, False),
            subpel_conv3x3(2 * N, M, 2))

        width = M // num_slices
        support = max_support_slices

        def attention(i: int) -> nn.Sequential:
            channels = M + width * min(i, support)
            return nn.Sequential(SWAtten(channels, channels, 16, self.window_size, 0,
                                         inter_dim=128))

        self.atten_mean = nn.ModuleList(attention(i) for i in range(num_slices))
        self.atten_scale = nn.ModuleList(attention(i) for i in range(num_slices))
        self.cc_mean_transforms = nn.ModuleList(
            conv_stack(M + width * min(i, support), (224, 128, width))
            for i in range(num_slices))
        self.cc_scale_transforms = nn.ModuleList(
            conv_stack(M + width * min(i, support), (224, 128, width))
            for i in range(num_slices))
        self.lrp_transforms = nn.ModuleList(
            conv_stack(M + width * min(i + 1, support + 1), (224, 128, width))
            for i in range(num_slices))
        self.gaussian_conditional = GaussianConditional(None)

    def analysis(self, x: Tensor) -> Tensor:
        return self.g_a(x)

    def synthesis(self, y_hat: Tensor) -> Tensor:
        return self.g_s(y_hat)

    def condition(self, kind: str, index: int, support: Tensor) -> Tensor:
        return (self.atten_mean if kind == "mean" else self.atten_scale)[index](support)

    def _forward_extras(self, y: Tensor, means: list[Tensor], scales: list[Tensor]) -> dict:
        return {"para": {"means": torch.cat(means, dim=1), "scales": torch.cat(scales, dim=1),
                         "y": y}}
