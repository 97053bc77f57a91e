"""PixelCNN++'s gated residual block (Salimans et al. 2017, openai/pixel-cnn ``nn.gated_resnet``).

For an input ``x`` of F channels and an optional auxiliary input ``a`` from the other stream::

    c1 = conv(concat_elu(x)) + nin(concat_elu(a))      F channels (the nin only when a is given)
    c1 = dropout(concat_elu(c1))                        2F; element-wise, in train mode
    c2 = conv(c1) + h·W                                 2F; init scale 0.1; h·W only with classes
    out = x + A·σ(B),  (A, B) = c2's two halves

``conv`` is the stream's causal convolution, so the block keeps the stream's causality.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genkit.components import ComponentRef
from genkit.errors import ConfigError
from genkit_plugins.pixelcnnpp.kinds import LAYER, CausalLayer, GatedBlock
from genkit_plugins.pixelcnnpp.layers import at_position, concat_elu, put_position, window

GATE_INIT_SCALE = 0.1  # the second convolution's data-dependent init scale (openai/pixel-cnn)
CLASS_WEIGHT_STD = 0.05  # the class-conditional weights' initial spread (openai/pixel-cnn)


class GatedResNet(GatedBlock):
    """PixelCNN++'s gated residual block: concat_elu, a causal conv, dropout, a second conv, gate A·σ(B)."""

    def __init__(
        self,
        settings=None,
        *,
        channels: int,
        conv: ComponentRef,
        skip: ComponentRef = ComponentRef("nin"),
        aux_channels: int = 0,
        dropout: float = 0.5,
        num_classes: int = 0,
    ):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"pixelcnn-block 'gated-resnet': dropout must be in [0, 1), found {dropout}")
        self.channels, self.dropout = channels, dropout
        self.conv_input: CausalLayer = conv.build(LAYER, in_channels=2 * channels, out_channels=channels)
        self.stream = self.conv_input.stream
        if aux_channels:
            self.nin_skip: CausalLayer = skip.build(LAYER, in_channels=2 * aux_channels, out_channels=channels)
            if self.nin_skip.stream != "pointwise":
                raise ConfigError(f"pixelcnn-block 'gated-resnet': skip must be a pointwise layer, found {skip.name!r}")
        self.conv_out: CausalLayer = conv.build(
            LAYER, in_channels=2 * channels, out_channels=2 * channels, init_scale=GATE_INIT_SCALE
        )
        if num_classes:
            self.hw = nn.Parameter(torch.randn(num_classes, 2 * channels) * CLASS_WEIGHT_STD)

    def _gate(self, x: Tensor, c2: Tensor, condition: Tensor | None) -> Tensor:
        if condition is not None:
            c2 = c2 + (condition.to(c2.dtype) @ self.hw.to(c2.dtype))[:, :, None, None]
        a, b = c2.chunk(2, dim=1)
        return x + a * torch.sigmoid(b)

    def forward(self, x: Tensor, aux: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        c1 = self.conv_input(concat_elu(x))
        if aux is not None:
            c1 = c1 + self.nin_skip(concat_elu(aux))
        c1 = F.dropout(concat_elu(c1), self.dropout, self.training)
        return self._gate(x, self.conv_out(c1), condition)

    # --- the cached computation -----------------------------------------------------------------

    def new_cache(self, x: Tensor) -> Tensor:
        """``c1`` (before its nonlinearity) over the whole map, filled in as positions are computed."""
        return x.new_zeros(x.shape[0], self.channels, *x.shape[-2:])

    def at(
        self,
        x: Tensor,
        aux: tuple[Tensor, ...],
        cache: Tensor,
        row: int,
        col: int | None = None,
        condition: Tensor | None = None,
    ) -> Tensor:
        c1 = self.conv_input.at(x, row, col, pre=concat_elu)
        if aux:
            cols = (0, x.shape[-1]) if col is None else (col, col + 1)
            here = torch.cat([window(a, (row, row + 1), cols) for a in aux], dim=1)
            c1 = c1 + self.nin_skip(concat_elu(here))
        put_position(cache, row, col, c1)
        return self._gate(at_position(x, row, col), self.conv_out.at(cache, row, col, pre=concat_elu), condition)
