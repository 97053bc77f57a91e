"""Weights are checked as they will be used: cast to the model's dtype before the finiteness check, and a model whose
outputs are not finite draws no image; the message for figures that are not finite says what the model's directory
records of its training instead of blaming a learning rate it never had."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from fault_helpers import one_line
from locations import ROOT

from genkit.cli import main
from genkit.errors import DivergedError
from genkit.models import build_model
from genkit.pretrained import load_model_dir, save_pretrained
from genkit.recipe import load_recipe

DIGITS = ROOT / "recipes" / "digits.toml"
#: a weight in each family's last layer that makes its outputs overflow float32 (3e38 is finite, its products not)
OVERFLOWING = {
    "digits": "decoder.out_net.out_conv.weight",
    "pixelcnnpp-digits": "network.nin_out.linear.g",
    "flowpp-digits": "flow.stages.3.steps.2.coupling.net.proj_out.bias",
}
SMALLER = {"pixelcnnpp-digits": ["model.nr_filters=8", "model.nr_resnet=1"]}  # it draws its pixels one by one


def digits_model() -> torch.nn.Module:
    """The digits recipe's VDVAE, untrained."""
    torch.manual_seed(0)
    return build_model(load_recipe(DIGITS))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "images.npy"
    np.save(path, np.zeros((2, 8, 8, 1), np.uint8))
    return str(path)


# --- checked after the cast ------------------------------------------------------------------------------------


def test_convert_refuses_a_float64_weight_beyond_the_float32_range_naming_the_tensor(tmp_path, capsys):
    state = {k: v.double() for k, v in digits_model().state_dict().items()}
    state["decoder.out_net.out_conv.bias"][0] = 1e39  # finite in float64, infinite in the float32 model
    torch.save(state, tmp_path / "official.th")
    capsys.readouterr()
    out = tmp_path / "model"
    assert main(["convert", "vdvae", str(tmp_path / "official.th"), "--recipe", str(DIGITS), "--out", str(out)]) == 1
    line = one_line(capsys)
    assert "tensor 'decoder.out_net.out_conv.bias' holds 1 of 256 values beyond the range of torch.float32" in line
    assert not (out / "model.safetensors").exists()


def test_a_float64_weight_beyond_the_float32_range_loads_in_float64_and_is_refused_in_float32(tmp_path, capsys):
    model = digits_model().double()
    with torch.no_grad():
        model.decoder.out_net.out_conv.bias[0] = 1e39
    save_pretrained(model, tmp_path / "model", card=False)
    assert load_model_dir(tmp_path / "model", dtype=torch.float64).decoder.out_net.out_conv.bias[0] == 1e39
    capsys.readouterr()
    assert main(["sample", str(tmp_path / "model"), "--n", "1", "--out", str(tmp_path / "s.png")]) == 1
    assert "(finite as torch.float64, infinite once cast)" in one_line(capsys)


# --- no image from outputs that are not finite -------------------------------------------------------------------


@pytest.mark.parametrize("recipe", list(OVERFLOWING))
def test_every_family_refuses_to_draw_from_outputs_that_are_not_finite(recipe):
    torch.manual_seed(0)
    model = build_model(load_recipe(ROOT / "recipes" / f"{recipe}.toml", SMALLER.get(recipe, []))).eval()
    with torch.no_grad():
        model.state_dict()[OVERFLOWING[recipe]].fill_(3e38)
    with pytest.raises(DivergedError, match=r"values its images are drawn from are NaN or infinite"):
        model.sample(2, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory):
    """A model directory of the untrained digits VDVAE whose finite weights overflow: no training history."""
    folder = tmp_path_factory.mktemp("overflowing") / "model"
    model = digits_model()
    with torch.no_grad():
        model.state_dict()[OVERFLOWING["digits"]].fill_(3e38)
    save_pretrained(model, folder, card=False)
    return folder


def test_sample_of_a_model_whose_outputs_are_not_finite_is_one_line_and_writes_nothing(overflowing, tmp_path, capsys):
    capsys.readouterr()
    out, npy = tmp_path / "grid.png", tmp_path / "grid.npy"
    assert main(["sample", str(overflowing), "--n", "4", "--out", str(out), "--npy", str(npy)]) == 1
    line = one_line(capsys)
    assert line.startswith(f"genkit: error: {overflowing}: no image drawn, nothing written: vdvae: ") and (
        "values its images are drawn from are NaN or infinite although its weights are finite" in line
    )
    assert not out.exists() and not npy.exists()


def test_eval_of_a_model_never_trained_says_so_instead_of_blaming_the_learning_rate(overflowing, images, capsys):
    capsys.readouterr()
    assert main(["eval", str(overflowing), "--images", images]) == 1
    line = one_line(capsys)
    assert "its config.json records no training (no step), so no learning rate is to blame" in line
    assert "train.lr" not in line and "diverged" not in line


def test_eval_of_a_converted_model_names_the_file_it_was_converted_from(overflowing, images, tmp_path, capsys):
    config = json.loads((overflowing / "config.json").read_text())
    converted = tmp_path / "converted"
    converted.mkdir()
    (converted / "model.safetensors").write_bytes((overflowing / "model.safetensors").read_bytes())
    (converted / "config.json").write_text(json.dumps({**config, "converted_from": "official.th"}))
    capsys.readouterr()
    assert main(["eval", str(converted), "--images", images]) == 1
    line = one_line(capsys)
    assert "its weights were converted from 'official.th' and never trained by genkit" in line
    assert "train.lr" not in line
