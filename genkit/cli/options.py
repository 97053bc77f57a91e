"""Options shared by several commands."""

from __future__ import annotations

import click

overrides_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.lr=1e-4 (repeatable; VALUE is read as TOML, else as a string).",
)

json_option = click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    metavar="PATH",
    help="Also write the result as JSON to PATH ('-': print it instead).",
)


def say(text: str, json_path: str | None) -> None:
    """A command's table or summary: on stdout, or on stderr when ``--json -`` keeps stdout for the JSON alone."""
    click.echo(text, err=json_path == "-")


def emit_json(path: str, data) -> None:
    """The ``--json PATH`` of every command: ``-`` prints ``data``, anything else is written atomically."""
    import json

    from genkit.fileio import write_json

    if path == "-":
        click.echo(json.dumps(data, indent=2))
    else:
        write_json(path, data)
