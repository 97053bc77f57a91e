"""``genkit run`` end to end on a tiny model: what lands in the run directory, and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from genkit.cli import main
from genkit.recipe import load_recipe


@pytest.fixture
def engine_registry():
    import engine_plugins

    from genkit.registry import reset_registry

    engine_plugins.install_registry()
    yield
    reset_registry()


def write_recipe(tmp_path, data='name = "digits"', steps=4):
    path = tmp_path / "tiny.toml"
    path.write_text(
        f'[model]\nname = "pixels"\nlatent = true\n[data]\n{data}\n'
        f"[train]\nsteps = {steps}\nbatch_size = 8\nnum_workers = 0\n"
        "log_every = 2\neval_every = 2\ncheckpoint_every = 2\n"
        f'n_samples = 9\nout_dir = "{tmp_path / "runs"}"\n[eval]\nmax_images = 32\nbatch_size = 16\n'
    )
    return path


def test_a_run_writes_recipe_metrics_checkpoints_pictures_and_results(engine_registry, tmp_path, capsys):
    assert main(["run", str(write_recipe(tmp_path))]) == 0
    run = tmp_path / "runs" / "tiny"
    assert load_recipe(run / "recipe.toml").train.steps == 4
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in records] == [
        (2, "train"),
        (2, "validation"),
        (4, "train"),
        (4, "validation"),
        (4, "final-test"),
    ]
    assert {"loss_bpd", "distortion_bpd", "rate_bpd", "grad_norm", "skipped_updates", "images_per_s", "lr"} <= records[
        0
    ].keys()
    samples = np.asarray(Image.open(run / "samples" / "step-00000004-samples.png"))
    assert samples.shape == ((3 * (8 + 1) + 1) * 12,) * 2  # a 3×3 grid of 8×8 images, 1-pixel padding, enlarged 12×
    assert (run / "samples" / "step-00000002-reconstructions.png").is_file()
    results = json.loads((run / "results.json").read_text())
    assert results["images"] == 32 and results["baselines"]["uniform"] == 8.0
    out = capsys.readouterr().out
    assert "test bits/dim" in out and "per-pixel independent histogram" in out


def test_a_second_run_of_the_same_recipe_gets_a_new_directory(engine_registry, tmp_path):
    recipe = write_recipe(tmp_path, steps=1)
    assert main(["run", str(recipe)]) == 0
    assert main(["run", str(recipe)]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tiny", "tiny-2"]


def test_out_naming_an_existing_run_asks_for_resume(engine_registry, tmp_path, capsys):
    recipe = write_recipe(tmp_path, steps=1)
    assert main(["run", str(recipe), "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    assert main(["run", str(recipe), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume" in err


def test_a_missing_data_file_is_one_line_and_exit_status_1(engine_registry, tmp_path, capsys):
    recipe = write_recipe(tmp_path, data=f'name = "cifar10"\nroot = "{tmp_path / "none"}"\ndownload = false')
    assert main(["run", str(recipe)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("genkit: error: ") and err.count("\n") == 1 and "cifar-10-python.tar.gz" in err


def test_images_of_the_wrong_shape_for_the_model_are_a_config_error(engine_registry, tmp_path, capsys):
    recipe = write_recipe(tmp_path)
    recipe.write_text(recipe.read_text().replace("latent = true", "latent = true\nimage_size = 4"))
    assert main(["run", str(recipe)]) == 2
    assert "digits images are (8, 8, 1)" in capsys.readouterr().err
