"""PixelCNN++'s two-stream U-Net (Salimans et al. 2017, openai/pixel-cnn ``pixel_cnn_pp/model.py``).

Two streams run side by side: ``u`` sees the rows above a pixel (down-shifted convolutions), ``ul``
the rows above and the pixels to its left (down-right-shifted convolutions), fed ``u`` through
1×1 links. The input is the image with a constant channel of ones (so zero padding can be told
from a black pixel)::

    u  = down_shift(conv 2×3 (x))
    ul = down_shift(conv 1×3 (x)) + right_shift(conv 2×1 (x))

    up pass    at 32, 16, 8 px: nr_resnet blocks on each stream, a stride-2 conv after the first
               two; every output is pushed on a stack (1 + nr_resnet + 1 + nr_resnet + 1 + nr_resnet)
    down pass  at 8 px nr_resnet blocks, then at 16 and 32 px (after a stride-2 transposed conv)
               nr_resnet + 1 each; the u block takes the next stacked u, the ul block the new u
               and the next stacked ul (so the stacks empty exactly)
    output     nin(elu(ul)) → the likelihood's parameters

H and W that are not multiples of 4 are padded at the bottom and right, where nothing an earlier
pixel sees changes. Module names follow the widely used PyTorch port (pclucas14/pixel-cnn-pp), so
its checkpoints map key for key.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genkit.capabilities import RecomputableUnit
from genkit.components import ComponentRef, component
from genkit_plugins.pixelcnnpp.kinds import BLOCK, LAYER, IncrementalNetwork, PixelNetwork
from genkit_plugins.precision import without_autocast

LEVELS = 3  # resolutions: the image's, a half and a quarter


@attrs.frozen
class TwoStreamConfig:
    """Settings of the ``two-stream-unet`` network: the components it is built from."""

    block: ComponentRef = component(BLOCK, "gated-resnet")
    down_shifted: ComponentRef = component(LAYER, "down-shifted-conv")
    down_right_shifted: ComponentRef = component(LAYER, "down-right-shifted-conv")
    down_shifted_deconv: ComponentRef = component(LAYER, "down-shifted-deconv")
    down_right_shifted_deconv: ComponentRef = component(LAYER, "down-right-shifted-deconv")
    nin: ComponentRef = component(LAYER, "nin")


class StreamPair(nn.Module):
    """The blocks of one resolution of one pass: ``u_stream`` (vertical) and ``ul_stream`` (horizontal)."""

    def __init__(self, u_blocks: list[nn.Module], ul_blocks: list[nn.Module]):
        super().__init__()
        self.u_stream = nn.ModuleList(u_blocks)
        self.ul_stream = nn.ModuleList(ul_blocks)

    def pairs(self):
        return zip(self.u_stream, self.ul_stream)


class TwoStreamUNet(PixelNetwork):
    """PixelCNN++'s two-stream U-Net: three resolutions, nr_resnet gated blocks each, skip connections."""

    row_multiple = 2 ** (LEVELS - 1)

    def __init__(
        self,
        settings: TwoStreamConfig | None = None,
        *,
        in_channels: int,
        out_channels: int,
        nr_resnet: int,
        nr_filters: int,
        dropout: float,
        num_classes: int = 0,
    ):
        super().__init__()
        s = settings or TwoStreamConfig()
        f = self.nr_filters = nr_filters
        self.in_channels = in_channels

        def layer(ref: ComponentRef, **context) -> nn.Module:
            return ref.build(LAYER, **context)

        def blocks(conv: ComponentRef, aux: int, n: int) -> list[nn.Module]:
            return [
                s.block.build(
                    BLOCK,
                    channels=f,
                    conv=conv,
                    skip=s.nin,
                    aux_channels=aux * f,
                    dropout=dropout,
                    num_classes=num_classes,
                )  # fmt: skip
                for _ in range(n)
            ]

        # the up pass's u blocks have no auxiliary input, its ul blocks take u; the down pass's u blocks take the
        # stacked u, its ul blocks the new u and the stacked ul
        self.up_layers = nn.ModuleList(
            StreamPair(blocks(s.down_shifted, 0, nr_resnet), blocks(s.down_right_shifted, 1, nr_resnet))
            for _ in range(LEVELS)
        )
        self.down_layers = nn.ModuleList(
            StreamPair(blocks(s.down_shifted, 1, n), blocks(s.down_right_shifted, 2, n))
            for n in [nr_resnet] + [nr_resnet + 1] * (LEVELS - 1)
        )
        self.downsize_u_stream = nn.ModuleList(
            layer(s.down_shifted, in_channels=f, out_channels=f, stride=2) for _ in range(LEVELS - 1)
        )
        self.downsize_ul_stream = nn.ModuleList(
            layer(s.down_right_shifted, in_channels=f, out_channels=f, stride=2) for _ in range(LEVELS - 1)
        )
        self.upsize_u_stream = nn.ModuleList(
            layer(s.down_shifted_deconv, in_channels=f, out_channels=f, stride=2) for _ in range(LEVELS - 1)
        )
        self.upsize_ul_stream = nn.ModuleList(
            layer(s.down_right_shifted_deconv, in_channels=f, out_channels=f, stride=2) for _ in range(LEVELS - 1)
        )
        c = in_channels + 1  # the image and a channel of ones
        self.u_init = layer(s.down_shifted, in_channels=c, out_channels=f, filter_size=(2, 3), shift_output=True)
        self.ul_init = nn.ModuleList(
            [
                layer(s.down_shifted, in_channels=c, out_channels=f, filter_size=(1, 3), shift_output=True),
                layer(s.down_right_shifted, in_channels=c, out_channels=f, filter_size=(2, 1), shift_output=True),
            ]
        )
        self.nin_out = layer(s.nin, in_channels=f, out_channels=out_channels)

    def with_ones(self, x: Tensor) -> Tensor:
        """``x`` with the constant channel of ones appended: the network's input."""
        return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)

    def output(self, ul: Tensor) -> Tensor:
        """The likelihood's parameters from the last ``ul`` (outside bf16 autocast: they become densities)."""
        return without_autocast(self.nin_out, F.elu(ul))

    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor:
        h, w = x.shape[-2:]
        m = self.row_multiple
        x = self.with_ones(F.pad(x, (0, -w % m, 0, -h % m)))
        # up pass: every output pushed on the two stacks
        u_list = [self.u_init(x)]
        ul_list = [self.ul_init[0](x) + self.ul_init[1](x)]
        for level, pair in enumerate(self.up_layers):
            for u_block, ul_block in pair.pairs():
                u_list.append(u_block(u_list[-1], condition=condition))
                ul_list.append(ul_block(ul_list[-1], u_list[-1], condition))
            if level < LEVELS - 1:
                u_list.append(self.downsize_u_stream[level](u_list[-1]))
                ul_list.append(self.downsize_ul_stream[level](ul_list[-1]))
        # down pass: each block takes the next stacked output
        u, ul = u_list.pop(), ul_list.pop()
        for level, pair in enumerate(self.down_layers):
            for u_block, ul_block in pair.pairs():
                u = u_block(u, u_list.pop(), condition)
                ul = ul_block(ul, torch.cat([u, ul_list.pop()], dim=1), condition)
            if level < LEVELS - 1:
                u = self.upsize_u_stream[level](u)
                ul = self.upsize_ul_stream[level](ul)
        return self.output(ul)[:, :, :h, :w]

    def recomputable_units(self, height: int) -> list[RecomputableUnit]:
        """Every gated block of both passes, each stream's block of a pair before the other's, as ``forward`` runs
        them."""
        full = height + (-height % self.row_multiple)
        units = []
        passes = (
            ("up_layers", self.up_layers, range(LEVELS)),
            ("down_layers", self.down_layers, reversed(range(LEVELS))),
        )
        for name, layers, halvings in passes:
            for level, (pair, halved) in enumerate(zip(layers, halvings)):
                for i, (u_block, ul_block) in enumerate(pair.pairs()):
                    for stream, block in (("u_stream", u_block), ("ul_stream", ul_block)):
                        units.append(RecomputableUnit(f"{name}.{level}.{stream}.{i}", full >> halved, block))
        return units

    def incremental(self, x: Tensor, condition: Tensor | None = None) -> IncrementalNetwork:
        from genkit_plugins.pixelcnnpp.cache import UNetCache

        return UNetCache(self, x, condition)
