"""Trivial baselines a trained model must beat, computed from the data alone.

* **uniform**: every one of the ``2**bits`` levels equally likely: exactly ``bits`` bits/dim.
* **per-pixel histogram**: each (row, column, channel) gets its own categorical distribution,
  fitted by counting the training images, with add-α smoothing so unseen levels keep some mass
  (α chosen among a few values on the validation split, never on test). It is the best model
  that treats every dimension as independent of all others, so beating it measures what the
  model learnt about dependence between pixels.

Where the validation split is the test set (a data set with no hold-out of its own, such as
CIFAR-10 with ``validation_size = 0``), α is chosen instead on a slice of the training images
(:func:`alpha_holdout`) with the histograms counted on the rest; the reported histograms are then
counted on all of train.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from genkit.engine.data import eval_loader

ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0)
FIT_IMAGES = 100_000  # plenty to fit 2**bits values per dimension


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


def alpha_holdout(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(held-out, rest) indices of ``n`` training images, both sorted: 10 % (1 to 5,000) after a seeded permutation."""
    k = max(1, min(5000, n // 10))
    order = np.random.RandomState(seed).permutation(n)
    return np.sort(order[:k]), np.sort(order[k:])


def trivial_baselines(
    train: Dataset, validation: Dataset | None, test: Dataset, bits: int, *, max_images: int | None = None
) -> dict[str, float]:
    """``{"uniform": bits, "pixel_histogram": …, "pixel_histogram_alpha": α}`` in bits/dim on ``test``.

    ``validation`` is ``None`` when the data set's validation split is its test set: α is then chosen
    on :func:`alpha_holdout`'s slice of ``train``, so the test images are looked at only to be scored.
    """
    levels = 2**bits

    def best_alpha(counts: np.ndarray, held_out: Dataset) -> float:
        return min(ALPHAS, key=lambda a: histogram_bits_per_dim(counts, held_out, a, max_images))

    if validation is not None:
        counts = pixel_counts(train, levels, max_images=FIT_IMAGES)
        alpha = best_alpha(counts, validation)
    else:
        held, rest = alpha_holdout(len(train))
        counts = pixel_counts(Subset(train, rest.tolist()), levels, max_images=FIT_IMAGES)
        alpha = best_alpha(counts, Subset(train, held.tolist()))
        counts = counts + pixel_counts(Subset(train, held.tolist()), levels)
    return {
        "uniform": math.log2(levels),
        "pixel_histogram": histogram_bits_per_dim(counts, test, alpha, max_images),
        "pixel_histogram_alpha": alpha,
    }
