"""A categorical likelihood: every channel of every pixel gets its own softmax over the ``2**bits`` levels.

The output distribution of PixelRNN/PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural
Networks", §3.4), an alternative to the discretized logistic mixture: it makes no assumption
that neighbouring levels have similar probability, so it can put its mass on exactly the levels a
data set uses (the 17 grey levels of the embedded digits, for instance), at the price of
``2**bits`` parameters per channel instead of a few per mixture component.
"""

from __future__ import annotations

import attrs
import torch
from einops import rearrange
from torch import Tensor

from genkit.hookspecs import hookimpl
from genkit.interfaces import Likelihood, levels
from genkit_plugins.precision import at_least_float32


@attrs.frozen
class CategoricalSettings:
    """No settings: the alphabet is the ``2**bits`` levels of the data."""


class Categorical(Likelihood):
    """Independent softmax over the ``2**bits`` levels for every channel of every pixel (van den Oord 2016)."""

    def __init__(self, settings: CategoricalSettings, channels: int, bits: int):
        super().__init__()
        self.channels, self.bits = channels, bits
        self.register_buffer("grid", levels(bits, dtype=torch.float32), persistent=False)

    @property
    def param_channels(self) -> int:
        return self.channels * 2**self.bits

    def _logits(self, params: Tensor) -> Tensor:
        # (B, C·K, H, W) -> (B, C, H, W, K)
        return rearrange(params, "b (c k) h w -> b c h w k", c=self.channels)

    def _index(self, x: Tensor) -> Tensor:
        """Level-grid values in [-1, 1] -> level numbers 0 … 2**bits − 1."""
        top = 2**self.bits - 1
        return torch.round((x.clamp(-1, 1) + 1) * (top / 2)).long()

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        log_p = torch.log_softmax(at_least_float32(self._logits(params)), dim=-1)
        picked = log_p.gather(-1, self._index(x)[..., None]).squeeze(-1)  # (B, C, H, W)
        return picked.flatten(1).sum(1)  # at least float32, like the parameters it sums over

    @property
    def noise_channels(self) -> int:
        return self.channels

    @torch.no_grad()
    def sample(self, params: Tensor, generator: torch.Generator | None = None, noise: Tensor | None = None) -> Tensor:
        """Inverse-CDF sampling: the first level whose cumulative probability exceeds the channel's uniform number."""
        noise = self.draw_noise(params, generator) if noise is None else noise
        cdf = torch.softmax(at_least_float32(self._logits(params)), dim=-1).cumsum(-1)  # (B, C, H, W, K)
        index = (cdf < noise.to(cdf.dtype)[..., None]).sum(-1).clamp(max=cdf.shape[-1] - 1)
        return self.grid.to(params.device, params.dtype)[index]

    def mode(self, params: Tensor) -> Tensor:
        return self.grid.to(params.device, params.dtype)[self._logits(params).argmax(-1)]


@hookimpl
def genkit_register_likelihoods(register):
    register("categorical", Categorical, config=CategoricalSettings)
