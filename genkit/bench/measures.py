"""What ``genkit bench`` measures, each on its own: timings, FLOPs, memory saved for backward, the cost of
recomputation, the data path."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from genkit.bench.saved import saved_bytes
from genkit.engine.data import to_device, train_loader
from genkit.engine.recompute import recomputing
from genkit.models import build_model
from genkit.recipe import Recipe
from genkit.recompute import OFF

# Dense peak throughput (FLOP/s) of tensor-core matrix work, by device-name fragment and dtype.
# float32 counts TF32 tensor cores, which PyTorch uses for convolutions by default.
DEVICE_PEAKS: list[tuple[str, dict[str, float]]] = [
    ("H100 PCIe", {"bfloat16": 756e12, "float32": 378e12}),
    ("H100", {"bfloat16": 989.4e12, "float32": 494.7e12}),
    ("H200", {"bfloat16": 989.4e12, "float32": 494.7e12}),
    ("A100", {"bfloat16": 312e12, "float32": 156e12}),
]


def device_peak(device: torch.device, dtype: str) -> float | None:
    """The device's dense peak FLOP/s for ``dtype``, or ``None`` when genkit does not know it (CPUs included)."""
    if device.type != "cuda":
        return None
    return peak_for_name(torch.cuda.get_device_name(device), dtype)


def peak_for_name(name: str, dtype: str) -> float | None:
    """The dense peak FLOP/s of the device called ``name`` (as CUDA reports it) for ``dtype``."""
    for fragment, peaks in DEVICE_PEAKS:
        if fragment in name:
            return peaks.get(dtype)
    return None


def flops_per_image(recipe: Recipe) -> float:
    """Forward + backward FLOPs of one training image, counted on the meta device."""
    model = build_model(recipe, "meta")
    h, w, c = model.image_shape
    images = torch.zeros(1, h, w, c, dtype=torch.uint8, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(images).loss.backward()
    return float(counter.get_total_flops())


def saved_activation_mib_per_image(model: torch.nn.Module, images: torch.Tensor, autocast_factory) -> float:
    """MiB per image that autograd saves for backward in eager mode: the slope between batches of 1 and 2.

    The slope leaves out what does not grow with the batch (bf16 copies of the weights, say), so
    it is the part of peak training memory that the batch multiplies.
    """
    one = saved_bytes(model, images[:1].clone(), autocast_factory())  # clones: a view would keep the whole batch
    two = saved_bytes(model, images[:2].clone(), autocast_factory())
    return (two - one) / 2**20


def compare_policies(
    step: Callable[[], Any],
    model: torch.nn.Module,
    images: torch.Tensor,
    policies: list[str],
    device: torch.device,
    *,
    warmup: int,
    repeats: int,
    autocast_factory,
    what: str,
) -> list[dict[str, Any]]:
    """The training step under each activation-checkpointing policy against the step without, in one run.

    Rounds of one step of every policy in turn (``off`` first), ``warmup`` untimed then ``repeats``
    timed, so that a change of the machine's speed during the run touches every policy alike. Per
    policy: the median ms per step, its ratio to the median without recomputation, and the MiB per
    image saved for backward (:func:`saved_activation_mib_per_image`).
    """
    order = [OFF, *(policy for policy in policies if policy != OFF)]
    times: dict[str, list[float]] = {policy: [] for policy in order}
    for round_ in range(warmup + repeats):
        for policy in order:
            with recomputing(model, policy, what):
                seconds = median_seconds(step, device, 0, 1)
            if round_ >= warmup:
                times[policy].append(seconds)
    pair = images.expand(2, *images.shape[1:]) if len(images) < 2 else images
    base = statistics.median(times[OFF])
    rows = []
    for policy in order:
        model.train()
        with recomputing(model, policy, what):
            saved = saved_activation_mib_per_image(model, pair, autocast_factory)
        seconds = statistics.median(times[policy])
        rows.append(
            {"policy": policy, "ms_per_step": 1000 * seconds, "ratio": seconds / base, "saved_mib_per_image": saved}
        )
    return rows


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def elapsed_seconds(fn: Callable[[], Any], device: torch.device, calls: int) -> float:
    """Seconds that ``calls`` calls of ``fn`` take together, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return time.perf_counter() - start


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def median_seconds(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def data_images_per_s(dataset, recipe: Recipe, batch: int, device: torch.device, batches: int = 50) -> float:
    """Images/s that the training data path (loader, workers, pinned memory, copy) hands to ``device``."""
    config = recipe.train
    loader = iter(
        train_loader(
            dataset.split("train"), batch, seed=config.seed, start=0, num_workers=config.num_workers, device=device
        )
    )
    for _ in range(min(5, batches)):  # workers start and fill their queues
        to_device(next(loader), device)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(batches):
        to_device(next(loader), device)
    synchronize(device)
    return batches * batch / (time.perf_counter() - start)
