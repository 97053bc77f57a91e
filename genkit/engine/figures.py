"""Figures summed (or maximised) over images, then reduced over every rank in one place.

Evaluation adds up per-image figures batch by batch: the objective and its parts, and whatever a
model adds beside them (every latent layer's KL, an inverse's worst error). Under ``torchrun``
each rank holds the sums of its own share of the images, and a rank may have seen no image at all
(a split of fewer batches than processes), so it may not even know a figure's shape. Every rank
first learns every figure's name and shape from all the others, enters zeros (or −∞ for a
maximum) for what it lacks, and only then reduces, so every rank issues the same collectives of the
same sizes whatever it saw.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genkit.engine.distributed import Distributed
from genkit.errors import GenkitError

SUM, MAX = "sum", "max"


class Figures:
    """Named float64 figures of any shape, each a sum or a maximum over the images this rank saw."""

    def __init__(self, device: torch.device):
        self.device = device
        self._values: dict[str, Tensor] = {}
        self._ops: dict[str, str] = {}

    def add(self, name: str, total: Tensor) -> None:
        """Add ``total`` (already summed over a batch's images) to the running sum ``name``."""
        self._update(name, total, SUM)

    def maximum(self, name: str, value: Tensor) -> None:
        """Keep the largest ``value`` seen under ``name`` (elementwise)."""
        self._update(name, value, MAX)

    def _update(self, name: str, value: Tensor, op: str) -> None:
        value = value.detach().to(self.device, torch.float64)
        if name not in self._values:
            self._values[name], self._ops[name] = value.clone(), op
            return
        if self._ops[name] != op or self._values[name].shape != value.shape:
            raise GenkitError(
                f"evaluation figure {name!r}: given as a {op} of shape {tuple(value.shape)} after a "
                f"{self._ops[name]} of shape {tuple(self._values[name].shape)}"
            )
        if op == SUM:
            self._values[name] += value
        else:
            torch.maximum(self._values[name], value, out=self._values[name])

    def reduced(self, context: Distributed) -> dict[str, Tensor]:
        """Every figure over every rank's images: sums added, maxima the largest; the same dict on every rank."""
        mine = {name: (tuple(value.shape), self._ops[name]) for name, value in self._values.items()}
        layout: dict[str, tuple[tuple[int, ...], str]] = {}
        for rank, specs in enumerate(context.gather(mine)):
            for name, spec in specs.items():
                if layout.setdefault(name, spec) != spec:
                    raise GenkitError(
                        f"evaluation figure {name!r}: rank {rank} has it as a {spec[1]} of shape {spec[0]}, "
                        f"another rank as a {layout[name][1]} of shape {layout[name][0]}"
                    )
        names = sorted(layout)
        out: dict[str, Tensor] = {}
        for op, empty in ((SUM, 0.0), (MAX, float("-inf"))):
            chosen = [name for name in names if layout[name][1] == op]
            if not chosen:
                continue
            flat = torch.cat(
                [
                    self._values[name].reshape(-1)
                    if name in self._values
                    else torch.full(layout[name][0], empty, dtype=torch.float64, device=self.device).reshape(-1)
                    for name in chosen
                ]
            )
            context.all_reduce_(flat, op)
            for name, piece in zip(chosen, flat.split([math.prod(layout[name][0]) for name in chosen])):
                out[name] = piece.reshape(layout[name][0])
        return out
