"""The KL estimate genkit forms with this posterior: unbiased in value, and the path gradient (Roeder et al. 2017)
exact.

Every flow here has random weights (``family`` randomises them), so no check leans on the identity a new flow starts as.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from iaf_helpers import DTYPE, family, params
from torch.autograd.functional import jacobian

from genkit.interfaces import kl_divergence
from genkit_plugins.gaussian import DiagonalGaussian


def standard_normal(shape) -> DiagonalGaussian:
    return DiagonalGaussian(torch.zeros(shape, dtype=DTYPE), torch.zeros(shape, dtype=DTYPE))


def frozen(posterior):
    """An independent copy of the family whose weights take no gradient."""
    return copy.deepcopy(posterior).requires_grad_(False)


@pytest.mark.parametrize("depth", [1, 3])
def test_the_mades_jacobian_at_every_pixel_is_autograds(depth):
    zdim = 4
    posterior = family(zdim=zdim, seed=30, depth=depth)
    made = posterior.flow.steps[0].made
    context = params(posterior, n=2, h=2, w=3, seed=31)[:, 2 * zdim :]
    z = torch.randn(2, zdim, 2, 3, generator=torch.Generator().manual_seed(32), dtype=DTYPE)
    m, s, got = made.jacobian(z, context)
    assert torch.equal(torch.cat([m, s], 1), torch.cat(made(z, context), 1))
    assert got.shape == (2, 2, 3, 2 * zdim, zdim)
    for b, i, j in [(0, 0, 0), (1, 1, 2), (0, 1, 1)]:
        pixel = context[b : b + 1, :, i : i + 1, j : j + 1]
        expected = jacobian(
            lambda v: torch.cat(made(v.reshape(1, zdim, 1, 1), pixel), 1).reshape(2 * zdim), z[b, :, i, j]
        )
        assert torch.allclose(got[b, i, j], expected, atol=1e-12)


def test_a_steps_pull_back_is_the_gradient_through_its_exact_inverse():
    """For F(z') = g·z − Σ weights ⊙ log(σ(z)/g₀) at z = step⁻¹(z'), autograd through the sweeping inverse, in both
    channel orders."""
    zdim = 5
    posterior = family(zdim=zdim, seed=33)
    context = params(posterior, n=2, h=1, w=2, seed=34)[:, 2 * zdim :]
    g = torch.Generator().manual_seed(35)
    z, grad, weights = (torch.randn(2, zdim, 1, 2, generator=g, dtype=DTYPE) for _ in range(3))
    for step in posterior.flow.steps:
        z_next, got = step.pull_back(z, context, grad, weights)
        assert torch.allclose(z_next, step(z, context)[0], atol=1e-12)
        output = z_next.detach().requires_grad_()
        x = step.inverse(output, context)
        (expected,) = torch.autograd.grad((grad * x).sum() - (weights * step(x, context)[1]).sum(), output)
        assert torch.allclose(got, expected, atol=1e-9)


def test_path_log_prob_differentiates_through_the_exact_inverse_with_every_parameter_stopped():
    """Independent computation: a frozen copy of the family and detached parameters, ``log q`` via the sweeping inverse,
    autograd in ``z``."""
    posterior = family(zdim=4, seed=36)
    p = params(posterior, n=2, h=2, w=3, seed=37)
    q = posterior(p)
    z = q.rsample(torch.Generator().manual_seed(38))
    weights = torch.randn(
        z.shape, generator=torch.Generator().manual_seed(39), dtype=DTYPE
    )  # any per-element weighting
    (got,) = torch.autograd.grad((weights * q.path_log_prob(z)).sum(), z)
    fixed = z.detach().requires_grad_()
    (expected,) = torch.autograd.grad((weights * frozen(posterior)(p.detach()).log_prob(fixed)).sum(), fixed)
    assert torch.allclose(got, expected, atol=1e-9)
    assert torch.equal(q.path_log_prob(z), q.log_prob(z))


def test_the_kl_has_no_closed_form_so_genkit_estimates_it_at_the_draw_with_the_path_gradient():
    posterior = family(zdim=3, seed=20)
    p = params(posterior, seed=21).requires_grad_()
    q, prior = posterior(p), standard_normal((1, 3, 1, 1))
    z = q.rsample(torch.Generator().manual_seed(22))
    assert q.kl(prior) is None
    kl = kl_divergence(q, prior, z)
    assert torch.equal(kl, q.log_prob(z) - prior.log_prob(z))
    # its gradient reaches the parameters only through z: ∂kl/∂z · ∂z/∂θ
    (grad_z,) = torch.autograd.grad(kl.sum(), z, retain_graph=True)
    (expected,) = torch.autograd.grad(z, p, grad_z, retain_graph=True)
    (got,) = torch.autograd.grad(kl.sum(), p)
    assert torch.allclose(got, expected, atol=1e-12)


def test_the_kl_estimate_is_unbiased_against_a_grid_integral():
    """2-D latent: the mean of 40,000 one-draw estimates is within five standard errors of ∫ q log(q/p) on a grid."""
    posterior = family(zdim=2, seed=40, steps=2, hidden=8, context=1)
    p = params(posterior, seed=41)
    with torch.no_grad():
        q = posterior(p.expand(40000, -1, -1, -1))
        z = q.rsample(torch.Generator().manual_seed(42))
        estimates = kl_divergence(q, standard_normal(z.shape), z).sum((1, 2, 3))
        draws = z.reshape(-1, 2)
        low, high = draws.min(0).values - 1.0, draws.max(0).values + 1.0
        axes = [torch.linspace(low[i].item(), high[i].item(), 401, dtype=DTYPE) for i in range(2)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)[:, :, None, None]
        log_q = posterior(p).log_prob(grid).sum((1, 2, 3))
        log_p = standard_normal(grid.shape).log_prob(grid).sum((1, 2, 3))
        cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
        integral = (log_q.exp() * (log_q - log_p) * cell).sum().item()
    error = estimates.std().item() / math.sqrt(len(estimates))
    assert abs(estimates.mean().item() - integral) < 5 * error, (estimates.mean().item(), integral, error)


def gradients_of_the_kl(posterior, q_params, target, seed: int, n: int, path: bool) -> torch.Tensor:
    """Per-draw gradients ``(n, P)`` of the KL estimate to ``target`` in the rows of ``q_params`` (one draw per row)."""
    rows = q_params.detach().expand(n, -1, -1, -1).clone().requires_grad_()
    q = posterior(rows)
    z = q.rsample(torch.Generator().manual_seed(seed))
    log_q = q.path_log_prob(z) if path else q.log_prob(z)
    (grad,) = torch.autograd.grad((log_q - target.log_prob(z)).sum(), rows)
    return grad.reshape(n, -1)


def test_the_path_gradient_has_the_total_gradients_expectation_in_every_weight():
    """40 batches of 250 draws: the difference of the two gradients, the score term, averages to zero within five
    standard errors."""
    posterior = family(zdim=3, seed=43)
    q_params = params(posterior, seed=44).requires_grad_()
    weights = [q_params, *posterior.parameters()]
    differences = []
    for batch in range(40):
        q = posterior(q_params.expand(250, -1, -1, -1))
        z = q.rsample(torch.Generator().manual_seed(200 + batch))
        prior = standard_normal(z.shape)
        path = torch.autograd.grad((q.path_log_prob(z) - prior.log_prob(z)).mean(0).sum(), weights, retain_graph=True)
        total = torch.autograd.grad((q.log_prob(z) - prior.log_prob(z)).mean(0).sum(), weights)
        differences.append(torch.cat([(a - b).flatten() for a, b in zip(path, total)]))
    differences = torch.stack(differences)
    error = differences.std(0) / math.sqrt(len(differences))
    assert (differences.mean(0).abs() <= 5 * error + 1e-12).all()
    score = torch.autograd.grad(posterior(q_params.expand(250, -1, -1, -1)).log_prob(z.detach()).sum(), weights)
    reached = torch.cat([g.flatten() for g in score]) != 0
    assert (error[reached] > 0).all()  # every weight the score reaches is tested, not trivially equal


def test_where_q_is_what_it_is_fitted_to_the_path_gradient_into_q_is_zero_for_every_draw():
    """The target is the same IAF, held fixed: the total gradient sends q the score term, pure noise, and the path
    gradient nothing."""
    posterior = family(zdim=3, seed=45)
    q_params = params(posterior, seed=46)
    target = frozen(posterior)(q_params.detach().expand(500, -1, -1, -1))
    path = gradients_of_the_kl(posterior, q_params, target, seed=47, n=500, path=True)
    total = gradients_of_the_kl(posterior, q_params, target, seed=47, n=500, path=False)
    assert path.abs().max() < 1e-8
    assert total.var(0).min() > 0.1


def test_near_its_target_the_path_gradient_has_under_half_the_total_gradients_variance():
    """The target's base Gaussian moved by a tenth of its spread (mean by 0.1·σ₀, log σ₀ by 0.1); 0.23 of the variance
    here."""
    posterior = family(zdim=3, seed=48)
    q_params = params(posterior, seed=49)
    loc, log_scale, context = q_params.split([3, 3, 3], dim=1)
    xi = torch.randn(2, 1, 3, 1, 1, generator=torch.Generator().manual_seed(50), dtype=DTYPE)
    nudged = torch.cat([loc + 0.1 * log_scale.exp() * xi[0], log_scale + 0.1 * xi[1], context], dim=1)
    target = frozen(posterior)(nudged.expand(2000, -1, -1, -1))
    path = gradients_of_the_kl(posterior, q_params, target, seed=51, n=2000, path=True)
    total = gradients_of_the_kl(posterior, q_params, target, seed=51, n=2000, path=False)
    assert path.var(0).sum() < 0.5 * total.var(0).sum()
