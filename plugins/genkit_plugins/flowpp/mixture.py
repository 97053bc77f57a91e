"""The logistic mixture of the Flow++ coupling: log-density, log-CDF, logit-CDF and the inverse CDF.

For one element ``x`` with ``K`` components (weights ``w = softmax(π)``, means ``μ``, log-scales
``ℓ`` floored at −7) and ``z_k = (x − μ_k)·e^{−ℓ_k}``::

    log F(x)       = logsumexp_k(log w_k + log σ(z_k))
    log(1 − F(x))  = logsumexp_k(log w_k + log σ(−z_k))
    log f(x)       = logsumexp_k(log w_k + log σ′(z_k) − ℓ_k),  log σ′(z) = z − 2·softplus(z)
    logit F(x)     = log F(x) − log(1 − F(x))

``logit F`` comes from the two log-sums, never as ``exp(log F)`` followed by ``−log(1/F − 1)`` as
in the official code (``flows.py``), which saturates to ±∞ in float32 once ``|logit F| ≳ 17``.

The inverse solves ``logit F(x) = u`` by bisection on the logit scale, in the official bracket
``[min_k(μ_k − 200·Σ s), max_k(μ_k + 200·Σ s)]``, for a fixed number of halvings: no step reads a
value back to the host, so sampling can be captured in a CUDA graph.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_LOGSCALE = -7.0
#: the half-width of the bisection bracket in units of the summed component scales (official value)
BRACKET_SCALE = 200.0
#: halvings of the bracket: enough to shrink a bracket of 2^20 to below one unit in the last place
BISECTION_ITERATIONS = {torch.float64: 100}
DEFAULT_ITERATIONS = 50


def log_logistic_density(z: Tensor) -> Tensor:
    """``log σ′(z) = z − 2·softplus(z)``, written ``−|z| − 2·log1p(e^{−|z|})``: exact for every ``z``.

    (``F.softplus`` switches to the identity above 20, an error of ``e^{−20}`` ≈ 2e-9 there.)
    """
    return -z.abs() - 2 * torch.log1p(torch.exp(-z.abs()))


class LogisticMixture(NamedTuple):
    """``K`` logistic components per element: every field ``(..., K)``."""

    log_weights: Tensor
    means: Tensor
    logscales: Tensor

    @classmethod
    def from_network(cls, logits: Tensor, means: Tensor, logscales: Tensor) -> LogisticMixture:
        """The mixture a network's raw outputs describe: log-softmax weights, log-scales floored at −7."""
        return cls(F.log_softmax(logits, dim=-1), means, logscales.clamp_min(MIN_LOGSCALE))

    def standardise(self, x: Tensor) -> Tensor:
        """``z_k = (x − μ_k)·e^{−ℓ_k}``, ``(..., K)``."""
        return (x.unsqueeze(-1) - self.means) * torch.exp(-self.logscales)

    def log_cdf(self, x: Tensor) -> Tensor:
        """log F(x)."""
        return torch.logsumexp(self.log_weights + F.logsigmoid(self.standardise(x)), dim=-1)

    def log_sf(self, x: Tensor) -> Tensor:
        """log(1 − F(x)), the log survival function."""
        return torch.logsumexp(self.log_weights + F.logsigmoid(-self.standardise(x)), dim=-1)

    def log_pdf(self, x: Tensor) -> Tensor:
        """log f(x), the density of the mixture."""
        return torch.logsumexp(self.log_weights + log_logistic_density(self.standardise(x)) - self.logscales, dim=-1)

    def logit_cdf(self, x: Tensor) -> Tensor:
        """logit F(x) = log F(x) − log(1 − F(x))."""
        z = self.standardise(x)
        return torch.logsumexp(self.log_weights + F.logsigmoid(z), -1) - torch.logsumexp(
            self.log_weights + F.logsigmoid(-z), -1
        )

    def transform(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(logit F(x), log |d logit F / dx|) = (log F − log(1−F), log f − log F − log(1−F)), from one ``z``."""
        z = self.standardise(x)
        log_cdf = torch.logsumexp(self.log_weights + F.logsigmoid(z), -1)
        log_sf = torch.logsumexp(self.log_weights + F.logsigmoid(-z), -1)
        log_pdf = torch.logsumexp(self.log_weights + log_logistic_density(z) - self.logscales, -1)
        return log_cdf - log_sf, log_pdf - log_cdf - log_sf

    def inverse_logit_cdf(self, u: Tensor, iterations: int | None = None) -> Tensor:
        """``x`` with ``logit F(x) = u``, by bisection on the logit scale (no gradient flows through the search)."""
        if iterations is None:
            iterations = BISECTION_ITERATIONS.get(u.dtype, DEFAULT_ITERATIONS)
        with torch.no_grad():
            spread = BRACKET_SCALE * torch.exp(self.logscales).sum(-1, keepdim=True)
            low = (self.means - spread).amin(-1)
            high = (self.means + spread).amax(-1)
            for _ in range(iterations):
                middle = (low + high) / 2
                above = self.logit_cdf(middle) > u
                high = torch.where(above, middle, high)
                low = torch.where(above, low, middle)
            return (low + high) / 2
