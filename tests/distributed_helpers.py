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
