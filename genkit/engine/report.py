"""The end of a run: the test figure beside the trivial baselines, printed and written to results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from genkit import rundirs
from genkit.interfaces import Objective


def summary_lines(final: dict[str, Any], objective: Objective) -> list[str]:
    parts = objective.parts_text(final, "_bits_per_dim")
    lines = [
        f"{final['split']} bits/dim: {final['bits_per_dim']:.4f} "
        f"({objective.label}, EMA weights, {final['images']} images, step {final['step']}"
        + (f"; {parts})" if parts else ")")
    ]
    applied = final.get("updates_applied")
    if applied == 0:
        lines.append(f"no update was applied in {final['step']} steps: the figure is of the untrained, initial weights")
    elif applied is not None:
        skipped = final["step"] - applied
        lines.append(
            f"updates applied: {applied} of {final['step']}"
            + (f" ({skipped} skipped for a non-finite or too-large gradient)" if skipped else "")
        )
    if "iw_bits_per_dim" in final:
        lines.append(
            f"importance-weighted bound, K={final['importance_samples']}: {final['iw_bits_per_dim']:.4f} bits/dim"
        )
    baselines = final.get("baselines")
    if baselines:
        best_name, best = min(
            [
                ("uniform over the levels", baselines["uniform"]),
                ("per-pixel independent histogram", baselines["pixel_histogram"]),
            ],
            key=lambda item: item[1],
        )
        lines.append(
            f"trivial baselines on the same images: uniform {baselines['uniform']:.4f} bits/dim, "
            f"per-pixel independent histogram {baselines['pixel_histogram']:.4f} bits/dim "
            f"(fitted on train, add-{baselines['pixel_histogram_alpha']} smoothing)"
        )
        margin = best - final["bits_per_dim"]
        verdict = "below" if margin > 0 else "ABOVE"
        lines.append(
            f"the model is {abs(margin):.4f} bits/dim ({abs(margin) / best:.0%}) {verdict} "
            f"the best trivial baseline ({best_name})"
        )
    return lines


def print_summary(final: dict[str, Any], run_dir: Path, objective: Objective) -> None:
    for line in summary_lines(final, objective):
        click.echo(line)
    click.echo(f"run directory: {run_dir} ({', '.join(run_contents(run_dir))})")


def run_contents(run_dir: Path) -> list[str]:
    """What a run directory holds for the user, naming only what is there."""
    found = []
    if rundirs.latest_samples(run_dir) is not None:
        found.append(f"samples in {run_dir / rundirs.SAMPLES}")
    if rundirs.checkpoint_dirs(run_dir):
        found.append(f"model directory: {run_dir}")
    else:
        found.append("no checkpoint and so no model directory (no step was taken)")
    return found
