"""The Very Deep VAE: a hierarchical VAE with dozens of latent layers.

Child (2021), "Very Deep VAEs Generalize Autoregressive Models and Can Outperform Them on Images",
ICLR; reference implementation openai/vdvae. A bottom-up encoder (``encoder.py``) feeds a top-down
decoder (``decoder.py``) whose every block is a latent layer with a prior p(z_i | z_<i) and a
posterior q(z_i | z_<i, x); the output is a likelihood over the discrete pixels (DMOL by default).

The loss is the negative ELBO in nats per dimension: distortion −log p(x | z) plus rate
Σ_i KL(q_i ‖ p_i). ``latents="mean"`` puts every z at its mean (the posterior's when encoding, the
prior's when generating), the deterministic mode in which genkit reproduces the reference's numbers.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor

from genkit.capabilities import Encodable, ImportanceWeighted, LatentVariables, Recomputable, RecomputableUnit
from genkit.errors import ConfigError
from genkit.interfaces import GenerativeModel, LossTerms, Objective, finite_outputs, resolve_sampler
from genkit.latents import POSTERIOR_DRAW, POSTERIOR_MEAN, Latents, LatentTensor, check_latents
from genkit_plugins.dmol import build_likelihood
from genkit_plugins.vdvae.config import VDVAEConfig
from genkit_plugins.vdvae.decoder import Decoder
from genkit_plugins.vdvae.encoder import Encoder

LATENT_MODES = ("sample", "mean")


class VDVAE(GenerativeModel, LatentVariables, ImportanceWeighted, Encodable, Recomputable):
    """Very Deep VAE (Child 2021) assembled from block, resampler, latent and likelihood plugins."""

    objective = Objective(
        "negative ELBO", key="elbo", parts=("distortion", "rate"), estimate="one posterior sample per image"
    )
    samplers = ("ancestral",)

    def __init__(self, settings: VDVAEConfig):
        super().__init__()
        self.config = settings
        self.image_shape = (settings.image_size, settings.image_size, settings.image_channels)
        self.bits = settings.bits
        self.likelihood = build_likelihood(
            settings.likelihood,
            channels=settings.image_channels,
            bits=settings.bits,
            num_mixtures=settings.num_mixtures,
        )
        self.encoder = Encoder(settings)
        self.decoder = Decoder(settings, self.likelihood.param_channels)

    # --- shapes and conversions ----------------------------------------------------------------

    @property
    def n_latent_layers(self) -> int:
        return len(self.decoder.dec_blocks)

    @property
    def layer_resolutions(self) -> list[int]:
        """The resolution of every latent layer, top (coarsest) first."""
        return [block.resolution for block in self.decoder.dec_blocks]

    def recomputable_units(self) -> list[RecomputableUnit]:
        """Every encoder stage (its blocks at one resolution, up to the pooling), then every decoder block (a latent
        layer: its prior, posterior, z and residual)."""
        encoder = [
            RecomputableUnit(f"encoder.stages.{i}", stage.resolution, stage)
            for i, stage in enumerate(self.encoder.stages)
        ]
        decoder = [
            RecomputableUnit(f"decoder.dec_blocks.{i}", block.resolution, block)
            for i, block in enumerate(self.decoder.dec_blocks)
        ]
        return encoder + decoder

    def _dtype(self) -> torch.dtype:
        return self.decoder.gain.dtype

    def preprocess(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``uint8`` ``(B, H, W, C)`` -> (encoder input, likelihood target), both ``(B, C, H, W)`` (reference
        ``data.py``)."""
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != self.image_shape:
            raise ConfigError(
                f"vdvae: expected uint8 images of shape (B, {', '.join(map(str, self.image_shape))}), "
                f"found {images.dtype} {tuple(images.shape)}"
            )
        c = self.config
        x = rearrange(images, "b h w c -> b c h w").to(device=self.decoder.gain.device, dtype=self._dtype())
        inputs = ((x / 255.0 if c.input_unit_range else x) + c.input_shift) * c.input_scale
        if c.bits < 8:
            step = 2 ** (8 - c.bits)
            x = torch.floor(x / step) * step
        return inputs, (x - 127.5) / 127.5

    def to_uint8(self, levels: Tensor) -> Tensor:
        """Level-grid values in [-1, 1] ``(B, C, H, W)`` -> ``uint8`` images ``(B, H, W, C)``; b-bit level k becomes
        k·2^(8−b)."""
        top = 2**self.config.bits - 1
        k = torch.round((levels.clamp(-1, 1) + 1) * (top / 2))
        return rearrange((k * 2 ** (8 - self.config.bits)).to(torch.uint8), "b c h w -> b h w c")

    def _temperatures(self, temperature: float | list[float] | tuple[float, ...]) -> list[float]:
        if isinstance(temperature, (list, tuple)):
            if len(temperature) != self.n_latent_layers:
                raise ConfigError(
                    f"vdvae: expected one temperature per latent layer ({self.n_latent_layers}), "
                    f"found {len(temperature)}"
                )
            values = [float(t) for t in temperature]
        else:
            values = [float(temperature)] * self.n_latent_layers
        if any(t < 0 or not math.isfinite(t) for t in values):
            raise ConfigError(f"vdvae: temperatures must be finite and ≥ 0, found {temperature}")
        return values

    @staticmethod
    def _check_latents(latents: str) -> None:
        if latents not in LATENT_MODES:
            raise ConfigError(f"vdvae: latents must be 'sample' or 'mean', found {latents!r}")

    # --- the objective ----------------------------------------------------------------------------

    def forward(self, images: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> LossTerms:
        self._check_latents(latents)
        inputs, target = self.preprocess(images)
        params, layers = self.decoder(images.shape[0], self.encoder(inputs), latents=latents, generator=generator)
        dims = self.dims_per_image
        distortion = -self.likelihood.log_prob(params, target) / dims
        layer_kl = torch.stack([layer.kl for layer in layers], dim=1)  # (B, L), nats per image
        rate = layer_kl.sum(dim=1) / dims
        elbo = distortion + rate
        return LossTerms(elbo, {"distortion": distortion, "rate": rate}, layer_kl)

    def importance_log_weights(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """log p(x | z) + log p(z) − log q(z | x) at one z ~ q, nats per image ``(B,)``."""
        inputs, target = self.preprocess(images)
        params, layers = self.decoder(images.shape[0], self.encoder(inputs), generator=generator, want_log_ratio=True)
        return self.likelihood.log_prob(params, target) + torch.stack([layer.log_ratio for layer in layers], dim=1).sum(
            dim=1
        )

    # --- likelihood parameters (for comparisons with the reference) ---------------------------------

    def posterior_params(
        self, images: Tensor, latents: str = "mean", generator: torch.Generator | None = None
    ) -> Tensor:
        """The likelihood's parameters ``(B, P, H, W)`` given ``images``, z from the posterior."""
        self._check_latents(latents)
        inputs, _ = self.preprocess(images)
        return self.decoder(images.shape[0], self.encoder(inputs), latents=latents, generator=generator)[0]

    def prior_params(
        self,
        n: int,
        temperature: float | list[float] = 1.0,
        latents: str = "sample",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The likelihood's parameters ``(n, P, H, W)`` of ``n`` unconditional draws, z from the prior."""
        self._check_latents(latents)
        return self.decoder(
            n, None, latents=latents, temperatures=self._temperatures(temperature), generator=generator
        )[0]

    # --- generation -------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float | list[float] = 1.0,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
        latents: str = "sample",
    ) -> Tensor:
        """Ancestral sampling, top layer first; ``latents="mean"`` puts every z at its prior's mean."""
        resolve_sampler(self, sampler)
        params = finite_outputs(self.prior_params(n, temperature, latents, generator), "vdvae")
        return self.to_uint8(self.likelihood.sample(params, generator=generator))

    @torch.no_grad()
    def reconstruct(
        self, images: Tensor, keep_layers: int, temperature: float = 0.1, generator: torch.Generator | None = None
    ) -> Tensor:
        """The first ``keep_layers`` latents drawn from the posterior, the rest from the prior at ``temperature`` (the
        paper's Figure 4)."""
        if not 0 <= keep_layers <= self.n_latent_layers:
            raise ConfigError(f"vdvae: keep_layers must be between 0 and {self.n_latent_layers}, found {keep_layers}")
        (t,) = set(self._temperatures(temperature)[:1])
        inputs, _ = self.preprocess(images)
        temperatures = [1.0] * keep_layers + [t] * (self.n_latent_layers - keep_layers)
        params, _ = self.decoder(
            images.shape[0],
            self.encoder(inputs),
            temperatures=temperatures,
            posterior_layers=keep_layers,
            generator=generator,
        )
        return self.to_uint8(self.likelihood.sample(finite_outputs(params, "vdvae"), generator=generator))

    def pictures(
        self, images: Tensor, *, generator: torch.Generator | None, temperature: float
    ) -> dict[str, tuple[Tensor, int]]:
        """The reconstruction grid of the paper's Figure 4: each image, then its reconstructions keeping the first
        1, 2, 4, … latent layers and drawing the rest from the prior."""
        return {"reconstructions": self.reconstruction_grid(images, temperature=temperature, generator=generator)}

    # --- latents out and back in ------------------------------------------------------------------

    @property
    def latent_layout(self) -> list[LatentTensor]:
        """One tensor ``layer_i`` of shape ``(zdim, R, R)`` per latent layer, top (coarsest) first."""
        digits = len(str(self.n_latent_layers - 1))
        return [
            LatentTensor(f"layer_{i:0{digits}d}", (self.config.zdim, r, r), layer=i, resolution=r)
            for i, r in enumerate(self.layer_resolutions)
        ]

    @torch.no_grad()
    def encode_latents(
        self, images: Tensor, latents: str = "mean", generator: torch.Generator | None = None
    ) -> Latents:
        """Every layer's z from its posterior q(z_i | z_<i, x), top first: its mean, the layers above at theirs
        (``latents="mean"``), or a draw given the draws above (``"sample"``)."""
        self._check_latents(latents)
        inputs, _ = self.preprocess(images)
        _, layers = self.decoder(images.shape[0], self.encoder(inputs), latents=latents, generator=generator)
        tensors = {spec.name: layer.z for spec, layer in zip(self.latent_layout, layers)}
        return Latents(tensors, POSTERIOR_MEAN if latents == "mean" else POSTERIOR_DRAW)

    @torch.no_grad()
    def decode_latents(
        self,
        latents: Latents,
        keep: int | None = None,
        temperature: float | list[float] = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The first ``keep`` layers' z from ``latents`` (default: every layer), the rest drawn from the prior at
        ``temperature`` given them, then the image drawn from the likelihood."""
        layout = self.latent_layout
        check_latents(latents, layout, "vdvae")
        keep = len(layout) if keep is None else keep
        if not 0 <= keep <= len(layout):
            raise ConfigError(f"vdvae: keep must be between 0 and {len(layout)} latent layers, found {keep}")
        given = [latents.tensors[spec.name].to(self.decoder.gain) for spec in layout[:keep]]
        params, _ = self.decoder(
            latents.count, None, temperatures=self._temperatures(temperature), given=given, generator=generator
        )
        return self.to_uint8(self.likelihood.sample(finite_outputs(params, "vdvae"), generator=generator))
