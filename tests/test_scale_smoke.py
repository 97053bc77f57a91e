"""The FFHQ-256 preset trains with what `genkit plan` suggests for a small GPU: recomputation and accumulation on.

The smoke test of the whole path at a tiny width on the CPU: the plan's policy and micro-batch, an
update of several accumulated micro-batches, validation, a checkpoint and the final evaluation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from distributed_helpers import ROOT

from genkit.cli import main

RECIPE = str(ROOT / "recipes" / "ffhq256.toml")


@pytest.mark.slow
def test_the_ffhq256_preset_trains_at_a_tiny_width_with_the_plan_for_an_8_gib_gpu(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (12, 256, 256, 3), dtype=np.uint8)
    np.save(tmp_path / "ffhq-256.npy", images)  # the reference's file, in its format
    assert main(["plan", RECIPE, "--gpu-memory", "8GiB", "--json", str(tmp_path / "plan.json")]) == 0
    chosen = json.loads((tmp_path / "plan.json").read_text())["suggested"]["float32"]
    assert chosen["policy"] != "off" and chosen["accumulate"] > 1  # the paper's batch needs both on 8 GiB
    settings = [
        f'train.activation_checkpointing="{chosen["policy"]}"',
        f"train.batch_size={chosen['micro_batch']}",
        "train.global_batch=4",  # four accumulated micro-batches an update, instead of 32
        f"data.root={tmp_path}",
        "data.validation_size=4",
        "model.width=8",
        "model.zdim=2",
        "train.steps=2",
        "train.log_every=1",
        "train.eval_every=2",
        "train.checkpoint_every=2",
        "train.n_samples=1",
        "train.num_workers=0",
        "eval.batch_size=2",
        "eval.max_images=2",
        "eval.validation_max_images=2",
    ]
    run = tmp_path / "run"
    assert main(["run", RECIPE, *[a for s in settings for a in ("--set", s)], "--out", str(run)]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["updates_applied"] for r in records if r["split"] == "train"] == [1, 1]
    assert json.loads((run / "results.json").read_text())["step"] == 2
    assert (run / "checkpoints" / "step-00000002").is_dir()
