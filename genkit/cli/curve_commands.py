"""``genkit curve``: learning curves of one run or several, as a table at chosen steps and a plot."""

from __future__ import annotations

import click

from genkit.cli.options import OutputPath, emit_json, json_option, say


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--label", "labels", multiple=True, help="A name for each run, in order (default: the run directory's name)."
)
@click.option("--at", "at", default=None, help="Comma-separated steps to tabulate (default: every logged step).")
@click.option(
    "--plot",
    type=OutputPath("plot"),
    default=None,
    help="PNG plot of training and validation bits/dim against step.",
)
@click.option("--title", default=None, help="Title of the plot.")
@json_option
def curve(runs, labels, at, plot, title, json_path) -> None:
    """Training loss (bits/dim, the mean over each logging interval) of RUNS, side by side, at chosen steps.

    RUNS are run directories (or their metrics.jsonl files). Example, comparing two runs at the
    steps of the reference's learning curve:

        genkit curve runs/cifar10 runs/cifar10-fast --at 200,400,600,800,1000,1200 --plot curve.png
    """
    from genkit.engine import curves
    from genkit.errors import ConfigError

    if labels and len(labels) != len(runs):
        raise ConfigError(f"--label: given {len(labels)} labels for {len(runs)} runs; give one per run or none")
    loaded = [curves.read_curve(run, label) for run, label in zip(runs, labels or [None] * len(runs))]
    if at:
        try:
            steps = [int(part) for part in at.split(",") if part.strip()]
        except ValueError:
            raise ConfigError(f"--at {at!r}: expected comma-separated step numbers, e.g. --at 200,400,600") from None
    else:
        steps = sorted({step for c in loaded for step, _ in c.train})
    rows = curves.table(loaded, steps)
    width = max(12, *(len(c.label) for c in loaded))
    say(f"{'step':>8}  " + "  ".join(f"{c.label:>{width}}" for c in loaded), json_path)
    for row in rows:
        cells = ["-" if row[c.label] is None else f"{row[c.label]:.4f}" for c in loaded]
        say(f"{row['step']:>8}  " + "  ".join(f"{cell:>{width}}" for cell in cells), json_path)
    for c in loaded:
        if c.validation:
            step, value = c.validation[-1]
            say(f"{c.label}: validation {value:.4f} bits/dim (EMA weights) at step {step}", json_path)
    if plot:
        curves.plot(loaded, plot, title=title)
    if json_path:
        emit_json(json_path, {"unit": "bits/dim", "rows": rows, "validation": {c.label: c.validation for c in loaded}})


COMMANDS = [curve]
