"""The kinds of component Flow++ is assembled from, registered as a third party would add a kind.

* ``coupling`` (:class:`Coupling`): the element-wise bijection of one half given the other;
* ``dequantizer`` (:class:`Dequantizer`): the noise ``u`` that turns integer images into points of
  ``[0, 2^bits)^D``;
* ``flow-layer`` (:class:`FlowLayer`): the other layers of a step (Flow++: ``Norm``, ``Pointwise``);
* ``split`` (:class:`Split`): how a stage divides its input into the two halves its steps transform;
* ``squeeze`` (:class:`Squeeze`): a rearrangement of each image's elements between stages;
* ``preprocess`` (:class:`Preprocess`): the map from dequantized pixels to the main flow's input.

Components of the first two kinds must pass the tests in :mod:`genkit_plugins.flowpp.contracts`,
those of the last four the tests in :mod:`genkit_plugins.flowpp.layer_contracts`. :func:`build`
builds a component of any of them and checks its interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from genkit.capabilities import RecomputableUnit
from genkit.components import ComponentRef
from genkit.errors import ConfigError

Pair = tuple[Tensor, Tensor]
Shape = tuple[int, int, int]  # (C, H, W)

COUPLING = "coupling"
DEQUANTIZER = "dequantizer"
FLOW_LAYER = "flow-layer"
SPLIT = "split"
SQUEEZE = "squeeze"
PREPROCESS = "preprocess"


class StageError(ValueError):
    """A split or squeeze that does not apply to a shape (a stage string that does not describe a flow for it)."""


class Coupling(nn.Module, ABC):
    """An invertible coupling ``(x_a, x_b) -> (x_a, y_b)``: ``x_a`` conditions an element-wise bijection of ``x_b``.

    Built as ``factory(settings, channels=C, height=H, width=W, filters=, blocks=, components=,
    heads=, dropout=, context_channels=)``: the halves are ``(B, C, H, W)``; the network sizes are the
    model's (a coupling without a mixture ignores ``components``); with ``context_channels > 0`` every
    call receives a ``context`` ``(B, context_channels, H, W)`` (the dequantizer's). Both directions
    return the pair and ``log|det J|`` per image ``(B,)`` in nats, at least float32; the first element
    comes back unchanged.
    """

    @abstractmethod
    def forward(self, pair: Pair, context: Tensor | None = None) -> tuple[Pair, Tensor]: ...

    @abstractmethod
    def inverse(self, pair: Pair, context: Tensor | None = None) -> tuple[Pair, Tensor]: ...


class Dequantizer(nn.Module, ABC):
    """q(u | x): noise ``u ∈ (0, 1)^D`` that turns integer images ``x`` into points ``v = x + u`` of ``[0, 2^bits)^D``.

    Built as ``factory(settings, image_shape=(H, W, C), bits=, coupling=ComponentRef,
    norm=ComponentRef, pointwise=ComponentRef, filters=, blocks=, components=, heads=, dropout=)``:
    a dequantizer that is itself a flow builds its steps from the model's ``coupling``, ``norm`` and
    ``pointwise`` and the sizes; others ignore them. ``x`` is ``(B, C, H, W)`` holding
    the integers ``0 … 2^bits − 1`` in a floating dtype. ``u`` is a deterministic function of base
    noise ``ε`` (:meth:`noise`), so a given ``ε`` reproduces a draw.
    """

    #: what the model's figure is with this dequantizer (``Objective.label``)
    bound: ClassVar[str]

    @abstractmethod
    def noise(self, x: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> Tensor:
        """Base noise ``ε`` shaped like ``x``: a draw (``"sample"``) or its mean (``"mean"``)."""

    @abstractmethod
    def base_log_prob(self, eps: Tensor) -> Tensor:
        """log-density of ``ε`` under the base noise distribution, nats per image ``(B,)``."""

    @abstractmethod
    def forward(self, x: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
        """``(u, log q(u | x))``: ``u`` shaped like ``x`` in (0, 1), ``log q`` in nats per image ``(B,)``."""

    @abstractmethod
    def log_prob(self, x: Tensor, u: Tensor) -> Tensor:
        """log q(u | x) at any ``u ∈ (0, 1)^D``, nats per image ``(B,)``."""

    def recomputable_units(self) -> list[RecomputableUnit]:
        """The parts activation checkpointing may recompute, in forward order, named within the dequantizer
        (:class:`genkit.capabilities.Recomputable`); none by default, when there is nothing worth recomputing."""
        return []


class FlowLayer(nn.Module, ABC):
    """An invertible layer of a flow step acting on a pair of halves, each ``(B, C, H, W)``, with its own weights.

    Built as ``factory(settings, channels=C, height=H, width=W)``. Both directions return the pair
    and ``log|det J|`` per image ``(B,)`` in nats, at least float32. A layer with a data-dependent
    initialisation derives from :class:`~genkit_plugins.flowpp.datainit.DataInit` (armed by
    ``data_dependent_init``); its init pass leaves each channel of each half with mean 0 and variance
    1 over the batch and positions.
    """

    @abstractmethod
    def forward(self, pair: Pair) -> tuple[Pair, Tensor]: ...

    @abstractmethod
    def inverse(self, pair: Pair) -> tuple[Pair, Tensor]: ...


class Split(nn.Module, ABC):
    """How a stage divides its input ``(B, C, H, W)`` into two halves of one shape: a fixed permutation, no weights.

    Built as ``factory(settings)``; named by ``NAME:N`` in a model's stage string (``N`` steps on its
    halves). Every element of each image lands in exactly one half of that image.
    """

    @abstractmethod
    def half_shape(self, shape: Shape) -> Shape:
        """The ``(C, H, W)`` of each half of an input of ``shape``; a :class:`StageError` where the split fails."""

    @abstractmethod
    def split(self, x: Tensor) -> Pair: ...

    @abstractmethod
    def merge(self, a: Tensor, b: Tensor) -> Tensor:
        """The inverse of :meth:`split`."""


class Squeeze(nn.Module, ABC):
    """A fixed rearrangement of each image's elements between stages (a permutation: log-determinant 0), no weights.

    Built as ``factory(settings)``; named by a bare ``NAME`` in a model's stage string.
    """

    @abstractmethod
    def output_shape(self, shape: Shape) -> Shape:
        """The ``(C, H, W)`` an input of ``shape`` becomes; a :class:`StageError` where the squeeze fails."""

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor: ...

    @abstractmethod
    def inverse(self, y: Tensor) -> Tensor: ...


class Preprocess(nn.Module, ABC):
    """The bijection from dequantized pixels ``v ∈ [0, levels)^D`` ``(B, C, H, W)`` to the main flow's input.

    Built as ``factory(settings, levels=)`` (``2^bits``). Both directions return a tensor shaped like
    their input and ``log|det J|`` per image ``(B,)`` in nats, at least float32.
    """

    @abstractmethod
    def forward(self, v: Tensor) -> tuple[Tensor, Tensor]: ...

    @abstractmethod
    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]: ...


INTERFACES: dict[str, type] = {
    COUPLING: Coupling,
    DEQUANTIZER: Dequantizer,
    FLOW_LAYER: FlowLayer,
    SPLIT: Split,
    SQUEEZE: Squeeze,
    PREPROCESS: Preprocess,
}


def build(ref: ComponentRef, kind: str, **context: Any) -> Any:
    """``ref``'s component of ``kind``, built with ``context``; a one-line error if it lacks the kind's interface."""
    component = ref.build(kind, **context)
    interface = INTERFACES[kind]
    if not isinstance(component, interface):
        raise ConfigError(
            f"flowpp: {kind} plugin {ref.name!r} built a {type(component).__name__}, not a {interface.__name__}"
        )
    return component
