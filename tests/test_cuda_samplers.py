"""On a GPU, every sampler of every family replays from a CUDA graph and draws what it draws eagerly.

A sampler that read a value back to the host (an ``.item()``, an early exit) could not be captured;
one that drew its noise outside the default CUDA generator would replay the same images forever.
Without CUDA these tests skip; the meta-device tests in ``test_pixelcnnpp_sampling.py`` and
``test_flowpp_sampling.py`` check the no-read-back part on any machine.
"""

from __future__ import annotations

import pytest
import torch
from flowpp_helpers import tiny_recipe
from test_pixelcnnpp_reference import recipe as pixelcnnpp_recipe

from genkit.capabilities import DataDependentInit
from genkit.models import build_model

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _model(family: str):
    torch.manual_seed(0)
    recipe = tiny_recipe() if family == "flowpp" else pixelcnnpp_recipe("rgb", image_size=8)
    model = build_model(recipe, "cuda")
    if isinstance(model, DataDependentInit):
        h, w, c = model.image_shape
        images = torch.randint(0, 256, (16, h, w, c), dtype=torch.uint8, device="cuda")
        model.train()
        with torch.no_grad():
            model.initialize(images)
    return model.eval()


@needs_cuda
@pytest.mark.parametrize("family", ["pixelcnnpp", "flowpp"])
def test_every_sampler_replayed_from_a_graph_draws_what_it_draws_eagerly(family):
    from genkit.engine.graphs import GraphedCall

    model = _model(family)
    for name in model.samplers:
        with torch.no_grad():
            torch.cuda.manual_seed(7)
            eager = [model.sample(4, sampler=name) for _ in range(4)]
            torch.cuda.manual_seed(7)
            draw = lambda name=name: model.sample(4, sampler=name)  # noqa: E731
            graphed = GraphedCall(draw, device=torch.device("cuda"), warmup=2)
            replayed = [graphed().clone() for _ in range(4)]
        assert graphed.captured, name
        for a, b in zip(eager, replayed):
            assert (a == b).float().mean() > 0.99, name  # the same noise through the same kernels
        assert not torch.equal(replayed[2], replayed[3]), name  # each replay draws new noise
