"""The Flow++ recipes: the official CIFAR-10 model and its ablation as ``genkit show`` reports them, and a short
digits run through ``genkit run`` end to end."""

from __future__ import annotations

import json

from locations import ROOT

from genkit.cli import main
from genkit.recipe import load_recipe, recipe_to_dict

RECIPES = ROOT / "recipes"


def shown_total(path, capsys) -> str:
    assert main(["show", str(path)]) == 0
    return next(line for line in capsys.readouterr().out.splitlines() if line.startswith("# total"))


def test_genkit_show_reports_the_official_cifar10_models_31_443_440_parameters(capsys):
    assert shown_total(RECIPES / "flowpp-cifar10.toml", capsys).split()[-1] == "31,443,440"


def test_genkit_show_reports_the_uniform_dequantization_ablations_32_324_408_parameters(capsys):
    assert shown_total(RECIPES / "flowpp-cifar10-uniform.toml", capsys).split()[-1] == "32,324,408"


def test_the_cifar10_recipe_trains_with_the_official_hyperparameters():
    recipe = load_recipe(RECIPES / "flowpp-cifar10.toml")
    train, model, data = recipe.train, recipe.model.settings, recipe.data.settings
    assert (train.lr, train.warmup_iters, train.lr_decay) == (3e-4, 2000, 1.0)
    assert (train.batch_size, train.global_batch) == (8, 64)  # 8 on each of the official 8 GPUs
    assert (train.betas, train.eps, train.weight_decay) == ((0.9, 0.999), 1e-8, 0.0)
    assert (train.grad_clip, train.skip_threshold, train.ema_rate, train.init_images) == (1.0, 0, 0.999, 128)
    assert (model.filters, model.blocks, model.components, model.heads, model.dropout) == (96, 10, 32, 4, 0.2)
    assert data.validation_size == 0  # all 50,000 training images


def test_the_ablation_changes_only_the_dequantizer_and_the_filters():
    full = recipe_to_dict(load_recipe(RECIPES / "flowpp-cifar10.toml"))
    ablation = recipe_to_dict(load_recipe(RECIPES / "flowpp-cifar10-uniform.toml"))
    assert ablation["model"].pop("dequantizer")["name"] == "uniform"
    assert ablation["model"].pop("filters") == 104
    full["model"].pop("dequantizer"), full["model"].pop("filters")
    assert ablation["model"] == full["model"] and ablation["train"] == full["train"]


def test_a_short_digits_run_initialises_trains_logs_the_inverse_error_and_evaluates(tmp_path):
    run = tmp_path / "run"
    settings = [
        "train.steps=4",
        "train.eval_every=2",
        "train.batch_size=16",
        "train.init_images=32",
        "train.n_samples=4",
        "eval.max_images=32",
        "eval.validation_max_images=16",
    ]
    args = ["run", str(RECIPES / "flowpp-digits.toml"), "--out", str(run)]
    assert main([*args, *[item for s in settings for item in ("--set", s)]]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["objective"] == "uniform dequantization bound"
    assert 0 < results["bits_per_dim"] < 5  # below the 5-bit uniform baseline after init and 4 steps
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    validation = [r for r in records if r["split"] == "validation"]
    assert len(validation) == 2 and all(0 <= r["inverse_error"] < 1e-3 for r in validation)
    assert (run / "samples" / "step-00000004-samples.png").is_file()
    report = tmp_path / "iw.json"
    evaluate = ["eval", str(run), "--split", "test", "--max-images", "8", "--importance-samples", "16"]
    assert main([*evaluate, "--json", str(report)]) == 0
    bounds = json.loads(report.read_text())
    assert bounds["importance_samples"] == 16 and bounds["iw_bits_per_dim"] < bounds["bits_per_dim"]
