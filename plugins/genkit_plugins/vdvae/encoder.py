"""The Very Deep VAE's bottom-up encoder (Child 2021, openai/vdvae).

A 3×3 convolution lifts the image to the top width; residual blocks follow, some ending in average
pooling. The last activation at every resolution is kept for the decoder's posteriors, zero-padded
in channels where a coarser resolution is wider (custom widths).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from genkit_plugins.bottleneck import conv
from genkit_plugins.vdvae.config import VDVAEConfig


class Encoder(nn.Module):
    """Image features ``(B, C, H, W)`` -> the last activation at each resolution, ``{R: (B, width(R), R, R)}``."""

    def __init__(self, config: VDVAEConfig):
        super().__init__()
        stages = config.encoder_stages()
        self.in_conv = conv(config.image_channels, config.width, 3)
        scale = math.sqrt(1.0 / len(stages))
        self.enc_blocks = nn.ModuleList(
            config.block.build(
                "block",
                in_width=config.width_at(s.resolution),
                middle_width=config.middle_width(s.resolution),
                out_width=config.width_at(s.resolution),
                resolution=s.resolution,
                residual=True,
                zero_last=False,
                last_scale=scale,
            )
            for s in stages
        )
        self.downsample = config.downsampler.build("resampler")
        self.pool_factors = [s.factor for s in stages]
        # channels to zero-pad after each block so the activation has its resolution's width
        self.pads = [config.width_at(s.resolution // (s.factor or 1)) - config.width_at(s.resolution) for s in stages]

    def forward(self, x: Tensor) -> dict[int, Tensor]:
        x = self.in_conv(x)
        activations = {x.shape[2]: x}
        for block, factor, pad in zip(self.enc_blocks, self.pool_factors, self.pads):
            x = block(x)
            if factor is not None:
                x = self.downsample(x, factor)
            if pad:
                x = F.pad(x, (0, 0, 0, 0, 0, pad))
            activations[x.shape[2]] = x
        return activations
