"""``genkit convert flowpp``: the official TensorFlow model's variables as a genkit model directory."""

from __future__ import annotations

import click

from genkit.cli.convert_commands import load_recipe_for, out_option, recipe_option, write_converted
from genkit.cli.options import overrides_option


@click.command(name="flowpp")
@click.argument("source", type=click.Path())
@recipe_option
@overrides_option
@out_option
@click.option("--raw", is_flag=True, help="Take the raw variables even where the source holds their moving averages.")
def convert_flowpp(source: str, recipe_path: str, overrides: tuple[str, ...], out: str, raw: bool) -> None:
    """Convert the official aravindsrinivas/flowpp model's SOURCE into a model directory.

    SOURCE is an .npz of TensorFlow variable names to arrays, or a TensorFlow checkpoint (needs
    TensorFlow: pip install 'genkit-torch[tensorflow]').
    """
    from genkit_plugins.flowpp.convert import convert_official

    recipe = load_recipe_for(recipe_path, overrides, "flowpp", "an official Flow++ model")
    state, notes = convert_official(source, recipe, ema=not raw)
    write_converted(recipe, state, source, out, notes)
