"""Diagonal Gaussian latents parameterised by (mean, log σ), as in the Very Deep VAE.

Child (2021), "Very Deep VAEs Generalize Autoregressive Models and Can Outperform Them on Images",
ICLR; Kingma & Welling (2014) for the reparameterisation. The network outputs ``2·zdim`` channels:
the means, then the log standard deviations. KL(q‖p) between two such Gaussians is analytic per
element. A sampling temperature ``t`` multiplies σ (log σ + log t), so ``t = 0`` gives the mean.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genkit.hookspecs import hookimpl
from genkit.interfaces import LatentDistribution, LatentFamily

HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)


class DiagonalGaussian(LatentDistribution):
    """N(mean, exp(log_sigma)²) per element."""

    def __init__(self, mean: Tensor, log_sigma: Tensor):
        self._mean, self.log_sigma = mean, log_sigma

    @property
    def mean(self) -> Tensor:
        return self._mean

    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(self._mean.shape, generator=generator, dtype=self._mean.dtype, device=self._mean.device)
        return torch.exp(self.log_sigma) * eps + self._mean

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * ((z - self._mean) * torch.exp(-self.log_sigma)) ** 2 - self.log_sigma - HALF_LOG_TWO_PI

    def path_log_prob(self, z: Tensor) -> Tensor:
        return DiagonalGaussian(self._mean.detach(), self.log_sigma.detach()).log_prob(z)

    def kl(self, other: LatentDistribution) -> Tensor | None:
        if not isinstance(other, DiagonalGaussian):
            return None
        # KL(N(μ1, σ1²) ‖ N(μ2, σ2²)) = log σ2/σ1 + (σ1² + (μ1 − μ2)²) / (2σ2²) − 1/2, in the reference's order
        return (
            -0.5
            + other.log_sigma
            - self.log_sigma
            + 0.5 * (self.log_sigma.exp() ** 2 + (self._mean - other._mean) ** 2) / (other.log_sigma.exp() ** 2)
        )


class GaussianFamily(LatentFamily):
    """Diagonal Gaussian with (mean, log σ) from the network; temperature scales σ."""

    def __init__(self, settings=None, *, zdim: int):
        super().__init__()
        self.zdim = zdim

    @property
    def param_channels(self) -> int:
        return 2 * self.zdim

    def forward(self, params: Tensor, temperature: float | Tensor = 1.0) -> DiagonalGaussian:
        mean, log_sigma = params[:, : self.zdim], params[:, self.zdim : 2 * self.zdim]
        if isinstance(temperature, Tensor):
            log_sigma = log_sigma + torch.log(temperature)
        elif temperature != 1.0:
            log_sigma = log_sigma + (math.log(temperature) if temperature > 0 else -math.inf)
        return DiagonalGaussian(mean, log_sigma)


@hookimpl
def genkit_register_latents(register):
    register(
        "gaussian", GaussianFamily, description="Diagonal Gaussian parameterised by (mean, log σ), analytic KL (VDVAE)"
    )
