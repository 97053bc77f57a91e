"""PixelCNN++ is causal to the pixel, with exactly the reference architecture's blind spots, and normalised.

The dependency ("reach") maps of the fixtures were computed by pclucas14/pixel-cnn-pp with one
backward pass per output pixel: ``reach.npy`` for the 8×8 fixture model, and
``reach-nr5-32x32-packbits.npy`` (``np.packbits`` along rows of the 1024×1024 map) for the CIFAR-10
architecture (nr_resnet 5) at 32×32 — which depends only on the architecture, so genkit's is
computed here on a network one channel wide. No output sees its own pixel or a later one, and
288 of the 1,024 outputs miss up to 9 earlier pixels: comparing the maps for equality catches shift
and crop mistakes that stay causal, which a "no future dependence" check cannot.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from locations import FIXTURES
from test_pixelcnnpp_reference import FILES, fixture_dir, images, one_thread, recipe  # noqa: F401  (one_thread: a fixture)

from genkit.models import build_model
from genkit_plugins.pixelcnnpp.convert import convert_checkpoint
from genkit_plugins.pixelcnnpp.layers import DownShiftedConv2d, right_shift
from genkit_plugins.pixelcnnpp.network import TwoStreamUNet
from genkit_plugins.pixelcnnpp.reach import dependency_map, future_dependencies

REACH_32 = FIXTURES / "pixelcnnpp-tiny-rgb" / "reach-nr5-32x32-packbits.npy"


def reference_reach_32() -> np.ndarray:
    return np.unpackbits(np.load(REACH_32), axis=1).astype(bool)


def cifar_architecture_one_channel_wide(seed: int = 0) -> TwoStreamUNet:
    """nr_resnet 5 as the CIFAR-10 model (the reach does not depend on the width), weights moved off their init."""
    torch.manual_seed(seed)
    network = TwoStreamUNet(in_channels=3, out_channels=30, nr_resnet=5, nr_filters=1, dropout=0.0).double()
    with torch.no_grad():
        for p in network.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return network


def image_32(seed: int = 1) -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train-dropout-0"])
def test_reach_of_the_converted_fixture_model_equals_the_ports(train):
    the_recipe = recipe("rgb", dropout=0.0)
    state, _ = convert_checkpoint(fixture_dir("rgb") / FILES["float64"], the_recipe)
    model = build_model(the_recipe).double().train(train)
    model.load_state_dict(state)
    x = model.preprocess(images("rgb")[:1])
    reach = dependency_map(model.network, x)
    np.testing.assert_array_equal(reach.numpy(), np.load(fixture_dir("rgb") / "reach.npy"))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train-dropout-0"])
def test_reach_of_the_cifar10_architecture_at_32x32_equals_the_ports(train):
    reach = dependency_map(cifar_architecture_one_channel_wide().train(train), image_32())
    assert len(future_dependencies(reach)) == 0
    np.testing.assert_array_equal(reach.numpy(), reference_reach_32())


def _vertical_windows_one_column_to_the_left(network: TwoStreamUNet) -> None:
    """Pad the vertical stream's 2×3 convolutions two columns on the left and none on the right."""
    for layer in network.modules():
        if isinstance(layer, DownShiftedConv2d) and layer.filter_size[1] == 3:
            layer.pad_left, layer.pad_right = 2, 0


def _horizontal_start_shifted_two_columns(network: TwoStreamUNet) -> None:
    """Shift the horizontal stream's first convolution two columns right instead of one."""
    first = network.ul_init[1]
    first.forward = lambda x, shifted_once=first.forward: right_shift(shifted_once(x))


@pytest.mark.parametrize("mistake", [_vertical_windows_one_column_to_the_left, _horizontal_start_shifted_two_columns])
def test_a_shift_mistake_that_stays_causal_fails_the_reach_comparison(mistake):
    network = cifar_architecture_one_channel_wide()
    mistake(network)
    reach = dependency_map(network.eval(), image_32())
    assert len(future_dependencies(reach)) == 0, "the mistake keeps the network causal"
    assert (reach.numpy() != reference_reach_32()).any(), "and only the comparison with the reference's map sees it"


def test_probabilities_of_every_two_pixel_grey_image_sum_to_one():
    """Σ over all 65,536 images of 1×2 grey pixels of exp(log p(x)) = 1: each conditional is normalised and sees no
    pixel at or after its own. The network runs in float32 (float64 convolutions are slow on a CPU; rounding changes
    the parameters, not the normalisation) and the likelihood in float64."""
    torch.manual_seed(0)
    the_recipe = recipe("grey", image_size=4, nr_filters=2)
    model = build_model(the_recipe)
    model.initialize(torch.randint(0, 256, (16, 4, 4, 1), dtype=torch.uint8))
    levels = torch.cartesian_prod(torch.arange(256), torch.arange(256))  # (65536, 2): every (x₀, x₁)
    x = levels.reshape(-1, 1, 1, 2).float() / 127.5 - 1  # (B, C, H, W) = (65536, 1, 1, 2)
    with torch.no_grad():
        log_p = model.likelihood.log_prob(model.eval().network(x).double(), x.double())
    assert torch.logsumexp(log_p, 0).exp().item() == pytest.approx(1.0, abs=1e-6)
    assert log_p.max() < -1.0, "and the mass is spread, not all on one image"
