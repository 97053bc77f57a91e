"""What the commands on a trained model share: MODEL, its options, reading images, scaling grids.

MODEL is a model directory, a run directory (its latest EMA weights) or a Hub repo id, loaded by
:func:`genkit.hub.from_pretrained`.
"""

from __future__ import annotations

import math

import click
import numpy as np
import torch

from genkit.capabilities import LatentVariables, require
from genkit.cli.options import SEED_MAX, Count, Device, OutputPath
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


def latents_choice(default: str):
    """``--latents sample|mean``: how the model's random variables are drawn, with ``default``."""
    return click.option(
        "--latents",
        type=click.Choice(["sample", "mean"]),
        default=default,
        show_default=True,
        help="'sample' draws the model's random variables (latents, dequantization noise) as in training; "
        "'mean' puts each at its mean (deterministic).",
    )


latents_option = latents_choice("sample")
grid_option = click.option("--out", type=OutputPath("image"), required=True, help="PNG grid to write.")
npy_option = click.option(
    "--npy", type=OutputPath("npy"), default=None, help="Also save the uint8 images (N, H, W, C)."
)


def load_model(path: str, device: str, dtype: str = "float32") -> torch.nn.Module:
    from genkit.hub import from_pretrained

    return from_pretrained(path, device=device, dtype=DTYPES[dtype])


def data_split(model: torch.nn.Module, model_path: str, split: str):
    """The ``split`` of the data set MODEL was trained on (its recipe's ``[data]``), once its figures on it are known to
    mean something (:func:`genkit.pairing.check_pairing`)."""
    from genkit.pairing import check_pairing, check_reported_split

    dataset, name = model.recipe.data.build("dataset"), model.recipe.data.name
    check_pairing(model, dataset, name, where=model_path, split=split)
    check_reported_split(dataset, name, split, where=f"--split {split}")
    return dataset.split(split)


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


class Temperature(click.ParamType):
    """A temperature: a finite number ≥ 0, or with ``per_layer`` comma-separated numbers, one per latent layer
    (``1.0,0.9,0.8,…``), checked against the model by :func:`check_temperature` once it is loaded."""

    def __init__(self, per_layer: bool = False):
        self.per_layer = per_layer
        self.name = "t[,t,…]" if per_layer else "float"  # the metavar, in capitals

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float, list)):
            return value
        expected = "a finite number ≥ 0" + (", or one per latent layer: 1.0,0.9,…" if self.per_layer else "")
        try:
            values = [float(part) for part in str(value).split(",")]
        except ValueError:
            self.fail(f"{value!r}: expected {expected}", param, ctx)
        if (len(values) > 1 and not self.per_layer) or not all(math.isfinite(v) and v >= 0 for v in values):
            self.fail(f"{value!r}: expected {expected}", param, ctx)
        return values[0] if len(values) == 1 else values


def check_temperature(model: torch.nn.Module, temperature: float | list[float]) -> None:
    """A list of temperatures needs a model with latent variables, and one value for each of its layers."""
    if not isinstance(temperature, list):
        return
    require(model, LatentVariables, "one --temperature per layer")
    if len(temperature) != model.n_latent_layers:
        raise ConfigError(
            f"--temperature: expected one temperature per latent layer ({model.n_latent_layers}), "
            f"found {len(temperature)}"
        )


class LayerCounts(click.ParamType):
    """Comma-separated numbers of latent layers (``0,4,8``), each ≥ 0; :func:`check_layer_counts` bounds them by the
    model's layers once it is loaded."""

    name = "k,k,…"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            counts = [int(part) for part in str(value).split(",")]
        except ValueError:
            counts = None
        if not counts or min(counts) < 0:
            self.fail(f"{value!r}: expected comma-separated numbers of latent layers, each 0 or more", param, ctx)
        return counts


def check_layer_counts(model: torch.nn.Module, counts: list[int], option: str) -> None:
    """Every count in ``counts`` (given as ``option``) is at most the model's number of latent layers."""
    layers = model.n_latent_layers
    beyond = [k for k in counts if k > layers]
    if beyond:
        raise ConfigError(f"{option}: expected numbers of latent layers from 0 to {layers}, found {beyond[0]}")


def generator_for(device: str, seed: int) -> torch.Generator:
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def grid_scale(images: torch.Tensor) -> int:
    """Enlarge small images so a grid of them is legible."""
    return max(1, 64 // int(images.shape[1]))


def write_images(images: torch.Tensor, out: str, npy: str | None, nrow: int | None = None) -> None:
    """What the commands that make images write: ``--out``, one PNG grid (``nrow`` images a row), and ``--npy``, the
    ``uint8`` array ``(N, H, W, C)``."""
    from genkit.images import save_array, save_grid

    images = images.cpu()
    save_grid(images, out, nrow=nrow, scale=grid_scale(images))
    if npy:
        save_array(images, npy)


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
