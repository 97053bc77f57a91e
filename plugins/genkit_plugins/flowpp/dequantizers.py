"""Flow++'s dequantizers: ``uniform`` (u ~ U(0, 1)^D, log q = 0) and ``variational`` (a flow conditioned on x).

``variational`` (official ``run_cifar.py``, ``Dequant``)::

    context = context_net(x/2^bits − 0.5)     column halves concatenated on channels → 3×3 conv to 32
                                              → 3 gated convs (both convolutions 3×3), (B, 32, H, W/2)
    ε ~ N(0, I);  split the columns of ε;  couplings × (Norm, Pointwise, coupling with context, swap);
    merge;  u = σ(h)
    log q(u | x) = log N(ε) − log|det ∂h/∂ε| − Σ log σ′(h)

Its steps are built through the registry from the model's ``coupling``, ``norm`` and ``pointwise``
(a swapped step layer is swapped in every flow of the model, as the coupling is); its split is its
own setting, the ``split`` plugin ``checkerboard`` (the official column split) unless a recipe names
another, which then also divides the image for the context network. ``latents="mean"`` puts ε at 0.
The bound's dequantization constant is exactly zero: ``v = x + u`` lies in ``[0, 2^bits)^D``, where
every integer image owns a cell of unit volume.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor, nn

from genkit.capabilities import RecomputableUnit
from genkit.components import ComponentRef, component
from genkit.errors import ConfigError
from genkit.schema import in_range
from genkit_plugins.flowpp.datainit import Conv
from genkit_plugins.flowpp.flow import NORM, POINTWISE, FlowStep
from genkit_plugins.flowpp.kinds import SPLIT, Dequantizer, Split, StageError, build
from genkit_plugins.flowpp.layers import sigmoid, sigmoid_inverse, standard_normal_log_prob
from genkit_plugins.flowpp.network import GatedConv

LATENT_MODES = ("sample", "mean")


def _check_latents(latents: str) -> None:
    if latents not in LATENT_MODES:
        raise ConfigError(f"flowpp: latents must be 'sample' or 'mean', found {latents!r}")


def _largest_below_one(dtype: torch.dtype) -> float:
    """The largest value under 1 in ``dtype``: a σ(h) that rounds to 1 would put ``x + u`` in the next cell."""
    return 1.0 - torch.finfo(dtype).eps / 2


class UniformDequantizer(Dequantizer):
    """Uniform dequantization: u ~ U(0, 1)^D, log q(u | x) = 0 (the classic bound; Flow++'s ablation)."""

    bound = "uniform dequantization bound"

    def __init__(self, settings=None, **context):
        super().__init__()

    def noise(self, x: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> Tensor:
        _check_latents(latents)
        if latents == "mean":
            return torch.full_like(x, 0.5)
        return torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    def base_log_prob(self, eps: Tensor) -> Tensor:
        return eps.new_zeros(eps.shape[0])

    def forward(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        return eps, self.base_log_prob(eps)

    def log_prob(self, x: Tensor, u: Tensor) -> Tensor:
        return u.new_zeros(u.shape[0])


@attrs.frozen
class VariationalSettings:
    """Settings of the ``variational`` dequantizer (official values); its couplings take the model's ``dequant_*``."""

    couplings: int = attrs.field(default=4, validator=in_range(1))
    context: int = attrs.field(default=32, validator=in_range(1))  # channels of the context network
    context_blocks: int = attrs.field(default=3, validator=in_range(0))  # its gated convolutions
    split: ComponentRef = component(SPLIT, "checkerboard")  # how the noise and the image are halved


class ContextNetwork(nn.Module):
    """``x`` (integers below ``levels``) → the ``(B, context, *half)`` map the dequantizer couplings are given.

    The image's two halves (``split``), each ``(B, C', H', W')``, are stacked on the channels.
    """

    def __init__(self, split: Split, half_channels: int, context: int, blocks: int, dropout: float, levels: int = 256):
        super().__init__()
        self.levels = levels
        self.split = split
        self.proj = Conv(2 * half_channels, context, kernel=3)
        self.blocks = nn.ModuleList(GatedConv(context, second_kernel=3, dropout=dropout) for _ in range(blocks))

    def forward(self, x: Tensor) -> Tensor:
        h = self.proj(torch.cat(self.split.split(x / self.levels - 0.5), dim=1))
        for block in self.blocks:
            h = block(h)
        return h


class VariationalDequantizer(Dequantizer):
    """Variational dequantization (Flow++, Ho et al. 2019): u = σ(h_x(ε)), a flow conditioned on the image."""

    bound = "variational dequantization bound"

    def __init__(
        self,
        settings: VariationalSettings,
        *,
        image_shape: tuple[int, int, int],
        bits: int = 8,
        coupling: ComponentRef,
        norm: ComponentRef = NORM,
        pointwise: ComponentRef = POINTWISE,
        filters: int,
        blocks: int,
        components: int,
        heads: int,
        dropout: float,
    ):
        super().__init__()
        height, width, channels = image_shape
        self.split = build(settings.split, SPLIT)
        try:
            half = self.split.half_shape((channels, height, width))
        except StageError as exc:
            raise ConfigError(
                f"flowpp: the variational dequantizer's split {settings.split.name!r} does not apply to a "
                f"{height}×{width}×{channels} image ({exc})"
            ) from None
        self.context = ContextNetwork(self.split, half[0], settings.context, settings.context_blocks, dropout, 2**bits)
        sizes = dict(filters=filters, blocks=blocks, components=components, heads=heads, dropout=dropout)
        self.steps = nn.ModuleList(
            FlowStep(half, coupling, sizes, context_channels=settings.context, norm=norm, pointwise=pointwise)
            for _ in range(settings.couplings)
        )

    def noise(self, x: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> Tensor:
        _check_latents(latents)
        if latents == "mean":
            return torch.zeros_like(x)
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    def base_log_prob(self, eps: Tensor) -> Tensor:
        return standard_normal_log_prob(eps)

    def recomputable_units(self) -> list[RecomputableUnit]:
        """Every flow step."""
        return [RecomputableUnit(f"steps.{i}", step.resolution, step) for i, step in enumerate(self.steps)]

    def forward(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        context = self.context(x)
        pair, logdet = self.split.split(eps), 0.0
        for step in self.steps:
            pair, term = step(pair, context)
            logdet = logdet + term
        u, term = sigmoid(self.split.merge(*pair))
        return u.clamp_max(_largest_below_one(u.dtype)), self.base_log_prob(eps) - (logdet + term)

    def log_prob(self, x: Tensor, u: Tensor) -> Tensor:
        context = self.context(x)
        h, logdet = sigmoid_inverse(u)
        pair = self.split.split(h)
        for step in reversed(self.steps):
            pair, term = step.inverse(pair, context)
            logdet = logdet + term
        return self.base_log_prob(self.split.merge(*pair)) + logdet
