"""Test-set likelihood: the negative ELBO in bits per dimension, its parts, and an importance-weighted bound.

The ELBO (Kingma & Welling 2014) of every image is ``log p(x|z) − KL(q(z|x) ‖ p(z))`` with one
posterior sample, as the reference VDVAE reports it (Child 2021). With ``importance_samples = K``
the importance-weighted bound of Burda et al. (2016),
``log (1/K) Σ_k p(x, z_k) / q(z_k | x)``, z_k ~ q, is computed as well; it is never looser than
the ELBO in expectation and tightens as K grows.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from genkit.errors import ConfigError

LN2 = math.log(2.0)


@torch.no_grad()
def evaluate_dataset(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int,
    max_images: int | None = None,
    importance_samples: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    num_workers: int = 0,
    context=None,
) -> dict[str, Any]:
    """Average the model's per-image terms over the first ``max_images`` images of ``dataset`` (all by default).

    Returns ``bits_per_dim`` and ``nats_per_dim`` (negative ELBO), ``distortion_bits_per_dim``,
    ``rate_bits_per_dim``, ``layer_rate_bits_per_dim`` (one per latent layer, summing to the rate),
    ``images``, and with ``importance_samples`` > 0 ``iw_bits_per_dim`` / ``iw_nats_per_dim``.
    Under ``torchrun`` pass the trainer's ``context`` to share the images between ranks.
    """
    from genkit.engine.data import eval_loader, to_device
    from genkit.engine.distributed import Distributed

    context = context or Distributed(
        device=torch.device(device) if device is not None else next(model.parameters()).device
    )
    device = context.device
    if importance_samples and not hasattr(model, "importance_log_weights"):
        raise ConfigError(
            f"eval.importance_samples: {type(model).__name__} has no importance_log_weights, "
            "so it has no importance-weighted bound"
        )
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
    sums = torch.zeros(
        4, dtype=torch.float64, device=device
    )  # elbo, distortion, rate, iw (nats per dim, summed over images)
    layer_sums: torch.Tensor | None = None
    count = torch.zeros((), dtype=torch.float64, device=device)
    bar = tqdm(loader, desc="evaluate", unit="batch", disable=not (progress and context.is_main), leave=False)
    for images in bar:
        images = to_device(images, device)
        terms = model(images)
        sums[0] += terms.elbo.double().sum()
        sums[1] += terms.distortion.double().sum()
        sums[2] += terms.rate.double().sum()
        if terms.layer_kl is not None:
            layer = terms.layer_kl.double().sum(0)
            layer_sums = layer if layer_sums is None else layer_sums + layer
        if importance_samples:
            log_weights = torch.stack(
                [model.importance_log_weights(images).double() for _ in range(importance_samples)]
            )
            bound = torch.logsumexp(log_weights, 0) - math.log(importance_samples)  # nats per image, (B,)
            sums[3] += (-bound / dims).sum()
        count += images.shape[0]
    context.all_reduce_(sums)
    context.all_reduce_(count)
    if layer_sums is not None:
        context.all_reduce_(layer_sums)
    model.train(was_training)
    n = float(count)
    if n == 0:
        raise ConfigError("evaluation got no images: the split is empty or max_images is 0")
    mean = (sums / n).tolist()
    result: dict[str, Any] = {
        "images": int(n),
        "nats_per_dim": mean[0],
        "bits_per_dim": mean[0] / LN2,
        "distortion_bits_per_dim": mean[1] / LN2,
        "rate_bits_per_dim": mean[2] / LN2,
        "layer_rate_bits_per_dim": [] if layer_sums is None else (layer_sums / n / dims / LN2).tolist(),
    }
    if importance_samples:
        result.update(importance_samples=importance_samples, iw_nats_per_dim=mean[3], iw_bits_per_dim=mean[3] / LN2)
    return result
