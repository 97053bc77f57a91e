"""The contracts of the ``flow-layer``, ``split``, ``squeeze`` and ``preprocess`` kinds, for every registered component.

``genkit.testing`` collects these tests (the kinds name this module when they are registered), so a
third party's component of any of them is checked the moment it registers. Everything runs in
float64 on tiny shapes:

* a flow layer, initialised from data and then perturbed, inverts to 1e-10 with log-determinants
  that cancel; its log-determinant is log|det| of the autograd Jacobian; if it has a data-dependent
  init, the init pass returns the forward of the weights it sets, leaves every channel of each half
  with mean 0 and variance 1 over the batch and positions, and is idempotent; gradients reach every
  weight;
* a split and a squeeze are exact permutations of each image's elements into the shapes they
  declare, undone exactly; a split refuses an input of odd size with a ``StageError``;
* a preprocessing inverts to 1e-10 with log-determinants that cancel, and its log-determinant is
  log|det| of the autograd Jacobian.
"""

from __future__ import annotations

import math

import pytest
import torch

from genkit.testing import example_settings, plugin_params
from genkit_plugins.flowpp.contracts import DTYPE, flat_parameters, perturb, randn
from genkit_plugins.flowpp.datainit import DataInit, data_dependent_init
from genkit_plugins.flowpp.kinds import (
    FLOW_LAYER,
    PREPROCESS,
    SPLIT,
    SQUEEZE,
    FlowLayer,
    Preprocess,
    Split,
    Squeeze,
    StageError,
)

HALF = (3, 2, 2)  # (C, H, W) of each half a flow layer transforms
SHAPE = (4, 4, 4)  # (C, H, W) of the input every split and squeeze is tried on
IMAGE = (2, 2, 2)  # (C, H, W) of the images a preprocessing's Jacobian is taken on


def _jacobian_logabsdet(function, v: torch.Tensor) -> float:
    return torch.linalg.slogdet(torch.autograd.functional.jacobian(function, v)).logabsdet.item()


# --- flow layers --------------------------------------------------------------------------------------


