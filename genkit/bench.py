"""``genkit bench``: how fast a recipe's model trains, samples and evaluates on this device.

Measures, with the device synchronised around every timed region and medians over the timed
repetitions after warm-up:

* training images/s — the engine's real step (forward, backward, clipping, on-device skip
  decision, AdamW, EMA) on random images of the recipe's shape;
* the time from the start of the benchmark to the end of the first training step (building the
  model, and compiling when asked);
* peak GPU memory during training (CUDA only), and on any device the memory per image that
  autograd saves for the backward pass in eager mode (the part of peak memory the batch multiplies);
* the latency of sampling 64 images at temperature 1 (replayed from a CUDA graph of its own
  when the training step is graphed), and evaluation images/s (no gradients);
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

Figures depend on the device, the software and the moment; ``genkit bench`` prints them with
all three so that a figure in the docs can name where it came from.
"""

from __future__ import annotations

import datetime
import math
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from genkit.engine.data import to_device, train_loader
from genkit.engine.distributed import Distributed
from genkit.engine.graphs import GraphedCall
from genkit.engine.step import EMA, GraphedTrainStep, TrainStep, build_optimizer
from genkit.errors import ConfigError, GenkitError
from genkit.pretrained import WEIGHTS_NAME, load_state_dict, load_strict, model_from_recipe, resolve_local
from genkit.recipe import Recipe

GRAPH_WARMUP = 3  # eager steps before a CUDA graph is captured

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
    model = model_from_recipe(recipe, "meta")
    h, w, c = model.image_shape
    images = torch.zeros(1, h, w, c, dtype=torch.uint8, device="meta")
    with FlopCounterMode(display=False) as counter:
        model(images).loss.backward()
    return float(counter.get_total_flops())


