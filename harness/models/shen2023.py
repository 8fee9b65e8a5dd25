"""Shen & Liu 2023: STF with a spatial-channel auto-regressive context model and LRCP.

The released network of "Shen, Liu, ... image compression with Swin transformer" (official
code: ``SymmetricalTransFormer5`` in ``compressai/models/stf8.py`` of
github.com/stm233/image-compression-with-swin-transformer). Analysis, synthesis and the
hyperprior are those of STF (:mod:`harness.models.stf`); the entropy model is new:

- the latent y (384 channels, h x w = H/16 x W/16) is cut into 24 *chunks*: 6 channel
  groups of 64 channels times a 2 x 2 grid of spatial quadrants (h/2 x w/2 each);
- chunks are coded quadrant by quadrant, top-left, bottom-left, top-right, bottom-right,
  and within a quadrant channel group 0 ... 5 (:data:`CODING_ORDER`);
- chunk k is predicted from the hyper means (scales) of *all 24* chunks, concatenated
  along channels in coding order (1536 channels at quadrant resolution), followed by the
  reconstructions of the previous chunks, at most the 12 most recent ones;
- per chunk, a 5-layer CNN (``cc_mean_transforms2[k]`` / ``cc_scale_transforms2[k]``)
  gives mu and sigma, each then refined by a residual stack of Swin stages on the
  quadrant (``mu = mu + swin(mu)``; ``mu_Swin2[k]``: depths 2 and 6, ``sigma_Swin2[k]``:
  2 and 2; 64 channels, 4 heads, window 8);
- the reconstruction is ``round(y - mu) + mu + 0.5 * tanh(r + swin(r))`` with
  ``r = lrp_transforms2[k](mean support, reconstruction)`` and ``LRP_Swin2[k]`` (2, 6):
  the latent residual prediction ("LRCP").

Every chunk position has its own weights, hence 417.8 M parameters. ``forward`` returns
the y likelihoods as the official code does: the 24 chunk likelihoods concatenated along
channels in coding order, shape (B, 1536, h/2, w/2).

Where the official code departs from the paper, this network follows the code:

- the spatial partition is a fixed 2 x 2 grid whatever the image size, visited
  TL, BL, TR, BR (the paper's 2-D zigzag over finer spatial chunks is not there);
- the context model is a CNN over concatenated inputs whose output is refined by window
  *self*-attention; there is no attention between the current chunk and earlier chunks
  (no cross-attention), and LRCP is likewise a CNN plus a self-attention residual with
  ``0.5 * tanh``;
- the hyper window always spans all 24 chunks and the decoded-chunk window is the 12 most
  recent chunks; ``Mask_win_size`` and ``num_sliding`` are accepted and unused; the chunk
  width (384 / ``num_slices``), the 2 x 2 grid, the 12/24 windows, the Swin depths, heads
  and window size of the refinement stacks are fixed, as in the official code (other
  ``num_slices`` or ``embed_dim`` values do not give a working network there either);
- the official code has no ``compress``/``decompress``. Here: one rANS stream holding
  the 24 chunks in coding order (plus z as its own string), decoded chunk by chunk with
  exactly the context the encoder used; the decoded reconstruction equals ``forward``'s.

Input sides must be multiples of 64 (y's sides even for the quadrant split, and four
times z's for the hyperprior); batches of one for ``compress``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from compressai.entropy_models import GaussianConditional
from torch import Tensor, nn

from harness.models.layers import (
    LegacyEntropyBottleneck,
    SliceCompressionModel,
    SwinStage,
    hyper_analysis,
    hyper_synthesis,
    ste_round,
)
from harness.models.stf import (
    SymmetricalTransformer,
    build_swin_backbone,
    end_conv,
    slice_parameter_nets,
)

GRID = 2  # quadrants per side
#: (channel group, quadrant row, quadrant column) of chunk k, k = 0 ... 23
CODING_ORDER: tuple[tuple[int, int, int], ...] = tuple(
    (group, row, col) for col in range(GRID) for row in range(GRID) for group in range(6))
HYPER_WINDOW = 24  # hyper chunks in every support (all of them)
DECODED_WINDOW = 12  # most recent reconstructed chunks in every support


def decoded_window(index: int) -> range:
    """Indices of the reconstructed chunks chunk ``index`` is conditioned on."""
    return range(max(0, index - DECODED_WINDOW), index)


def split_chunks(x: Tensor, groups: int) -> list[Tensor]:
    """(B, C, h, w) -> the chunks (B, C/groups, h/2, w/2) in coding order (views)."""
    b, c, h, w = x.shape
    if h % GRID or w % GRID:
        raise ValueError(f"the latent's sides must be even for the 2x2 split, got {h}x{w}")
    parts = x.view(b, groups, c // groups, GRID, h // GRID, GRID, w // GRID)
    return [parts[:, g, :, r, :, q, :] for g, r, q in CODING_ORDER]


def merge_chunks(chunks: Sequence[Tensor], groups: int) -> Tensor:
    """Inverse of :func:`split_chunks`."""
    b, c, h, w = chunks[0].shape
    out = chunks[0].new_empty(b, groups, c, GRID, h, GRID, w)
    for chunk, (g, r, q) in zip(chunks, CODING_ORDER):
        out[:, g, :, r, :, q, :] = chunk
    return out.view(b, groups * c, GRID * h, GRID * w)


class ShenLiu2023(SliceCompressionModel):
    """The official ``SymmetricalTransFormer5`` (defaults = the released model)."""

    stale_prefixes = ("h_s.",)

    def __init__(self, pretrain_img_size: int = 256, patch_size: int = 2, in_chans: int = 3,
                 embed_dim: int = 48, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), window_size: int = 4,
                 num_slices: int = 6, Mask_win_size: int = 8, num_sliding: int = 4,  # noqa: N803
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.2,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm, patch_norm: bool = True,
                 frozen_stages: int = -1, use_checkpoint: bool = False):
        super().__init__()
        depths, num_heads = list(depths), list(num_heads)
        if num_slices != 6:
            raise ValueError("the released network has num_slices=6 (chunk width and"
                             " window sizes are fixed to it)")
        self.pretrain_img_size = pretrain_img_size
        self.num_layers = len(depths)
        self.embed_dim = embed_dim
        self.patch_norm = patch_norm
        self.frozen_stages = frozen_stages
        self.num_slices = num_slices
        self.max_support_slices = DECODED_WINDOW
        self.support_num = HYPER_WINDOW

        dims = [embed_dim * 2 ** i for i in range(self.num_layers)]
        rates = build_swin_backbone(self, patch_size, in_chans, embed_dim, depths, num_heads,
                                    window_size, mlp_ratio, qkv_bias, qk_scale, drop_rate,
                                    attn_drop_rate, drop_path_rate, norm_layer, patch_norm,
                                    use_checkpoint)

        latent = 384
        width = latent // num_slices  # 64 channels per chunk
        chunks = num_slices * GRID * GRID
        reversed_depths = depths[::-1]

        def refinement(stack_depths):
            out, start = nn.ModuleList(), 0
            for depth in stack_depths:
                span = reversed_depths[len(out)] if len(out) < len(reversed_depths) else 0
                out.append(SwinStage(width, depth, 4, 8, mlp_ratio, qkv_bias, qk_scale,
                                     drop_rate, attn_drop_rate, rates[start:start + span],
                                     norm_layer, None, use_checkpoint))
                start += span
            return out

        self.num_mu, self.num_sigma, self.num_LRP = 2, 2, 2
        self.mu_Swin2 = nn.ModuleList(refinement((2, 6)) for _ in range(chunks))
        self.sigma_Swin2 = nn.ModuleList(refinement((2, 2)) for _ in range(chunks))
        self.LRP_Swin2 = nn.ModuleList(refinement((2, 6)) for _ in range(chunks))

        self.end_conv = end_conv(embed_dim, patch_size)
        self.num_features = dims
        self.g_a = None
        self.g_s = None

        self.h_a = hyper_analysis((latent, 384, 336, 288, 240, 192))
        self.h_mean_s = hyper_synthesis((192, 240, 288, 336, latent, latent))
        self.h_scale_s = hyper_synthesis((192, 240, 288, 336, latent, latent))

        (self.cc_mean_transforms2, self.cc_scale_transforms2,
         self.lrp_transforms2) = slice_parameter_nets(width * HYPER_WINDOW, width, chunks,
                                                      DECODED_WINDOW)
        self.entropy_bottleneck = LegacyEntropyBottleneck(embed_dim * 4)
        self.gaussian_conditional = GaussianConditional(None)
        self._freeze_stages()

    _freeze_stages = SymmetricalTransformer._freeze_stages
    analysis = SymmetricalTransformer.analysis
    synthesis = SymmetricalTransformer.synthesis

    @property
    def num_chunks(self) -> int:
        return len(self.cc_mean_transforms2)

    # --- the entropy model ---------------------------------------------------------------

    @staticmethod
    def _refine(stages: nn.ModuleList, x: Tensor) -> Tensor:
        """``x + swin(x)`` on a (B, 64, h, w) map."""
        b, c, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1).contiguous().view(b, h * w, c)
        for stage in stages:
            tokens, _, _ = stage(tokens, h, w)
        return x + tokens.view(b, h, w, c).permute(0, 3, 1, 2).contiguous()

    def _hyper_supports(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """Hyper means and scales of all chunks, concatenated in coding order."""
        means, scales = self.h_mean_s(z_hat), self.h_scale_s(z_hat)
        return (torch.cat(split_chunks(means, self.num_slices), 1),
                torch.cat(split_chunks(scales, self.num_slices), 1))

    def _chunk_parameters(self, index: int, hyper_means: Tensor, hyper_scales: Tensor,
                          decoded: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """mu, sigma and the mean support of chunk ``index``."""
        support = [decoded[i] for i in decoded_window(index)]
        mean_support = torch.cat([hyper_means, *support], 1)
        mu = self.cc_mean_transforms2[index](mean_support)
        scale = self.cc_scale_transforms2[index](torch.cat([hyper_scales, *support], 1))
        mu = self._refine(self.mu_Swin2[index], mu)
        scale = self._refine(self.sigma_Swin2[index], scale)
        return mu, scale, mean_support

    def _chunk_residual(self, index: int, mean_support: Tensor, y_hat: Tensor) -> Tensor:
        lrp = self.lrp_transforms2[index](torch.cat([mean_support, y_hat], 1))
        lrp = self._refine(self.LRP_Swin2[index], lrp)
        return y_hat + 0.5 * torch.tanh(lrp)

    def forward(self, x: Tensor) -> dict:
        y = self.analysis(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_offset = self.entropy_bottleneck._get_medians()
        z_hat = ste_round(z - z_offset) + z_offset
        hyper_means, hyper_scales = self._hyper_supports(z_hat)

        decoded, likelihoods = [], []
        for index, chunk in enumerate(split_chunks(y, self.num_slices)):
            mu, scale, mean_support = self._chunk_parameters(index, hyper_means,
                                                             hyper_scales, decoded)
            _, likelihood = self.gaussian_conditional(chunk, scale, mu)
            likelihoods.append(likelihood)
            y_hat = ste_round(chunk - mu) + mu
            decoded.append(self._chunk_residual(index, mean_support, y_hat))
        x_hat = self.synthesis(merge_chunks(decoded, self.num_slices))
        return {"x_hat": x_hat,
                "likelihoods": {"y": torch.cat(likelihoods, 1), "z": z_likelihoods}}

    def compress(self, x: Tensor) -> dict:
        from compressai.ans import BufferedRansEncoder

        if x.shape[0] != 1:
            raise ValueError("compress codes one image at a time (batch of 1)")
        y = self.analysis(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        hyper_means, hyper_scales = self._hyper_supports(z_hat)

        cdf, cdf_lengths, offsets = self._tables()
        encoder = BufferedRansEncoder()
        decoded: list[Tensor] = []
        chunks = split_chunks(y, self.num_slices)
        for index, chunk in enumerate(chunks):
            mu, scale, mean_support = self._chunk_parameters(index, hyper_means,
                                                             hyper_scales, decoded)
            scale_index = self.gaussian_conditional.build_indexes(scale)
            y_q = self.gaussian_conditional.quantize(chunk, "symbols", mu)
            encoder.encode_with_indexes(y_q.reshape(-1).tolist(),
                                        scale_index.reshape(-1).tolist(),
                                        cdf, cdf_lengths, offsets)
            if index < len(chunks) - 1:  # the last reconstruction is no one's context
                y_hat = self.gaussian_conditional.dequantize(y_q, mu)
                decoded.append(self._chunk_residual(index, mean_support, y_hat))
            if index >= DECODED_WINDOW:
                decoded[index - DECODED_WINDOW] = None  # out of every later window
        return {"strings": [[encoder.flush()], z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings: list, shape) -> dict:
        from compressai.ans import RansDecoder

        if not isinstance(strings, (list, tuple)) or len(strings) != 2:
            raise ValueError("expected two groups of strings: [[y], [z]]")
        if len(strings[0]) != 1:
            raise ValueError("decompress decodes one image at a time (batch of 1)")
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        hyper_means, hyper_scales = self._hyper_supports(z_hat)

        cdf, cdf_lengths, offsets = self._tables()
        decoder = RansDecoder()
        decoder.set_stream(strings[0][0])
        decoded = []
        for index in range(self.num_chunks):
            mu, scale, mean_support = self._chunk_parameters(index, hyper_means,
                                                             hyper_scales, decoded)
            scale_index = self.gaussian_conditional.build_indexes(scale)
            values = decoder.decode_stream(scale_index.reshape(-1).tolist(), cdf, cdf_lengths,
                                           offsets)
            y_q = torch.tensor(values, dtype=torch.int32).reshape(mu.shape)
            y_hat = self.gaussian_conditional.dequantize(y_q.to(mu.device), mu)
            decoded.append(self._chunk_residual(index, mean_support, y_hat))
        x_hat = self.synthesis(merge_chunks(decoded, self.num_slices)).clamp_(0, 1)
        return {"x_hat": x_hat}
