"""A plugin module used only by the foundation tests: registered through the same hooks as any plugin."""

from __future__ import annotations

from typing import Literal

import attrs
import torch
from torch import nn

from genkit.components import component
from genkit.hookspecs import hookimpl
from genkit.interfaces import GenerativeModel, LatentFamily, LossTerms, Objective
from genkit.schema import check, in_range


@attrs.frozen
class ToyLatentSettings:
    scale: float = attrs.field(default=1.0, validator=in_range(0, low_open=True))


class ToyLatent(LatentFamily):
    """A toy latent family (settings only; never sampled in these tests)."""

    def __init__(self, settings: ToyLatentSettings, zdim: int = 1):
        super().__init__()
        self.settings, self.zdim = settings, zdim

    @property
    def param_channels(self) -> int:
        return 2 * self.zdim

    def forward(self, params, temperature=1.0):
        raise RuntimeError("not used")


@attrs.frozen
class ToyModelSettings:
    image_size: int = attrs.field(default=4, validator=in_range(1, 64))
    width: int = attrs.field(default=8, validator=in_range(1))
    rate: float = 0.5
    mode: Literal["fast", "exact"] = "fast"
    betas: tuple[float, float] = (0.9, 0.99)
    temperatures: tuple[float, ...] = ()
    label: str | None = None
    posterior: object = component("latent", "toy-latent")

    def __attrs_post_init__(self):
        check(self.width % 2 == 0, "width", "an even number", self.width)


class ToyModel(GenerativeModel):
    """A toy model: one linear map per pixel."""

    objective = Objective("exact negative log-likelihood", exact=True)

    def __init__(self, settings: ToyModelSettings):
        super().__init__()
        self.image_shape = (settings.image_size, settings.image_size, 1)
        self.encoder = nn.Linear(settings.width, settings.width)
        self.decoder = nn.Linear(settings.width, 3)

    def forward(self, images, latents="sample", generator=None):
        return LossTerms(torch.zeros(images.shape[0]), {})

    def sample(self, n, temperature=1.0, generator=None, sampler=None):
        return torch.zeros(n, *self.image_shape, dtype=torch.uint8)


@hookimpl
def genkit_register_models(register):
    register("toy", ToyModel, config=ToyModelSettings)


@hookimpl
def genkit_register_latents(register):
    register("toy-latent", ToyLatent, config=ToyLatentSettings)


class ToyData:
    """A toy data set of zeros."""

    image_shape = (4, 4, 1)
    bits = 8

    def __init__(self, settings=None):
        pass

    def split(self, name):
        return [torch.zeros(4, 4, 1, dtype=torch.uint8)] * 4


@hookimpl
def genkit_register_datasets(register):
    register("toy-data", ToyData)
