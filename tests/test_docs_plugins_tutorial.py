"""docs/plugins.md builds the genkit-iaf plugin step by step; these tests keep it true.

The tutorial marks its blocks with HTML comments (invisible on the rendered page):
``<!-- file: PATH -->`` before the complete text of a file, ``<!-- excerpt: PATH -->`` before a
verbatim part of one, ``<!-- run -->`` before Python to execute, ``<!-- console -->`` before a
command (``$ …``) and its output, where a ``...`` line stands for any lines.

The files the tutorial shows are written into an empty folder, exactly as a reader would, and
made discoverable as an installed distribution would be (a dist-info built from the tutorial's own
``pyproject.toml``); the snippets and commands then run against that folder, not against the
copy in ``plugins/genkit-iaf``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
PLUGIN = "plugins/genkit-iaf/"
MARKER = re.compile(r"^<!-- (file|excerpt|run|console)(?:: (\S+))? -->$")
FENCE = re.compile(r"^```(\w*)$")


class Block(NamedTuple):
    kind: str  # file, excerpt, run or console
    path: str | None  # repository-relative, for file and excerpt
    body: str


def marked_blocks(text: str) -> list[Block]:
    """Every marked block: the first fenced block after each marker comment."""
    lines = text.splitlines(keepends=True)
    blocks, i = [], 0
    while i < len(lines):
        marker = MARKER.match(lines[i].rstrip("\n"))
        i += 1
        if not marker:
            continue
        while not FENCE.match(lines[i].rstrip("\n")):
            i += 1
        start = i = i + 1
        while lines[i].rstrip("\n") != "```":
            i += 1
        blocks.append(Block(marker.group(1), marker.group(2), "".join(lines[start:i])))
    return blocks


BLOCKS = marked_blocks(DOC.read_text())


def of_kind(kind: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind == kind]


def test_the_tutorial_marks_the_blocks_these_tests_check():
    assert {b.kind for b in BLOCKS} == {"file", "excerpt", "run", "console"}


@pytest.mark.parametrize("block", of_kind("file"), ids=lambda b: b.path)
def test_every_file_the_tutorial_shows_is_the_plugin_file_verbatim(block):
    assert block.body == (ROOT / block.path).read_text()


def test_the_tutorial_shows_every_source_file_of_the_plugin():
    package = ROOT / PLUGIN
    expected = {"pyproject.toml", *(str(p.relative_to(package)) for p in (package / "src").rglob("*.py"))}
    assert {b.path.removeprefix(PLUGIN) for b in of_kind("file")} == expected


@pytest.mark.parametrize("block", of_kind("excerpt"), ids=lambda b: b.path)
def test_every_excerpt_appears_verbatim_in_its_file(block):
    assert block.body in (ROOT / block.path).read_text()


@pytest.fixture(scope="module")
def tutorial_plugin(tmp_path_factory) -> dict[str, str]:
    """The tutorial's files in an empty folder, on the path with a dist-info made from its pyproject.toml.

    Returns the environment under which Python finds that folder's ``genkit_iaf`` (ahead of any
    installed copy) and its ``genkit`` entry point.
    """
    folder = tmp_path_factory.mktemp("tutorial") / "genkit-iaf"
    for block in of_kind("file"):
        target = folder / block.path.removeprefix(PLUGIN)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.body)
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    dist_info = folder / "src" / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    groups = project["entry-points"]
    (dist_info / "entry_points.txt").write_text(
        "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in groups.items())
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENKIT_LOAD_PLUGINS": "iaf"}
    env["PYTHONPATH"] = os.pathsep.join([str(folder / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.mark.parametrize("index", range(len(of_kind("run"))))
def test_the_python_snippets_run_against_the_tutorials_own_files(index, tutorial_plugin, tmp_path):
    script = tmp_path / "snippet.py"
    where = "import genkit_iaf, sys\nprint('genkit_iaf from', genkit_iaf.__file__, file=sys.stderr)\n"
    script.write_text(of_kind("run")[index].body + where)
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=tutorial_plugin, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"genkit_iaf from {tutorial_plugin['PYTHONPATH'].split(os.pathsep)[0]}" in result.stderr
    # the snippets state what they print in comments: "print(...)  # expected"
    for printed in re.findall(r"^print\(.*\)  # (.+)$", of_kind("run")[index].body, flags=re.M):
        assert printed in result.stdout.splitlines()


def _matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` lines in order within ``actual``; ``...`` skips any number of lines; runs of spaces are equal."""
    norm = lambda line: " ".join(line.split())  # noqa: E731
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(_matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and norm(expected[0]) == norm(actual[0]) and _matches(expected[1:], actual[1:])


@pytest.mark.parametrize("index", range(len(of_kind("console"))))
def test_the_commands_print_what_the_tutorial_shows(index, tutorial_plugin):
    command, *expected = of_kind("console")[index].body.splitlines()
    assert command.startswith("$ ")
    words = shlex.split(command[2:])
    env = dict(tutorial_plugin)
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[0] == "genkit"
    result = subprocess.run(
        [sys.executable, "-m", "genkit", *words[1:]], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    output = (result.stdout + result.stderr).splitlines()
    assert _matches(expected, output), "\n".join(output)
    assert result.returncode == (2 if expected[0].startswith("genkit: error:") else 0)
