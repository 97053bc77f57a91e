"""The logistic mixture of the Flow++ coupling: log-density, log-CDF, logit-CDF and the inverse CDF.

For one element ``x`` with ``K`` components (weights ``w = softmax(π)``, means ``μ``, log-scales
``ℓ`` floored at −7) and ``z_k = (x − μ_k)·e^{−ℓ_k}``::

    log F(x)       = logsumexp_k(log w_k + log σ(z_k))
    log(1 − F(x))  = logsumexp_k(log w_k + log σ(−z_k))
    log f(x)       = logsumexp_k(log w_k + log σ′(z_k) − ℓ_k),  log σ′(z) = z − 2·softplus(z)
    logit F(x)     = log F(x) − log(1 − F(x))

``logit F`` comes from the two log-sums, never as ``exp(log F)`` followed by ``−log(1/F − 1)`` as
in the official code (``flows.py``), which saturates to ±∞ in float32 once ``|logit F| ≳ 17``.

The inverse, ``x`` with ``logit F(x) = u``, is a safeguarded Newton search (``inverse.py`` says how).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from genkit_plugins.flowpp.inverse import invert_logit_cdf

MIN_LOGSCALE = -7.0


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
        return self._logit_and_log_slope(self.standardise(x))

    def _logit_and_log_slope(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``transform`` from ``z``: two log-sigmoids and three log-sums.

        (``log σ(−z)`` is not taken as ``log σ(z) − z``, which loses everything but ``ulp(z)`` where ``z ≪ 0``:
        0.008 at ``z = −10⁵`` in float32, a distance of 100 from a component at the floor scale e^−7.)
        """
        log_sigmoid = F.logsigmoid(z)
        log_sf_terms = self.log_weights + F.logsigmoid(-z)  # log w_k σ(−z_k)
        log_cdf = torch.logsumexp(self.log_weights + log_sigmoid, -1)
        log_sf = torch.logsumexp(log_sf_terms, -1)
        log_pdf = torch.logsumexp(log_sf_terms + log_sigmoid - self.logscales, -1)  # log w_k σ(z_k)σ(−z_k)/s_k
        return log_cdf - log_sf, log_pdf - log_cdf - log_sf

    def inverse_logit_cdf(self, u: Tensor, passes: int | None = None) -> Tensor:
        """``x`` with ``logit F(x) = u``: at most ``passes`` evaluations of logit F and its slope in a safeguarded
        Newton search (``inverse.invert_logit_cdf``); no gradient flows through it."""
        return invert_logit_cdf(self.log_weights, self.means, self.logscales, u, passes)
