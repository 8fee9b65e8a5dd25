"""TIC: Transformer-based Image Compression (Lu, Guo, Shi, Cao, Ma, DCC 2022).

Convolutions (stride 2) alternate with residual Swin stages ("RSTB": tokens through
Swin blocks, added to the input map; no normalisation or activation between stages).
The hyperprior is built the same way at quarter resolution. The latent y (M channels,
H/16) is coded with a Gaussian whose (scale, mean) come from the hyperprior and a
causal attention context model over the 5x5 neighbourhood (first 12 raster positions
visible), decoded position by position.

Two layouts, chosen with ``revision``:

- ``"2022"``: the code that produced the one public checkpoint (quality 3, lambda
  0.0067, N=128, M=192): Swin depths 1, 2, 3, 1, 1. Its state_dict also carries the CNN
  ``g_a``, ``g_s``, ``h_a``, ``h_s`` modules (192 channels, with GDN) that the original
  class inherited from CompressAI's joint autoregressive model and never runs; they are
  kept here, unused, so that the file loads strictly.
- ``"head"``: the later configuration, depths 2, 4, 6, 2, 2, no dead modules
  (quality 1-4: N=128, M=192; 5-8: N=192, M=320). No checkpoint was released for it.

Input sides must be multiples of 128 (the Swin blocks do not pad: every stage must
hold whole windows).

Rate, estimated and real. As in the original code, ``forward`` feeds ``round(y)``
(without the predicted means) to the context model and the synthesis, while its
likelihoods are those of ``round(y - mu) + mu``; ``compress`` codes ``round(y - mu)``
with mu and sigma predicted position by position from the partially reconstructed
``q + mu``, and ``decompress`` reconstructs ``q + mu``. So the decoded image is not
forward's x_hat, and forward's likelihood rate (estimated) is not the size of the
bitstream (real). The harness reports the real one.

Same floats as the original. With the same weights, forward's x_hat and likelihoods,
the bitstream and the decoded image equal those of the official code bit for bit
(``bench/tic_entroformer_speed.py`` checks it). Without autograd the Swin stages and
the context model run in chunks of rows (:data:`CHUNK_ROWS`), which changes the speed,
not the sums; the serial coder gives the context model's last layers the 25-row
call of the official coder (see :meth:`CausalAttentionModule.at`).

``tic_plus`` is a configuration of ours: TIC+ has no public code or weights.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from torch import Tensor, nn

from harness.models.layers import (
    LegacyEntropyBottleneck,
    Mlp,
    SliceCompressionModel,
    SwinBlock,
    check_two_groups,
    compress_each,
    decompress_each,
    region_mask,
    relative_position_index,
    single_thread,
)

REVISIONS = {
    "2022": (1, 2, 3, 1, 1),
    "head": (2, 4, 6, 2, 2),
}
HEADS = (4, 8, 16, 16, 16)
WINDOW = 8
#: nominal stage resolutions the attention-mask buffers are sized for
NOMINAL = (128, 64, 32, 16, 8)
CONTEXT_SIZE = 5
VISIBLE = 12  # raster positions of the 5x5 neighbourhood the context model sees
#: token rows per chunk when the Swin stages and the context model run without autograd:
#: chunks of a few MiB are reused by the allocator and stay in cache, where whole-map
#: temporaries (up to 200 MB at 768x512) are mapped and zero-filled afresh by every op
CHUNK_ROWS = 4096


def _conv(cin: int, cout: int, kernel: int, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def _deconv(cin: int, cout: int, kernel: int, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, output_padding=stride - 1,
                              padding=kernel // 2)


@lru_cache(maxsize=32)
def window_order(height: int, width: int, window: int, shift: int, device: str) -> Tensor:
    """Raster indices of a map's tokens in (shifted) window order: window after window,
    each window's tokens in raster order; the gather that ``torch.roll`` by ``-shift``
    followed by window partitioning performs."""
    index = torch.arange(height * width).view(height, width)
    if shift:
        index = torch.roll(index, shifts=(-shift, -shift), dims=(0, 1))
    index = index.view(height // window, window, width // window, window).permute(0, 2, 1, 3)
    return index.reshape(-1).to(device)


def _groups(count: int, rows_each: int) -> list[tuple[int, int]]:
    """``count`` items (of ``rows_each`` token rows) cut into near-equal runs of at least
    :data:`CHUNK_ROWS` rows (one run when there are fewer)."""
    runs = max(1, count * rows_each // CHUNK_ROWS)
    return [(i * count // runs, (i + 1) * count // runs) for i in range(runs)]


class TICSwinBlock(SwinBlock):
    """A Swin block whose shifted-window mask (-100 across regions) is a stored buffer.

    The buffer ``attn_mask`` is sized for ``input_resolution`` and used at that size;
    at any other size the same mask is computed for the map at hand. A nominal
    resolution not larger than the window turns the block into one unshifted window
    of that size.
    """

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int,
                 window_size: int, shift_size: int, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0):
        if min(input_resolution) <= window_size:
            shift_size, window_size = 0, min(input_resolution)
        super().__init__(dim, num_heads, window_size, shift_size, mlp_ratio,
                         drop_path_rate=drop_path_rate)
        self.input_resolution = tuple(input_resolution)
        mask = None
        if shift_size:
            mask = region_mask(*self.input_resolution, window_size, shift_size,
                               fill=-100.0).clone()
        self.register_buffer("attn_mask", mask)

    def _mask(self, height: int, width: int, device) -> Tensor | None:
        if not self.shift_size:
            return None
        if (height, width) == self.input_resolution:
            return self.attn_mask
        return region_mask(height, width, self.window_size, self.shift_size, device,
                           fill=-100.0)

    def forward(self, x: Tensor, height: int, width: int) -> Tensor:  # type: ignore[override]
        return super().forward(x, height, width, self._mask(height, width, x.device))

    def infer(self, src: Tensor, dst: Tensor, height: int, width: int) -> None:
        """The block without autograd, on one map's tokens: ``src`` (H*W, C) -> ``dst``.

        ``dst`` may be ``src``. The map runs in groups of whole (shifted) windows of at
        least :data:`CHUNK_ROWS` tokens (the whole map when smaller): a group's tokens are
        gathered in window order (the cyclic shift and the window partition in one
        copy), go through attention and the MLP, and are scattered back to their raster
        rows. The additions are done in place and in the order of :meth:`forward`.
        Every operation works token by token or window by window, so the floats are
        those of :meth:`forward`: the BLAS kernels give a row the same sums whichever
        rows share the call, as long as there are not only a handful of them (checked bit
        for bit against :meth:`forward` and the official code).
        """
        window, c = self.window_size, src.shape[-1]
        n = window * window
        attn, mlp = self.attn, self.mlp
        heads = attn.num_heads
        order = window_order(height, width, window, self.shift_size, str(src.device))
        mask = self._mask(height, width, src.device)
        bias = attn.relative_bias().unsqueeze(0)
        gelu = isinstance(mlp.act, nn.GELU)
        for first, last in _groups(order.numel() // n, n):
            rows = order[first * n:last * n]
            x = src.index_select(0, rows)
            qkv = attn.qkv(self.norm1(x)).view(last - first, n, 3, heads, c // heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).contiguous()
            scores = q.mul_(attn.scale) @ k.transpose(-2, -1)
            scores.add_(bias)
            if mask is not None:
                scores.add_(mask[first:last].unsqueeze(1))
            torch.softmax(scores, -1, out=scores)
            x = attn.proj((scores @ v).transpose(1, 2).reshape(-1, c)).add_(x)
            hidden = mlp.fc1(self.norm2(x))
            if gelu:
                torch.ops.aten.gelu_(hidden, approximate=mlp.act.approximate)
            else:
                hidden = mlp.act(hidden)
            dst.index_copy_(0, rows, mlp.fc2(hidden).add_(x))


class SwinLayer(nn.Module):
    """``blocks``: alternating unshifted and half-window-shifted Swin blocks."""

    def __init__(self, dim: int, resolution: int, depth: int, num_heads: int, window: int,
                 drop_paths: list[float]):
        super().__init__()
        self.blocks = nn.ModuleList(
            TICSwinBlock(dim, (resolution, resolution), num_heads, window,
                         0 if i % 2 == 0 else window // 2, drop_path_rate=drop_paths[i])
            for i in range(depth))


class RSTB(nn.Module):
    """Residual Swin stage on NCHW maps: ``x + blocks(x)``."""

    def __init__(self, dim: int, resolution: int, depth: int, num_heads: int, window: int,
                 drop_paths: list[float]):
        super().__init__()
        self.residual_group = SwinLayer(dim, resolution, depth, num_heads, window, drop_paths)

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        blocks = self.residual_group.blocks
        if (self.training or torch.is_grad_enabled() or not len(blocks)
                or any(height % blk.window_size or width % blk.window_size for blk in blocks)):
            for block in blocks:
                tokens = block(tokens, height, width)
            return tokens.transpose(1, 2).view(b, -1, height, width) + x
        out = x.new_empty(b, height * width, c)
        for i in range(b):
            src = tokens[i]
            for block in blocks:
                block.infer(src, out[i], height, width)
                src = out[i]
        # the sums of ``tokens + x`` above, laid out like x as that result is: the layout
        # picks the next convolution's kernels, and with them its rounding
        return x + out.transpose(1, 2).view(b, c, height, width)


class CausalAttentionModule(nn.Module):
    """Context model: attention over the 5x5 neighbourhood, centre and future masked.

    Per position: the 25 neighbours (zero padded) as tokens, the last 13 zeroed,
    LayerNorm, multi-head attention with a 9x9 relative bias, plus the masked tokens,
    summed over the 25 tokens, then LayerNorm + MLP residual and a projection to
    ``out_dim``. :meth:`forward` does it for a whole map; :meth:`at` for one position
    of a padded map (what the serial coder uses).
    """

    def __init__(self, dim: int, out_dim: int, block_len: int = CONTEXT_SIZE,
                 num_heads: int = 16, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError("dim must be a multiple of num_heads")
        self.dim, self.num_heads, self.block_len = dim, num_heads, block_len
        self.block_size = block_len * block_len
        self.scale = (dim // num_heads) ** -0.5
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * block_len - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(block_len))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.proj = nn.Linear(dim, out_dim)
        visible = torch.zeros(1, self.block_size, 1)
        visible[:, :VISIBLE] = 1.0
        self.register_buffer("visible", visible, persistent=False)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _bias(self) -> Tensor:
        n = self.block_size
        table = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return table.view(n, n, -1).permute(2, 0, 1).contiguous()

    def _summed(self, tokens: Tensor, bias: Tensor | None = None) -> Tensor:
        """(P, 25, C) neighbourhoods -> (P, C): attention output plus tokens, summed.

        ``bias``: :meth:`_bias`, when the caller keeps it (the serial coders).
        """
        p, n, c = tokens.shape
        masked = tokens * self.visible
        qkv = self.qkv(self.norm1(masked)).reshape(p, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        scores = (q * self.scale) @ k.transpose(-2, -1)
        scores = scores + (self._bias() if bias is None else bias).unsqueeze(0)
        out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(p, n, c)
        out += masked
        return out.sum(dim=1)

    def _head(self, summed: Tensor) -> Tensor:
        """(P, C) -> (P, out_dim): LayerNorm + MLP residual, projection."""
        return self.proj(self.mlp(self.norm2(summed)) + summed)

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        pad = self.block_len // 2
        unfolded = F.unfold(x, kernel_size=self.block_len, padding=pad)
        tokens = unfolded.reshape(b, c, self.block_size, height * width).permute(0, 3, 2, 1)
        if torch.is_grad_enabled():
            tokens = tokens.contiguous().view(-1, self.block_size, c)
            out = self._head(self._summed(tokens))
        else:
            # run of positions by run of positions: the same rows through the same
            # kernels (so the same floats), with temporaries of a few MiB
            out = x.new_empty(b, height * width, self.proj.out_features)
            for i in range(b):
                for first, last in _groups(height * width, self.block_size):
                    part = tokens[i, first:last].contiguous()
                    out[i, first:last] = self._head(self._summed(part))
        return out.reshape(b, height, width, -1).permute(0, 3, 1, 2)

    def at(self, padded: Tensor, row: int, col: int, bias: Tensor | None = None) -> Tensor:
        """(1, out_dim, 1, 1) context of position (row, col) of a map padded by 2.

        The official coder runs the module on the 5x5 crop around the position and keeps
        the centre, so its LayerNorm + MLP + projection see 25 rows with this position's
        at row 12. A BLAS call on one row takes another kernel (a matrix-vector product)
        whose sums round differently, so the same 25-row call is made here, with zero
        rows around this one: the entropy parameters, and so the decoded latents, are
        then the official ones to the bit. Costs about 0.15 ms a position.
        """
        crop = padded[0, :, row:row + self.block_len, col:col + self.block_len]
        tokens = crop.reshape(self.dim, self.block_size).t().unsqueeze(0)
        centre = self.block_size // 2
        rows = padded.new_zeros(self.block_size, self.dim)
        rows[centre] = self._summed(tokens, bias)[0]
        return self._head(rows)[centre].view(1, -1, 1, 1)


def _dead_cnn_modules() -> dict[str, nn.Module]:
    """The joint-autoregressive CNN transforms (N=M=192) the 2022 file carries, unused."""
    from compressai.models import JointAutoregressiveHierarchicalPriors

    parent = JointAutoregressiveHierarchicalPriors(192, 192)
    return {name: getattr(parent, name) for name in ("g_a", "g_s", "h_a", "h_s")}


class TIC(CompressionModel):
    """TIC with the original module names (``g_a0`` ... ``g_s6``, ``context_prediction``).

    ``TIC(N=128, M=192, revision="2022" | "head")``; see the module docstring.
    """

    def __init__(self, N: int = 128, M: int = 192, revision: str = "2022",  # noqa: N803
                 depths: tuple[int, ...] | None = None, window_size: int = WINDOW,
                 num_heads: tuple[int, ...] = HEADS, drop_path_rate: float = 0.2):
        super().__init__()
        if revision not in REVISIONS:
            raise ValueError(f"revision is one of {', '.join(REVISIONS)}; got {revision!r}")
        self.N, self.M, self.revision = int(N), int(M), revision
        depths = tuple(depths or REVISIONS[revision])
        self.depths = depths
        w, half = window_size, window_size // 2
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()

        def paths(i: int, ds=depths) -> list[float]:
            return rates[sum(ds[:i]):sum(ds[:i + 1])]

        if revision == "2022":  # slots in the order of the original state_dict
            self.entropy_bottleneck = LegacyEntropyBottleneck(N)
            for name, module in _dead_cnn_modules().items():
                setattr(self, name, module)
            self.gaussian_conditional = GaussianConditional(None)
            self.entropy_parameters = nn.Identity()
            self.context_prediction = nn.Identity()

        self.g_a0 = _conv(3, N, 5)
        self.g_a1 = RSTB(N, NOMINAL[0], depths[0], num_heads[0], w, paths(0))
        self.g_a2 = _conv(N, N, 3)
        self.g_a3 = RSTB(N, NOMINAL[1], depths[1], num_heads[1], w, paths(1))
        self.g_a4 = _conv(N, N, 3)
        self.g_a5 = RSTB(N, NOMINAL[2], depths[2], num_heads[2], w, paths(2))
        self.g_a6 = _conv(N, M, 3)

        self.h_a0 = _conv(M, N, 3, stride=1)
        self.h_a1 = RSTB(N, NOMINAL[3], depths[3], num_heads[3], half, paths(3))
        self.h_a2 = _conv(N, N, 3)
        self.h_a3 = RSTB(N, NOMINAL[4], depths[4], num_heads[4], half, paths(4))
        self.h_a4 = _conv(N, N, 3)

        rd, rh = depths[::-1], num_heads[::-1]

        def rpaths(i: int) -> list[float]:  # the original slices the rates by the reversed depths
            return paths(i, rd)

        self.h_s0 = _deconv(N, N, 3)
        self.h_s1 = RSTB(N, NOMINAL[4], rd[0], rh[0], half, rpaths(0))
        self.h_s2 = _deconv(N, N, 3)
        self.h_s3 = RSTB(N, NOMINAL[3], rd[1], rh[1], half, rpaths(1))
        self.h_s4 = _conv(N, 2 * M, 3, stride=1)

        self.g_s0 = _deconv(M, N, 3)
        self.g_s1 = RSTB(N, NOMINAL[2], rd[2], rh[2], w, rpaths(2))
        self.g_s2 = _deconv(N, N, 3)
        self.g_s3 = RSTB(N, NOMINAL[1], rd[3], rh[3], w, rpaths(3))
        self.g_s4 = _deconv(N, N, 3)
        self.g_s5 = RSTB(N, NOMINAL[0], rd[4], rh[4], w, rpaths(4))
        self.g_s6 = _deconv(N, 3, 5)

        if revision != "2022":
            self.entropy_bottleneck = LegacyEntropyBottleneck(N)
            self.gaussian_conditional = GaussianConditional(None)
        self.context_prediction = CausalAttentionModule(M, 2 * M)
        self.entropy_parameters = nn.Sequential(
            nn.Conv2d(M * 12 // 3, M * 10 // 3, 1), nn.GELU(),
            nn.Conv2d(M * 10 // 3, M * 8 // 3, 1), nn.GELU(),
            nn.Conv2d(M * 8 // 3, M * 6 // 3, 1))
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    # transforms
    def analysis(self, x: Tensor) -> Tensor:
        for name in ("g_a0", "g_a1", "g_a2", "g_a3", "g_a4", "g_a5", "g_a6"):
            x = getattr(self, name)(x)
        return x

    def synthesis(self, y_hat: Tensor) -> Tensor:
        for name in ("g_s0", "g_s1", "g_s2", "g_s3", "g_s4", "g_s5", "g_s6"):
            y_hat = getattr(self, name)(y_hat)
        return y_hat

    def hyper_analysis(self, y: Tensor) -> Tensor:
        for name in ("h_a0", "h_a1", "h_a2", "h_a3", "h_a4"):
            y = getattr(self, name)(y)
        return y

    def hyper_synthesis(self, z_hat: Tensor) -> Tensor:
        for name in ("h_s0", "h_s1", "h_s2", "h_s3", "h_s4"):
            z_hat = getattr(self, name)(z_hat)
        return z_hat

    @staticmethod
    def check_size(height: int, width: int) -> None:
        if height % 128 or width % 128 or not height or not width:
            raise ValueError(f"TIC needs sides that are multiples of 128; got {height}x{width}")

    def forward(self, x: Tensor) -> dict:
        self.check_size(*x.shape[2:])
        y = self.analysis(x)
        z = self.hyper_analysis(y)
        z_hat, z_likelihoods = self.entropy_bottleneck(z)
        params = self.hyper_synthesis(z_hat)
        y_hat = self.gaussian_conditional.quantize(
            y, "noise" if self.training else "dequantize")
        ctx = self.context_prediction(y_hat)
        scales, means = self.entropy_parameters(torch.cat((params, ctx), dim=1)).chunk(2, 1)
        _, y_likelihoods = self.gaussian_conditional(y, scales, means=means)
        return {"x_hat": self.synthesis(y_hat),
                "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    # the serial coder
    def _parameters_at(self, padded: Tensor, params: Tensor, row: int, col: int,
                       bias: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ctx = self.context_prediction.at(padded, row, col, bias)
        p = params[:, :, row:row + 1, col:col + 1]
        scales, means = self.entropy_parameters(torch.cat((p, ctx), dim=1)).chunk(2, 1)
        return scales, means

    def _indexes(self, scales: Tensor) -> list[int]:
        """``gaussian_conditional.build_indexes(scales)`` as a list, in one search.

        CompressAI counts, one table entry at a time (64 small tensor operations), the
        entries below the bounded scale; a binary search over the same float32 table
        with the same comparisons gives the same integers.
        """
        gc = self.gaussian_conditional
        scales = gc.lower_bound_scale(scales).reshape(-1)
        return torch.searchsorted(gc.scale_table[:-1], scales).tolist()

    def _tables(self) -> tuple[list, list, list]:
        gc = self.gaussian_conditional
        lengths = gc._cdf_length.reshape(-1).int().tolist()
        cdfs = [row[:n] for row, n in zip(gc._quantized_cdf.tolist(), lengths)]
        return cdfs, lengths, gc._offset.reshape(-1).int().tolist()

    def compress(self, x: Tensor) -> dict:
        """``{"strings": [[y], [z]], "shape": z size}``; y in raster order, channels inner."""
        from compressai.ans import BufferedRansEncoder

        if x.size(0) != 1:
            return compress_each(self.compress, x)
        self.check_size(*x.shape[2:])
        y = self.analysis(x)
        z = self.hyper_analysis(y)
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.size()[-2:])
        params = self.hyper_synthesis(z_hat)
        pad = CONTEXT_SIZE // 2
        padded = F.pad(y, (pad, pad, pad, pad))
        symbols, indexes = [], []
        with single_thread():
            self._code_serially(padded, params, symbols, indexes)
        cdfs, lengths, offsets = self._tables()
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(symbols, indexes, cdfs, lengths, offsets)
        return {"strings": [[encoder.flush()], z_strings], "shape": z.size()[-2:]}

    def _code_serially(self, padded: Tensor, params: Tensor, symbols: list, indexes: list
                       ) -> None:
        pad = CONTEXT_SIZE // 2
        bias = self.context_prediction._bias()
        for row in range(padded.size(2) - 2 * pad):
            for col in range(padded.size(3) - 2 * pad):
                scales, means = self._parameters_at(padded, params, row, col, bias)
                centre = padded[:, :, row + pad, col + pad].view(1, -1, 1, 1)
                q = torch.round(centre - means)
                padded[:, :, row + pad, col + pad] = (q + means).view(1, -1)
                symbols.extend(q.view(-1).int().tolist())
                indexes.extend(self._indexes(scales))

    def decompress(self, strings: list, shape) -> dict:
        from compressai.ans import RansDecoder

        check_two_groups(strings)
        if len(strings[0]) != 1:
            return decompress_each(self.decompress, strings, shape)
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        params = self.hyper_synthesis(z_hat)
        height, width = z_hat.size(2) * 4, z_hat.size(3) * 4
        pad = CONTEXT_SIZE // 2
        padded = torch.zeros(1, self.M, height + 2 * pad, width + 2 * pad, device=z_hat.device)
        cdfs, lengths, offsets = self._tables()
        decoder = RansDecoder()
        decoder.set_stream(strings[0][0])
        with single_thread():
            self._decode_serially(decoder, padded, params, (cdfs, lengths, offsets))
        y_hat = padded[:, :, pad:-pad, pad:-pad]
        return {"x_hat": self.synthesis(y_hat).clamp_(0, 1)}

    def _decode_serially(self, decoder, padded: Tensor, params: Tensor, tables: tuple
                         ) -> None:
        cdfs, lengths, offsets = tables
        pad = CONTEXT_SIZE // 2
        height, width = padded.size(2) - 2 * pad, padded.size(3) - 2 * pad
        bias = self.context_prediction._bias()
        for row in range(height):
            for col in range(width):
                scales, means = self._parameters_at(padded, params, row, col, bias)
                index = self._indexes(scales)
                # only the tables this position uses cross the binding
                used = sorted(set(index))
                where = {t: i for i, t in enumerate(used)}
                values = decoder.decode_stream(
                    [where[t] for t in index], [cdfs[t] for t in used],
                    [lengths[t] for t in used], [offsets[t] for t in used])
                q = torch.tensor(values, dtype=torch.float32, device=means.device)
                padded[0, :, row + pad, col + pad] = q + means.view(-1)

    # weights
    stale_prefixes: tuple[str, ...] = ()
    conform_state_dict = SliceCompressionModel.conform_state_dict
    load_state_dict = SliceCompressionModel.load_state_dict

    def update(self, scale_table=None, force: bool = False,
               update_quantiles: bool = False) -> bool:
        """Build the CDF tables that are missing (all of them with ``force``)."""
        return super().update(scale_table, force=force, update_quantiles=update_quantiles)


def tic_plus(N: int = 128, M: int = 192) -> TIC:  # noqa: N803
    """TIC+ as described in its paper, approximated by our TIC classes (no public code).

    The paper describes the HEAD layout (depths 2, 4, 6, 2, 2) with wider latents at
    the higher rates; this is that configuration, with no checkpoint.
    """
    return TIC(N, M, revision="head")


__all__ = ["TIC", "CausalAttentionModule", "EntropyBottleneck", "tic_plus"]
