"""Flow++ sampling queues its work without reading a value back to the host (what a CUDA graph capture needs)."""

from __future__ import annotations

import pytest
import torch
from flowpp_helpers import tiny_recipe

from genkit.models import build_model


def _meta_model():
    return build_model(tiny_recipe(), "meta").eval()


def test_the_inverse_flow_and_its_bisections_run_on_the_meta_device():
    """A meta tensor has no values: an ``.item()``, a ``bool(tensor)``, an early exit from the bisection or a
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
