"""Flow++'s flows: the step (Norm, Pointwise, coupling, swap), the split stages, and the main flow.

The main flow is described by a stage string, the official CIFAR-10 one being
``"checkerboard:4,squeeze,channel:2,checkerboard:3"``: ``checkerboard:N`` splits the columns
(even/odd) and runs ``N`` steps on the two half-width halves before merging them; ``channel:N``
does the same on the first and second half of the channels; ``squeeze`` is ``space_to_depth(2)``.
Each step is ``Norm``, ``Pointwise``, a coupling in which the first half conditions the second, then
the halves swap (``TupleFlip``). The flow starts with the logit preprocessing; nothing is factored
out, so ``z`` has every dimension of the image (``(4C, H/2, W/2)`` after one squeeze).
"""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor, nn

from genkit.components import ComponentRef
from genkit.errors import ConfigError
from genkit_plugins.flowpp.kinds import Coupling, Pair
from genkit_plugins.flowpp.layers import (
    Norm,
    Pointwise,
    depth_to_space,
    logit_preprocess,
    logit_preprocess_inverse,
    merge_channels,
    merge_columns,
    space_to_depth,
    split_channels,
    split_columns,
)

STAGE = re.compile(r"^(?:(checkerboard|channel):([1-9][0-9]*)|(squeeze))$")
SPLITS = {"checkerboard": (split_columns, merge_columns), "channel": (split_channels, merge_channels)}


class StageError(ValueError):
    """A stage string that does not describe a flow for the image shape."""


def parse_stages(text: str) -> list[tuple[str, int]]:
    """``"checkerboard:4,squeeze"`` → ``[("checkerboard", 4), ("squeeze", 0)]``."""
    stages = []
    for token in text.split(","):
        match = STAGE.match(token.strip())
        if match is None:
            raise StageError(f"unknown stage {token.strip()!r}")
        stages.append(("squeeze", 0) if match.group(3) else (match.group(1), int(match.group(2))))
    return stages


def half_shapes(stages: list[tuple[str, int]], shape: tuple[int, int, int]) -> tuple[list, tuple[int, int, int]]:
    """The ``(C, H, W)`` of each stage's halves (``None`` for a squeeze), and the latent shape, from ``(C, H, W)``."""
    halves = []
    c, h, w = shape
    for kind, _ in stages:
        if kind == "squeeze":
            if h % 2 or w % 2:
                raise StageError(f"squeeze needs an even height and width, found {h}×{w}")
            c, h, w = 4 * c, h // 2, w // 2
            halves.append(None)
        elif kind == "checkerboard":
            if w % 2:
                raise StageError(f"checkerboard needs an even width, found {w}")
            halves.append((c, h, w // 2))
        else:
            if c % 2:
                raise StageError(f"channel needs an even number of channels, found {c}")
            halves.append((c // 2, h, w))
    return halves, (c, h, w)


class FlowStep(nn.Module):
    """Norm, Pointwise, coupling (the first half conditions the second), swap the halves."""

    def __init__(
        self, shape: tuple[int, int, int], coupling: ComponentRef, sizes: dict[str, Any], context_channels: int = 0
    ):
        super().__init__()
        c, h, w = shape
        self.norm = Norm(c, h, w)
        self.pointwise = Pointwise(c, h, w)
        self.coupling = coupling.build(
            "coupling", channels=c, height=h, width=w, context_channels=context_channels, **sizes
        )
        if not isinstance(self.coupling, Coupling):
            raise ConfigError(
                f"flowpp: coupling plugin {coupling.name!r} built a {type(self.coupling).__name__}, not a Coupling"
            )

    def forward(self, pair: Pair, context: Tensor | None = None) -> tuple[Pair, Tensor]:
        pair, logdet = self.norm(pair)
        pair, term = self.pointwise(pair)
        logdet = logdet + term
        (a, b), term = self.coupling(pair, context)
        return (b, a), logdet + term

    def inverse(self, pair: Pair, context: Tensor | None = None) -> tuple[Pair, Tensor]:
        b, a = pair
        pair, logdet = self.coupling.inverse((a, b), context)
        pair, term = self.pointwise.inverse(pair)
        logdet = logdet + term
        pair, term = self.norm.inverse(pair)
        return pair, logdet + term


class SplitStage(nn.Module):
    """Split, ``steps``, merge."""

    def __init__(self, kind: str, steps: list[FlowStep]):
        super().__init__()
        self.kind = kind
        self.steps = nn.ModuleList(steps)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | float]:
        split, merge = SPLITS[self.kind]
        pair, logdet = split(x), 0.0
        for step in self.steps:
            pair, term = step(pair)
            logdet = logdet + term
        return merge(*pair), logdet

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor | float]:
        split, merge = SPLITS[self.kind]
        pair, logdet = split(y), 0.0
        for step in reversed(self.steps):
            pair, term = step.inverse(pair)
            logdet = logdet + term
        return merge(*pair), logdet


class Squeeze(nn.Module):
    """``space_to_depth(2)`` in TensorFlow's channel order."""

    def forward(self, x: Tensor) -> tuple[Tensor, float]:
        return space_to_depth(x), 0.0

    def inverse(self, y: Tensor) -> tuple[Tensor, float]:
        return depth_to_space(y), 0.0


class MainFlow(nn.Module):
    """``v ∈ [0, levels)^D`` ``(B, C, H, W)`` → ``z`` and log|det ∂z/∂v| (logit preprocessing included)."""

    def __init__(
        self, stages: str, shape: tuple[int, int, int], coupling: ComponentRef, sizes: dict[str, Any], levels: int = 256
    ):
        super().__init__()
        self.levels = levels
        parsed = parse_stages(stages)
        halves, self.latent_shape = half_shapes(parsed, shape)
        self.stages = nn.ModuleList(
            Squeeze()
            if kind == "squeeze"
            else SplitStage(kind, [FlowStep(half, coupling, sizes) for _ in range(count)])
            for (kind, count), half in zip(parsed, halves)
        )

    def forward(self, v: Tensor) -> tuple[Tensor, Tensor]:
        x, logdet = logit_preprocess(v, self.levels)
        for stage in self.stages:
            x, term = stage(x)
            logdet = logdet + term
        return x, logdet

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        logdet = 0.0
        for stage in reversed(self.stages):
            z, term = stage.inverse(z)
            logdet = logdet + term
        v, term = logit_preprocess_inverse(z, self.levels)
        return v, logdet + term

    def steps(self) -> list[FlowStep]:
        """Every step in the order data flows through them."""
        return [step for stage in self.stages if isinstance(stage, SplitStage) for step in stage.steps]
