"""``genkit convert pixelcnnpp``: a pclucas14/pixel-cnn-pp checkpoint as a genkit model directory."""

from __future__ import annotations

import click

from genkit.cli.convert_commands import out_option, recipe_option
from genkit.cli.options import overrides_option


@click.command(name="pixelcnnpp")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@recipe_option
@overrides_option
@out_option
def convert_pixelcnnpp(checkpoint: str, recipe_path: str, overrides: tuple[str, ...], out: str) -> None:
    """Convert a pclucas14/pixel-cnn-pp CHECKPOINT (a state dict, with or without DataParallel's module. prefix, with
    or without weight norm on the shifted convolutions) into a model directory."""
    from genkit.cli.convert_commands import load_recipe_for, write_converted
    from genkit_plugins.pixelcnnpp.convert import convert_checkpoint

    recipe = load_recipe_for(recipe_path, overrides, "pixelcnnpp", "a pclucas14/pixel-cnn-pp checkpoint")
    state, notes = convert_checkpoint(checkpoint, recipe)
    write_converted(recipe, state, checkpoint, out, notes)
