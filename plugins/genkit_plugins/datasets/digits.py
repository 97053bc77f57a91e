"""The embedded default: scikit-learn's copy of the UCI handwritten digits (Alpaydin & Kaynak 1998).

1,797 greyscale 8×8 images, each pixel a count 0–16 of inked cells in a 4×4 block of the
original 32×32 bitmap. They ship inside scikit-learn (``sklearn/datasets/data/digits.csv.gz``),
so the data set needs no download.

Mapping to 8 bits: count ``k`` becomes ``round(255·k/16)`` (0, 16, 32, …, 128, 143, …, 239, 255):
evenly spread, ends exact, and nothing invented: the images still use only 17 of the 256 levels,
so bits/dim is measured over the 8-bit alphabet like every other data set here, and a model that
learns the 17 levels gains from it honestly (the uniform 8-bit baseline does not).

Splits: a permutation with ``split_seed``; the last ``test_size`` images are the test set, the
``validation_size`` before them validation, the rest (1,257 by default) training.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Literal

import attrs
import numpy as np
from einops import rearrange

from genkit.errors import DataError, first_line
from genkit.schema import in_range, seed_field
from genkit_plugins.datasets.arrays import ArrayImageDataset, ArraySplit

WHERE = "the file scikit-learn ships as sklearn/datasets/data/digits.csv.gz (pip install scikit-learn)"
N_IMAGES, SIDE, MAX_COUNT = 1797, 8, 16


def bundled_file() -> Path:
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"


def to_levels(counts: np.ndarray, bits: int) -> np.ndarray:
    """Counts 0–16 onto the ``bits``-bit levels ``round((2**bits − 1)·k/16)``, stored as 8-bit pixels.

    A ``bits``-bit level ``l`` is stored as ``l · 2**(8 − bits)`` (its top bits), the convention of
    the reference's 5-bit FFHQ-256, which models such pixels by flooring to multiples of ``2**(8 − bits)``.
    """
    top = 2**bits - 1
    levels = np.rint(counts.astype(np.float64) * top / MAX_COUNT).astype(np.int64)
    return (levels << (8 - bits)).astype(np.uint8)


def read_digits(path: Path) -> np.ndarray:
    """``(1797, 8, 8, 1)`` ``uint8`` counts 0–16 from the CSV (64 pixel columns then the label)."""
    expected = f"a gzipped CSV of {N_IMAGES} rows × 65 integers (64 pixels 0–16, then the label): {WHERE}"
    if not path.is_file():
        raise DataError(f"{path}: not found; expected {expected}")
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: unreadable ({first_line(exc)}); expected {expected}") from None
    pixels = table[:, : SIDE * SIDE] if table.shape[1:] == (SIDE * SIDE + 1,) else None
    if (
        pixels is None
        or len(table) != N_IMAGES
        or pixels.min() < 0
        or pixels.max() > MAX_COUNT
        or (pixels != np.round(pixels)).any()
    ):
        raise DataError(f"{path}: found a table of shape {table.shape}; expected {expected}")
    return rearrange(pixels, "n (h w c) -> n h w c", h=SIDE, w=SIDE, c=1)


@attrs.frozen
class DigitsSettings:
    """Where the digits file is ("" = the copy inside scikit-learn) and how it is split."""

    root: str = ""
    validation_size: int = attrs.field(default=180, validator=in_range(1))
    test_size: int = attrs.field(default=360, validator=in_range(1))
    split_seed: int = seed_field(0)
    # 8: round(255·k/16); 5: the smallest depth whose levels keep all 17 counts apart (17 of 32 used)
    bits: Literal[5, 8] = 8


class Digits(ArrayImageDataset):
    """Handwritten digits bundled with scikit-learn: 1,797 8×8 greyscale images (no download), mapped to 8 bits."""

    def __init__(self, settings: DigitsSettings):
        path = Path(settings.root).expanduser() if settings.root else bundled_file()
        images = to_levels(read_digits(path), settings.bits)
        if settings.validation_size + settings.test_size >= len(images):
            raise DataError(
                f"{path}: {len(images)} images cannot give {settings.validation_size} for validation "
                f"and {settings.test_size} for test"
            )
        order = np.random.RandomState(settings.split_seed).permutation(len(images))
        n_train = len(images) - settings.validation_size - settings.test_size
        super().__init__(
            {
                "train": ArraySplit(images, order[:n_train]),
                "validation": ArraySplit(images, order[n_train : n_train + settings.validation_size]),
                "test": ArraySplit(images, order[n_train + settings.validation_size :]),
            },
            bits=settings.bits,
        )
