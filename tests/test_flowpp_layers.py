"""Flow++'s invertible layers, splits and data-dependent init against NumPy float64 references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genkit_plugins.flowpp.datainit import Conv, data_dependent_init
from genkit_plugins.flowpp.layers import (
    Norm,
    Pointwise,
    depth_to_space,
    logit_preprocess,
    logit_preprocess_inverse,
    merge_channels,
    merge_columns,
    sigmoid,
    sigmoid_inverse,
    space_to_depth,
    split_channels,
    split_columns,
)

DTYPE = torch.float64


def randn(*shape, seed=0, dtype=DTYPE):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_space_to_depth_uses_tensorflows_channel_order():
    """``out[(dy·2 + dx)·C + c, i, j] = in[c, 2i + dy, 2j + dx]`` (tf.space_to_depth), not PixelUnshuffle's."""
    x = randn(2, 3, 4, 6)
    y = space_to_depth(x)
    assert y.shape == (2, 12, 2, 3)
    for dy in range(2):
        for dx in range(2):
            for c in range(3):
                assert torch.equal(y[:, (dy * 2 + dx) * 3 + c], x[:, c, dy::2, dx::2])
    assert not torch.equal(y, torch.nn.functional.pixel_unshuffle(x, 2))
    assert torch.equal(depth_to_space(y), x)


def test_checkerboard_split_takes_even_and_odd_columns():
    x = randn(2, 3, 4, 6)
    a, b = split_columns(x)
    assert torch.equal(a, x[..., 0::2]) and torch.equal(b, x[..., 1::2])
    assert torch.equal(merge_columns(a, b), x)


def test_channel_split_takes_the_first_and_second_half():
    x = randn(2, 6, 2, 2)
    a, b = split_channels(x)
    assert torch.equal(a, x[:, :3]) and torch.equal(b, x[:, 3:])
    assert torch.equal(merge_channels(a, b), x)


def test_logit_preprocessing_matches_numpy_and_inverts():
    v = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(0), dtype=DTYPE) * 256
    y, logdet = logit_preprocess(v)
    s = 0.05 + 0.9 * v.numpy() / 256
    np.testing.assert_allclose(y.numpy(), np.log(s / (1 - s)), rtol=1e-13, atol=1e-13)
    expected = (-np.log(s) - np.log1p(-s)).reshape(3, -1).sum(1) + 32 * math.log(0.9 / 256)
    np.testing.assert_allclose(logdet.numpy(), expected, rtol=1e-13)
    back, inverse_logdet = logit_preprocess_inverse(y)
    assert (back - v).abs().max() < 1e-11
    np.testing.assert_allclose(inverse_logdet.numpy(), -expected, rtol=1e-12)


def test_sigmoid_logdet_is_exact_far_in_the_tails_and_inverts():
    h = torch.tensor([[-30.0, -21.0, -1.0, 0.0, 2.0, 25.0]], dtype=DTYPE)
    u, logdet = sigmoid(h)
    expected = np.sum(-np.abs(h.numpy()) - 2 * np.log1p(np.exp(-np.abs(h.numpy()))))
    assert logdet.item() == pytest.approx(expected, rel=1e-15)
    back, inverse_logdet = sigmoid_inverse(u[:, 2:5])
    assert (back - h[:, 2:5]).abs().max() < 1e-14


def test_norm_init_gives_zero_mean_unit_variance_activations_and_its_logdet():
    x = randn(64, 3, 4, 2, seed=1) * 5 + 3
    pair = (x, randn(64, 3, 4, 2, seed=2) * 0.1 - 1)
    norm = Norm(3, 4, 2).to(DTYPE)
    with torch.no_grad(), data_dependent_init(norm):
        out, logdet = norm(pair)
    for half, x in zip(out, pair):
        assert half.mean(0).abs().max() < 1e-12
        var = x.var(0, correction=0)
        assert torch.allclose(half.var(0, correction=0), var / (var + 1e-8), rtol=1e-12)  # unit, up to the official ε
    assert logdet.shape == (64,)
    assert logdet[0].item() == pytest.approx(norm.g.log().sum().item(), rel=1e-14)
    back, inverse_logdet = norm.inverse(out)
    assert all((b - p).abs().max() < 1e-12 for b, p in zip(back, pair))
    assert torch.equal(inverse_logdet, -logdet)


