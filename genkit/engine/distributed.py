"""One process or many: the same code runs alone or as every rank under ``torchrun`` (DDP).

``torchrun --nproc_per_node=8 -m genkit run recipes/cifar10.toml`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` reads them once and everything
else receives the resulting :class:`Distributed`. ``train.batch_size`` is per process, so the
global batch is ``batch_size × world_size``; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import torch
import torch.distributed as dist

from genkit.errors import ConfigError

NoSync = Callable[[], contextlib.AbstractContextManager]  # DistributedDataParallel.no_sync


@attrs.frozen
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = attrs.field(factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """Reduce ``tensor`` in place over every rank (``sum``, ``min`` or ``max``); a no-op alone."""
        if self.enabled:
            dist.all_reduce(
                tensor, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op]
            )
        return tensor

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable Python object)."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_tensors_(self, tensors) -> None:
        """Overwrite ``tensors`` on every rank with rank 0's values, in place; a no-op alone."""
        if self.enabled:
            for tensor in tensors:
                dist.broadcast(tensor.data, src=0)

    def wrap(self, model: torch.nn.Module) -> tuple[torch.nn.Module, NoSync | None]:
        """What a training step calls for ``model``, and that wrapper's ``no_sync`` (``None`` alone).

        Under torchrun: DistributedDataParallel, whose gradients live in its buckets (no second copy of
        them); its ``no_sync`` leaves the gradients of a micro-batch unreduced until the last one.
        """
        if not self.enabled:
            return model, None
        # a 1×1 convolution at 1×1 resolution gets its weight's gradient with other strides in its size-1
        # dimensions than DDP's bucket: the same memory order, nothing to warn about at every run
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device] if self.device.type == "cuda" else None, gradient_as_bucket_view=True
        )
        return ddp, ddp.no_sync

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.enabled:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out


def setup(env: dict[str, str] | None = None) -> Distributed:
    """Join the process group ``torchrun`` describes (or run alone) and pick this process's device."""
    env = dict(os.environ if env is None else env)
    world_size = int(env.get("WORLD_SIZE", "1"))
    rank, local_rank = int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} CUDA devices are visible")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        if "MASTER_ADDR" not in env or "MASTER_PORT" not in env:
            raise ConfigError(
                "WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: launch many processes with torchrun"
            )
        # NCCL for GPUs; gloo lets the same recipe (and the tests) run many processes on CPU
        dist.init_process_group(
            "nccl" if cuda else "gloo", rank=rank, world_size=world_size, device_id=device if cuda else None
        )
    return Distributed(rank, world_size, local_rank, device)


def teardown(context: Distributed) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def processes(device: torch.device | str, env: dict[str, str] | None = None) -> Iterator[Distributed]:
    """A command's processes: alone on ``device``, or, when ``torchrun`` started several, every rank on its own.

    Under ``torchrun`` each rank joins the process group on the device :func:`setup` picks for it
    (its local GPU, else the CPU), whatever ``device`` says, and leaves the group when the block ends.
    """
    env = dict(os.environ if env is None else env)
    if int(env.get("WORLD_SIZE", "1")) <= 1:
        yield Distributed(device=torch.device(device))
        return
    context = setup(env)
    try:
        yield context
    finally:
        teardown(context)
