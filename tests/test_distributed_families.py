"""Every family under torchrun does what one process does: the three digits recipes at a tiny size.

``torchrun --nproc_per_node=2 -m genkit run`` (gloo, CPU) goes through training, validation,
checkpoints, the final test evaluation and the sample grid; `genkit eval` of the model it wrote
reports the same figure on one process and on two; and, in float64 with the objective's random
draws at their means (``train.latents = "mean"``), two processes of batch B take the updates one
process of batch 2B takes.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.multiprocessing as mp
from distributed_helpers import ROOT, float64_worker, free_port, torchrun

from genkit.cli import main
from genkit.engine.trainer import train
from genkit.models import build_model
from genkit.recipe import load_recipe

# tiny versions of the three digits recipes, and a dropout of 0: dropout's mean is no dropout
FAMILIES = {
    "vdvae": ("digits.toml", []),
    "pixelcnnpp": ("pixelcnnpp-digits.toml", ["model.nr_resnet=1", "model.nr_filters=8", "model.dropout=0.0"]),
    "flowpp": ("flowpp-digits.toml", ["model.filters=8", "model.components=4", "model.dropout=0.0"]),
}

# the validation split is one block of 8 images, which only rank 0 evaluates; the test split three blocks,
# two on rank 0 and one on rank 1
SHORT_RUN = [
    "train.steps=4",
    "train.batch_size=8",
    "train.log_every=2",
    "train.eval_every=2",
    "train.checkpoint_every=2",
    "train.n_samples=4",
    "train.init_images=16",
    "eval.batch_size=8",
    "eval.validation_max_images=8",
    "eval.max_images=24",
]


def sets(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_processes_train_validate_checkpoint_evaluate_and_sample_and_eval_agrees_with_one(family, tmp_path):
    recipe, overrides = FAMILIES[family]
    run = torchrun(
        2,
        "run",
        str(ROOT / "recipes" / recipe),
        *sets([*overrides, *SHORT_RUN, f"train.out_dir={tmp_path}"]),
        "--out",
        str(tmp_path / "run"),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    directory = tmp_path / "run"
    assert sorted(p.name for p in (directory / "checkpoints").iterdir()) == ["step-00000002", "step-00000004"]
    samples = sorted(p.name for p in (directory / "samples").iterdir() if p.name.endswith("-samples.png"))
    assert samples == ["step-00000002-samples.png", "step-00000004-samples.png"]
    records = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    validation = [r for r in records if r["split"] == "validation"]
    assert [(r["step"], r["images"]) for r in validation] == [(2, 8), (4, 8)]
    assert all(math.isfinite(r["bits_per_dim"]) for r in validation)
    if family == "vdvae":  # the figures and the pictures a model adds beside its samples
        layers = build_model(load_recipe(ROOT / "recipes" / recipe)).n_latent_layers
        assert all(len(r["layer_rate_bits_per_dim"]) == layers for r in validation)
        assert (directory / "samples" / "step-00000004-reconstructions.png").is_file()
    results = json.loads((directory / "results.json").read_text())
    assert results["step"] == 4 and results["images"] == 24

    figures = []
    for processes in (1, 2):
        out = tmp_path / f"eval-{processes}.json"
        arguments = ["eval", str(directory), "--split", "test", "--max-images", "24", "--batch-size", "8"]
        arguments += ["--dtype", "float64", "--json", str(out)]
        if processes == 1:
            assert main(arguments) == 0
        else:
            evaluation = torchrun(processes, *arguments, cwd=tmp_path)
            assert evaluation.returncode == 0, evaluation.stderr[-3000:]
        figures.append(json.loads(out.read_text()))
    one, two = figures
    assert one["images"] == two["images"] == 24
    assert two["bits_per_dim"] == pytest.approx(one["bits_per_dim"], rel=1e-12, abs=0)
    for key in one:
        if key.endswith("bits_per_dim") and isinstance(one[key], list):
            assert two[key] == pytest.approx(one[key], rel=1e-12, abs=1e-15)


def train_float64(recipe: str, overrides: list[str], processes: int, out) -> tuple[dict, dict]:
    mp.spawn(float64_worker, args=(processes, free_port(), recipe, overrides, str(out)), nprocs=processes, join=True)
    return torch.load(out / "rank0.pt"), torch.load(out / "rank0-ema.pt")


def train_float64_alone(recipe: str, overrides: list[str], out) -> tuple[dict, dict]:
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        result = train(load_recipe(recipe, overrides), run_dir=out / "run")
    finally:
        torch.set_default_dtype(default)
    return result.model.state_dict(), result.ema_model.state_dict()


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_in_float64_two_processes_of_batch_b_take_the_updates_of_one_process_of_batch_2b(family, tmp_path):
    recipe, overrides = FAMILIES[family]
    common = [
        *overrides,
        'train.latents="mean"',
        "train.steps=3",
        "train.warmup_iters=1",
        "train.log_every=3",
        "train.eval_every=1000",
        "train.checkpoint_every=1000",
        "train.n_samples=2",
        "train.init_images=16",
        "train.ema_rate=0.5",
        "eval.batch_size=8",
        "eval.validation_max_images=8",
        "eval.max_images=8",
        f"train.out_dir={tmp_path}",
    ]
    recipe = str(ROOT / "recipes" / recipe)
    (tmp_path / "two").mkdir()
    (tmp_path / "one").mkdir()
    two, two_ema = train_float64(recipe, [*common, "train.batch_size=4"], 2, tmp_path / "two")
    one, one_ema = train_float64_alone(recipe, [*common, "train.batch_size=8"], tmp_path / "one")
    assert two.keys() == one.keys()
    moved = 0.0
    for key in one:
        assert two[key].dtype == torch.float64
        scale = one[key].abs().max().item() or 1.0
        assert (two[key] - one[key]).abs().max().item() <= 1e-12 * scale, key
        assert (two_ema[key] - one_ema[key]).abs().max().item() <= 1e-12 * scale, key
        moved = max(moved, (one_ema[key] - one[key]).abs().max().item())
    # the EMA lags the weights only where updates moved them: far more than the tolerance
    assert moved > 1e-4
