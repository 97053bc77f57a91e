"""Helpers for genkit-iaf's tests (a module of its own: genkit's suite has a conftest.py too)."""

from __future__ import annotations

import torch


def randomise(module: torch.nn.Module, seed: int, scale: float = 0.5) -> torch.nn.Module:
    """Overwrite every learned weight with N(0, scale²) so no test relies on the near-identity initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=g, dtype=parameter.dtype) * scale)
    return module
