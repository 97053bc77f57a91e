"""The hooks a plugin uses to add a kind of component, components of any kind, and commands."""

from __future__ import annotations

import json
import sys
import types

import click
import pytest

from genkit.errors import PluginError
from genkit.hookspecs import hookimpl
from genkit.registry import Registry, make_plugin_manager, reset_registry, set_registry


class Coupling:
    """A kind of flow layer that this test's plugin adds."""


def contract_module() -> types.ModuleType:
    """A module of contract tests for the added kind, importable by name as plugins name theirs."""
    module = types.ModuleType("genkit_test_coupling_contracts")
    exec(
        "from genkit.testing import plugin_params\n"
        "import pytest\n"
        "@pytest.mark.parametrize('spec', plugin_params('bijector'))\n"
        "def test_coupling_builds(spec):\n"
        "    assert spec.build() is not None\n",
        module.__dict__,
    )
    sys.modules[module.__name__] = module
    return module


class AddsAKind:
    @hookimpl
    def genkit_register_kinds(self, register):
        register("bijector", Coupling, info=("family",), contracts="genkit_test_coupling_contracts")

    @hookimpl
    def genkit_register_components(self, register):
        register("bijector", "affine", lambda settings: Coupling(), family="flows")
        register("block", "plain", lambda settings, **context: None, description="A block of any kind's")


@click.command(name="toy")
@click.argument("checkpoint")
def convert_toy(checkpoint):
    """Convert a toy checkpoint."""
    click.echo(f"converted {checkpoint}")


@click.command(name="hello")
def hello():
    """Say hello."""
    click.echo("hello from a plugin")


class AddsCommands:
    @hookimpl
    def genkit_register_commands(self, register):
        register(convert_toy, group="convert")
        register(hello)


def registry_with(*plugins) -> Registry:
    pm = make_plugin_manager(load_entry_points=False)
    for plugin in plugins:
        pm.register(plugin, name=type(plugin).__name__)
    return Registry(pm)


def test_a_plugin_adds_a_kind_and_components_of_it_with_the_facts_the_kind_asks_for():
    registry = registry_with(AddsAKind())
    kind = next(k for k in registry.kinds() if k.kind == "bijector")
    assert (
        kind.interface == f"{Coupling.__module__}.Coupling"
        and kind.description == "A kind of flow layer that this test's plugin adds."
    )
    spec = registry.get("bijector", "affine")
    assert isinstance(spec.build(), Coupling) and spec.info["family"] == "flows" and spec.module == "AddsAKind"
    assert registry.get("block", "plain").description == "A block of any kind's"


@pytest.mark.parametrize(
    "register, phrase",
    [
        (lambda r: r("widget", "w", object), "unknown plugin kind 'widget'"),
        (lambda r: r("dataset", "d", object, colour="red"), "unknown registration keyword 'colour'"),
    ],
)
def test_a_component_of_an_unknown_kind_or_with_an_unknown_fact_is_refused(register, phrase):
    call = register

    class Bad:
        @hookimpl
        def genkit_register_components(self, register):
            call(register)

    with pytest.raises(PluginError, match=phrase):
        registry_with(Bad())


def test_a_kind_added_twice_is_refused_naming_both():
    class Again:
        @hookimpl
        def genkit_register_kinds(self, register):
            register("bijector", Coupling)

    with pytest.raises(PluginError, match="plugin kind 'bijector' is added twice"):
        registry_with(AddsAKind(), Again())
    with pytest.raises(PluginError, match="plugin kind 'model' is added twice"):

        class Builtin:
            @hookimpl
            def genkit_register_kinds(self, register):
                register("model", Coupling)

        registry_with(Builtin())


def test_the_contract_suite_collects_the_tests_a_plugins_kind_brings(tmp_path):
    import importlib

    set_registry(registry_with(AddsAKind()))
    contract_module()  # its tests are parametrised over the registry's bijectors when it is imported
    try:
        import genkit.testing.test_contracts as suite

        suite = importlib.reload(suite)
        assert suite.test_coupling_builds is sys.modules["genkit_test_coupling_contracts"].test_coupling_builds
    finally:
        reset_registry()
        importlib.reload(suite)


def test_plugin_commands_join_the_command_line_and_the_plugin_list(capsys):
    from genkit.cli import main

    set_registry(registry_with(AddsCommands()))
    try:
        assert main(["convert", "toy", "x.ckpt"]) == 0 and capsys.readouterr().out == "converted x.ckpt\n"
        assert main(["hello"]) == 0 and capsys.readouterr().out == "hello from a plugin\n"
        assert main(["--help"]) == 0 and "hello" in capsys.readouterr().out
        assert main(["plugins", "--json", "-"]) == 0
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out) if r["kind"] == "command"}
        assert rows["convert toy"]["description"] == "Convert a toy checkpoint."
        assert rows["hello"]["module"] == "AddsCommands" and rows["convert vdvae"]["provider"] == "genkit-torch"
    finally:
        reset_registry()


def test_a_registered_command_must_be_a_named_click_command():
    class Bad:
        @hookimpl
        def genkit_register_commands(self, register):
            register(print)

    with pytest.raises(PluginError, match="expects a named click command"):
        registry_with(Bad()).commands()


def test_an_example_given_as_a_function_is_called_when_a_contract_test_asks_for_it():
    import attrs

    from genkit.testing import example_settings

    @attrs.frozen
    class Settings:
        depth: int = 8

    class Lazy:
        @hookimpl
        def genkit_register_components(self, register):
            register("block", "lazy", lambda settings: None, config=Settings, example=lambda: Settings(depth=2))
            register("block", "eager", lambda settings: None, config=Settings, example=Settings(depth=3))

    registry = registry_with(Lazy())
    assert example_settings(registry.get("block", "lazy")) == Settings(depth=2)
    assert example_settings(registry.get("block", "eager")) == Settings(depth=3)


def test_looking_the_registry_up_while_plugins_register_fails_in_one_line(monkeypatch):
    from genkit import registry as registry_module

    class LooksUp:
        @hookimpl
        def genkit_register_components(self, register):
            registry_module.get_registry()

    def manager():
        pm = make_plugin_manager(load_entry_points=False)
        pm.register(LooksUp(), name="LooksUp")
        return pm

    reset_registry()
    monkeypatch.setattr(registry_module, "make_plugin_manager", manager)
    try:
        with pytest.raises(PluginError, match="looked up the registry while plugins were registering") as info:
            registry_module.get_registry()
        assert "\n" not in str(info.value)
    finally:
        reset_registry()
