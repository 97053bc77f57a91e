"""``genkit convert``: import checkpoints of other implementations as genkit model directories."""

from __future__ import annotations

import click

from genkit.cli.options import overrides_option


@click.group()
def convert() -> None:
    """Import a checkpoint written by another implementation."""


@convert.command(name="vdvae")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option(
    "--recipe",
    "recipe_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="The recipe whose model the checkpoint holds, e.g. recipes/cifar10.toml.",
)
@overrides_option
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Model directory to write.")
@click.option(
    "--no-infer-encoder",
    is_flag=True,
    help="Fail instead of inferring a shorter encoder string (the released FFHQ-1024 file).",
)
def vdvae(checkpoint: str, recipe_path: str, overrides: tuple[str, ...], out: str, no_infer_encoder: bool) -> None:
    """Convert an official openai/vdvae CHECKPOINT (*-model.th or *-model-ema.th) into a model directory."""
    from genkit.errors import ConfigError
    from genkit.pretrained import model_from_recipe, save_pretrained
    from genkit.recipe import load_recipe
    from genkit_plugins.vdvae.convert import convert_official

    recipe = load_recipe(recipe_path, overrides)
    if recipe.model.name != "vdvae":
        raise ConfigError(
            f"{recipe_path}: model.name: expected 'vdvae' for an openai/vdvae checkpoint, found {recipe.model.name!r}"
        )
    recipe, state, notes = convert_official(checkpoint, recipe, infer_encoder=not no_infer_encoder)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    model = model_from_recipe(recipe, device="meta")  # only its recipe is saved: the weights are the file's
    save_pretrained(model, out, recipe=recipe, state_dict=state, extra={"converted_from": str(checkpoint)})
    click.echo(f"wrote {out} ({sum(v.numel() for v in state.values()):,} parameters)")


COMMANDS = [convert]
