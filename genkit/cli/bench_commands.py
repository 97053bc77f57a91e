"""``genkit bench``: measure a recipe's speed and memory on this device."""

from __future__ import annotations

import json

import click

from genkit.cli.options import overrides_option, write_json


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@overrides_option
@click.option(
    "--batch", type=click.IntRange(min=1), default=None, help="Training batch (default: the recipe's train.batch_size)."
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=25,
    show_default=True,
    help="Timed training steps (the median is reported).",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Untimed steps first (compilation happens here).",
)
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default=None, help="Override train.dtype.")
@click.option("--compile/--no-compile", "compile_", default=None, help="Override train.compile.")
@click.option("--channels-last/--no-channels-last", "channels_last", default=None, help="Override train.channels_last.")
@click.option(
    "--cuda-graph/--no-cuda-graph",
    "cuda_graph",
    default=None,
    help="Override train.cuda_graph (capture the whole step; CUDA only).",
)
@click.option(
    "--weights",
    default=None,
    help="Measure trained weights: a model directory or a run directory (its latest checkpoint).",
)
@click.option("--no-data", is_flag=True, help="Leave the recipe's data set alone: random images, no data-path figure.")
@click.option("--device", default=None, help="torch device (default: cuda when available, else cpu).")
@click.option("--no-flops", is_flag=True, help="Skip counting FLOPs (and so MFU).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the figures to this JSON file.",
)
def bench(
    recipe,
    overrides,
    batch,
    steps,
    warmup,
    dtype,
    compile_,
    channels_last,
    cuda_graph,
    weights,
    no_data,
    device,
    no_flops,
    json_path,
) -> None:
    """Measure training images/s, peak memory, sampling latency, evaluation speed, MFU, the data path and the numerical
    guard of RECIPE's model."""
    import torch

    from genkit.bench import format_table, run_benchmark
    from genkit.recipe import load_recipe

    extra = list(overrides)
    if dtype is not None:
        extra.append(f"train.dtype={json.dumps(dtype)}")
    for key, flag in (("compile", compile_), ("channels_last", channels_last), ("cuda_graph", cuda_graph)):
        if flag is not None:
            extra.append(f"train.{key}={'true' if flag else 'false'}")
    resolved = load_recipe(recipe, extra)
    result = run_benchmark(
        resolved,
        batch=batch or resolved.train.batch_size,
        steps=steps,
        warmup=warmup,
        device=torch.device(device) if device else None,
        count_flops=not no_flops,
        weights=weights,
        use_data=not no_data,
    )
    click.echo(format_table(result))
    if json_path:
        write_json(json_path, result)


COMMANDS = [bench]
