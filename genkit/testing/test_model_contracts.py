"""The model contract of ``genkit.interfaces`` and ``genkit.capabilities``, checked for every registered model plugin.

Each test states one property every model must have — its objective and samplers declared, its
figure and parts shaped and summed as documented, deterministic when asked — and one test per
capability checks what a model that declares it must do; a model without the capability skips it.
"""

from __future__ import annotations

import math

import pytest
import torch

from genkit.capabilities import (
    DataDependentInit,
    Encodable,
    ImportanceWeighted,
    Invertible,
    LatentVariables,
    Recomputable,
)
from genkit.errors import GenkitError
from genkit.interfaces import GenerativeModel, LossTerms, Objective
from genkit.latents import KINDS, Latents
from genkit.testing import agree, example_settings, gradients_under, plugin_params


@pytest.fixture(scope="module")
def contract_model_cache():
    return {}


def _model(spec, cache) -> GenerativeModel:
    if spec.name not in cache:
        torch.manual_seed(0)
        cache[spec.name] = spec.build(example_settings(spec))
    model = cache[spec.name]
    assert isinstance(model, GenerativeModel)
    return model


def _images(model, n: int, seed: int) -> torch.Tensor:
    h, w, c = model.image_shape
    return torch.randint(0, 256, (n, h, w, c), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_declares_its_objective_and_its_samplers(spec, contract_model_cache):
    model = _model(spec, contract_model_cache)
    assert isinstance(model.objective, Objective) and model.objective.label
    assert len(set(model.objective.parts)) == len(model.objective.parts)
    assert isinstance(model.samplers, tuple) and model.samplers and all(isinstance(s, str) for s in model.samplers)


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_loss_terms_have_the_documented_shapes_and_relations(spec, contract_model_cache):
    model = _model(spec, contract_model_cache)
    terms = model(_images(model, 2, 0))
    assert isinstance(terms, LossTerms)
    assert terms.nll.shape == (2,) and torch.isfinite(terms.nll).all()
    assert set(terms.parts) == set(model.objective.parts)
    for name in model.objective.parts:
        assert terms.parts[name].shape == (2,), name
    if terms.parts:
        assert torch.allclose(sum(terms.parts.values()), terms.nll, rtol=1e-5, atol=1e-6)
    assert terms.loss.shape == () and torch.allclose(terms.loss, terms.nll.mean())
    if model.objective.exact or isinstance(model, LatentVariables):
        assert (terms.nll > 0).all()  # −log of a probability (a bound above one) of a discrete image
    if isinstance(model, LatentVariables):
        assert terms.layer_kl is not None and terms.layer_kl.shape == (2, model.n_latent_layers)


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_is_deterministic_with_latents_at_their_mean_and_with_a_seeded_generator(spec, contract_model_cache):
    model = _model(spec, contract_model_cache).eval()
    images = _images(model, 2, 2)
    with torch.no_grad():
        assert torch.equal(model(images, latents="mean").nll, model(images, latents="mean").nll)
        first = model(images, generator=torch.Generator().manual_seed(5)).nll
        assert torch.equal(first, model(images, generator=torch.Generator().manual_seed(5)).nll)
    model.train()


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_every_sampler_draws_the_same_images_from_the_same_generator_state(spec, contract_model_cache):
    model = _model(spec, contract_model_cache).eval()
    with torch.no_grad():
        for sampler in model.samplers:
            a = model.sample(2, generator=torch.Generator().manual_seed(0), sampler=sampler)
            b = model.sample(2, generator=torch.Generator().manual_seed(0), sampler=sampler)
            assert a.dtype == torch.uint8 and tuple(a.shape) == (2, *model.image_shape)
            assert torch.equal(a, b), sampler
    with pytest.raises(GenkitError, match="sampler"):
        model.sample(1, sampler="no-such-sampler")
    model.train()


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_samples_lie_on_the_levels_of_the_bit_depth_it_declares(spec, contract_model_cache):
    """A ``bits``-bit level is a pixel's top ``bits`` bits: the depth a data set must declare to be scored by it."""
    model = _model(spec, contract_model_cache).eval()
    assert isinstance(model.bits, int) and 1 <= model.bits <= 8
    with torch.no_grad():
        images = model.sample(2, generator=torch.Generator().manual_seed(0))
    model.train()
    assert not (images % 2 ** (8 - model.bits)).any()


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_pictures_are_uint8_grids_of_its_shape(spec, contract_model_cache):
    model = _model(spec, contract_model_cache).eval()
    with torch.no_grad():
        pictures = model.pictures(_images(model, 2, 3), generator=torch.Generator().manual_seed(0), temperature=1.0)
    for name, (grid, columns) in pictures.items():
        assert grid.dtype == torch.uint8 and tuple(grid.shape[1:]) == model.image_shape, name
        assert isinstance(columns, int) and len(grid) % columns == 0, name
    model.train()


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_with_data_dependent_initialisation_initialises_from_a_batch(spec):
    torch.manual_seed(0)
    model = spec.build(example_settings(spec))
    if not isinstance(model, DataDependentInit):
        pytest.skip(f"{spec.name} has no data-dependent initialisation")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    with torch.no_grad():
        model.initialize(_images(model, 8, 4))
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "initialize() changed no weight"
    assert torch.isfinite(model(_images(model, 2, 5)).nll).all()


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_with_an_importance_weighted_bound_averages_its_log_weights_to_its_figure(spec, contract_model_cache):
    """E[−log w]/D equals the expected single-draw figure; logmeanexp over draws is a tighter bound."""
    model = _model(spec, contract_model_cache)
    if not isinstance(model, ImportanceWeighted):
        pytest.skip(f"{spec.name} has no importance-weighted bound")
    model.eval()
    draws = 200
    images = _images(model, 1, 6).expand(draws, *model.image_shape)  # one image, its draws side by side
    with torch.no_grad():
        log_w = model.importance_log_weights(images).double()
        nll = model(images).nll.double()
    model.train()
    assert log_w.shape == (draws,) and torch.isfinite(log_w).all()
    assert agree(-log_w[:, None] / model.dims_per_image, nll[:, None])
    iw = -(torch.logsumexp(log_w, 0) - math.log(draws)) / model.dims_per_image
    assert iw <= -log_w.mean() / model.dims_per_image + 1e-12


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_with_latent_variables_reconstructs_from_any_number_of_posterior_layers(spec, contract_model_cache):
    model = _model(spec, contract_model_cache)
    if not isinstance(model, LatentVariables):
        pytest.skip(f"{spec.name} has no latent variables")
    assert len(model.layer_resolutions) == model.n_latent_layers
    with torch.no_grad():  # the two ways to sample only a model with latent layers offers
        at_means = model.sample(2, generator=torch.Generator().manual_seed(0), latents="mean")
        layered = model.sample(2, temperature=[0.5] * model.n_latent_layers, generator=torch.Generator().manual_seed(0))
    for images in (at_means, layered):
        assert images.dtype == torch.uint8 and tuple(images.shape) == (2, *model.image_shape)
    images = _images(model, 2, 7)
    with torch.no_grad():
        for keep in (0, model.n_latent_layers):
            out = model.reconstruct(images, keep, temperature=0.5, generator=torch.Generator().manual_seed(0))
            assert out.dtype == torch.uint8 and out.shape == images.shape


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_with_latent_variables_draws_each_image_then_its_reconstructions_row_by_row(spec, contract_model_cache):
    model = _model(spec, contract_model_cache)
    if not isinstance(model, LatentVariables):
        pytest.skip(f"{spec.name} has no latent variables")
    images, keep = _images(model, 2, 10), [0, model.n_latent_layers]
    with torch.no_grad():
        grid, columns = model.reconstruction_grid(
            images, keep, temperature=0.5, generator=torch.Generator().manual_seed(0)
        )
        generator = torch.Generator().manual_seed(0)  # the same draws, column after column
        expected = [model.reconstruct(images, k, temperature=0.5, generator=generator) for k in keep]
    assert columns == 1 + len(keep) and grid.dtype == torch.uint8
    rows = grid.reshape(len(images), columns, *model.image_shape)
    assert torch.equal(rows[:, 0], images)
    for column, reconstruction in enumerate(expected, 1):
        assert torch.equal(rows[:, column], reconstruction)


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_that_is_invertible_decodes_its_encoding_back_to_the_image(spec):
    torch.manual_seed(0)
    model = spec.build(example_settings(spec)).double().eval()
    if not isinstance(model, Invertible):
        pytest.skip(f"{spec.name} is not invertible")
    images = _images(model, 2, 8)
    with torch.no_grad():
        if isinstance(model, DataDependentInit):
            model.train()
            model.initialize(_images(model, 8, 9))
            model.eval()
        z = model.encode(images, latents="mean")
        assert torch.equal(model.decode(z), images)
        assert float(model.inverse_error(images)) < 1e-6


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_that_is_encodable_encodes_every_tensor_of_its_layout_and_decodes_them(spec, contract_model_cache):
    model = _model(spec, contract_model_cache)
    if not isinstance(model, Encodable):
        pytest.skip(f"{spec.name} has no latents to encode and decode")
    model.eval()
    layout, images = model.latent_layout, _images(model, 2, 11)
    assert layout and len({tensor.name for tensor in layout}) == len(layout)
    with torch.no_grad():
        at_means = model.encode_latents(images, "mean")
        drawn = model.encode_latents(images, "sample", generator=torch.Generator().manual_seed(0))
        again = model.encode_latents(images, "mean")
        decoded = [model.decode_latents(at_means, generator=torch.Generator().manual_seed(1)) for _ in range(2)]
    for latents in (at_means, drawn):
        assert latents.kind in KINDS and list(latents.tensors) == [tensor.name for tensor in layout]
        for tensor in layout:
            assert tuple(latents.tensors[tensor.name].shape) == (2, *tensor.shape), tensor.name
    assert all(torch.equal(again.tensors[name], t) for name, t in at_means.tensors.items())
    assert decoded[0].dtype == torch.uint8 and decoded[0].shape == images.shape
    assert torch.equal(decoded[0], decoded[1])
    with pytest.raises(GenkitError, match="tensor"):
        model.decode_latents(Latents({"not-a-latent": torch.zeros(2, 1)}, at_means.kind))
    model.train()


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_that_is_invertible_and_encodable_decodes_its_latents_to_the_image(spec):
    torch.manual_seed(0)
    model = spec.build(example_settings(spec)).double().eval()
    if not (isinstance(model, Invertible) and isinstance(model, Encodable)):
        pytest.skip(f"{spec.name} is not an invertible model with latents to encode")
    images = _images(model, 2, 12)
    with torch.no_grad():
        if isinstance(model, DataDependentInit):
            model.train()
            model.initialize(_images(model, 8, 9))
            model.eval()
        assert torch.equal(model.decode_latents(model.encode_latents(images, "mean")), images)


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_with_recomputable_units_names_its_own_submodules_none_inside_another(spec, contract_model_cache):
    model = _model(spec, contract_model_cache)
    if not isinstance(model, Recomputable):
        pytest.skip(f"{spec.name} declares no recomputable units")
    units = model.recomputable_units()
    modules = dict(model.named_modules())
    assert units and all(modules.get(unit.name) is unit.module for unit in units)
    assert all(isinstance(unit.resolution, int) and unit.resolution >= 1 for unit in units)
    names = [unit.name for unit in units]
    assert not [(a, b) for a in names for b in names if b.startswith(a + ".")]


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_with_recomputable_units_gets_the_plain_gradients_with_every_unit_recomputed(spec):
    """In float64, random numbers drawn from both the global generator and a passed one, in train mode."""
    torch.manual_seed(0)
    model = spec.build(example_settings(spec)).double().train()
    if not isinstance(model, Recomputable):
        pytest.skip(f"{spec.name} declares no recomputable units")
    images = _images(model, 1, 11)
    plain_loss, plain, plain_after = gradients_under(model, images, "off", seed=3, generator=True)
    loss, grads, after = gradients_under(model, images, "all", seed=3, generator=True)
    assert loss == plain_loss and after == plain_after and grads.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(grads[name], plain[name], rtol=1e-12, atol=0, msg=name)


@pytest.mark.parametrize("spec", plugin_params("model"))
def test_model_gradients_reach_every_parameter(spec, contract_model_cache):
    model = _model(spec, contract_model_cache)
    model.zero_grad(set_to_none=True)
    h, w, c = model.image_shape
    images = torch.randint(0, 256, (2, h, w, c), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    model(images).loss.backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reaches {missing[:5]}"
