"""What a model can do beyond training, evaluation and sampling, declared by deriving from a capability class.

A :class:`genkit.interfaces.GenerativeModel` that also derives from :class:`LatentVariables`,
:class:`ImportanceWeighted`, :class:`Invertible`, :class:`DataDependentInit`, :class:`Encodable` or
:class:`Recomputable`
has that capability; the engine and the CLI ask ``isinstance(model, Capability)``, never whether a
method is there, and a command that needs a capability the model lacks stops with one line
(:func:`require`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from genkit.errors import ConfigError
from genkit.interfaces import GenerativeModel
from genkit.latents import Latents, LatentTensor, interpolate


class DataDependentInit(ABC):
    """A model that sets some of its weights from a batch of training images before training starts.

    Weight normalisation and activation normalisation choose scales and
    biases so that every normalised layer's output over the batch has mean 0 and a given variance.
    The trainer calls :meth:`initialize` once, on a fresh run only, in train mode, without
    gradients, before the EMA copy and the optimizer exist, with ``train.init_images`` images; under
    torchrun, rank 0's result is broadcast to every rank.
    """

    phrase: ClassVar[str] = "a data-dependent initialisation"

    @abstractmethod
    def initialize(self, images: Tensor) -> None:
        """Set the data-dependent weights from ``uint8`` images ``(B, H, W, C)``."""


class LatentVariables(ABC):
    """A model with layers of latent variables (e.g. a hierarchical VAE).

    Its ``forward`` fills :attr:`genkit.interfaces.LossTerms.layer_kl`; its ``sample`` takes one temperature per layer
    and ``latents="mean"``, which puts every latent at its prior's mean (deterministic).
    """

    phrase: ClassVar[str] = "latent variables"

    @property
    @abstractmethod
    def n_latent_layers(self) -> int: ...

    @property
    @abstractmethod
    def layer_resolutions(self) -> list[int]:
        """The resolution of every latent layer, top (first drawn) first."""

    @abstractmethod
    def reconstruct(
        self, images: Tensor, keep_layers: int, temperature: float = 0.1, generator: torch.Generator | None = None
    ) -> Tensor:
        """The first ``keep_layers`` latents from the posterior of ``images``, the rest from the prior at
        ``temperature``: ``uint8`` images ``(B, H, W, C)``."""

    @torch.no_grad()
    def reconstruction_grid(
        self,
        images: Tensor,
        keep_layers: Sequence[int] | None = None,
        *,
        temperature: float,
        generator: torch.Generator | None,
    ) -> tuple[Tensor, int]:
        """How much of an image the top latent layers carry, as one grid of ``uint8`` images.

        Row ``i`` is ``images[i]`` and then its :meth:`reconstruct` keeping the first ``k`` layers
        from the posterior, for each ``k`` of ``keep_layers`` (default :func:`kept_layer_counts`).
        Early columns keep only the global layout; with every layer kept the image comes back almost
        exactly. Returns the images row-major ``(rows·columns, H, W, C)`` and ``columns``.
        """
        if keep_layers is None:
            keep_layers = kept_layer_counts(self.n_latent_layers)
        columns = [images] + [
            self.reconstruct(images, k, temperature=temperature, generator=generator) for k in keep_layers
        ]
        grid = torch.stack([c.to(images.device, torch.uint8) for c in columns], dim=1)  # (rows, columns, H, W, C)
        return grid.flatten(0, 1), len(columns)


def kept_layer_counts(layers: int) -> list[int]:
    """The posterior layers each column of a reconstruction grid keeps: 1, 2, 4, … and finally ``layers``."""
    counts, k = [], 1
    while k < layers:
        counts.append(k)
        k *= 2
    return counts + [layers]


class ImportanceWeighted(ABC):
    """A model whose figure is a bound that importance sampling tightens (Burda et al. 2016).

    ``importance_log_weights`` is ``log p(x, v) − log q(v | x)`` at one draw ``v ~ q(·|x)`` (latents
    for a VAE, dequantization noise for a flow), nats per image: its mean over draws is the
    model's bound and ``logmeanexp`` over ``K`` draws a tighter one.
    """

    phrase: ClassVar[str] = "an importance-weighted bound"

    @abstractmethod
    def importance_log_weights(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``(B,)`` nats per image, with every constant (dequantization scale) included."""


