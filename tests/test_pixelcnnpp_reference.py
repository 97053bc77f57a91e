"""Converted pclucas14/pixel-cnn-pp checkpoints reproduce the port's numbers (fixtures computed by it in float64).

Each file goes through the command line as a user's would: ``genkit convert pixelcnnpp FILE --recipe
recipes/pixelcnnpp-cifar10.toml --set … --out DIR``, then ``genkit eval DIR --images … --dtype float64
--json …``.

``tests/fixtures/pixelcnnpp-tiny-rgb`` and ``-grey`` (from ``shared/reference/fixtures``): the port's
float64 state dict, the same weights in float32 with DataParallel's ``module.`` prefix, six images
with values 0 and 255, the DMOL parameters of each and log p per image (the port's loss, eval
mode), and every layer's effective weight in the port's orientation. A checkpoint from before
April 2019 (no weight norm on the shifted convolutions) is built here from the float64 one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from locations import FIXTURES, ROOT

from genkit.cli import main
from genkit.errors import CheckpointError
from genkit.pretrained import load_model_dir
from genkit.recipe import recipe_from_dict
from genkit.torchfiles import read_state_dict
from genkit_plugins.pixelcnnpp.convert import EXPECTED, convert_checkpoint

SETTINGS = {
    "rgb": dict(image_size=8, image_channels=3, nr_resnet=1, nr_filters=8, nr_logistic_mix=3),
    "grey": dict(image_size=8, image_channels=1, nr_resnet=1, nr_filters=8, nr_logistic_mix=2),
}
FILES = {
    "float64": "reference-model-float64.th",
    "float32-dataparallel": "reference-model-float32-dataparallel.th",
    "before-april-2019": "before-april-2019.th",
}
RTOL = {"float64": 1e-9, "float32-dataparallel": 1e-5, "before-april-2019": 1e-9}
CIFAR10 = str(ROOT / "recipes" / "pixelcnnpp-cifar10.toml")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The models in these tests are tiny: a second thread only waits at every barrier, for long on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def recipe(name: str, **changes):
    return recipe_from_dict({"model": {"name": "pixelcnnpp", **SETTINGS[name], **changes}})


def fixture_dir(name: str):
    return FIXTURES / f"pixelcnnpp-tiny-{name}"


def images(name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(fixture_dir(name) / "images_uint8.npy"))


def expected(name: str) -> dict:
    return json.loads((fixture_dir(name) / "expected.json").read_text())


def without_weight_norm_on_shifted_convolutions(source, target) -> None:
    """The port before commit 16c8b2f: ``.conv`` layers hold a plain ``weight``; deconvs and nins keep weight norm."""
    state = torch.load(source, weights_only=True)
    for key in [k for k in state if k.endswith(".conv.weight_v")]:
        module = key[: -len("weight_v")]
        v, g = state.pop(key), state.pop(module + "weight_g")
        state[module + "weight"] = g * v / torch.linalg.vector_norm(v, dim=(1, 2, 3), keepdim=True)
    torch.save(state, target)


def cli_settings(name: str) -> list[str]:
    """``--set`` options that turn the CIFAR-10 recipe into the fixture's configuration."""
    return [option for key, value in SETTINGS[name].items() for option in ("--set", f"model.{key}={value}")]


@pytest.fixture(scope="module", params=[(n, f) for n in SETTINGS for f in FILES], ids=lambda p: f"{p[0]}-{p[1]}")
def converted(request, tmp_path_factory):
    """``genkit convert pixelcnnpp`` then ``genkit eval --dtype float64 --json``: (fixture name, file kind, the
    model directory loaded in float64, its DMOL parameters, the per-image NLL that eval wrote)."""
    name, kind = request.param
    work = tmp_path_factory.mktemp(f"{name}-{kind}")
    source = fixture_dir(name) / FILES[kind]
    if kind == "before-april-2019":
        without_weight_norm_on_shifted_convolutions(fixture_dir(name) / FILES["float64"], work / FILES[kind])
        source = work / FILES[kind]
    convert = ["convert", "pixelcnnpp", str(source), "--recipe", CIFAR10, *cli_settings(name), "--out", str(work / "m")]
    assert main(convert) == 0
    evaluate = ["eval", str(work / "m"), "--images", str(fixture_dir(name) / "images_uint8.npy"), "--dtype", "float64"]
    assert main([*evaluate, "--json", str(work / "eval.json")]) == 0
    nll = np.array(json.loads((work / "eval.json").read_text())["nll_nats_per_dim"])
    model = load_model_dir(work / "m", dtype=torch.float64)
    with torch.no_grad():
        params = model.likelihood_params(images(name))
    return name, kind, model, params.numpy(), nll


