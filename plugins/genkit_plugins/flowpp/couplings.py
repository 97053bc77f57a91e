"""The couplings of Flow++: ``mlc``, the logistic-mixture-CDF coupling, and ``affine``, the paper's ablation.

``mlc`` (official ``MixLogisticAttnCoupling``): the conditioning network gives, for every element of
the transformed half, ``a = tanh(·)``, ``b`` and a ``K``-component logistic mixture, in that order
per element; then ::

    y = e^a · logit F(x) + b          log|dy/dx| = log f(x) − log F(x) − log(1 − F(x)) + a

and the inverse solves ``logit F(x) = (y − b)·e^{−a}`` by a safeguarded Newton search. ``affine`` (the official
``abl_nomixlog.py``'s ``AffineAttnCoupling``) keeps only ``y = e^a·x + b``. The network runs in the
autocast dtype; its outputs, the element-wise transform and the log-determinant in at least float32.
"""

from __future__ import annotations

from einops import rearrange
from torch import Tensor

from genkit_plugins.flowpp.kinds import Coupling, Pair
from genkit_plugins.flowpp.layers import sum_per_image
from genkit_plugins.flowpp.mixture import LogisticMixture
from genkit_plugins.flowpp.network import ConditioningNetwork
from genkit_plugins.precision import at_least_float32


class _NetworkCoupling(Coupling):
    """A coupling whose parameters come from a :class:`ConditioningNetwork`, ``per_element`` outputs per element."""

    def __init__(
        self,
        per_element: int,
        *,
        channels: int,
        height: int,
        width: int,
        filters: int,
        blocks: int,
        heads: int,
        dropout: float,
        context_channels: int = 0,
    ):
        super().__init__()
        self.per_element = per_element
        self.net = ConditioningNetwork(
            channels,
            channels * self.per_element,
            height=height,
            width=width,
            filters=filters,
            blocks=blocks,
            heads=heads,
            dropout=dropout,
            context_channels=context_channels,
        )

    def _outputs(self, cond: Tensor, context: Tensor | None) -> Tensor:
        """The network's outputs ``(B, C, H, W, per_element)`` in at least float32."""
        return at_least_float32(rearrange(self.net(cond, context), "b (c j) h w -> b c h w j", j=self.per_element))


class MixtureCDFCoupling(_NetworkCoupling):
    """Logistic-mixture-CDF coupling with a gated-convolution and self-attention network (Flow++, Ho et al. 2019)."""

    def __init__(self, settings=None, *, components: int, **sizes):
        super().__init__(2 + 3 * components, **sizes)
        self.components = components

    def _mixture(self, cond: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor, LogisticMixture]:
        out = self._outputs(cond, context)
        k = self.components
        mixture = LogisticMixture.from_network(out[..., 2 : 2 + k], out[..., 2 + k : 2 + 2 * k], out[..., 2 + 2 * k :])
        return out[..., 0].tanh(), out[..., 1], mixture

    def forward(self, pair: Pair, context: Tensor | None = None) -> tuple[Pair, Tensor]:
        cond, x = pair
        a, b, mixture = self._mixture(cond, context)
        logit, logdet = mixture.transform(at_least_float32(x))
        return (cond, a.exp() * logit + b), sum_per_image(logdet + a)

    def inverse(self, pair: Pair, context: Tensor | None = None) -> tuple[Pair, Tensor]:
        cond, y = pair
        a, b, mixture = self._mixture(cond, context)
        x = mixture.inverse_logit_cdf((at_least_float32(y) - b) * (-a).exp())
        _, logdet = mixture.transform(x)
        return (cond, x.to(y.dtype)), -sum_per_image(logdet + a)


class AffineCoupling(_NetworkCoupling):
    """Affine coupling ``y = e^a·x + b``, ``a = tanh(·)``: Flow++'s ablation without the mixture CDF."""

    def __init__(self, settings=None, *, components: int = 0, **sizes):
        super().__init__(2, **sizes)

    def forward(self, pair: Pair, context: Tensor | None = None) -> tuple[Pair, Tensor]:
        cond, x = pair
        out = self._outputs(cond, context)
        a, b = out[..., 0].tanh(), out[..., 1]
        return (cond, a.exp() * at_least_float32(x) + b), sum_per_image(a)

    def inverse(self, pair: Pair, context: Tensor | None = None) -> tuple[Pair, Tensor]:
        cond, y = pair
        out = self._outputs(cond, context)
        a, b = out[..., 0].tanh(), out[..., 1]
        return (cond, ((at_least_float32(y) - b) * (-a).exp()).to(y.dtype)), -sum_per_image(a)
