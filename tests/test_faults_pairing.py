"""Figures that cannot be right are refused: a model scored on data of another depth or shape, a data set whose
pixels are not what it declares, a test set reported as validation, an evaluation the model cannot give.

Each pairing stops in one line (exit 2) before any work, wherever the model meets the data: ``genkit run``,
``genkit eval --split`` and ``genkit rates --split`` of a model directory, and the guard of ``genkit bench``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tomllib

import attrs
import numpy as np
import pytest
import torch
from fault_helpers import error_lines, one_line, tiny_recipe, trained_tiny, write_images
from locations import ROOT

from genkit.cli import main
from genkit.errors import ConfigError
from genkit.hookspecs import hookimpl
from genkit.interfaces import ImageDataset
from genkit.schema import in_range


@attrs.frozen
class OddSettings:
    bits: int = attrs.field(default=8, validator=in_range(0))
    wide: bool = False  # int16 images with values beyond 255, instead of uint8 ones


class OddImages(ImageDataset):
    """8×8 one-channel images that declare any depth, and may hold pixels beyond 8 bits."""

    image_shape = (8, 8, 1)

    def __init__(self, settings: OddSettings):
        self.bits = settings.bits
        images = torch.arange(16 * 64).reshape(16, 8, 8, 1)
        self.images = images.to(torch.int16) if settings.wide else (images % 256).to(torch.uint8)

    def split(self, name):
        return self.images


@hookimpl
def genkit_register_datasets(register):
    register("odd", OddImages, config=OddSettings)


@pytest.fixture(autouse=True)
def odd_registry():
    """The built-in plugins, the engine tests' ``pixels`` model and this module's ``odd`` data set."""
    import engine_plugins

    from genkit.registry import Registry, make_plugin_manager, reset_registry, set_registry

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(engine_plugins, name="engine_plugins")
    pm.register(sys.modules[__name__], name="pairing_plugins")
    set_registry(Registry(pm))
    yield
    reset_registry()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A two-step ``pixels`` model on the digits, and model directories whose config.json names other data."""
    import engine_plugins

    from genkit.registry import reset_registry

    engine_plugins.install_registry()
    world = trained_tiny(tmp_path_factory.mktemp("pairing"))
    config = json.loads((world["model"] / "config.json").read_text())
    folder = world["root"] / "rgb"
    for split in ("train", "validation", "test"):
        write_images(folder / split, 4, size=(8, 8, 3))
    other_data = {
        "five-bit": {"name": "digits", "bits": 5},
        "three-channels": {"name": "image-folder", "root": str(folder), "channels": 3},
    }
    for name, data in other_data.items():
        shutil.copytree(world["model"], world["root"] / name)
        (world["root"] / name / "config.json").write_text(json.dumps({**config, "data": data}))
    reset_registry()
    return world


def run_line(capsys, recipe: str, *sets: str, out) -> str:
    capsys.readouterr()
    command = ["run", recipe, "--out", str(out)]
    for text in (*sets, "train.steps=1"):  # should the pairing be let through, the test fails fast
        command += ["--set", text]
    assert main(command) == 2
    line = one_line(capsys)
    assert not out.exists()  # refused before anything was written
    return line


@pytest.mark.parametrize(
    "recipe, sets, phrase",
    [
        ("digits", ["model.bits=5"], "the vdvae model is built for 5-bit images and the digits images are 8-bit"),
        ("flowpp-digits", ["data.bits=8"], "the flowpp model is built for 5-bit images and the digits images are 8"),
        ("pixelcnnpp-digits", ["data.bits=5"], "the pixelcnnpp model is built for 8-bit images and the digits images"),
    ],
    ids=["vdvae-5-on-8", "flowpp-5-on-8", "pixelcnnpp-8-on-5"],
)
def test_run_refuses_a_model_whose_bit_depth_is_not_the_data_sets(tmp_path, capsys, recipe, sets, phrase):
    line = run_line(capsys, str(ROOT / "recipes" / f"{recipe}.toml"), *sets, out=tmp_path / "run")
    assert phrase in line and "give [model] and [data] the same bit depth" in line, line
    assert "--set" in line  # the recipe with the options that made it so


def test_run_refuses_images_of_another_number_of_channels(tmp_path, capsys):
    recipe = tmp_path / "rgb.toml"
    recipe.write_text(tiny_recipe(tmp_path / "runs", channels=3))
    line = run_line(capsys, str(recipe), out=tmp_path / "run")
    assert "the digits images are (8, 8, 1) (H, W, C) but the model is built for (8, 8, 3)" in line


