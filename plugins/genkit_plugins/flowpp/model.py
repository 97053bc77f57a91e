"""Flow++: a normalising flow with variational dequantization, mixture-CDF couplings and self-attention.

Ho, Chen, Srinivas, Duan & Abbeel (2019), "Flow++: Improving Flow-Based Generative Models with
Variational Dequantization and Architecture Design", ICML; official code aravindsrinivas/flowpp
(TensorFlow), whose numbers genkit reproduces. For an image ``x`` of integers ``(B, C, H, W)``::

    ε ~ base noise;  u, log q(u | x) = dequantizer(x, ε)        u ∈ (0, 1)^D
    v = x + u ∈ [0, 256)^D
    z, log|det| = main flow(v)                                   logit preprocessing, split stages
    log p(x + u) = log N(z; 0, I) + log|det|

The figure is the dequantization bound ``−log P(x) ≤ E_q[log q(u | x) − log p(x + u)]`` in nats per
dimension, with no further constant: ``p`` is a density on ``[0, 256)^D``, where each integer image
owns a cell of unit volume (on ``[0, 2^bits)^D`` with ``bits < 8``, as the official 5-bit CelebA
launchers). Its two parts (``LossTerms.parts``) are ``flow`` = −log p(x + u)/D and
``dequant`` = log q(u | x)/D. Sampling inverts the main flow from ``z ~ N(0, T²I)`` and floors ``v``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from einops import rearrange
from torch import Tensor

from genkit.capabilities import (
    DataDependentInit,
    Encodable,
    ImportanceWeighted,
    Invertible,
    Recomputable,
    RecomputableUnit,
)
from genkit.errors import ConfigError
from genkit.interfaces import GenerativeModel, LossTerms, Objective, finite_outputs, resolve_sampler
from genkit.latents import FLOW_Z, Latents, LatentTensor, check_latents
from genkit_plugins.flowpp.config import FlowPPConfig
from genkit_plugins.flowpp.datainit import data_dependent_init
from genkit_plugins.flowpp.flow import MainFlow
from genkit_plugins.flowpp.kinds import DEQUANTIZER, Dequantizer, build
from genkit_plugins.flowpp.layers import standard_normal_log_prob

PARTS = ("flow", "dequant")


class BoundTerms(NamedTuple):
    """Every quantity of the bound at one dequantization draw; per-image figures in nats, ``(B,)``."""

    u: Tensor  # (B, C, H, W), the dequantization noise in (0, 1)
    log_q: Tensor  # log q(u | x)
    z: Tensor  # the main flow's output
    logdet: Tensor  # log|det ∂z/∂v| of the main flow, the logit preprocessing included
    log_prior: Tensor  # log N(z; 0, I)

    @property
    def log_density(self) -> Tensor:
        """log p(x + u)."""
        return self.logdet + self.log_prior

    @property
    def log_weight(self) -> Tensor:
        """log p(x + u) − log q(u | x): the bound's integrand, the importance weight's log."""
        return self.log_density - self.log_q


class FlowPP(GenerativeModel, DataDependentInit, ImportanceWeighted, Invertible, Encodable, Recomputable):
    """Flow++ (Ho et al. 2019) assembled from coupling and dequantizer plugins, faithful to aravindsrinivas/flowpp."""

    objective = Objective("variational dequantization bound", key="bound", parts=PARTS)
    samplers = ("inverse",)

    def __init__(self, settings: FlowPPConfig):
        super().__init__()
        self.config = settings
        self.image_shape = settings.image_shape
        self.bits = settings.bits
        shared = dict(components=settings.components, heads=settings.heads, dropout=settings.dropout)
        layers = dict(norm=settings.norm, pointwise=settings.pointwise)
        self.dequantizer: Dequantizer = build(
            settings.dequantizer,
            DEQUANTIZER,
            image_shape=self.image_shape,
            bits=settings.bits,
            coupling=settings.coupling,
            **layers,
            filters=settings.dequant_filters,
            blocks=settings.dequant_blocks,
            **shared,
        )
        h, w, c = self.image_shape
        sizes = dict(filters=settings.filters, blocks=settings.blocks, **shared)
        self.flow = MainFlow(
            settings.stages,
            (c, h, w),
            settings.coupling,
            sizes,
            levels=2**settings.bits,
            preprocess=settings.preprocess,
            **layers,
        )
        self.objective = Objective(self.dequantizer.bound, key="bound", parts=PARTS)
        # follows .to(): the dtype and device images are brought to (not saved)
        self.register_buffer("anchor", torch.zeros(()), persistent=False)

    def recomputable_units(self) -> list[RecomputableUnit]:
        """The dequantizer's units (a variational one's flow steps), then every step of the main flow."""
        return [
            RecomputableUnit(f"{part}.{unit.name}", unit.resolution, unit.module)
            for part, flow in (("dequantizer", self.dequantizer), ("flow", self.flow))
            for unit in flow.recomputable_units()
        ]

    # --- conversions -----------------------------------------------------------------------------

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of ``z``."""
        return self.flow.latent_shape

    def to_float(self, images: Tensor) -> Tensor:
        """``uint8`` ``(B, H, W, C)`` → the integers (the top ``bits`` bits) as floats ``(B, C, H, W)`` in the model's
        dtype."""
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != self.image_shape:
            raise ConfigError(
                f"flowpp: expected uint8 images of shape (B, {', '.join(map(str, self.image_shape))}), "
                f"found {images.dtype} {tuple(images.shape)}"
            )
        x = rearrange(images >> (8 - self.bits), "b h w c -> b c h w")
        x = x.to(device=self.anchor.device, dtype=self.anchor.dtype)
        return x.contiguous()

    def to_uint8(self, v: Tensor) -> Tensor:
        """Points of ``[0, 2^bits)`` ``(B, C, H, W)`` → their cells' integers as ``uint8`` ``(B, H, W, C)``.

        A ``bits``-bit level ``l`` is stored as ``l·2^(8 − bits)``, the data sets' convention.
        """
        levels = v.clamp(0, 2**self.bits - 1).floor().to(torch.uint8)
        return rearrange(levels << (8 - self.bits), "b c h w -> b h w c")

    # --- the bound ---------------------------------------------------------------------------------

    def bound_terms(self, x: Tensor, eps: Tensor) -> BoundTerms:
        """The bound's terms for float images ``x`` ``(B, C, H, W)`` at the dequantizer's base noise ``eps``."""
        u, log_q = self.dequantizer(x, eps)
        z, logdet = self.flow(x + u)
        log_prior = standard_normal_log_prob(z)
        return BoundTerms(u, log_q, z, logdet, log_prior)

    def _terms(self, images: Tensor, latents: str, generator: torch.Generator | None) -> BoundTerms:
        x = self.to_float(images)
        return self.bound_terms(x, self.dequantizer.noise(x, latents, generator))

    def forward(self, images: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> LossTerms:
        terms = self._terms(images, latents, generator)
        dims = self.dims_per_image
        flow, dequant = -terms.log_density / dims, terms.log_q / dims
        return LossTerms(flow + dequant, {"flow": flow, "dequant": dequant})

    def importance_log_weights(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """log p(x + u) − log q(u | x) at one u ~ q(·|x), nats per image ``(B,)``."""
        return self._terms(images, "sample", generator).log_weight

    @torch.no_grad()
    def initialize(self, images: Tensor) -> None:
        """The official data-dependent init: one forward pass on ``images`` with every init layer armed."""
        with data_dependent_init(self):
            self(images)

    # --- the bijection ------------------------------------------------------------------------------

    def encode(self, images: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> Tensor:
        return self._terms(images, latents, generator).z

    def decode(self, z: Tensor) -> Tensor:
        return self.to_uint8(finite_outputs(self.flow.inverse(z.contiguous())[0], "flowpp"))

    @property
    def latent_layout(self) -> list[LatentTensor]:
        """The one tensor ``z``: the main flow factors nothing out, so it has every dimension of the image."""
        c, h, w = self.latent_shape
        return [LatentTensor("z", (c, h, w), resolution=h)]

    @torch.no_grad()
    def encode_latents(
        self, images: Tensor, latents: str = "mean", generator: torch.Generator | None = None
    ) -> Latents:
        """``z = f(x + u)``, the dequantization noise ``u`` at its mean (``latents="mean"``) or drawn."""
        return Latents({"z": self.encode(images, latents, generator)}, FLOW_Z)

    @torch.no_grad()
    def decode_latents(
        self,
        latents: Latents,
        keep: int | None = None,
        temperature: float | list[float] = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The images whose cells hold ``f⁻¹(z)``: exactly the encoded images, up to the inverse's rounding.
        ``temperature`` and ``generator`` go unused: nothing is drawn."""
        check_latents(latents, self.latent_layout, "flowpp")
        if keep not in (None, 1):
            raise ConfigError(f"flowpp: a flow decodes its one latent tensor z whole; keep must be 1, found {keep}")
        return self.decode(latents.tensors["z"].to(self.anchor))

    @torch.no_grad()
    def inverse_error(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``max |v − f⁻¹(f(v))|`` over the batch at one dequantization draw (the official ``val_inverr``)."""
        x = self.to_float(images)
        u, _ = self.dequantizer(x, self.dequantizer.noise(x, "sample", generator))
        v = x + u
        return (self.flow.inverse(self.flow(v)[0])[0] - v).abs().max()

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float | list[float] = 1.0,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
    ) -> Tensor:
        resolve_sampler(self, sampler)
        if isinstance(temperature, (list, tuple)) or not 0 <= float(temperature) < math.inf:
            raise ConfigError(f"flowpp: temperature must be one finite number ≥ 0, found {temperature!r}")
        z = torch.randn(
            (n, *self.latent_shape), generator=generator, dtype=self.anchor.dtype, device=self.anchor.device
        )
        return self.decode(z * float(temperature))
