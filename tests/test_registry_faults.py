"""Plugins cannot break or silently change genkit: a plugin that fails to import, whose hook raises, whose names or
commands another holds, or whose hook matches no hook spec is left out with one warning naming its entry point and
distribution, and ``genkit --help`` and ``genkit plugins`` keep working.

Each test installs fake distributions with ``genkit`` entry points on a temporary ``sys.path`` entry: nothing here
depends on what is installed.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from fault_helpers import error_lines

from genkit.cli import main
from genkit.errors import PluginError
from genkit.hookspecs import hookimpl
from genkit.registry import Registry, get_registry, make_plugin_manager, reset_registry

PLUGINS = {
    "broken": "import a_module_that_is_not_there\n",
    "raising": """
        class Widget:
            '''A kind this plugin adds before its components hook fails.'''

        @hookimpl
        def genkit_register_kinds(register):
            register("widget", Widget)

        @hookimpl
        def genkit_register_components(register):
            register("widget", "first", Widget)
            raise RuntimeError("the plugin's own bug")
        """,
    "duplicate": """
        @hookimpl
        def genkit_register_likelihoods(register):
            register("dmol", object, description="Not the real DMOL")
        """,
    "good": """
        @hookimpl
        def genkit_register_blocks(register):
            register("good-block", object, description="A block that \\x1b[31mcolours\\nthe terminal")
        """,
    "misspelt": """
        @hookimpl
        def genkit_register_model(register):
            register("never", object)
        """,
    "wrong-arguments": """
        @hookimpl
        def genkit_register_blocks(register, extra):
            register("never", object)
        """,
    "takes-run": """
        import click

        @click.command(name="run")
        def run():
            '''Not genkit's run.'''

        @hookimpl
        def genkit_register_commands(register):
            register(run)

        @hookimpl
        def genkit_register_blocks(register):
            register("run-block", object)
        """,
    "hello-one": """
        import click

        @click.command(name="hello")
        def hello():
            '''Hello from the first plugin.'''
            click.echo("hello one")

        @hookimpl
        def genkit_register_commands(register):
            register(hello)
        """,
    "hello-two": """
        import click

        @click.command(name="hello")
        def hello():
            '''Hello from the second plugin.'''
            click.echo("hello two")

        @hookimpl
        def genkit_register_commands(register):
            register(hello)
        """,
}


def distribution(site, name: str, source: str, entry: str | None = None) -> None:
    """The distribution ``genkit-<name> 1.0`` with the module ``genkit_<name>`` as the entry point ``entry``."""
    module = "genkit_" + name.replace("-", "_")
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text("from genkit.hookspecs import hookimpl\n" + textwrap.dedent(source))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: genkit-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[genkit]\n{entry or name} = {module}\n")


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Load the named fake plugins (and only them) when the registry is next built: ``installed("broken", "good")``."""

    def install(*names: str, entries: dict[str, str] | None = None) -> None:
        site = tmp_path / "site"
        for name in names:
            distribution(site, name, PLUGINS[name], (entries or {}).get(name))
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setenv("GENKIT_LOAD_PLUGINS", ",".join((entries or {}).get(n, n) for n in names))
        reset_registry()

    yield install
    reset_registry()


def warnings_of(capsys) -> list[str]:
    return [line for line in error_lines(capsys.readouterr().err) if line.startswith("genkit: warning: ")]


def plugin_rows(capsys) -> dict[tuple[str, str], dict]:
    assert main(["plugins", "--json", "-"]) == 0
    return {(row["kind"], row["name"]): row for row in json.loads(capsys.readouterr().out)}


def test_a_plugin_that_fails_to_import_is_left_out_and_genkit_keeps_working(installed, capsys):
    installed("broken", "good")
    assert main(["--help"]) == 0
    captured = capsys.readouterr()
    assert "Usage: genkit" in captured.out
    assert [line for line in error_lines(captured.err)] == [
        "genkit: warning: plugin entry point 'broken = genkit_broken' of genkit-broken 1.0 is unavailable: "
        "it failed to import (ModuleNotFoundError: No module named 'a_module_that_is_not_there')"
    ]
    rows = plugin_rows(capsys)
    assert ("block", "good-block") in rows and ("model", "vdvae") in rows


