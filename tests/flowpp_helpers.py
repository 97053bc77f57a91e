"""Shared set-up of the Flow++ tests: the fixture computed by the official TensorFlow code, and small models."""

from __future__ import annotations

import json

import numpy as np
import torch
from einops import rearrange
from locations import FIXTURES, ROOT

from genkit.recipe import load_recipe

FIXTURE = FIXTURES / "flowpp-tiny"
TINY_RECIPE = ROOT / "tests" / "recipes" / "flowpp-tiny.toml"


def expected() -> dict:
    return json.loads((FIXTURE / "expected.json").read_text())


def fixture_images() -> torch.Tensor:
    """The fixture's ``uint8`` images ``(8, 8, 8, 3)``."""
    return torch.from_numpy(np.load(FIXTURE / "images_uint8.npy"))


def fixture_array(name: str) -> torch.Tensor:
    """A fixture array ``(B, H, W, C)`` as genkit's ``(B, C, H, W)``."""
    return rearrange(torch.from_numpy(np.load(FIXTURE / f"{name}.npy")), "b h w c -> b c h w").contiguous()


def tiny_recipe():
    return load_recipe(TINY_RECIPE)


def converted_tiny_model(dtype: torch.dtype = torch.float64):
    """The fixture's official variables in genkit's ``flowpp`` model, eval mode."""
    from genkit.models import build_model
    from genkit_plugins.flowpp.convert import convert_official

    recipe = tiny_recipe()
    state, _ = convert_official(FIXTURE / "variables.npz", recipe)
    model = build_model(recipe).to(dtype)
    model.load_state_dict(state)
    return model.eval()
