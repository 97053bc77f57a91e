"""The plugin registry: pluggy hooks in, a table of named component factories out.

Built-in plugins (the modules listed in ``genkit_plugins.BUILTIN_MODULES``) are registered
directly; third-party plugins come from the ``genkit`` entry-point group, loaded lazily the
first time the registry is needed. ``GENKIT_LOAD_PLUGINS`` selects which entry points load:
unset loads all, an empty string loads none, ``a,b`` loads only those entry-point names.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
from collections.abc import Callable
from typing import Any

import attrs
import pluggy

from genkit import hookspecs
from genkit.errors import PluginError

KINDS = {
    "likelihood": "genkit_register_likelihoods",
    "latent": "genkit_register_latents",
    "block": "genkit_register_blocks",
    "resampler": "genkit_register_resamplers",
    "model": "genkit_register_models",
    "dataset": "genkit_register_datasets",
}
ENTRY_POINT_GROUP = "genkit"
LOAD_ENV = "GENKIT_LOAD_PLUGINS"
CORE_DISTRIBUTION = "genkit-torch"


@attrs.frozen
class NoSettings:
    """Settings class of a plugin that takes none."""


@attrs.frozen
class PluginSpec:
    kind: str
    name: str
    factory: Callable[..., Any]
    config: type
    provider: str
    version: str
    description: str = ""
    example: Any = None  # small settings the contract tests build it with (default: the settings' defaults)

    def build(self, settings: Any = None, **context: Any) -> Any:
        """Call the factory with its validated settings (defaults when ``None``) and the assembling context."""
        return self.factory(settings if settings is not None else self.config(), **context)


def core_version() -> str:
    try:
        return importlib.metadata.version(CORE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        from genkit import __version__

        return __version__


class Registry:
    """Every registered component, by kind and name."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self._specs: dict[str, dict[str, PluginSpec]] = {kind: {} for kind in KINDS}
        providers = {id(plugin): (dist.project_name, dist.version) for plugin, dist in pm.list_plugin_distinfo()}
        for kind, hook_name in KINDS.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                provider, version = providers.get(id(impl.plugin), (CORE_DISTRIBUTION, core_version()))
                impl.function(register=self._registrar(kind, provider, version, impl.plugin_name))

    def _registrar(self, kind: str, provider: str, version: str, module: str):
        def register(
            name: str,
            factory: Callable[..., Any],
            config: type | None = None,
            description: str = "",
            example: Any = None,
        ) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"plugin module {module}: {kind} names must be non-empty strings, got {name!r}")
            existing = self._specs[kind].get(name)
            if existing is not None:
                raise PluginError(
                    f"{kind} plugin {name!r} is registered twice: by {existing.provider} {existing.version} "
                    f"and by {provider} {version} ({module})"
                )
            if config is not None and not attrs.has(config):
                raise PluginError(f"{kind} plugin {name!r} ({provider}): config must be an attrs class, got {config!r}")
            if not description:
                description = (getattr(factory, "__doc__", None) or "").strip().splitlines()[0:1]
                description = description[0] if description else ""
            self._specs[kind][name] = PluginSpec(
                kind, name, factory, config or NoSettings, provider, version, description, example
            )

        return register

    def names(self, kind: str) -> list[str]:
        return sorted(self._specs[self._kind(kind)])

    def specs(self, kind: str | None = None) -> list[PluginSpec]:
        kinds = [self._kind(kind)] if kind else list(KINDS)
        return [self._specs[k][n] for k in kinds for n in sorted(self._specs[k])]

    def get(self, kind: str, name: str, *, provider: str | None = None) -> PluginSpec:
        kind = self._kind(kind)
        try:
            return self._specs[kind][name]
        except KeyError:
            pass
        if provider and provider != CORE_DISTRIBUTION:
            raise PluginError(
                f"{kind} plugin {name!r} is provided by the distribution {provider!r}, which is not installed "
                f"(or not loaded: see {LOAD_ENV}); install it with: pip install {provider}"
            )
        available = self.names(kind)
        close = difflib.get_close_matches(name, available, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise PluginError(f"unknown {kind} plugin {name!r}; available: {', '.join(available) or 'none'}{hint}")

    def build(self, kind: str, name: str, settings: Any = None, **context: Any) -> Any:
        return self.get(kind, name).build(settings, **context)

    @staticmethod
    def _kind(kind: str) -> str:
        if kind not in KINDS:
            raise PluginError(f"unknown plugin kind {kind!r}; kinds are: {', '.join(KINDS)}")
        return kind


def make_plugin_manager(load_entry_points: bool | None = None) -> pluggy.PluginManager:
    """A plugin manager with the built-in plugins and, unless disabled, the selected entry points."""
    pm = pluggy.PluginManager("genkit")
    pm.add_hookspecs(hookspecs)
    from genkit_plugins import BUILTIN_MODULES

    for module_name in BUILTIN_MODULES:
        pm.register(importlib.import_module(module_name), name=module_name)
    selection = os.environ.get(LOAD_ENV)
    if load_entry_points is False or selection == "":
        return pm
    if selection is None:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    else:
        wanted = {name.strip() for name in selection.split(",") if name.strip()}
        for name in sorted(wanted):
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
    return pm


_registry: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use (this is when entry points are imported)."""
    global _registry
    if _registry is None:
        _registry = Registry(make_plugin_manager())
    return _registry


def set_registry(registry: Registry | None) -> None:
    """Install ``registry`` as the process-wide one (tests use this to add plugins of their own)."""
    global _registry
    _registry = registry


def reset_registry() -> None:
    """Forget the cached registry so the next ``get_registry()`` rediscovers plugins."""
    global _registry
    _registry = None
