"""The logistic mixture of the Flow++ coupling against independent NumPy/SciPy float64 references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from torch import nn

from genkit_plugins.flowpp.couplings import MixtureCDFCoupling
from genkit_plugins.flowpp.mixture import LogisticMixture

# The official test's mixture (flows/logistic.py): one very narrow component among two wide ones.
LOGITS, MEANS, LOGSCALES = [0.1, 0.2, 4.0], [-1.0, 0.0, 1.0], [-5.0, 0.0, 0.2]


def official_mixture(n: int, dtype=torch.float64) -> LogisticMixture:
    expand = lambda v: torch.tensor(v, dtype=dtype).expand(n, -1)  # noqa: E731
    return LogisticMixture.from_network(expand(LOGITS), expand(MEANS), expand(LOGSCALES))


def scipy_terms(x: np.ndarray, logits, means, logscales):
    """(log f, log F, log(1 − F)) of the mixture from scipy.stats.logistic, per point."""
    log_w = np.asarray(logits) - scipy.special.logsumexp(logits)
    scales = np.exp(np.maximum(logscales, -7.0))
    x = np.asarray(x)[:, None]
    log_pdf = scipy.special.logsumexp(log_w + scipy.stats.logistic.logpdf(x, means, scales), axis=1)
    log_cdf = scipy.special.logsumexp(log_w + scipy.stats.logistic.logcdf(x, means, scales), axis=1)
    log_sf = scipy.special.logsumexp(log_w + scipy.stats.logistic.logsf(x, means, scales), axis=1)
    return log_pdf, log_cdf, log_sf


def test_log_pdf_log_cdf_and_logit_cdf_match_scipy():
    xs = np.linspace(-30, 30, 301)
    mixture = official_mixture(len(xs))
    x = torch.from_numpy(xs)
    log_pdf, log_cdf, log_sf = scipy_terms(xs, LOGITS, MEANS, LOGSCALES)
    np.testing.assert_allclose(mixture.log_pdf(x).numpy(), log_pdf, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mixture.log_cdf(x).numpy(), log_cdf, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mixture.log_sf(x).numpy(), log_sf, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mixture.logit_cdf(x).numpy(), log_cdf - log_sf, rtol=1e-12, atol=1e-12)


def test_log_scales_are_floored_at_minus_seven():
    mixture = LogisticMixture.from_network(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[-30.0, 3.0]]))
    assert mixture.logscales.tolist() == [[-7.0, 3.0]]


def test_transform_derivative_is_the_autograd_derivative_of_logit_cdf():
    x = torch.linspace(-30, 30, 301, dtype=torch.float64, requires_grad=True)
    mixture = official_mixture(len(x))
    logit, logdet = mixture.transform(x)
    (grad,) = torch.autograd.grad(logit.sum(), x)
    np.testing.assert_allclose(logdet.detach().numpy(), grad.log().numpy(), rtol=1e-10, atol=1e-10)


def test_logit_cdf_stays_finite_and_accurate_in_float32_tails():
    """|logit F| up to 60: the official exp-then-log saturates to ±inf in float32 from about 17."""
    xs = torch.tensor([-60.0, -40.0, -20.0, 20.0, 40.0, 60.0])
    one = lambda v, dtype: torch.tensor(v, dtype=dtype).expand(len(xs), -1)  # noqa: E731
    for dtype in (torch.float32, torch.float64):
        mixture = LogisticMixture.from_network(one([0.0, 1.0], dtype), one([-1.0, 1.0], dtype), one([0.0, 0.0], dtype))
        logit = mixture.logit_cdf(xs.to(dtype))
        assert torch.isfinite(logit).all()
        if dtype == torch.float32:
            official = -torch.log(1 / mixture.log_cdf(xs).exp() - 1)
            assert not torch.isfinite(official).all()
            reference = logit
    np.testing.assert_allclose(reference.numpy(), logit.numpy(), rtol=1e-5)


def test_bisection_inverts_the_official_test_mixture_over_minus_30_to_30():
    """The official test asks for 1e-5 in float64; the logit-scale bisection gives ~1e-13."""
    xs = torch.linspace(-30, 30, 100, dtype=torch.float64)
    mixture = official_mixture(len(xs))
    assert (mixture.inverse_logit_cdf(mixture.logit_cdf(xs)) - xs).abs().max() < 1e-10


def test_bisection_in_float32_recovers_points_to_float32_resolution():
    xs = torch.linspace(-10, 10, 101)
    mixture = official_mixture(len(xs), torch.float32)
    assert (mixture.inverse_logit_cdf(mixture.logit_cdf(xs)) - xs).abs().max() < 1e-4


class FixedOutput(nn.Module):
    """Stands in for a conditioning network: always returns the same raw parameters."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out = out

    def forward(self, x, context=None):
        return self.out


def test_mlc_coupling_forward_logdet_and_inverse_match_a_numpy_reference():
    """Raw outputs per element in the official order [a, b, K logits, K means, K log-scales] (Ho et al. 2019, §3.1)."""
    k, c, h, w = 4, 2, 3, 2
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(1, c * (2 + 3 * k), h, w, generator=g, dtype=torch.float64)
    raw[:, 2 + 2 * k :: 2 + 3 * k] -= 9.0  # some log-scales below the floor of −7
    coupling = MixtureCDFCoupling(channels=c, height=h, width=w, filters=4, blocks=0, components=k, heads=1, dropout=0)
    coupling.net = FixedOutput(raw)
    x = torch.randn(1, c, h, w, generator=g, dtype=torch.float64) * 3
    cond = torch.zeros_like(x)
    with torch.no_grad():
        (_, y), logdet = coupling((cond, x))
        (_, back), inverse_logdet = coupling.inverse((cond, y))

    params = raw.numpy().reshape(c, 2 + 3 * k, h, w)  # channel index c·(2 + 3K) + j
    expected_y, expected_logdet = np.zeros((c, h, w)), 0.0
    for i in range(c):
        for r in range(h):
            for s in range(w):
                p = params[i, :, r, s]
                a, b = np.tanh(p[0]), p[1]
                log_pdf, log_cdf, log_sf = scipy_terms(
                    [x[0, i, r, s].item()], p[2 : 2 + k], p[2 + k : 2 + 2 * k], p[2 + 2 * k :]
                )
                expected_y[i, r, s] = np.exp(a) * (log_cdf[0] - log_sf[0]) + b
                expected_logdet += log_pdf[0] - log_cdf[0] - log_sf[0] + a
    np.testing.assert_allclose(y[0].numpy(), expected_y, rtol=1e-12, atol=1e-12)
    assert logdet.item() == pytest.approx(expected_logdet, abs=1e-11)
    assert (back - x).abs().max() < 1e-10
    assert inverse_logdet.item() == pytest.approx(-expected_logdet, abs=1e-9)
