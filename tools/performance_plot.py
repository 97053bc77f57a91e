"""The plot of docs/performance.md, drawn from that page's own tables (``tools/make_doc_pictures.py --only
performance`` calls it): change a figure in a table, draw the plot again, and the two agree.

:data:`PERFORMANCE_PANELS` says which table (by the heading above it) and which column each bar series comes from.
"""

from __future__ import annotations

import re

import attrs


@attrs.frozen
class Series:
    """One bar series: a column of the table under ``heading`` in docs/performance.md.

    ``unit`` is the unit its cells carry after the number ("" for a bare number); a cell in another unit (or no
    number at all) is left out. ``label`` formats each bar's name from the row's cells by column name.
    """

    heading: str
    column: str
    unit: str
    label: str
    legend: str


# Each panel: a title and the series it shows. To plot a new table, add a Series naming its heading and column.
PERFORMANCE_PANELS = (
    (
        "GFLOP per image, forward + backward",
        (Series("Model cost per recipe", "GFLOP per image, forward + backward", "", "{recipe}", "counted"),),
    ),
    (
        "training images/s on one H100, recipes/cifar10.toml",
        (Series("The reference on an H100", "images/s", "", "{what}, batch {batch}", "reference (openai/vdvae)"),),
    ),
    (
        "MiB per image in training, recipes/cifar10.toml",
        (
            Series(
                "The reference on an H100",
                "peak memory per image",
                "MiB",
                "{what}, batch {batch}",
                "reference, peak on an H100",
            ),
            Series(
                "Memory that grows with the batch",
                "saved for backward per image",
                "MiB",
                "genkit, {dtype}",
                "genkit, saved for backward (counted on a CPU)",
            ),
        ),
    ),
)

NUMBER = re.compile(r"^\s*([0-9][0-9,]*(?:\.[0-9]+)?)\s*(.*?)\s*$")


def markdown_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """The first table under each heading of a markdown page: ``{heading: [row as {column: cell}]}``."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading, lines = None, text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and heading is not None and heading not in tables and i + 1 < len(lines):
            columns = cells(line)
            body = []
            i += 2  # the header and the |---| line
            while i < len(lines) and lines[i].startswith("|"):
                body.append(dict(zip(columns, cells(lines[i]))))
                i += 1
            tables[heading] = body
            continue
        i += 1
    return tables


def cells(line: str) -> list[str]:
    return [cell.strip().replace("`", "") for cell in line.strip().strip("|").split("|")]


def series_bars(series: Series, tables: dict[str, list[dict[str, str]]]) -> list[tuple[str, float]]:
    """``(label, value)`` for every row of the series' table whose cell holds a number in the series' unit."""
    if series.heading not in tables:
        raise SystemExit(f"docs/performance.md: no table under a heading {series.heading!r} (PERFORMANCE_PANELS)")
    bars = []
    for row in tables[series.heading]:
        if series.column not in row:
            raise SystemExit(
                f"docs/performance.md: the table under {series.heading!r} has no column {series.column!r}; "
                f"it has {', '.join(repr(c) for c in row)}"
            )
        match = NUMBER.match(row[series.column])
        if match and match.group(2).split(" (")[0] == series.unit:
            bars.append((series.label.format_map(row), float(match.group(1).replace(",", ""))))
    return bars


def performance_figure(page: str):
    """A matplotlib figure: one panel of horizontal bars for each of :data:`PERFORMANCE_PANELS`, from ``page``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = markdown_tables(page)
    panels = [(title, [(s, series_bars(s, tables)) for s in series]) for title, series in PERFORMANCE_PANELS]
    heights = [sum(len(bars) for _, bars in panel) + 1 for _, panel in panels]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8, 0.32 * sum(heights) + 1.1 * len(panels)), height_ratios=heights, dpi=100
    )
    for ax, (title, panel) in zip(axes, panels):
        labels, position = [], 0
        for index, (series, bars) in enumerate(panel):
            for label, value in bars:
                ax.barh(position, value, color=f"C{index}", label=series.legend if label == bars[0][0] else None)
                ax.text(value, position, f" {value:,g}", va="center", fontsize=8)
                labels.append(label)
                position += 1
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10, loc="left")
        ax.margins(x=0.18)
        ax.tick_params(axis="x", labelsize=8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0, -0.12), frameon=False)
    fig.tight_layout()
    return fig
