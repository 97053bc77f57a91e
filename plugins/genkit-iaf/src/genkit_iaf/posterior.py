"""The IAF posterior: a diagonal Gaussian followed by an inverse autoregressive flow (Kingma et al. 2016).

The posterior network of each latent layer outputs ``2·zdim + context`` channels: the base
Gaussian's mean ``μ`` and log standard deviation ``log σ₀``, and a context ``h`` that conditions
every flow step. A draw is ``z₀ = μ + t·σ₀ ⊙ ε`` (``t`` the temperature), then ``z = flow(z₀, h)``,
and its density follows from the change of variables:

    log q(z) = log N(z₀; μ, t·σ₀) − Σ_t log(σ_t/g₀)

per element (see :mod:`genkit_iaf.flow` for why the log-determinant splits over elements). There
is no closed-form KL to a Gaussian prior, so :meth:`IafDistribution.kl` returns ``None`` and
``genkit.interfaces.kl_divergence`` estimates it at the drawn ``z`` as ``log q(z) − log p(z)``, the
paper's one-sample estimate, taking ``log q`` from :meth:`IafDistribution.path_log_prob`: the same
value, differentiated through ``z`` alone (Roeder et al. 2017, "Sticking the Landing"). The total
gradient would also carry the score ``∂/∂θ log q_θ(z)`` at fixed ``z``, which averages to zero but
does not vanish where ``q`` matches its prior, as it does in every unused layer; in the digits
VDVAE that noise kept every layer unused.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from genkit.errors import PluginError
from genkit.interfaces import LatentDistribution, LatentFamily
from genkit.schema import in_range
from genkit_iaf.flow import InverseAutoregressiveFlow

HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


@attrs.frozen
class IafSettings:
    """Settings of the ``iaf`` latent family (``[model.posterior]`` in a recipe)."""

    steps: int = attrs.field(default=2, validator=in_range(1, 32))  # autoregressive transforms per latent layer
    hidden: int = attrs.field(default=64, validator=in_range(1))  # units in each hidden layer of every MADE
    depth: int = attrs.field(default=1, validator=in_range(1, 8))  # hidden layers of every MADE
    context: int = attrs.field(default=16, validator=in_range(0))  # channels of h; 0 = unconditioned flow
    gate_bias: float = attrs.field(
        default=2.0, validator=in_range(0, 10)
    )  # initial s: σ starts at sigmoid(2) ≈ 0.88; a step stretches z by at most 1/0.88


class IafDistribution(LatentDistribution):
    """``flow(N(μ, (t·σ₀)²), h)`` over ``(B, zdim, H, W)``.

    ``mean`` is the flow applied to the base mean, ``flow(μ, h)``: the point the deterministic
    "latents at their mean" mode uses and the draw at temperature 0. (The flow is non-linear, so
    this is the image of the base mean, not the expectation of ``z``.)

    ``log_prob`` of a tensor this distribution produced (by ``rsample`` or ``mean``) reuses the
    base point and log-determinant of that forward pass, as the paper does; any other ``z`` is
    inverted exactly through the flow first. ``path_log_prob`` gives the same value with μ, σ, h and
    the flow's weights held fixed: its gradient reaches ``z`` only (:class:`PathLogProb`).
    """

    def __init__(
        self,
        flow: InverseAutoregressiveFlow,
        loc: Tensor,
        log_scale: Tensor,
        context: Tensor | None,
        temperature: float | Tensor,
    ):
        self.flow, self.loc, self.context = flow, loc, context
        self.scale = log_scale.exp() * temperature
        self._produced: list[tuple[Tensor, Tensor, Tensor]] = []  # (z, z₀, log_det) of every tensor handed out
        self._mean: Tensor | None = None

    def _push_forward(self, z0: Tensor) -> Tensor:
        z, log_det = self.flow(z0, self.context)
        self._produced.append((z, z0, log_det))
        return z

    @property
    def mean(self) -> Tensor:
        if self._mean is None:
            self._mean = self._push_forward(self.loc)
        return self._mean

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else self.loc.device
        eps = torch.randn(self.loc.shape, generator=generator, device=device, dtype=self.loc.dtype).to(self.loc.device)
        return self._push_forward(self.loc + self.scale * eps)

    def _base_point(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(z₀, log_det)`` of ``z``: from the forward pass that produced it, else by exact inversion."""
        for produced, z0, log_det in self._produced:
            if produced is z:
                return z0, log_det
        return self.flow.inverse(z, self.context)

    def _log_density(self, z0: Tensor, log_det: Tensor) -> Tensor:
        return -0.5 * ((z0 - self.loc) / self.scale).square() - self.scale.log() - HALF_LOG_TWO_PI - log_det

    def log_prob(self, z: Tensor) -> Tensor:
        return self._log_density(*self._base_point(z))

    def path_log_prob(self, z: Tensor) -> Tensor:
        z0, log_det = self._base_point(z)
        log_q = self._log_density(z0, log_det).detach()
        if not (torch.is_grad_enabled() and z.requires_grad):
            return log_q
        context = None if self.context is None else self.context.detach()
        return PathLogProb.apply(z, log_q, z0.detach(), self.loc.detach(), self.scale.detach(), context, self.flow)


class PathLogProb(torch.autograd.Function):
    """``log q(z)`` as already computed, with a backward pass that reaches ``z`` alone (Roeder et al. 2017).

    With ``μ, σ, h`` and the flow's weights held fixed, ``log q(z) = log N(z₀; μ, σ) − log_det(z₀)``
    at ``z₀ = flow⁻¹(z)``; :meth:`InverseAutoregressiveFlow.pull_back` carries its gradient from
    the stored ``z₀`` to ``z`` exactly, with no inversion.
    """

    @staticmethod
    def forward(ctx, z, log_q, z0, loc, scale, context, flow):
        ctx.save_for_backward(z0, loc, scale, context)
        ctx.flow = flow
        return log_q.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, weights):
        z0, loc, scale, context = ctx.saved_tensors
        base_gradient = -weights * (z0 - loc) / scale.square()  # ∇ of Σ weights ⊙ log N(z₀; μ, σ)
        return ctx.flow.pull_back(z0, context, base_gradient, weights), None, None, None, None, None, None


class IafPosterior(LatentFamily):
    """Diagonal Gaussian followed by an inverse autoregressive flow over the latent channels (Kingma et al. 2016)."""

    def __init__(self, settings: IafSettings, zdim: int):
        super().__init__()
        self.settings, self.zdim = settings, zdim
        self.flow = InverseAutoregressiveFlow(
            zdim, settings.context, settings.hidden, settings.depth, settings.steps, settings.gate_bias
        )

    @property
    def param_channels(self) -> int:
        return 2 * self.zdim + self.settings.context

    def forward(self, params: Tensor, temperature: float | Tensor = 1.0) -> IafDistribution:
        if params.shape[1] != self.param_channels:
            raise PluginError(
                f"latent plugin 'iaf': expected {self.param_channels} parameter channels "
                f"(2·zdim={2 * self.zdim} + context={self.settings.context}), got {params.shape[1]}"
            )
        loc, log_scale, context = params.split([self.zdim, self.zdim, self.settings.context], dim=1)
        return IafDistribution(self.flow, loc, log_scale, context if self.settings.context else None, temperature)
