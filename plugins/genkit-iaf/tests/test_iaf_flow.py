"""The flow's defining properties, each checked against an independent computation (autograd Jacobians, NumPy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from genkit_iaf import IafPosterior, IafSettings
from iaf_helpers import DTYPE, family, params, pixel_map, randomise
from torch.autograd.functional import jacobian


def test_every_step_has_a_triangular_jacobian_in_its_declared_order_with_diagonal_sigma():
    posterior = family(zdim=5)
    p = params(posterior)
    context = p[:, 10:]
    z = torch.randn(5, dtype=DTYPE)
    lower = torch.ones(5, 5, dtype=torch.bool).tril()
    for t, step in enumerate(posterior.flow.steps):
        jac = jacobian(pixel_map(lambda x: step(x, context)[0], 5), z)
        # step t reads the channels first-to-last when t is even, last-to-first when t is odd
        allowed = lower if t % 2 == 0 else lower.T
        assert jac[~allowed].abs().max() == 0
        assert (jac[allowed & ~torch.eye(5, dtype=torch.bool)].abs() > 1e-6).all()  # every earlier channel is used
        log_gate = step(z.reshape(1, 5, 1, 1), context)[1].reshape(5)
        assert torch.allclose(jac.diagonal(), log_gate.exp(), atol=1e-12)


def test_the_first_channel_in_each_order_depends_on_the_context_only():
    posterior = family(zdim=3)
    h = params(posterior)[:, 6:]
    for t, step in enumerate(posterior.flow.steps):
        first = 0 if t % 2 == 0 else 2
        m_a, s_a = step.shift_and_gate(torch.randn(1, 3, 1, 1, dtype=DTYPE), h)
        m_b, s_b = step.shift_and_gate(torch.randn(1, 3, 1, 1, dtype=DTYPE), h)
        assert m_a[0, first] == m_b[0, first] and s_a[0, first] == s_b[0, first]
        m_c, _ = step.shift_and_gate(torch.zeros(1, 3, 1, 1, dtype=DTYPE), h + 1.0)
        m_d, _ = step.shift_and_gate(torch.zeros(1, 3, 1, 1, dtype=DTYPE), h)
        assert (m_c[0, first] - m_d[0, first]).abs() > 1e-6


def test_log_q_is_the_change_of_variables_formula():
    """log q(z) summed over a pixel = log N(z₀; μ, σ₀) − log|det ∂z/∂z₀|, with the determinant from autograd + NumPy."""
    zdim = 4
    posterior = family(zdim=zdim, seed=2)
    p = params(posterior, n=3, seed=3)
    q = posterior(p)
    z = q.rsample(torch.Generator().manual_seed(4))
    got = q.log_prob(z).sum(1).flatten().detach().numpy()
    loc, log_scale, context = p.split([zdim, zdim, 3], dim=1)
    for b in range(3):
        eps_z0 = posterior.flow.inverse(z[b : b + 1], context[b : b + 1])[0].reshape(zdim)
        jac = jacobian(pixel_map(lambda x: posterior.flow(x, context[b : b + 1])[0], zdim), eps_z0).numpy()
        _, log_abs_det = np.linalg.slogdet(jac)
        mu, sigma = loc[b].flatten().numpy(), np.exp(log_scale[b].flatten().numpy())
        x0 = eps_z0.detach().numpy()
        log_base = np.sum(-0.5 * ((x0 - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi))
        assert got[b] == pytest.approx(log_base - log_abs_det, abs=1e-10)


def test_log_q_per_element_subtracts_that_elements_log_scale_at_every_step():
    zdim = 3
    posterior = family(zdim=zdim, seed=5)
    p = params(posterior, seed=6)
    q = posterior(p)
    z = q.rsample(torch.Generator().manual_seed(7))
    loc, log_scale, context = p.split([zdim, zdim, 3], dim=1)
    x = posterior.flow.inverse(z, context)[0]
    expected = torch.distributions.Normal(loc, log_scale.exp()).log_prob(x)
    for step in posterior.flow.steps:
        diagonal = jacobian(pixel_map(lambda v: step(v, context)[0], zdim), x.reshape(zdim)).diagonal()
        expected = expected - diagonal.log().reshape(1, zdim, 1, 1)
        x = step(x, context)[0]
    assert torch.allclose(q.log_prob(z), expected, atol=1e-10)


def test_inverse_undoes_the_flow_and_log_q_of_a_new_tensor_matches_the_cached_value():
    posterior = family(zdim=6, seed=8)
    q = posterior(params(posterior, n=2, h=3, w=2, seed=9))
    z = q.rsample(torch.Generator().manual_seed(10))
    z0 = q.loc + q.scale * torch.randn(q.loc.shape, generator=torch.Generator().manual_seed(10), dtype=DTYPE)
    assert torch.allclose(posterior.flow.inverse(z, q.context)[0], z0, atol=1e-10)
    assert torch.allclose(q.log_prob(z.clone()), q.log_prob(z), atol=1e-10)  # clone: forces the exact inversion
    assert torch.allclose(q.log_prob(q.mean.clone()), q.log_prob(q.mean), atol=1e-10)


def test_samples_follow_the_density_that_log_prob_gives():
    """On a 2-D latent, exp(log q) integrates to 1 over a grid and its moments match those of 40,000 draws."""
    posterior = family(zdim=2, seed=11, steps=2, hidden=8, context=1)
    p = params(posterior, seed=12)
    with torch.no_grad():
        q = posterior(p.expand(40000, -1, -1, -1))
        draws = q.rsample(torch.Generator().manual_seed(13)).reshape(-1, 2)
        low, high = draws.min(0).values - 1.0, draws.max(0).values + 1.0
        axes = [torch.linspace(low[i].item(), high[i].item(), 401, dtype=DTYPE) for i in range(2)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
        density = posterior(p).log_prob(grid[:, :, None, None]).sum((1, 2, 3)).exp()
        cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
        mass = density * cell
    assert mass.sum().item() == pytest.approx(1.0, abs=2e-3)
    grid_mean = (mass[:, None] * grid).sum(0) / mass.sum()
    grid_second = (mass[:, None, None] * grid[:, :, None] * grid[:, None, :]).sum(0) / mass.sum()
    draws_second = draws.T @ draws / len(draws)
    std = draws.std(0)
    assert (grid_mean - draws.mean(0)).abs().max() < 0.03 * std.max()
    assert (grid_second - draws_second).abs().max() < 0.05 * std.max() ** 2


def test_temperature_scales_the_base_spread_before_the_flow():
    posterior = family(zdim=3, seed=14)
    p = params(posterior, seed=15)
    cold = posterior(p, temperature=0.3).rsample(torch.Generator().manual_seed(16))
    loc, log_scale, context = p.split([3, 3, 3], dim=1)
    eps = torch.randn(loc.shape, generator=torch.Generator().manual_seed(16), dtype=DTYPE)
    assert torch.allclose(cold, posterior.flow(loc + 0.3 * log_scale.exp() * eps, context)[0], atol=1e-12)


def test_mean_is_the_flow_applied_to_the_base_mean():
    posterior = family(zdim=3, seed=17)
    p = params(posterior, seed=18)
    loc, _, context = p.split([3, 3, 3], dim=1)
    assert torch.equal(posterior(p).mean, posterior.flow(loc, context)[0])


def test_a_new_flow_is_exactly_the_identity_so_the_posterior_starts_as_its_base_gaussian():
    posterior = IafPosterior(IafSettings(steps=3, gate_bias=2.0), zdim=4).to(DTYPE)
    g = torch.Generator().manual_seed(19)
    z0 = torch.randn(2, 4, 3, 3, generator=g, dtype=DTYPE)
    h = torch.randn(2, 16, 3, 3, generator=g, dtype=DTYPE)
    z, log_det = posterior.flow(z0, h)
    assert torch.allclose(z, z0, atol=1e-14)
    assert log_det.abs().max() < 1e-14


def test_a_step_can_stretch_an_element_by_at_most_the_inverse_initial_gate():
    """Kingma et al.'s gate σ = sigmoid(s) < 1, divided by its initial value g₀ = sigmoid(gate_bias): scales lie in
    (0, 1/g₀)."""
    step = randomise(
        IafPosterior(IafSettings(steps=1, gate_bias=1.5, context=0), zdim=3).to(DTYPE), 23, scale=5.0
    ).flow.steps[0]
    z = torch.randn(1000, 3, 2, 2, generator=torch.Generator().manual_seed(24), dtype=DTYPE) * 10
    with torch.no_grad():
        _, log_scale = step(z, None)
    bound = math.log1p(math.exp(-1.5))  # log(1/g₀)
    assert bound - 1e-3 < log_scale.max() <= bound + 1e-15  # reached where s saturates the sigmoid
    assert log_scale.min() < -5  # while shrinking has no such limit
