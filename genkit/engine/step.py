"""One optimisation step: forward → backward → clip → skip → AdamW → EMA, and the learning-rate schedule.

The step follows the flagship recipe's published training procedure and covers the other
families' recipes through its settings: forward → backward → clip the gradient norm
to ``grad_clip`` (0: no clipping) → skip the whole update when the norm reaches
``skip_threshold`` (0: never for size) or anything is not finite → AdamW (Adam when
``weight_decay = 0``) → EMA of the weights.

With ``train.accumulate = k`` the forward and backward passes run on ``k`` micro-batches one after
the other, each loss weighted by its share of the update's images, so the gradient that is
clipped, judged and applied is the one a single batch of all those images gives; under DDP the
gradients are reduced once, after the last micro-batch. Everything after the backward passes —
clipping, the skip decision, AdamW, the EMA, the schedule and every logged figure — happens once
per update.

Everything stays on the device: the skip decision is a tensor handed to the fused AdamW kernel
as ``found_inf`` (the mechanism ``torch.amp.GradScaler`` uses), which leaves weights, moments and
step count untouched, and the EMA update is multiplied by the same flag. Nothing is read back
to the host, so the step can be captured in a CUDA graph (:class:`GraphedTrainStep`, switched on
by ``train.cuda_graph``); metrics are device tensors that the trainer reads only at its logging
interval.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Callable

import torch
from torch import nn

from genkit.engine.distributed import Distributed
from genkit.engine.graphs import GraphedCall
from genkit.recipe import TrainConfig


def lr_factor(step: int, config: TrainConfig) -> float:
    """The learning rate of update ``step`` (from 0) as a fraction of ``train.lr``.

    Linear warm-up from 0 over ``warmup_iters`` updates (the reference's first update therefore uses
    learning rate 0; so does this), then ``lr_decay`` per update from ``max(warmup_iters,
    lr_decay_after)`` on, never below ``lr_floor``:

    * ``warmup_iters = 100``: warm-up, then constant (``lr_decay = 1``, the default);
    * ``warmup_iters = 0, lr_decay = 0.999995``: no warm-up, a per-update exponential decay;
    * ``warmup_iters = 5000, lr_decay_after = 50000, lr_decay = 0.99995, lr_floor = 3e-4``: warm-up,
      hold, then decay to a floor.

    ``docs/training.md`` lists which recipe uses which.
    """
    if step < config.warmup_iters:
        return step / config.warmup_iters
    decayed = config.lr_decay ** (step - max(config.warmup_iters, config.lr_decay_after))
    return max(min(decayed, 1.0), config.lr_floor / config.lr)


def build_optimizer(
    model: nn.Module, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over every trainable parameter with the recipe's betas, eps and (decoupled) weight decay.

    With ``train.cuda_graph`` the optimizer is made capturable: its learning rate is a device
    tensor that the scheduler fills in place between replays (a Python float would be frozen
    into the graph at its capture-time value).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    device = params[0].device if params else torch.device("cpu")
    lr = torch.tensor(config.lr, dtype=torch.float32, device=device) if config.cuda_graph else config.lr
    optimizer = torch.optim.AdamW(
        params,
        lr=lr,
        betas=tuple(config.betas),
        eps=config.eps,
        weight_decay=config.weight_decay,
        fused=True,
        capturable=config.cuda_graph,
    )
    # a partial keeps no state of its own, so a checkpoint's scheduler state is just the step count
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, config=config))
    _plain_base_lrs(scheduler)
    return optimizer, scheduler


def adapt_loaded_optimizer(optimizer: torch.optim.Optimizer, scheduler, config: TrainConfig) -> None:
    """After ``load_state_dict`` of both: this run's ``[train]`` settings, at the step the checkpoint reached.

    A resumed run may change ``[train]``: the learning rate, its schedule and AdamW's settings come
    from the current recipe, the step count and the moments from the checkpoint. A checkpoint written
    with and one written without ``train.cuda_graph`` differ in the groups' ``capturable`` flag and in
    whether ``lr`` is a float or a tensor (loaded onto the CPU); either may resume either way.
    """
    lr = config.lr * lr_factor(scheduler.last_epoch, config)
    for group in optimizer.param_groups:
        group.update(betas=tuple(config.betas), eps=config.eps, weight_decay=config.weight_decay, initial_lr=config.lr)
        group["capturable"] = config.cuda_graph
        device = group["params"][0].device
        group["lr"] = torch.tensor(lr, dtype=torch.float32, device=device) if config.cuda_graph else lr
    scheduler.base_lrs = [config.lr] * len(optimizer.param_groups)
    scheduler._last_lr = [lr] * len(optimizer.param_groups)


def _plain_base_lrs(scheduler) -> None:
    # the warm-up factor multiplies Python floats, whatever form the groups' lr takes: the scheduler
    # then fills a tensor lr in place (no allocation, no host sync) or sets a float one
    scheduler.base_lrs = [float(base) for base in scheduler.base_lrs]


class EMA:
    """An exponential moving average of a model's weights, kept in a full copy of the model.

    ``ema ← ema + (1 − rate)·(θ − ema)`` after every applied update; a skipped update leaves it
    alone (the multiplier is zero). Buffers are copied, not averaged.
    """

    def __init__(self, model: nn.Module, rate: float):
        self.rate = rate
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._source = [p for p in model.parameters()]
        self._target = [p for p in self.model.parameters()]
        self._source_buffers = list(model.buffers())
        self._target_buffers = list(self.model.buffers())

    @torch.no_grad()
    def update(self, applied: torch.Tensor) -> None:
        """``applied``: 1.0 when the update happened, 0.0 when it was skipped (a device scalar)."""
        weight = applied * (1.0 - self.rate)
        delta = torch._foreach_sub(self._source, self._target)
        torch._foreach_mul_(delta, weight)
        torch._foreach_add_(self._target, delta)
        for target, source in zip(self._target_buffers, self._source_buffers):
            target.copy_(source)


class TrainStep:
    """Callable doing one full update of ``trained`` through ``model`` (the forward to call)."""

    def __init__(
        self,
        model: nn.Module,
        trained: nn.Module,
        optimizer: torch.optim.Optimizer,
        ema: EMA,
        config: TrainConfig,
        context: Distributed,
        no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
    ):
        self.model = model  # what forward is called on: possibly DDP-wrapped and/or compiled
        # DistributedDataParallel's no_sync: micro-batches before the last leave their gradients unreduced
        self.no_sync = no_sync or contextlib.nullcontext
        self.trained = trained  # the plain module whose parameters the optimizer holds
        self.parts = trained.objective.parts  # the order of the parts in the returned vector
        self.params = [p for p in trained.parameters() if p.requires_grad]
        self.optimizer, self.ema, self.config, self.context = optimizer, ema, config, context
        self.device_type = context.device.type
        self.max_norm = config.grad_clip if config.grad_clip > 0 else math.inf

    def autocast(self):
        if self.config.dtype == "bfloat16":
            # no cache of cast weights: inside a captured graph it would outlive the replay it was made in
            return torch.autocast(self.device_type, dtype=torch.bfloat16, cache_enabled=not self.config.cuda_graph)
        return contextlib.nullcontext()

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update from ``images`` (``train.accumulate`` micro-batches one after the other); device scalars:
        ``loss`` (nats/dim), ``parts`` (a vector), ``grad_norm``, ``skipped``."""
        self.model.train()
        micro_batches = images.chunk(self.config.accumulate)
        loss: torch.Tensor | float = 0.0
        parts: list[torch.Tensor | float] = [0.0] * len(self.parts)
        for index, micro_batch in enumerate(micro_batches):
            share = (
                micro_batch.shape[0] / images.shape[0]
            )  # the mean over the update's images, micro-batch by micro-batch
            last = index == len(micro_batches) - 1
            with self.autocast(), contextlib.nullcontext() if last else self.no_sync():
                terms = self.model(micro_batch, latents=self.config.latents)
                (terms.loss * share).backward()  # gradients add up; DDP reduces them after the last micro-batch only
            loss = loss + at_least_float32(terms.loss.detach()) * share
            for i, name in enumerate(self.parts):
                parts[i] = parts[i] + at_least_float32(terms.parts[name].detach()).mean() * share
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_norm, foreach=True)
        applied = torch.isfinite(loss) & torch.isfinite(grad_norm)
        if self.config.skip_threshold > 0:
            applied = applied & (grad_norm < self.config.skip_threshold)
        applied = applied.float()
        # every rank must take the same decision; the gradient norm already agrees after DDP's
        # all-reduce, the loss (rank-local) may not
        self.context.all_reduce_(applied, "min")
        self.optimizer.found_inf = 1.0 - applied
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(applied)
        return {
            "loss": loss,
            "parts": torch.stack(parts) if parts else loss.new_zeros(0),  # in the order of objective.parts
            "grad_norm": grad_norm.detach(),
            "skipped": 1.0 - applied,
        }


