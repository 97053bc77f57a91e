"""``genkit convert``: import checkpoints of other implementations as genkit model directories.

The group holds no converter of its own: each model family's plugin registers its converter
under it (``genkit_register_commands``, group ``"convert"``), built from the options and the
helpers here so that every converter reads the same way::

    genkit convert FAMILY CHECKPOINT --recipe RECIPE [--set KEY=VALUE …] --out DIR
"""

from __future__ import annotations

from pathlib import Path

import click

from genkit.cli.groups import PluginGroup
from genkit.cli.options import OutputPath


class ConvertGroup(PluginGroup):
    plugin_group = "convert"


@click.group(cls=ConvertGroup)
def convert() -> None:
    """Import a checkpoint written by another implementation (one subcommand per model family)."""


recipe_option = click.option(
    "--recipe",
    "recipe_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="The recipe whose model the checkpoint holds.",
)
out_option = click.option("--out", type=OutputPath("folder"), required=True, help="Model directory to write.")


def load_recipe_for(recipe_path: str, overrides, model_name: str, what: str):
    """The recipe at ``recipe_path`` with ``overrides``; it must build ``model_name``, the model ``what`` holds."""
    from genkit.errors import ConfigError
    from genkit.recipe import load_recipe

    recipe = load_recipe(recipe_path, overrides)
    if recipe.model.name != model_name:
        raise ConfigError(f"{recipe_path}: model.name: expected {model_name!r} for {what}, found {recipe.model.name!r}")
    return recipe


def write_converted(recipe, state: dict, source: str | Path, out: str | Path, notes: list[str] = ()) -> None:
    """Save ``state`` (tensors under genkit's names) as the model directory ``out`` of ``recipe``, and say so."""
    from genkit.errors import printable
    from genkit.models import build_model
    from genkit.pretrained import save_pretrained

    for note in notes:
        click.echo(f"note: {printable(note)}", err=True)
    model = build_model(recipe, device="meta")  # only its recipe is saved: the weights are the file's
    save_pretrained(model, out, recipe=recipe, state_dict=state, extra={"converted_from": str(source)})
    click.echo(f"wrote {out} ({sum(v.numel() for v in state.values()):,} parameters)")


COMMANDS = [convert]
