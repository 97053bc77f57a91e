"""``extends``: a recipe that starts from another and overrides some of its keys."""

from __future__ import annotations

import pytest
from locations import ROOT

from genkit.errors import RecipeError
from genkit.recipe import load_recipe, recipe_to_dict
from genkit.recipefiles import merge_recipes


def write(path, text):
    path.write_text(text)
    return path


def test_tables_merge_key_by_key_and_values_replace():
    base = {"model": {"name": "vdvae", "width": 8, "zdim": 2}, "train": {"betas": [0.9, 0.9], "lr": 1e-3}}
    child = {"model": {"width": 16}, "train": {"betas": [0.95, 0.9995]}}
    assert merge_recipes(base, child) == {
        "model": {"name": "vdvae", "width": 16, "zdim": 2},
        "train": {"betas": [0.95, 0.9995], "lr": 1e-3},
    }
    assert base["model"]["width"] == 8  # the base is left alone


def test_a_plugin_reference_to_another_plugin_replaces_the_old_settings_instead_of_merging_them():
    base = {"model": {"posterior": {"name": "gaussian", "scale": 1.0}, "prior": "gaussian"}}
    child = {"model": {"posterior": {"name": "iaf", "steps": 2}, "prior": {"scale": 2.0}}}
    merged = merge_recipes(base, child)
    assert merged["model"]["posterior"] == {"name": "iaf", "steps": 2}
    assert merged["model"]["prior"] == {"name": "gaussian", "scale": 2.0}  # same plugin: settings added


def test_a_variant_recipe_resolves_to_its_base_with_its_own_keys(tmp_path):
    base = ROOT / "recipes" / "digits.toml"
    child = write(tmp_path / "variant.toml", f'extends = "{base}"\n[train]\nsteps = 7\n[model]\nzdim = 4\n')
    variant, original = recipe_to_dict(load_recipe(child)), recipe_to_dict(load_recipe(base))
    assert variant["train"]["steps"] == 7 and variant["model"]["zdim"] == 4
    variant["train"]["steps"], variant["model"]["zdim"] = original["train"]["steps"], original["model"]["zdim"]
    assert variant == original
    assert load_recipe(child).name == "variant"


def test_extends_is_relative_to_the_recipe_and_chains(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "a.toml", '[model]\nname = "vdvae"\nwidth = 8\n[train]\nsteps = 1\n')
    write(tmp_path / "sub" / "b.toml", 'extends = "../a.toml"\n[train]\nsteps = 2\n')
    c = write(tmp_path / "c.toml", 'extends = "sub/b.toml"\n[train]\nlr = 1e-3\n')
    recipe = load_recipe(c, ["train.steps=3"])
    assert (recipe.model.settings.width, recipe.train.steps, recipe.train.lr) == (8, 3, 1e-3)


@pytest.mark.parametrize(
    "files, phrase",
    [
        ({"a.toml": 'extends = "missing.toml"\n'}, "missing.toml not found"),
        ({"a.toml": "extends = 3\n"}, "extends: expected the path of the recipe"),
        ({"a.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "a.toml"\n'}, "(a cycle)"),
    ],
)
def test_a_broken_extends_is_one_line_naming_the_file_and_the_key(tmp_path, files, phrase):
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(RecipeError) as error:
        load_recipe(tmp_path / "a.toml")
    assert phrase in str(error.value) and "extends" in str(error.value) and "\n" not in str(error.value)


def test_the_shipped_variants_extend_their_base_recipes():
    for variant, base in (("cifar10-iaf.toml", "cifar10.toml"), ("digits-iaf.toml", "digits.toml")):
        assert f'extends = "{base}"' in (ROOT / "recipes" / variant).read_text()