def test_converted_model_has_the_ports_parameter_count(converted):
    name, _, model, *_ = converted
    assert sum(p.numel() for p in model.parameters()) == expected(name)["n_parameters"]


def test_negative_log_likelihood_of_every_image_matches_the_port(converted):
    name, kind, _, _, nll = converted
    np.testing.assert_allclose(nll, expected(name)["nll_nats_per_dim"], rtol=RTOL[kind], atol=0)


def test_dmol_parameters_of_every_pixel_match_the_port(converted):
    name, kind, _, params, _ = converted
    reference = np.load(fixture_dir(name) / "expected_dmol_params.npy")
    # Float64 weights: every entry to 1e-9 relative. The float32 checkpoint's weights are the float64 ones rounded,
    # which moves entries near zero by more than 1e-5 of themselves: those are held to 1e-5 of the largest entry.
    atol = RTOL[kind] * np.abs(reference).max() if kind == "float32-dataparallel" else 0
    np.testing.assert_allclose(params, reference, rtol=RTOL[kind], atol=atol)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_layers_effective_weight_is_the_ports_in_its_orientation(name):
    """Transposed convolutions too, which the port normalises per input channel and genkit per output channel."""
    from genkit.models import build_model

    the_recipe = recipe(name)
    state, _ = convert_checkpoint(fixture_dir(name) / FILES["float64"], the_recipe)
    model = build_model(the_recipe).double()
    model.load_state_dict(state)
    reference = np.load(fixture_dir(name) / "effective-weights-float64.npz")
    modules = dict(model.network.named_modules())
    for key in reference:
        path, what = key.rsplit(".", 1)
        op = modules[path.replace(".lin_a", ".linear")]
        got = op.weight() if what == "weight" else op.b
        np.testing.assert_allclose(got.detach().numpy(), reference[key], rtol=1e-12, atol=1e-15, err_msg=key)


def test_keys_of_the_dataparallel_file_lose_their_module_prefix():
    state = read_state_dict(fixture_dir("rgb") / FILES["float32-dataparallel"], EXPECTED)
    assert set(state) == set(expected("rgb")["state_dict_keys"])


# --- one-line errors for files that are not the recipe's model ---------------------------------------


def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_a_file_that_is_not_a_checkpoint_fails_in_one_line(tmp_path):
    path = tmp_path / "notes.th"
    path.write_text("not a checkpoint")
    with pytest.raises(CheckpointError) as excinfo:
        convert_checkpoint(path, recipe("rgb"))
    assert "not a PyTorch state dict" in _one_line(excinfo)


def test_a_missing_file_fails_in_one_line(tmp_path):
    with pytest.raises(CheckpointError) as excinfo:
        convert_checkpoint(tmp_path / "absent.th", recipe("rgb"))
    assert "not found" in _one_line(excinfo)


def test_a_checkpoint_of_other_settings_fails_naming_the_tensors_and_the_settings_the_file_has():
    with pytest.raises(CheckpointError) as excinfo:
        convert_checkpoint(fixture_dir("rgb") / FILES["float64"], recipe("rgb", nr_filters=16, nr_resnet=2))
    message = _one_line(excinfo)
    assert (
        "missing 99 tensors" in message and "mis-shaped" in message and "up_layers.0.u_stream.1.conv_input" in message
    )
    assert "model.nr_resnet = 1, model.nr_filters = 8, model.nr_logistic_mix = 3, model.image_channels = 3" in message


def test_missing_tensors_are_named(tmp_path):
    state = torch.load(fixture_dir("rgb") / FILES["float64"], weights_only=True)
    del state["nin_out.lin_a.bias"], state["u_init.conv.weight_g"]
    torch.save(state, tmp_path / "partial.th")
    with pytest.raises(CheckpointError) as excinfo:
        convert_checkpoint(tmp_path / "partial.th", recipe("rgb"))
    message = _one_line(excinfo)
    assert "nin_out.lin_a.bias is missing" in message or "u_init.conv" in message


def test_a_tensor_the_port_does_not_have_is_named(tmp_path):
    state = torch.load(fixture_dir("rgb") / FILES["float64"], weights_only=True)
    state["u_init.bn.running_mean"] = torch.zeros(8, dtype=torch.float64)
    torch.save(state, tmp_path / "batchnorm.th")
    with pytest.raises(CheckpointError) as excinfo:
        convert_checkpoint(tmp_path / "batchnorm.th", recipe("rgb"))
    assert "u_init.bn.running_mean" in _one_line(excinfo)
