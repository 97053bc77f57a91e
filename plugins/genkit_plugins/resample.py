"""Parameter-free resampling between the Very Deep VAE's resolutions (Child 2021, openai/vdvae).

The encoder halves (or quarters…) a resolution by average pooling; the decoder brings a coarser
state up by nearest-neighbour unpooling, so each coarse value is copied into a ``factor × factor``
patch.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from genkit.hookspecs import hookimpl
from genkit.interfaces import Downsampler, Upsampler


class NearestUpsampler(Upsampler):
    """Nearest-neighbour unpooling: every value fills a factor × factor patch."""

    def __init__(self, settings=None):
        super().__init__()

    def forward(self, x: Tensor, factor: int) -> Tensor:
        return F.interpolate(x, scale_factor=factor, mode="nearest")


class AvgPoolDownsampler(Downsampler):
    """Average pooling over non-overlapping factor × factor patches."""

    def __init__(self, settings=None):
        super().__init__()

    def forward(self, x: Tensor, factor: int) -> Tensor:
        return F.avg_pool2d(x, kernel_size=factor, stride=factor)


@hookimpl
def genkit_register_resamplers(register):
    register("nearest", NearestUpsampler)
    register("avgpool", AvgPoolDownsampler)
