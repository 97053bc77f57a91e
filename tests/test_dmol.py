"""The DMOL likelihood against the reference fixtures and independent float64 computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from einops import rearrange
from locations import FIXTURES

from genkit.interfaces import levels
from genkit.registry import get_registry

DMOL = FIXTURES / "dmol"
EXPECTED = json.loads((DMOL / "dmol_expected.json").read_text())


def build(channels=3, bits=8, mixtures=5):
    from genkit_plugins.dmol import DMOLConfig

    return get_registry().build("likelihood", "dmol", DMOLConfig(num_mixtures=mixtures), channels=channels, bits=bits)


def fixture(bits):
    params = torch.from_numpy(np.load(DMOL / f"dmol_{bits}bit_params.npy"))
    x = torch.from_numpy(np.load(DMOL / f"dmol_{bits}bit_x.npy"))
    return rearrange(params, "b h w p -> b p h w"), rearrange(x, "b h w c -> b c h w")


@pytest.mark.parametrize("bits", [8, 5])
def test_per_pixel_nll_matches_the_reference_to_1e9(bits):
    params, x = fixture(bits)
    nll = -build(bits=bits).log_prob_per_pixel(params, x) / 3  # nats per dimension of each pixel
    np.testing.assert_allclose(nll.numpy(), EXPECTED[f"{bits}bit"]["nll_nats_per_dim_per_pixel"], rtol=1e-9)


@pytest.mark.parametrize("bits", [8, 5])
def test_per_image_nll_matches_the_reference_to_1e9(bits):
    params, x = fixture(bits)
    nll = -build(bits=bits).log_prob(params, x) / x[0].numel()
    np.testing.assert_allclose(nll.numpy(), EXPECTED[f"{bits}bit"]["nll_nats_per_dim_per_image"], rtol=1e-9)


def _logistic_cdf(v):
    return 1.0 / (1.0 + math.exp(-v))


def test_one_channel_is_the_plain_mixture_of_discretized_logistics():
    """The 1-channel reduction (logits, means, log-scales; no coefficients), checked with scalar float64 maths."""
    logits, means, log_scales = [0.3, -0.2], [0.1, -0.4], [-2.0, -1.5]
    params = torch.tensor(logits + means + log_scales, dtype=torch.float64).reshape(1, 6, 1, 1)
    likelihood = build(channels=1, bits=8, mixtures=2)
    assert likelihood.param_channels == 6
    weights = np.exp(logits) / np.exp(logits).sum()
    for value in (-1.0, 2 * 100 / 255 - 1, 1.0):
        mass = 0.0
        for w, m, s in zip(weights, means, np.exp(log_scales)):
            upper = 1.0 if value > 0.999 else _logistic_cdf((value + 1 / 255 - m) / s)
            lower = 0.0 if value < -0.999 else _logistic_cdf((value - 1 / 255 - m) / s)
            mass += w * (upper - lower)
        got = likelihood.log_prob(params, torch.tensor([[[[value]]]], dtype=torch.float64))
        assert got.item() == pytest.approx(math.log(mass), rel=1e-12)


def test_tiny_bin_mass_uses_the_midpoint_density_minus_log_half_levels():
    """A very sharp component far from x: the reference's branch log pdf(x) − log(127.5)."""
    likelihood = build(channels=1, bits=8, mixtures=1)
    params = torch.tensor([0.0, 0.9, -7.0], dtype=torch.float64).reshape(1, 3, 1, 1)
    x = 0.0
    inv_s = math.exp(7.0)
    mid = inv_s * (x - 0.9)
    expected = mid + 7.0 - 2 * math.log1p(math.exp(mid)) - math.log(127.5)
    assert likelihood.log_prob(params, torch.zeros(1, 1, 1, 1, dtype=torch.float64)).item() == pytest.approx(
        expected, rel=1e-12
    )


def test_log_scales_are_floored_at_minus_seven():
    likelihood = build(channels=1, bits=8, mixtures=1)
    x = torch.full((1, 1, 1, 1), 2 * 130 / 255 - 1, dtype=torch.float64)
    floor = likelihood.log_prob(torch.tensor([0.0, 0.01, -7.0], dtype=torch.float64).reshape(1, 3, 1, 1), x)
    below = likelihood.log_prob(torch.tensor([0.0, 0.01, -30.0], dtype=torch.float64).reshape(1, 3, 1, 1), x)
    assert floor.item() == below.item()


@pytest.mark.parametrize("bits", [8, 5])
def test_rgb_probabilities_over_all_colours_of_a_coarse_grid_sum_to_one(bits):
    """Normalisation with the R→G→B coefficients: sum over every colour at 3 bits per channel equals 1 (bits 8/5 only
    set the bins)."""
    likelihood = build(channels=3, bits=3, mixtures=3)
    params = (
        torch.randn(
            1, likelihood.param_channels, 1, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(bits)
        )
        * 0.5
    )
    grid = levels(3)
    colours = torch.cartesian_prod(grid, grid, grid)[:, :, None, None]
    total = torch.logsumexp(likelihood.log_prob(params.expand(len(colours), -1, -1, -1), colours), 0).exp()
    assert total.item() == pytest.approx(1.0, abs=1e-9)


def test_mode_follows_the_coefficients_from_red_to_blue():
    likelihood = build(channels=3, bits=8, mixtures=1)
    # logits, then per channel [mean, log-scale, coeff]: tanh(atanh(0.5)) = 0.5 for G on R
    raw = [0.0, 0.2, -3.0, math.atanh(0.5), 0.0, -3.0, 0.0, 0.1, -3.0, 0.0]
    mode = likelihood.mode(torch.tensor(raw, dtype=torch.float64).reshape(1, 10, 1, 1)).flatten().tolist()
    red = round((0.2 + 1) * 127.5) / 127.5 - 1
    green = round((0.5 * red + 1) * 127.5) / 127.5 - 1
    blue = round((0.1 + 1) * 127.5) / 127.5 - 1  # its coefficients on R and G are zero
    assert mode == pytest.approx([red, green, blue], abs=1e-12)
