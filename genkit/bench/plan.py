"""``genkit plan``: what a recipe's training needs of a GPU's memory, counted in seconds on fake tensors.

Nothing is allocated: the model is built under ``FakeTensorMode`` (tensors with shapes and dtypes
but no memory), and one forward pass per dtype (float32; bf16 autocast) and batch size (1 and 2)
records what autograd keeps for the backward pass (:class:`genkit.bench.saved.SavedTrace`). The
count is exact for what PyTorch's CPU kernels save (bf16 follows the CPU autocast rules); the
batch-size-1 and -2 passes separate what grows with the batch from what does not (bf16 copies of
the weights). From them:

* the training state: the weights, their gradients, AdamW's two moments and the EMA copy (float32);
* for every activation-checkpointing policy that recomputes a different set of units — ``off``,
  each ``resolution>=R``, ``all`` — and both dtypes, the bytes kept for backward per image;
* for ``gpus`` GPUs of ``memory`` bytes, the largest micro-batch that fits each, the accumulation
  that makes up the global batch, and the predicted peak of allocated memory.

The predicted peak is the state, plus the activations alive at the worst moment of the backward
pass — everything kept, or, when the backward reaches a recomputed unit, what the forward had kept
up to that unit's end and the unit's own tensors made again, whichever is larger — plus the
gradient flowing through the network, taken as twice the largest tensor kept. The gradients of the
weights count in full from the start. Not modelled, and left to a reserve of 10 % of the memory
and 1 GiB: the CUDA context, cuDNN and cuBLAS workspaces, and the caching allocator's fragmentation.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import attrs
import torch

from genkit.bench.saved import SavedTrace
from genkit.capabilities import Recomputable
from genkit.errors import ConfigError
from genkit.models import build_model
from genkit.recipe import Recipe
from genkit.recompute import distinct_policies

DTYPES = ("float32", "bfloat16")
RESERVE_FRACTION = 0.10  # of the GPU's memory: the caching allocator's fragmentation and cached blocks
RESERVE_BYTES = 2**30  # the CUDA context and library workspaces
BUSY_PIXELS = 2**16  # a micro-batch of fewer pixels leaves a large GPU partly idle (64 images of 32×32, 1 of 256×256)


@attrs.frozen
class Line:
    """``at_one + per_image·(B − 1)`` bytes: a count at batch 1 and how it grows with each image."""

    at_one: float
    per_image: float

    def at(self, batch: int) -> float:
        return self.at_one + self.per_image * (batch - 1)

    @classmethod
    def through(cls, one: float, two: float) -> Line:
        return cls(one, two - one)


@attrs.frozen
class PolicyCount:
    """What one policy keeps in one dtype."""

    policy: str
    recomputed_units: int
    kept: Line  # bytes kept for backward
    peaks: tuple[Line, ...]  # the candidates for the most alive during backward (SavedTrace.peak's terms)
    largest: Line  # the largest single kept tensor

    def activation_bytes(self, batch: int) -> float:
        """Activations and the gradient flowing through them at the worst moment of backward, at ``batch``."""
        return max(line.at(batch) for line in self.peaks) + 2 * self.largest.at(batch)


@attrs.frozen
class MemoryCount:
    """What :func:`count_memory` counts of one recipe."""

    recipe: str
    image_shape: tuple[int, int, int]
    parameters: int
    state: dict[str, int]  # weights, gradients, AdamW moments, EMA copy: bytes
    units: int  # recomputable units the model declares (0: only "off")
    counts: dict[str, tuple[PolicyCount, ...]]  # dtype -> one per policy, least recomputation first

    @property
    def state_bytes(self) -> int:
        return sum(self.state.values())


def _autocast(dtype: str):
    if dtype == "bfloat16":  # the CPU autocast rules: fake CPU tensors are what can be counted without a GPU
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _trace(model, units, shape: tuple[int, int, int], batch: int, dtype: str) -> SavedTrace:
    images = torch.zeros(batch, *shape, dtype=torch.uint8)
    with SavedTrace(model, units) as trace, _autocast(dtype):
        model(images)  # the pass is what is wanted, not its result
    return trace


def count_memory(recipe: Recipe) -> MemoryCount:
    """Count ``recipe``'s training memory on fake tensors (see the module's docstring)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        model = build_model(recipe, "cpu").train()
        units = model.recomputable_units() if isinstance(model, Recomputable) else []
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        trainable = [p for p in model.parameters() if p.requires_grad]
        gradients = sum(p.numel() * p.element_size() for p in trainable)
        state = {
            "weights": weights,
            "gradients": gradients,
            "AdamW moments": 2 * gradients + 4 * len(trainable),  # and fused AdamW's step count per tensor
            "EMA copy": weights + sum(b.numel() * b.element_size() for b in model.buffers()),
        }
        h, w, c = model.image_shape
        counts = {}
        for dtype in DTYPES:
            traces = [_trace(model, units, (h, w, c), batch, dtype) for batch in (1, 2)]
            rows = []
            for policy in distinct_policies([u.resolution for u in units]):
                chosen = [i for i, u in enumerate(units) if policy.selects(u.resolution)]
                one, two = traces
                rows.append(
                    PolicyCount(
                        policy.text,
                        len(chosen),
                        Line.through(one.kept(chosen), two.kept(chosen)),
                        tuple(Line.through(a, b) for a, b in zip(one.peak_terms(chosen), two.peak_terms(chosen))),
                        Line.through(one.largest(chosen), two.largest(chosen)),
                    )
                )
            counts[dtype] = tuple(rows)
    return MemoryCount(
        str(recipe.source), (h, w, c), sum(p.numel() for p in model.parameters()), state, len(units), counts
    )


