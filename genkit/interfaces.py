"""The contracts every plugin of a kind fulfils. ``tests/test_contracts.py`` checks them for every registered plugin.

Conventions shared by all of them:

* **Images** enter and leave models as ``uint8`` tensors of shape ``(B, H, W, C)``, the layout of
  the data files. Everything inside a model is ``(B, C, H, W)``.
* **Likelihood targets** are floats in ``[-1, 1]``: level ``k`` of ``2**bits`` maps to
  ``2k / (2**bits - 1) - 1`` (so 8-bit ``x`` maps to ``x / 127.5 - 1``).
* **Units**: log-likelihoods, KLs and losses are in **nats**; per-dimension figures divide by
  ``C·H·W``; bits/dim = nats/dim ÷ ln 2.
* Factories are called as ``factory(settings, **context)``: ``settings`` is the plugin's own
  validated attrs config, ``context`` what the assembling model supplies (widths, channels…).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
from torch import Tensor, nn


def levels(bits: int, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """The ``2**bits`` target values in [-1, 1] of a ``bits``-bit channel, in order."""
    return torch.linspace(-1.0, 1.0, 2**bits, dtype=dtype)


class Likelihood(nn.Module, ABC):
    """p(x | params): a distribution over images with ``channels`` channels of ``bits`` bits.

    Built as ``factory(settings, channels=C, bits=b)``. ``params`` is ``(B, param_channels, H, W)``
    and ``x`` is ``(B, C, H, W)`` on the level grid in [-1, 1]. Differentiable in ``params``.
    """

    channels: int
    bits: int

    @property
    @abstractmethod
    def param_channels(self) -> int:
        """How many parameter channels per pixel the network must output."""

    @abstractmethod
    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x | params) per example, in nats, summed over every dimension: ``(B,)``."""

    @abstractmethod
    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A draw ``(B, C, H, W)`` on the level grid in [-1, 1]. Not differentiable."""

    @abstractmethod
    def mode(self, params: Tensor) -> Tensor:
        """A deterministic point summary ``(B, C, H, W)`` on the level grid (e.g. the most likely component's mean)."""


class LatentDistribution(ABC):
    """A distribution over latents of shape ``(B, zdim, H, W)``, every element a dimension."""

    @property
    @abstractmethod
    def mean(self) -> Tensor:
        """The mean ``(B, zdim, H, W)`` (used by the deterministic 'latents at their mean' mode)."""

    @abstractmethod
    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised draw ``(B, zdim, H, W)``: differentiable in the distribution's parameters."""

    @abstractmethod
    def log_prob(self, z: Tensor) -> Tensor:
        """log density per element, nats, ``(B, zdim, H, W)``."""

    def kl(self, other: LatentDistribution) -> Tensor | None:
        """Analytic KL(self ‖ other) per element ``(B, zdim, H, W)``, or ``None`` where there is no closed form."""
        return None

    def path_log_prob(self, z: Tensor) -> Tensor:
        """``log_prob(z)`` in value, with a gradient that reaches this distribution's parameters only through ``z``.

        The path derivative of Roeder, Wu & Duvenaud (2017), "Sticking the Landing": the parameters
        (the network output that built the distribution, and any weights its family holds) are
        constants of the density, so for a reparameterised draw ``z`` the gradient of ``log q(z)``
        drops the score ``∂/∂θ log q_θ(z)`` at fixed ``z``. The score has expectation zero under
        ``z ~ q``, so the expected gradient is unchanged; where ``q`` matches what it is fitted to (a
        latent layer at its prior, or at the exact posterior) it is all the noise there is, and
        without it that gradient vanishes draw by draw. Far from that, the path term alone can be
        the noisier of the two. With ``z`` held fixed no gradient reaches the parameters.

        The default is ``log_prob(z)`` itself, the total gradient: a family overrides it where it can
        hold its parameters fixed.
        """
        return self.log_prob(z)


def kl_divergence(q: LatentDistribution, p: LatentDistribution, z: Tensor) -> Tensor:
    """KL(q ‖ p) per element ``(B, zdim, H, W)``, for ``z`` a reparameterised draw of ``q``.

    Analytic where ``q.kl(p)`` gives it. Otherwise the one-sample Monte-Carlo estimate
    ``log q(z) − log p(z)``, unbiased in value, with ``log q`` from ``q.path_log_prob``: its
    gradient is unbiased too, and the part that reaches ``q``'s parameters vanishes where ``q``
    equals ``p``.
    """
    analytic = q.kl(p)
    if analytic is not None:
        return analytic
    return q.path_log_prob(z) - p.log_prob(z)


class LatentFamily(nn.Module, ABC):
    """Turns a network's output into a latent distribution; usable as prior or posterior.

    Built as ``factory(settings, zdim=Z)``. ``forward(params, temperature)`` takes
    ``(B, param_channels, H, W)``. ``temperature`` scales the spread (1 = the distribution
    itself; for a Gaussian, σ·t). May hold parameters of its own (e.g. flow weights).
    """

    zdim: int

    @property
    @abstractmethod
    def param_channels(self) -> int:
        """How many channels the network that parameterises this family must output."""

    @abstractmethod
    def forward(self, params: Tensor, temperature: float | Tensor = 1.0) -> LatentDistribution: ...


class Block(nn.Module, ABC):
    """A shape-preserving network block ``(B, in_width, H, W) -> (B, out_width, H, W)``.

    Built as ``factory(settings, in_width=, middle_width=, out_width=, resolution=, residual=,
    zero_last=, last_scale=)``: ``resolution`` is H (so blocks may change kernel sizes at small
    resolutions); ``residual`` adds the input (needs ``in_width == out_width``); ``zero_last``
    starts the last layer at zero; ``last_scale`` multiplies the last layer's initial weights.
    """


class Upsampler(nn.Module, ABC):
    """``(B, C, H, W) -> (B, C, H·factor, W·factor)``. Built as ``factory(settings)``."""

    @abstractmethod
    def forward(self, x: Tensor, factor: int) -> Tensor: ...


class Downsampler(nn.Module, ABC):
    """``(B, C, H, W) -> (B, C, H/factor, W/factor)``. Built as ``factory(settings)``."""

    @abstractmethod
    def forward(self, x: Tensor, factor: int) -> Tensor: ...


class LossTerms(NamedTuple):
    """What a model's forward pass returns. Per-example terms are nats per dimension, ``(B,)``."""

    loss: Tensor  # scalar to minimise: mean over the batch of ``elbo``
    elbo: Tensor  # negative ELBO (or exact NLL), nats/dim, (B,)
    distortion: Tensor  # -log p(x | z), nats/dim, (B,)
    rate: Tensor  # KL terms, nats/dim, (B,); zero for models without latents
    layer_kl: Tensor | None = None  # KL of every latent layer, nats per image, (B, L)


class GenerativeModel(nn.Module, ABC):
    """A likelihood-based model of ``uint8`` images ``(B, H, W, C)``. Built as ``factory(settings)``."""

    #: (H, W, C) of the images the model takes and makes
    image_shape: tuple[int, int, int]

    @property
    def dims_per_image(self) -> int:
        h, w, c = self.image_shape
        return h * w * c

    @abstractmethod
    def forward(self, images: Tensor, latents: str = "sample") -> LossTerms:
        """The training objective and its parts for a batch of ``uint8`` images.

        ``latents="sample"`` draws latents as in training; ``latents="mean"`` puts every latent at
        its mean (the posterior's when encoding), a deterministic mode for exact comparisons.
        Models without latents ignore it.
        """

    @abstractmethod
    def sample(
        self, n: int, temperature: float | list[float] = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n`` new ``uint8`` images ``(n, H, W, C)``."""

    def save_pretrained(self, directory, *, samples: int = 16):
        """Write this model as a model directory (config, safetensors weights, card, ``samples`` in a grid)."""
        from genkit.pretrained import save_pretrained  # lazy: interfaces stay free of I/O imports

        return save_pretrained(self, directory, samples=samples)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | None = None,
        commit_message: str | None = None,
        **options,
    ):
        """Publish this model as the Hub repo ``repo_id``; ``options`` as in :func:`genkit.hub.push_to_hub`."""
        from genkit.hub import push_to_hub

        return push_to_hub(self, repo_id, private=private, token=token, commit_message=commit_message, **options)


class ImageDataset(ABC):
    """A data set of ``uint8`` images. Built as ``factory(settings)``.

    ``split(name)`` for ``name`` in ``train``, ``validation``, ``test`` returns a map-style
    ``torch.utils.data.Dataset`` whose items are ``uint8`` tensors ``(H, W, C)``.
    ``validation_is_test`` is true when the validation split holds the test images (a data set with
    no hold-out of its own), so nothing may be tuned on it that is then reported on test.
    """

    image_shape: tuple[int, int, int]
    bits: int = 8
    validation_is_test: bool = False

    @abstractmethod
    def split(self, name: str) -> torch.utils.data.Dataset: ...


def nats_to_bits(nats_per_dim: float | Tensor) -> float | Tensor:
    return nats_per_dim / math.log(2.0)
