"""The reconstruction grid of Child (2021), Figure 4: how much of an image the top latent layers carry.

Row ``i`` shows validation image ``i`` and then the model's reconstructions that take the
posterior's latents for the first ``k`` layers and sample the rest from the prior, for ``k`` from
1 to every layer (roughly doubling). Early columns keep only the global layout; by the last the
image is reproduced almost exactly.
"""

from __future__ import annotations

import torch
from einops import rearrange


def kept_layer_counts(layers: int) -> list[int]:
    """1, 2, 4, … and finally ``layers`` itself."""
    counts, k = [], 1
    while k < layers:
        counts.append(k)
        k *= 2
    return counts + [layers]


@torch.no_grad()
def reconstruction_grid(model, images: torch.Tensor, *, generator, temperature: float) -> tuple[torch.Tensor, int]:
    """``(rows·columns, H, W, C)`` ``uint8`` images, row-major, and ``columns``: one row per image of ``images``."""
    columns = [images] + [
        model.reconstruct(images, k, temperature, generator) for k in kept_layer_counts(model.n_latent_layers)
    ]
    grid = torch.stack([c.to(images.device, torch.uint8) for c in columns], dim=1)  # (rows, columns, H, W, C)
    return rearrange(grid, "r k h w c -> (r k) h w c"), len(columns)
