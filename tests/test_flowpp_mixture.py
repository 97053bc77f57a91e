"""The logistic mixture of the Flow++ coupling against independent NumPy/SciPy float64 references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from torch import nn

from genkit_plugins.flowpp.couplings import MixtureCDFCoupling
from genkit_plugins.flowpp.inverse import NEWTON_PASSES, TOLERANCE, ScaledSums, search_every_pass
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


def test_inverse_inverts_the_official_test_mixture_over_minus_30_to_30():
    """The official test asks for 1e-5 in float64; the Newton search gives ~1e-13."""
    xs = torch.linspace(-30, 30, 100, dtype=torch.float64)
    mixture = official_mixture(len(xs))
    assert (mixture.inverse_logit_cdf(mixture.logit_cdf(xs)) - xs).abs().max() < 1e-10


def test_inverse_in_float32_recovers_points_to_float32_resolution():
    xs = torch.linspace(-10, 10, 101)
    mixture = official_mixture(len(xs), torch.float32)
    assert (mixture.inverse_logit_cdf(mixture.logit_cdf(xs)) - xs).abs().max() < 1e-4


# Extremes of what a network can put out, 150 elements each: (components, spread of the logits, of the means,
# log-scale range, spread of u); the last two put one component at the floor scale e^−7 among wide ones with the
# root on its narrow step, the case that needs the most passes.
EXTREMES = [
    (1, 0.0, 10.0, (-7.0, 7.0), 300.0, False),
    (3, 1.0, 1.0, (-7.0, 1.0), 3.0, False),
    (32, 3.0, 3.0, (-7.0, 2.0), 5.0, False),
    (32, 10.0, 30.0, (-7.0, 5.0), 50.0, False),
    (2, 10.0, 50.0, (-7.0, -5.0), 300.0, False),
    (8, 20.0, 10.0, (-7.0, 7.0), 1000.0, False),
    (16, 5.0, 20.0, (-7.0, 3.0), 20.0, True),
    (32, 5.0, 50.0, (-7.0, 5.0), 20.0, True),
]


def extreme_mixtures(seed: int = 0, n: int = 150) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(logits, means, log-scales, u), float64, the rows of every EXTREMES case padded to 32 components."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, logit_sd, mean_sd, (ls_low, ls_high), u_sd, narrow in EXTREMES:
        logits = rng.normal(size=(n, k)) * logit_sd
        means = rng.normal(size=(n, k)) * mean_sd
        logscales = rng.uniform(ls_low, ls_high, size=(n, k))
        if narrow:  # u is logit F at a point on the narrow component's step
            logscales[:, 0] = -7.0
            x = means[:, 0] + rng.normal(size=n) * 3 * np.exp(-7.0)
            u = np.array([scipy_logit_cdf(x[i : i + 1], logits[i], means[i], logscales[i])[0] for i in range(n)])
        else:
            u = rng.normal(size=n) * u_sd
        pad = 32 - k  # components of weight zero (logit −inf) leave the mixture as it is
        rows.append(
            (
                np.pad(logits, ((0, 0), (0, pad)), constant_values=-np.inf),
                np.pad(means, ((0, 0), (0, pad)), mode="edge"),
                np.pad(logscales, ((0, 0), (0, pad)), mode="edge"),
                u,
            )
        )
    return tuple(np.concatenate(parts) for parts in zip(*rows))


def scipy_logit_cdf(x: np.ndarray, logits, means, logscales) -> np.ndarray:
    log_w = np.asarray(logits) - scipy.special.logsumexp(logits)
    z = (np.asarray(x)[:, None] - means) * np.exp(-np.maximum(logscales, -7.0))
    log_cdf = scipy.special.logsumexp(log_w + scipy.special.log_expit(z), axis=1)
    return log_cdf - scipy.special.logsumexp(log_w + scipy.special.log_expit(-z), axis=1)


def bisection_roots(logits, means, logscales, u) -> np.ndarray:
    """The float64 root of logit F(x) = u by NumPy bisection, halved until the bracket is two adjacent floats."""
    log_w = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    scales = np.exp(np.maximum(logscales, -7.0))
    roots = means + scales * u[:, None]
    low, high = roots.min(1) - 1e-9 * (1 + np.abs(roots).max(1)), roots.max(1) + 1e-9 * (1 + np.abs(roots).max(1))
    middle = (low + high) / 2
    while ((middle != low) & (middle != high)).any():
        z = (middle[:, None] - means) / scales
        logit = scipy.special.logsumexp(log_w + scipy.special.log_expit(z), axis=1) - scipy.special.logsumexp(
            log_w + scipy.special.log_expit(-z), axis=1
        )
        above = logit > u
        high, low = np.where(above, middle, high), np.where(above, low, middle)
        middle = (low + high) / 2
    return middle


@pytest.fixture(scope="module")
def extremes():
    logits, means, logscales, u = extreme_mixtures()
    return logits, means, logscales, u, bisection_roots(logits, means, logscales, u)


def within_tolerance(x: np.ndarray, root: np.ndarray, logits, means, logscales, u, tolerance: float) -> np.ndarray:
    """``|x − root| ≤ tolerance·max(1, |root|)``, or where logit F is too flat for x to be pinned down that well,
    ``|logit F(x) − u| ≤ tolerance·(1 + |u|)``."""
    close = np.abs(x - root) <= tolerance * np.maximum(1.0, np.abs(root))
    residual = np.array([scipy_logit_cdf(x[i : i + 1], logits[i], means[i], logscales[i])[0] for i in range(len(x))])
    return close | (np.abs(residual - u) <= tolerance * (1 + np.abs(u)))


def every_pass(mixture: LogisticMixture, u: torch.Tensor) -> torch.Tensor:
    """The search as it runs off a CPU (a GPU, the meta device): every element for all ``NEWTON_PASSES``."""
    return search_every_pass(*mixture, u, NEWTON_PASSES[u.dtype])


@pytest.mark.parametrize("search", ["settling", "every pass"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_inverse_meets_the_official_tolerance_against_bisection_on_extreme_mixtures(extremes, dtype, search):
    """1e-12 is where the official bisection stops (flows/logistic.py); float32 gets about 16 units in the last
    place, what a float32 bisection gets. Both ways of running the search: on a CPU each element leaves it once
    settled, elsewhere every element takes every pass."""
    logits, means, logscales, u, roots = extremes
    as_torch = lambda a: torch.from_numpy(a).to(dtype)  # noqa: E731
    mixture = LogisticMixture.from_network(as_torch(logits), as_torch(means), as_torch(logscales))
    invert = mixture.inverse_logit_cdf if search == "settling" else lambda u: every_pass(mixture, u)
    x = invert(as_torch(u)).double().numpy()
    tolerance = TOLERANCE[dtype]
    misses = ~within_tolerance(x, roots, logits, means, logscales, u, tolerance)
    assert misses.sum() == 0, (
        f"outside {tolerance:g}: u = {u[misses][:5]}, x = {x[misses][:5]}, root {roots[misses][:5]}"
    )


def test_inverse_holds_in_tails_beyond_the_official_bracket():
    """The official bracket μ ± 200·Σ s misses the root once |u| > 200; the components' own roots bracket it."""
    u = torch.tensor([-5000.0, -250.0, 250.0, 5000.0], dtype=torch.float64)
    mixture = LogisticMixture.from_network(torch.zeros(4, 1), torch.full((4, 1), 3.0), torch.full((4, 1), -2.0))
    mixture = LogisticMixture(*(t.double() for t in mixture))
    np.testing.assert_allclose(mixture.inverse_logit_cdf(u).numpy(), (3.0 + np.exp(-2.0) * u).numpy(), rtol=1e-14)


