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
