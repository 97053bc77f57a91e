"""Command groups that hold the commands plugins register as well as their own."""

from __future__ import annotations

import click


def plugin_commands(ctx: click.Context):
    """Every command plugins register (:meth:`genkit.registry.Registry.commands`), none of them under a name that a
    built-in command of its group holds: such a command is refused, never hidden behind the built-in one nor put in
    its place."""
    from genkit.registry import get_registry

    root = ctx.find_root().command
    groups = [group for group in root.commands.values() if isinstance(group, PluginGroup)]
    taken = {None: set(root.commands), **{group.plugin_group: set(group.commands) for group in groups}}
    return get_registry().commands(taken)


class PluginGroup(click.Group):
    """A command group that also holds the commands plugins register under its name.

    Plugins are looked up only when a command is not one of the group's own, or when the group
    lists its commands (``--help``), so ``genkit run`` does not wait for them to load.
    """

    #: the name plugins register under (``None``: the top level)
    plugin_group: str | None = None

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        return {spec.command.name: spec.command for spec in plugin_commands(ctx) if spec.group == self.plugin_group}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or self._plugin_commands(ctx).get(name)
