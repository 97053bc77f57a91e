"""Recipes resolve to frozen attrs classes; every mistake is reported with file, key, expectation and finding."""

from __future__ import annotations

import attrs
import pytest

from genkit.errors import ConfigError, PluginError, RecipeError
from genkit.recipe import TrainConfig, load_recipe, recipe_from_dict, recipe_to_dict, save_recipe

BASE = """
[model]
name = "toy"
width = 16

[model.posterior]
name = "toy-latent"
scale = 2.0

[data]
name = "toy-data"

[train]
lr = 1e-3
steps = 10
"""


@pytest.fixture
def recipe_file(tmp_path, toy_registry):
    path = tmp_path / "toy.toml"
    path.write_text(BASE)
    return path


def _error(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_recipe(path, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_recipe_resolves_to_frozen_typed_settings(recipe_file):
    recipe = load_recipe(recipe_file)
    assert recipe.model.name == "toy"
    assert recipe.model.settings.width == 16
    assert recipe.model.settings.posterior.settings.scale == 2.0
    assert recipe.train.lr == 1e-3 and recipe.train.betas == (0.9, 0.9)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        recipe.train.lr = 1.0  # type: ignore[misc]


def test_defaults_fill_in_unnamed_components_with_their_provider(recipe_file):
    recipe = load_recipe(recipe_file)
    assert recipe.model.provider == "genkit-torch"
    assert recipe.model.settings.posterior.provider == "genkit-torch"


def test_unknown_key_names_file_and_key_path(recipe_file):
    recipe_file.write_text(BASE.replace("steps = 10", "stepz = 10"))
    message = _error(recipe_file)
    assert str(recipe_file) in message and "train.stepz" in message and "unknown key" in message


def test_unknown_key_in_a_plugin_table(recipe_file):
    recipe_file.write_text(BASE.replace("scale = 2.0", "scael = 2.0"))
    message = _error(recipe_file)
    assert "model.posterior.scael" in message and "scale" in message


@pytest.mark.parametrize(
    "old,new,key,expected,found",
    [
        ("steps = 10", 'steps = "10"', "train.steps", "an integer", "'10'"),
        ("steps = 10", "steps = 10.5", "train.steps", "an integer", "10.5 (float)"),
        ("steps = 10", "steps = true", "train.steps", "an integer", "true (bool)"),
        ("lr = 1e-3", 'lr = "fast"', "train.lr", "a number", "'fast'"),
        ("width = 16", "width = [16]", "model.width", "an integer", "an array of 1"),
    ],
)
def test_wrong_type_names_key_expected_and_found(recipe_file, old, new, key, expected, found):
    recipe_file.write_text(BASE.replace(old, new))
    message = _error(recipe_file)
    assert f"{key}: expected {expected}, found {found}" in message


@pytest.mark.parametrize(
    "old,new,key,expected",
    [
        ("lr = 1e-3", "lr = -1.0", "train.lr", "a value > 0"),
        ("steps = 10", "steps = -3", "train.steps", "a value >= 0"),
        ("scale = 2.0", "scale = 0.0", "model.posterior.scale", "a value > 0"),
        ("width = 16", "width = 15", "model.width", "an even number"),
    ],
)
def test_out_of_range_value_names_key_and_range(recipe_file, old, new, key, expected):
    recipe_file.write_text(BASE.replace(old, new))
    message = _error(recipe_file)
    assert f"{key}: expected {expected}" in message


def test_literal_choices_are_listed(recipe_file):
    recipe_file.write_text(BASE + 'dtype = "float16"\n')
    assert "train.dtype: expected one of 'float32', 'bfloat16', found 'float16'" in _error(recipe_file)


def test_unknown_plugin_lists_available_names_and_closest_match(recipe_file):
    recipe_file.write_text(BASE.replace('name = "toy-latent"', 'name = "toy-latnet"'))
    message = _error(recipe_file)
    assert "model.posterior.name" in message
    assert "unknown latent plugin 'toy-latnet'" in message
    assert "did you mean 'toy-latent'" in message


def test_missing_plugin_with_a_provider_says_which_distribution_to_install(recipe_file):
    recipe_file.write_text(BASE.replace('name = "toy-latent"', 'name = "iaf"\nprovider = "genkit-iaf"'))
    message = _error(recipe_file)
    assert "pip install genkit-iaf" in message


def test_a_recipe_must_name_its_model(recipe_file):
    # The core has no default model family: a recipe that names none is an error, not a silent choice.
    recipe_file.write_text('[data]\nname = "toy-data"\n\n[train]\nsteps = 10\n')
    message = _error(recipe_file)
    assert "toy.toml: model: expected a model plugin's name (missing)" in message


def test_invalid_toml_is_one_line(recipe_file):
    recipe_file.write_text("[model\nname=")
    assert "not valid TOML" in _error(recipe_file)


def test_missing_recipe_file(tmp_path):
    assert "recipe file not found" in _error(tmp_path / "nope.toml")


def test_overrides_are_read_as_toml_values(recipe_file):
    recipe = load_recipe(
        recipe_file, ["train.lr=5e-4", "train.betas=[0.8, 0.95]", "model.label=plain text", "train.compile=true"]
    )
    assert recipe.train.lr == 5e-4
    assert recipe.train.betas == (0.8, 0.95)
    assert recipe.model.settings.label == "plain text"
    assert recipe.train.compile is True


def test_override_turns_a_component_name_into_a_table(recipe_file):
    recipe_file.write_text(
        BASE.replace('[model.posterior]\nname = "toy-latent"\nscale = 2.0\n', 'posterior = "toy-latent"\n')
    )
    recipe = load_recipe(recipe_file, ["model.posterior.scale=3.0"])
    assert recipe.model.settings.posterior.settings.scale == 3.0


def test_override_errors_are_reported_like_recipe_errors(recipe_file):
    assert "train.steps: expected a value >= 0" in _error(recipe_file, ["train.steps=-1"])
    assert "expected KEY=VALUE" in _error(recipe_file, ["train.steps"])


def test_saved_recipe_reloads_to_the_same_settings_and_records_providers(recipe_file, tmp_path):
    recipe = load_recipe(recipe_file, ["train.seed=7"])
    path = save_recipe(recipe, tmp_path / "run")
    again = load_recipe(path)
    assert recipe_to_dict(again, provenance=False) == recipe_to_dict(recipe, provenance=False)
    assert again.train == recipe.train
    provenance = recipe_to_dict(recipe)["plugins"]
    assert {"kind": "latent", "name": "toy-latent", "provider": "genkit-torch"}.items() <= provenance[1].items()


def test_recipe_from_dict_fills_every_train_default(toy_registry):
    recipe = recipe_from_dict({"model": {"name": "toy"}, "data": {"name": "toy-data"}})
    assert recipe.train == TrainConfig()


def test_recipe_error_carries_its_parts():
    error = RecipeError("r.toml", "train.lr", "a number", "x")
    assert (error.file, error.key, error.expected, error.found) == ("r.toml", "train.lr", "a number", "x")
    assert str(error) == "r.toml: train.lr: expected a number, found 'x'"


def test_plugin_error_is_a_config_error():
    assert issubclass(PluginError, ConfigError) and ConfigError.exit_code == 2
