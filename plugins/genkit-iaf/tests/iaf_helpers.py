"""Helpers for genkit-iaf's tests (a module of its own: genkit's suite has a conftest.py too)."""

from __future__ import annotations

import torch
from genkit_iaf import IafPosterior, IafSettings

DTYPE = torch.float64


def randomise(module: torch.nn.Module, seed: int, scale: float = 0.5) -> torch.nn.Module:
    """Overwrite every learned weight with N(0, scale²) so no test relies on the near-identity initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=g, dtype=parameter.dtype) * scale)
    return module


def family(zdim: int = 4, seed: int = 0, **settings) -> IafPosterior:
    """An ``iaf`` family in float64 with random weights (3 steps, 12 hidden units, depth 2, context 3 unless given)."""
    options = dict(steps=3, hidden=12, depth=2, context=3) | settings
    return randomise(IafPosterior(IafSettings(**options), zdim=zdim).to(DTYPE), seed)


def params(posterior: IafPosterior, n: int = 1, h: int = 1, w: int = 1, seed: int = 1) -> torch.Tensor:
    """What a posterior network might output, ``(n, param_channels, h, w)`` drawn from N(0, 0.5²)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, posterior.param_channels, h, w, generator=g, dtype=DTYPE) * 0.5


def pixel_map(fn, zdim: int):
    """Wrap a map of (1, zdim, 1, 1) latents as a map of vectors (zdim,), for autograd's jacobian."""
    return lambda v: fn(v.reshape(1, zdim, 1, 1)).reshape(zdim)