def at_least_float32(value: torch.Tensor) -> torch.Tensor:
    """A figure to add up and log: bf16 or float16 (under autocast) in float32, float64 left as it is."""
    return value.to(torch.promote_types(value.dtype, torch.float32))


class GraphedTrainStep(GraphedCall):
    """A :class:`TrainStep` captured whole — forward, backward, clipping, skip, AdamW, EMA — in one CUDA graph.

    See :class:`genkit.engine.graphs.GraphedCall`: the first ``warmup`` steps run eagerly (each a
    real update, creating the optimizer's moments), the next is captured, the rest are replays.
    Every call does exactly one update, so where capture happened changes nothing beyond
    floating-point rounding, and the latent noise keeps coming from the default CUDA generator,
    whose offset each replay advances.
    """

    def __init__(self, step: TrainStep, warmup: int = 3):
        super().__init__(step, device=step.context.device, warmup=warmup)
        self.step = step

    def before_capture(self) -> None:
        for param in self.step.params:  # the graph allocates (and then owns) the gradients
            param.grad = None


def training_step(
    forward: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ema: EMA,
    config: TrainConfig,
    context: Distributed,
    graph_warmup: int = 3,
    no_sync: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> TrainStep | GraphedTrainStep:
    """The step ``genkit run`` and ``genkit bench`` both take: eager, or captured whole when ``train.cuda_graph``.

    ``no_sync`` is the DistributedDataParallel wrapper's, when there is one.
    """
    step = TrainStep(forward, model, optimizer, ema, config, context, no_sync)
    return GraphedTrainStep(step, warmup=graph_warmup) if config.cuda_graph else step
