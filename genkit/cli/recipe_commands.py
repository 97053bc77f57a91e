"""Commands about recipes and plugins: ``run``, ``show``, ``plugins``."""

from __future__ import annotations

import json

import click

from genkit.cli.options import overrides_option


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@overrides_option
@click.option(
    "--resume",
    "resume",
    type=click.Path(file_okay=False),
    default=None,
    help="Continue the run in this directory from its latest checkpoint.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    help="Run directory (default: <train.out_dir>/<recipe name>).",
)
def run(recipe: str, overrides: tuple[str, ...], resume: str | None, out: str | None) -> None:
    """Train the model a RECIPE describes (single process, or every rank under torchrun)."""
    from genkit.engine.trainer import train
    from genkit.recipe import load_recipe

    train(load_recipe(recipe, overrides), run_dir=out, resume=resume)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@overrides_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML and a table.")
def show(recipe: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Print the resolved RECIPE and the parameter count of each part of the model it builds."""
    from genkit.modelinfo import parameter_counts
    from genkit.recipe import dump_recipe, load_recipe, recipe_to_dict

    resolved = load_recipe(recipe, overrides)
    counts = parameter_counts(resolved)
    if as_json:
        click.echo(json.dumps({"recipe": recipe_to_dict(resolved), "parameters": counts}, indent=2))
        return
    click.echo(dump_recipe(resolved))
    width = max(len(name) for name in counts)
    click.echo("# parameters")
    for name, count in counts.items():
        click.echo(f"# {name:<{width}}  {count:>14,}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List every plugin: kind, name, providing distribution and version."""
    from genkit.registry import get_registry

    rows = [
        {"kind": s.kind, "name": s.name, "provider": s.provider, "version": s.version, "description": s.description}
        for s in get_registry().specs()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    headers = ("kind", "name", "provider", "version")
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in headers]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)))
    for r in rows:
        click.echo("  ".join(r[h].ljust(w) for h, w in zip(headers, widths)))


COMMANDS = [run, show, plugins]
