"""``genkit bench``: how fast a recipe's model trains, samples and evaluates on this device.

Measures, with the device synchronised around every timed region and medians over the timed
repetitions after warm-up:

* training images/s — the engine's real step (forward, backward, clipping, on-device skip
  decision, AdamW, EMA) on random images of the recipe's shape;
* the time from the start of the benchmark to the end of the first training step (building the
  model, and compiling when asked);
* peak GPU memory during training (CUDA only), and on any device the memory per image that
  autograd saves for the backward pass in eager mode (the part of peak memory the batch multiplies);
* the latency of sampling 64 images at temperature 1 with every sampler the model offers
  (replayed from a CUDA graph of its own when the training step is graphed), and evaluation
  images/s (no gradients);
* with ``policies``, the training step under each activation-checkpointing policy against the
  step without, timed in turn in the same run, as a ratio, with the memory saved for backward per
  image under each;
* model FLOPs per image for forward + backward, counted by ``torch.utils.flop_counter`` on the
  meta device (nothing is allocated), and the fraction of the device's peak that the measured
  training speed achieves (MFU), where the device's peak is known;
* the numerical guard: the loss of one fixed batch (latents at their means, so nothing random)
  through the measured path — its dtype, compilation and memory layout — against the same
  weights (as they are after the timed steps) in plain float32, as a relative difference;
* how many images per second the recipe's data path delivers to the device (its loader, worker
  processes and pinned memory as in training), when the recipe's data is on this machine — the
  data path must outrun the training step, or it is the bottleneck.

The images are the recipe's validation images when its data set can be read here, random
images of its shape otherwise (or when ``use_data`` is false); ``weights`` loads trained weights
(a model or run directory) in place of the initialisation, which matters for the numerical guard.

With ``train=False`` only sampling and evaluation are measured, which is how a slow sampler (an
autoregressive model's) is compared with fast ones without waiting for training steps.

Figures depend on the device, the software and the moment; ``genkit bench`` prints them with
all three so that a figure in the docs can name where it came from.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import torch

from genkit.bench.measures import (
    compare_policies,
    data_images_per_s,
    device_name,
    device_peak,
    flops_per_image,
    median_seconds,
    peak_for_name,
    saved_activation_mib_per_image,
    saved_bytes,
    synchronize,
)
from genkit.bench.profile import profile_steps, profile_table
from genkit.bench.steps import GRAPH_WARMUP, GUARD_LIMIT, numerical_guard, prepare_step
from genkit.bench.tables import format_table, policy_table, sampler_table
from genkit.engine.graphs import GraphedCall
from genkit.errors import ConfigError
from genkit.recipe import Recipe


@torch.no_grad()
def time_samplers(
    model: torch.nn.Module, device: torch.device, *, batch: int, repeats: int, graphed: bool
) -> list[dict[str, Any]]:
    """``batch`` images at temperature 1 with each of the model's samplers: median of ``repeats`` after a warm-up."""
    rows = []
    for name in model.samplers:
        draw = lambda name=name: model.sample(batch, temperature=1.0, sampler=name)  # noqa: E731
        if graphed:  # replayed from a graph of its own
            seconds = median_seconds(GraphedCall(draw, device=device, warmup=2), device, 3, repeats)
        else:
            seconds = median_seconds(draw, device, 1, repeats)
        rows.append({"sampler": name, "batch": batch, "ms": 1000 * seconds, "images_per_s": batch / seconds})
    return rows


def run_benchmark(
    recipe: Recipe,
    *,
    batch: int,
    steps: int = 25,
    warmup: int = 8,
    device: torch.device | None = None,
    samples: int = 64,
    sample_repeats: int = 3,
    count_flops: bool = True,
    weights: str | None = None,
    use_data: bool = True,
    train: bool = True,
    profile: int = 0,
    policies: list[str] | None = None,
) -> dict[str, Any]:
    """Measure ``recipe`` (its ``train.dtype``, ``compile``, ``channels_last``, ``cuda_graph``,
    ``activation_checkpointing``) and return the figures; with ``train=False`` only its samplers and evaluation.
    Each sampler draws ``samples`` images a call; ``policies`` are compared with no recomputation."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = recipe.train
    if policies and config.cuda_graph:
        raise ConfigError(
            f"--activation-checkpointing {','.join(policies)}: a step captured in a CUDA graph (train.cuda_graph = "
            f"true in {recipe.origin('train')}) cannot recompute; compare the policies with --no-cuda-graph"
        )
    bench = prepare_step(recipe, device, batch=batch, weights=weights, use_data=use_data)
    model, images = bench.model, bench.images
    if config.cuda_graph:
        warmup = max(warmup, GRAPH_WARMUP + 1)  # eager warm-up steps and the capture stay out of the timed steps
    result: dict[str, Any] = {
        "recipe": recipe.source,
        "device": device_name(device),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "dtype": config.dtype,
        "compile": config.compile,
        "channels_last": config.channels_last,
        "cuda_graph": config.cuda_graph,
        "activation_checkpointing": config.activation_checkpointing,
        "batch": batch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "objective": model.objective.label,
        "images": bench.images_from,
        "weights": weights,
        "trained": train,
    }

    if train:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        bench()
        synchronize(device)
        first_step_s = time.perf_counter() - bench.started
        step_s = median_seconds(bench, device, max(0, warmup - 1), steps)
        peak_bytes = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        result.update(
            train_images_per_s=batch / step_s,
            train_ms_per_step=1000 * step_s,
            first_step_s=first_step_s,
            peak_memory_gib=None if peak_bytes is None else peak_bytes / 2**30,
            memory_mib_per_image=None if peak_bytes is None else peak_bytes / 2**20 / batch,
            timed_steps=steps,
            warmup_steps=warmup,
        )
        if profile:
            result["profile"] = profile_steps(bench, device, profile)
        if policies:
            result["policies"] = compare_policies(
                bench,
                model,
                images,
                policies,
                device,
                warmup=max(1, warmup // 2),
                repeats=steps,
                autocast_factory=bench.autocast,
                what="--activation-checkpointing",
            )

    sampler = bench.ema.model.eval()
    result["sampling"] = time_samplers(
        sampler, device, batch=samples, repeats=sample_repeats, graphed=config.cuda_graph
    )
    with torch.no_grad(), bench.autocast():
        eval_s = median_seconds(lambda: sampler(images), device, 2, max(3, steps // 2))
    result["eval_images_per_s"] = batch / eval_s

    if train:
        model.train()
        pair = images.expand(2, *images.shape[1:]) if len(images) < 2 else images
        result["saved_activations_mib_per_image"] = saved_activation_mib_per_image(model, pair, bench.autocast)
        result.update(numerical_guard(bench))  # after the timed steps, so compiling it costs the timings nothing
        dataset = bench.dataset
        result["data_images_per_s"] = None if dataset is None else data_images_per_s(dataset, recipe, batch, device)
        flops = flops_per_image(recipe) if count_flops else None
        peak = device_peak(device, config.dtype)
        result.update(
            gflop_per_image=None if flops is None else flops / 1e9,
            device_peak_tflops=None if peak is None else peak / 1e12,
            mfu=None if (flops is None or peak is None) else flops * result["train_images_per_s"] / peak,
        )
    return result


__all__ = [
    "GUARD_LIMIT",
    "flops_per_image",
    "format_table",
    "peak_for_name",
    "policy_table",
    "profile_table",
    "sampler_table",
    "numerical_guard",
    "prepare_step",
    "run_benchmark",
    "saved_activation_mib_per_image",
    "saved_bytes",
    "time_samplers",
]
