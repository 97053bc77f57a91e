"""The IAF posterior inside genkit's Very Deep VAE: the model sizes its posterior network from the plugin and learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from genkit_iaf import IafPosterior

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "digits-iaf.toml"
pytestmark = pytest.mark.skipif(not RECIPE.is_file(), reason="needs genkit's recipes/ folder")

# recipes/digits-iaf.toml shrunk to a few seconds on CPU: three latent layers instead of fifteen
SMALL = [
    "model.width=16",
    "model.zdim=4",
    'model.enc_blocks="8x1,8d2,4x1,4d4,1x1"',
    'model.dec_blocks="1x1,4m1,8m4"',
    "model.posterior.hidden=16",
    "model.posterior.context=4",
]


def small_model(seed: int = 0):
    from genkit.models import build_model
    from genkit.recipe import load_recipe

    recipe = load_recipe(RECIPE, SMALL)
    torch.manual_seed(seed)
    return recipe, build_model(recipe)


def digits(recipe, split: str, n: int) -> torch.Tensor:
    data = recipe.data.build("dataset").split(split)
    return torch.stack([data[i] for i in range(n)])


def test_every_latent_layer_has_its_own_flow_and_a_posterior_net_sized_from_param_channels(iaf_registry):
    recipe, model = small_model()
    for block in model.decoder.dec_blocks:
        assert isinstance(block.posterior_family, IafPosterior)
        r, width = block.resolution, block.width
        assert block.enc(torch.zeros(1, 2 * width, r, r)).shape == (1, 2 * 4 + 4, r, r)
    flows = {id(block.posterior_family.flow) for block in model.decoder.dec_blocks}
    assert len(flows) == len(model.decoder.dec_blocks)


def test_latents_at_their_mean_give_a_deterministic_finite_elbo(iaf_registry):
    recipe, model = small_model()
    images = digits(recipe, "validation", 4)
    with torch.no_grad():
        first, second = model(images, latents="mean"), model(images, latents="mean")
    assert torch.equal(first.nll, second.nll)
    assert torch.isfinite(first.nll).all()


def test_decoding_the_encoded_iaf_posterior_means_is_the_reconstruction_from_them(iaf_registry):
    """Each layer's latents are the flow's image of its base mean; given back, they make the same likelihood."""
    recipe, model = small_model()
    model = model.double().eval()
    images = digits(recipe, "validation", 3)
    latents = model.encode_latents(images, "mean")
    with torch.no_grad():
        given, _ = model.decoder(3, None, given=[latents.tensors[s.name] for s in model.latent_layout])
        assert torch.equal(given, model.posterior_params(images, "mean"))
        expected = model.to_uint8(model.likelihood.sample(given, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(model.decode_latents(latents, generator=torch.Generator().manual_seed(1)), expected)


@pytest.mark.slow
def test_a_short_training_run_on_cpu_lowers_the_loss(iaf_registry):
    """40 AdamW steps on the embedded digits; the negative ELBO of a fixed held-out batch (fixed noise) falls."""
    recipe, model = small_model(seed=1)
    train = digits(recipe, "train", 256)
    held_out = digits(recipe, "validation", 64)

    def held_out_loss() -> float:
        with torch.no_grad():
            return model(held_out, generator=torch.Generator().manual_seed(0)).loss.item()

    before = held_out_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.train.lr, betas=recipe.train.betas)
    g = torch.Generator().manual_seed(2)
    for _ in range(40):
        batch = train[torch.randint(0, len(train), (32,), generator=g)]
        optimizer.zero_grad()
        model(batch, generator=g).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.train.grad_clip)
        optimizer.step()
    after = held_out_loss()
    assert after < before - 0.5, (before, after)  # nats/dim: from ~5.5 (near uniform over 256 levels) well down
    flow_moved = [
        block.posterior_family.flow.steps[0].made.out.weight.abs().max() for block in model.decoder.dec_blocks
    ]
    assert min(flow_moved) > 0  # the flow itself was trained, not only the Gaussian in front of it
