"""What the commands on a trained model share: MODEL, its options, reading images, scaling grids.

MODEL is a model directory, a run directory (its latest EMA weights) or a Hub repo id, loaded by
:func:`genkit.hub.from_pretrained`.
"""

from __future__ import annotations

import click
import numpy as np
import torch

from genkit.cli.options import SEED_MAX, Count, Device
from genkit.errors import ConfigError, DataError

DTYPES = {"float32": torch.float32, "float64": torch.float64}

model_argument = click.argument("model_path", metavar="MODEL")
device_option = click.option(
    "--device", type=Device(), default="cpu", show_default=True, help="Where to run: cpu, cuda, cuda:1…"
)
dtype_option = click.option(
    "--dtype",
    type=click.Choice(list(DTYPES)),
    default="float32",
    show_default=True,
    help="Precision of weights and arithmetic.",
)
seed_option = click.option(
    "--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True, help="Seed of every random draw."
)
batch_option = click.option(
    "--batch-size", type=Count(1), default=16, show_default=True, help="Images per forward pass."
)
latents_option = click.option(
    "--latents",
    type=click.Choice(["sample", "mean"]),
    default="sample",
    show_default=True,
    help="'sample' draws the model's random variables (latents, dequantization noise) as in training; "
    "'mean' puts each at its mean (deterministic).",
)


def load_model(path: str, device: str, dtype: str = "float32") -> torch.nn.Module:
    from genkit.hub import from_pretrained

    return from_pretrained(path, device=device, dtype=DTYPES[dtype])


def read_images(path: str, model: torch.nn.Module) -> torch.Tensor:
    """A ``.npy`` file of ``uint8`` images ``(N, H, W, C)`` matching the model's image shape."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: images file not found") from None
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    shape = tuple(model.image_shape)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != shape:
        raise DataError(
            f"{path}: expected uint8 images of shape (N, {', '.join(map(str, shape))}), "
            f"found {array.dtype} {array.shape}"
        )
    if len(array) == 0:
        raise DataError(f"{path}: holds no images")
    return torch.from_numpy(array)


def parse_temperature(text: str) -> float | list[float]:
    """``0.9`` or one value per latent layer, ``1.0,0.9,0.8,…``."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(
            f"--temperature {text!r}: expected a number or comma-separated numbers (one per latent layer)"
        ) from None
    return values[0] if len(values) == 1 else values


def generator_for(device: str, seed: int) -> torch.Generator:
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def grid_scale(images: torch.Tensor) -> int:
    """Enlarge small images so a grid of them is legible."""
    return max(1, 64 // int(images.shape[1]))


images_option = click.option(
    "--images",
    "images_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A .npy file of uint8 images (N, H, W, C): one result per image.",
)
split_option = click.option(
    "--split",
    type=click.Choice(["train", "validation", "test"]),
    default=None,
    help="Use a split of the recipe's data set instead.",
)
max_images_option = click.option(
    "--max-images", type=Count(1), default=None, help="With --split: only the first N images."
)
