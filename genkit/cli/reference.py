"""Render the CLI reference page (``docs/cli.md``) from the real ``--help`` of every command.

Regenerate with ``python -m genkit.cli.reference > docs/cli.md``; a test fails when the page drifts.
"""

from __future__ import annotations

import click

HEADER = """# CLI reference

Every command below prints this help with `genkit COMMAND --help`. Errors print one line
(`genkit: error: …`) and exit with status 2 for a usage or configuration mistake and 1 for a
failure at run time; `genkit --debug COMMAND …` shows the full traceback instead.

This page is generated from the real help text (`python -m genkit.cli.reference > docs/cli.md`)
and checked against it by the test suite.
"""


def _help(command: click.Command, name: str, parent: click.Context | None = None) -> tuple[str, click.Context]:
    # Each command's context hangs off its parent's, as when a user types it, so settings such as
    # the `-h` alias of `--help` are inherited exactly as in the real help.
    settings = {**getattr(command, "context_settings", {}), "terminal_width": 100, "max_content_width": 100}
    ctx = click.Context(command, info_name=name, parent=parent, **settings)
    return command.get_help(ctx), ctx


def render_reference() -> str:
    from genkit.cli import cli

    text, root = _help(cli, "genkit")
    parts = [HEADER, "## genkit\n", "```text", text, "```\n"]
    for name in sorted(cli.commands):
        command = cli.commands[name]
        text, ctx = _help(command, name, root)
        parts += [f"## genkit {name}\n", "```text", text, "```\n"]
        if isinstance(command, click.Group):
            for sub in sorted(command.commands):
                parts += [f"### genkit {name} {sub}\n", "```text", _help(command.commands[sub], sub, ctx)[0], "```\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    click.echo(render_reference(), nl=False)
