"""References from a recipe to plugins: ``posterior = "gaussian"`` or ``[model.posterior] name = "gaussian" …``."""

from __future__ import annotations

from typing import Any

import attrs

from genkit.registry import get_registry


@attrs.frozen
class ComponentRef:
    """A plugin chosen by name, with its validated settings and (once resolved) its provider."""

    name: str
    settings: Any = None
    provider: str | None = None

    def spec(self, kind: str):

        return get_registry().get(kind, self.name, provider=self.provider)

    def build(self, kind: str, **context: Any) -> Any:
        """Build the plugin's component with these settings and the assembling ``context``."""
        return self.spec(kind).build(self.settings, **context)


def component(kind: str, default: str | None = None):
    """An attrs field holding a :class:`ComponentRef` to a plugin of ``kind``; ``default`` names the plugin used when
    the recipe is silent. Without a default the recipe must name one."""
    if default is None:
        return attrs.field(metadata={"plugin_kind": kind})
    return attrs.field(factory=lambda: ComponentRef(default), metadata={"plugin_kind": kind})


def resolve_defaults(obj: Any) -> Any:
    """Fill in default settings and providers for every component reference the recipe left implicit."""
    if isinstance(obj, ComponentRef):
        return obj
    if not attrs.has(type(obj)):
        return obj
    changes = {}
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        kind = field.metadata.get("plugin_kind")
        if kind is not None and isinstance(value, ComponentRef):
            spec = value.spec(kind)
            settings = value.settings if value.settings is not None else spec.config()
            changes[field.name] = ComponentRef(value.name, resolve_defaults(settings), spec.provider)
        elif attrs.has(type(value)):
            changes[field.name] = resolve_defaults(value)
    return attrs.evolve(obj, **changes) if changes else obj
