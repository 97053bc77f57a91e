"""``kl_divergence`` without a closed form: an unbiased value, and the path-derivative gradient (Roeder et al. 2017).

A diagonal Gaussian whose ``kl`` is withheld stands for any family without an analytic KL, so every
expectation has an exact answer: KL(N(μq, σq²) ‖ N(μp, σp²)) and its derivatives, written out here in
float64. Each row of a parameter tensor ``(n, 2, 1, 1)`` builds its own one-element distribution, so
one backward pass gives ``n`` independent one-draw gradients.
"""

from __future__ import annotations

import math

import pytest
import torch

from genkit.interfaces import kl_divergence
from genkit_plugins.gaussian import DiagonalGaussian

DTYPE = torch.float64
N = 20000


class WithoutClosedForm(DiagonalGaussian):
    """A diagonal Gaussian that reports no analytic KL, so ``kl_divergence`` estimates it."""

    def kl(self, other):
        return None


def rows(mean: float, log_sigma: float, n: int = N) -> torch.Tensor:
    """``n`` copies of ``(mean, log σ)`` as a leaf ``(n, 2, 1, 1)``: each row's gradient is one draw's."""
    return torch.tensor([mean, log_sigma], dtype=DTYPE).repeat(n, 1)[:, :, None, None].requires_grad_()


def gaussian(params: torch.Tensor, family=DiagonalGaussian) -> DiagonalGaussian:
    return family(params[:, :1], params[:, 1:])


def draws(q: DiagonalGaussian, seed: int) -> torch.Tensor:
    return q.rsample(torch.Generator().manual_seed(seed))


def per_draw_gradients(loss: torch.Tensor, *params: torch.Tensor) -> list[torch.Tensor]:
    """``(n, 2)`` gradients of every row's loss with respect to its own parameters."""
    return [g.reshape(-1, 2) for g in torch.autograd.grad(loss.sum(), params, retain_graph=True)]


def analytic_kl_and_gradients(mq: float, lq: float, mp: float, lp: float) -> tuple[float, list[float], list[float]]:
    """KL(N(mq, e^{2lq}) ‖ N(mp, e^{2lp})) and its derivatives in (mq, lq) and (mp, lp), by hand."""
    vq, vp = math.exp(2 * lq), math.exp(2 * lp)
    kl = lp - lq + (vq + (mq - mp) ** 2) / (2 * vp) - 0.5
    return kl, [(mq - mp) / vp, vq / vp - 1], [-(mq - mp) / vp, 1 - (vq + (mq - mp) ** 2) / vp]


def within_five_standard_errors(samples: torch.Tensor, expected: list[float]) -> bool:
    mean, error = samples.mean(0), samples.std(0) / math.sqrt(len(samples))
    return bool(((mean - torch.tensor(expected, dtype=DTYPE)).abs() <= 5 * error + 1e-12).all())


MQ, LQ, MP, LP = 0.7, math.log(0.6), -0.2, math.log(1.3)


def test_the_estimate_is_log_q_minus_log_p_at_the_draw():
    q, p = gaussian(rows(MQ, LQ, 5), WithoutClosedForm), gaussian(rows(MP, LP, 5))
    z = draws(q, 0)
    assert torch.equal(kl_divergence(q, p, z), q.log_prob(z) - p.log_prob(z))


def test_the_estimate_is_unbiased_in_value():
    q, p = gaussian(rows(MQ, LQ), WithoutClosedForm), gaussian(rows(MP, LP))
    estimates = kl_divergence(q, p, draws(q, 1)).detach().reshape(-1, 1)
    kl, _, _ = analytic_kl_and_gradients(MQ, LQ, MP, LP)
    assert within_five_standard_errors(estimates, [kl])
    assert estimates.mean().item() == pytest.approx(kl, abs=0.02)


def test_the_path_gradient_has_the_analytic_kls_gradient_in_expectation():
    """For both distributions' parameters; the prior's gradient is the plain reparameterised one."""
    q_params, p_params = rows(MQ, LQ), rows(MP, LP)
    q, p = gaussian(q_params, WithoutClosedForm), gaussian(p_params)
    grad_q, grad_p = per_draw_gradients(kl_divergence(q, p, draws(q, 2)), q_params, p_params)
    _, expected_q, expected_p = analytic_kl_and_gradients(MQ, LQ, MP, LP)
    assert within_five_standard_errors(grad_q, expected_q)
    assert within_five_standard_errors(grad_p, expected_p)


def test_where_q_equals_p_the_path_gradient_into_q_is_exactly_zero_and_the_total_gradient_is_not():
    """A latent layer at its prior: the total gradient still sends ∂/∂θ log q(z) = (ε/σ, ε² − 1), pure noise, into q."""
    q_params = rows(MP, LP, 1000)
    q, p = gaussian(q_params, WithoutClosedForm), gaussian(rows(MP, LP, 1000).detach())
    z = draws(q, 3)
    path_kl, total_kl = kl_divergence(q, p, z), q.log_prob(z) - p.log_prob(z)
    (path,), (total,) = per_draw_gradients(path_kl, q_params), per_draw_gradients(total_kl, q_params)
    assert path.abs().max() < 1e-12
    eps = ((z - MP) / math.exp(LP)).detach().reshape(-1)
    assert torch.allclose(total, torch.stack([eps / math.exp(LP), eps**2 - 1], 1), atol=1e-10)


# x | z ~ N(z, S²), z ~ N(0, 1): the posterior is N(x / (1 + S²), S² / (1 + S²)) exactly
S, X = 0.5, 1.2
POSTERIOR_MEAN, POSTERIOR_LOG_SIGMA = X / (1 + S**2), 0.5 * math.log(S**2 / (1 + S**2))


def negative_elbo_gradients(q_mean: float, q_log_sigma: float, path: bool) -> torch.Tensor:
    """Per-draw gradients in q's (mean, log σ) of KL − log p(x|z), with the path or the total gradient of log q."""
    params = rows(q_mean, q_log_sigma, 4000)
    q, p = gaussian(params, WithoutClosedForm), gaussian(rows(0.0, 0.0, 4000).detach())
    z = draws(q, 4)
    kl = kl_divergence(q, p, z) if path else q.log_prob(z) - p.log_prob(z)
    distortion = -torch.distributions.Normal(z, S).log_prob(torch.tensor(X, dtype=DTYPE))
    (grad,) = per_draw_gradients(kl + distortion, params)
    return grad


def test_at_the_exact_posterior_the_path_gradient_of_the_elbo_has_no_variance():
    """Roeder et al.'s "sticking the landing": the gradient vanishes draw by draw once q is the posterior."""
    assert negative_elbo_gradients(POSTERIOR_MEAN, POSTERIOR_LOG_SIGMA, path=True).abs().max() < 1e-12
    assert negative_elbo_gradients(POSTERIOR_MEAN, POSTERIOR_LOG_SIGMA, path=False).var(0).min() > 0.5


def test_near_the_exact_posterior_the_path_gradient_has_under_a_quarter_of_the_total_gradients_variance():
    """q's mean off by a quarter of its σ and its σ 20% too wide; both estimators agree in expectation."""
    mean, log_sigma = POSTERIOR_MEAN + 0.25 * math.exp(POSTERIOR_LOG_SIGMA), POSTERIOR_LOG_SIGMA + math.log(1.2)
    path = negative_elbo_gradients(mean, log_sigma, path=True)
    total = negative_elbo_gradients(mean, log_sigma, path=False)
    assert within_five_standard_errors(path - total, [0.0, 0.0])
    assert (path.var(0) < 0.25 * total.var(0)).all()  # 0.09 and 0.11 here
