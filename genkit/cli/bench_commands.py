"""``genkit bench``: measure a recipe's speed and memory on this device."""

from __future__ import annotations

import json
from pathlib import Path

import click

from genkit.cli.options import overrides_option


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@overrides_option
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Training batch (default: the recipe's train.batch_size).")
@click.option("--steps", type=click.IntRange(min=1), default=25, show_default=True, help="Timed training steps (the median is reported).")
@click.option("--warmup", type=click.IntRange(min=1), default=8, show_default=True, help="Untimed steps first (compilation happens here).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default=None, help="Override train.dtype.")
@click.option("--compile/--no-compile", "compile_", default=None, help="Override train.compile.")
@click.option("--device", default=None, help="torch device (default: cuda when available, else cpu).")
@click.option("--no-flops", is_flag=True, help="Skip counting FLOPs (and so MFU).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the figures to this JSON file.")
def bench(recipe, overrides, batch, steps, warmup, dtype, compile_, device, no_flops, json_path) -> None:
    """Measure training images/s, peak memory, sampling latency, evaluation speed and MFU of RECIPE's model."""
    import torch

    from genkit.bench import format_table, run_benchmark
    from genkit.recipe import load_recipe

    extra = list(overrides)
    if dtype is not None:
        extra.append(f"train.dtype={json.dumps(dtype)}")
    if compile_ is not None:
        extra.append(f"train.compile={'true' if compile_ else 'false'}")
    resolved = load_recipe(recipe, extra)
    result = run_benchmark(
        resolved,
        batch=batch or resolved.train.batch_size,
        steps=steps,
        warmup=warmup,
        device=torch.device(device) if device else None,
        count_flops=not no_flops,
    )
    click.echo(format_table(result))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n")


COMMANDS = [bench]
