"""The ``genkit`` command line: one-line errors with the documented exit codes, and a reference page that cannot
drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from genkit.cli import main

ROOT = Path(__file__).resolve().parent.parent

TOY = """
[model]
name = "toy"
width = 16
[data]
name = "toy-data"
"""


@pytest.fixture
def toy_recipe(tmp_path, toy_registry):
    path = tmp_path / "toy.toml"
    path.write_text(TOY)
    return path


def test_show_prints_the_resolved_recipe_and_parameter_counts(toy_recipe, capsys):
    assert main(["show", str(toy_recipe)]) == 0
    out = capsys.readouterr().out
    assert 'name = "toy"' in out and 'provider = "genkit-torch"' in out
    assert "lr = 0.0002" in out
    # encoder: 16·16 + 16, decoder: 16·3 + 3
    assert (
        "# encoder             272" in out and "# decoder              51" in out and "# total               323" in out
    )


def test_configuration_errors_print_one_line_and_exit_2(toy_recipe, capsys):
    toy_recipe.write_text(TOY + "[train]\nlr = -1\n")
    assert main(["show", str(toy_recipe)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("genkit: error: ") and "train.lr: expected a value > 0" in err


def test_usage_errors_print_one_line_and_exit_2(capsys):
    assert main(["show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Missing argument 'RECIPE'" in err
    assert main(["frobnicate"]) == 2


def test_debug_shows_the_traceback(toy_recipe):
    toy_recipe.write_text(TOY + "[train]\nlr = -1\n")
    from genkit.errors import RecipeError

    with pytest.raises(RecipeError):
        main(["--debug", "show", str(toy_recipe)])


def test_plugins_lists_kind_name_provider_version_and_module(toy_registry, capsys):
    assert main(["plugins"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["KIND", "NAME", "PROVIDER", "VERSION", "MODULE"]
    assert any(
        line.split()[:3] == ["model", "toy", "genkit-torch"] and line.split()[4] == "toy_plugins" for line in lines
    )
    assert any(line.split()[:3] == ["command", "convert", "vdvae"] for line in lines)


def test_the_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "genkit", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("genkit, version ")


def test_cli_reference_page_matches_the_real_help():
    from genkit.cli.reference import render_reference

    page = (ROOT / "docs" / "cli.md").read_text()
    assert page == render_reference(), "docs/cli.md is stale: python -m genkit.cli.reference > docs/cli.md"
