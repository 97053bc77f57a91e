"""Likelihood on a data split: the model's figure in bits per dimension, its parts and its tighter bounds.

Every model's ``forward`` gives, per image, ``nll`` — the exact negative log-likelihood or the
bound its objective names (:class:`genkit.interfaces.Objective`) — and the parts that sum to it.
Evaluation averages them over a split; for a model with latent variables also the rate of every
latent layer; with ``importance_samples = K`` on a model with an importance-weighted bound the
bound of Burda et al. (2016), ``log (1/K) Σ_k p(x, v_k) / q(v_k | x)``, v_k ~ q, which is never
looser than the single-draw bound in expectation and tightens as K grows; for an invertible model,
on request, the largest round-trip error of its inverse. :func:`per_image_terms` keeps the figures
image by image instead (``genkit eval --images``, ``genkit rates --images``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from genkit.capabilities import ImportanceWeighted, Invertible, LatentVariables, require
from genkit.engine.data import Batches, eval_loader, to_device
from genkit.engine.distributed import Distributed
from genkit.engine.figures import Figures
from genkit.errors import ConfigError
from genkit.interfaces import nats_to_bits


def not_finite(figures: dict[str, Any]) -> str | None:
    """The figures in bits per dimension (``bits_per_dim`` and its parts) that are NaN or infinite, as ``key =
    value``, or ``None``: reported as numbers they would read as a result, where the model has in fact diverged."""
    bad = [
        f"{key} = {value}"
        for key, value in figures.items()
        if key.endswith("bits_per_dim") and isinstance(value, float) and not math.isfinite(value)
    ]
    return ", ".join(bad) or None


def method(model) -> str:
    """How one evaluation computes the model's figure, for reports and model cards."""
    objective = model.objective
    return f"{objective.label}, {objective.estimate}" if objective.estimate else objective.label


def block_generator(seed: int, block: int, device: torch.device) -> torch.Generator:
    """The generator of evaluation block ``block`` (the ``block``-th batch of the split, counting from 0).

    An image's draws depend only on the seed and on which block it is in, never on which process
    evaluates that block: one process and many report the same figure.
    """
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + block)


@torch.no_grad()
def evaluate_dataset(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    batch_size: int,
    max_images: int | None = None,
    importance_samples: int = 0,
    inverse_error: bool = False,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    num_workers: int = 0,
    context: Distributed | None = None,
) -> dict[str, Any]:
    """Average the model's per-image figures over the first ``max_images`` images of ``dataset`` (all by default).

    Returns ``images``, ``objective`` (what the figure is), ``method``, ``nats_per_dim`` and
    ``bits_per_dim``, ``{part}_bits_per_dim`` for each part of the objective; for a model with latent
    variables ``layer_rate_bits_per_dim`` (one per layer, summing to the rate); with
    ``importance_samples`` > 0 ``importance_samples``, ``iw_nats_per_dim`` and ``iw_bits_per_dim``;
    with ``inverse_error`` (an invertible model) ``inverse_error``.

    The images are taken in blocks of ``batch_size``; every random draw of block ``b`` (latents,
    dequantization noise, importance samples) comes from :func:`block_generator` of ``seed`` and ``b``.
    Under ``torchrun`` pass the trainer's ``context``: the ranks share the blocks, and the figures are
    reduced over them (:class:`genkit.engine.figures.Figures`), so any number of processes reports
    what one process reports.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    context = context or Distributed(device=device)
    device = context.device
    if importance_samples:
        require(model, ImportanceWeighted, "eval.importance_samples (--importance-samples)")
    if inverse_error:
        require(model, Invertible, "the inverse error")
    loader = eval_loader(
        dataset,
        batch_size,
        max_images=max_images,
        num_workers=num_workers,
        device=device,
        rank=context.rank,
        world_size=context.world_size,
    )
    was_training = model.training
    model.eval()
    dims = math.prod(model.image_shape)
    parts = model.objective.parts
    figures = Figures(device)  # nats per dimension, summed over images; KLs in nats per image, summed
    with Batches(loader) as batches:  # ends the loader's workers, if any, however the loop ends
        bar = tqdm(
            batches,
            total=len(loader),
            desc="evaluate",
            unit="batch",
            disable=not (progress and context.is_main),
            leave=False,
        )
        for index, images in enumerate(bar):
            images = to_device(images, device)
            generator = block_generator(seed, context.rank + index * context.world_size, device)
            terms = model(images, generator=generator)
            figures.add("images", torch.tensor(float(images.shape[0])))
            figures.add("nll", terms.nll.double().sum())
            for name in parts:
                figures.add(f"part:{name}", terms.parts[name].double().sum())
            if isinstance(model, LatentVariables) and terms.layer_kl is not None:
                figures.add("layer_kl", terms.layer_kl.double().sum(0))
            if importance_samples:
                log_weights = torch.stack(
                    [
                        model.importance_log_weights(images, generator=generator).double()
                        for _ in range(importance_samples)
                    ]
                )
                bound = torch.logsumexp(log_weights, 0) - math.log(importance_samples)  # nats per image, (B,)
                figures.add("iw", (-bound / dims).sum())
            if inverse_error:
                figures.maximum("inverse_error", model.inverse_error(images, generator=generator).double())
    totals = figures.reduced(context)
    model.train(was_training)
    n = float(totals["images"]) if "images" in totals else 0.0
    if n == 0:
        raise ConfigError("evaluation got no images: the split is empty or max_images is 0")
    nll = float(totals["nll"]) / n
    result: dict[str, Any] = {
        "images": int(n),
        "objective": model.objective.label,
        "method": method(model),
        "nats_per_dim": nll,
        "bits_per_dim": nats_to_bits(nll),
        **{f"{name}_bits_per_dim": nats_to_bits(float(totals[f"part:{name}"]) / n) for name in parts},
    }
    if isinstance(model, LatentVariables):
        layer_kl = totals.get("layer_kl")
        result["layer_rate_bits_per_dim"] = [] if layer_kl is None else nats_to_bits(layer_kl / n / dims).tolist()
    if importance_samples:
        iw = float(totals["iw"]) / n
        result.update(importance_samples=importance_samples, iw_nats_per_dim=iw, iw_bits_per_dim=nats_to_bits(iw))
    if inverse_error:
        result["inverse_error"] = float(totals["inverse_error"])
    return result


@torch.no_grad()
def per_image_terms(
    model: torch.nn.Module,
    images: torch.Tensor,
    *,
    latents: str = "sample",
    batch_size: int,
    device: torch.device | str,
    generator: torch.Generator | None = None,
) -> dict[str, list]:
    """Every image's figure and its parts (nats/dim), and every latent layer's KL (nats), in lists.

    Keys: ``nll_nats_per_dim``; ``{key}_nats_per_dim`` too when the model's objective has its own key
    (e.g. ``elbo``); ``{part}_nats_per_dim`` per part; ``kl_nats_per_layer`` for a model with
    latent variables. ``latents`` and ``generator`` are the model's ``forward`` arguments.
    """
    objective = model.objective
    names = ["nll", *([objective.key] if objective.key != "nll" else []), *objective.parts]
    out: dict[str, list] = {f"{name}_nats_per_dim": [] for name in names}
    layers: list = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        terms = model(batch, latents=latents, generator=generator)
        figures = {"nll": terms.nll, objective.key: terms.nll, **terms.parts}
        for name in names:
            out[f"{name}_nats_per_dim"] += figures[name].double().tolist()
        if terms.layer_kl is not None:
            layers += terms.layer_kl.double().tolist()
    if isinstance(model, LatentVariables):
        out["kl_nats_per_layer"] = layers
    return out
