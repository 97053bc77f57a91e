"""Commands about recipes and plugins: ``run``, ``show``, ``plugins``."""

from __future__ import annotations

import click

from genkit.cli.options import OutputPath, emit_json, json_option, overrides_option, overwrite_option


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
    type=OutputPath("folder"),
    default=None,
    help="Run directory (default: <train.out_dir>/<recipe name>).",
)
@overwrite_option
def run(recipe: str, overrides: tuple[str, ...], resume: str | None, out: str | None, overwrite: bool) -> None:
    """Train the model a RECIPE describes (single process, or every rank under torchrun)."""
    from genkit.engine.trainer import train
    from genkit.recipe import load_recipe

    train(load_recipe(recipe, overrides), run_dir=out, resume=resume, overwrite=overwrite)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@overrides_option
@json_option
def show(recipe: str, overrides: tuple[str, ...], json_path: str | None) -> None:
    """Print the resolved RECIPE, the parameter count of each part of its model and the model's capabilities."""
    from genkit.capabilities import capabilities
    from genkit.errors import printable
    from genkit.models import build_model, parameter_counts
    from genkit.recipe import dump_recipe, load_recipe, recipe_to_dict

    resolved = load_recipe(recipe, overrides)
    counts = parameter_counts(resolved)
    model = build_model(resolved, "meta")
    about = {
        "objective": model.objective.label,
        "samplers": list(model.samplers),
        "capabilities": capabilities(model),
    }
    if json_path:
        emit_json(json_path, {"recipe": recipe_to_dict(resolved), "parameters": counts, "model": about})
        if json_path == "-":
            return
    click.echo(dump_recipe(resolved))
    width = max(len(name) for name in counts)
    click.echo("# parameters")
    for name, count in counts.items():
        click.echo(f"# {name:<{width}}  {count:>14,}")
    click.echo(f"# objective: {about['objective']}")
    samplers = [printable(name) for name in about["samplers"]]  # names the model's plugin chose
    click.echo(f"# samplers: {', '.join(samplers)} (default: {samplers[0]})")
    click.echo(f"# capabilities: {', '.join(about['capabilities']) or 'none'}")


@click.command()
@json_option
def plugins(json_path: str | None) -> None:
    """List every plugin and plugin command: kind, name, providing distribution, version and module."""
    from genkit.cli.groups import plugin_commands
    from genkit.errors import first_line, printable
    from genkit.registry import get_registry

    registry = get_registry()
    rows = [
        {
            "kind": s.kind,
            "name": s.name,
            "provider": s.provider,
            "version": s.version,
            "module": s.module,
            "description": s.description,
        }
        for s in registry.specs()
    ]
    rows += [
        {
            "kind": "command",
            "name": f"{c.group} {c.command.name}" if c.group else c.command.name,
            "provider": c.provider,
            "version": c.version,
            "module": c.module,
            "description": printable(first_line(c.command.help or "")),
        }
        for c in plugin_commands(click.get_current_context())
    ]
    if json_path:
        emit_json(json_path, rows)
        if json_path == "-":
            return
    headers = ("kind", "name", "provider", "version", "module")
    rows = [{h: printable(r[h]) for h in headers} for r in rows]  # what a plugin or its distribution says, shown
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in headers]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip())
    for r in rows:
        click.echo("  ".join(r[h].ljust(w) for h, w in zip(headers, widths)).rstrip())


COMMANDS = [run, show, plugins]
