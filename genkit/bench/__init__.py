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
* model FLOPs per image for forward + backward, counted by ``torch.utils.flop_counter`` on the
  meta device (nothing is allocated), and the fraction of the device's peak that the measured
  training speed achieves (MFU), where the device's peak is known;
* with ``policies``, the training step under each activation-checkpointing policy against the
  step without, timed in turn in the same run, as a ratio, with the memory saved for backward per
  image under each;
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
import math
import platform
import time
from typing import Any

import torch

from genkit.bench.measures import (
    compare_policies,
    data_images_per_s,
    device_peak,
    flops_per_image,
    median_seconds,
    peak_for_name,
    saved_activation_mib_per_image,
    saved_bytes,
    synchronize,
)
from genkit.bench.profile import profile_steps, profile_table
from genkit.bench.tables import format_table, policy_table, sampler_table
from genkit.capabilities import DataDependentInit
from genkit.engine.distributed import Distributed
from genkit.engine.graphs import GraphedCall
from genkit.engine.recompute import apply_recompute
from genkit.engine.step import EMA, build_optimizer, training_step
from genkit.errors import ConfigError, DivergedError, GenkitError
from genkit.interfaces import nats_to_bits
from genkit.models import build_model
from genkit.pairing import check_pairing
from genkit.pretrained import WEIGHTS_NAME, load_state_dict, load_strict, resolve_local
from genkit.recipe import Recipe

GRAPH_WARMUP = 3  # eager steps before a CUDA graph is captured


def _bench_images(recipe: Recipe, batch: int, model: torch.nn.Module, use_data: bool) -> tuple[torch.Tensor, Any, str]:
    """(``batch`` fixed images, the data set or ``None``, where the images came from).

    A data set that is on this machine must fit the model (:func:`genkit.pairing.check_pairing`): the numerical
    guard's loss is a figure of the model on its images.
    """
    if use_data:
        try:
            dataset = recipe.data.build("dataset")
        except GenkitError:  # the data set is not on this machine: random images of the right shape
            dataset = None
        if dataset is not None:
            check_pairing(model, dataset, recipe.data.name, where=recipe.origin(), split="validation")
            validation = dataset.split("validation")
            if len(validation) >= batch:
                images = torch.stack([validation[i] for i in range(batch)])
                return images, dataset, f"{recipe.data.name} validation images"
    h, w, c = model.image_shape
    generator = torch.Generator(device="cpu").manual_seed(0)
    return torch.randint(0, 256, (batch, h, w, c), dtype=torch.uint8, generator=generator), None, "random images"


def load_weights(model: torch.nn.Module, weights: str) -> None:
    """Trained weights from a model directory or a run directory (its latest checkpoint) into ``model``."""
    directory = resolve_local(weights)
    if directory is None:
        raise ConfigError(f"--weights {weights}: no such model or run directory")
    load_strict(model, load_state_dict(directory / WEIGHTS_NAME), str(directory / WEIGHTS_NAME))


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


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
    if config.cuda_graph and device.type != "cuda":
        raise ConfigError(
            f"{recipe.origin('train')}: train.cuda_graph = true needs a CUDA device, "
            f"and this benchmark runs on {device}"
        )
    if policies and config.cuda_graph:
        raise ConfigError(
            f"--activation-checkpointing {','.join(policies)}: a step captured in a CUDA graph (train.cuda_graph = "
            f"true in {recipe.origin('train')}) cannot recompute; compare the policies with --no-cuda-graph"
        )
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = build_model(recipe, device)
    if weights is not None:
        load_weights(model, weights)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    images, dataset, images_from = _bench_images(recipe, batch, model, use_data)
    images = images.to(device)
    if weights is None and isinstance(model, DataDependentInit):  # as a fresh run starts: timed on working weights
        model.train()
        with torch.no_grad():
            model.initialize(images)
    optimizer, scheduler = build_optimizer(model, config)
    ema = EMA(model, config.ema_rate)
    what = f"{recipe.origin('train')}: train.activation_checkpointing"
    apply_recompute(model, config.activation_checkpointing, what)
    forward = torch.compile(model) if config.compile else model
    step = training_step(forward, model, optimizer, ema, config, Distributed(device=device), GRAPH_WARMUP)
    autocast = (step.step if config.cuda_graph else step).autocast
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
        "images": images_from,
        "weights": weights,
        "trained": train,
    }

    if train:

        def train_step() -> None:
            step(images)
            scheduler.step()

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        train_step()
        synchronize(device)
        first_step_s = time.perf_counter() - started
        step_s = median_seconds(train_step, device, max(0, warmup - 1), steps)
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
            result["profile"] = profile_steps(train_step, device, profile)
        if policies:
            result["policies"] = compare_policies(
                train_step,
                model,
                images,
                policies,
                device,
                warmup=max(1, warmup // 2),
                repeats=steps,
                autocast_factory=autocast,
                what="--activation-checkpointing",
            )

    sampler = ema.model.eval()
    result["sampling"] = time_samplers(
        sampler, device, batch=samples, repeats=sample_repeats, graphed=config.cuda_graph
    )
    with torch.no_grad(), autocast():
        eval_s = median_seconds(lambda: sampler(images), device, 2, max(3, steps // 2))
    result["eval_images_per_s"] = batch / eval_s

    if train:
        model.train()
        pair = images.expand(2, *images.shape[1:]) if len(images) < 2 else images
        result["saved_activations_mib_per_image"] = saved_activation_mib_per_image(model, pair, autocast)
        # the numerical guard, after the timed steps (so compiling it costs the timings nothing)
        with torch.no_grad():
            model.eval()
            float32_loss = model(images, latents="mean").loss.float().item()
            with autocast():
                fast_loss = forward(images, latents="mean").loss.float().item()
        if not math.isfinite(float32_loss):  # no guard can be measured against it, and nan% would read as one
            raise DivergedError(
                f"the loss of the guard batch in plain float32 is {float32_loss} although the weights are finite: "
                "the model has diverged (as --weights gave it, or as the timed steps left it)"
            )
        result.update(
            loss_float32_bpd=nats_to_bits(float32_loss),
            loss_measured_path_bpd=nats_to_bits(fast_loss),
            # a measured path that gives NaN where float32 does not is as far off as can be
            loss_relative_difference=abs(fast_loss - float32_loss) / abs(float32_loss)
            if math.isfinite(fast_loss)
            else math.inf,
            data_images_per_s=data_images_per_s(dataset, recipe, batch, device) if dataset is not None else None,
        )
        flops = flops_per_image(recipe) if count_flops else None
        peak = device_peak(device, config.dtype)
        result.update(
            gflop_per_image=None if flops is None else flops / 1e9,
            device_peak_tflops=None if peak is None else peak / 1e12,
            mfu=None if (flops is None or peak is None) else flops * result["train_images_per_s"] / peak,
        )
    return result


__all__ = [
    "flops_per_image",
    "format_table",
    "peak_for_name",
    "policy_table",
    "profile_table",
    "sampler_table",
    "run_benchmark",
    "saved_activation_mib_per_image",
    "saved_bytes",
    "time_samplers",
]
