"""What every data-set format shares: ``uint8`` array splits and the reference's seeded hold-outs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from genkit.errors import ConfigError, DataError, first_line
from genkit.interfaces import ImageDataset

SPLITS = ("train", "validation", "test")


class ArraySplit(Dataset):
    """Images ``(N, H, W, C)`` ``uint8`` (an array or a memory map), optionally seen through ``indices``.

    ``__getitems__`` lets a ``DataLoader`` fetch a whole batch with one fancy-index read, which is
    what keeps a memory-mapped ImageNet file from being read one image at a time.
    """

    def __init__(self, images: np.ndarray, indices: np.ndarray | None = None):
        self.images = images
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices) if self.indices is not None else len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        j = int(self.indices[i]) if self.indices is not None else int(i)
        return torch.from_numpy(np.array(self.images[j], dtype=np.uint8, copy=True))

    def __getitems__(self, batch: Sequence[int]) -> torch.Tensor:
        rows = np.asarray(batch, dtype=np.int64)
        if self.indices is not None:
            rows = self.indices[rows]
        # a memory map reads fastest in file order; put the batch back in the sampler's order after
        order = np.argsort(rows, kind="stable")
        picked = np.empty((len(rows), *self.images.shape[1:]), dtype=np.uint8)
        picked[order] = self.images[rows[order]]
        return torch.from_numpy(picked)


def seeded_holdout(n: int, holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: ``np.random.seed(seed); permutation(n)``, the last ``holdout`` held out.

    This is how openai/vdvae splits ImageNet-32/64 (seed 42, 5,000) and FFHQ-256 (seed 5, 7,000).
    """
    if holdout >= n:
        raise DataError(f"cannot hold out {holdout} of only {n} images for validation")
    permutation = np.random.RandomState(seed).permutation(n)
    return permutation[:-holdout], permutation[-holdout:]


class ArrayImageDataset(ImageDataset):
    """A data set whose three splits are already ``ArraySplit`` views (``validation_is_test``: see ``ImageDataset``)."""

    def __init__(self, splits: dict[str, ArraySplit], bits: int = 8, *, validation_is_test: bool = False):
        self._splits = splits
        self.bits = bits
        self.validation_is_test = validation_is_test
        self.image_shape = tuple(int(s) for s in splits["train"].images.shape[1:])

    def split(self, name: str) -> ArraySplit:
        if name not in self._splits:
            raise ConfigError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return self._splits[name]


def load_npy(path: Path, *, where: str, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """Memory-map a ``uint8`` ``.npy`` array ``(N, H, W, C)``, failing with one line that says what was expected."""
    expected = (
        "a uint8 .npy array (N, H, W, C)" if shape is None else f"a uint8 .npy array of shape {_shape_text(shape)}"
    )
    if not path.is_file():
        raise DataError(f"{path}: not found; expected {expected} ({where})")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(
            f"{path}: not a readable .npy file ({first_line(exc)}); expected {expected} ({where})"
        ) from None
    ok = array.dtype == np.uint8 and array.ndim == 4 and array.shape[-1] in (1, 3)
    if shape is not None:
        ok = ok and all(want is None or want == got for want, got in zip(shape, array.shape))
    if not ok:
        raise DataError(
            f"{path}: found {array.dtype} array of shape {tuple(array.shape)}; expected {expected} ({where})"
        )
    return array


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
