"""``genkit bench --tune``: the fastest training settings on this device whose numerical guard holds.

The settings tried are every combination of ``train.dtype`` (float32, bfloat16),
``train.channels_last``, ``train.compile`` and ``train.cuda_graph`` that the device offers: the CUDA
graph and compilation only on CUDA (compiling takes minutes per setting on a CPU, where ``--compile``
holds it on instead).
A setting given on the command line (``--dtype``, ``--channels-last``, ``--compile``, ``--cuda-graph``
and their ``--no-`` forms) is held at that value instead of tried both ways.

Every candidate is built and warmed up first and kept; then the timed steps run in rounds, each
candidate taking its share of steps once per round, in an order that reverses from round to round
(A B C, C B A, …), so that a change in the device's speed during the run (another process, the
clock, the temperature) weighs on every candidate alike. Each candidate's time per step is the
median over its rounds. Then each candidate's numerical guard (the same measurement ``genkit bench``
reports) is taken, and the fastest candidate within :data:`GUARD_LIMIT` of float32 is the answer,
as the ``--set`` options that select it. A candidate that runs out of memory, or whose timed steps
leave weights on which even float32 gives no finite loss, is reported as such and left out.
"""

from __future__ import annotations

import datetime
import itertools
import statistics
from collections.abc import Callable
from typing import Any

import attrs
import torch

from genkit.bench.measures import device_name, elapsed_seconds
from genkit.bench.steps import GRAPH_WARMUP, GUARD_LIMIT, BenchStep, numerical_guard, prepare_step
from genkit.errors import ConfigError, DivergedError, is_out_of_memory
from genkit.recipe import Recipe

#: the settings the tuner tries, in the order the table shows them
AXES = ("dtype", "channels_last", "compile", "cuda_graph")

Timer = Callable[[BenchStep, int], float]  # (the step, how many steps) -> seconds they took


@attrs.frozen
class Setting:
    """One combination of the tuned ``[train]`` settings."""

    dtype: str = "float32"
    channels_last: bool = False
    compile: bool = False
    cuda_graph: bool = False

    @property
    def label(self) -> str:
        flags = [("channels-last", self.channels_last), ("compiled", self.compile), ("CUDA graph", self.cuda_graph)]
        return ", ".join([self.dtype, *(name for name, on in flags if on)])

    @property
    def overrides(self) -> list[str]:
        """The recipe overrides (``--set`` values) that select this setting."""
        return [
            f'train.dtype="{self.dtype}"',
            *(f"train.{axis}={str(getattr(self, axis)).lower()}" for axis in AXES[1:]),
        ]

    def apply(self, recipe: Recipe) -> Recipe:
        return attrs.evolve(recipe, train=attrs.evolve(recipe.train, **attrs.asdict(self)))


def candidate_settings(device_type: str, held: dict[str, Any] | None = None) -> list[Setting]:
    """Every setting the device offers, with the axes in ``held`` fixed at their value."""
    held = held or {}
    cuda = device_type == "cuda"
    if held.get("cuda_graph") and not cuda:
        raise ConfigError(f"--cuda-graph: a CUDA graph needs a CUDA device, and the tuner runs on {device_type}")
    choices = {
        "dtype": ["float32", "bfloat16"],
        "channels_last": [False, True],
        "compile": [False, True] if cuda else [False],  # minutes per setting on a CPU: only when held on
        "cuda_graph": [False, True] if cuda else [False],
    }
    choices.update({axis: [value] for axis, value in held.items() if value is not None})
    return [Setting(*values) for values in itertools.product(*(choices[axis] for axis in AXES))]


def fastest_correct(rows: list[dict[str, Any]], limit: float = GUARD_LIMIT) -> dict[str, Any] | None:
    """The fastest row that ran and whose guard is within ``limit``; ``None`` when there is none."""
    correct = [row for row in rows if row["failed"] is None and row["loss_relative_difference"] <= limit]
    return min(correct, key=lambda row: row["ms_per_step"], default=None)


