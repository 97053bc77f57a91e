"""The Very Deep VAE's bottom-up encoder (Child 2021, openai/vdvae).

A 3×3 convolution lifts the image to the top width; residual blocks follow, some ending in average
pooling. The last activation at every resolution is kept for the decoder's posteriors, zero-padded
in channels where a coarser resolution is wider (custom widths).

The blocks run in stages (:class:`EncoderStage`): the blocks at one resolution up to and including
the one that pools. A stage is the unit activation checkpointing recomputes, so that only what
leaves a stage — its last activation and the pooled map — is kept for the backward pass.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from genkit_plugins.bottleneck import conv
from genkit_plugins.vdvae.config import VDVAEConfig


class EncoderStage(nn.Module):
    """Consecutive encoder blocks at one ``resolution``, the last of them possibly pooling.

    Holds no weights of its own: its blocks stay registered in ``Encoder.enc_blocks`` only, under the
    reference's parameter names, and the stage refers to them.
    """

    def __init__(self, resolution: int, steps: list[tuple[nn.Module, nn.Module, int | None, int]]):
        super().__init__()
        self.resolution = resolution
        # (block, downsampler, pooling factor or None, channels to zero-pad); held in a tuple, which registers nothing
        self._steps = tuple(steps)

    def forward(self, x: Tensor) -> tuple[Tensor, dict[int, Tensor]]:
        """The map leaving the stage, and the last activation at each resolution the stage reached."""
        activations = {}
        for block, downsample, factor, pad in self._steps:
            x = block(x)
            if factor is not None:
                x = downsample(x, factor)
            if pad:
                x = F.pad(x, (0, 0, 0, 0, 0, pad))
            activations[x.shape[2]] = x
        return x, activations


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
        # channels to zero-pad after each block so the activation has its resolution's width
        pads = [config.width_at(s.resolution // (s.factor or 1)) - config.width_at(s.resolution) for s in stages]
        self.stages = nn.ModuleList()
        run: list[tuple[nn.Module, nn.Module, int | None, int]] = []
        for i, (s, block, pad) in enumerate(zip(stages, self.enc_blocks, pads)):
            run.append((block, self.downsample, s.factor, pad))
            last = i + 1 == len(stages) or s.factor is not None or stages[i + 1].resolution != s.resolution
            if last:
                self.stages.append(EncoderStage(s.resolution, run))
                run = []

    def forward(self, x: Tensor) -> dict[int, Tensor]:
        x = self.in_conv(x)
        activations = {x.shape[2]: x}
        for stage in self.stages:
            x, reached = stage(x)
            activations.update(reached)
        return activations
