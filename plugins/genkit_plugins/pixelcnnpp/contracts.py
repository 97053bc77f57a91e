"""The contracts of the PixelCNN kinds, checked for every registered component (run by ``genkit.testing``).

Every ``pixelcnn-layer``, ``pixelcnn-block`` and ``pixelcnn-network`` must: keep the shapes it
promises; see only what its stream allows (exact input gradients in float64); compute at one row
or position exactly what its full pass computes there; initialise from one batch so that each
weight-normalised layer's output has per-channel mean 0 and standard deviation ``init_scale``; and
let gradients reach every parameter.
"""

from __future__ import annotations

import pytest
import torch

from genkit.components import ComponentRef
from genkit.testing import example_settings, plugin_params
from genkit_plugins.pixelcnnpp.kinds import BLOCK, LAYER, NETWORK, InitialisedFromData
from genkit_plugins.pixelcnnpp.layers import concat_elu
from genkit_plugins.pixelcnnpp.reach import dependency_map, future_dependencies

DTYPE = torch.float64
SIZE = 8


def _random(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


def _perturb(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Move every parameter away from its initial value (g = 1, b = 0 hide mistakes), deterministically."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return module


def _initialised_layers(module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, InitialisedFromData)]


def _assert_initialised_from_data(module: torch.nn.Module, run) -> None:
    """Arm every weight-normalised layer, run once to initialise, run again and check each layer's output."""
    layers = _initialised_layers(module)
    assert layers, "the component has no layer that initialises from data"
    for _, layer in layers:
        layer.arm_init()
    with torch.no_grad():
        run()
    assert not [name for name, layer in layers if layer.init_pending], "the pass did not reach every layer"
    outputs = {}
    hooks = [layer.register_forward_hook(lambda m, i, o, n=name: outputs.__setitem__(n, o)) for name, layer in layers]
    try:
        with torch.no_grad():
            run()
    finally:
        for hook in hooks:
            hook.remove()
    for name, layer in layers:
        out = outputs[name].transpose(0, 1).flatten(1)  # (channels, batch·positions)
        assert torch.allclose(out.mean(1), torch.zeros_like(out[:, 0]), atol=1e-9), name
        assert torch.allclose(out.std(1, unbiased=False), torch.full_like(out[:, 0], layer.init_scale), rtol=1e-6), name


def _assert_gradients_reach_every_parameter(module: torch.nn.Module, loss: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    loss.backward()
    missing = [n for n, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing[:5]}"


# --- pixelcnn-layer --------------------------------------------------------------------------------


def _layer_variants(spec) -> list[dict]:
    """The contexts a layer of its stream and kind is built with: conv (stride 1, shifted, stride 2), deconv, 1×1."""
    probe = spec.build(example_settings(spec), in_channels=2, out_channels=2)
    if probe.transposed:
        return [dict(stride=2)]
    if probe.stream == "pointwise":
        return [dict()]
    return [dict(), dict(shift_output=True), dict(stride=2)]


def _layers(spec, in_channels: int = 3, out_channels: int = 4, **extra):
    for context in _layer_variants(spec):
        layer = spec.build(
            example_settings(spec), in_channels=in_channels, out_channels=out_channels, **context, **extra
        )
        yield context, _perturb(layer.to(DTYPE))


def _scales(layer) -> tuple[int, int]:
    """(output scale, input scale): how many fine-grid pixels one position of each covers."""
    if layer.stride == 1:
        return 1, 1
    return (1, layer.stride) if layer.transposed else (layer.stride, 1)


def _input_size(layer) -> int:
    return SIZE // 2 if layer.transposed else SIZE


@pytest.mark.parametrize("spec", plugin_params(LAYER))
def test_pixelcnn_layer_output_has_the_promised_resolution(spec):
    for context, layer in _layers(spec):
        n = _input_size(layer)
        out_scale, in_scale = _scales(layer)
        y = layer(_random(2, 3, n, n))
        assert y.shape == (2, 4, n * in_scale // out_scale, n * in_scale // out_scale), context


@pytest.mark.parametrize("spec", plugin_params(LAYER))
def test_pixelcnn_layer_sees_only_what_its_stream_allows(spec):
    for context, layer in _layers(spec):
        n = _input_size(layer)
        reach = dependency_map(layer, _random(1, 3, n, n))
        out_scale, in_scale = _scales(layer)
        m = n * in_scale // out_scale
        out_row, out_col = (
            (torch.arange(m * m)[:, None] // m) * out_scale,
            (torch.arange(m * m)[:, None] % m) * out_scale,
        )
        in_row, in_col = (torch.arange(n * n)[None] // n) * in_scale, (torch.arange(n * n)[None] % n) * in_scale
        shifted = int(layer.shift_output)
        if layer.stream == "pointwise":
            allowed = (out_row == in_row) & (out_col == in_col)
        elif layer.stream == "vertical":
            allowed = in_row <= out_row - shifted
        else:
            allowed = (in_row <= out_row) & (in_col <= out_col - shifted)
        assert reach.any(), context
        assert not (reach & ~allowed).any(), f"{context}: outputs see inputs their stream forbids"


@pytest.mark.parametrize("spec", plugin_params(LAYER))
@pytest.mark.parametrize("pre", [None, concat_elu], ids=["plain", "concat_elu"])
def test_pixelcnn_layer_at_one_row_or_position_equals_the_full_pass(spec, pre):
    for context, layer in _layers(spec, in_channels=6 if pre else 3):
        n = _input_size(layer)
        x = _random(2, 3, n, n, seed=2)
        full = layer(pre(x) if pre else x)
        for row in range(full.shape[-2]):
            assert torch.allclose(layer.at(x, row, pre=pre), full[:, :, row : row + 1], atol=1e-12), (context, row)
            for col in range(full.shape[-1]):
                got = layer.at(x, row, col, pre=pre)
                assert torch.allclose(got, full[:, :, row : row + 1, col : col + 1], atol=1e-12), (context, row, col)


@pytest.mark.parametrize("spec", plugin_params(LAYER))
@pytest.mark.parametrize("init_scale", [1.0, 0.1])
def test_pixelcnn_layer_initialises_from_one_batch_to_mean_zero_and_std_init_scale(spec, init_scale):
    for _, layer in _layers(spec, init_scale=init_scale):
        n = _input_size(layer)
        x = _random(16, 3, n, n, seed=3) * 2 + 1
        _assert_initialised_from_data(layer, lambda layer=layer, x=x: layer(x))


@pytest.mark.parametrize("spec", plugin_params(LAYER))
def test_pixelcnn_layer_gradients_reach_every_parameter(spec):
    for _, layer in _layers(spec):
        n = _input_size(layer)
        _assert_gradients_reach_every_parameter(layer, layer(_random(2, 3, n, n)).square().sum())


# --- pixelcnn-block --------------------------------------------------------------------------------

CHANNELS, CLASSES = 4, 3
STREAMS = {"vertical": "down-shifted-conv", "horizontal": "down-right-shifted-conv"}


def _block(spec, stream: str, aux: int, dropout: float = 0.0, num_classes: int = CLASSES):
    block = spec.build(
        example_settings(spec), channels=CHANNELS, conv=ComponentRef(STREAMS[stream]), skip=ComponentRef("nin"),
        aux_channels=aux * CHANNELS, dropout=dropout, num_classes=num_classes,
    )  # fmt: skip
    assert block.stream == stream
    return _perturb(block.to(DTYPE))


def _block_inputs(aux: int, batch: int = 2, seed: int = 4):
    x = _random(batch, CHANNELS, SIZE, SIZE, seed=seed)
    maps = tuple(_random(batch, CHANNELS, SIZE, SIZE, seed=seed + 1 + k) for k in range(aux))
    condition = torch.nn.functional.one_hot(torch.arange(batch) % CLASSES, CLASSES).to(DTYPE)
    return x, maps, condition


BLOCK_CASES = [(stream, aux) for stream in STREAMS for aux in (0, 1, 2)]


@pytest.mark.parametrize("spec", plugin_params(BLOCK))
@pytest.mark.parametrize("stream,aux", BLOCK_CASES)
def test_pixelcnn_block_keeps_the_shape(spec, stream, aux):
    block = _block(spec, stream, aux)
    x, maps, condition = _block_inputs(aux)
    assert block(x, torch.cat(maps, 1) if maps else None, condition).shape == x.shape


@pytest.mark.parametrize("spec", plugin_params(BLOCK))
@pytest.mark.parametrize("stream", list(STREAMS))
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_pixelcnn_block_sees_only_what_its_stream_allows_in_input_and_auxiliary_input(spec, stream, train):
    block = _block(spec, stream, 1).train(train)
    x, (a,), condition = _block_inputs(1, batch=1)
    pos = torch.arange(SIZE * SIZE)
    row, col = pos // SIZE, pos % SIZE
    above = row[None] <= row[:, None]
    allowed = above if stream == "vertical" else above & (col[None] <= col[:, None])
    for reach in (
        dependency_map(lambda v: block(v, a, condition), x),
        dependency_map(lambda v: block(x, v, condition), a),
    ):
        assert not (reach & ~allowed).any()


@pytest.mark.parametrize("spec", plugin_params(BLOCK))
@pytest.mark.parametrize("stream,aux", BLOCK_CASES)
def test_pixelcnn_block_at_rows_or_positions_in_raster_order_equals_the_full_pass(spec, stream, aux):
    block = _block(spec, stream, aux).eval()
    x, maps, condition = _block_inputs(aux)
    with torch.no_grad():
        full = block(x, torch.cat(maps, 1) if maps else None, condition)
        cache = block.new_cache(x)
        for row in range(SIZE):
            for col in [None] if stream == "vertical" else range(SIZE):
                got = block.at(x, maps, cache, row, col, condition)
                want = full[:, :, row : row + 1] if col is None else full[:, :, row : row + 1, col : col + 1]
                assert torch.allclose(got, want, atol=1e-12), (row, col)


@pytest.mark.parametrize("spec", plugin_params(BLOCK))
@pytest.mark.parametrize("stream", list(STREAMS))
def test_pixelcnn_block_initialises_from_one_batch(spec, stream):
    block = _block(spec, stream, 1).train()
    x, (a,), condition = _block_inputs(1, batch=16)
    _assert_initialised_from_data(block, lambda: block(x, a, condition))


@pytest.mark.parametrize("spec", plugin_params(BLOCK))
def test_pixelcnn_block_dropout_acts_in_train_mode_only(spec):
    block = _block(spec, "horizontal", 1, dropout=0.5)
    x, (a,), condition = _block_inputs(1)
    block.eval()
    assert torch.equal(block(x, a, condition), block(x, a, condition))
    block.train()
    torch.manual_seed(0)
    assert not torch.equal(block(x, a, condition), block(x, a, condition))


@pytest.mark.parametrize("spec", plugin_params(BLOCK))
@pytest.mark.parametrize("stream", list(STREAMS))
def test_pixelcnn_block_gradients_reach_every_parameter(spec, stream):
    block = _block(spec, stream, 2)
    x, maps, condition = _block_inputs(2)
    _assert_gradients_reach_every_parameter(block, block(x, torch.cat(maps, 1), condition).square().sum())


# --- pixelcnn-network ------------------------------------------------------------------------------

OUT = 9


def _network(spec, channels: int = 3, num_classes: int = 0, dropout: float = 0.0):
    network = spec.build(
        example_settings(spec), in_channels=channels, out_channels=OUT, nr_resnet=1, nr_filters=4, dropout=dropout,
        num_classes=num_classes,
    )  # fmt: skip
    return _perturb(network.to(DTYPE), seed=5)


def _images(batch: int, channels: int = 3, seed: int = 6) -> torch.Tensor:
    levels = torch.randint(0, 256, (batch, channels, SIZE, SIZE), generator=torch.Generator().manual_seed(seed))
    return levels.to(DTYPE) / 127.5 - 1


@pytest.mark.parametrize("spec", plugin_params(NETWORK))
def test_pixelcnn_network_maps_images_to_parameters_at_every_pixel(spec):
    network = _network(spec)
    assert network(_images(2)).shape == (2, OUT, SIZE, SIZE)
    assert SIZE % network.row_multiple == 0


@pytest.mark.parametrize("spec", plugin_params(NETWORK))
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_pixelcnn_network_output_at_a_pixel_depends_on_no_later_pixel_nor_itself(spec, train):
    network = _network(spec).train(train)
    reach = dependency_map(network, _images(1))
    assert len(future_dependencies(reach)) == 0
    assert reach[1:].any(1).all(), "every pixel but the first sees some earlier pixel"


@pytest.mark.parametrize("spec", plugin_params(NETWORK))
@pytest.mark.parametrize("channels,num_classes", [(3, 0), (1, 2)])
def test_pixelcnn_network_incremental_evaluation_in_raster_order_equals_the_full_pass(spec, channels, num_classes):
    network = _network(spec, channels, num_classes).eval()
    images = _images(2, channels)
    condition = torch.eye(2, dtype=DTYPE) if num_classes else None
    with torch.no_grad():
        full = network(images, condition)
        state = network.incremental(torch.zeros_like(images), condition)
        for i in range(SIZE):
            for j in range(SIZE):
                got = state.params_at(i, j)
                assert torch.allclose(got, full[:, :, i : i + 1, j : j + 1], atol=1e-12), (i, j)
                state.write(i, j, images[:, :, i : i + 1, j : j + 1])


@pytest.mark.parametrize("spec", plugin_params(NETWORK))
def test_pixelcnn_network_initialises_from_one_batch(spec):
    network = _network(spec).train()
    images = _images(16)
    _assert_initialised_from_data(network, lambda: network(images))


@pytest.mark.parametrize("spec", plugin_params(NETWORK))
def test_pixelcnn_network_gradients_reach_every_parameter(spec):
    network = _network(spec, num_classes=2)
    condition = torch.eye(2, dtype=DTYPE)
    _assert_gradients_reach_every_parameter(network, network(_images(2), condition).square().sum())
