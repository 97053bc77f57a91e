"""``genkit convert flowpp``: official variables in, a model directory out, one-line errors for what does not fit."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from flowpp_helpers import FIXTURE, TINY_RECIPE, expected, fixture_images, tiny_recipe

from genkit.cli import main
from genkit.errors import CheckpointError
from genkit.pretrained import load_model_dir
from genkit_plugins.flowpp.convert import EMA_SUFFIX, convert_official

NAME = "MixLogisticAttnCoupling_4/proj_in/W"


def variables() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURE / "variables.npz"))


def write(tmp_path, data: dict, name: str = "variables.npz"):
    path = tmp_path / name
    np.savez(path, **data)
    return path


def test_convert_writes_a_model_directory_that_reproduces_the_fixture(tmp_path, capsys):
    out = tmp_path / "tiny"
    assert (
        main(["convert", "flowpp", str(FIXTURE / "variables.npz"), "--recipe", str(TINY_RECIPE), "--out", str(out)])
        == 0
    )
    assert "432,320 parameters" in capsys.readouterr().out
    model = load_model_dir(out, dtype=torch.float64)
    with torch.no_grad():
        nll = model(fixture_images(), latents="mean").nll
    reference = np.array(expected()["per_image_eps_zero"]["total_log_likelihood_bound_nats"]) / -192
    np.testing.assert_allclose(nll.numpy(), reference, rtol=1e-9)


def test_a_missing_variable_is_named(tmp_path):
    data = variables()
    del data[NAME]
    with pytest.raises(CheckpointError, match=f"missing variable '{NAME}'") as error:
        convert_official(write(tmp_path, data), tiny_recipe())
    assert "\n" not in str(error.value)


def test_a_mis_shaped_variable_is_named_with_both_shapes(tmp_path):
    data = variables()
    data[NAME] = np.zeros((3, 3, 3, 17), np.float32)
    with pytest.raises(
        CheckpointError,
        match=r"'MixLogisticAttnCoupling_4/proj_in/W' has shape \(3, 3, 3, 17\), "
        r"the recipe's model expects \(3, 3, 3, 16\)",
    ):
        convert_official(write(tmp_path, data), tiny_recipe())


def test_a_variable_the_recipe_has_no_layer_for_is_named(tmp_path):
    data = variables()
    data["MixLogisticAttnCoupling_13/proj_in/W"] = data[NAME]
    with pytest.raises(CheckpointError, match="unexpected variable 'MixLogisticAttnCoupling_13/proj_in/W'"):
        convert_official(write(tmp_path, data), tiny_recipe())


def test_a_file_that_is_not_an_npz_fails_in_one_line(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        convert_official(path, tiny_recipe())


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is not None, reason="TensorFlow is installed")
def test_a_tensorflow_checkpoint_without_tensorflow_says_what_to_install(tmp_path, capsys):
    (tmp_path / "model-300000.index").write_bytes(b"")  # a checkpoint's prefix: model-300000.index beside it
    recipe = ["--recipe", str(TINY_RECIPE), "--out", str(tmp_path / "out")]
    assert main(["convert", "flowpp", str(tmp_path / "model-300000"), *recipe]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "needs TensorFlow" in err and "pip install 'genkit-torch[tensorflow]'" in err


@pytest.mark.parametrize("name", ["model.th", "model-300000", "folder"])
def test_a_source_that_is_neither_an_npz_nor_a_tensorflow_checkpoint_says_what_is_read(tmp_path, capsys, name):
    source = tmp_path / name
    source.mkdir() if name == "folder" else source.write_text("hello, not a checkpoint")
    recipe = ["--recipe", str(TINY_RECIPE), "--out", str(tmp_path / "out")]
    assert main(["convert", "flowpp", str(source), *recipe]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs TensorFlow" not in err
    assert f"{source}: neither an .npz of TensorFlow variable names to arrays nor a TensorFlow checkpoint" in err


def test_moving_averages_are_preferred_and_optimizer_slots_ignored(tmp_path):
    data = variables()
    shifted = {f"{k}{EMA_SUFFIX}": v + 1 for k, v in data.items()}
    slots = {f"{k}/Adam": v for k, v in list(data.items())[:3]} | {"beta1_power": np.float32(0.9), "global_step": 7}
    path = write(tmp_path, data | shifted | slots)
    averaged, notes = convert_official(path, tiny_recipe())
    raw, raw_notes = convert_official(path, tiny_recipe(), ema=False)
    key = "flow.stages.0.steps.0.coupling.net.proj_in.bias"
    assert torch.equal(averaged[key], raw[key] + 1)
    assert notes and "moving averages" in notes[0] and raw_notes == []


def test_the_official_layouts_become_genkits():
    state, _ = convert_official(FIXTURE / "variables.npz", tiny_recipe())
    data = variables()
    step = "flow.stages.0.steps.0."  # the main flow's first step: template suffix _4 after the dequantizer's four
    assert np.array_equal(state[step + "coupling.net.proj_in.weight"], data[NAME].transpose(3, 2, 0, 1))
    c2 = data["MixLogisticAttnCoupling_4/block0/conv/c2/W"]
    assert np.array_equal(state[step + "coupling.net.blocks.0.conv.c2.weight"][:, :, 0, 0], c2.T)
    assert np.array_equal(state[step + "norm.g"][1], data["Norm_4/norm1/g"].transpose(2, 0, 1))
    assert np.array_equal(state[step + "pointwise.weight"][0], data["Pointwise_4/W0"].T)
    assert np.array_equal(
        state[step + "coupling.net.pos_emb"], data["MixLogisticAttnCoupling_4/pos_emb"].transpose(2, 0, 1)
    )
    assert np.array_equal(
        state["dequantizer.context.blocks.2.c2.weight"], data["context_proc/c2/c2/W"].transpose(3, 2, 0, 1)
    )


def test_without_a_dequantizer_the_main_flow_takes_the_first_templates_and_affine_couplings_their_own_name():
    """``abl_nodequant.py`` creates the main flow's templates first (``Norm``, ``Pointwise``, …, no suffix);
    ``abl_nomixlog.py`` names its couplings ``AffineAttnCoupling``."""
    from genkit.components import ComponentRef
    from genkit_plugins.flowpp.config import TINY, FlowPPConfig
    from genkit_plugins.flowpp.convert import official_sources
    from genkit_plugins.flowpp.model import FlowPP

    with torch.device("meta"):
        uniform = FlowPP(FlowPPConfig(**TINY, dequantizer=ComponentRef("uniform")))
        affine = FlowPP(FlowPPConfig(**TINY, coupling=ComponentRef("affine")))
    sources = official_sources(uniform)
    assert sources["flow.stages.0.steps.0.norm.g"].names == ("Norm/norm0/g", "Norm/norm1/g")
    assert sources["flow.stages.3.steps.2.pointwise.weight"].names == ("Pointwise_8/W0", "Pointwise_8/W1")
    assert not any(key.startswith("dequantizer.") for key in sources)
    names = official_sources(affine)["flow.stages.0.steps.0.coupling.net.proj_out.weight"].names
    assert names == ("AffineAttnCoupling_4/proj_out/W",)


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.complex64])
def test_a_variable_that_is_not_floating_point_is_named_and_never_cast(tmp_path, capsys, dtype):
    data = variables()
    data[NAME] = data[NAME].astype(dtype)
    capsys.readouterr()
    out = tmp_path / "model"
    assert main(["convert", "flowpp", str(write(tmp_path, data)), "--recipe", str(TINY_RECIPE), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"variable '{NAME}' is {np.dtype(dtype)}, not floating point" in err and len(err.splitlines()) == 1
    assert not out.exists()
