"""One optimisation step of the reference VDVAE recipe (Child 2021, §4 and its code release).

forward → backward → clip the gradient norm to ``grad_clip`` → skip the whole update when the
norm reaches ``skip_threshold`` or anything is not finite → AdamW → EMA of the weights.

Everything stays on the device: the skip decision is a tensor handed to the fused AdamW kernel
as ``found_inf`` (the mechanism ``torch.amp.GradScaler`` uses), which leaves weights, moments and
step count untouched, and the EMA update is multiplied by the same flag. Nothing is read back
to the host, so the step can later be captured in a CUDA graph; metrics are device tensors that
the trainer reads only at its logging interval.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from genkit.engine.distributed import Distributed
from genkit.recipe import TrainConfig


class LinearWarmup:
    """The reference's learning-rate factor: ``step / warmup_iters`` until it reaches 1, then 1.

    (The reference's first update therefore uses learning rate 0; so does this.)
    """

    def __init__(self, warmup_iters: int):
        self.warmup_iters = warmup_iters

    def __call__(self, step: int) -> float:
        return 1.0 if step >= self.warmup_iters else step / self.warmup_iters


def build_optimizer(model: nn.Module, config: TrainConfig) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over every trainable parameter with the recipe's betas, eps and (decoupled) weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, betas=tuple(config.betas), eps=config.eps, weight_decay=config.weight_decay, fused=True
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LinearWarmup(config.warmup_iters))
    return optimizer, scheduler


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
    """Callable doing one full update; returns device scalars (loss/distortion/rate in nats/dim, grad norm, skipped)."""

    def __init__(self, model: nn.Module, trained: nn.Module, optimizer: torch.optim.Optimizer, ema: EMA, config: TrainConfig, context: Distributed):
        self.model = model  # what forward is called on: possibly DDP-wrapped and/or compiled
        self.trained = trained  # the plain module whose parameters the optimizer holds
        self.params = [p for p in trained.parameters() if p.requires_grad]
        self.optimizer, self.ema, self.config, self.context = optimizer, ema, config, context
        self.device_type = context.device.type

    def autocast(self):
        if self.config.dtype == "bfloat16":
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.model.train()
        with self.autocast():
            terms = self.model(images)
        terms.loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip, foreach=True)
        loss = terms.loss.detach().float()
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
            "distortion": terms.distortion.detach().float().mean(),
            "rate": terms.rate.detach().float().mean(),
            "grad_norm": grad_norm.detach(),
            "skipped": 1.0 - applied,
        }