def _pair(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return randn(batch, *HALF, seed=seed), randn(batch, *HALF, seed=seed + 1)


def _init_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Off-centre halves of different spreads: what a data-dependent init has to correct."""
    return 3 * randn(32, *HALF, seed=100) + 2, 0.5 * randn(32, *HALF, seed=101) - 1


def _layer(spec, *, initialised: bool = True) -> FlowLayer:
    torch.manual_seed(0)
    c, h, w = HALF
    layer = spec.build(example_settings(spec), channels=c, height=h, width=w).to(DTYPE)
    assert isinstance(layer, FlowLayer)
    if initialised:
        with torch.no_grad(), data_dependent_init(layer):
            layer(_init_pair())
        perturb(layer, seed=1)
    return layer


def _initialised_from_data(spec) -> FlowLayer:
    layer = _layer(spec, initialised=False)
    if not any(isinstance(m, DataInit) for m in layer.modules()):
        pytest.skip(f"{spec.name} has no data-dependent init")
    return layer


@pytest.mark.parametrize("spec", plugin_params(FLOW_LAYER))
def test_flow_layer_inverts_exactly_in_float64_and_its_log_determinants_cancel(spec):
    layer = _layer(spec)
    pair = _pair(3, seed=2)
    with torch.no_grad():
        out, logdet = layer(pair)
        back, inverse_logdet = layer.inverse(out)
    assert [t.shape for t in out] == [t.shape for t in pair]
    assert logdet.shape == (3,) and inverse_logdet.shape == (3,)
    assert max((b - p).abs().max().item() for b, p in zip(back, pair)) < 1e-10
    assert (logdet + inverse_logdet).abs().max() < 1e-10


@pytest.mark.parametrize("spec", plugin_params(FLOW_LAYER))
def test_flow_layer_logdet_is_the_log_determinant_of_its_jacobian(spec):
    """log|det J| of the map of both halves, from the autograd Jacobian, per image of a batch."""
    layer = _layer(spec)
    pair = _pair(2, seed=3)
    n = pair[0][0].numel()
    with torch.no_grad():
        _, logdet = layer(pair)
    for b in range(2):

        def flat_map(v: torch.Tensor) -> torch.Tensor:
            (first, second), _ = layer((v[:n].reshape(1, *HALF), v[n:].reshape(1, *HALF)))
            return torch.cat([first.flatten(), second.flatten()])

        v = torch.cat([pair[0][b].flatten(), pair[1][b].flatten()])
        assert abs(logdet[b].item() - _jacobian_logabsdet(flat_map, v)) < 1e-9


@pytest.mark.parametrize("spec", plugin_params(FLOW_LAYER))
def test_flow_layer_init_pass_returns_the_forward_of_the_weights_it_sets(spec):
    layer = _initialised_from_data(spec)
    pair = _init_pair()
    with torch.no_grad():
        with data_dependent_init(layer):
            during, logdet_during = layer(pair)
        after, logdet_after = layer(pair)
    assert max((d - a).abs().max().item() for d, a in zip(during, after)) < 1e-12
    assert (logdet_during - logdet_after).abs().max() < 1e-12


@pytest.mark.parametrize("spec", plugin_params(FLOW_LAYER))
def test_flow_layer_init_gives_each_channel_mean_0_and_variance_1_over_the_init_batch(spec):
    layer = _initialised_from_data(spec)
    pair = _init_pair()
    with torch.no_grad():
        with data_dependent_init(layer):
            layer(pair)
        out, _ = layer(pair)
    for half in out:
        var, mean = torch.var_mean(half.transpose(0, 1).flatten(1), dim=1, correction=0)  # per channel
        assert mean.abs().max() < 1e-6
        assert (var - 1).abs().max() < 1e-6


@pytest.mark.parametrize("spec", plugin_params(FLOW_LAYER))
def test_flow_layer_init_is_idempotent_on_its_batch(spec):
    layer = _initialised_from_data(spec)
    pair = _init_pair()
    with torch.no_grad():
        for _ in range(2):
            before = flat_parameters(layer)
            with data_dependent_init(layer):
                layer(pair)
    assert ((flat_parameters(layer) - before).abs() <= 1e-5 * (1 + before.abs())).all()


@pytest.mark.parametrize("spec", plugin_params(FLOW_LAYER))
def test_flow_layer_gradients_reach_every_parameter(spec):
    layer = _layer(spec)
    (first, second), logdet = layer(_pair(2, seed=8))
    (first.square().sum() + second.square().sum() + logdet.sum()).backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


# --- splits and squeezes ------------------------------------------------------------------------------


def _numbered(batch: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """Images whose elements are 0, 1, 2, … in order: a permutation shows as a reordering of them."""
    return torch.arange(batch * math.prod(shape), dtype=DTYPE).reshape(batch, *shape)


def _split(spec) -> Split:
    split = spec.build(example_settings(spec))
    assert isinstance(split, Split)
    return split


def _squeeze(spec) -> Squeeze:
    squeeze = spec.build(example_settings(spec))
    assert isinstance(squeeze, Squeeze)
    return squeeze


@pytest.mark.parametrize("spec", plugin_params(SPLIT))
def test_split_puts_every_element_of_an_image_in_exactly_one_half_of_the_declared_shape(spec):
    split = _split(spec)
    half = split.half_shape(SHAPE)
    x = _numbered(2, SHAPE)
    a, b = split.split(x)
    assert a.shape == b.shape == (2, *half)
    for i in range(2):
        assert torch.equal(torch.cat([a[i].flatten(), b[i].flatten()]).sort().values, x[i].flatten())


@pytest.mark.parametrize("spec", plugin_params(SPLIT))
def test_split_merge_undoes_split_and_split_undoes_merge_exactly(spec):
    split = _split(spec)
    half = split.half_shape(SHAPE)
    x = randn(2, *SHAPE, seed=20)
    assert torch.equal(split.merge(*split.split(x)), x)
    a, b = randn(2, *half, seed=21), randn(2, *half, seed=22)
    again = split.split(split.merge(a, b))
    assert torch.equal(again[0], a) and torch.equal(again[1], b)


@pytest.mark.parametrize("spec", plugin_params(SPLIT))
def test_split_refuses_an_input_of_odd_size_with_a_stage_error(spec):
    """Two halves of one shape need an even number of elements: 3×3×3 has none to give."""
    with pytest.raises(StageError):
        _split(spec).half_shape((3, 3, 3))


@pytest.mark.parametrize("spec", plugin_params(SQUEEZE))
def test_squeeze_rearranges_the_elements_of_each_image_into_the_declared_shape(spec):
    squeeze = _squeeze(spec)
    shape = squeeze.output_shape(SHAPE)
    x = _numbered(2, SHAPE)
    y = squeeze(x)
    assert y.shape == (2, *shape)
    for i in range(2):
        assert torch.equal(y[i].flatten().sort().values, x[i].flatten())


@pytest.mark.parametrize("spec", plugin_params(SQUEEZE))
def test_squeeze_inverse_undoes_it_exactly_both_ways(spec):
    squeeze = _squeeze(spec)
    x = randn(2, *SHAPE, seed=23)
    assert torch.equal(squeeze.inverse(squeeze(x)), x)
    y = randn(2, *squeeze.output_shape(SHAPE), seed=24)
    assert torch.equal(squeeze(squeeze.inverse(y)), y)


# --- preprocessing -------------------------------------------------------------------------------------


def _preprocess(spec, levels: int) -> Preprocess:
    preprocess = spec.build(example_settings(spec), levels=levels).to(DTYPE)
    assert isinstance(preprocess, Preprocess)
    return preprocess


def _pixels(batch: int, levels: int, seed: int, shape=(2, 4, 4)) -> torch.Tensor:
    """Dequantized pixels, uniform on ``[0, levels)``."""
    return torch.rand(batch, *shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE) * levels


@pytest.mark.parametrize("spec", plugin_params(PREPROCESS))
@pytest.mark.parametrize("levels", [256, 32])
def test_preprocess_inverts_exactly_in_float64_and_its_log_determinants_cancel(spec, levels):
    preprocess = _preprocess(spec, levels)
    v = _pixels(3, levels, seed=30)
    with torch.no_grad():
        y, logdet = preprocess(v)
        back, inverse_logdet = preprocess.inverse(y)
    assert y.shape == v.shape and logdet.shape == (3,) and inverse_logdet.shape == (3,)
    assert (back - v).abs().max() < 1e-10
    assert (logdet + inverse_logdet).abs().max() < 1e-10


@pytest.mark.parametrize("spec", plugin_params(PREPROCESS))
@pytest.mark.parametrize("levels", [256, 32])
def test_preprocess_logdet_is_the_log_determinant_of_its_jacobian(spec, levels):
    preprocess = _preprocess(spec, levels)
    v = _pixels(2, levels, seed=31, shape=IMAGE)
    with torch.no_grad():
        _, logdet = preprocess(v)
    for b in range(2):
        logabsdet = _jacobian_logabsdet(lambda t: preprocess(t.reshape(1, *IMAGE))[0].flatten(), v[b].flatten())
        assert abs(logdet[b].item() - logabsdet) < 1e-9