@attrs.frozen
class Fit:
    """One policy in one dtype on the planned GPUs: the largest micro-batch that fits and what it makes."""

    dtype: str
    policy: str
    micro_batch: int  # 0: not even one image fits
    accumulate: int
    peak_bytes: float


def usable_bytes(memory: int) -> float:
    """What the planner lets the model's tensors take of a GPU of ``memory`` bytes."""
    return memory * (1 - RESERVE_FRACTION) - RESERVE_BYTES


def fit(count: MemoryCount, row: PolicyCount, dtype: str, memory: int, share: int) -> Fit:
    """The largest micro-batch dividing ``share`` (images per GPU per update) that fits ``memory``."""
    room = usable_bytes(memory) - count.state_bytes
    for batch in sorted((b for b in range(1, share + 1) if share % b == 0), reverse=True):
        need = row.activation_bytes(batch)
        if need <= room:
            return Fit(dtype, row.policy, batch, share // batch, count.state_bytes + need)
    return Fit(dtype, row.policy, 0, 0, count.state_bytes + row.activation_bytes(1))


def plan(count: MemoryCount, *, memory: int, gpus: int, global_batch: int) -> dict[str, list[Fit]]:
    """Every policy's fit in each dtype, for ``global_batch`` images per update on ``gpus`` GPUs of ``memory`` bytes."""
    if global_batch % gpus:
        raise ConfigError(f"--gpus {gpus}: the global batch of {global_batch} images does not divide among them")
    share = global_batch // gpus
    return {dtype: [fit(count, row, dtype, memory, share) for row in rows] for dtype, rows in count.counts.items()}


def suggestion(count: MemoryCount, fits: list[Fit], share: int) -> Fit | None:
    """The policy to train with: the one recomputing least whose micro-batch keeps a GPU busy.

    Accumulating micro-batches costs nothing per image while each is large enough to keep the GPU
    busy (:data:`BUSY_PIXELS`, or the whole share); recomputation costs a forward pass of the units
    it recomputes. Where no policy reaches such a micro-batch, the one reaching the largest.
    """
    h, w, _ = count.image_shape
    enough = min(share, math.ceil(BUSY_PIXELS / (h * w)))
    fitting = [f for f in fits if f.micro_batch > 0]
    if not fitting:
        return None
    busy = [f for f in fitting if f.micro_batch >= enough]
    return busy[0] if busy else max(fitting, key=lambda f: f.micro_batch)


def to_json(count: MemoryCount, fits: dict[str, list[Fit]], memory: int, gpus: int, global_batch: int) -> dict:
    """The count and the plan as plain data (``genkit plan --json``)."""
    share = global_batch // gpus
    return {
        "recipe": count.recipe,
        "parameters": count.parameters,
        "state_bytes": count.state,
        "recomputable_units": count.units,
        "gpu_memory_bytes": memory,
        "gpus": gpus,
        "global_batch": global_batch,
        "saved_for_backward": {
            dtype: [
                {
                    "policy": row.policy,
                    "recomputed_units": row.recomputed_units,
                    "bytes_per_image": row.kept.per_image,
                    "bytes_at_batch_1": row.kept.at_one,
                }
                for row in rows
            ]
            for dtype, rows in count.counts.items()
        },
        "fits": {dtype: [attrs.asdict(f) for f in rows] for dtype, rows in fits.items()},
        "suggested": {
            dtype: (lambda s: None if s is None else attrs.asdict(s))(suggestion(count, rows, share))
            for dtype, rows in fits.items()
        },
    }


def run_command(recipe: str, overrides: tuple[str, ...], chosen: Fit, gpus: int, train: Any, global_batch: int) -> str:
    """The ``genkit run`` (or ``torchrun``) command line that trains with ``chosen``.

    The update's images are set as ``train.global_batch`` (unless the recipe already says so), from which
    the run derives the accumulation on its number of processes; ``train`` is the recipe's ``[train]``.
    """
    launch = "genkit run" if gpus == 1 else f"torchrun --standalone --nproc_per_node={gpus} -m genkit run"
    settings = [*overrides, f'train.dtype="{chosen.dtype}"']
    settings += [f"train.activation_checkpointing={chosen.policy}", f"train.batch_size={chosen.micro_batch}"]
    if train.global_batch != global_batch:
        settings.append(f"train.global_batch={global_batch}")
        if train.accumulate != 1:
            settings.append("train.accumulate=1")  # the global batch sets it
    return " ".join([launch, recipe, *(f"--set '{s}'" for s in settings)])


def format_plan(
    count: MemoryCount, fits: dict[str, list[Fit]], *, memory: int, gpus: int, global_batch: int, command: Any
) -> str:
    """The count and the plan as terminal tables; ``command(fit)`` gives the command line for a suggestion."""
    mib, gib = 2**20, 2**30
    state = ", ".join(f"{name} {value / mib:,.0f} MiB" for name, value in count.state.items())
    lines = [
        f"{count.recipe}: {count.parameters:,} parameters, {count.units} recomputable units",
        f"training state: {state} ({count.state_bytes / gib:.2f} GiB)",
        "",
        "saved for backward, MiB per image (counted on fake tensors; bf16: CPU autocast rules)",
        f"{'policy':<18} {'units':>6} " + " ".join(f"{d:>10}" for d in DTYPES),
    ]
    for rows in zip(*(count.counts[d] for d in DTYPES)):
        cells = " ".join(f"{row.kept.per_image / mib:>10,.1f}" for row in rows)
        lines.append(f"{rows[0].policy:<18} {rows[0].recomputed_units:>6} {cells}")
    share = global_batch // gpus
    lines += [
        "",
        f"global batch {global_batch} on {gpus} GPU{'s' if gpus > 1 else ''} of {memory / gib:.0f} GiB "
        f"({share} images per GPU per update; {usable_bytes(memory) / gib:.1f} GiB left after the reserve "
        f"of {RESERVE_FRACTION:.0%} and {RESERVE_BYTES / gib:.0f} GiB)",
        f"{'dtype':<9} {'policy':<18} {'micro-batch':>11} {'accumulate':>10} {'peak GiB':>9}",
    ]
    for dtype, rows in fits.items():
        for f in rows:
            batch = f"{f.micro_batch:>11} {f.accumulate:>10}" if f.micro_batch else f"{'does not fit':>22}"
            lines.append(f"{dtype:<9} {f.policy:<18} {batch} {f.peak_bytes / gib:>9.1f}")
    for dtype, rows in fits.items():
        chosen = suggestion(count, rows, share)
        if chosen is None:
            lines += ["", f"{dtype}: nothing fits, not even one image per GPU with every unit recomputed"]
            continue
        lines += [
            "",
            f"{dtype}: policy {chosen.policy}, {chosen.micro_batch} images × {chosen.accumulate} accumulated "
            f"per GPU (peak {chosen.peak_bytes / gib:.1f} GiB):",
            f"  {command(chosen)}",
        ]
    return "\n".join(lines)