def count_evaluations(monkeypatch) -> list[int]:
    """The number of elements at each evaluation of logit F and its slope in the search, from now on."""
    rows = []
    evaluate = ScaledSums.excess_and_slope
    monkeypatch.setattr(
        ScaledSums, "excess_and_slope", lambda self, z, scales: rows.append(z.shape[0]) or evaluate(self, z, scales)
    )
    return rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_off_a_cpu_the_inverse_evaluates_the_mixture_a_fixed_number_of_times(monkeypatch, dtype):
    """On the meta device (as on a GPU) the search reads nothing back: the same passes for every input, however
    easy, which is what lets a CUDA graph capture it."""
    rows = count_evaluations(monkeypatch)
    for u in (torch.zeros(5, dtype=dtype), torch.linspace(-900, 900, 5, dtype=dtype)):
        rows.clear()
        mixture = LogisticMixture(*(field.to("meta") for field in official_mixture(5, dtype)))
        x = mixture.inverse_logit_cdf(u.to("meta"))
        assert x.device.type == "meta" and x.shape == (5,)
        assert rows == [5] * NEWTON_PASSES[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_on_a_cpu_elements_leave_the_search_once_settled_and_the_hard_ones_keep_going(monkeypatch, dtype, extremes):
    """Easy elements (a single logistic, whose logit F is a line: its bracket is the root) leave after one pass,
    gathered out of the search once they are more than half of it;
    the extremes' hard ones keep the search going on fewer and fewer elements, never past ``NEWTON_PASSES``, and
    every element lands where the search with every pass puts it, to the tolerance."""
    logits, means, logscales, u, _ = extremes
    as_torch = lambda a: torch.from_numpy(a).to(dtype)  # noqa: E731
    hard = LogisticMixture.from_network(as_torch(logits), as_torch(means), as_torch(logscales))
    easy = LogisticMixture.from_network(
        torch.full((1500, 32), -torch.inf, dtype=dtype).index_fill(1, torch.tensor([0]), 0.0),
        torch.linspace(-20, 20, 1500, dtype=dtype).unsqueeze(1).expand(-1, 32),
        torch.full((1500, 32), 0.5, dtype=dtype),
    )
    rows = count_evaluations(monkeypatch)
    easy_u = torch.linspace(-50, 50, 1500, dtype=dtype)
    np.testing.assert_allclose(easy.inverse_logit_cdf(easy_u), easy.means[:, 0] + np.exp(0.5) * easy_u, rtol=1e-5)
    assert rows == [1500]
    # the easy rows before the hard ones, in one search
    mixture = LogisticMixture(*(torch.cat([a, b]) for a, b in zip(easy, hard)))
    everything = torch.cat([easy_u, as_torch(u)])
    rows.clear()
    x = mixture.inverse_logit_cdf(everything)
    assert rows[0] == len(everything) and rows[1] < len(u) < rows[0], "the easy half did not leave after one pass"
    assert rows == sorted(rows, reverse=True) and 2 < len(rows) <= NEWTON_PASSES[dtype]
    assert sum(rows) < 0.5 * len(everything) * NEWTON_PASSES[dtype]
    rows.clear()
    reference = every_pass(mixture, everything)
    close = (x - reference).abs() <= 2 * TOLERANCE[dtype] * reference.abs().clamp_min(1)
    assert close.all(), f"settled {x[~close][:5]}, every pass {reference[~close][:5]}"


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_searchs_scaled_evaluation_agrees_with_the_log_space_one_and_never_has_the_wrong_sign(extremes, dtype):
    """Near the root the scaled sums give logit F − u and its slope as the forward pass's log-sums do; far from
    it, where a sum overflows or underflows, the sign of logit F − u that steers the bracket is still right."""
    logits, means, logscales, u, roots = extremes
    as_torch = lambda a: torch.from_numpy(a).to(dtype)  # noqa: E731
    mixture = LogisticMixture.from_network(as_torch(logits), as_torch(means), as_torch(logscales))
    u_t, scaled = as_torch(u), ScaledSums.at(mixture.log_weights, as_torch(u))
    inverse_scales = torch.exp(-mixture.logscales)
    near = as_torch(roots)
    offsets = torch.tensor([-1e3, -10.0, -0.1, 0.1, 10.0, 1e3], dtype=dtype)
    tolerance = 1e-9 if dtype == torch.float64 else 1e-3
    for x in (near + d * (1 + near.abs()) for d in offsets):
        excess, slope = scaled.excess_and_slope(mixture.standardise(x), inverse_scales)
        reference = scipy_logit_cdf_rows(x.double().numpy(), logits, means, logscales) - u
        clear = np.abs(reference) > tolerance * (1 + np.abs(u))  # (where logit F is flat, x is its root to rounding)
        wrong_sign = clear & (np.sign(excess.double().numpy()) != np.sign(reference))
        assert not wrong_sign.any(), f"{wrong_sign.sum()} wrong signs, e.g. at u = {u[wrong_sign][:3]}"
    excess, slope = scaled.excess_and_slope(mixture.standardise(near), inverse_scales)
    logit, log_slope = mixture.transform(near)
    finite = torch.isfinite(log_slope)
    np.testing.assert_allclose(excess.numpy(), (logit - u_t).numpy(), atol=tolerance * 100, rtol=0)
    np.testing.assert_allclose(slope[finite].log().numpy(), log_slope[finite].numpy(), atol=tolerance, rtol=0)


def scipy_logit_cdf_rows(x: np.ndarray, logits, means, logscales) -> np.ndarray:
    """logit F at one point per row of mixtures, float64."""
    log_w = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    z = (x[:, None] - means) * np.exp(-np.maximum(logscales, -7.0))
    log_cdf = scipy.special.logsumexp(log_w + scipy.special.log_expit(z), axis=1)
    return log_cdf - scipy.special.logsumexp(log_w + scipy.special.log_expit(-z), axis=1)


def test_the_inverse_searched_in_slices_on_a_cpu_equals_the_search_over_everything(monkeypatch):
    """The slices only keep the search's working set in cache: every element's root is the same, to the search's
    tolerance (which elements leave the search together depends on the slice they are in)."""
    import genkit_plugins.flowpp.inverse as inverse_module

    generator = torch.Generator().manual_seed(0)
    fields = [torch.randn(3, 5, 7, 4, generator=generator) * spread for spread in (3.0, 5.0, 2.0)]
    mixture = LogisticMixture.from_network(*fields)
    u = torch.randn(3, 5, 7, generator=generator) * 20
    whole = mixture.inverse_logit_cdf(u)
    rows = count_evaluations(monkeypatch)
    monkeypatch.setattr(inverse_module, "CPU_SLICE_VALUES", 4 * 9)  # slices of 9 elements: the last one short
    sliced = mixture.inverse_logit_cdf(u)
    assert sliced.shape == u.shape and max(rows) == 9
    assert ((sliced - whole).abs() <= 2 * TOLERANCE[torch.float32] * whole.abs().clamp_min(1)).all()
    assert (mixture.logit_cdf(sliced) - u).abs().max() < 1e-3