def test_a_plugin_whose_hook_raises_is_withdrawn_with_everything_it_added(installed, capsys):
    installed("raising", "good")
    registry = get_registry()
    assert "widget" not in [kind.kind for kind in registry.kinds()]
    assert registry.get("block", "good-block").provider == "genkit-good"
    assert warnings_of(capsys) == [
        "genkit: warning: plugin entry point 'raising = genkit_raising' of genkit-raising 1.0 is unavailable: "
        "its genkit_register_components hook failed (RuntimeError: the plugin's own bug)"
    ]


def test_a_plugin_registering_a_name_genkit_holds_is_refused_and_the_original_stays(installed, capsys):
    installed("duplicate")
    assert get_registry().get("likelihood", "dmol").provider == "genkit-torch"
    (line,) = warnings_of(capsys)
    assert "plugin entry point 'duplicate = genkit_duplicate' of genkit-duplicate 1.0 is unavailable" in line
    assert "likelihood plugin 'dmol' is registered twice: by genkit-torch" in line and "by genkit-duplicate 1.0" in line


def test_a_plugin_command_named_like_a_built_in_command_is_refused(installed, capsys):
    installed("takes-run")
    assert main(["--help"]) == 0
    (line,) = warnings_of(capsys)
    refused = "command 'genkit run' is registered twice: by genkit itself (a built-in command) and by genkit-takes-run"
    assert f"adds no command: its genkit_register_commands hook failed ({refused} 1.0" in line
    rows = plugin_rows(capsys)
    assert [key for key, row in rows.items() if row["provider"] == "genkit-takes-run"] == [("block", "run-block")]


def test_a_plugin_command_named_like_another_plugins_is_refused_and_the_first_one_stays(installed, capsys):
    installed("hello-one", "hello-two")
    assert main(["hello"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "hello one\n"
    (line,) = [line for line in error_lines(captured.err) if line.startswith("genkit: warning: ")]
    assert "of genkit-hello-two 1.0 adds no command: its genkit_register_commands hook failed" in line
    assert "command 'genkit hello' is registered twice: by genkit-hello-one 1.0 and by genkit-hello-two 1.0" in line


def test_a_hook_that_matches_no_hook_spec_is_reported_naming_the_plugin_and_the_hook_it_meant(installed, capsys):
    installed("misspelt")
    get_registry()
    assert warnings_of(capsys) == [
        "genkit: warning: plugin entry point 'misspelt = genkit_misspelt' of genkit-misspelt 1.0: its hook "
        "'genkit_register_model' matches no genkit hook (did you mean 'genkit_register_models'?), so genkit never "
        "calls it"
    ]


def test_a_hook_that_matches_no_hook_spec_in_genkits_own_plugins_is_an_error():
    class Misspelt:
        @hookimpl
        def genkit_register_blocs(self, register):
            register("never", object)

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Misspelt(), name="misspelt")
    with pytest.raises(PluginError, match="plugin module misspelt: its hook 'genkit_register_blocs' matches no genkit"):
        Registry(pm)


def test_a_hook_whose_arguments_its_spec_lacks_leaves_its_plugin_out(installed, capsys):
    installed("wrong-arguments", "good")
    assert "never" not in get_registry().names("block")
    (line,) = warnings_of(capsys)
    assert "'wrong-arguments = genkit_wrong_arguments' of genkit-wrong-arguments 1.0 is unavailable" in line
    assert "'extra'" in line


def test_a_second_entry_point_of_the_same_name_is_not_loaded_silently(installed, capsys):
    installed("hello-one", "good", entries={"hello-one": "same", "good": "same"})
    get_registry()
    (line,) = warnings_of(capsys)
    assert "is not loaded: entry point 'same = genkit_" in line and "already holds the name 'same'" in line


def test_a_selected_entry_point_that_no_distribution_has_is_reported(monkeypatch, capsys):
    monkeypatch.setenv("GENKIT_LOAD_PLUGINS", "no-such-plugin")
    reset_registry()
    try:
        get_registry()
    finally:
        reset_registry()
    assert warnings_of(capsys) == [
        "genkit: warning: GENKIT_LOAD_PLUGINS names 'no-such-plugin', which no installed distribution has as a "
        "'genkit' entry point"
    ]


def test_what_a_plugin_says_is_shown_without_terminal_control_characters(installed, capsys):
    installed("good")
    assert plugin_rows(capsys)[("block", "good-block")]["description"] == "A block that \\x1b[31mcolours\\nthe terminal"
    assert main(["plugins"]) == 0
    assert "\x1b" not in capsys.readouterr().out
