"""Launching real multi-process runs from tests: ``torchrun`` as a user would, and ``mp.spawn`` workers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(processes: int, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=N -m genkit ARGS`` (gloo on the CPU), one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return subprocess.run(
        [*command, "-m", "genkit", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def float64_worker(rank: int, world_size: int, port: int, recipe: str, overrides: list[str], out: str) -> None:
    """One rank of an ``mp.spawn`` run in float64: train ``recipe`` with ``overrides``, save this rank's weights."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # every weight the model builds, and so all of its arithmetic
    from genkit.engine.trainer import train
    from genkit.recipe import load_recipe

    result = train(load_recipe(recipe, overrides), run_dir=f"{out}/run")
    torch.save({k: v.clone() for k, v in result.model.state_dict().items()}, f"{out}/rank{rank}.pt")
    torch.save({k: v.clone() for k, v in result.ema_model.state_dict().items()}, f"{out}/rank{rank}-ema.pt")


def figures_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """Rank 0 sums a vector and a maximum; rank 1 saw no image at all: both must reduce to the same figures."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    from genkit.engine.distributed import setup, teardown
    from genkit.engine.figures import Figures

    context = setup()
    try:
        figures = Figures(context.device)
        figures.add("images", torch.tensor(2.0 + rank))
        if rank == 0:
            figures.add("layer_kl", torch.tensor([1.0, 2.0, 3.0]))
            figures.add("layer_kl", torch.tensor([0.5, 0.5, 0.5]))
            figures.maximum("worst", torch.tensor(0.25))
        torch.save(figures.reduced(context), f"{out}/figures{rank}.pt")
    finally:
        teardown(context)


def no_sync_worker(rank: int, world_size: int, port: int, out: str) -> None:
    """Two updates of three micro-batches each through DDP: count the gradient all-reduces DDP issues."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    import attrs
    from engine_plugins import PixelModel, PixelSettings
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    from genkit.engine.distributed import setup, teardown
    from genkit.engine.step import EMA, build_optimizer, training_step
    from genkit.recipe import TrainConfig

    context = setup()
    try:
        torch.manual_seed(0)
        model = PixelModel(PixelSettings(image_size=4))
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        reduced = []

        def counting_hook(state, bucket):
            reduced.append(bucket.buffer().numel())
            return allreduce_hook(state, bucket)

        ddp.register_comm_hook(None, counting_hook)
        config = attrs.evolve(TrainConfig(), batch_size=2, accumulate=3, warmup_iters=0)
        optimizer, _ = build_optimizer(model, config)
        step = training_step(ddp, model, optimizer, EMA(model, 0.9), config, context, no_sync=ddp.no_sync)
        images = torch.randint(0, 256, (6, 4, 4, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(rank))
        for _ in range(2):
            step(images)
        torch.save({"reduced": reduced, "logits": model.logits.detach().clone()}, f"{out}/no-sync{rank}.pt")
    finally:
        teardown(context)
