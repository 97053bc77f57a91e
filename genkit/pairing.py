"""Whether a model's figures on a data set can mean anything: checked wherever a model meets data, before any work.

A figure in bits per dimension is the model's negative log-likelihood over its own alphabet of
images: ``image_shape``, and ``2**bits`` levels per channel (:attr:`GenerativeModel.bits
<genkit.interfaces.GenerativeModel.bits>`). Scored on images of another shape or depth it is a
number over another alphabet than the data's: a 5-bit model reads 8-bit images as their top 5 bits
and reports less than the images' own entropy, below the uniform baseline of their depth. So
``genkit run``, ``genkit eval --split``, ``genkit rates --split`` and the numerical guard of
``genkit bench`` first check, each in one line naming where the pairing came from, that

* the depths the data set and the model declare are ones a ``uint8`` pixel has (1 … 8 bits);
* the model is built for the data set's depth and image shape (size and channels);
* the data set's images are what it declares: ``uint8`` tensors of its shape, so that no pixel
  value lies beyond the 8 bits its depth is taken from;
* a data set whose validation split is its test set (``validation_is_test``) is never reported as
  a validation figure (:func:`check_reported_split`);

and (:func:`check_evaluation_settings`) that the recipe's evaluation asks only for what the model
can do: ``eval.importance_samples`` needs a model with an importance-weighted bound.
"""

from __future__ import annotations

import torch

from genkit.capabilities import ImportanceWeighted
from genkit.errors import ConfigError
from genkit.interfaces import GenerativeModel, ImageDataset
from genkit.recipe import Recipe

PIXEL_BITS = 8  # genkit's images are uint8


def check_pairing(
    model: GenerativeModel, dataset: ImageDataset, data_name: str, *, where: str, split: str = "train"
) -> None:
    """Stop, in one line starting with ``where``, when ``model``'s figures on ``dataset`` (named ``data_name``) would
    mean nothing; the first image of ``split`` is looked at."""
    model_name = model.recipe.model.name if model.recipe is not None else type(model).__name__
    for who, bits in ((f"the {data_name} data set", dataset.bits), (f"the {model_name} model", model.bits)):
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= PIXEL_BITS:
            raise ConfigError(
                f"{where}: {who} declares {bits!r} bits per channel; genkit's pixels are uint8, of 1 to 8 bits"
            )
    if model.bits != dataset.bits:
        raise ConfigError(
            f"{where}: the {model_name} model is built for {model.bits}-bit images and the {data_name} images are "
            f"{dataset.bits}-bit: its bits/dim would count {2**model.bits} levels per channel where the images have "
            f"{2**dataset.bits}, a figure without meaning; give [model] and [data] the same bit depth"
        )
    data_shape, model_shape = tuple(dataset.image_shape), tuple(model.image_shape)
    if data_shape != model_shape:
        raise ConfigError(
            f"{where}: the {data_name} images are {data_shape} (H, W, C) but the model is built for {model_shape}; "
            "change [model] or [data]"
        )
    images = dataset.split(split)
    if len(images) == 0:
        return  # evaluation says so in its own line
    image = images[0]
    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or tuple(image.shape) != data_shape:
        found = (
            f"{image.dtype} {tuple(image.shape)}" if isinstance(image, torch.Tensor) else f"a {type(image).__name__}"
        )
        raise ConfigError(
            f"{where}: the {data_name} data set gives {found} images where it declares uint8 {data_shape} "
            f"({dataset.bits}-bit levels in pixels of 0 … 255); its pixel values cannot be read at that depth"
        )


def check_reported_split(dataset: ImageDataset, data_name: str, split: str, *, where: str) -> None:
    """Stop, in one line starting with ``where``, when a figure on ``split`` would be reported as a validation figure
    although the data set's validation split is its test set."""
    if split == "validation" and dataset.validation_is_test:
        raise ConfigError(
            f"{where}: the {data_name} data set has no validation images of its own (its validation split is its "
            "test set), so a figure on it is a test figure; evaluate the split 'test'"
        )


def check_evaluation_settings(model: GenerativeModel, recipe: Recipe) -> None:
    """Stop, in one line naming the recipe, when its ``[eval]`` asks for a figure the model cannot give."""
    if recipe.eval.importance_samples and not isinstance(model, ImportanceWeighted):
        raise ConfigError(
            f"{recipe.origin('eval')}: eval.importance_samples = {recipe.eval.importance_samples} needs a model with "
            f"{ImportanceWeighted.phrase}, and a {type(model).__name__} has none; set eval.importance_samples = 0"
        )
