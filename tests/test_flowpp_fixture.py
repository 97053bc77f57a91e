"""The official Flow++ variables, converted, reproduce the official TensorFlow code's numbers in float64.

Fixture ``tests/fixtures/flowpp-tiny``: an 8×8 model run by aravindsrinivas/flowpp in float64 after its
data-dependent init and a perturbation, on 8 images with recorded dequantization noise ``eps``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from flowpp_helpers import FIXTURE, TINY_RECIPE, converted_tiny_model, expected, fixture_array, fixture_images

from genkit.cli import main

NATS = 1e-9  # per-image nats (the fixture's own recommendation)


@pytest.fixture(scope="module")
def model():
    return converted_tiny_model(torch.float64)


@pytest.fixture(scope="module")
def at_eps(model):
    """The bound's terms at the fixture's noise."""
    with torch.no_grad():
        return model.bound_terms(model.to_float(fixture_images()), fixture_array("eps"))


def test_parameter_count_is_the_official_tiny_models(model):
    assert sum(p.numel() for p in model.parameters()) == expected()["n_parameters"] == 432_320


@pytest.mark.parametrize(
    "term,key",
    [
        ("log_q", "log_q_u_nats"),
        ("logdet", "main_logdet_nats"),
        ("log_prior", "log_prior_z_nats"),
        ("log_weight", "total_log_likelihood_bound_nats"),
    ],
)
def test_per_image_terms_at_the_fixture_noise_match(at_eps, term, key):
    np.testing.assert_allclose(getattr(at_eps, term).numpy(), expected()["per_image"][key], rtol=0, atol=NATS)


def test_dequantization_noise_and_latents_match(at_eps):
    np.testing.assert_allclose(at_eps.u.numpy(), fixture_array("u").numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(at_eps.z.numpy(), fixture_array("z").numpy(), rtol=0, atol=1e-10)


def test_context_network_output_matches(model):
    with torch.no_grad():
        context = model.dequantizer.context(model.to_float(fixture_images()))
    np.testing.assert_allclose(context.numpy(), fixture_array("dequant_context").numpy(), rtol=0, atol=1e-12)


def test_bound_with_the_noise_at_zero_matches_as_nll_per_dim(model):
    """``latents="mean"`` puts ε at 0: the fixture's ``per_image_eps_zero``, in nats per dimension."""
    with torch.no_grad():
        terms = model(fixture_images(), latents="mean")
        z = model.encode(fixture_images(), latents="mean")
    reference = expected()["per_image_eps_zero"]
    dims = expected()["dims_per_image"]
    np.testing.assert_allclose(terms.nll.numpy(), -np.array(reference["total_log_likelihood_bound_nats"]) / dims, 1e-9)
    np.testing.assert_allclose(terms.parts["dequant"].numpy(), np.array(reference["log_q_u_nats"]) / dims, 1e-9)
    np.testing.assert_allclose(terms.nll.numpy(), (terms.parts["flow"] + terms.parts["dequant"]).numpy(), 1e-12)
    np.testing.assert_allclose(z.numpy(), fixture_array("z_eps0").numpy(), rtol=0, atol=1e-10)


def test_main_flow_inverts_the_fixture_latents_within_1e_8(model, at_eps):
    v = model.to_float(fixture_images()) + at_eps.u
    with torch.no_grad():
        back, inverse_logdet = model.flow.inverse(fixture_array("z"))
    assert (back - v).abs().max() < 1e-8
    assert (inverse_logdet + at_eps.logdet).abs().max() < 1e-9


def test_decoding_the_latents_gives_back_the_images(model):
    with torch.no_grad():
        z = model.encode(fixture_images(), generator=torch.Generator().manual_seed(0))
        assert torch.equal(model.decode(z), fixture_images())
        assert model.inverse_error(fixture_images(), generator=torch.Generator().manual_seed(1)) < 1e-8


def test_genkit_eval_of_the_converted_directory_reproduces_the_bound_at_zero_noise(tmp_path):
    """``genkit convert flowpp`` then ``genkit eval … --latents mean --dtype float64 --json``: 1e-9 relative."""
    out, report = tmp_path / "tiny", tmp_path / "eval.json"
    assert (
        main(["convert", "flowpp", str(FIXTURE / "variables.npz"), "--recipe", str(TINY_RECIPE), "--out", str(out)])
        == 0
    )
    images = str(FIXTURE / "images_uint8.npy")
    assert (
        main(["eval", str(out), "--images", images, "--latents", "mean", "--dtype", "float64", "--json", str(report)])
        == 0
    )
    result = json.loads(report.read_text())
    reference = -np.array(expected()["per_image_eps_zero"]["total_log_likelihood_bound_nats"]) / 192
    np.testing.assert_allclose(result["nll_nats_per_dim"], reference, rtol=1e-9)
    np.testing.assert_allclose(result["bound_nats_per_dim"], reference, rtol=1e-9)
    parts = np.array(result["flow_nats_per_dim"]) + np.array(result["dequant_nats_per_dim"])
    np.testing.assert_allclose(parts, reference, rtol=1e-12)
