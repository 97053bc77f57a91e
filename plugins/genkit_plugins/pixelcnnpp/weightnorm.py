"""Weight normalisation with data-dependent initialisation (Salimans & Kingma 2016), as openai/pixel-cnn has it.

A layer's weight is ``W = g · V / ‖V‖``, the norm taken for each output channel over every other
axis, and ``b`` its bias: three plain parameters named as in the official code (``V``, ``g``,
``b``), not torch's deprecated ``weight_norm`` hook. ``V`` starts from N(0, 0.05²), ``g`` at 1
and ``b`` at 0, as there.

Data-dependent initialisation: once armed, the next forward pass computes ``t = (V/‖V‖) ∗ x``,
sets ``g = init_scale / std(t)`` and ``b = −mean(t)·g`` for every output channel (statistics over
the batch and every position) and returns the normalised ``g·t + b``, so each later layer
initialises on normalised inputs: one pass initialises a whole network in order.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genkit_plugins.pixelcnnpp.kinds import InitialisedFromData

V_STD = 0.05
VARIANCE_EPS = 1e-10  # openai/pixel-cnn's, added to the variance before the square root


class WeightNormed(nn.Module, InitialisedFromData):
    """Parameters ``V`` (``out_axis`` the output channels), ``g`` and ``b`` (one per output channel), and the
    initialisation logic; subclasses give the operation."""

    #: the axis of ``V`` that indexes output channels
    out_axis: int = 0

    def __init__(self, shape: tuple[int, ...], out_channels: int, init_scale: float = 1.0):
        super().__init__()
        self.V = nn.Parameter(torch.randn(shape) * V_STD)
        self.g = nn.Parameter(torch.ones(out_channels))
        self.b = nn.Parameter(torch.zeros(out_channels))
        self.init_scale = init_scale
        self._armed = False
        self._fixed: Tensor | None = None  # the effective weight, while the weights are held fixed

    def _per_channel(self, values: Tensor) -> Tensor:
        """``values`` (one per output channel) shaped to broadcast against ``V``."""
        shape = [1] * self.V.dim()
        shape[self.out_axis] = -1
        return values.reshape(shape)

    def direction(self) -> Tensor:
        """``V / ‖V‖``: unit norm for every output channel."""
        dims = [d for d in range(self.V.dim()) if d != self.out_axis]
        return self.V / torch.linalg.vector_norm(self.V, dim=dims, keepdim=True)

    def weight(self) -> Tensor:
        """The effective weight ``g · V / ‖V‖``."""
        if self._fixed is not None:
            return self._fixed
        return self.direction() * self._per_channel(self.g)

    @abstractmethod
    def operation(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """The layer's linear map (convolution, transposed convolution, matrix product) with these weights."""

    # --- data-dependent initialisation ---------------------------------------------------------------

    def arm_init(self) -> None:
        self._armed = True

    @property
    def init_pending(self) -> bool:
        return self._armed

    def forward(self, x: Tensor) -> Tensor:
        """``operation(x)`` with the effective weight, initialising first when armed."""
        if self._armed:
            self._armed = False
            with torch.no_grad():
                t = self.operation(x, self.direction(), None)
                dims = [d for d in range(t.dim()) if d != 1]
                mean, var = t.mean(dims), t.var(dims, unbiased=False)
                scale = self.init_scale / torch.sqrt(var + VARIANCE_EPS)
                self.g.copy_(scale)
                self.b.copy_(-mean * scale)
        return self.operation(x, self.weight(), self.b)


class WeightNormConv2d(WeightNormed):
    """A convolution without padding, ``V`` shaped ``(out, in, kh, kw)`` as torch's."""

    def __init__(self, in_channels: int, out_channels: int, filter_size: tuple[int, int], stride: int = 1, **kw):
        super().__init__((out_channels, in_channels, *filter_size), out_channels, **kw)
        self.conv_stride = stride

    def operation(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, weight, bias, stride=self.conv_stride)


class WeightNormConvTranspose2d(WeightNormed):
    """A stride-``stride`` transposed convolution, ``V`` shaped ``(in, out, kh, kw)`` as torch's, normalised per
    output channel (as openai/pixel-cnn; pclucas14's port normalises per input channel)."""

    out_axis = 1

    def __init__(self, in_channels: int, out_channels: int, filter_size: tuple[int, int], stride: int = 2, **kw):
        super().__init__((in_channels, out_channels, *filter_size), out_channels, **kw)
        self.conv_stride = stride

    def operation(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        # output_padding 1 gives openai/pixel-cnn's VALID output size, (H-1)·s + kh + 1
        return F.conv_transpose2d(x, weight, bias, stride=self.conv_stride, output_padding=self.conv_stride - 1)


class WeightNormLinear(WeightNormed):
    """A 1×1 convolution ("network in network"), ``V`` shaped ``(out, in)`` as torch's ``Linear``."""

    def __init__(self, in_channels: int, out_channels: int, **kw):
        super().__init__((out_channels, in_channels), out_channels, **kw)

    def operation(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, weight[:, :, None, None], bias)


@contextmanager
def fixed_weights(module: nn.Module) -> Iterator[None]:
    """Every weight-normalised layer in ``module`` computes its effective weight once, for the duration.

    For sampling, where the weights do not change and every layer runs at every pixel: without it
    each step would recompute ``g · V / ‖V‖`` for every layer.
    """
    layers = [m for m in module.modules() if isinstance(m, WeightNormed)]
    with torch.no_grad():
        for layer in layers:
            layer._fixed = layer.weight()
    try:
        yield
    finally:
        for layer in layers:
            layer._fixed = None
