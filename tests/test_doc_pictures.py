"""tools/make_doc_pictures.py: the performance plot reads the page's own tables, and every picture it draws has its
place in a page and its file in docs/pictures/. (Drawing them takes real training runs: the script is run by hand.)"""

from __future__ import annotations

import importlib.util

import pytest
from locations import ROOT


def load_tool(name: str):
    """A module of tools/, which imports its neighbours as a script run from there would."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "tools"))
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return load_tool("make_doc_pictures")


@pytest.fixture(scope="module")
def plot():
    return load_tool("performance_plot")


PAGE = """# Speed

## Numbers

Text before the table.

| what | batch | images/s | memory |
|---|---|---|---|
| `train`, float32 | 16 | 1,066.9 | 610 MiB |
| sample | 64 | 54.4 ms | – |

## Other

| a | b |
|---|---|
| x | 1 |
"""


def test_a_tables_rows_are_read_by_column_with_code_marks_dropped(plot):
    tables = plot.markdown_tables(PAGE)
    assert list(tables) == ["Numbers", "Other"]
    assert tables["Numbers"][0] == {"what": "train, float32", "batch": "16", "images/s": "1,066.9", "memory": "610 MiB"}


def test_a_series_keeps_the_cells_in_its_unit_and_leaves_out_the_others(plot):
    tables = plot.markdown_tables(PAGE)
    speed = plot.Series("Numbers", "images/s", "", "{what}, batch {batch}", "speed")
    memory = plot.Series("Numbers", "memory", "MiB", "{what}", "memory")
    assert plot.series_bars(speed, tables) == [("train, float32, batch 16", 1066.9)]  # not "54.4 ms"
    assert plot.series_bars(memory, tables) == [("train, float32", 610.0)]  # not "–"


def test_a_renamed_column_stops_the_script_naming_it(plot):
    tables = plot.markdown_tables(PAGE)
    with pytest.raises(SystemExit, match="has no column 'images per second'"):
        plot.series_bars(plot.Series("Numbers", "images per second", "", "{what}", "x"), tables)


def test_every_series_of_the_performance_plot_finds_figures_in_the_performance_page(plot):
    tables = plot.markdown_tables((ROOT / "docs" / "performance.md").read_text())
    for _, series in plot.PERFORMANCE_PANELS:
        for one in series:
            assert plot.series_bars(one, tables), one


def test_every_picture_has_one_place_in_its_page_and_its_file(script):
    for name, picture in script.ALL.items():
        text = (ROOT / "docs" / picture.page).read_text()
        blocks = [m for m in script.BLOCK.finditer(text) if m.group("name") == name]
        assert len(blocks) == 1, name
        assert f"](pictures/{name}.png)" in blocks[0].group(0)
        assert (ROOT / "docs" / "pictures" / f"{name}.png").is_file()
