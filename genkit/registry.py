"""The plugin registry: pluggy hooks in, a table of kinds, named component factories and commands out.

Built-in plugins (the modules listed in ``genkit_plugins.BUILTIN_MODULES``) are registered
directly; third-party plugins come from the ``genkit`` entry-point group, loaded lazily the
first time the registry is needed. ``GENKIT_LOAD_PLUGINS`` selects which entry points load:
unset loads all, an empty string loads none, ``a,b`` loads only those entry-point names.

Registration runs in three rounds, so that a plugin may use a kind another plugin adds: first
every ``genkit_register_kinds``, then the per-kind hooks and ``genkit_register_components``, then
(only when the command line asks) ``genkit_register_commands``.

A third-party plugin cannot break or silently change genkit (:mod:`genkit.entrypoints`): one whose
hook raises — a registration refused included (a duplicate name, a command whose name a built-in
command or another plugin holds) — is withdrawn with one warning naming its entry point and
distribution, and everything else keeps working. A built-in plugin, or one registered directly
(tests), fails loudly instead: that is a defect of genkit's own.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from genkit.entrypoints import ENTRY_POINT_GROUP, PluginManager, failure, warn
from genkit.errors import PluginError, first_line, printable, shell_word

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

    def __init__(self, pm: PluginManager):
        self.pm = pm
        self._providers = {name: (origin.distribution, origin.version) for name, origin in pm.origins.items()}
        self._kinds: dict[str, KindSpec] = {
            kind: KindSpec(kind, interface, hook, CORE_DISTRIBUTION, info=info)
            for kind, (hook, interface, info) in BUILTIN_KINDS.items()
        }
        self._specs: dict[str, dict[str, PluginSpec]] = {kind: {} for kind in self._kinds}
        self._commands: list[CommandSpec] | None = None
        self._added: dict[str, list[tuple[str, str | None]]] = {}  # plugin -> (kind, name) it added; name None: a kind
        pm.report_unknown_hooks()
        for impl in pm.hook.genkit_register_kinds.get_hookimpls():
            self._call(impl, "genkit_register_kinds", self._kind_registrar(impl))
        for kind, (hook, _, _) in BUILTIN_KINDS.items():
            for impl in getattr(pm.hook, hook).get_hookimpls():
                registrar = self._registrar(impl)
                self._call(impl, hook, lambda *args, _r=registrar, _k=kind, **kw: _r(_k, *args, **kw))
        for impl in pm.hook.genkit_register_components.get_hookimpls():
            self._call(impl, "genkit_register_components", self._registrar(impl))

    @staticmethod
    def _module(impl) -> str:
        """The module a hook implementation comes from (an entry point's name is only an alias of it)."""
        return getattr(impl.plugin, "__name__", impl.plugin_name)

    def _provider(self, impl) -> tuple[str, str]:
        return self._providers.get(impl.plugin_name, (CORE_DISTRIBUTION, core_version()))

    def _call(self, impl, hook: str, register: Callable[..., None]) -> bool:
        """Call a plugin's ``hook`` implementation; when it raises, withdraw the plugin with a warning (an entry-point
        plugin) or let the error through (genkit's own plugins: a defect). Whether the call succeeded.

        A failed command hook costs the plugin its commands only: commands are collected only when the command line
        needs them, and what a recipe can use must not depend on that.
        """
        if self.pm.get_plugin(impl.plugin_name) is None:  # withdrawn by a failure in an earlier round
            return False
        try:
            impl.function(register=register)
            return True
        except (Exception, SystemExit) as exc:
            origin = self.pm.origins.get(impl.plugin_name)
            if origin is None:
                raise
            if hook == "genkit_register_commands":
                warn(f"plugin {origin} adds no command: its {hook} hook failed ({failure(exc)})")
            else:
                self._withdraw(impl.plugin_name)
                warn(f"plugin {origin} is unavailable: its {hook} hook failed ({failure(exc)})")
            return False

    def _withdraw(self, plugin: str) -> None:
        """Forget every kind and component ``plugin`` added (with the components of its kinds) and the plugin itself."""
        for kind, name in reversed(self._added.pop(plugin, [])):
            if name is not None:
                self._specs.get(kind, {}).pop(name, None)
            else:
                self._kinds.pop(kind, None)
                self._specs.pop(kind, None)
        self.pm.unregister(name=plugin)

    def _kind_registrar(self, impl):
        provider, module = self._provider(impl)[0], self._module(impl)

        def register(
            kind: str, interface: type, description: str = "", info: tuple[str, ...] = (), contracts: str | None = None
        ) -> None:
            if not printable_name(kind):
                raise PluginError(
                    f"plugin module {module}: kind names must be non-empty printable strings, got {kind!r}"
                )
            if kind in self._kinds:
                raise PluginError(
                    f"plugin kind {kind!r} is added twice: by {self._kinds[kind].provider} and by {provider} ({module})"
                )
            if not isinstance(interface, type):
                raise PluginError(f"plugin kind {kind!r} ({module}): interface must be a class, got {interface!r}")
            name = f"{interface.__module__}.{interface.__qualname__}"
            description = printable(description or first_line(interface.__doc__ or ""))
            hook = "genkit_register_components"
            self._kinds[kind] = KindSpec(kind, name, hook, provider, description, tuple(info), contracts, interface)
            self._specs[kind] = {}
            self._added.setdefault(impl.plugin_name, []).append((kind, None))

        return register

    def _registrar(self, impl):
        (provider, version), module = self._provider(impl), self._module(impl)

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
            if not printable_name(name):
                raise PluginError(
                    f"plugin module {module}: {kind} names must be non-empty printable strings, got {name!r}"
                )
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
            description = printable(description or first_line(getattr(factory, "__doc__", None) or ""))
            self._specs[kind][name] = PluginSpec(
                kind, name, factory, config or NoSettings, provider, version, description, example, module,
                MappingProxyType(dict(info)),
            )  # fmt: skip
            self._added.setdefault(impl.plugin_name, []).append((kind, name))

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
                f"(or not loaded: see {LOAD_ENV}); {install_advice(provider)}"
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

    def commands(self, taken: Mapping[str | None, Collection[str]] | None = None) -> list[CommandSpec]:
        """The commands plugins add, collected on first use (only the command line needs them).

        ``taken`` holds the names of the built-in commands of each group (``None``: the top level): a plugin command
        of one of those names, or of a name another plugin's command already holds, is refused as a duplicate
        component is, instead of hiding or replacing the other.
        """
        if self._commands is None:
            found: list[CommandSpec] = []
            for impl in self.pm.hook.genkit_register_commands.get_hookimpls():
                mine = len(found)
                if not self._call(impl, "genkit_register_commands", self._command_registrar(impl, found, taken or {})):
                    del found[mine:]  # a withdrawn plugin's commands go with it
            self._commands = found
        return self._commands

    def _command_registrar(self, impl, found: list[CommandSpec], taken: Mapping[str | None, Collection[str]]):
        (provider, version), module = self._provider(impl), self._module(impl)

        def register(command, group: str | None = None) -> None:
            name = getattr(command, "name", None)
            if not callable(getattr(command, "main", None)) or not name:
                raise PluginError(f"plugin module {module}: register() expects a named click command, got {command!r}")
            if not printable_name(name) or name.startswith("-"):
                raise PluginError(f"plugin module {module}: command names must be printable words, got {name!r}")
            shown = f"genkit {group} {name}" if group else f"genkit {name}"
            holder = next((c for c in found if (c.group, c.command.name) == (group, name)), None)
            if name in taken.get(group, ()) or holder is not None:
                first = (
                    "genkit itself (a built-in command)" if holder is None else f"{holder.provider} {holder.version}"
                )
                raise PluginError(
                    f"command {shown!r} is registered twice: by {first} and by {provider} {version} ({module})"
                )
            found.append(CommandSpec(command, group, provider, version, module))

        return register


def install_advice(distribution: object) -> str:
    """How to install ``distribution`` (a name a recipe or a model directory gives): the ``pip install`` command, its
    name quoted for the shell, or no command at all for a name that would read as an option or hides characters."""
    word = shell_word(str(distribution))
    if word is None:
        return f"install the distribution that provides it ({printable(distribution)!r} is not a name to pass to pip)"
    return f"install it with: pip install {word}"


def printable_name(name: object) -> bool:
    """Whether ``name`` can name a kind, component or command: a non-empty string a terminal shows as it is."""
    return isinstance(name, str) and bool(name) and name.isprintable()


def make_plugin_manager(load_entry_points: bool | None = None) -> PluginManager:
    """A plugin manager with the built-in plugins and, unless disabled, the selected entry points (each on its own:
    one that fails is left out with a warning, :mod:`genkit.entrypoints`)."""
    pm = PluginManager()
    from genkit_plugins import BUILTIN_MODULES

    for module_name in BUILTIN_MODULES:
        pm.register(importlib.import_module(module_name), name=module_name)
    selection = os.environ.get(LOAD_ENV)
    if load_entry_points is not False and selection != "":
        wanted = None if selection is None else {name.strip() for name in selection.split(",") if name.strip()}
        pm.load_entry_points(wanted)
        for name in sorted((wanted or set()) - set(pm.origins)):
            if not any(ep.name == name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)):
                warn(
                    f"{LOAD_ENV} names {name!r}, which no installed distribution has as a "
                    f"{ENTRY_POINT_GROUP!r} entry point"
                )
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
