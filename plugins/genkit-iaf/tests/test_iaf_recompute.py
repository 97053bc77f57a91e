"""Activation checkpointing with IAF posteriors: a recomputed decoder block draws and transforms the same z again."""

from __future__ import annotations

import pytest
import torch
from test_iaf_training import RECIPE, SMALL

pytestmark = pytest.mark.skipif(not RECIPE.is_file(), reason="needs genkit's recipes/ folder")


@pytest.mark.parametrize("generator", [False, True], ids=["global-generator", "passed-generator"])
def test_every_policy_gives_the_plain_gradients_in_float64(iaf_registry, generator):
    from genkit.models import build_model
    from genkit.recipe import load_recipe
    from genkit.recompute import distinct_policies
    from genkit.testing import gradients_under

    torch.manual_seed(0)
    model = build_model(load_recipe(RECIPE, SMALL)).double().train()
    images = torch.randint(0, 256, (2, 8, 8, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    plain_loss, plain, plain_after = gradients_under(model, images, "off", seed=2, generator=generator)
    for policy in distinct_policies([unit.resolution for unit in model.recomputable_units()])[1:]:
        loss, grads, after = gradients_under(model, images, policy.text, seed=2, generator=generator)
        assert loss == plain_loss and after == plain_after and grads.keys() == plain.keys(), policy.text
        for name in plain:
            torch.testing.assert_close(grads[name], plain[name], rtol=1e-12, atol=0, msg=f"{policy.text}: {name}")
