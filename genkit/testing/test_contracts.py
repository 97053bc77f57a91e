"""The written contracts of ``genkit.interfaces``, checked for every registered plugin.

Each test states one property a plugin of that kind must have whatever its internals:
likelihoods are normalised, KL(p‖p) = 0, KL estimates are unbiased and their path gradients
hold the parameters fixed, shapes are as documented and gradients reach every parameter.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from genkit.errors import GenkitError
from genkit.interfaces import (
    Block,
    Downsampler,
    ImageDataset,
    LatentDistribution,
    LatentFamily,
    Likelihood,
    Upsampler,
    kl_divergence,
    levels,
)
from genkit.testing import agree, example_settings, plugin_params

DTYPE = torch.float64


def _params(n: int, channels: int, h: int = 1, w: int = 1, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, channels, h, w, generator=g, dtype=DTYPE) * scale).requires_grad_()


# --- likelihoods -------------------------------------------------------------------------------


def _build_likelihood(spec, channels: int, bits: int) -> Likelihood:
    likelihood = spec.build(example_settings(spec), channels=channels, bits=bits).to(DTYPE)
    assert isinstance(likelihood, Likelihood)
    return likelihood


@pytest.mark.parametrize("spec", plugin_params("likelihood"))
@pytest.mark.parametrize("channels,bits", [(1, 8), (3, 2), (1, 5)])
def test_likelihood_probabilities_sum_to_one_over_the_whole_alphabet(spec, channels, bits):
    likelihood = _build_likelihood(spec, channels, bits)
    params = _params(2, likelihood.param_channels, scale=0.5)
    grid = levels(bits)
    # every image of one pixel: all combinations of the channel levels
    values = torch.tensor(list(itertools.product(grid.tolist(), repeat=channels)), dtype=DTYPE)
    x = values[:, :, None, None]  # (K, C, 1, 1)
    total = []
    for b in range(params.shape[0]):
        logp = likelihood.log_prob(params[b : b + 1].expand(len(values), -1, -1, -1), x)
        total.append(torch.logsumexp(logp, 0).exp().item())
    assert total == pytest.approx([1.0, 1.0], abs=1e-6)


@pytest.mark.parametrize("spec", plugin_params("likelihood"))
def test_likelihood_log_prob_is_per_example_and_reaches_every_parameter(spec):
    likelihood = _build_likelihood(spec, 3, 8)
    params = _params(4, likelihood.param_channels, 5, 6)
    x = levels(8)[torch.randint(0, 256, (4, 3, 5, 6))]
    logp = likelihood.log_prob(params, x)
    assert logp.shape == (4,)
    assert torch.isfinite(logp).all() and (logp <= 0).all()
    logp.sum().backward()
    assert params.grad is not None and params.grad.abs().sum() > 0


@pytest.mark.parametrize("spec", plugin_params("likelihood"))
@pytest.mark.parametrize("channels,bits", [(3, 8), (1, 5)])
def test_likelihood_sample_and_mode_lie_on_the_level_grid(spec, channels, bits):
    likelihood = _build_likelihood(spec, channels, bits)
    params = _params(3, likelihood.param_channels, 4, 4).detach()
    grid = levels(bits)
    for draw in (likelihood.sample(params, generator=torch.Generator().manual_seed(0)), likelihood.mode(params)):
        assert draw.shape == (3, channels, 4, 4)
        distance = (draw.to(DTYPE)[..., None] - grid).abs().min(-1).values
        assert distance.max() < 1e-6


@pytest.mark.parametrize("spec", plugin_params("likelihood"))
def test_likelihood_samples_follow_the_distribution(spec):
    """The empirical frequency of each value matches exp(log_prob) (one pixel, 2-bit, 1 channel)."""
    likelihood = _build_likelihood(spec, 1, 2)
    params = _params(1, likelihood.param_channels, scale=0.5).detach()
    n = 20000
    draws = likelihood.sample(params.expand(n, -1, -1, -1), generator=torch.Generator().manual_seed(1))
    grid = levels(2)
    index = (draws.to(DTYPE).reshape(-1, 1) - grid).abs().argmin(-1)
    freq = torch.bincount(index, minlength=4).to(DTYPE) / n
    probs = likelihood.log_prob(params.expand(4, -1, -1, -1), grid[:, None, None, None]).exp()
    assert freq.tolist() == pytest.approx(probs.tolist(), abs=0.015)


@pytest.mark.parametrize("spec", plugin_params("likelihood"))
def test_likelihood_draws_are_a_function_of_uniform_noise_pixel_by_pixel(spec):
    """Samplers that compute differently (cached, fixed-point) can then be fed the same noise and compared."""
    likelihood = _build_likelihood(spec, 3, 8)
    params = _params(2, likelihood.param_channels, 3, 3).detach()
    noise = likelihood.draw_noise(params, torch.Generator().manual_seed(0))
    assert noise.shape == (2, likelihood.noise_channels, 3, 3) and ((noise >= 0) & (noise < 1)).all()
    draw = likelihood.sample(params, noise=noise)
    assert torch.equal(draw, likelihood.sample(params, generator=torch.Generator().manual_seed(0)))
    changed = noise.clone()
    changed[:, :, 0, 0] = 1.0 - changed[:, :, 0, 0]
    other = likelihood.sample(params, noise=changed)
    assert torch.equal(other[:, :, 1:], draw[:, :, 1:]) and torch.equal(other[:, :, 0, 1:], draw[:, :, 0, 1:])


# --- latent distributions ----------------------------------------------------------------------

ZDIM = 3


def _family(spec) -> LatentFamily:
    family = spec.build(example_settings(spec), zdim=ZDIM).to(DTYPE)
    assert isinstance(family, LatentFamily)
    return family


@pytest.mark.parametrize("spec", plugin_params("latent"))
def test_latent_shapes(spec):
    family = _family(spec)
    q = family(_params(2, family.param_channels, 4, 5))
    z = q.rsample(torch.Generator().manual_seed(0))
    assert z.shape == (2, ZDIM, 4, 5)
    assert q.mean.shape == (2, ZDIM, 4, 5)
    assert q.log_prob(z).shape == (2, ZDIM, 4, 5)


@pytest.mark.parametrize("spec", plugin_params("latent"))
def test_latent_kl_of_a_distribution_with_itself_is_zero(spec):
    family = _family(spec)
    p = family(_params(2, family.param_channels, 3, 3))
    z = p.rsample(torch.Generator().manual_seed(0))
    assert kl_divergence(p, p, z).abs().max() < 1e-9


@pytest.mark.parametrize("spec", plugin_params("latent"))
def test_latent_kl_divergence_is_nonnegative_and_unbiased(spec):
    """Over 40,000 draws ``kl_divergence`` (analytic where ``q.kl`` gives it, else one-sample estimates) averages to the
    Monte-Carlo KL of independent draws."""
    family = _family(spec)
    analytic = family(_params(1, family.param_channels, seed=1, scale=0.5)).kl(
        family(_params(1, family.param_channels, seed=2, scale=0.5))
    )
    assert analytic is None or (analytic >= -1e-12).all()
    n = 40000
    q = family(_params(1, family.param_channels, seed=1, scale=0.5).detach().expand(n, -1, -1, -1))
    p = family(_params(1, family.param_channels, seed=2, scale=0.5).detach().expand(n, -1, -1, -1))
    estimates = kl_divergence(q, p, q.rsample(torch.Generator().manual_seed(3))).detach()
    z = q.rsample(torch.Generator().manual_seed(4))
    reference = (q.log_prob(z) - p.log_prob(z)).detach()
    assert agree(estimates, reference)
    assert (reference.mean(0) > -5 * reference.std(0) / math.sqrt(n)).all()


@pytest.mark.parametrize("spec", plugin_params("latent"))
def test_latent_path_log_prob_is_log_prob_and_reaches_no_parameter_at_a_fixed_z(spec):
    """``path_log_prob`` (Roeder et al. 2017) holds the distribution's parameters fixed; a family may keep the default,
    ``log_prob``."""
    family = _family(spec)
    params = _params(2, family.param_channels, 3, 3)
    q = family(params)
    z = q.rsample(torch.Generator().manual_seed(0))
    assert torch.allclose(q.path_log_prob(z), q.log_prob(z), atol=1e-10)
    if type(q).path_log_prob is LatentDistribution.path_log_prob:
        pytest.skip(f"{spec.name} keeps the default path_log_prob, log_prob with its total gradient")
    fixed = z.detach().requires_grad_()
    value = q.path_log_prob(fixed)
    assert torch.allclose(value, q.log_prob(z), atol=1e-10)
    value.sum().backward()
    assert fixed.grad is not None and fixed.grad.abs().sum() > 0
    assert params.grad is None or params.grad.abs().max() == 0
    for name, parameter in family.named_parameters():
        assert parameter.grad is None or parameter.grad.abs().max() == 0, f"a gradient reaches {name}"


def _flat_gradient(output: torch.Tensor, weights: list[torch.Tensor], **options) -> torch.Tensor:
    """One vector of the gradients of ``output`` in every tensor of ``weights`` (zeros where it does not reach)."""
    grads = torch.autograd.grad(output, weights, allow_unused=True, **options)
    return torch.cat([(torch.zeros_like(w) if g is None else g).flatten() for g, w in zip(grads, weights)])


@pytest.mark.parametrize("spec", plugin_params("latent"))
def test_latent_path_gradient_of_the_kl_estimate_has_the_total_gradients_expectation(spec):
    """Over 40 batches of 500 draws the two gradients of ``log q(z) − log p(z)`` differ by the score term only, whose
    mean is zero."""
    family = _family(spec)
    p = family(_params(1, family.param_channels, seed=2, scale=0.5).detach().expand(500, -1, -1, -1))
    differences = []
    for batch in range(40):
        params = _params(1, family.param_channels, seed=1, scale=0.5)
        weights = [params, *family.parameters()]
        q = family(params.expand(500, -1, -1, -1))
        z = q.rsample(torch.Generator().manual_seed(100 + batch))
        path = _flat_gradient((q.path_log_prob(z) - p.log_prob(z)).mean(0).sum(), weights, retain_graph=True)
        total = _flat_gradient((q.log_prob(z) - p.log_prob(z)).mean(0).sum(), weights)
        differences.append(path - total)
    differences = torch.stack(differences)
    assert agree(differences, torch.zeros_like(differences))


@pytest.mark.parametrize("spec", plugin_params("latent"))
def test_latent_samples_and_log_prob_are_consistent(spec):
    """Importance identity E_q[r(z)/q(z)] = 1 for a narrower Gaussian r: checks log q is normalised at its own
    samples."""
    family = _family(spec)
    n = 40000
    params = _params(1, family.param_channels, seed=4, scale=0.3).detach().expand(n, -1, -1, -1)
    q = family(params)
    z = q.rsample(torch.Generator().manual_seed(5))
    centre = z.mean(0, keepdim=True)
    spread = 0.5 * z.std(0, keepdim=True)
    log_r = torch.distributions.Normal(centre, spread).log_prob(z).sum((1, 2, 3))
    log_q = q.log_prob(z).sum((1, 2, 3))
    estimate = torch.exp(log_r - log_q).mean().item()
    assert estimate == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("spec", plugin_params("latent"))
def test_latent_temperature_zero_gives_the_mean(spec):
    family = _family(spec)
    params = _params(2, family.param_channels, 2, 2)
    q = family(params, temperature=0.0)
    z = q.rsample(torch.Generator().manual_seed(0))
    assert torch.allclose(z, q.mean, atol=1e-9)


@pytest.mark.parametrize("spec", plugin_params("latent"))
def test_latent_gradients_reach_the_parameters(spec):
    family = _family(spec)
    params = _params(2, family.param_channels, 2, 2)
    q = family(params)
    p = family(_params(2, family.param_channels, 2, 2, seed=9))
    z = q.rsample(torch.Generator().manual_seed(0))
    (kl_divergence(q, p, z).sum() + z.square().sum()).backward()
    assert params.grad is not None and params.grad.abs().sum() > 0
    for name, parameter in family.named_parameters():
        assert parameter.grad is not None, f"no gradient reaches {name}"


# --- blocks and resamplers ---------------------------------------------------------------------


def _block(spec, **context) -> Block:
    defaults = dict(
        in_width=8, middle_width=4, out_width=8, resolution=8, residual=False, zero_last=False, last_scale=1.0
    )
    block = spec.build(example_settings(spec), **{**defaults, **context}).to(DTYPE)
    assert isinstance(block, Block)
    return block


@pytest.mark.parametrize("spec", plugin_params("block"))
@pytest.mark.parametrize("resolution", [1, 2, 8])
def test_block_maps_in_width_to_out_width_keeping_the_resolution(spec, resolution):
    block = _block(spec, in_width=8, out_width=6, resolution=resolution)
    y = block(torch.randn(2, 8, resolution, resolution, dtype=DTYPE))
    assert y.shape == (2, 6, resolution, resolution)


@pytest.mark.parametrize("spec", plugin_params("block"))
def test_block_gradients_reach_every_parameter(spec):
    block = _block(spec)
    block(torch.randn(2, 8, 8, 8, dtype=DTYPE)).square().sum().backward()
    for name, parameter in block.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize("spec", plugin_params("block"))
def test_block_with_zero_last_layer_starts_as_identity_or_zero(spec):
    x = torch.randn(2, 8, 8, 8, dtype=DTYPE)
    assert torch.equal(_block(spec, residual=True, zero_last=True)(x), x)
    assert torch.equal(_block(spec, residual=False, zero_last=True)(x), torch.zeros_like(x))


@pytest.mark.parametrize("spec", plugin_params("resampler"))
@pytest.mark.parametrize("factor", [2, 4])
def test_resampler_changes_the_resolution_by_the_factor_and_keeps_constants(spec, factor):
    resampler = spec.build(example_settings(spec))
    assert isinstance(resampler, (Upsampler, Downsampler))
    up = isinstance(resampler, Upsampler)
    x = torch.full((2, 3, 8, 8), 0.7, dtype=DTYPE)
    y = resampler(x, factor)
    size = 8 * factor if up else 8 // factor
    assert y.shape == (2, 3, size, size)
    assert torch.allclose(y, torch.full_like(y, 0.7))


# --- data sets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", plugin_params("dataset"))
def test_dataset_builds_or_fails_with_a_one_line_genkit_error(spec):
    try:
        dataset = spec.build(example_settings(spec))
    except GenkitError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert isinstance(dataset, ImageDataset)
    h, w, c = dataset.image_shape
    for split in ("train", "validation", "test"):
        data = dataset.split(split)
        assert len(data) > 0
        item = data[0]
        assert item.dtype == torch.uint8 and tuple(item.shape) == (h, w, c)
    assert not math.isnan(float(dataset.bits))


# --- kinds that plugins add --------------------------------------------------------------------


def _collect_plugin_kind_contracts() -> None:
    """Bring the contract tests of every kind a plugin adds into this module, so one run checks them all."""
    import importlib

    from genkit.registry import get_registry

    for kind in get_registry().kinds():
        if kind.contracts is None:
            continue
        module = importlib.import_module(kind.contracts)
        for name in dir(module):
            if name.startswith("test_") and callable(getattr(module, name)):
                if name in globals() and globals()[name] is not getattr(module, name):
                    raise RuntimeError(
                        f"contract test {name} of kind {kind.kind!r} ({kind.contracts}) clashes with another"
                    )
                globals()[name] = getattr(module, name)


_collect_plugin_kind_contracts()
