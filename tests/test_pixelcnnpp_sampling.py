"""PixelCNN++'s three samplers draw the same images from the same noise, and the cached one never waits on the host.

The noise for every pixel is drawn up front from the generator; the samplers differ only in how
they get the DMOL parameters at each pixel: a full pass (``naive``), a pass over the rows drawn so
far (``row-truncated``) or the cached pixel-by-pixel evaluation (``cached``, Ramachandran et al.
2017). In float64 on the CPU they give identical images.
"""

from __future__ import annotations

import pytest
import torch
from test_pixelcnnpp_reference import FILES, fixture_dir, one_thread, recipe  # noqa: F401  (one_thread: a fixture)

from genkit.errors import ConfigError
from genkit.models import build_model
from genkit_plugins.pixelcnnpp import sampling
from genkit_plugins.pixelcnnpp.convert import convert_checkpoint


def converted_fixture_model():
    """The rgb fixture's weights (trained briefly by the port, then perturbed)."""
    the_recipe = recipe("rgb")
    state, _ = convert_checkpoint(fixture_dir("rgb") / FILES["float64"], the_recipe)
    model = build_model(the_recipe).double()
    model.load_state_dict(state)
    return model


def freshly_initialised_model(**changes):
    """A grey model after its data-dependent initialisation on 16 images (the weights training starts from)."""
    torch.manual_seed(0)
    model = build_model(recipe("grey", **changes)).double()
    model.initialize(torch.randint(0, 256, (16, 8, 8, 1), dtype=torch.uint8))
    return model


MODELS = {
    "fixture-weights": converted_fixture_model,
    "initialised-weights": freshly_initialised_model,
    "class-conditional": lambda: freshly_initialised_model(num_classes=3),
}


@pytest.mark.parametrize("weights", list(MODELS))
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_the_three_samplers_give_identical_images_from_the_same_noise(weights, mode):
    model = MODELS[weights]().train(mode == "train")
    labels = torch.tensor([0, 2, 1]) if weights == "class-conditional" else None
    drawn = {
        sampler: model.sample(3, generator=torch.Generator().manual_seed(7), sampler=sampler, labels=labels)
        for sampler in model.samplers
    }
    assert model.training == (mode == "train"), "sampling leaves the model in its mode"
    for sampler, images in drawn.items():
        assert torch.equal(images, drawn["naive"]), sampler
    images = drawn["naive"]
    assert images.dtype == torch.uint8 and images.shape == (3, *model.image_shape)
    assert len({tuple(image.flatten().tolist()) for image in images}) == 3, "three different images"


def test_the_default_sampler_is_the_cached_one_and_unknown_names_fail_in_one_line():
    model = freshly_initialised_model()
    assert model.samplers == ("cached", "row-truncated", "naive")
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(model.sample(2, generator=generator()), model.sample(2, generator=generator(), sampler="cached"))
    with pytest.raises(ConfigError, match="samples with 'cached', 'row-truncated', 'naive'"):
        model.sample(1, sampler="fixed-point")


def test_another_generator_state_draws_other_images():
    model = freshly_initialised_model()
    first = model.sample(2, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(first, model.sample(2, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(first, model.sample(2, generator=torch.Generator().manual_seed(1)))


def test_temperatures_other_than_one_are_refused():
    with pytest.raises(ConfigError, match="temperature 1 only"):
        freshly_initialised_model().sample(1, temperature=0.8)


def test_the_cached_loop_runs_on_the_meta_device_so_it_never_reads_a_value_back_to_the_host():
    """A meta tensor has no values: any ``.item()``, ``bool(tensor)`` or data-dependent shape in the loop would raise.
    So the loop queues work without waiting for it, which is what capturing it in a CUDA graph needs."""
    model = build_model(recipe("rgb", image_size=4), "meta")  # 4×4: still three resolutions, 16 steps
    h, w, c = model.image_shape
    noise = torch.empty(2, model.likelihood.noise_channels, h, w, device="meta")
    x = torch.zeros(2, c, h, w, device="meta")
    with torch.no_grad():
        images = sampling.cached(model.network, model.likelihood, x, noise)
    assert images.device.type == "meta" and images.shape == (2, c, h, w)
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool(images.sum() > 0)  # what the loop must never do


def test_sampling_holds_the_weights_fixed_only_while_it_draws():
    model = freshly_initialised_model()
    images = torch.randint(0, 256, (2, 8, 8, 1), dtype=torch.uint8)
    model.sample(1, generator=torch.Generator().manual_seed(0))
    before = model(images).nll
    with torch.no_grad():
        model.network.nin_out.linear.g.mul_(2.0)
    assert not torch.equal(model(images).nll, before), "the effective weights follow g again after sampling"
