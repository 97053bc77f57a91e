"""The plugin registry: pluggy hooks in, a table of kinds, named component factories and commands out.

Built-in plugins (the modules listed in ``genkit_plugins.BUILTIN_MODULES``) are registered
directly; third-party plugins come from the ``genkit`` entry-point group, loaded lazily the
first time the registry is needed. ``GENKIT_LOAD_PLUGINS`` selects which entry points load:
unset loads all, an empty string loads none, ``a,b`` loads only those entry-point names.

Registration runs in three rounds, so that a plugin may use a kind another plugin adds: first
every ``genkit_register_kinds``, then the per-kind hooks and ``genkit_register_components``, then
(only when the command line asks) ``genkit_register_commands``.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import attrs
import pluggy

from genkit import hookspecs
from genkit.errors import PluginError, first_line

#: the built-in kinds: kind -> (its registration hook, the interface its components implement, the facts they give)
BUILTIN_KINDS = {
    "likelihood": ("genkit_register_likelihoods", "genkit.interfaces.Likelihood", ()),
    "latent": ("genkit_register_latents", "genkit.interfaces.LatentFamily", ()),
    "block": ("genkit_register_blocks", "genkit.interfaces.Block", ()),
    "resampler": ("genkit_register_resamplers", "genkit.interfaces.Upsampler / Downsampler", ()),
    "model": ("genkit_register_models", "genkit.interfaces.GenerativeModel", ()),
    "dataset": ("genkit_register_datasets", "genkit.interfaces.ImageDataset", ("display_name", "hub_dataset")),
}
#: kind -> its registration hook, for the built-in kinds
KINDS = {kind: hook for kind, (hook, _, _) in BUILTIN_KINDS.items()}
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
    #: small settings the contract tests build it with, or a function returning them (default: the settings' defaults)
    example: Any = None
    module: str = ""  # the plugin module that registered it
    info: MappingProxyType = attrs.field(factory=lambda: MappingProxyType({}), eq=False)

    def build(self, settings: Any = None, **context: Any) -> Any:
        """Call the factory with its validated settings (defaults when ``None``) and the assembling context."""
        return self.factory(settings if settings is not None else self.config(), **context)


@attrs.frozen
class KindSpec:
    """A kind of component: its interface, how its components are registered, who added it."""

    kind: str
    interface: str  # dotted name of the interface class
    hook: str  # the kind's own hook, or genkit_register_components for a kind a plugin adds
    provider: str
    description: str = ""
    info: tuple[str, ...] = ()
    contracts: str | None = None  # a module of contract tests every component of the kind must pass
    interface_class: Any = attrs.field(default=None, eq=False)


@attrs.frozen
class CommandSpec:
    """A command a plugin adds to the command line, under ``group`` (``None``: top level)."""

    command: Any  # a click.Command
    group: str | None
    provider: str
    version: str
    module: str


def core_version() -> str:
    try:
        return importlib.metadata.version(CORE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        from genkit.version import __version__

        return __version__


class Registry:
    """Every registered kind, component and command."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self._providers = {id(plugin): (dist.project_name, dist.version) for plugin, dist in pm.list_plugin_distinfo()}
        self._kinds: dict[str, KindSpec] = {
            kind: KindSpec(kind, interface, hook, CORE_DISTRIBUTION, info=info)
            for kind, (hook, interface, info) in BUILTIN_KINDS.items()
        }
        self._specs: dict[str, dict[str, PluginSpec]] = {kind: {} for kind in self._kinds}
        self._commands: list[CommandSpec] | None = None
        for impl in pm.hook.genkit_register_kinds.get_hookimpls():
            impl.function(register=self._kind_registrar(self._provider(impl)[0], self._module(impl)))
        for kind, (hook, _, _) in BUILTIN_KINDS.items():
            for impl in getattr(pm.hook, hook).get_hookimpls():
                provider, version = self._provider(impl)
                registrar = self._registrar(provider, version, self._module(impl))
                impl.function(register=lambda *args, _r=registrar, _k=kind, **kw: _r(_k, *args, **kw))
        for impl in pm.hook.genkit_register_components.get_hookimpls():
            impl.function(register=self._registrar(*self._provider(impl), self._module(impl)))

    @staticmethod
    def _module(impl) -> str:
        """The module a hook implementation comes from (an entry point's name is only an alias of it)."""
        return getattr(impl.plugin, "__name__", impl.plugin_name)

    def _provider(self, impl) -> tuple[str, str]:
        return self._providers.get(id(impl.plugin), (CORE_DISTRIBUTION, core_version()))

    def _kind_registrar(self, provider: str, module: str):
        def register(
            kind: str, interface: type, description: str = "", info: tuple[str, ...] = (), contracts: str | None = None
        ) -> None:
            if not isinstance(kind, str) or not kind:
                raise PluginError(f"plugin module {module}: kind names must be non-empty strings, got {kind!r}")
            if kind in self._kinds:
                raise PluginError(
                    f"plugin kind {kind!r} is added twice: by {self._kinds[kind].provider} and by {provider} ({module})"
                )
            if not isinstance(interface, type):
                raise PluginError(f"plugin kind {kind!r} ({module}): interface must be a class, got {interface!r}")
            name = f"{interface.__module__}.{interface.__qualname__}"
            description = description or first_line(interface.__doc__ or "")
            hook = "genkit_register_components"
            self._kinds[kind] = KindSpec(kind, name, hook, provider, description, tuple(info), contracts, interface)
            self._specs[kind] = {}

        return register

    def _registrar(self, provider: str, version: str, module: str):
        def register(
            kind: str,
            name: str,
            factory: Callable[..., Any],
            config: type | None = None,
            description: str = "",
            example: Any = None,
            **info: Any,
        ) -> None:
            if kind not in self._kinds:
                raise PluginError(
                    f"plugin module {module}: unknown plugin kind {kind!r} for {name!r}; "
                    f"kinds are: {', '.join(self._kinds)}"
                )
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
            allowed = self._kinds[kind].info
            unknown = sorted(set(info) - set(allowed))
            if unknown:
                raise PluginError(
                    f"{kind} plugin {name!r} ({provider}): unknown registration keyword {unknown[0]!r}; "
                    f"a {kind} may give {', '.join(allowed) or 'none'}"
                )
            description = description or first_line(getattr(factory, "__doc__", None) or "")
            self._specs[kind][name] = PluginSpec(
                kind, name, factory, config or NoSettings, provider, version, description, example, module,
                MappingProxyType(dict(info)),
            )  # fmt: skip

        return register

    # --- kinds and components ---------------------------------------------------------------------

    def kinds(self) -> list[KindSpec]:
        """Every kind, the built-in ones first."""
        return list(self._kinds.values())

    def names(self, kind: str) -> list[str]:
        return sorted(self._specs[self._kind(kind)])

    def specs(self, kind: str | None = None) -> list[PluginSpec]:
        kinds = [self._kind(kind)] if kind else list(self._kinds)
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

    def _kind(self, kind: str) -> str:
        if kind not in self._kinds:
            raise PluginError(f"unknown plugin kind {kind!r}; kinds are: {', '.join(self._kinds)}")
        return kind

    # --- commands ---------------------------------------------------------------------------------

    def commands(self) -> list[CommandSpec]:
        """The commands plugins add, collected on first use (only the command line needs them)."""
        if self._commands is None:
            found: list[CommandSpec] = []
            for impl in self.pm.hook.genkit_register_commands.get_hookimpls():
                provider, version = self._provider(impl)

                def register(command, group: str | None = None, _p=provider, _v=version, _m=self._module(impl)) -> None:
                    if not callable(getattr(command, "main", None)) or not getattr(command, "name", None):
                        raise PluginError(
                            f"plugin module {_m}: register() expects a named click command, got {command!r}"
                        )
                    found.append(CommandSpec(command, group, _p, _v, _m))

                impl.function(register=register)
            self._commands = found
        return self._commands


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
_building = False


def get_registry() -> Registry:
    """The process-wide registry, built on first use (this is when entry points are imported)."""
    global _registry, _building
    if _registry is None:
        if _building:
            raise PluginError(
                "a plugin looked up the registry while plugins were registering (settings validated against other "
                "plugins? register them as example=lambda: Settings(...))"
            )
        _building = True
        try:
            _registry = Registry(make_plugin_manager())
        finally:
            _building = False
    return _registry


def set_registry(registry: Registry | None) -> None:
    """Install ``registry`` as the process-wide one (tests use this to add plugins of their own)."""
    global _registry
    _registry = registry


def reset_registry() -> None:
    """Forget the cached registry so the next ``get_registry()`` rediscovers plugins."""
    global _registry
    _registry = None
