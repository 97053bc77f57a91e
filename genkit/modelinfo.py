"""Facts about the model a recipe builds, computed without allocating its weights."""

from __future__ import annotations

import torch

from genkit.recipe import Recipe


def build_model(recipe: Recipe, device: torch.device | str | None = None) -> torch.nn.Module:
    """Build the recipe's model (on ``device``; ``"meta"`` allocates nothing)."""
    with torch.device(device or "cpu"):
        return recipe.model.build("model")


def parameter_counts(recipe: Recipe) -> dict[str, int]:
    """Trainable parameters of each top-level part of the model, and the total."""
    model = build_model(recipe, "meta")
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    direct = sum(p.numel() for p in model.parameters(recurse=False))
    if direct:
        counts["(own)"] = direct
    counts = {name: n for name, n in counts.items() if n}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
