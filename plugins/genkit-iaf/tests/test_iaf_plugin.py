"""genkit finds the plugin through its entry point only, lists it, validates its settings, and says what to install when
it is missing."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from genkit_iaf import IafPosterior, IafSettings

from genkit.errors import PluginError, RecipeError

CHECKOUT = Path(__file__).resolve().parents[3]
RECIPES = CHECKOUT / "recipes"  # present in a genkit checkout, not in an installed sdist
needs_recipes = pytest.mark.skipif(not (RECIPES / "digits-iaf.toml").is_file(), reason="needs genkit's recipes/ folder")


def genkit(*args: str, load: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GENKIT_LOAD_PLUGINS": load, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "genkit", *args], capture_output=True, text=True, env=env, timeout=120)


def test_the_entry_point_registers_iaf_with_its_distribution_and_version(iaf_registry):
    spec = iaf_registry.get("latent", "iaf")
    assert spec.factory is IafPosterior and spec.config is IafSettings
    assert (spec.provider, spec.version) == ("genkit-iaf", importlib.metadata.version("genkit-iaf"))


def test_without_the_entry_point_a_recipe_naming_the_provider_is_told_what_to_install(fresh_registry):
    from genkit.registry import get_registry

    with pytest.raises(PluginError, match="install it with: pip install genkit-iaf$"):
        get_registry().get("latent", "iaf", provider="genkit-iaf")


def test_genkit_plugins_lists_iaf_with_distribution_and_version(iaf_registry, capsys):
    from genkit.cli import main

    assert main(["plugins", "--json", "-"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["name"] == "iaf"]
    assert rows == [
        {
            "kind": "latent",
            "name": "iaf",
            "provider": "genkit-iaf",
            "version": importlib.metadata.version("genkit-iaf"),
            "module": "genkit_iaf.plugin",
            "description": "Gaussian posterior followed by an inverse autoregressive flow (Kingma et al. 2016)",
        }
    ]


@needs_recipes
def test_genkit_show_of_the_iaf_recipe_without_the_plugin_fails_in_one_line_with_exit_2():
    result = genkit("show", str(RECIPES / "digits-iaf.toml"), load="")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("genkit: error: ") and "model.posterior.name" in lines[0]
    assert lines[0].endswith("install it with: pip install genkit-iaf")


@needs_recipes
def test_a_recipe_with_a_bad_iaf_setting_names_the_key(iaf_registry):
    from genkit.recipe import recipe_from_dict
    from genkit.recipefiles import read_recipe

    raw = read_recipe(RECIPES / "digits-iaf.toml")
    raw["model"]["posterior"]["steps"] = 0
    with pytest.raises(RecipeError, match=r"model\.posterior\.steps: expected a value >= 1 and <= 32, found 0"):
        recipe_from_dict(raw, file="digits-iaf.toml")


@pytest.mark.slow
def test_genkit_contract_suite_passes_for_iaf(tmp_path):
    """The contract tests every plugin author gets for free: ``pytest --pyargs genkit.testing`` with the entry point
    loaded."""
    env = {**os.environ, "GENKIT_LOAD_PLUGINS": "iaf", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "genkit.testing",
        "-k",
        "iaf",
        "-q",
        "-p",
        "no:cacheprovider",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.skipif(not (CHECKOUT / "genkit" / "registry.py").is_file(), reason="needs a genkit checkout")
def test_genkit_core_and_builtin_plugins_never_mention_this_plugin():
    """genkit finds the plugin through its entry point alone: no line of its code or packaging names it."""
    mention = re.compile(r"\biaf\b|genkit[-_]iaf", re.IGNORECASE)
    files = [
        *(CHECKOUT / "genkit").rglob("*.py"),
        *(CHECKOUT / "plugins" / "genkit_plugins").rglob("*.py"),
        CHECKOUT / "pyproject.toml",
    ]
    offending = [
        f"{path.relative_to(CHECKOUT)}:{n}"
        for path in files
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if mention.search(line)
    ]
    assert offending == []
