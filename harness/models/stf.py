"""STF: the Symmetrical TransFormer of Zou, Song and Zhang (CVPR 2022).

A Swin-transformer analysis (patch embedding, four stages with patch merging) and its
mirror image for synthesis (stages with patch splitting, then a conv / pixel-shuffle
head), a hyperprior with separate mean and scale synthesis, and 12 channel slices
conditioned on the first 6 decoded ones. The defaults are the released
configuration; the module tree (``patch_embed``, ``layers``, ``syn_layers``,
``end_conv``, ``h_a``, ``h_mean_s``, ``h_scale_s``, ``cc_*_transforms``,
``lrp_transforms``, ``entropy_bottleneck``, ``gaussian_conditional``) is that of the
authors' ``SymmetricalTransFormer``, so their checkpoints load as they are. Input sides
must be multiples of 64.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from compressai.entropy_models import GaussianConditional
from torch import Tensor, nn

from harness.models.layers import (
    LegacyEntropyBottleneck,
    PatchMerging,
    PatchSplit,
    SliceCompressionModel,
    SwinStage,
    conv_stack,
    hyper_analysis,
    hyper_synthesis,
)


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens: a stride-p conv, then LayerNorm over channels."""

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96,
                 norm_layer: Callable[[int], nn.Module] | None = None):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None

    def forward(self, x: Tensor) -> tuple[Tensor, int, int]:
        """Tokens (B, H/p * W/p, C) and the token grid's height and width."""
        p = self.patch_size
        height, width = x.shape[2:]
        if width % p or height % p:
            x = F.pad(x, (0, -width % p, 0, -height % p))
        x = self.proj(x)
        height, width = x.shape[2:]
        x = x.flatten(2).transpose(1, 2)
        if self.norm is not None:
            x = self.norm(x)
        return x, height, width


def build_swin_backbone(net: nn.Module, patch_size, in_chans, embed_dim, depths, num_heads,
                        window_size, mlp_ratio, qkv_bias, qk_scale, drop_rate,
                        attn_drop_rate, drop_path_rate, norm_layer, patch_norm,
                        use_checkpoint) -> list[float]:
    """Give ``net`` STF's analysis and synthesis Swin stages, in the official order.

    Registers ``patch_embed``, ``pos_drop``, ``layers`` and ``syn_layers`` (the order
    decides the state_dict's key order) and returns the stochastic-depth rates.
    """
    num_layers = len(depths)
    net.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim,
                                 norm_layer if patch_norm else None)
    net.pos_drop = nn.Dropout(p=drop_rate)
    rates = [float(r) for r in torch.linspace(0, drop_path_rate, sum(depths))]

    def stages(dims, stage_depths, stage_heads, resample):
        out, start = nn.ModuleList(), 0
        for i, (dim, depth, heads) in enumerate(zip(dims, stage_depths, stage_heads)):
            last = i == num_layers - 1
            out.append(SwinStage(dim, depth, heads, window_size, mlp_ratio, qkv_bias,
                                 qk_scale, drop_rate, attn_drop_rate,
                                 rates[start:start + depth], norm_layer,
                                 None if last else resample, use_checkpoint))
            start += depth
        return out

    dims = [embed_dim * 2 ** i for i in range(num_layers)]
    net.layers = stages(dims, depths, num_heads, PatchMerging)
    net.syn_layers = stages(dims[::-1], depths[::-1], num_heads[::-1], PatchSplit)
    return rates


def end_conv(embed_dim: int, patch_size: int) -> nn.Sequential:
    """The synthesis's last step: tokens back to an RGB image at full size."""
    return nn.Sequential(
        nn.Conv2d(embed_dim, embed_dim * patch_size ** 2, kernel_size=5, padding=2),
        nn.PixelShuffle(patch_size),
        nn.Conv2d(embed_dim, 3, kernel_size=3, padding=1))


