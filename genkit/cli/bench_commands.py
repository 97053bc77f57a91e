"""``genkit bench``: measure a recipe's speed and memory on this device; ``genkit plan``: count its memory for a GPU."""

from __future__ import annotations

import json

import click

from genkit.cli.options import ByteSize, Count, Device, emit_json, json_option, overrides_option, say


@click.command()
@click.argument("recipes", metavar="RECIPE...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@overrides_option
@click.option(
    "--batch-size",
    type=Count(1),
    default=None,
    help="Training batch (default: each recipe's train.batch_size).",
)
@click.option(
    "--steps",
    type=Count(1),
    default=25,
    show_default=True,
    help="Timed training steps (the median is reported).",
)
@click.option(
    "--warmup",
    type=Count(1),
    default=8,
    show_default=True,
    help="Untimed steps first (compilation happens here).",
)
@click.option("--no-train", is_flag=True, help="Time only sampling and evaluation (a slow sampler needs no steps).")
@click.option("--samples", type=Count(1), default=64, show_default=True, help="Images each sample call draws.")
@click.option(
    "--sample-repeats",
    type=Count(1),
    default=3,
    show_default=True,
    help="Timed sample calls per sampler, after one untimed (the median is reported).",
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
    "--activation-checkpointing",
    "policies",
    default=None,
    metavar="POLICY[,POLICY…]",
    help="Also time the training step under each activation-checkpointing policy (off, all, resolution>=R) "
    "against the step without, in turn in the same run, and report the ratio and the MiB saved for backward "
    "per image.",
)
@click.option(
    "--weights",
    default=None,
    help="Measure trained weights: a model directory or a run directory (its latest checkpoint); one RECIPE only.",
)
@click.option("--no-data", is_flag=True, help="Leave the recipe's data set alone: random images, no data-path figure.")
@click.option("--device", type=Device(), default=None, help="torch device (default: cuda when available, else cpu).")
@click.option("--no-flops", is_flag=True, help="Skip counting FLOPs (and so MFU).")
@click.option(
    "--profile",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    metavar="STEPS",
    help="Profile STEPS training steps after the timed ones and print the ten most expensive operations "
    "with their share of the step (0: no profile).",
)
@click.option(
    "--tune",
    is_flag=True,
    help="Find the fastest correct training settings: time every dtype, channels-last, compile and CUDA graph "
    "setting this device offers, alternating, and print the --set options of the fastest whose numerical guard "
    "holds. --dtype, --channels-last, --compile and --cuda-graph (and their --no- forms) hold a setting instead; "
    "on a CPU compilation stays off unless --compile holds it on. --steps is the timed steps per setting.",
)
@click.option(
    "--rounds",
    type=Count(1),
    default=5,
    show_default=True,
    help="With --tune: the rounds the timed steps are spread over, every setting once per round.",
)
@json_option
def bench(
    recipes,
    overrides,
    batch_size,
    steps,
    warmup,
    no_train,
    samples,
    sample_repeats,
    dtype,
    compile_,
    channels_last,
    cuda_graph,
    weights,
    no_data,
    device,
    no_flops,
    profile,
    policies,
    tune,
    rounds,
    json_path,
) -> None:
    """Measure RECIPEs' models on this device: training speed and memory, every sampler's latency, evaluation
    speed, MFU, the data path and the numerical guard.

    Several recipes are measured one after the other and their samplers compared in one table, e.g.

        genkit bench A.toml B.toml C.toml --no-train

    With --tune it measures settings instead and prints the fastest correct one as --set options:

        genkit bench recipes/digits.toml --tune
    """
    import torch

    from genkit.bench import format_table, policy_table, profile_table, run_benchmark, sampler_table
    from genkit.errors import ConfigError
    from genkit.recipe import load_recipe
    from genkit.recompute import parse_policy

    if profile and no_train:
        raise ConfigError(f"--profile {profile}: profiles training steps, and --no-train leaves them out")
    if tune and (no_train or profile or policies):
        other = "--no-train" if no_train else "--profile" if profile else "--activation-checkpointing"
        raise ConfigError(f"--tune: times training steps alone, so {other} has nothing to do with it")
    if tune:
        held = {"dtype": dtype, "channels_last": channels_last, "compile": compile_, "cuda_graph": cuda_graph}
        _tune(recipes, list(overrides), held, batch_size, steps, rounds, warmup, device, weights, no_data, json_path)
        return
    compared = None
    if policies is not None:
        if no_train:
            raise ConfigError(
                f"--activation-checkpointing {policies}: times training steps, and --no-train leaves them out"
            )
        try:
            compared = [parse_policy(text).text for text in policies.split(",")]
        except ValueError as exc:
            raise ConfigError(f"--activation-checkpointing {policies}: {exc}") from None
    if weights is not None and len(recipes) > 1:
        raise ConfigError(f"--weights {weights}: measures one recipe's model, and {len(recipes)} recipes are given")
    extra = list(overrides)
    if dtype is not None:
        extra.append(f"train.dtype={json.dumps(dtype)}")
    for key, flag in (("compile", compile_), ("channels_last", channels_last), ("cuda_graph", cuda_graph)):
        if flag is not None:
            extra.append(f"train.{key}={'true' if flag else 'false'}")
    results = []
    for recipe in recipes:
        resolved = load_recipe(recipe, extra)
        result = run_benchmark(
            resolved,
            batch=batch_size or resolved.train.batch_size,
            steps=steps,
            warmup=warmup,
            device=torch.device(device) if device else None,
            samples=samples,
            sample_repeats=sample_repeats,
            count_flops=not no_flops,
            weights=weights,
            use_data=not no_data,
            train=not no_train,
            profile=profile,
            policies=compared,
        )
        results.append(result)
        say(format_table(result) + "\n", json_path)
        if profile:
            say(profile_table(result["profile"]) + "\n", json_path)
        if compared:
            say(policy_table(result) + "\n", json_path)
    say(sampler_table(results), json_path)
    if json_path:
        emit_json(json_path, results)


def _tune(recipes, overrides, held, batch_size, steps, rounds, warmup, device, weights, no_data, json_path) -> None:
    import torch

    from genkit.bench.tables import tune_table
    from genkit.bench.tune import tune
    from genkit.recipe import load_recipe

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    results = []
    for recipe in recipes:
        resolved = load_recipe(recipe, overrides)
        result = tune(
            resolved,
            batch=batch_size or resolved.train.batch_size,
            device=device,
            held=held,
            steps=steps,
            rounds=rounds,
            warmup=warmup,
            weights=weights,
            use_data=not no_data,
        )
        results.append(result)
        say(tune_table(result) + "\n", json_path)
    if json_path:
        emit_json(json_path, results)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option(
    "--gpu-memory",
    "memory",
    type=ByteSize(),
    required=True,
    help="Memory of each GPU, e.g. 80GiB, 24GB (GB = 10⁹ bytes, GiB = 2³⁰).",
)
@click.option("--gpus", type=Count(1), default=1, show_default=True, help="GPUs (processes under torchrun).")
@click.option(
    "--global-batch",
    type=Count(1),
    default=None,
    help="Images per update (default: the recipe's train.global_batch, else train.batch_size × train.accumulate × "
    "--gpus).",
)
@overrides_option
@json_option
def plan(recipe, memory, gpus, global_batch, overrides, json_path) -> None:
    """Count RECIPE's training memory and plan it onto GPUs: the bytes of the weights, gradients, AdamW moments and
    EMA copy; the bytes saved for backward per image under each activation-checkpointing policy, in float32 and
    bf16; and, for each, the largest micro-batch that fits, the accumulation that makes up the global batch, and
    the predicted peak. Counted on fake tensors: nothing is allocated, and it takes seconds.

        genkit plan recipes/ffhq256.toml --gpu-memory 80GiB --gpus 8
    """
    from genkit.bench.plan import count_memory, format_plan, run_command, to_json
    from genkit.bench.plan import plan as plan_fits
    from genkit.recipe import load_recipe

    resolved = load_recipe(recipe, list(overrides))
    train = resolved.train
    batch = global_batch or train.global_batch or train.batch_size * train.accumulate * gpus
    count = count_memory(resolved)
    fits = plan_fits(count, memory=memory, gpus=gpus, global_batch=batch)
    command = lambda chosen: run_command(recipe, overrides, chosen, gpus, train, batch)  # noqa: E731
    say(format_plan(count, fits, memory=memory, gpus=gpus, global_batch=batch, command=command), json_path)
    if json_path:
        emit_json(json_path, to_json(count, fits, memory, gpus, batch))


COMMANDS = [bench, plan]