def test_norm_scale_is_floored_at_1e_minus_10():
    norm = Norm(1, 1, 1).to(DTYPE)
    with torch.no_grad():
        norm.g.fill_(-3.0)
    _, logdet = norm((torch.ones(1, 1, 1, 1, dtype=DTYPE),) * 2)
    assert logdet.item() == pytest.approx(2 * math.log(1e-10))


def test_pointwise_logdet_matches_numpy_slogdet_and_inverts_in_float64():
    torch.manual_seed(0)
    pointwise = Pointwise(4, 3, 2).to(DTYPE)
    with torch.no_grad():
        pointwise.weight.add_(randn(2, 4, 4, seed=3) * 0.5)
    pair = (randn(2, 4, 3, 2, seed=4), randn(2, 4, 3, 2, seed=5))
    with torch.no_grad():
        out, logdet = pointwise(pair)
    weights = pointwise.weight.detach().numpy()
    expected = 6 * sum(np.linalg.slogdet(w)[1] for w in weights)
    assert logdet.tolist() == pytest.approx([expected] * 2, rel=1e-13)
    np.testing.assert_allclose(out[0].numpy(), np.einsum("oc,bchw->bohw", weights[0], pair[0].numpy()), rtol=1e-13)
    back, inverse_logdet = pointwise.inverse(out)
    assert all((b - p).abs().max() < 1e-13 for b, p in zip(back, pair))
    assert torch.equal(inverse_logdet, -logdet)


def test_pointwise_starts_near_the_identity():
    torch.manual_seed(0)
    weight = Pointwise(5, 2, 2).weight.detach()
    assert ((weight - torch.eye(5)).abs() < 0.006).all() and not torch.equal(weight[0], torch.eye(5))


def test_pointwise_inverse_of_float32_weights_is_computed_in_float64():
    """A float32 1×1 convolution and its inverse round-trip to float32 rounding, even for an ill-conditioned W."""
    torch.manual_seed(0)
    pointwise = Pointwise(6, 4, 4)
    with torch.no_grad():
        pointwise.weight[:, 0] = pointwise.weight[:, 1] + 1e-3 * randn(2, 6, seed=6, dtype=torch.float32)
    pair = (randn(3, 6, 4, 4, seed=7, dtype=torch.float32),) * 2
    back, _ = pointwise.inverse(pointwise(pair)[0])
    assert (back[0] - pair[0]).abs().max() < 5e-3
    assert back[0].dtype == torch.float32


@pytest.mark.parametrize("kernel,init_scale", [(3, 1.0), (1, 0.1)])
def test_conv_init_gives_each_channel_zero_mean_and_init_scale_spread(kernel, init_scale):
    torch.manual_seed(0)
    conv = Conv(5, 7, kernel=kernel, init_scale=init_scale).to(DTYPE)
    x = randn(16, 5, 6, 6, seed=8) * 2 + 1
    with data_dependent_init(conv):
        during = conv(x)
    after = conv(x)
    assert torch.allclose(during, after, atol=1e-13)
    var, mean = torch.var_mean(after, dim=(0, 2, 3), correction=0)
    assert mean.abs().max() < 1e-12
    assert torch.allclose(var.sqrt(), torch.full_like(var, init_scale), rtol=1e-6)
    assert not conv.initializing


def test_layers_leave_their_weights_alone_outside_an_init_pass():
    torch.manual_seed(0)
    conv, norm = Conv(2, 3).to(DTYPE), Norm(2, 2, 2).to(DTYPE)
    before = [p.clone() for p in [*conv.parameters(), *norm.parameters()]]
    conv(randn(4, 2, 2, 2))
    norm((randn(4, 2, 2, 2), randn(4, 2, 2, 2, seed=1)))
    assert all(torch.equal(a, b) for a, b in zip(before, [*conv.parameters(), *norm.parameters()]))
