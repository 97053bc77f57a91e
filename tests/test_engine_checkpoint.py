"""Checkpoints: atomic, pruned, model directories of the EMA weights, and an exact resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genkit import rundirs
from genkit.errors import CheckpointError, ConfigError
from genkit.recipe import recipe_from_dict

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def engine_registry():
    import engine_plugins

    from genkit.registry import reset_registry

    engine_plugins.install_registry()
    yield
    reset_registry()


def recipe(steps, out_dir, **train):
    settings = {
        "steps": steps,
        "batch_size": 8,
        "lr": 0.05,
        "warmup_iters": 3,
        "num_workers": 0,
        "log_every": 2,
        "eval_every": 1000,
        "checkpoint_every": 1000,
        "ema_rate": 0.9,
        "out_dir": str(out_dir),
        "n_samples": 4,
        **train,
    }
    raw = {
        "model": {"name": "pixels", "latent": True},
        "data": {"name": "digits"},
        "train": settings,
        "eval": {"max_images": 16, "batch_size": 16},
    }
    return recipe_from_dict(raw, file="tiny.toml")


def test_n_steps_then_resume_then_n_more_equals_2n_uninterrupted(engine_registry, tmp_path):
    from genkit.engine.trainer import train

    straight = train(recipe(8, tmp_path), run_dir=tmp_path / "straight")
    train(recipe(4, tmp_path), run_dir=tmp_path / "resumed")
    resumed = train(recipe(8, tmp_path), resume=tmp_path / "resumed")
    assert resumed.step == straight.step == 8
    for a, b in [(straight.model, resumed.model), (straight.ema_model, resumed.ema_model)]:
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name
    state_a = torch.load(rundirs.latest_checkpoint(tmp_path / "straight") / "state.pt", weights_only=True)
    state_b = torch.load(rundirs.latest_checkpoint(tmp_path / "resumed") / "state.pt", weights_only=True)
    assert all(
        torch.equal(x, y)
        for x, y in zip(state_a["optimizer"]["state"][0].values(), state_b["optimizer"]["state"][0].values())
    )
    assert torch.equal(state_a["rng"][0]["cpu"], state_b["rng"][0]["cpu"])


def test_a_checkpoint_is_a_model_directory_of_the_ema_weights(engine_registry, tmp_path):
    from genkit.engine.trainer import train
    from genkit.pretrained import load_model_dir, resolve_local

    result = train(recipe(4, tmp_path), run_dir=tmp_path / "run")
    model_dir = resolve_local(tmp_path / "run")
    assert model_dir == tmp_path / "run" / "checkpoints" / "step-00000004"
    loaded = load_model_dir(model_dir)
    assert torch.equal(loaded.logits, result.ema_model.logits)
    assert not torch.equal(loaded.logits, result.model.logits)  # the EMA lags the trained weights
    assert torch.equal(load_file(model_dir / "trained.safetensors")["logits"], result.model.logits.detach())
    assert json.loads((model_dir / "config.json").read_text())["step"] == 4


def test_only_the_newest_k_checkpoints_are_kept(engine_registry, tmp_path):
    from genkit.engine.trainer import train

    train(recipe(6, tmp_path, checkpoint_every=1, keep_checkpoints=2), run_dir=tmp_path / "run")
    assert [p.name for p in rundirs.checkpoint_dirs(tmp_path / "run")] == ["step-00000005", "step-00000006"]


def test_an_interrupted_write_never_becomes_the_latest_checkpoint(engine_registry, tmp_path):
    from genkit.engine.trainer import train

    train(recipe(2, tmp_path), run_dir=tmp_path / "run")
    torn = tmp_path / "run" / "checkpoints" / ".tmp-step-00000009"  # what a crash mid-write leaves
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"\x00" * 10)
    assert rundirs.latest_checkpoint(tmp_path / "run").name == "step-00000002"
    resumed = train(recipe(3, tmp_path), resume=tmp_path / "run")
    assert resumed.step == 3 and not torn.exists()


def test_resuming_a_run_without_checkpoints_says_so(engine_registry, tmp_path):
    from genkit.engine.trainer import train
    from genkit.recipe import save_recipe

    save_recipe(recipe(2, tmp_path), tmp_path / "empty")
    with pytest.raises(CheckpointError, match="no checkpoint yet"):
        train(recipe(2, tmp_path), resume=tmp_path / "empty")


def test_resuming_with_a_different_model_is_refused(engine_registry, tmp_path):
    from genkit.engine.trainer import train

    train(recipe(2, tmp_path), run_dir=tmp_path / "run")
    other = recipe_from_dict(
        {**{"model": {"name": "pixels", "latent": False}, "data": {"name": "digits"}}}, file="other.toml"
    )
    with pytest.raises(ConfigError, match=r"different \[model\] table"):
        train(other, resume=tmp_path / "run")


def test_a_damaged_checkpoint_fails_with_one_line(engine_registry, tmp_path):
    from genkit.engine.trainer import train

    train(recipe(2, tmp_path), run_dir=tmp_path / "run")
    (rundirs.latest_checkpoint(tmp_path / "run") / "state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="state.pt: unreadable training state"):
        train(recipe(3, tmp_path), resume=tmp_path / "run")


SIGNAL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import engine_plugins
engine_plugins.install_registry()
from genkit.cli import main
sys.exit(main(["run", {recipe!r}, "--out", {out!r}]))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "workers, to_group, sig",
    [(0, False, signal.SIGTERM), (2, True, signal.SIGTERM), (2, True, signal.SIGINT)],
    ids=[
        "sigterm-to-the-process",
        "sigterm-to-the-process-group-with-loader-workers",
        "ctrl-c-to-the-process-group-with-loader-workers",
    ],
)
def test_a_stop_signal_writes_a_final_checkpoint_and_stops(tmp_path, workers, to_group, sig):
    # timeout(1), Ctrl-C in a terminal and batch schedulers signal the whole process group, the
    # data loader's worker processes included: the run must still end with a checkpoint
    recipe_file = tmp_path / "long.toml"
    recipe_file.write_text(
        '[model]\nname = "pixels"\n[data]\nname = "digits"\n'
        f"[train]\nsteps = 1000000\nbatch_size = 4\nnum_workers = {workers}\n"
        "log_every = 5\ncheckpoint_every = 1000000\neval_every = 1000000\n"
    )
    out = tmp_path / "run"
    script = SIGNAL_SCRIPT.format(tests=str(TESTS), recipe=str(recipe_file), out=str(out))
    env = {**os.environ, "GENKIT_LOAD_PLUGINS": ""}
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while not (out / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    if to_group:
        os.killpg(process.pid, sig)
    else:
        process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    saved = rundirs.latest_checkpoint(out)
    step = int(saved.name.split("-")[1])
    assert 5 <= step < 1000000
    assert "--resume" in stderr
