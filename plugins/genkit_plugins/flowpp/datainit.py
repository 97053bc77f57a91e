"""Data-dependent initialisation as the official Flow++ code does it (``flows.py``: ``dense``, ``conv2d``, ``Norm``).

Every layer that has one derives from :class:`DataInit`. :func:`data_dependent_init` arms all of
them for one forward pass: each armed layer, when the pass reaches it, computes its output on the
batch with its current weights, rescales the weights and sets the bias so that this output has mean 0
and standard deviation ``init_scale`` per channel (per activation for ``Norm``), disarms itself and
returns the output of the new weights. Later layers therefore see already-initialised inputs, as in
the official single init graph. Nothing is initialised lazily: outside the context no layer changes
its weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: added to the variance before the reciprocal square root (official value)
MOMENTS_EPS = 1e-8


class DataInit(nn.Module):
    """A layer with a data-dependent initialisation, armed by :func:`data_dependent_init`."""

    initializing: bool = False


@contextmanager
def data_dependent_init(module: nn.Module) -> Iterator[None]:
    """Arm every :class:`DataInit` layer inside ``module`` for the forward pass run in this context."""
    layers = [m for m in module.modules() if isinstance(m, DataInit)]
    for layer in layers:
        layer.initializing = True
    try:
        yield
    finally:
        for layer in layers:
            layer.initializing = False


@contextmanager
def full_precision(x: Tensor) -> Iterator[None]:
    """Autocast off on ``x``'s device: the code inside runs in the dtypes of its tensors."""
    kind = x.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        with torch.autocast(kind, enabled=False):
            yield
    else:
        yield


class Conv(DataInit):
    """A ``k×k`` convolution (``k = 1``: the official ``nin``/``dense``) with plain weights, N(0, 0.05²) before init.

    TensorFlow's ``SAME`` padding at stride 1. The data-dependent init scales each output channel's
    weights by ``init_scale / sqrt(var + 1e-8)`` and sets its bias to ``−mean·scale``, moments over
    the batch and both spatial axes.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, init_scale: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel) * 0.05)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.padding = kernel // 2
        self.init_scale = init_scale

    def forward(self, x: Tensor) -> Tensor:
        if self.initializing:
            self._initialize(x)
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        with full_precision(x):
            y = F.conv2d(x.to(self.weight.dtype), self.weight, padding=self.padding)
            var, mean = torch.var_mean(y, dim=(0, 2, 3), correction=0)
            scale = self.init_scale * torch.rsqrt(var + MOMENTS_EPS)
            self.weight.mul_(scale[:, None, None, None])
            self.bias.copy_(-mean * scale)
        self.initializing = False
