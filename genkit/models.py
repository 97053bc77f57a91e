"""Building the model a recipe describes: the one place a recipe becomes a ``GenerativeModel``."""

from __future__ import annotations

import torch

from genkit.interfaces import GenerativeModel
from genkit.recipe import Recipe


def build_model(recipe: Recipe, device: torch.device | str | None = None) -> GenerativeModel:
    """The recipe's model on ``device`` (``"meta"`` allocates nothing), holding its recipe as ``model.recipe``."""
    with torch.device(device or "cpu"):
        model = recipe.model.build("model")
    model.recipe = recipe
    return model


def parameter_counts(recipe: Recipe) -> dict[str, int]:
    """Trainable parameters of each top-level part of the model, and the total (computed on the meta device)."""
    model = build_model(recipe, "meta")
    counts = {name: sum(p.numel() for p in child.parameters()) for name, child in model.named_children()}
    direct = sum(p.numel() for p in model.parameters(recurse=False))
    if direct:
        counts["(own)"] = direct
    counts = {name: n for name, n in counts.items() if n}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
