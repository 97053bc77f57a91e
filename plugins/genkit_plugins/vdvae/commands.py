"""``genkit convert vdvae``: the official openai/vdvae checkpoints as genkit model directories."""

from __future__ import annotations

import click

from genkit.cli.convert_commands import load_recipe_for, out_option, recipe_option, write_converted
from genkit.cli.options import overrides_option


@click.command(name="vdvae")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@recipe_option
@overrides_option
@out_option
@click.option(
    "--no-infer-encoder",
    is_flag=True,
    help="Fail instead of inferring a shorter encoder string (the released FFHQ-1024 file).",
)
def convert_vdvae(checkpoint: str, recipe_path: str, overrides: tuple[str, ...], out: str, no_infer_encoder: bool):
    """Convert an official openai/vdvae CHECKPOINT (*-model.th or *-model-ema.th) into a model directory.

    RECIPE is the recipe whose model the checkpoint holds, e.g. recipes/cifar10.toml.
    """
    from genkit_plugins.vdvae.convert import convert_official

    recipe = load_recipe_for(recipe_path, overrides, "vdvae", "an openai/vdvae checkpoint")
    recipe, state, notes = convert_official(checkpoint, recipe, infer_encoder=not no_infer_encoder)
    write_converted(recipe, state, checkpoint, out, notes)
