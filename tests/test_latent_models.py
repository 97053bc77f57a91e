"""Latents out and back in on the VDVAE and Flow++: the round trips that make the latents worth having."""

from __future__ import annotations

import pytest
import torch
from flowpp_helpers import converted_tiny_model, fixture_images
from pretrained_fixtures import tiny_model, tiny_recipe  # noqa: F401

from genkit.errors import ConfigError

IMAGES = torch.randint(0, 256, (3, 8, 8, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(11))


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def vdvae(tiny_model):
    return tiny_model.double()


def test_vdvae_decoding_every_posterior_mean_is_its_reconstruction_from_posterior_means_exactly(vdvae):
    """The decoder given the encoded means runs the very arithmetic of the posterior pass with z at its means."""
    latents = vdvae.encode_latents(IMAGES, "mean")
    with torch.no_grad():
        given, _ = vdvae.decoder(3, None, given=[latents.tensors[s.name] for s in vdvae.latent_layout])
        assert torch.equal(given, vdvae.posterior_params(IMAGES, "mean"))
        reconstruction = vdvae.to_uint8(vdvae.likelihood.sample(given, generator=seeded(3)))
    assert torch.equal(vdvae.decode_latents(latents, generator=seeded(3)), reconstruction)


def test_vdvae_decoding_a_posterior_draw_is_the_reconstruction_from_that_draw(vdvae):
    latents = vdvae.encode_latents(IMAGES, "sample", generator=seeded(5))
    assert latents.kind == "posterior draw"
    assert not torch.equal(latents.tensors["layer_4"], vdvae.encode_latents(IMAGES).tensors["layer_4"])
    with torch.no_grad():
        expected = vdvae.likelihood.sample(vdvae.posterior_params(IMAGES, "sample", seeded(5)), generator=seeded(6))
    assert torch.equal(vdvae.decode_latents(latents, generator=seeded(6)), vdvae.to_uint8(expected))


def test_vdvae_keeping_no_layer_draws_the_models_own_samples(vdvae):
    latents = vdvae.encode_latents(IMAGES)
    decoded = vdvae.decode_latents(latents, keep=0, temperature=0.7, generator=seeded(8))
    assert torch.equal(decoded, vdvae.sample(3, temperature=0.7, generator=seeded(8)))


def test_vdvae_keeping_k_layers_takes_those_from_the_file_and_draws_the_rest(vdvae):
    latents = vdvae.encode_latents(IMAGES)
    below = {
        **latents.tensors,
        "layer_3": latents.tensors["layer_3"] + 5.0,
        "layer_4": latents.tensors["layer_4"] - 5.0,
    }
    above = {**latents.tensors, "layer_2": latents.tensors["layer_2"] + 5.0}
    kept = vdvae.decode_latents(latents, keep=3, temperature=0.0, generator=seeded(9))
    assert torch.equal(
        kept, vdvae.decode_latents(type(latents)(below, latents.kind), keep=3, temperature=0.0, generator=seeded(9))
    )
    assert not torch.equal(
        kept, vdvae.decode_latents(type(latents)(above, latents.kind), keep=3, temperature=0.0, generator=seeded(9))
    )


def test_vdvae_refuses_to_keep_more_layers_than_it_has(vdvae):
    with pytest.raises(ConfigError, match="keep must be between 0 and 5"):
        vdvae.decode_latents(vdvae.encode_latents(IMAGES), keep=6)


@pytest.fixture(scope="module")
def flowpp():
    """The official tiny Flow++ of the fixture, in float32: the dtype a user encodes in."""
    return converted_tiny_model(torch.float32)


@pytest.mark.parametrize("latents", ["mean", "sample"])
def test_flowpp_decodes_its_encoding_to_the_very_images_in_float32(flowpp, latents):
    images = fixture_images()[:4]
    encoded = flowpp.encode_latents(images, latents, generator=seeded(12))
    assert encoded.kind == "flow z" and encoded.tensors["z"].shape == (4, *flowpp.latent_shape)
    assert torch.equal(flowpp.decode_latents(encoded), images)


def test_flowpp_interpolation_starts_and_ends_at_the_two_images(flowpp):
    images = fixture_images()
    rows = flowpp.interpolate(images[:2], images[2:4], 3).reshape(2, 3, *flowpp.image_shape)
    assert torch.equal(rows[:, 0], images[:2]) and torch.equal(rows[:, -1], images[2:4])
    assert not torch.equal(rows[:, 1], images[:2])


def test_flowpp_decodes_its_one_tensor_whole(flowpp):
    with pytest.raises(ConfigError, match="keep must be 1, found 0"):
        flowpp.decode_latents(flowpp.encode_latents(fixture_images()[:1]), keep=0)
