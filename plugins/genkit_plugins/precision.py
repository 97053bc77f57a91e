"""Where a model must not follow bf16 autocast: densities, log-determinants and likelihood parameters.

Under ``train.dtype = "bfloat16"`` the networks run in bf16, but the quantities built from their
outputs need at least float32. In bf16 arithmetic a VDVAE layer's analytic KL — a sum of terms near
½ that cancel to ~1e-4 — comes out negative at initialisation (the CIFAR-10 model's rate read
−0.042 bits/dim against +0.002 in float32); near ±1 a bf16 value's spacing is a whole 8-bit pixel
bin, too coarse for a likelihood's means; a flow's log-determinant sums thousands of terms.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32, or as it is when it is already that precise (float64 stays float64)."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def without_autocast(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer(x)`` outside autocast, in the precision of the layer's weights (float32 under bf16 training)."""
    kind = x.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        weight = next(layer.parameters())
        with torch.autocast(kind, enabled=False):
            return layer(x.to(weight.dtype))
    return layer(x)
