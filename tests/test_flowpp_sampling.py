"""Flow++ sampling queues its work without reading a value back to the host (what a CUDA graph capture needs)."""

from __future__ import annotations

import pytest
import torch
from flowpp_helpers import converted_tiny_model, tiny_recipe

from genkit.models import build_model
from genkit_plugins.flowpp.mixture import LogisticMixture


def _meta_model():
    return build_model(tiny_recipe(), "meta").eval()


def test_the_inverse_flow_and_its_searches_run_on_the_meta_device():
    """A meta tensor has no values: an ``.item()``, a ``bool(tensor)``, an early exit from the search or a
    data-dependent shape anywhere in the inverse would raise here."""
    model = _meta_model()
    z = torch.empty(2, *model.latent_shape, device="meta")
    with torch.no_grad():
        v, logdet = model.flow.inverse(z)
    h, w, c = model.image_shape
    assert v.device.type == "meta" and v.shape == (2, c, h, w) and logdet.shape == (2,)
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool(v.sum() > 0)  # what the inverse must never do


def test_the_whole_sampler_runs_on_the_meta_device():
    model = _meta_model()
    with torch.no_grad():
        images = model.sample(2)
    h, w, c = model.image_shape
    assert images.device.type == "meta" and images.shape == (2, h, w, c) and images.dtype == torch.uint8


def bisection_inverse(mixture: LogisticMixture, u: torch.Tensor, passes=None) -> torch.Tensor:
    """The inverse as genkit computed it before the Newton search: bisection of logit F in the official bracket
    μ ± 200·Σ s (enough here, where |u| stays small), halved until the bracket is two adjacent floats."""
    spread = 200 * mixture.logscales.exp().sum(-1, keepdim=True)
    low, high = (mixture.means - spread).amin(-1), (mixture.means + spread).amax(-1)
    middle = (low + high) / 2
    while ((middle != low) & (middle != high)).any():
        above = mixture.logit_cdf(middle) > u
        high, low = torch.where(above, middle, high), torch.where(above, low, middle)
        middle = (low + high) / 2
    return middle


def test_samples_through_the_newton_search_are_the_bisections_to_1e_10(monkeypatch):
    """The official fixture's model in float64: the same latents give the same ``v`` and the same images."""
    model = converted_tiny_model(torch.float64)
    z = torch.randn(8, *model.latent_shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        v, logdet = model.flow.inverse(z)
        monkeypatch.setattr(LogisticMixture, "inverse_logit_cdf", bisection_inverse)
        v_bisection, logdet_bisection = model.flow.inverse(z)
    assert (v - v_bisection).abs().max() < 1e-10
    assert (logdet - logdet_bisection).abs().max() < 1e-8
    assert torch.equal(model.to_uint8(v), model.to_uint8(v_bisection))
