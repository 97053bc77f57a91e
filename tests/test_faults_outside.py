"""Everything read from outside is validated and shown safely.

Recipe values with a format (a checksum, a URL, a Hub repo id or revision, one source of data) are refused when the
recipe resolves, before anything is read or fetched. Strings that come from a model directory, a plugin or a server
reach the terminal with their control characters written as escapes, and a suggested command never carries one as an
option.
"""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fault_helpers import one_line, pixels_registry, tiny_recipe, trained_tiny  # noqa: F401

from genkit.cli import main
from genkit.errors import printable, shell_word
from genkit.interfaces import Objective
from genkit.recipe import load_recipe
from genkit.rundirs import resume_option

CIFAR = 'name = "cifar10"\ndownload = false'

FORMATS = [
    ("md5-short", "data.md5=abc", 'data.md5: expected an MD5 checksum of 32 hexadecimal digits, or "" for none'),
    ("md5-not-hex", f"data.md5={'z' * 32}", "data.md5: expected an MD5 checksum of 32 hexadecimal digits"),
    ("url-scheme", "data.url=ftp://example.org/c.tar.gz", "data.url: expected a https:// or http:// URL with a host"),
    ("url-no-host", "data.url=https:///c.tar.gz", "data.url: expected a https:// or http:// URL"),
    ("url-port", "data.url=http://example.org:99999/c.tar.gz", "data.url: expected a https:// or http:// URL"),
    ("url-space", "data.url='https://example.org/a b.tar.gz'", "data.url: expected a https:// or http:// URL"),
    ("url-escape", 'data.url="https://example.org/\\u001b[2J"', "found 'https://example.org/\\x1b[2J'"),
    ("hub-path", "data.hub=a/b/c", "data.hub: expected a Hub repo id 'namespace/name'"),
    ("hub-option", "data.hub=--upload", "data.hub: expected a Hub repo id 'namespace/name'"),
    ("revision-option", "data.hub_revision=-x", "data.hub_revision: expected a branch, tag or commit name"),
    ("revision-space", "data.hub_revision='a b'", "data.hub_revision: expected a branch, tag or commit name"),
    ("root-and-hub", "data.hub=a/b", "data.hub: expected either data.root or data.hub, not both (data.root = '/x'"),
]


@pytest.fixture
def cifar_recipe(tmp_path):
    recipe = tmp_path / "cifar.toml"
    recipe.write_text(tiny_recipe(tmp_path / "runs", data=CIFAR + '\nroot = "/x"', image_size=32, channels=3))
    return recipe


@pytest.mark.parametrize("setting, phrase", [case[1:] for case in FORMATS], ids=[case[0] for case in FORMATS])
def test_a_recipe_value_with_a_format_is_checked_when_the_recipe_resolves(cifar_recipe, capsys, setting, phrase):
    assert main(["show", str(cifar_recipe), "--set", setting]) == 2
    line = one_line(capsys)
    assert phrase in line and f"--set {setting!r}" in line, line


@pytest.mark.parametrize("data", ['name = "npy"\nroot = "x"', 'name = "image-folder"\nroot = "x"'])
def test_every_data_set_with_a_hub_source_checks_its_repo_id(tmp_path, capsys, data):
    recipe = tmp_path / "data.toml"
    recipe.write_text(tiny_recipe(tmp_path / "runs", data=data))
    assert main(["show", str(recipe), "--set", "data.root=", "--set", "data.hub=not a repo"]) == 2
    assert "data.hub: expected a Hub repo id 'namespace/name'" in one_line(capsys)


def test_a_checksum_in_capitals_is_accepted_and_kept_as_hashlib_writes_it(cifar_recipe):
    recipe = load_recipe(cifar_recipe, ["data.md5=C58F30108F718F92721AF3B95E74349A"])
    assert recipe.data.settings.md5 == "c58f30108f718f92721af3b95e74349a"


def test_a_malformed_url_stops_a_run_before_any_work(cifar_recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(cifar_recipe), "--out", str(out), "--set", "data.url=htps://example.org/x"]) == 2
    assert "data.url: expected" in one_line(capsys) and not out.exists()


# --- what came from outside, on the terminal --------------------------------------------------------------------


def test_control_characters_are_shown_as_escapes_and_nothing_else_changes():
    assert printable("plain text: 2.5 bits/dim ≥ 1 × 2 …") == "plain text: 2.5 bits/dim ≥ 1 × 2 …"
    assert printable("a\x1b[2Jb\nc\rd\u202ee\x00") == "a\\x1b[2Jb\\nc\\rd\\u202ee\\x00"


