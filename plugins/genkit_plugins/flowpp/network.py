"""The conditioning network of a Flow++ coupling (``flows.py``: ``gated_conv``, ``layernorm``, ``gated_attn``).

From the conditioning half ``(B, C, H, W)``::

    h = proj_in(x)                                  3×3 conv to F filters
    B × [ h = gated_conv(h, context)                concat_elu → 3×3 conv (+ 1×1 of concat_elu(context))
                                                    → concat_elu → dropout → 1×1 conv to 2F → a·σ(b), residual
          h = layernorm(h)
          h = gated_attention(h)                    + learned position embedding → 1×1 to q, k, v over all H·W
                                                    positions, heads of F/heads → dropout → 1×1 to 2F → gate,
                                                    residual onto h (without the embedding)
          h = layernorm(h) ]
    out = proj_out(h)                               3×3 conv, initial scale 0.1

Every convolution is a :class:`~genkit_plugins.flowpp.datainit.Conv` with the official data-dependent init.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from genkit_plugins.flowpp.datainit import Conv

#: the initial output scale of the layers that end a residual branch (official value)
BRANCH_INIT_SCALE = 0.1
#: LayerNorm's variance epsilon (official value)
LAYERNORM_EPS = 1e-5
#: the spread of the position embedding's initialisation (official value)
POSITION_INIT_STD = 0.01


def concat_elu(x: Tensor) -> Tensor:
    """``elu([x, −x])`` on the channel axis: twice the channels."""
    return F.elu(torch.cat((x, -x), dim=1))


def gate(x: Tensor) -> Tensor:
    """``a·σ(b)`` for the first and second half of the channels."""
    a, b = x.chunk(2, dim=1)
    return a * torch.sigmoid(b)


class LayerNorm(nn.Module):
    """Normalise over the channels of each pixel (biased variance, ε = 1e-5), then a learned gain and bias."""

    def __init__(self, channels: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(channels))
        self.b = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        # PyTorch's fused layer_norm over the last dimension (3× faster on a CPU than a variance over dim 1); its
        # output stays in the channels-last layout, which the convolutions after it take as they are
        return F.layer_norm(x.permute(0, 2, 3, 1), self.g.shape, self.g, self.b, LAYERNORM_EPS).permute(0, 3, 1, 2)


class GatedConv(nn.Module):
    """A gated residual convolution; ``a_proj`` adds the auxiliary ``context`` when there is one.

    ``second_kernel`` is 1 in the couplings (``use_nin``) and 3 in the dequantizer's context network.
    """

    def __init__(self, channels: int, *, context_channels: int = 0, second_kernel: int = 1, dropout: float = 0.0):
        super().__init__()
        self.c1 = Conv(2 * channels, channels, kernel=3)
        self.a_proj = Conv(2 * context_channels, channels, kernel=1) if context_channels else None
        self.c2 = Conv(2 * channels, 2 * channels, kernel=second_kernel, init_scale=BRANCH_INIT_SCALE)
        self.dropout = dropout

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        c1 = self.c1(concat_elu(x))
        if self.a_proj is not None:
            c1 = c1 + self.a_proj(concat_elu(context))
        c1 = F.dropout(concat_elu(c1), self.dropout, self.training)
        return x + gate(self.c2(c1))


class GatedAttention(nn.Module):
    """Gated multi-head self-attention over all positions, with the position embedding added to its input."""

    def __init__(self, channels: int, *, heads: int, dropout: float = 0.0):
        super().__init__()
        self.proj1 = Conv(channels, 3 * channels, kernel=1)
        self.proj2 = Conv(channels, 2 * channels, kernel=1, init_scale=BRANCH_INIT_SCALE)
        self.heads = heads
        self.dropout = dropout

    def forward(self, x: Tensor, position: Tensor) -> Tensor:
        height = x.shape[2]
        qkv = self.proj1(x + position)  # (B, 3F, H, W), channels ordered (q/k/v, head, dim) as the official reshape
        # contiguous, so that d is the innermost dimension: the fused attention kernels need it, and without it
        # PyTorch falls back to forming every (HW × HW) score matrix (7× slower at 32×32 on a CPU)
        q, k, v = rearrange(qkv, "b (s n d) h w -> s b n (h w) d", s=3, n=self.heads).contiguous()
        a = F.scaled_dot_product_attention(q, k, v)  # softmax(q·kᵀ/√d)·v; dropout acts on the output, below
        a = rearrange(a, "b n (h w) d -> b (n d) h w", h=height)
        a = F.dropout(a, self.dropout, self.training)
        return x + gate(self.proj2(a))


class Block(nn.Module):
    """Gated convolution, LayerNorm, gated attention, LayerNorm."""

    def __init__(self, filters: int, *, heads: int, dropout: float, context_channels: int):
        super().__init__()
        self.conv = GatedConv(filters, context_channels=context_channels, dropout=dropout)
        self.ln1 = LayerNorm(filters)
        self.attn = GatedAttention(filters, heads=heads, dropout=dropout)
        self.ln2 = LayerNorm(filters)

    def forward(self, h: Tensor, position: Tensor, context: Tensor | None) -> Tensor:
        h = self.ln1(self.conv(h, context))
        return self.ln2(self.attn(h, position))


class ConditioningNetwork(nn.Module):
    """``(B, C, H, W)`` conditioning half (and optional context) → ``(B, out_channels, H, W)``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        height: int,
        width: int,
        filters: int,
        blocks: int,
        heads: int,
        dropout: float,
        context_channels: int = 0,
    ):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.randn(filters, height, width) * POSITION_INIT_STD)
        self.proj_in = Conv(in_channels, filters, kernel=3)
        self.blocks = nn.ModuleList(
            Block(filters, heads=heads, dropout=dropout, context_channels=context_channels) for _ in range(blocks)
        )
        self.proj_out = Conv(filters, out_channels, kernel=3, init_scale=BRANCH_INIT_SCALE)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.proj_in(x)
        for block in self.blocks:
            h = block(h, self.pos_emb, context)
        return self.proj_out(h)
