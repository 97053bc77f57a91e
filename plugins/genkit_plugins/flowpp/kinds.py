"""The two kinds of component the Flow++ plugin adds: ``coupling`` and ``dequantizer``.

Registered with ``genkit_register_kinds`` exactly as a third party would add a kind; every component
of either kind must pass the tests in :mod:`genkit_plugins.flowpp.contracts`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

Pair = tuple[Tensor, Tensor]


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

    Built as ``factory(settings, image_shape=(H, W, C), bits=, coupling=ComponentRef, filters=,
    blocks=, components=, heads=, dropout=)``: a dequantizer that is itself a flow builds its
    couplings from ``coupling`` and the sizes; others ignore them. ``x`` is ``(B, C, H, W)`` holding
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
