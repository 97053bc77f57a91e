"""What ``genkit demo``'s page does with a model, without the page: which tabs it shows and the pictures they draw.

A tab appears exactly when the model can do what it needs:

* **Sample**, for every model: ``n`` images at a temperature (one per latent layer for a model with
  :class:`~genkit.capabilities.LatentVariables`), a seed and one of the model's samplers — the images
  ``genkit sample`` draws with the same settings;
* **Reconstruct**, for a model with latent variables: an uploaded image, then draws of its reconstruction keeping
  its first ``k`` latent layers and drawing the rest from the prior;
* **Interpolate**, for a model that an :class:`Interpolation` of :data:`INTERPOLATIONS` serves: the images between
  two uploads.

Every picture is a grid of ``uint8`` images enlarged as ``genkit sample``'s PNG is, so small images stay legible.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from genkit.capabilities import Encodable, LatentVariables
from genkit.cli.model_options import check_temperature, generator_for, grid_scale
from genkit.errors import ConfigError
from genkit.images import grid_image
from genkit.interfaces import GenerativeModel, resolve_sampler


@attrs.frozen
class Interpolation:
    """How the Interpolate tab draws the path between two images, for every model that derives from ``capability``.

    ``between(model, first, second, steps, generator)`` takes two ``uint8`` images ``(1, H, W, C)`` and returns
    ``steps`` ``uint8`` images ``(steps, H, W, C)`` going from the first to the second, both ends included.
    """

    capability: type
    between: Callable[[GenerativeModel, Tensor, Tensor, int, torch.Generator], Tensor]


def latent_path(model: Encodable, first: Tensor, second: Tensor, steps: int, generator: torch.Generator) -> Tensor:
    """The images along the great circle between the two images' latents (a VAE's posterior means layer by layer, a
    flow's z), each point decoded with all its latents given: what ``genkit interpolate`` draws."""
    return model.interpolate(first, second, steps, generator=generator)


#: the models the Interpolate tab serves, the first whose capability the model declares being used
INTERPOLATIONS: tuple[Interpolation, ...] = (Interpolation(Encodable, latent_path),)


def interpolation_for(model: GenerativeModel) -> Interpolation | None:
    return next((i for i in INTERPOLATIONS if isinstance(model, i.capability)), None)


def tabs(model: GenerativeModel) -> list[str]:
    """The tabs the page shows for ``model``, in order."""
    shown = ["Sample"]
    if isinstance(model, LatentVariables):
        shown.append("Reconstruct")
    if interpolation_for(model) is not None:
        shown.append("Interpolate")
    return shown


def picture(images: Tensor, nrow: int | None = None) -> np.ndarray:
    """``uint8`` images ``(N, H, W, C)`` as one enlarged grid ``(rows, columns[, 3])``, as ``genkit sample`` saves
    it."""
    return np.asarray(grid_image(images.cpu(), nrow, scale=grid_scale(images)))


@torch.no_grad()
def sample_picture(
    model: GenerativeModel, n: int, temperature: float | list[float], seed: int, sampler: str | None, device: str
) -> np.ndarray:
    """``n`` images drawn as ``genkit sample MODEL --n n --temperature … --seed seed --sampler …`` draws them."""
    sampler = resolve_sampler(model, sampler)
    check_temperature(model, temperature)
    images = model.sample(n, temperature=temperature, generator=generator_for(device, seed), sampler=sampler)
    return picture(images)


def model_image(upload: np.ndarray | None, model: GenerativeModel, what: str) -> Tensor:
    """An uploaded picture (any size, grey, RGB or RGBA) as the model's ``uint8`` image ``(1, H, W, C)``."""
    if upload is None:
        raise ConfigError(f"{what}: upload an image first")
    h, w, c = model.image_shape
    if c not in (1, 3):
        raise ConfigError(f"{what}: a model of {c}-channel images cannot take an uploaded picture")
    image = Image.fromarray(np.asarray(upload, dtype=np.uint8)).convert("L" if c == 1 else "RGB")
    array = np.asarray(image.resize((w, h), Image.Resampling.LANCZOS), dtype=np.uint8)
    return torch.from_numpy(array.reshape(1, h, w, c).copy())


@torch.no_grad()
def reconstruction_picture(
    model: LatentVariables, upload: np.ndarray | None, keep: int, temperature: float, draws: int, seed: int, device: str
) -> np.ndarray:
    """One row: the uploaded image as the model sees it, then ``draws`` reconstructions keeping its first ``keep``
    latent layers and drawing the rest from the prior at ``temperature``."""
    if not 0 <= keep <= model.n_latent_layers:
        raise ConfigError(f"keep: expected 0 to {model.n_latent_layers} latent layers, found {keep}")
    image = model_image(upload, model, "Reconstruct").to(device)
    draws_of_it = model.reconstruct(
        image.expand(draws, *image.shape[1:]), keep, temperature=temperature, generator=generator_for(device, seed)
    )
    return picture(torch.cat([image, draws_of_it.to(image.device)]), nrow=draws + 1)


@torch.no_grad()
def interpolation_picture(
    model: GenerativeModel, first: np.ndarray | None, second: np.ndarray | None, steps: int, seed: int, device: str
) -> np.ndarray:
    """One row of ``steps`` images from the first upload to the second (:data:`INTERPOLATIONS`)."""
    interpolation = interpolation_for(model)
    if interpolation is None:
        raise ConfigError(f"a {type(model).__name__} has no way to interpolate between images")
    a = model_image(first, model, "Interpolate: first image").to(device)
    b = model_image(second, model, "Interpolate: second image").to(device)
    images = interpolation.between(model, a, b, steps, generator_for(device, seed))
    return picture(images, nrow=steps)
