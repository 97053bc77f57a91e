"""The Very Deep VAE's top-down decoder (Child 2021, openai/vdvae).

The state starts from learned biases (zeros above ``no_bias_above``) and passes through decoder
blocks from the coarsest resolution up. Each block is one latent layer:

    prior net  p(z | state)                → (prior params, a feature added to the state)
    posterior  q(z | state, encoder act.)  (when encoding)
    state += z_proj(z); state = resnet(state)

The final state goes through a per-channel gain and bias and a 1×1 convolution to the likelihood's
parameters. The posterior and prior are latent-family plugins built per layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from genkit.interfaces import kl_divergence
from genkit_plugins.bottleneck import conv
from genkit_plugins.precision import at_least_float32, without_autocast
from genkit_plugins.vdvae.blockstr import Stage
from genkit_plugins.vdvae.config import VDVAEConfig


class LayerOutput(NamedTuple):
    state: Tensor  # (B, width, R, R)
    kl: Tensor | None  # KL(q ‖ p) of the layer, nats per image (B,), when encoding
    log_ratio: Tensor | None  # log p(z) − log q(z), nats per image (B,), when asked for
    z: Tensor | None = None  # the layer's latents (B, zdim, R, R)


class DecoderBlock(nn.Module):
    """One latent layer at resolution R: prior net, posterior net (``enc``), ``z_proj`` and a residual block."""

    def __init__(self, config: VDVAEConfig, stage: Stage, n_blocks: int):
        super().__init__()
        self.resolution, self.mixin = stage.resolution, stage.factor
        self.width = width = config.width_at(stage.resolution)
        middle = config.middle_width(stage.resolution)
        self.posterior_family = config.posterior.build("latent", zdim=config.zdim)
        self.prior_family = config.prior.build("latent", zdim=config.zdim)
        block = lambda **kw: config.block.build("block", middle_width=middle, resolution=stage.resolution, **kw)  # noqa: E731
        scale = math.sqrt(1.0 / n_blocks)
        self.enc = block(
            in_width=2 * width,
            out_width=self.posterior_family.param_channels,
            residual=False,
            zero_last=False,
            last_scale=1.0,
        )
        # the prior's last conv starts at zero: a fresh layer's prior is N(0, 1) and adds nothing to the state
        self.prior = block(
            in_width=width,
            out_width=self.prior_family.param_channels + width,
            residual=False,
            zero_last=True,
            last_scale=1.0,
        )
        self.z_proj = conv(config.zdim, width, 1)
        self.z_proj.weight.data.mul_(scale)
        self.resnet = block(in_width=width, out_width=width, residual=True, zero_last=False, last_scale=scale)

    def forward(
        self,
        state: Tensor,
        activation: Tensor | None,
        *,
        latents: str,
        temperature: float,
        generator: torch.Generator | None,
        want_log_ratio: bool = False,
        given: Tensor | None = None,
    ) -> LayerOutput:
        """``activation`` is the encoder's at this resolution (z from the posterior) or ``None`` (z from the prior);
        ``given`` is a z to take as it is instead (decoding latents a user holds)."""
        features = self.prior(state)
        n = self.prior_family.param_channels
        prior = self.prior_family(at_least_float32(features[:, :n]), temperature)
        kl = log_ratio = None
        if given is not None:
            z = given
        elif activation is None:
            z = prior.mean if latents == "mean" else prior.rsample(generator)
        else:
            posterior = self.posterior_family(at_least_float32(self.enc(torch.cat([state, activation], dim=1))))
            z = posterior.mean if latents == "mean" else posterior.rsample(generator)
            kl = kl_divergence(posterior, prior, z).sum(dim=(1, 2, 3))
            if want_log_ratio:
                log_ratio = (prior.log_prob(z) - posterior.log_prob(z)).sum(dim=(1, 2, 3))
        state = state + features[:, n:]
        state = state + self.z_proj(z)
        return LayerOutput(self.resnet(state), kl, log_ratio, z)


class OutNet(nn.Module):
    """The 1×1 convolution from the final state to the likelihood's parameters (the reference's ``out_net``)."""

    def __init__(self, width: int, param_channels: int):
        super().__init__()
        self.out_conv = conv(width, param_channels, 1)

    def forward(self, state: Tensor) -> Tensor:
        # the likelihood's parameters need float32 (genkit_plugins.precision)
        return without_autocast(self.out_conv, state)


class Decoder(nn.Module):
    """Top-down generator: encoder activations (or nothing) -> likelihood parameters ``(B, P, H, W)``."""

    def __init__(self, config: VDVAEConfig, param_channels: int):
        super().__init__()
        stages = config.decoder_stages()
        self.image_size = config.image_size
        self.dec_blocks = nn.ModuleList(DecoderBlock(config, stage, len(stages)) for stage in stages)
        resolutions = sorted({stage.resolution for stage in stages})
        self.bias_resolutions = [r for r in resolutions if r <= config.no_bias_above]
        self.bias_xs = nn.ParameterList(
            nn.Parameter(torch.zeros(1, config.width_at(r), r, r)) for r in self.bias_resolutions
        )
        self.unpool = config.upsampler.build("resampler")
        self.gain = nn.Parameter(torch.ones(1, config.width, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, config.width, 1, 1))
        self.out_net = OutNet(config.width, param_channels)

    def forward(
        self,
        batch: int,
        activations: dict[int, Tensor] | None,
        *,
        latents: str = "sample",
        temperatures: list[float] | None = None,
        posterior_layers: int | None = None,
        generator: torch.Generator | None = None,
        want_log_ratio: bool = False,
        given: Sequence[Tensor] = (),
    ) -> tuple[Tensor, list[LayerOutput]]:
        """Run every layer; the first ``posterior_layers`` (default: all when ``activations`` is given,
        none otherwise) take z from the posterior, the rest from the prior at ``temperatures[i]``; or with
        ``given`` (and no ``activations``), the first ``len(given)`` layers take those z as they are."""
        if posterior_layers is None:
            posterior_layers = len(self.dec_blocks) if activations is not None else 0
        temperatures = temperatures or [1.0] * len(self.dec_blocks)
        reference = self.gain
        states: dict[int, Tensor] = dict(zip(self.bias_resolutions, self.bias_xs))
        outputs = []
        for i, block in enumerate(self.dec_blocks):
            r = block.resolution
            state = states.get(r)
            if state is None:
                state = torch.zeros(batch, block.width, r, r, dtype=reference.dtype, device=reference.device)
            elif state.shape[0] != batch:
                state = state.expand(batch, -1, -1, -1)
            if block.mixin is not None:
                state = state + self.unpool(states[block.mixin][:, : block.width], r // block.mixin)
            activation = activations[r] if i < posterior_layers else None
            out = block(
                state,
                activation,
                latents=latents,
                temperature=temperatures[i],
                generator=generator,
                want_log_ratio=want_log_ratio,
                given=given[i] if i < len(given) else None,
            )
            states[r] = out.state
            outputs.append(out)
        final = states[self.image_size] * self.gain + self.bias
        return self.out_net(final), outputs
