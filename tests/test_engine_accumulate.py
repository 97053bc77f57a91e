"""Gradient accumulation: k micro-batches of B images are one update of k·B images, in float64 to 1e-12.

The weights after each update, their EMA and the logged loss equal those of one batch of k·B (the
same images in the same order), alone, under torchrun with two gloo processes, and across a resume;
DDP reduces the gradients once per update, after the last micro-batch.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp
from distributed_helpers import ROOT, float64_worker, free_port, no_sync_worker

from genkit.engine.trainer import train
from genkit.recipe import load_recipe

RECIPE = ROOT / "recipes" / "digits.toml"
COMMON = [
    'train.latents="mean"',  # a deterministic step: the same latents whatever the micro-batch
    "train.steps=3",
    "train.warmup_iters=1",
    "train.log_every=1",
    "train.eval_every=1000",
    "train.checkpoint_every=1000",
    "train.n_samples=2",
    "train.ema_rate=0.5",
    "eval.batch_size=8",
    "eval.validation_max_images=8",
    "eval.max_images=8",
]


def train_float64(overrides: list[str], run_dir, resume=None):
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return train(load_recipe(RECIPE, [*COMMON, *overrides]), run_dir=run_dir, resume=resume)
    finally:
        torch.set_default_dtype(default)


def logged_losses(run_dir) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss_bpd"] for r in records if r["split"] == "train"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        scale = a[key].abs().max().item() or 1.0
        assert (a[key] - b[key]).abs().max().item() <= 1e-12 * scale, key


@pytest.fixture(scope="module")
def one_batch(tmp_path_factory):
    """Three updates of one batch of 8 images."""
    run_dir = tmp_path_factory.mktemp("one-batch") / "run"
    result = train_float64(["train.batch_size=8"], run_dir)
    return result.model.state_dict(), result.ema_model.state_dict(), logged_losses(run_dir)


def test_four_micro_batches_of_two_give_the_updates_of_one_batch_of_eight(one_batch, tmp_path):
    weights, ema, losses = one_batch
    result = train_float64(["train.batch_size=2", "train.accumulate=4"], tmp_path / "run")
    assert_same_weights(result.model.state_dict(), weights)
    assert_same_weights(result.ema_model.state_dict(), ema)
    assert logged_losses(tmp_path / "run") == pytest.approx(losses, rel=1e-12, abs=0)
    assert len(losses) == 3 and losses[0] != losses[-1]  # one record per update, and the updates did something


def test_an_accumulating_run_resumed_after_two_updates_ends_where_one_uninterrupted_batch_does(one_batch, tmp_path):
    weights, ema, losses = one_batch
    accumulating = ["train.batch_size=2", "train.accumulate=4"]
    train_float64([*accumulating, "train.steps=2"], tmp_path / "run")
    result = train_float64(accumulating, tmp_path / "run", resume=tmp_path / "run")
    assert result.step == 3
    assert_same_weights(result.model.state_dict(), weights)
    assert_same_weights(result.ema_model.state_dict(), ema)
    assert logged_losses(tmp_path / "run") == pytest.approx(losses, rel=1e-12, abs=0)


@pytest.mark.slow
def test_two_processes_of_two_micro_batches_of_two_give_the_updates_of_one_batch_of_eight(one_batch, tmp_path):
    weights, ema, _ = one_batch
    overrides = [*COMMON, "train.batch_size=2", "train.accumulate=2"]
    mp.spawn(float64_worker, args=(2, free_port(), str(RECIPE), overrides, str(tmp_path)), nprocs=2, join=True)
    assert_same_weights(torch.load(tmp_path / "rank0.pt"), weights)
    assert_same_weights(torch.load(tmp_path / "rank0-ema.pt"), ema)


@pytest.mark.slow
def test_ddp_reduces_gradients_once_per_update_after_the_last_micro_batch(tmp_path):
    mp.spawn(no_sync_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (torch.load(tmp_path / f"no-sync{rank}.pt") for rank in (0, 1))
    parameters = 4 * 4 * 1 * 256  # the toy model's logits: one bucket
    assert rank0["reduced"] == rank1["reduced"] == [parameters, parameters]  # two updates of three micro-batches
    assert torch.equal(rank0["logits"], rank1["logits"])


def test_a_global_batch_of_eight_in_micro_batches_of_two_accumulates_four_on_one_process(one_batch, tmp_path):
    weights, ema, losses = one_batch
    result = train_float64(["train.batch_size=2", "train.global_batch=8"], tmp_path / "run")
    assert_same_weights(result.model.state_dict(), weights)
    assert_same_weights(result.ema_model.state_dict(), ema)
    assert logged_losses(tmp_path / "run") == pytest.approx(losses, rel=1e-12, abs=0)
