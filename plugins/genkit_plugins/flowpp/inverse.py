"""The inverse of the Flow++ coupling's mixture CDF: ``x`` with ``logit F(x) = u``, every element at once.

The search takes Newton steps kept inside a bracket that every evaluation shrinks (``rtsafe`` in *Numerical
Recipes*, §9.4):

* the bracket: ``F`` is a weighted mean of the components' CDFs, so it lies between the smallest and the
  largest of them, and the root lies between the components' own roots ``μ_k + s_k·u`` (``s = e^ℓ``) — a
  bracket that holds for every ``u``, unlike the official ``μ ± 200·Σ s``, which the root leaves once ``|u|``
  passes about 200;
* each pass evaluates ``logit F − u`` and its slope at ``x``, moves the bracket's end on ``x``'s side to ``x``,
  and takes the Newton step when it lands inside the bracket and is at most half the step before last;
  otherwise it bisects. So it never does worse than about one halving per two passes, and converges
  quadratically once the bracket holds one smooth piece of ``logit F``;
* the evaluation is not the log-space one of the forward pass (``LogisticMixture.transform``) but sums of plain
  numbers scaled by the root's own size, ``F(x)/σ(u)`` and ``(1 − F(x))/σ(−u)`` (``ScaledSums``): one
  exponential and one sigmoid per component instead of four transcendental functions, about half the time, and
  the same passes to the same accuracy in float32 and float64.

How many passes, and where:

* **Off a CPU** (a GPU, the meta device) every element takes ``NEWTON_PASSES`` passes: no step reads a value
  back to the host, so sampling runs on the meta device and can be captured in a CUDA graph. The pass counts
  are the fewest for which the worst error over a stress set — 1 to 32 components, weights spread over e^±20,
  means over ±50 and more, log-scales from the floor of −7 to +7, ``|u|`` up to several thousand, and a
  component at the floor scale with the root on its narrow step among wide ones — stays within ``TOLERANCE``,
  plus two passes to spare. The narrow step is the hardest case: finding it takes about
  ``log₂(bracket / s_min)`` halvings before Newton's steps take over.
* **On a CPU**, where reading a value costs nothing, an element leaves the search once it has *settled*: its
  bracket is narrower than the tolerance (the root and ``x`` both lie in it), or it has just taken a Newton
  step shorter than a tenth of the tolerance (after which its error is about the step's square times the
  curvature of ``logit F``, far below the tolerance). Whenever half the elements still searched have settled,
  the rest are gathered into smaller tensors. The trained digits model's elements take 4.3 evaluations on
  average (13 at most), the stress set's 10; the few hard ones still get all of ``NEWTON_PASSES``.
  Elements are also searched in slices of about ``CPU_SLICE_VALUES`` component values, which stay in cache
  through a pass's dozens of element-wise operations.

``TOLERANCE`` is the accuracy promised: 1e-12 (relative above 1) in float64, where the official bisection
stops (a step below 1e-12, at most 200 halvings), and 2e-6 in float32, about 16 units in the last place, what
a float32 bisection gets. ``tests/test_flowpp_mixture.py`` checks a sample of the stress set on both paths.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: evaluations of logit F and its slope in the inverse off a CPU, and at most on one, per dtype
NEWTON_PASSES = {torch.float64: 36, torch.float32: 32}
#: the inverse's accuracy: |x − root| ≤ TOLERANCE·max(1, |root|)
TOLERANCE = {torch.float64: 1e-12, torch.float32: 2e-6}
#: component values (elements × components) the inverse searches at a time on a CPU
CPU_SLICE_VALUES = 2**18


def invert_logit_cdf(
    log_weights: Tensor, means: Tensor, logscales: Tensor, u: Tensor, passes: int | None = None
) -> Tensor:
    """``x`` with ``logit F(x) = u`` for the mixture of the given fields (``(..., K)``, log-scales already floored),
    for ``u`` of shape ``(...)``; at most ``passes`` evaluations (``NEWTON_PASSES`` by default). No gradient."""
    passes = NEWTON_PASSES.get(u.dtype, NEWTON_PASSES[torch.float32]) if passes is None else passes
    with torch.no_grad():
        if u.device.type != "cpu":
            return search_every_pass(log_weights, means, logscales, u, passes)
        components = means.shape[-1]
        fields = [field.reshape(-1, components) for field in (log_weights, means, logscales)]
        u_flat, per_slice = u.reshape(-1), max(1, CPU_SLICE_VALUES // components)
        parts = [
            _search_until_settled(
                *(field[start : start + per_slice] for field in fields), u_flat[start : start + per_slice], passes
            )
            for start in range(0, u_flat.numel(), per_slice) or [0]  # [0]: no elements, one empty search
        ]
        return torch.cat(parts).reshape(u.shape)


def search_every_pass(log_weights: Tensor, means: Tensor, logscales: Tensor, u: Tensor, passes: int) -> Tensor:
    """The search off a CPU: ``passes`` passes over every element, reading nothing back (any shapes)."""
    search = NewtonSearch.start(log_weights, means, logscales, u)
    for index in range(passes):
        search, _ = search.step(last=index == passes - 1)
    return search.x


def _search_until_settled(log_weights: Tensor, means: Tensor, logscales: Tensor, u: Tensor, passes: int) -> Tensor:
    """The search over ``(n, K)`` fields and ``(n,)`` targets, each element leaving it once settled."""
    search = NewtonSearch.start(log_weights, means, logscales, u)
    found = torch.empty_like(u)
    rows = torch.arange(u.numel(), device=u.device)  # where the elements still searched go in ``found``
    for _ in range(passes - 1):
        search, settled = search.step(last=False, settling=True)
        count = int(settled.sum())
        if count == rows.numel():
            break
        if 2 * count >= rows.numel():
            found[rows[settled]] = search.x[settled]
            keep = (~settled).nonzero().squeeze(-1)
            rows, search = rows[keep], search.rows(keep)
    else:
        search, _ = search.step(last=True)
    found[rows] = search.x
    return found


class NewtonSearch(NamedTuple):
    """Every element's state in the search: the mixture as its evaluation needs it, the bracket, ``x``, and the
    lengths of the last two moves (a Newton step must be at most half the one before last)."""

    means: Tensor  # (..., K)
    inverse_scales: Tensor  # e^{−ℓ_k}, (..., K)
    sums: ScaledSums
    rounding_of_u: Tensor  # where logit F equals u to its rounding, (...)
    low: Tensor
    high: Tensor
    x: Tensor
    last_step: Tensor
    step_before: Tensor

    @classmethod
    def start(cls, log_weights: Tensor, means: Tensor, logscales: Tensor, u: Tensor) -> NewtonSearch:
        """The bracket between the components' own roots, ``x`` at its middle."""
        eps = torch.finfo(u.dtype).eps
        spread = torch.exp(logscales) * u.unsqueeze(-1)
        component_roots = means + spread  # logit F_k(μ_k + s_k·u) = u
        # widened by the roots' rounding, so that a root at an end of the bracket (one component's tail) is inside
        rounding = 4 * eps * (means.abs() + spread.abs()).amax(-1)
        low, high = component_roots.amin(-1) - rounding, component_roots.amax(-1) + rounding
        width = high - low
        return cls(
            means,
            torch.exp(-logscales),
            ScaledSums.at(log_weights, u),
            16 * eps * (1 + u.abs()),
            low,
            high,
            (low + high) / 2,
            width,
            width,
        )

    def step(self, *, last: bool, settling: bool = False) -> tuple[NewtonSearch, Tensor | None]:
        """One evaluation and move; with ``settling``, also which elements have settled (else None). On the
        ``last`` pass any Newton step inside the bracket is taken, however slow."""
        x, low, high = self.x, self.low, self.high
        excess, slope = self.sums.excess_and_slope(
            (x.unsqueeze(-1) - self.means) * self.inverse_scales, self.inverse_scales
        )
        above = excess > 0
        high = torch.where(above, x, high)
        low = torch.where(above, low, x)
        newton = torch.where(excess == 0, x, x - excess / slope)
        step = (newton - x).abs()
        take = (newton >= low) & (newton <= high)
        if not last:  # too slow, so bisect, unless logit F already equals u to its rounding
            take &= (2 * step <= self.step_before) | (excess.abs() <= self.rounding_of_u)
        moved = torch.where(take, newton, (low + high) / 2)
        settled = None
        if settling:
            limit = TOLERANCE.get(x.dtype, TOLERANCE[torch.float32]) * moved.abs().clamp_min(1)
            settled = (take & (10 * step <= limit)) | (high - low <= limit)
        moved_by = (moved - x).abs()
        return self._replace(low=low, high=high, x=moved, last_step=moved_by, step_before=self.last_step), settled

    def rows(self, keep: Tensor) -> NewtonSearch:
        """The search of the elements ``keep`` indexes (on the first dimension)."""
        return NewtonSearch(
            *(ScaledSums(*(f[keep] for f in field)) if isinstance(field, ScaledSums) else field[keep] for field in self)
        )


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
    def at(cls, log_weights: Tensor, u: Tensor) -> ScaledSums:
        a, b = F.softplus(-u), F.softplus(u)  # any shifts would do: offset below undoes the ones used
        cdf_shift = a.unsqueeze(-1) + log_weights
        sf_shift = b.unsqueeze(-1) + log_weights
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
