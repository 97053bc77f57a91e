"""Faults a table cannot hold: a data error in a real loader worker pool ends the run instead of hanging it,
nothing non-finite is ever saved as weights, and ``metrics.jsonl`` never says more than the run did."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fault_helpers import error_lines, one_line, pixels_registry, records, tiny_recipe, trained_tiny, write_images  # noqa: F401
from safetensors.torch import load_file, save_file

from genkit import rundirs
from genkit.cli import main
from genkit.errors import CheckpointError
from genkit.fileio import sha256

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained tiny model, made once for the module."""
    import engine_plugins

    from genkit.registry import reset_registry

    engine_plugins.install_registry()
    yield trained_tiny(tmp_path_factory.mktemp("faults-runs"))
    reset_registry()


# --- a data error in a loader worker -------------------------------------------------------------------------

RUN_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import engine_plugins
engine_plugins.install_registry()
from genkit.cli import main
sys.exit(main(["run", {recipe!r}, "--out", {out!r}]))
"""


@pytest.mark.timeout(120)
def test_a_data_error_in_a_loader_worker_ends_the_run_in_one_line_and_leaves_no_process(tmp_path):
    # loader workers ignore the first SIGTERM (so that Ctrl-C or timeout(1) to the process group still ends
    # in a checkpoint), and that SIGTERM is the only one Python's multiprocessing sends them at exit
    images = tmp_path / "images"
    write_images(images / "train", 15)
    for split in ("validation", "test"):
        write_images(images / split, 4, seed=1)
    bad = images / "train" / "zz-bad.png"
    bad.write_bytes(b"not a png")
    recipe = tmp_path / "workers.toml"
    recipe.write_text(
        tiny_recipe(
            tmp_path,
            data=f'name = "image-folder"\nroot = "{images}"\nchannels = 1',
            steps=1000,
            batch_size=4,
            num_workers=2,
            log_every=5,
        )
    )
    script = RUN_SCRIPT.format(tests=str(TESTS), recipe=str(recipe), out=str(tmp_path / "run"))
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "GENKIT_LOAD_PLUGINS": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: whatever the run leaves behind is found below
    )
    try:
        _, err = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("the run hung after a data error in a loader worker")
    try:
        assert process.returncode == 1, err
        assert "Traceback" not in err
        lines = [line for line in error_lines(err) if line.startswith("genkit:")]
        assert len(lines) == 1 and lines[0].startswith(f"genkit: error: {bad}: not a readable image"), lines
        deadline = time.time() + 10
        while _group_alive(process.pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not _group_alive(process.pid), "a loader worker outlived the run"
    finally:
        if _group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# --- nothing non-finite is saved -----------------------------------------------------------------------------


def test_a_run_whose_weights_stop_being_finite_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_recipe(tmp_path, checkpoint_every=2, log_every=2, steps=4))
    run = tmp_path / "run"
    # two good steps, then an update that overflows float32: decoupled weight decay scales every weight by 1 − lr·wd
    assert main(["run", str(recipe), "--out", str(run), "--set", "train.steps=2"]) == 0
    good = rundirs.latest_checkpoint(run)
    capsys.readouterr()
    overflow = ["--set", "train.lr=1e20", "--set", "train.weight_decay=1e20"]
    assert main(["run", str(recipe), "--resume", str(run), *overflow]) == 1
    line = one_line(capsys, alone=False)
    assert "step 4: the trained weights are no longer finite" in line and f"latest good checkpoint is {good}" in line
    assert rundirs.checkpoint_dirs(run) == [good]
    for name in ("model.safetensors", "trained.safetensors"):
        assert all(torch.isfinite(v).all() for v in load_file(good / name).values())
    assert json.loads((run / "results.json").read_text())["step"] == 2  # the good run's, not the diverged one's


def test_a_crash_in_the_validation_figures_loses_no_step_and_the_checkpoint_shows_its_samples(
    tmp_path, capsys, monkeypatch
):
    """The validation set's figures (minutes on a big model) come after the step's checkpoint, so a crash in them,
    or a stop signal waiting on them, loses no training step; the samples drawn at that step are in it."""
    import genkit.engine.trainer as trainer_module

    def crash(*args, **kwargs):
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(trainer_module, "evaluate_dataset", crash)
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_recipe(tmp_path, steps=4, eval_every=2, checkpoint_every=2))
    run = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(run)]) == 1
    assert "RuntimeError: the machine went away" in capsys.readouterr().err
    latest = rundirs.latest_checkpoint(run)
    assert latest.name == "step-00000002" and (latest / "samples.png").is_file()
    monkeypatch.undo()
    assert main(["run", str(recipe), "--resume", str(run)]) == 0
    assert json.loads((run / "results.json").read_text())["step"] == 4


def test_save_pretrained_refuses_weights_that_are_not_all_finite(tmp_path):
    from genkit.models import build_model
    from genkit.pretrained import save_pretrained
    from genkit.recipe import recipe_from_dict

    model = build_model(recipe_from_dict({"model": {"name": "pixels"}, "data": {"name": "digits"}}))
    with torch.no_grad():
        model.logits[0, 0, 0, 3] = float("inf")
    with pytest.raises(CheckpointError, match=r"not written: tensor 'logits' holds 1 of 16384 values that are NaN"):
        save_pretrained(model, tmp_path / "model")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("command", ["eval", "sample"])
def test_evaluating_or_sampling_weights_that_are_not_all_finite_is_an_error_that_says_so(
    world, tmp_path, capsys, command
):
    model = tmp_path / "model"
    shutil.copytree(world["model"], model)
    weights = load_file(model / "model.safetensors")
    weights["logits"][0, 0, 0, 0] = float("nan")
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((model / "config.json").read_text())
    config["weights_sha256"] = sha256(model / "model.safetensors")  # consistent, only not finite
    (model / "config.json").write_text(json.dumps(config))
    more = ["--images", str(world["images"])] if command == "eval" else ["--out", str(tmp_path / "x.png")]
    capsys.readouterr()
    assert main([command, str(model), *more]) == 1
    assert "tensor 'logits' holds 1 of 16384 values that are NaN or infinite" in one_line(capsys)
    assert not (tmp_path / "x.png").exists()


def diverge(model: Path) -> None:
    """Make the weights of the model directory ``model`` finite but diverged: a posterior log-scale of 100 overflows
    float32 (e¹⁰⁰), so every figure is NaN or infinite."""
    weights = load_file(model / "model.safetensors")
    weights["posterior"][2] = 100.0
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((model / "config.json").read_text())
    config["weights_sha256"] = sha256(model / "model.safetensors")  # consistent, only diverged
    (model / "config.json").write_text(json.dumps(config))


def test_a_run_whose_figures_are_not_finite_although_its_weights_are_ends_in_one_line_and_reports_nothing(
    world, tmp_path, capsys
):
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    latest = rundirs.latest_checkpoint(run)
    diverge(latest)  # the EMA weights, which the final evaluation reads
    (run / "results.json").unlink()  # as if the run had died during its final evaluation
    capsys.readouterr()
    assert main(["run", str(world["recipe"]), "--resume", str(run)]) == 1
    line = one_line(capsys, alone=False)
    assert "step 2: the EMA model's test figures are not finite (bits_per_dim = " in line, line
    assert f"the model has diverged, so no result is written; its checkpoints are kept (the latest is {latest})" in line
    assert "bits/dim" not in capsys.readouterr().out  # no figure, no verdict against the baselines
    assert not (run / "results.json").exists() and "final-test" not in [r["split"] for r in records(run)]
    assert rundirs.latest_checkpoint(run) == latest


@pytest.mark.parametrize("how", ["images", "split", "rates", "bench"])
def test_evaluating_a_model_whose_figures_are_not_finite_is_an_error_that_says_so(world, tmp_path, capsys, how):
    model = tmp_path / "model"
    shutil.copytree(world["model"], model)
    diverge(model)
    command = {
        "images": ["eval", str(model), "--images", str(world["images"])],
        "split": ["eval", str(model), "--split", "test", "--max-images", "4"],
        "rates": ["rates", str(model), "--images", str(world["images"])],
        "bench": ["bench", str(world["recipe"]), "--weights", str(model), "--batch-size", "2", "--steps", "1",
                  "--warmup", "1", "--no-flops"],
    }[how]  # fmt: skip
    capsys.readouterr()
    assert main(command) == 1
    line = one_line(capsys)
    assert "the model has diverged" in line and ("nan" in line or "inf" in line), line
    assert "bits_per_dim=" not in capsys.readouterr().out


# --- metrics that say what happened --------------------------------------------------------------------------


def test_an_interval_without_an_applied_update_is_logged_as_missing(tmp_path, capsys):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_recipe(tmp_path, steps=2, skip_threshold=1e-30))  # every gradient norm is above it
    assert main(["run", str(recipe), "--out", str(tmp_path / "run")]) == 0
    train = [r for r in records(tmp_path / "run") if r["split"] == "train"]
    assert [(r["step"], r["updates_applied"], r["skipped_updates"]) for r in train] == [(1, 0, 1), (2, 0, 2)]
    assert all(r["loss_bpd"] is None and r["rate_bpd"] is None and r["grad_norm"] is None for r in train)
    out = capsys.readouterr().out
    assert "no update was applied in 2 steps: the figure is of the untrained, initial weights" in out


def test_the_summary_says_how_many_updates_were_applied(world, capsys):
    from genkit.engine.report import summary_lines
    from genkit.models import build_model
    from genkit.recipe import load_recipe

    final = json.loads((world["run"] / "results.json").read_text())
    objective = build_model(load_recipe(world["recipe"]), "meta").objective
    assert "updates applied: 2 of 2" in summary_lines(final, objective)
    assert "updates applied: 1 of 2 (1 skipped for a non-finite or too-large gradient)" in summary_lines(
        {**final, "updates_applied": 1}, objective
    )


def test_the_first_record_after_resuming_from_a_step_that_was_not_logged_is_the_uninterrupted_one(tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_recipe(tmp_path, steps=4, log_every=2, checkpoint_every=3))
    assert main(["run", str(recipe), "--out", str(tmp_path / "straight")]) == 0
    assert main(["run", str(recipe), "--out", str(tmp_path / "resumed")]) == 0
    resumed = tmp_path / "resumed"
    # as if the run had died between steps 3 and 4: its last checkpoint is at step 3, inside a logging interval
    shutil.rmtree(resumed / "checkpoints" / "step-00000004")
    (resumed / "results.json").unlink()
    assert main(["run", str(recipe), "--resume", str(resumed)]) == 0
    straight, again = records(tmp_path / "straight"), records(resumed)
    assert [(r["step"], r["split"]) for r in again] == [(r["step"], r["split"]) for r in straight]
    keys = ("loss_bpd", "distortion_bpd", "rate_bpd", "grad_norm", "updates_applied", "skipped_updates")
    assert [{k: r[k] for k in keys} for r in again if r["split"] == "train"] == [
        {k: r[k] for k in keys} for r in straight if r["split"] == "train"
    ]
    assert [r["updates_applied"] for r in again if r["split"] == "train"] == [2, 2]  # steps 1–2, then 3–4


def test_the_count_of_skipped_updates_survives_a_resume(tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_recipe(tmp_path, steps=4, skip_threshold=1e-30))
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), "--set", "train.steps=2"]) == 0
    assert main(["run", str(recipe), "--resume", str(tmp_path / "run")]) == 0
    train = [r for r in records(tmp_path / "run") if r["split"] == "train"]
    assert [r["skipped_updates"] for r in train] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "run" / "results.json").read_text())["updates_applied"] == 0


def test_resuming_a_finished_run_adds_no_second_final_record(world, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    before = (run / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert main(["run", str(world["recipe"]), "--resume", str(run)]) == 0
    assert (run / "metrics.jsonl").read_text() == before
    captured = capsys.readouterr()
    assert "already reached step 2 (train.steps = 2); nothing to train" in captured.err
    assert "test bits/dim" in captured.out
    # a run that died during its final evaluation evaluates again, and still holds one final record
    (run / "results.json").unlink()
    assert main(["run", str(world["recipe"]), "--resume", str(run)]) == 0
    assert [r["split"] for r in records(run)].count("final-test") == 1


def test_a_torn_last_line_of_the_metrics_is_trimmed_on_resume(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 3, "split": "tr')  # a crash in the middle of a write
    assert main(["run", str(world["recipe"]), "--resume", str(run), "--set", "train.steps=3"]) == 0
    steps = [(r["step"], r["split"]) for r in records(run)]
    assert steps == [(1, "train"), (2, "train"), (2, "validation"), (3, "train"), (3, "validation"), (3, "final-test")]


def test_a_run_of_zero_steps_claims_no_model_directory(world, tmp_path, capsys):
    capsys.readouterr()
    assert main(["run", str(world["recipe"]), "--out", str(tmp_path / "run"), "--set", "train.steps=0"]) == 0
    out = capsys.readouterr().out
    assert "no checkpoint and so no model directory (no step was taken)" in out and "model directory:" not in out
    assert "no update was applied in 0 steps: the figure is of the untrained, initial weights" in out
    assert not rundirs.checkpoint_dirs(tmp_path / "run")
