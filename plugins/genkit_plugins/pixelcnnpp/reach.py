"""Which inputs each output depends on: a dependency map from exact input gradients.

``dependency_map(fn, x)[i, j]`` is true when the gradient of the sum of ``fn(x)``'s channels at
output position ``i`` with respect to input position ``j`` (any channel) is non-zero, positions in
raster order. Computed with one forward pass and batches of vector-Jacobian products
(``torch.func.vjp`` under ``vmap``), without the weights' gradients. In float64 on the CPU a
non-zero gradient is a dependence; a zero one is none, unless contributions cancel exactly, which
generic weights do not make happen (ELU and the sigmoid have no flat regions). This is how genkit
checks that PixelCNN++ is causal and has exactly the reference's blind spots.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def dependency_map(fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int = 256) -> Tensor:
    """``(H'·W', H·W)`` booleans for ``fn`` mapping ``x`` ``(1, C, H, W)`` to ``(1, P, H', W')``."""
    with torch.no_grad():  # no gradients for the weights; torch.func still differentiates with respect to x
        out, pull = torch.func.vjp(lambda v: fn(v).sum(1, keepdim=True), x)
        positions = out.shape[-2] * out.shape[-1]
        rows = []
        for start in range(0, positions, chunk):
            n = min(chunk, positions - start)
            cotangents = torch.zeros(n, positions, dtype=out.dtype, device=out.device)
            cotangents[torch.arange(n), torch.arange(start, start + n)] = 1.0
            (grads,) = torch.func.vmap(pull)(cotangents.reshape(n, *out.shape))
            rows.append((grads.reshape(n, x.shape[1], -1) != 0).any(1))  # (n, H·W): any channel
    return torch.cat(rows)


def future_dependencies(reach: Tensor) -> Tensor:
    """``(i, j)`` pairs where output pixel ``i`` depends on input pixel ``j ≥ i`` (for a map of one image onto
    itself): what a model causal to the pixel never has."""
    return torch.triu(reach).nonzero()
