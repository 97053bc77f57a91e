"""``train.compile = true``: the VDVAE compiles with torch.compile and computes the same loss as eager mode."""

from __future__ import annotations

import pytest
import torch
from locations import ROOT

from genkit.models import build_model
from genkit.recipe import load_recipe


@pytest.mark.slow
def test_compiled_vdvae_forward_matches_eager():
    # a minute of compilation on two CPU cores: forward only, deterministic latents, so both paths see the same numbers
    recipe = load_recipe(ROOT / "recipes" / "digits.toml", ["train.compile=true"])
    torch.manual_seed(0)
    model = build_model(recipe)
    images = torch.randint(0, 256, (4, 8, 8, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    eager = model(images, latents="mean")
    compiled = torch.compile(model)(images, latents="mean")
    torch.testing.assert_close(compiled.loss, eager.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled.nll, eager.nll, rtol=1e-5, atol=1e-6)
    for name in ("distortion", "rate"):
        torch.testing.assert_close(compiled.parts[name], eager.parts[name], rtol=1e-5, atol=1e-6)
