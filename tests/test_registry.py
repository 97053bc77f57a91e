"""The plugin registry: built-ins and third parties through the same hooks, real entry-point discovery, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from genkit.errors import PluginError
from genkit.hookspecs import hookimpl
from genkit.registry import Registry, get_registry, make_plugin_manager, reset_registry

DEMO_PLUGIN = textwrap.dedent(
    '''
    import attrs
    from genkit.hookspecs import hookimpl

    @attrs.frozen
    class Settings:
        depth: int = 2

    class DemoPrior:
        """A demo latent family from outside genkit."""
        def __init__(self, settings, zdim=1):
            self.settings = settings

    @hookimpl
    def genkit_register_latents(register):
        register("demo-prior", DemoPrior, config=Settings)
    '''
)


@pytest.fixture
def demo_distribution(tmp_path):
    """A real installed distribution ``genkit-demo-plugin 1.2.3`` with a ``genkit`` entry point, on a temporary sys.path
    entry."""
    site = tmp_path / "site"
    (site / "genkit_demo_plugin").mkdir(parents=True)
    (site / "genkit_demo_plugin" / "__init__.py").write_text(DEMO_PLUGIN)
    info = site / "genkit_demo_plugin-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: genkit-demo-plugin\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[genkit]\ndemo = genkit_demo_plugin\n")
    (info / "RECORD").write_text("")
    return site


def _env(site, load):
    env = {k: v for k, v in os.environ.items() if k != "GENKIT_LOAD_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    if load is not None:
        env["GENKIT_LOAD_PLUGINS"] = load
    return env


def test_entry_point_plugin_is_discovered_with_its_distribution_and_version(demo_distribution):
    out = subprocess.run(
        [sys.executable, "-m", "genkit", "plugins", "--json", "-"],
        env=_env(demo_distribution, None),
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {(r["kind"], r["name"]): r for r in json.loads(out.stdout)}
    demo = rows[("latent", "demo-prior")]
    assert (demo["provider"], demo["version"]) == ("genkit-demo-plugin", "1.2.3")
    assert demo["description"] == "A demo latent family from outside genkit."


def test_environment_variable_selects_which_entry_points_load(demo_distribution):
    def names(load):
        out = subprocess.run(
            [sys.executable, "-m", "genkit", "plugins", "--json", "-"],
            env=_env(demo_distribution, load),
            capture_output=True,
            text=True,
            check=True,
        )
        return {r["name"] for r in json.loads(out.stdout)}

    assert "demo-prior" in names("demo")
    assert "demo-prior" not in names("")
    assert "demo-prior" not in names("someone-else")


def test_entry_points_are_not_loaded_in_the_test_suite_unless_asked(demo_distribution, monkeypatch):
    monkeypatch.syspath_prepend(str(demo_distribution))
    reset_registry()
    assert "demo-prior" not in get_registry().names("latent")
    monkeypatch.setenv("GENKIT_LOAD_PLUGINS", "demo")
    reset_registry()
    try:
        spec = get_registry().get("latent", "demo-prior")
        assert spec.provider == "genkit-demo-plugin" and spec.version == "1.2.3"
        assert spec.build(spec.config(depth=5)).settings.depth == 5
    finally:
        reset_registry()


def test_built_in_plugins_come_from_the_core_distribution(fresh_registry):
    for spec in get_registry().specs():
        assert spec.provider == "genkit-torch"


class _First:
    @hookimpl
    def genkit_register_blocks(self, register):
        register("resnet", object)


class _Second:
    @hookimpl
    def genkit_register_blocks(self, register):
        register("resnet", object)


def test_duplicate_names_fail_naming_both_providers():
    pm = make_plugin_manager(load_entry_points=False)
    pm.register(_First(), name="first")
    pm.register(_Second(), name="second")
    with pytest.raises(
        PluginError, match=r"block plugin 'resnet' is registered twice: by genkit-torch .* and by genkit-torch .*"
    ):
        Registry(pm)


def test_unknown_name_lists_available_and_closest(toy_registry):
    with pytest.raises(PluginError) as info:
        toy_registry.get("model", "toi")
    assert "unknown model plugin 'toi'" in str(info.value)
    assert "toy" in str(info.value) and "did you mean 'toy'" in str(info.value)


def test_unknown_kind_is_an_error(toy_registry):
    with pytest.raises(PluginError, match="unknown plugin kind 'widget'"):
        toy_registry.names("widget")


def test_plugin_config_must_be_an_attrs_class():
    class Bad:
        @hookimpl
        def genkit_register_models(self, register):
            register("bad", object, config=dict)

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Bad(), name="bad")
    with pytest.raises(PluginError, match="config must be an attrs class"):
        Registry(pm)


def test_every_hook_has_a_documented_signature():
    from genkit import hookspecs
    from genkit.registry import KINDS

    for hook_name in KINDS.values():
        function = getattr(hookspecs, hook_name)
        assert function.__doc__ and list(function.__code__.co_varnames[: function.__code__.co_argcount]) == ["register"]