def saved_bytes(model: torch.nn.Module, images: torch.Tensor, autocast) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one loss (weights left out).

    Each storage counts once however many views of it are saved; parameters do not count.
    """
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            kept[storage.data_ptr()] = max(kept.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast:
        loss = model(images).loss
    del loss  # frees the graph: nothing is kept beyond the count
    return sum(kept.values())


def saved_activation_mib_per_image(model: torch.nn.Module, images: torch.Tensor, autocast_factory) -> float:
    """MiB per image that autograd saves for backward in eager mode: the slope between batches of 1 and 2.

    The slope leaves out what does not grow with the batch (bf16 copies of the weights, say), so
    it is the part of peak training memory that the batch multiplies.
    """
    one = saved_bytes(model, images[:1].clone(), autocast_factory())  # clones: a view would keep the whole batch
    two = saved_bytes(model, images[:2].clone(), autocast_factory())
    return (two - one) / 2**20


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _bench_images(
    recipe: Recipe, batch: int, image_shape: tuple[int, int, int], use_data: bool
) -> tuple[torch.Tensor, Any, str]:
    """(``batch`` fixed images, the data set or ``None``, where the images came from)."""
    if use_data:
        try:
            dataset = recipe.data.build("dataset")
            validation = dataset.split("validation")
            if tuple(dataset.image_shape) == tuple(image_shape) and len(validation) >= batch:
                images = torch.stack([validation[i] for i in range(batch)])
                return images, dataset, f"{recipe.data.name} validation images"
        except GenkitError:  # the data set is not on this machine: random images of the right shape
            pass
    h, w, c = image_shape
    generator = torch.Generator(device="cpu").manual_seed(0)
    return torch.randint(0, 256, (batch, h, w, c), dtype=torch.uint8, generator=generator), None, "random images"


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
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(batches):
        to_device(next(loader), device)
    _synchronize(device)
    return batches * batch / (time.perf_counter() - start)


def load_weights(model: torch.nn.Module, weights: str) -> None:
    """Trained weights from a model directory or a run directory (its latest checkpoint) into ``model``."""
    directory = resolve_local(weights)
    if directory is None:
        raise ConfigError(f"--weights {weights}: no such model or run directory")
    load_strict(model, load_state_dict(directory / WEIGHTS_NAME), str(directory / WEIGHTS_NAME))


def run_benchmark(
    recipe: Recipe,
    *,
    batch: int,
    steps: int = 25,
    warmup: int = 8,
    device: torch.device | None = None,
    sample_batch: int = 64,
    sample_repeats: int = 5,
    count_flops: bool = True,
    weights: str | None = None,
    use_data: bool = True,
) -> dict[str, Any]:
    """Measure ``recipe`` (its ``train.dtype``, ``compile``, ``channels_last``, ``cuda_graph``) and return the
    figures."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = recipe.train
    if config.cuda_graph and device.type != "cuda":
        raise ConfigError(
            f"{recipe.source or 'recipe'}: train.cuda_graph = true needs a CUDA device, "
            f"and this benchmark runs on {device}"
        )
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = model_from_recipe(recipe, device)
    if weights is not None:
        load_weights(model, weights)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer, scheduler = build_optimizer(model, config)
    ema = EMA(model, config.ema_rate)
    forward = torch.compile(model) if config.compile else model
    step = TrainStep(forward, model, optimizer, ema, config, Distributed(device=device))
    if config.cuda_graph:
        warmup = max(warmup, GRAPH_WARMUP + 1)  # eager warm-up steps and the capture stay out of the timed steps
        run_step = GraphedTrainStep(step, warmup=GRAPH_WARMUP)
    else:
        run_step = step
    images, dataset, images_from = _bench_images(recipe, batch, model.image_shape, use_data)
    images = images.to(device)

    def train_step() -> None:
        run_step(images)
        scheduler.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_step()
    _synchronize(device)
    first_step_s = time.perf_counter() - started
    step_s = _median_seconds(train_step, device, max(0, warmup - 1), steps)
    peak_bytes = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None

    sampler = ema.model.eval()
    with torch.no_grad():
        draw = lambda: sampler.sample(sample_batch, temperature=1.0)  # noqa: E731
        if config.cuda_graph:  # sampling replayed from a graph of its own
            sample_s = _median_seconds(GraphedCall(draw, device=device, warmup=2), device, 3, sample_repeats)
        else:
            sample_s = _median_seconds(draw, device, 2, sample_repeats)
        with step.autocast():
            eval_s = _median_seconds(lambda: sampler(images), device, 2, max(3, steps // 2))

    model.train()
    activations_mib = saved_activation_mib_per_image(
        model, images.expand(2, *images.shape[1:]) if len(images) < 2 else images, step.autocast
    )

    # the numerical guard, after the timed steps (so compiling it costs the timings nothing)
    with torch.no_grad():
        model.eval()
        float32_loss = model(images, latents="mean").loss.float().item()
        with step.autocast():
            fast_loss = forward(images, latents="mean").loss.float().item()

    data_rate = data_images_per_s(dataset, recipe, batch, device) if dataset is not None else None
    flops = flops_per_image(recipe) if count_flops else None
    images_per_s = batch / step_s
    peak = device_peak(device, config.dtype)
    return {
        "recipe": recipe.source,
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "dtype": config.dtype,
        "compile": config.compile,
        "channels_last": config.channels_last,
        "cuda_graph": config.cuda_graph,
        "batch": batch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "images": images_from,
        "weights": weights,
        "train_images_per_s": images_per_s,
        "train_ms_per_step": 1000 * step_s,
        "first_step_s": first_step_s,
        "peak_memory_gib": None if peak_bytes is None else peak_bytes / 2**30,
        "memory_mib_per_image": None if peak_bytes is None else peak_bytes / 2**20 / batch,
        "saved_activations_mib_per_image": activations_mib,
        "sample_batch": sample_batch,
        "sample_ms": 1000 * sample_s,
        "eval_images_per_s": batch / eval_s,
        "data_images_per_s": data_rate,
        "loss_float32_bpd": float32_loss / math.log(2.0),
        "loss_measured_path_bpd": fast_loss / math.log(2.0),
        "loss_relative_difference": abs(fast_loss - float32_loss) / abs(float32_loss),
        "gflop_per_image": None if flops is None else flops / 1e9,
        "device_peak_tflops": None if peak is None else peak / 1e12,
        "mfu": None if (flops is None or peak is None) else flops * images_per_s / peak,
        "timed_steps": steps,
        "warmup_steps": warmup,
    }


def format_table(result: dict[str, Any]) -> str:
    """The figures as a two-column table for the terminal."""

    def show(value: Any, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    rows = [
        ("device", result["device"]),
        ("torch / date", f"{result['torch']} / {result['date']}"),
        (
            "dtype / compile / channels-last / CUDA graph",
            f"{result['dtype']} / {result['compile']} / {result['channels_last']} / {result['cuda_graph']}",
        ),
        ("parameters", f"{result['parameters']:,}"),
        (
            "batch / images",
            f"{result['batch']} / {result['images']}"
            + (f" (weights {result['weights']})" if result["weights"] else ""),
        ),
        ("train images/s", show(result["train_images_per_s"], ".1f")),
        ("train ms/step (median)", show(result["train_ms_per_step"], ".1f")),
        ("start to first step (s)", show(result["first_step_s"], ".1f")),
        ("peak train memory (GiB)", show(result["peak_memory_gib"], ".2f")),
        ("memory per image (MiB)", show(result["memory_mib_per_image"], ".0f")),
        ("saved for backward, eager (MiB/image)", show(result["saved_activations_mib_per_image"], ".1f")),
        (f"sample {result['sample_batch']} images, T=1 (ms)", show(result["sample_ms"], ".1f")),
        ("eval images/s", show(result["eval_images_per_s"], ".1f")),
        (
            "data path images/s",
            "n/a (no data set here)" if result["data_images_per_s"] is None else f"{result['data_images_per_s']:.0f}",
        ),
        (
            "loss, float32 / this path (bits/dim)",
            f"{result['loss_float32_bpd']:.4f} / {result['loss_measured_path_bpd']:.4f}",
        ),
        ("loss relative difference", f"{100 * result['loss_relative_difference']:.3f}%"),
        ("GFLOP per image (fwd+bwd)", show(result["gflop_per_image"], ".2f")),
        ("MFU", "n/a (device peak unknown)" if result["mfu"] is None else f"{100 * result['mfu']:.1f}%"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
