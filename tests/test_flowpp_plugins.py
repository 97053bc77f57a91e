"""Flow++ is built through the registry: a third party's flow layer, split, squeeze or preprocessing takes the
place of the official one where a recipe names it, and the converter refuses such a recipe in one line."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from flowpp_helpers import TINY_RECIPE
from torch import Tensor, nn

from genkit.cli import main
from genkit.components import ComponentRef
from genkit.errors import CheckpointError, ConfigError
from genkit.hookspecs import hookimpl
from genkit.registry import Registry, make_plugin_manager, reset_registry, set_registry
from genkit_plugins.flowpp.config import EXAMPLE, TINY, FlowPPConfig
from genkit_plugins.flowpp.convert import check_official
from genkit_plugins.flowpp.dequantizers import VariationalSettings
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
from genkit_plugins.flowpp.layers import ChannelSplit
from genkit_plugins.flowpp.model import FlowPP

DTYPE = torch.float64


class Shift(FlowLayer):
    """``x + bias`` per channel of each half: volume-preserving."""

    def __init__(self, settings=None, *, channels: int, height: int, width: int):
        super().__init__()
        self.bias = nn.Parameter(0.1 * torch.ones(2, channels, 1, 1))

    def forward(self, pair):
        return (pair[0] + self.bias[0], pair[1] + self.bias[1]), pair[0].new_zeros(pair[0].shape[0])

    def inverse(self, pair):
        return (pair[0] - self.bias[0], pair[1] - self.bias[1]), pair[0].new_zeros(pair[0].shape[0])


class RowSplit(Split):
    """Even rows, odd rows."""

    def __init__(self, settings=None):
        super().__init__()

    def half_shape(self, shape):
        c, h, w = shape
        if h % 2:
            raise StageError(f"the row split needs an even height, found {h}")
        return (c, h // 2, w)

    def split(self, x):
        return x[:, :, 0::2], x[:, :, 1::2]

    def merge(self, a, b):
        return torch.stack((a, b), dim=3).flatten(2, 3)


class PixelUnshuffle(Squeeze):
    """``nn.PixelUnshuffle(2)``: channel ``c·4 + dy·2 + dx``."""

    def __init__(self, settings=None):
        super().__init__()

    def output_shape(self, shape):
        c, h, w = shape
        if h % 2 or w % 2:
            raise StageError(f"pixel unshuffle needs an even height and width, found {h}×{w}")
        return (4 * c, h // 2, w // 2)

    def forward(self, x):
        return F.pixel_unshuffle(x, 2)

    def inverse(self, y):
        return F.pixel_shuffle(y, 2)


class Centre(Preprocess):
    """``v/levels − 1/2``."""

    def __init__(self, settings=None, *, levels: int):
        super().__init__()
        self.levels = levels

    def forward(self, v: Tensor):
        return v / self.levels - 0.5, v.new_full((v.shape[0],), -v[0].numel() * math.log(self.levels))

    def inverse(self, y: Tensor):
        return (y + 0.5) * self.levels, y.new_full((y.shape[0],), y[0].numel() * math.log(self.levels))


class ThirdParty:
    @hookimpl
    def genkit_register_components(self, register):
        register(FLOW_LAYER, "shift", Shift)
        register(FLOW_LAYER, "identity", lambda settings, **context: nn.Identity())
        register(SPLIT, "rows", RowSplit)
        register(SQUEEZE, "pixel-unshuffle", PixelUnshuffle)
        register(PREPROCESS, "centre", Centre)


@pytest.fixture
def third_party():
    pm = make_plugin_manager(load_entry_points=False)
    pm.register(ThirdParty(), name="third_party")
    set_registry(Registry(pm))
    yield
    reset_registry()


def tiny(**settings) -> FlowPP:
    """The contract-test model in float64 with ``settings``, initialised on 16 images."""
    torch.manual_seed(0)
    model = FlowPP(FlowPPConfig(**{**EXAMPLE, **settings})).to(DTYPE)
    model.initialize(images(16, seed=100))
    return model.eval()


def images(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 256, (n, 4, 4, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def rows_dequantizer() -> ComponentRef:
    return ComponentRef("variational", VariationalSettings(couplings=2, context=4, context_blocks=1, split=rows()))


def rows() -> ComponentRef:
    return ComponentRef("rows")


def test_a_third_partys_layers_split_squeeze_and_preprocessing_take_the_place_of_flowpps(third_party):
    model = tiny(
        stages="rows:2,pixel-unshuffle,channel:1", norm=ComponentRef("shift"), preprocess=ComponentRef("centre")
    )
    first, squeeze, last = model.flow.stages
    assert isinstance(model.flow.preprocess, Centre) and isinstance(squeeze, PixelUnshuffle)
    assert isinstance(first.split, RowSplit) and isinstance(last.split, ChannelSplit)
    steps = [*model.flow.steps(), *model.dequantizer.steps]
    assert len(steps) == 5 and all(isinstance(step.norm, Shift) for step in steps)
    assert model.latent_shape == (12, 2, 2)
    x = model.to_float(images(3, seed=1))
    with torch.no_grad():
        v = x + model.dequantizer(x, model.dequantizer.noise(x, "sample", torch.Generator().manual_seed(2)))[0]
        z, logdet = model.flow(v)
        back, inverse_logdet = model.flow.inverse(z)
    assert (back - v).abs().max() < 1e-10 and (logdet + inverse_logdet).abs().max() < 1e-9


def test_the_variational_dequantizer_halves_the_noise_and_the_image_with_its_split_setting(third_party):
    model = tiny(dequantizer=rows_dequantizer())
    assert isinstance(model.dequantizer.split, RowSplit) and isinstance(model.dequantizer.context.split, RowSplit)
    assert model.dequantizer.context.proj.weight.shape[1] == 6  # the two row halves of a 3-channel image
    x = model.to_float(images(3, seed=3))
    with torch.no_grad():
        u, log_q = model.dequantizer(x, model.dequantizer.noise(x, "sample", torch.Generator().manual_seed(4)))
        assert ((u > 0) & (u < 1)).all()
        assert (model.dequantizer.log_prob(x, u) - log_q).abs().max() < 1e-8


def test_a_component_without_its_kinds_interface_fails_in_one_line_naming_it(third_party):
    with pytest.raises(ConfigError, match="flow-layer plugin 'identity' built a Identity, not a FlowLayer"):
        FlowPP(FlowPPConfig(**{**EXAMPLE, "pointwise": ComponentRef("identity")}))


@pytest.mark.parametrize(
    "settings, refusal",
    [
        (dict(norm=ComponentRef("shift")), "model.norm is 'shift'; the conversion needs 'norm'"),
        (dict(pointwise=ComponentRef("norm")), "model.pointwise is 'norm'; the conversion needs 'pointwise'"),
        (dict(preprocess=ComponentRef("centre")), "model.preprocess is 'centre'; the conversion needs 'logit'"),
        (
            dict(stages="rows:4,squeeze,channel:2,checkerboard:3"),
            "model.stages names the split 'rows'; the conversion needs 'checkerboard' or 'channel'",
        ),
        (
            dict(stages="checkerboard:4,pixel-unshuffle,channel:2,checkerboard:3"),
            "model.stages names the squeeze 'pixel-unshuffle'; the conversion needs 'squeeze'",
        ),
        (
            dict(dequantizer=rows_dequantizer()),
            "model.dequantizer.split is 'rows'; the conversion needs 'checkerboard'",
        ),
    ],
)
def test_the_converter_refuses_layers_that_are_not_the_official_ones_naming_the_setting(third_party, settings, refusal):
    with torch.device("meta"):
        model = FlowPP(FlowPPConfig(**{**TINY, **settings}))
    with pytest.raises(CheckpointError) as info:
        check_official(model)
    assert str(info.value) == f"the official variables map only onto the official layers: {refusal}"


def test_genkit_convert_refuses_a_non_official_layer_before_reading_the_source(tmp_path, capsys):
    missing = tmp_path / "variables.npz"  # never read: the refusal comes first
    arguments = ["--recipe", str(TINY_RECIPE), "--set", "model.pointwise=norm", "--out", str(tmp_path / "out")]
    assert main(["convert", "flowpp", str(missing), *arguments]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model.pointwise is 'norm'; the conversion needs 'pointwise'" in err