def slice_parameter_nets(hyper_channels: int, width: int, count: int,
                         window: int) -> tuple[nn.ModuleList, nn.ModuleList, nn.ModuleList]:
    """The per-slice mean, scale and latent-residual networks of the slice entropy model.

    Slice ``i`` sees the hyper support (``hyper_channels``) and up to ``window`` decoded
    slices of ``width`` channels; the residual network also sees the slice itself.
    """
    head = (224, 176, 128, 64, width)
    means = nn.ModuleList(conv_stack(hyper_channels + width * min(i, window), head)
                          for i in range(count))
    scales = nn.ModuleList(conv_stack(hyper_channels + width * min(i, window), head)
                           for i in range(count))
    residuals = nn.ModuleList(conv_stack(hyper_channels + width * min(i + 1, window + 1), head)
                              for i in range(count))
    return means, scales, residuals


class SymmetricalTransformer(SliceCompressionModel):
    """STF with the arguments of the authors' constructor (defaults = released model)."""

    stale_prefixes = ("h_s.",)

    def __init__(self, pretrain_img_size: int = 256, patch_size: int = 2, in_chans: int = 3,
                 embed_dim: int = 48, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), window_size: int = 4,
                 num_slices: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.2,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm, patch_norm: bool = True,
                 frozen_stages: int = -1, use_checkpoint: bool = False):
        super().__init__()
        depths, num_heads = list(depths), list(num_heads)
        self.pretrain_img_size = pretrain_img_size
        self.num_layers = len(depths)
        self.embed_dim = embed_dim
        self.patch_norm = patch_norm
        self.frozen_stages = frozen_stages
        self.num_slices = num_slices
        self.max_support_slices = num_slices // 2

        dims = [embed_dim * 2 ** i for i in range(self.num_layers)]
        build_swin_backbone(self, patch_size, in_chans, embed_dim, depths, num_heads,
                            window_size, mlp_ratio, qkv_bias, qk_scale, drop_rate,
                            attn_drop_rate, drop_path_rate, norm_layer, patch_norm,
                            use_checkpoint)
        self.end_conv = end_conv(embed_dim, patch_size)
        self.num_features = dims
        self.g_a = None
        self.g_s = None

        latent = embed_dim * 2 ** (self.num_layers - 1)  # 384
        self.h_a = hyper_analysis((latent, 384, 336, 288, 240, 192))
        self.h_mean_s = hyper_synthesis((192, 240, 288, 336, latent, latent))
        self.h_scale_s = hyper_synthesis((192, 240, 288, 336, latent, latent))

        (self.cc_mean_transforms, self.cc_scale_transforms,
         self.lrp_transforms) = slice_parameter_nets(latent, latent // num_slices, num_slices,
                                                     self.max_support_slices)
        self.entropy_bottleneck = LegacyEntropyBottleneck(embed_dim * 4)
        self.gaussian_conditional = GaussianConditional(None)
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen.append(self.patch_embed)
        if self.frozen_stages >= 2:
            frozen.append(self.pos_drop)
            frozen.extend(self.layers[i] for i in range(self.frozen_stages - 1))
        for module in frozen:
            module.eval()
            for parameter in module.parameters():
                parameter.requires_grad = False

    def analysis(self, x: Tensor) -> Tensor:
        x, height, width = self.patch_embed(x)
        x = self.pos_drop(x)
        for stage in self.layers:
            x, height, width = stage(x, height, width)
        channels = self.embed_dim * 2 ** (self.num_layers - 1)
        return x.view(-1, height, width, channels).permute(0, 3, 1, 2).contiguous()

    def synthesis(self, y_hat: Tensor) -> Tensor:
        height, width = y_hat.shape[2:]
        x = y_hat.permute(0, 2, 3, 1).contiguous().view(-1, height * width, y_hat.shape[1])
        for stage in self.syn_layers:
            x, height, width = stage(x, height, width)
        x = x.view(-1, height, width, self.embed_dim).permute(0, 3, 1, 2).contiguous()
        return self.end_conv(x)
