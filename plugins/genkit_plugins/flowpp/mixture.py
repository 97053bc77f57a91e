"""The logistic mixture of the Flow++ coupling: log-density, log-CDF, logit-CDF and the inverse CDF.

For one element ``x`` with ``K`` components (weights ``w = softmax(π)``, means ``μ``, log-scales
``ℓ`` floored at −7) and ``z_k = (x − μ_k)·e^{−ℓ_k}``::

    log F(x)       = logsumexp_k(log w_k + log σ(z_k))
    log(1 − F(x))  = logsumexp_k(log w_k + log σ(−z_k))
    log f(x)       = logsumexp_k(log w_k + log σ′(z_k) − ℓ_k),  log σ′(z) = z − 2·softplus(z)
    logit F(x)     = log F(x) − log(1 − F(x))

``logit F`` comes from the two log-sums, never as ``exp(log F)`` followed by ``−log(1/F − 1)`` as
in the official code (``flows.py``), which saturates to ±∞ in float32 once ``|logit F| ≳ 17``.

The inverse solves ``logit F(x) = u`` with Newton steps kept inside a bracket that every
evaluation shrinks (``rtsafe`` in *Numerical Recipes*, §9.4):

* the bracket: ``F`` is a weighted mean of the components' CDFs, so it lies between the smallest
  and the largest of them, and the root lies between the components' own roots ``μ_k + s_k·u``
  (``s = e^ℓ``) — a bracket that holds for every ``u``, unlike the official ``μ ± 200·Σ s``, which
  the root leaves once ``|u|`` passes about 200;
* each pass evaluates ``logit F − u`` and its slope at ``x``, moves the bracket's end on ``x``'s
  side to ``x``, and takes the Newton step when it lands inside the bracket and is at most half the
  step before last; otherwise it bisects. So it never does worse than about one halving per two
  passes, and converges quadratically once the bracket holds one smooth piece of ``logit F``;
* the evaluation is not the log-space one of the forward pass (``transform``) but sums of plain
  numbers scaled by the root's own size, ``F(x)/σ(u)`` and ``(1 − F(x))/σ(−u)`` (``ScaledSums``):
  one exponential and one sigmoid per component instead of four transcendental functions, about
  half the time, and the same passes to the same accuracy in float32 and float64;
* the number of passes is fixed (``NEWTON_PASSES``): no step reads a value back to the host, so
  sampling runs on the meta device and can be captured in a CUDA graph.

The official bisection stops when its step is below 1e-12 (at most 200 halvings). The pass counts
are the fewest for which the worst error over a stress set — 1 to 32 components, weights spread
over e^±20, means over ±50 and more, log-scales from the floor of −7 to +7, ``|u|`` up to several
thousand, and a component at the floor scale with the root on its step among wide ones — stays
within 1e-12 (relative above 1) in float64 and 2e-6 in float32 (about 16 units in the last place),
plus two passes to spare; ``tests/test_flowpp_mixture.py`` checks a sample of it. The hardest
case is that narrow step: finding it takes about ``log₂(bracket / s_min)`` halvings before Newton's
steps take over.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_LOGSCALE = -7.0
#: evaluations of logit F and its slope in the inverse, per dtype (the module docstring says how they were chosen)
NEWTON_PASSES = {torch.float64: 36, torch.float32: 32}
#: component values (elements × components) the inverse searches at a time on a CPU
CPU_SLICE_VALUES = 2**18


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
        """``x`` with ``logit F(x) = u``: Newton steps kept inside a shrinking bracket, ``passes`` evaluations of
        logit F and its slope (no gradient flows through the search).

        On a CPU the elements are searched in slices of about ``CPU_SLICE_VALUES`` component values, which
        stay in cache through the search's dozens of element-wise operations (about 2× faster at a CIFAR-10
        coupling's size than one pass over everything); elsewhere all at once.
        """
        passes = NEWTON_PASSES.get(u.dtype, NEWTON_PASSES[torch.float32]) if passes is None else passes
        components = self.means.shape[-1]
        rows = max(1, CPU_SLICE_VALUES // components)
        if u.device.type != "cpu" or u.numel() <= rows:
            return self._search(u, passes)
        flat = LogisticMixture(*(field.reshape(-1, components) for field in self))
        u_flat = u.reshape(-1)
        parts = [
            LogisticMixture(*(field[start : start + rows] for field in flat))._search(
                u_flat[start : start + rows], passes
            )
            for start in range(0, u_flat.numel(), rows)
        ]
        return torch.cat(parts).reshape(u.shape)

    def _search(self, u: Tensor, passes: int) -> Tensor:
        """``inverse_logit_cdf`` over all elements at once."""
        eps = torch.finfo(u.dtype).eps
        with torch.no_grad():
            inverse_scales = torch.exp(-self.logscales)
            spread = torch.exp(self.logscales) * u.unsqueeze(-1)
            component_roots = self.means + spread  # logit F_k(μ_k + s_k·u) = u
            # widened by the roots' rounding, so that a root at an end of the bracket (one component's tail) is inside
            rounding = 4 * eps * (self.means.abs() + spread.abs()).amax(-1)
            low, high = component_roots.amin(-1) - rounding, component_roots.amax(-1) + rounding
            scaled = ScaledSums.at(self, u)
            rounding_of_u = 16 * eps * (1 + u.abs())  # where logit F equals u to its rounding
            x = (low + high) / 2
            last_step = step_before = high - low
            for index in range(passes):
                excess, slope = scaled.excess_and_slope((x.unsqueeze(-1) - self.means) * inverse_scales, inverse_scales)
                above = excess > 0
                high = torch.where(above, x, high)
                low = torch.where(above, low, x)
                newton = torch.where(excess == 0, x, x - excess / slope)
                step = (newton - x).abs()
                take = (newton >= low) & (newton <= high)
                if index < passes - 1:  # too slow, so bisect, unless logit F already equals u to its rounding
                    take &= (2 * step <= step_before) | (excess.abs() <= rounding_of_u)
                moved = torch.where(take, newton, (low + high) / 2)
                step_before, last_step, x = last_step, (moved - x).abs(), moved
            return x


class ScaledSums(NamedTuple):
    """``logit F(x) − u`` and its slope for the inverse's search, from ``A = F(x)·e^a`` and ``B = (1 − F(x))·e^b``.

    With ``e^a = 1/σ(u)`` and ``e^b = 1/σ(−u)`` both sums are about 1 at the root whatever ``u`` is, so they are
    summed as plain numbers, not log-sums: ``w_k σ(z_k) e^a = 1/(e^{−c_k} + e^{−z_k − c_k})`` with ``c_k = a + log
    w_k`` (and ``b``, ``−z`` for ``B``), one exponential per term, a sigmoid for the slope, and no logarithm but
    ``log A − log B``. Far from the root a sum can overflow to ∞ or underflow to 0; the sign of ``logit F − u`` it
    gives is still right (``A + B ≥ 1``, and both cannot be huge), and the step falls back to bisection there.
    """

    cdf_shift: Tensor  # c_k = a + log w_k, (..., K)
    cdf_floor: Tensor  # e^{−c_k}
    sf_shift: Tensor  # b + log w_k
    sf_floor: Tensor  # e^{−(b + log w_k)}
    offset: Tensor  # (b − a) − u: zero but for rounding, (...)

    @classmethod
    def at(cls, mixture: LogisticMixture, u: Tensor) -> ScaledSums:
        a, b = F.softplus(-u), F.softplus(u)  # any shifts would do: offset below undoes the ones used
        cdf_shift = a.unsqueeze(-1) + mixture.log_weights
        sf_shift = b.unsqueeze(-1) + mixture.log_weights
        return cls(cdf_shift, torch.exp(-cdf_shift), sf_shift, torch.exp(-sf_shift), (b - a) - u)

    def excess_and_slope(self, z: Tensor, inverse_scales: Tensor) -> tuple[Tensor, Tensor]:
        """(logit F(x) − u, d logit F/dx) from ``z_k`` at ``x``: ``log A − log B`` and ``A′/A − B′/B``."""
        cdf_terms = torch.reciprocal(self.cdf_floor + torch.exp(-z - self.cdf_shift))  # w_k σ(z_k) e^a
        sf_terms = torch.reciprocal(self.sf_floor + torch.exp(z - self.sf_shift))  # w_k σ(−z_k) e^b
        cdf_sum, sf_sum = cdf_terms.sum(-1), sf_terms.sum(-1)  # A, B
        excess = torch.log(cdf_sum) - torch.log(sf_sum) + self.offset
        # each term's share of its sum, so that a huge sum cannot make the slope ∞ (∞ over ∞ is NaN: a bisection)
        cdf_shares, sf_shares = cdf_terms / cdf_sum.unsqueeze(-1), sf_terms / sf_sum.unsqueeze(-1)
        slope_terms = (cdf_shares * torch.sigmoid(-z) + sf_shares * torch.sigmoid(z)) * inverse_scales
        return excess, slope_terms.sum(-1)
