"""Command groups that hold the commands plugins register as well as their own."""

from __future__ import annotations

import click


class PluginGroup(click.Group):
    """A command group that also holds the commands plugins register under its name.

    Plugins are looked up only when a command is not one of the group's own, or when the group
    lists its commands (``--help``), so ``genkit run`` does not wait for them to load.
    """

    #: the name plugins register under (``None``: the top level)
    plugin_group: str | None = None

    def _plugin_commands(self) -> dict[str, click.Command]:
        from genkit.registry import get_registry

        return {
            spec.command.name: spec.command for spec in get_registry().commands() if spec.group == self.plugin_group
        }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or self._plugin_commands().get(name)