def round_orders(candidates: int, rounds: int) -> list[list[int]]:
    """The order the candidates take their steps in each round: forwards, then backwards, and so on."""
    forwards = list(range(candidates))
    return [forwards if r % 2 == 0 else forwards[::-1] for r in range(rounds)]


def tune(
    recipe: Recipe,
    *,
    batch: int,
    device: torch.device,
    held: dict[str, Any] | None = None,
    steps: int = 25,
    rounds: int = 5,
    warmup: int = 8,
    weights: str | None = None,
    use_data: bool = True,
    timer: Timer | None = None,
) -> dict[str, Any]:
    """Time every candidate setting of ``recipe`` (``steps`` timed steps each, spread over ``rounds``) and pick
    the fastest correct one. ``timer`` measures a number of steps (the device's clock unless given)."""
    timer = timer or default_timer(device)
    settings = candidate_settings(device.type, held)
    per_round = max(1, -(-steps // rounds))
    benches: list[BenchStep | None] = []
    failed: list[str | None] = []
    for setting in settings:
        bench, problem = _start(setting.apply(recipe), device, batch, warmup, weights, use_data)
        benches.append(bench)
        failed.append(problem)
    times: list[list[float]] = [[] for _ in settings]
    for order in round_orders(len(settings), rounds):
        for i in order:
            if benches[i] is None:
                continue
            try:
                times[i].append(timer(benches[i], per_round) / per_round)
            except Exception as exc:
                benches[i], failed[i] = None, _failure(exc)
    rows = []
    for setting, bench, problem, seconds in zip(settings, benches, failed, times):
        row: dict[str, Any] = {**attrs.asdict(setting), "setting": setting.label, "failed": problem}
        if bench is not None:
            try:
                guard = numerical_guard(bench)
            except DivergedError:  # its timed steps left the weights where float32 gives no finite loss
                row["failed"] = "diverged"
            else:
                ms = 1000 * statistics.median(seconds)
                row.update(ms_per_step=ms, images_per_s=1000 * batch / ms, **guard)
        rows.append(row)
    baseline = next((row for row in rows if row["setting"] == "float32" and row["failed"] is None), None)
    for row in rows:
        if row["failed"] is None:
            row["relative_to_float32"] = None if baseline is None else row["ms_per_step"] / baseline["ms_per_step"]
            row["correct"] = row["loss_relative_difference"] <= GUARD_LIMIT
    best = fastest_correct(rows)
    return {
        "recipe": recipe.source,
        "device": device_name(device),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "batch": batch,
        "steps": per_round * rounds,
        "rounds": rounds,
        "guard_limit": GUARD_LIMIT,
        "candidates": rows,
        "fastest": None if best is None else best["setting"],
        "set": [] if best is None else Setting(*(best[axis] for axis in AXES)).overrides,
    }


def default_timer(device: torch.device) -> Timer:
    """The device's clock: seconds for a number of steps, synchronised before and after."""
    return lambda bench, count: elapsed_seconds(bench, device, count)


def _start(
    recipe: Recipe, device: torch.device, batch: int, warmup: int, weights: str | None, use_data: bool
) -> tuple[BenchStep | None, str | None]:
    """A candidate built and warmed up, or why it could not be."""
    if recipe.train.cuda_graph:
        warmup = max(warmup, GRAPH_WARMUP + 1)  # the eager warm-up steps and the capture stay out of the timing
    try:
        bench = prepare_step(recipe, device, batch=batch, weights=weights, use_data=use_data)
        elapsed_seconds(bench, device, warmup)
    except Exception as exc:
        return None, _failure(exc)
    return bench, None


def _failure(exc: Exception) -> str:
    """Why a candidate dropped out: running out of memory is an answer about the setting; anything else is a bug."""
    if not is_out_of_memory(exc):
        raise exc
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return "out of memory"
