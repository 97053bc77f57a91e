"""The training step ``genkit bench`` times, built as ``genkit run`` builds it, and its numerical guard.

Both the benchmark and the tuner (``genkit bench --tune``) measure through these, so a setting is
timed and guarded the same way wherever its figure appears.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from genkit.capabilities import DataDependentInit
from genkit.engine.distributed import Distributed
from genkit.engine.recompute import apply_recompute
from genkit.engine.step import EMA, build_optimizer, training_step
from genkit.errors import ConfigError, DivergedError, GenkitError
from genkit.interfaces import nats_to_bits
from genkit.models import build_model
from genkit.pairing import check_pairing
from genkit.pretrained import WEIGHTS_NAME, load_state_dict, load_strict, resolve_local
from genkit.recipe import Recipe, TrainConfig

GRAPH_WARMUP = 3  # eager steps before a CUDA graph is captured
#: the largest relative difference of the guard batch's loss from float32 that counts as correct
GUARD_LIMIT = 0.005


def bench_images(recipe: Recipe, batch: int, model: torch.nn.Module, use_data: bool) -> tuple[torch.Tensor, Any, str]:
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


@dataclass
class BenchStep:
    """A recipe's model with the engine's training step on fixed images; calling it takes one step."""

    model: torch.nn.Module
    forward: torch.nn.Module  # the model as the step runs it (compiled when asked)
    step: Any
    scheduler: Any
    ema: EMA
    images: torch.Tensor
    dataset: Any
    images_from: str
    config: TrainConfig
    started: float  # time.perf_counter() before the model was built

    def __call__(self) -> None:
        self.step(self.images)
        self.scheduler.step()

    def autocast(self):
        """The autocast context the step runs its forward pass in."""
        return (self.step.step if self.config.cuda_graph else self.step).autocast()


def prepare_step(
    recipe: Recipe, device: torch.device, *, batch: int, weights: str | None = None, use_data: bool = True
) -> BenchStep:
    """Build ``recipe``'s model on ``device`` with its ``[train]`` settings (dtype, compile, channels-last, graph)."""
    config = recipe.train
    if config.cuda_graph and device.type != "cuda":
        raise ConfigError(
            f"{recipe.origin('train')}: train.cuda_graph = true needs a CUDA device, "
            f"and this benchmark runs on {device}"
        )
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = build_model(recipe, device)
    if weights is not None:
        load_weights(model, weights)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    images, dataset, images_from = bench_images(recipe, batch, model, use_data)
    images = images.to(device)
    if weights is None and isinstance(model, DataDependentInit):  # as a fresh run starts: timed on working weights
        model.train()
        with torch.no_grad():
            model.initialize(images)
    optimizer, scheduler = build_optimizer(model, config)
    ema = EMA(model, config.ema_rate)
    apply_recompute(model, config.activation_checkpointing, f"{recipe.origin('train')}: train.activation_checkpointing")
    forward = torch.compile(model) if config.compile else model
    step = training_step(forward, model, optimizer, ema, config, Distributed(device=device), GRAPH_WARMUP)
    return BenchStep(model, forward, step, scheduler, ema, images, dataset, images_from, config, started)


def numerical_guard(bench: BenchStep) -> dict[str, float]:
    """The loss of the fixed images (latents at their means, so nothing random) through the measured path — its
    dtype, compilation and memory layout — against the same weights in plain float32, as a relative difference."""
    model = bench.model
    with torch.no_grad():
        model.eval()
        float32_loss = model(bench.images, latents="mean").loss.float().item()
        with bench.autocast():
            fast_loss = bench.forward(bench.images, latents="mean").loss.float().item()
    model.train()
    if not math.isfinite(float32_loss):  # no guard can be measured against it, and nan% would read as one
        raise DivergedError(
            f"the loss of the guard batch in plain float32 is {float32_loss} although the weights are finite: "
            "the model has diverged (as --weights gave it, or as the timed steps left it)"
        )
    return {
        "loss_float32_bpd": nats_to_bits(float32_loss),
        "loss_measured_path_bpd": nats_to_bits(fast_loss),
        # a measured path that gives NaN where float32 does not is as far off as can be
        "loss_relative_difference": abs(fast_loss - float32_loss) / abs(float32_loss)
        if math.isfinite(fast_loss)
        else math.inf,
    }
