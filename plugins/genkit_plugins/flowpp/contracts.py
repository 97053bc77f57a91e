"""The contracts of the ``coupling`` and ``dequantizer`` kinds, run for every registered component of each.

``genkit.testing`` collects these tests (the kinds name this module when they are registered), so a
third party's coupling or dequantizer is checked the moment it registers. Everything runs in float64
on tiny shapes, after a data-dependent initialisation and a perturbation of every weight (so that no
layer sits at its special initial values). The other kinds' contracts are in
:mod:`genkit_plugins.flowpp.layer_contracts`.
"""

from __future__ import annotations

import pytest
import torch

from genkit.components import ComponentRef
from genkit.testing import example_settings, plugin_params
from genkit_plugins.flowpp.datainit import data_dependent_init
from genkit_plugins.flowpp.kinds import Coupling, Dequantizer

DTYPE = torch.float64
SIZES = dict(filters=8, blocks=1, components=3, heads=2, dropout=0.0)
HALF = (2, 4, 2)  # (C, H, W) of each half a coupling transforms
CONTEXT = 3


def randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


@torch.no_grad()
def perturb(module: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """Move every weight off its initial value (g = 1, b = 0 and identity matrices hide mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in module.parameters():
        parameter.add_(scale * torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype))


def flat_parameters(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()] or [torch.zeros(0, dtype=DTYPE)])


# --- couplings ----------------------------------------------------------------------------------------


def _pair(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return randn(batch, *HALF, seed=seed), randn(batch, *HALF, seed=seed + 1)


def _context(batch: int, context_channels: int, seed: int = 7) -> torch.Tensor | None:
    return randn(batch, context_channels, *HALF[1:], seed=seed) if context_channels else None


def _coupling(spec, context_channels: int = 0, *, initialised: bool = True) -> Coupling:
    torch.manual_seed(0)
    c, h, w = HALF
    coupling = spec.build(
        example_settings(spec), channels=c, height=h, width=w, context_channels=context_channels, **SIZES
    ).to(DTYPE)
    assert isinstance(coupling, Coupling)
    if initialised:
        with torch.no_grad(), data_dependent_init(coupling):
            coupling(_pair(16, seed=100), _context(16, context_channels, seed=101))
        perturb(coupling, seed=1)
    return coupling


@pytest.mark.parametrize("spec", plugin_params("coupling"))
@pytest.mark.parametrize("context_channels", [0, CONTEXT])
def test_coupling_inverts_exactly_in_float64_and_keeps_the_first_half(spec, context_channels):
    coupling = _coupling(spec, context_channels)
    pair, context = _pair(3, seed=2), _context(3, context_channels)
    with torch.no_grad():
        (first, y), logdet = coupling(pair, context)
        (first_back, x), inverse_logdet = coupling.inverse((first, y), context)
    assert torch.equal(first, pair[0]) and torch.equal(first_back, pair[0])
    assert logdet.shape == (3,) and inverse_logdet.shape == (3,)
    assert (x - pair[1]).abs().max() < 1e-10
    assert (logdet + inverse_logdet).abs().max() < 1e-9


@pytest.mark.parametrize("spec", plugin_params("coupling"))
def test_coupling_logdet_is_the_log_determinant_of_its_jacobian(spec):
    """log|det J| of the whole map ``(x_a, x_b) -> (x_a, y_b)``, from the autograd Jacobian, per image."""
    coupling = _coupling(spec, CONTEXT)
    pair, context = _pair(2, seed=3), _context(2, CONTEXT)
    n = pair[0][0].numel()
    for b in range(2):

        def flat_map(v: torch.Tensor, b=b) -> torch.Tensor:
            halves = (v[:n].reshape(1, *HALF), v[n:].reshape(1, *HALF))
            (first, second), _ = coupling(halves, context[b : b + 1])
            return torch.cat([first.flatten(), second.flatten()])

        v = torch.cat([pair[0][b].flatten(), pair[1][b].flatten()])
        sign, logabsdet = torch.linalg.slogdet(torch.autograd.functional.jacobian(flat_map, v))
        _, logdet = coupling((pair[0][b : b + 1], pair[1][b : b + 1]), context[b : b + 1])
        assert sign == 1
        assert abs(logdet.item() - logabsdet.item()) < 1e-9


@pytest.mark.parametrize("spec", plugin_params("coupling"))
def test_coupling_second_half_depends_on_the_first_and_on_the_context(spec):
    coupling = _coupling(spec, CONTEXT)
    pair, context = _pair(2, seed=4), _context(2, CONTEXT)
    with torch.no_grad():
        (_, y), _ = coupling(pair, context)
        (_, y_first), _ = coupling((pair[0] + 0.1, pair[1]), context)
        (_, y_context), _ = coupling(pair, context + 0.1)
    assert (y_first - y).abs().max() > 1e-6
    assert (y_context - y).abs().max() > 1e-6


@pytest.mark.parametrize("spec", plugin_params("coupling"))
def test_coupling_init_pass_returns_the_forward_of_the_weights_it_sets(spec):
    coupling = _coupling(spec, CONTEXT, initialised=False)
    pair, context = _pair(16, seed=5), _context(16, CONTEXT)
    with torch.no_grad():
        with data_dependent_init(coupling):
            (_, during), logdet_during = coupling(pair, context)
        (_, after), logdet_after = coupling(pair, context)
    assert (during - after).abs().max() < 1e-12
    assert (logdet_during - logdet_after).abs().max() < 1e-12


@pytest.mark.parametrize("spec", plugin_params("coupling"))
def test_coupling_init_pass_leaves_its_output_over_the_init_batch_finite(spec):
    coupling = _coupling(spec, CONTEXT, initialised=False)
    pair, context = _pair(16, seed=5), _context(16, CONTEXT)
    with torch.no_grad():
        with data_dependent_init(coupling):
            coupling(pair, context)
        (first, y), logdet = coupling(pair, context)
    assert torch.isfinite(first).all() and torch.isfinite(y).all() and torch.isfinite(logdet).all()
    assert torch.isfinite(flat_parameters(coupling)).all()


@pytest.mark.parametrize("spec", plugin_params("coupling"))
def test_coupling_init_is_idempotent_on_its_batch(spec):
    """Initialised on a batch, a second init pass on that batch finds its statistics already in place.

    (Up to the 1e-8 the official init adds to every variance before its square root.)
    """
    coupling = _coupling(spec, CONTEXT, initialised=False)
    pair, context = _pair(16, seed=6), _context(16, CONTEXT)
    with torch.no_grad():
        for _ in range(2):
            before = flat_parameters(coupling)
            with data_dependent_init(coupling):
                coupling(pair, context)
    assert ((flat_parameters(coupling) - before).abs() <= 1e-5 * (1 + before.abs())).all()


@pytest.mark.parametrize("spec", plugin_params("coupling"))
def test_coupling_gradients_reach_every_parameter(spec):
    coupling = _coupling(spec, CONTEXT)
    (_, y), logdet = coupling(_pair(2, seed=8), _context(2, CONTEXT))
    (y.square().sum() + logdet.sum()).backward()
    for name, parameter in coupling.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


# --- dequantizers ---------------------------------------------------------------------------------------


def _dequantizer(spec, image_shape=(2, 4, 1)) -> Dequantizer:
    torch.manual_seed(0)
    layers = dict(coupling=ComponentRef("mlc"), norm=ComponentRef("norm"), pointwise=ComponentRef("pointwise"))
    dequantizer = spec.build(example_settings(spec), image_shape=image_shape, **layers, **SIZES).to(DTYPE)
    assert isinstance(dequantizer, Dequantizer)
    x = _images(16, image_shape, seed=100)
    with torch.no_grad(), data_dependent_init(dequantizer):
        dequantizer(x, dequantizer.noise(x, generator=torch.Generator().manual_seed(101)))
    perturb(dequantizer, seed=1)
    return dequantizer


def _images(batch: int, image_shape, seed: int) -> torch.Tensor:
    h, w, c = image_shape
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, c, h, w), generator=g).to(DTYPE)


@pytest.mark.parametrize("spec", plugin_params("dequantizer"))
def test_dequantizer_noise_lies_in_the_open_unit_cube(spec):
    dequantizer = _dequantizer(spec)
    x = _images(3, (2, 4, 1), seed=2)
    with torch.no_grad():
        for latents in ("sample", "mean"):
            u, log_q = dequantizer(x, dequantizer.noise(x, latents, torch.Generator().manual_seed(3)))
            assert u.shape == x.shape and log_q.shape == (3,)
            assert (u > 0).all() and (u < 1).all() and torch.isfinite(log_q).all()
    assert isinstance(dequantizer.bound, str) and dequantizer.bound


@pytest.mark.parametrize("spec", plugin_params("dequantizer"))
def test_dequantizer_mean_noise_is_deterministic_and_a_generator_reproduces_a_draw(spec):
    dequantizer = _dequantizer(spec)
    x = _images(2, (2, 4, 1), seed=4)
    assert torch.equal(dequantizer.noise(x, "mean"), dequantizer.noise(x, "mean"))
    first = dequantizer.noise(x, "sample", torch.Generator().manual_seed(5))
    assert torch.equal(first, dequantizer.noise(x, "sample", torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("spec", plugin_params("dequantizer"))
def test_dequantizer_log_q_is_the_change_of_variables_of_its_base_noise(spec):
    """log q(u | x) = log p(ε) − log|det ∂u/∂ε|, with the Jacobian from autograd, per image."""
    dequantizer = _dequantizer(spec)
    x = _images(2, (2, 4, 1), seed=6)
    eps = dequantizer.noise(x, "sample", torch.Generator().manual_seed(7))
    _, log_q = dequantizer(x, eps)
    for b in range(2):
        jacobian = torch.autograd.functional.jacobian(
            lambda e, b=b: dequantizer(x[b : b + 1], e.reshape(x[b : b + 1].shape))[0].flatten(), eps[b].flatten()
        )
        expected = dequantizer.base_log_prob(eps[b : b + 1]) - torch.linalg.slogdet(jacobian).logabsdet
        assert abs(log_q[b].item() - expected.item()) < 1e-9


@pytest.mark.parametrize("spec", plugin_params("dequantizer"))
def test_dequantizer_log_prob_evaluates_log_q_at_its_draws(spec):
    dequantizer = _dequantizer(spec)
    x = _images(3, (2, 4, 1), seed=8)
    with torch.no_grad():
        u, log_q = dequantizer(x, dequantizer.noise(x, "sample", torch.Generator().manual_seed(9)))
        assert (dequantizer.log_prob(x, u) - log_q).abs().max() < 1e-8


@pytest.mark.parametrize("spec", plugin_params("dequantizer"))
def test_dequantizer_density_integrates_to_one_over_the_unit_cube(spec):
    """∫ q(u | x) du = 1 by the midpoint rule on a 100 × 100 grid (a 1×2 image, D = 2)."""
    dequantizer = _dequantizer(spec, image_shape=(1, 2, 1))
    steps = 100
    grid = (torch.arange(steps, dtype=DTYPE) + 0.5) / steps
    u = torch.cartesian_prod(grid, grid).reshape(-1, 1, 1, 2)
    x = torch.tensor([[[[37.0, 201.0]]]], dtype=DTYPE).expand(len(u), -1, -1, -1)
    with torch.no_grad():
        total = dequantizer.log_prob(x, u).exp().mean().item()
    assert total == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("spec", plugin_params("dequantizer"))
def test_dequantizer_gradients_reach_every_parameter(spec):
    dequantizer = _dequantizer(spec)
    if not any(True for _ in dequantizer.parameters()):
        pytest.skip(f"{spec.name} has no weights")
    x = _images(2, (2, 4, 1), seed=10)
    u, log_q = dequantizer(x, dequantizer.noise(x, "sample", torch.Generator().manual_seed(11)))
    (u.square().sum() + log_q.sum()).backward()
    for name, parameter in dequantizer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"
