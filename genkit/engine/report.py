"""The end of a run: the test figure beside the trivial baselines, printed and written to results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from genkit.interfaces import Objective


def parts_text(objective: Objective, figures: dict[str, Any], suffix: str) -> str:
    """``distortion 1.4082 + rate 0.4269``: the parts of the objective as ``figures`` gives them (key + ``suffix``)."""
    return " + ".join(f"{name} {figures[name + suffix]:.4f}" for name in objective.parts)


def summary_lines(final: dict[str, Any], objective: Objective) -> list[str]:
    parts = parts_text(objective, final, "_bits_per_dim")
    lines = [
        f"{final['split']} bits/dim: {final['bits_per_dim']:.4f} "
        f"({objective.label}, EMA weights, {final['images']} images, step {final['step']}"
        + (f"; {parts})" if parts else ")")
    ]
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
    click.echo(f"run directory: {run_dir} (samples in {run_dir / 'samples'}, model directory: {run_dir})")
