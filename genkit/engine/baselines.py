"""Trivial baselines a trained model must beat, computed from the data alone.

* **uniform**: every one of the ``2**bits`` levels equally likely: exactly ``bits`` bits/dim.
* **per-pixel histogram**: each (row, column, channel) gets its own categorical distribution,
  fitted by counting the training images, with add-α smoothing so unseen levels keep some mass
  (α chosen among a few values on the validation split, never on test). It is the best model
  that treats every dimension as independent of all others, so beating it measures what the
  model learnt about dependence between pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from genkit.engine.data import eval_loader

ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0)


def _batches(dataset: Dataset, max_images: int | None, bits: int):
    """Batches as ``bits``-bit levels (the files hold 8-bit pixels; a 5-bit data set keeps the top 5 bits, as the
    reference's target does)."""
    for batch in eval_loader(dataset, 1024, max_images=max_images, num_workers=0, device=torch.device("cpu")):
        yield batch.numpy() >> (8 - bits)


def pixel_counts(dataset: Dataset, levels: int, max_images: int | None = None) -> np.ndarray:
    """``counts[d, v]``: how many images have level ``v`` at dimension ``d`` (float64, ``(H·W·C, levels)``)."""
    counts = None
    for images in _batches(dataset, max_images, int(math.log2(levels))):
        flat = images.reshape(len(images), -1).astype(np.int64)
        dims = flat.shape[1]
        add = np.bincount((np.arange(dims) * levels + flat).ravel(), minlength=dims * levels).reshape(dims, levels)
        counts = add.astype(np.float64) if counts is None else counts + add
    return counts


def histogram_bits_per_dim(counts: np.ndarray, dataset: Dataset, alpha: float, max_images: int | None = None) -> float:
    """Cross-entropy (bits/dim) of ``dataset`` under the smoothed per-pixel histograms."""
    log_probs = np.log2(counts + alpha) - np.log2(counts.sum(1, keepdims=True) + alpha * counts.shape[1])
    total, n = 0.0, 0
    for images in _batches(dataset, max_images, int(math.log2(counts.shape[1]))):
        flat = images.reshape(len(images), -1).astype(np.int64)
        total -= log_probs[np.arange(flat.shape[1]), flat].sum()
        n += flat.size
    return float(total / n)


def trivial_baselines(
    train: Dataset, validation: Dataset, test: Dataset, bits: int, *, max_images: int | None = None
) -> dict[str, float]:
    """``{"uniform": bits, "pixel_histogram": …, "pixel_histogram_alpha": α}`` in bits/dim on ``test``."""
    levels = 2**bits
    counts = pixel_counts(train, levels, max_images=100_000)  # plenty to fit 2**bits values per dimension
    alpha = min(ALPHAS, key=lambda a: histogram_bits_per_dim(counts, validation, a, max_images))
    return {
        "uniform": math.log2(levels),
        "pixel_histogram": histogram_bits_per_dim(counts, test, alpha, max_images),
        "pixel_histogram_alpha": alpha,
    }
