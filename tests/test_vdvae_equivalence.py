"""The converted reference checkpoints reproduce the reference's numbers (fixtures computed by openai/vdvae in
float64)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from einops import rearrange
from locations import FIXTURES, ROOT

from genkit.pretrained import load_model_dir, save_pretrained
from genkit.recipe import load_recipe
from genkit_plugins.vdvae.convert import convert_official

NAMES = ["vdvae-tiny-8bit", "vdvae-tiny-5bit"]
RTOL = 1e-6


@pytest.fixture(scope="module", params=NAMES)
def converted(request, tmp_path_factory):
    """(model loaded in float64 from a converted model directory, fixture directory, expected values)."""
    name = request.param
    fixture = FIXTURES / name
    recipe, state, notes = convert_official(
        fixture / "reference-model-float64.th", load_recipe(ROOT / "tests" / "recipes" / f"{name}.toml")
    )
    assert notes == []
    directory = tmp_path_factory.mktemp(name)
    from genkit.models import build_model

    save_pretrained(build_model(recipe, "meta"), directory, recipe=recipe, state_dict=state)
    model = load_model_dir(directory, dtype=torch.float64)
    with torch.no_grad():  # each forward pass once: float64 convolutions are slow on CPU
        terms = model(images(fixture), latents="mean")
        posterior = rearrange(model.posterior_params(images(fixture), latents="mean"), "b p h w -> b h w p")
        prior = rearrange(model.prior_params(2, temperature=1.0, latents="mean"), "b p h w -> b h w p")
    return model, fixture, json.loads((fixture / "expected.json").read_text()), terms, posterior, prior


def images(fixture):
    return torch.from_numpy(np.load(fixture / "images_uint8.npy"))


def test_parameter_count_and_layers_match_the_reference(converted):
    model, _, expected, *_ = converted
    assert sum(p.numel() for p in model.parameters()) == expected["n_parameters"]
    assert model.n_latent_layers == expected["n_latent_layers"]
    assert set(model.state_dict()) == set(expected["state_dict_keys"])


@pytest.mark.parametrize("term", ["distortion", "rate", "elbo"])
def test_per_image_terms_at_the_posterior_mean_match(converted, term):
    _, _, expected, terms, _, _ = converted
    value = terms.nll if term == "elbo" else terms.parts[term]
    np.testing.assert_allclose(value.numpy(), expected[f"{term}_nats_per_dim"], rtol=RTOL)


def test_every_layer_kl_matches(converted):
    _, _, expected, terms, _, _ = converted
    np.testing.assert_allclose(terms.layer_kl.numpy(), expected["kl_nats_per_layer"], rtol=RTOL)


def test_dmol_parameters_at_the_posterior_mean_match(converted):
    _, fixture, _, _, params, _ = converted
    expected = np.load(fixture / "expected_dmol_params_posterior_mean.npy")
    np.testing.assert_allclose(params.numpy(), expected, rtol=RTOL, atol=RTOL * np.abs(expected).max())


def test_dmol_parameters_of_unconditional_draws_at_the_prior_mean_match(converted):
    _, fixture, _, _, _, params = converted
    expected = np.load(fixture / "expected_dmol_params_prior_mean_n2.npy")
    np.testing.assert_allclose(params.numpy(), expected, rtol=RTOL, atol=RTOL * np.abs(expected).max())


def test_float32_checkpoint_matches_to_float32_precision():
    fixture = FIXTURES / "vdvae-tiny-8bit"
    from genkit.models import build_model
    from genkit.pretrained import load_strict

    recipe, state, _ = convert_official(
        fixture / "reference-model-ema.th", load_recipe(ROOT / "tests" / "recipes" / "vdvae-tiny-8bit.toml")
    )
    model = build_model(recipe)
    load_strict(model, state, "ema")
    with torch.no_grad():
        terms = model(images(fixture), latents="mean")
    expected = json.loads((fixture / "expected.json").read_text())
    np.testing.assert_allclose(terms.nll.numpy(), expected["elbo_nats_per_dim"], rtol=1e-4)