@pytest.mark.parametrize(
    "data, phrase",
    [
        ('name = "odd"\nbits = 9', "the odd data set declares 9 bits per channel; genkit's pixels are uint8, of 1"),
        ('name = "odd"\nbits = 0', "the odd data set declares 0 bits per channel"),
        ('name = "odd"\nwide = true', "the odd data set gives torch.int16 (8, 8, 1) images where it declares uint8"),
    ],
    ids=["nine-bits", "no-bits", "pixels-beyond-8-bits"],
)
def test_run_refuses_a_data_set_whose_pixels_are_not_of_the_depth_it_declares(tmp_path, capsys, data, phrase):
    recipe = tmp_path / "odd.toml"
    recipe.write_text(tiny_recipe(tmp_path / "runs", data=data))
    assert phrase in run_line(capsys, str(recipe), out=tmp_path / "run")


def test_run_refuses_importance_samples_on_a_model_without_that_bound_before_training(tmp_path, capsys):
    line = run_line(
        capsys, str(ROOT / "recipes" / "pixelcnnpp-digits.toml"), "eval.importance_samples=4", out=tmp_path / "run"
    )
    assert "eval.importance_samples = 4 needs a model with an importance-weighted bound, and a PixelCNNPP" in line


def test_run_refuses_to_report_a_test_set_as_the_validation_figure(tmp_path, capsys):
    from fault_helpers import write_cifar10

    write_cifar10(tmp_path / "cifar" / "cifar-10-python.tar.gz", n_train=20, n_test=5)
    recipe = tmp_path / "cifar.toml"
    data = f'name = "cifar10"\nroot = "{tmp_path / "cifar"}"\nmd5 = ""\ndownload = false\nvalidation_size = 0'
    recipe.write_text(tiny_recipe(tmp_path / "runs", data=data, image_size=32, channels=3))
    line = run_line(capsys, str(recipe), "eval.split=validation", out=tmp_path / "run")
    assert "has no validation images of its own (its validation split is its test set)" in line
    assert "evaluate the split 'test'" in line


@pytest.mark.parametrize("command", ["eval", "rates"])
@pytest.mark.parametrize(
    "directory, phrase",
    [
        ("five-bit", "the pixels model is built for 8-bit images and the digits images are 5-bit"),
        ("three-channels", "the image-folder images are (8, 8, 3) (H, W, C) but the model is built for (8, 8, 1)"),
    ],
)
def test_a_model_directory_evaluated_on_the_data_its_config_names_must_fit_it(tiny, capsys, command, directory, phrase):
    capsys.readouterr()
    assert main([command, str(tiny["root"] / directory), "--split", "test"]) == 2
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert len(lines) == 1 and phrase in lines[0] and str(tiny["root"] / directory) in lines[0], lines
    assert not captured.out  # no figure


def test_the_bench_guard_refuses_a_model_whose_bit_depth_is_not_the_data_sets():
    from genkit.bench import run_benchmark
    from genkit.recipe import load_recipe

    recipe = load_recipe(ROOT / "recipes" / "flowpp-digits.toml", ["data.bits=8"])
    with pytest.raises(ConfigError, match="the flowpp model is built for 5-bit images and the digits images are 8"):
        run_benchmark(recipe, batch=2, steps=1, warmup=0, count_flops=False)


def test_images_of_the_declared_depth_and_shape_are_accepted(tmp_path):
    """The check refuses only what is wrong: the same data set, declared at 8 bits with uint8 pixels, trains."""
    from genkit.engine.trainer import train
    from genkit.recipe import recipe_from_dict

    raw = tomllib.loads(tiny_recipe(tmp_path / "runs", data='name = "odd"\nbits = 8'))
    result = train(recipe_from_dict(raw, file="odd.toml"), run_dir=tmp_path / "run")
    assert result.step == 2 and np.isfinite(result.final["bits_per_dim"])


def test_push_refuses_results_of_a_model_that_reports_another_figure(tiny, tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "ENDPOINT", "http://127.0.0.1:9")  # never reached: the check comes first
    results = tmp_path / "eval.json"
    results.write_text(json.dumps({"split": "test", "bits_per_dim": 1.5, "objective": "exact negative log-likelihood"}))
    capsys.readouterr()
    assert main(["push", str(tiny["model"]), "someone/model", "--eval", str(results), "--samples", "0"]) == 2
    line = one_line(capsys)
    assert "its figure is 'exact negative log-likelihood', and this PixelModel's is 'negative ELBO'" in line
