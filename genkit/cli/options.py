"""Options shared by several commands."""

from __future__ import annotations

import json
from pathlib import Path

import click

overrides_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe value, e.g. --set train.lr=1e-4 (repeatable; VALUE is read as TOML, else as a string).",
)


def write_json(path: str | Path, data: dict) -> None:
    """Write ``data`` as indented JSON, making the folder if needed (the ``--json`` option of several commands)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n")
