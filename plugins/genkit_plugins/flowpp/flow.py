"""Flow++'s flows: the step (Norm, Pointwise, coupling, swap), the split stages, and the main flow.

The main flow is described by a stage string, the official CIFAR-10 one being
``"checkerboard:4,squeeze,channel:2,checkerboard:3"``: ``NAME:N`` splits the input with the
``split`` plugin ``NAME`` (``checkerboard``: even/odd columns; ``channel``: first/second half of
the channels), runs ``N`` steps on the two halves and merges them; a bare ``NAME`` is the
``squeeze`` plugin ``NAME`` (``squeeze``: ``space_to_depth(2)``). Each step is the model's ``norm``
and ``pointwise`` flow layers, a coupling in which the first half conditions the second, then the
halves swap (``TupleFlip``). The flow starts with the ``preprocess`` plugin (``logit``); nothing is
factored out, so ``z`` has every dimension of the image (``(4C, H/2, W/2)`` after one squeeze).
Every component is built through the registry, so a third party's can take the place of any.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from torch import Tensor, nn

from genkit.capabilities import RecomputableUnit
from genkit.components import ComponentRef
from genkit.registry import get_registry
from genkit_plugins.flowpp.kinds import (
    COUPLING,
    FLOW_LAYER,
    PREPROCESS,
    SPLIT,
    SQUEEZE,
    Pair,
    Shape,
    Split,
    Squeeze,
    StageError,
    build,
)

STAGE = re.compile(r"^([^\s:,]+)(?::([1-9][0-9]*))?$")
#: the official step layers and preprocessing (the model's defaults)
NORM, POINTWISE, PREPROCESSING = ComponentRef("norm"), ComponentRef("pointwise"), ComponentRef("logit")


class Stage(NamedTuple):
    """One token of a stage string: a split plugin and its number of steps, or a squeeze plugin (``steps = 0``)."""

    name: str
    steps: int

    @property
    def kind(self) -> str:
        return SPLIT if self.steps else SQUEEZE


class PlannedStage(NamedTuple):
    stage: Stage
    component: Split | Squeeze
    half: Shape | None  # the shape of each half a split stage's steps see; None for a squeeze


def parse_stages(text: str) -> list[Stage]:
    """``"checkerboard:4,squeeze"`` → ``[Stage("checkerboard", 4), Stage("squeeze", 0)]`` (names are not looked up)."""
    stages = []
    for token in text.split(","):
        match = STAGE.match(token.strip())
        if match is None:
            raise StageError(f"{token.strip()!r} is neither NAME:N (N ≥ 1) nor NAME")
        stages.append(Stage(match.group(1), int(match.group(2) or 0)))
    return stages


def plan_stages(stages: list[Stage], shape: Shape) -> tuple[list[PlannedStage], Shape]:
    """Each stage's split or squeeze, built through the registry, with its halves' shape; and the latent shape."""
    registry = get_registry()
    planned = []
    for stage in stages:
        if stage.name not in registry.names(stage.kind):
            raise StageError(
                f"unknown {stage.kind} {stage.name!r}; splits (NAME:N): {', '.join(registry.names(SPLIT))}; "
                f"squeezes (NAME): {', '.join(registry.names(SQUEEZE))}"
            )
        component = build(ComponentRef(stage.name), stage.kind)
        try:
            if stage.steps:
                planned.append(PlannedStage(stage, component, component.half_shape(shape)))
            else:
                shape = component.output_shape(shape)
                planned.append(PlannedStage(stage, component, None))
        except StageError as exc:
            raise StageError(f"{stage.name}: {exc}") from None
    return planned, shape


class FlowStep(nn.Module):
    """The ``norm`` and ``pointwise`` flow layers, a coupling (the first half conditions the second), a swap."""

    def __init__(
        self,
        shape: Shape,
        coupling: ComponentRef,
        sizes: dict[str, Any],
        context_channels: int = 0,
        *,
        norm: ComponentRef = NORM,
        pointwise: ComponentRef = POINTWISE,
    ):
        super().__init__()
        c, h, w = shape
        self.resolution = h  # the height of the halves it transforms
        self.norm = build(norm, FLOW_LAYER, channels=c, height=h, width=w)
        self.pointwise = build(pointwise, FLOW_LAYER, channels=c, height=h, width=w)
        self.coupling = build(
            coupling, COUPLING, channels=c, height=h, width=w, context_channels=context_channels, **sizes
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

    def __init__(self, split: Split, steps: list[FlowStep]):
        super().__init__()
        self.split = split
        self.steps = nn.ModuleList(steps)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | float]:
        pair, logdet = self.split.split(x), 0.0
        for step in self.steps:
            pair, term = step(pair)
            logdet = logdet + term
        return self.split.merge(*pair), logdet

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor | float]:
        pair, logdet = self.split.split(y), 0.0
        for step in reversed(self.steps):
            pair, term = step.inverse(pair)
            logdet = logdet + term
        return self.split.merge(*pair), logdet


class MainFlow(nn.Module):
    """``v ∈ [0, levels)^D`` ``(B, C, H, W)`` → ``z`` and log|det ∂z/∂v| (preprocessing included).

    ``stages`` holds a :class:`SplitStage` per ``NAME:N`` and the squeeze plugin itself per ``NAME``.
    """

    def __init__(
        self,
        stages: str,
        shape: Shape,
        coupling: ComponentRef,
        sizes: dict[str, Any],
        levels: int = 256,
        *,
        norm: ComponentRef = NORM,
        pointwise: ComponentRef = POINTWISE,
        preprocess: ComponentRef = PREPROCESSING,
    ):
        super().__init__()
        self.preprocess = build(preprocess, PREPROCESS, levels=levels)
        planned, self.latent_shape = plan_stages(parse_stages(stages), shape)
        layers = dict(norm=norm, pointwise=pointwise)
        self.stages = nn.ModuleList(
            component
            if half is None
            else SplitStage(component, [FlowStep(half, coupling, sizes, **layers) for _ in range(stage.steps)])
            for stage, component, half in planned
        )

    def forward(self, v: Tensor) -> tuple[Tensor, Tensor]:
        x, logdet = self.preprocess(v)
        for stage in self.stages:
            if isinstance(stage, SplitStage):
                x, term = stage(x)
                logdet = logdet + term
            else:
                x = stage(x)
        return x, logdet

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        logdet = 0.0
        for stage in reversed(self.stages):
            if isinstance(stage, SplitStage):
                z, term = stage.inverse(z)
                logdet = logdet + term
            else:
                z = stage.inverse(z)
        v, term = self.preprocess.inverse(z)
        return v, logdet + term

    def steps(self) -> list[FlowStep]:
        """Every step in the order data flows through them."""
        return [step for stage in self.stages if isinstance(stage, SplitStage) for step in stage.steps]

    def recomputable_units(self) -> list[RecomputableUnit]:
        """Every step, in the order data flows through them, named within the flow."""
        return [
            RecomputableUnit(f"stages.{i}.steps.{j}", step.resolution, step)
            for i, stage in enumerate(self.stages)
            if isinstance(stage, SplitStage)
            for j, step in enumerate(stage.steps)
        ]
