"""docs/publishing.md cannot drift: every ``genkit`` command it shows exists with the options it uses, and every
recipe and fixture it names is there."""

from __future__ import annotations

import re
import shlex

import click
import pytest
from locations import ROOT

PAGE = ROOT / "docs" / "publishing.md"


def _command_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    # drop leading VAR=value environment assignments
    return [re.sub(r"^(\w+=\S+\s+)+", "", line) for line in lines if re.match(r"^(\w+=\S+\s+)*genkit ", line)]


def test_the_page_shows_push_convert_sample_and_eval_commands():
    used = {shlex.split(line)[1] for line in _command_lines()}
    assert {"push", "convert", "sample", "eval"} <= used


@pytest.mark.parametrize("line", _command_lines())
def test_every_command_on_the_page_exists_with_the_options_it_uses(line):
    from genkit.cli import cli

    words = shlex.split(line)[1:]
    command: click.Command = cli
    while isinstance(command, click.Group):
        command = command.get_command(click.Context(command), words.pop(0))
        assert command is not None, line
    known = {opt for param in command.params for opt in param.opts}
    used = {word.split("=")[0] for word in words if word.startswith("--")}
    assert used <= known, f"{line}: unknown options {used - known}"
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    assert len([w for w in words if not w.startswith("-")]) >= len(arguments), line


def test_every_recipe_and_fixture_the_page_names_exists():
    text = PAGE.read_text()
    paths = set(re.findall(r"(?<![\w/])(?:recipes|tests/recipes|tests/fixtures)/[\w./-]+\.(?:toml|th|npy)", text))
    assert len(paths) >= 7
    for path in paths:
        assert (ROOT / path).is_file(), path