def test_a_word_of_a_suggested_command_is_quoted_and_never_an_option():
    assert shell_word("genkit-iaf") == "genkit-iaf"
    assert shell_word("x; rm -rf ~") == "'x; rm -rf ~'"
    assert shell_word("--index-url=https://example.org") is None
    assert shell_word("a\nb") is None
    assert shell_word("-rf", path=True) == "./-rf"


def test_the_resume_command_genkit_suggests_quotes_the_run_directory():
    assert resume_option("runs/$(touch x)") == "--resume 'runs/$(touch x)'"
    assert resume_option("runs/digits") == "--resume runs/digits"


def test_what_a_model_plugin_calls_its_figure_is_shown_as_text():
    objective = Objective("bound\x1b[8m", parts=("rate\n",), estimate="one\rdraw")
    assert (objective.label, objective.parts, objective.estimate) == ("bound\\x1b[8m", ("rate\\n",), "one\\rdraw")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import engine_plugins

    from genkit.registry import reset_registry

    engine_plugins.install_registry()
    world = trained_tiny(tmp_path_factory.mktemp("outside"))
    reset_registry()
    return world


@pytest.mark.parametrize(
    "provider, advice",
    [
        ("--index-url=https://example.org/simple", "install the distribution that provides it ('--index-url"),
        ("x; rm -rf ~", "install it with: pip install 'x; rm -rf ~'"),
        ("evil\x1b[2J\nFORGED LINE", "install the distribution that provides it ('evil\\\\x1b[2J\\\\nFORGED LINE'"),
    ],
    ids=["an-option", "shell-syntax", "escapes"],
)
def test_a_model_directory_naming_a_missing_plugin_is_never_offered_as_a_command_with_options(
    tiny, tmp_path, capsys, provider, advice
):
    model = tmp_path / "model"
    shutil.copytree(tiny["model"], model)
    config = json.loads((model / "config.json").read_text())
    config["plugins"].append({"kind": "block", "name": "missing", "provider": provider, "version": "1"})
    (model / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["sample", str(model), "--out", str(tmp_path / "s.png")]) == 2
    line = one_line(capsys)
    assert advice in line and "\x1b" not in line and "pip install --" not in line, line


class _Forging(BaseHTTPRequestHandler):
    """Answers every request with 503 and a reason phrase that would clear the terminal and colour what follows."""

    def do_GET(self):
        self.send_response(503, "\x1b[2J\x1b[31mall is well")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


def test_what_a_server_answers_reaches_the_terminal_as_text(tmp_path, capsys):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Forging)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        recipe = tmp_path / "cifar.toml"
        url = f"http://127.0.0.1:{server.server_address[1]}/c.tar.gz"
        data = f'name = "cifar10"\nroot = "{tmp_path / "data"}"\nurl = "{url}"\nmd5 = ""'
        recipe.write_text(tiny_recipe(tmp_path / "runs", data=data, image_size=32, channels=3))
        capsys.readouterr()
        assert main(["run", str(recipe), "--out", str(tmp_path / "run")]) == 1
    finally:
        server.shutdown()
        server.server_close()
    line = one_line(capsys, alone=False)
    assert "answered HTTP 503 (\\x1b[2J\\x1b[31mall is well)" in line and "\x1b" not in line, line


def test_a_recipe_naming_a_provider_that_is_no_distribution_name_is_refused(tmp_path, capsys):
    recipe = tmp_path / "provider.toml"
    recipe.write_text(tiny_recipe(tmp_path / "runs", data='name = "digits"\nprovider = "--pre"'))
    assert main(["show", str(recipe)]) == 2
    assert "data.provider: expected a distribution name (letters, digits, '.', '_', '-'), found '--pre'" in one_line(
        capsys
    )


def _probe_many(base: str, start, results) -> None:
    """One process's checks of 300 output folders that the others are checking at the same moment."""
    from genkit.fileio import unwritable

    start.wait()
    results.put([problem for k in range(300) if (problem := unwritable(Path(base) / f"r{k}" / "run", folder=True))])


def test_processes_checking_the_same_output_folder_at_once_do_not_fail_each_other(tmp_path):
    """Every rank under torchrun checks ``--out`` as it starts: each check creates the missing folders, writes a
    file, and removes what it made, and one process's folders appearing or vanishing under another's check is not a
    reason to refuse the run (it was, now and then, "File exists" or "is a file, not a folder")."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_probe_many, args=(str(tmp_path), start, results)) for _ in range(4)]
    for process in processes:
        process.start()
    problems = [problem for _ in processes for problem in results.get(timeout=120)]
    for process in processes:
        process.join()
    assert problems == []
    # no probe file is left; a folder one process made may stay where another's probe file kept it from being
    # removed (empty: the run that checked it makes it anyway)
    assert all(path.is_dir() for path in tmp_path.rglob("*"))
