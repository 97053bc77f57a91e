"""``genkit convert``: import checkpoints of other implementations as genkit model directories.

The group holds no converter of its own: each model family's plugin registers its converter
under it (``genkit_register_commands``, group ``"convert"``), built from the options and the
helpers here so that every converter reads the same way::

    genkit convert FAMILY CHECKPOINT --recipe RECIPE [--set KEY=VALUE …] --out DIR [--overwrite]
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from genkit.cli.groups import PluginGroup
from genkit.cli.options import OutputPath, overwrite_option


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


def out_option(command):
    """``--out DIR`` and ``--overwrite``: the model directory to write, refused before any work when it already holds
    a model or a run unless ``--overwrite`` is given; the command receives ``out`` alone."""

    @functools.wraps(command)
    def checked(*args, out: str, overwrite: bool, **kwargs):
        from genkit.pretrained import claim_output

        claim_output(out, "--out", overwrite)
        return command(*args, out=out, **kwargs)

    out = click.option("--out", type=OutputPath("folder"), required=True, help="Model directory to write.")
    return out(overwrite_option(checked))


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
    from genkit.pretrained import clear_outputs, save_pretrained

    for note in notes:
        click.echo(f"note: {printable(note)}", err=True)
    model = build_model(recipe, device="meta")  # only its recipe is saved: the weights are the file's
    clear_outputs(out)  # what --overwrite replaces (out_option refused it otherwise): no old eval.json or grid stays
    save_pretrained(model, out, recipe=recipe, state_dict=state, extra={"converted_from": str(source)})
    click.echo(f"wrote {out} ({sum(v.numel() for v in state.values()):,} parameters)")


COMMANDS = [convert]
