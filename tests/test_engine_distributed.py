"""DDP through the same entry point torchrun uses: two gloo processes on CPU agree with each other and with one
process."""

from __future__ import annotations

import socket

import engine_plugins
import pytest
import torch
import torch.multiprocessing as mp

from genkit.engine.distributed import setup
from genkit.errors import ConfigError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_recipe(batch_size: int, out_dir) -> dict:
    train = {
        "steps": 6,
        "batch_size": batch_size,
        "lr": 0.05,
        "warmup_iters": 2,
        "num_workers": 0,
        "log_every": 3,
        "eval_every": 1000,
        "checkpoint_every": 1000,
        "ema_rate": 0.9,
        "n_samples": 4,
        "out_dir": str(out_dir),
    }
    return {
        "model": {"name": "pixels-init"},  # initialised from data on rank 0, then broadcast
        "data": {"name": "digits"},
        "train": train,
        "eval": {"max_images": 20, "batch_size": 8},
    }


@pytest.mark.slow
def test_two_gloo_ranks_end_identical_and_equal_one_process_at_the_same_global_batch(tmp_path):
    mp.spawn(
        engine_plugins.ddp_worker, args=(2, free_port(), raw_recipe(4, tmp_path), str(tmp_path)), nprocs=2, join=True
    )
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    ema0, ema1 = torch.load(tmp_path / "rank0-ema.pt"), torch.load(tmp_path / "rank1-ema.pt")
    assert all(torch.equal(ema0[k], ema1[k]) for k in ema0)  # the EMA copied rank 0's initialisation everywhere

    from genkit.engine.trainer import train
    from genkit.recipe import recipe_from_dict
    from genkit.registry import reset_registry

    engine_plugins.install_registry()
    try:
        result = train(recipe_from_dict(raw_recipe(8, tmp_path), file="one.toml"), run_dir=tmp_path / "alone")
        alone, alone_ema = result.model.state_dict(), result.ema_model.state_dict()
    finally:
        reset_registry()
    for key in alone:
        torch.testing.assert_close(rank0[key], alone[key], rtol=0, atol=1e-6)
        torch.testing.assert_close(ema0[key], alone_ema[key], rtol=0, atol=1e-6)
    assert not torch.equal(alone["logits"], torch.zeros_like(alone["logits"]))
    # only rank 0 wrote the run directory, with one checkpoint
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-00000006"]


def test_many_processes_without_a_rendezvous_address_is_a_config_error():
    with pytest.raises(ConfigError, match="MASTER_ADDR/MASTER_PORT are not set: launch many processes with torchrun"):
        setup({"WORLD_SIZE": "2", "RANK": "0"})
