"""No module of the core imports, directly or through others, a module that imports it back.

Every ``import`` counts, those inside functions too: a lazy import hides a cycle from Python's
start-up, not from a reader. A lower floor (errors, interfaces, recipe) never reaches for a higher
one (the hub, the engine, the CLI).
"""

from __future__ import annotations

import ast
from pathlib import Path

from locations import ROOT


def module_graph(root: Path, package: str) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}`` for every ``.py`` file under ``root/package``."""
    files = {}
    for path in (root / package).rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
                # `from pkg import module` names the module; `from module import name` the module itself
                targets = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in files] or [base]
            else:
                continue
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_core_has_no_import_cycle():
    graph = module_graph(ROOT, "genkit")
    assert len(graph) > 30 and "genkit.engine.trainer" in graph
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" ↔ ".join(c) for c in found)


def test_interfaces_and_recipes_import_nothing_that_does_input_output_or_training():
    graph = module_graph(ROOT, "genkit")
    for low in ("genkit.interfaces", "genkit.recipe", "genkit.errors", "genkit.schema"):
        assert not graph[low] & {"genkit.hub", "genkit.pretrained", "genkit.cards", "genkit.engine.trainer"}, low


def test_the_check_finds_a_cycle_through_a_function_level_import(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def later():\n    from .c import thing\n")
    (package / "c.py").write_text("import pkg.a\nthing = 1\n")
    assert cycles(module_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b", "pkg.c"]]