class Invertible(ABC):
    """A model whose map from (dequantized) images to latents is a bijection: a normalising flow."""

    phrase: ClassVar[str] = "an invertible map from images to latents"

    @abstractmethod
    def encode(self, images: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> Tensor:
        """The latents ``z`` of ``uint8`` images, dequantized as ``forward`` does."""

    @abstractmethod
    def decode(self, z: Tensor) -> Tensor:
        """``uint8`` images from latents ``z``: the inverse of :meth:`encode` up to dequantization."""

    @abstractmethod
    def inverse_error(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The largest ``|v − f⁻¹(f(v))|`` over the batch in the model's continuous space: how exactly it inverts."""


class Encodable(ABC):
    """A model whose images can be encoded to latents, which can be saved, edited and decoded to images again.

    :attr:`latent_layout` says what the latents are (:class:`genkit.latents.LatentTensor`: one per
    latent layer of a hierarchical VAE, the ``z`` of a flow, with whatever a multi-scale flow factors
    out); :meth:`encode_latents` and :meth:`decode_latents` go from images to them and back, and
    :meth:`interpolate` draws the path between two images through them. ``genkit.save_latents`` and
    ``genkit.load_latents`` keep them in a file.
    """

    phrase: ClassVar[str] = "latents to encode and decode"

    @property
    @abstractmethod
    def latent_layout(self) -> list[LatentTensor]:
        """The model's latent tensors, in the order the model draws them."""

    @abstractmethod
    def encode_latents(
        self, images: Tensor, latents: str = "mean", generator: torch.Generator | None = None
    ) -> Latents:
        """The latents of ``uint8`` images ``(B, H, W, C)``: with ``latents="mean"`` every random variable on the
        way (a posterior's draw, dequantization noise) at its mean, with ``"sample"`` drawn from ``generator``."""

    @abstractmethod
    def decode_latents(
        self,
        latents: Latents,
        keep: int | None = None,
        temperature: float | list[float] = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``uint8`` images ``(latents.count, H, W, C)`` from ``latents``.

        ``keep`` takes the first ``keep`` tensors of the layout from ``latents`` and draws the rest from the
        model's prior at ``temperature`` (default: every tensor is taken); a model that can only decode its
        latents whole (a flow) accepts only that. Latents that do not fit the layout stop with one line.
        """

    @torch.no_grad()
    def interpolate(
        self,
        start: Tensor,
        end: Tensor,
        steps: int,
        *,
        path: str = "spherical",
        latents: str = "mean",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The images between each of ``start`` and the same row of ``end`` (``uint8`` ``(B, H, W, C)`` each): the
        latents of both encoded, ``steps`` points between them drawn by :func:`genkit.latents.interpolate`, and
        decoded whole. Returns ``(B·steps, H, W, C)``, row-major."""
        if start.shape != end.shape:
            raise ConfigError(
                f"interpolate: the two ends must hold as many images of one shape, found {tuple(start.shape)} "
                f"and {tuple(end.shape)}"
            )
        first = self.encode_latents(start, latents, generator)
        last = self.encode_latents(end, latents, generator)
        return self.decode_latents(interpolate(first, last, steps, path), generator=generator)


class RecomputableUnit(NamedTuple):
    """One part of a model's forward pass that activation checkpointing may recompute during backward.

    ``name`` is the module's name in the model (``decoder.dec_blocks.12``), ``resolution`` the height
    of the feature maps it works at, ``module`` the submodule whose ``forward`` is the unit.
    """

    name: str
    resolution: int
    module: nn.Module


class Recomputable(ABC):
    """A model whose forward pass runs through units that can be recomputed in the backward pass.

    With ``train.activation_checkpointing`` the engine keeps only the inputs of the units the policy
    selects and runs each again during backward (:mod:`genkit.engine.recompute`), so what a unit
    saves for backward lives only while its own backward runs. A unit's ``forward`` must be a
    function of its arguments, the weights and the random numbers it draws — from the global
    generators or from a ``torch.Generator`` passed as an argument — and change no state: the
    recomputation then gives exactly the values of the first pass.
    """

    phrase: ClassVar[str] = "units declared for activation checkpointing"

    @abstractmethod
    def recomputable_units(self) -> list[RecomputableUnit]:
        """Every unit, in the order the forward pass runs them; no unit inside another."""


CAPABILITIES = (DataDependentInit, LatentVariables, ImportanceWeighted, Invertible, Encodable, Recomputable)


def capabilities(model: GenerativeModel) -> list[str]:
    """The names of the capabilities ``model`` declares."""
    return [capability.__name__ for capability in CAPABILITIES if isinstance(model, capability)]


def require(model: GenerativeModel, capability: type, what: str) -> None:
    """Stop with one line when ``model`` lacks ``capability``, which ``what`` (a command or setting) needs."""
    if not isinstance(model, capability):
        raise ConfigError(f"{what} needs a model with {capability.phrase}, and a {type(model).__name__} has none")
