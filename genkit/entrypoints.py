"""Third-party plugins, loaded from the ``genkit`` entry-point group one by one, so that none can break genkit.

A plugin whose entry point fails to import, whose module pluggy refuses, or whose name another
distribution's entry point already holds is left out with one warning naming its entry point and
distribution; every other plugin, the built-in ones and the command line (``genkit --help``,
``genkit plugins``) keep working. :class:`genkit.registry.Registry` does the same for a plugin whose
hook raises. A hook implementation that matches no hook of :mod:`genkit.hookspecs` (a misspelt
``genkit_register_*``, which genkit would never call) is reported too: pluggy's ``check_pending``,
for every such implementation rather than the first, as a warning naming an entry-point plugin and as
an error for genkit's own.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import sys

import attrs
import pluggy

from genkit import hookspecs
from genkit.errors import PluginError, first_line, printable

ENTRY_POINT_GROUP = "genkit"


@attrs.frozen
class EntryPointOrigin:
    """Where a third-party plugin comes from: its entry point and the distribution that declares it."""

    entry_point: str  # "demo = genkit_demo_plugin"
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"entry point {self.entry_point!r} of {self.distribution} {self.version}"


def warn(message: str) -> None:
    """One line on standard error: what genkit left out, and why."""
    print(f"genkit: warning: {printable(' '.join(message.split()))}", file=sys.stderr, flush=True)


def failure(exc: BaseException) -> str:
    """What went wrong, in a few words: a genkit error's own line, else the exception's type and first line."""
    from genkit.errors import GenkitError

    return first_line(exc) if isinstance(exc, GenkitError) else f"{type(exc).__name__}: {first_line(exc)}"


class PluginManager(pluggy.PluginManager):
    """pluggy's plugin manager for genkit's hooks, remembering where each entry-point plugin came from."""

    def __init__(self) -> None:
        super().__init__("genkit")
        self.add_hookspecs(hookspecs)
        #: plugin name (its entry point's name) -> where it came from; built-in plugins have none
        self.origins: dict[str, EntryPointOrigin] = {}

    def load_entry_points(self, names: set[str] | None = None) -> None:
        """Import and register every plugin of the entry-point group (only those in ``names``, when given), in the
        order of their distributions' and entry points' names: where two plugins claim the same name, the same one
        wins on every run."""
        found = [
            (dist.metadata["Name"] or "", entry_point.name, entry_point, dist)
            for dist in importlib.metadata.distributions()
            for entry_point in dist.entry_points
            if entry_point.group == ENTRY_POINT_GROUP and (names is None or entry_point.name in names)
        ]
        for _, _, entry_point, dist in sorted(found, key=lambda item: item[:2]):
            self._load(entry_point, dist)

    def _load(self, entry_point: importlib.metadata.EntryPoint, dist: importlib.metadata.Distribution) -> None:
        name = entry_point.name
        origin = EntryPointOrigin(
            printable(f"{name} = {entry_point.value}"), printable(dist.metadata["Name"]), printable(dist.version)
        )
        if name in self.origins or self.get_plugin(name) is not None:
            if self.origins.get(name) != origin:  # the same distribution seen twice on sys.path is no conflict
                held = self.origins.get(name, "a built-in plugin")
                warn(f"plugin {origin} is not loaded: {held} already holds the name {name!r}")
            return
        try:
            plugin = entry_point.load()
        except (Exception, SystemExit) as exc:  # an import error, anything its module raises, even sys.exit()
            warn(f"plugin {origin} is unavailable: it failed to import ({failure(exc)})")
            return
        try:
            self.register(plugin, name=name)
        except Exception as exc:  # pluggy refuses a hook whose arguments its spec lacks, or a module registered twice
            if self.get_plugin(name) is not None:
                self.unregister(name=name)  # pluggy may have registered part of it before refusing
            # pluggy's reasons run over several lines, the last of which says what is wrong
            reason = " ".join(str(exc).split()) if isinstance(exc, pluggy.PluginValidationError) else failure(exc)
            warn(f"plugin {origin} is unavailable: {reason}")
            return
        self.origins[name] = origin

    def report_unknown_hooks(self) -> None:
        """Every hook implementation that no hook spec matches: a warning naming an entry-point plugin, an error for a
        plugin registered any other way (genkit's own, or a test's)."""
        specs = [name for name in vars(hookspecs) if name.startswith("genkit_")]
        for name, caller in sorted(vars(self.hook).items()):
            if name.startswith("_") or caller.has_spec():
                continue
            close = difflib.get_close_matches(name, specs, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                message = f"its hook {name!r} matches no genkit hook{hint}, so genkit never calls it"
                origin = self.origins.get(impl.plugin_name)
                if origin is None:
                    raise PluginError(f"plugin module {impl.plugin_name}: {message}")
                warn(f"plugin {origin}: {message}")
