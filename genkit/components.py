"""References from a recipe to plugins: ``posterior = "gaussian"`` or ``[model.posterior] name = "gaussian" …``."""

from __future__ import annotations

from typing import Any

import attrs

from genkit.errors import PluginError, RecipeError


@attrs.frozen
class ComponentRef:
    """A plugin chosen by name, with its validated settings and (once resolved) its provider."""

    name: str
    settings: Any = None
    provider: str | None = None

    def spec(self, kind: str):
        from genkit.registry import get_registry

        return get_registry().get(kind, self.name, provider=self.provider)

    def build(self, kind: str, **context: Any) -> Any:
        """Build the plugin's component with these settings and the assembling ``context``."""
        return self.spec(kind).build(self.settings, **context)


def component(kind: str, default: str):
    """An attrs field holding a :class:`ComponentRef` to a plugin of ``kind``; ``default`` names the plugin used when
    the recipe is silent."""
    return attrs.field(factory=lambda: ComponentRef(default), metadata={"plugin_kind": kind})


def structure_component(kind: str, value: Any, *, path: str, file: str | None) -> ComponentRef:
    """Validate a recipe's reference to a plugin: a bare name, or a table with ``name``, optional ``provider`` and
    settings."""
    from genkit.registry import get_registry
    from genkit.schema import structure

    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise RecipeError(file, path, f"a {kind} plugin name or a table with 'name'", value)
    value = dict(value)
    name = value.pop("name", None)
    if not isinstance(name, str):
        raise RecipeError(file, f"{path}.name", f"the name of a {kind} plugin (a string)", name)
    provider = value.pop("provider", None)
    if provider is not None and not isinstance(provider, str):
        raise RecipeError(file, f"{path}.provider", "a distribution name (a string)", provider)
    try:
        spec = get_registry().get(kind, name, provider=provider)
    except PluginError as exc:
        raise PluginError.at(file, f"{path}.name", str(exc)) from None
    settings = structure(spec.config, value, path=path, file=file)
    return ComponentRef(name, settings, spec.provider)


def unstructure_component(ref: ComponentRef) -> dict:
    from genkit.schema import unstructure

    out = {"name": ref.name}
    if ref.provider:
        out["provider"] = ref.provider
    if ref.settings is not None:
        out.update(unstructure(ref.settings))
    return out


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
