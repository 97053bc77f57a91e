"""Bad input and faults: every mistake a user can make is one line with the documented exit status, a data
error in a loader worker ends the run instead of hanging it, nothing non-finite is ever saved as weights, and
``metrics.jsonl`` never says more than the run did.

The table holds the one-line cases: a command, its exit status (2: usage, recipe and configuration; 1: a
failure at run time) and a phrase its one line must contain. The tests after it are the cases a table
cannot hold: a real worker pool, a run that diverges, intervals of skipped updates, resumes and torn files.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from locations import ROOT
from PIL import Image
from safetensors.torch import load_file, save_file

from genkit import rundirs
from genkit.cli import main
from genkit.errors import CheckpointError
from genkit.fileio import json_text, sha256

TESTS = Path(__file__).resolve().parent


def tiny_recipe(out_dir: Path, data: str = 'name = "digits"', image_size: int = 8, channels: int = 1, **train) -> str:
    """The engine's small real model (``pixels``) on a few steps, no loader workers unless asked."""
    settings = {
        "steps": 2,
        "batch_size": 8,
        "num_workers": 0,
        "log_every": 1,
        "eval_every": 1000,
        "checkpoint_every": 1000,
        "n_samples": 4,
        "warmup_iters": 0,
        "out_dir": str(out_dir),
        **train,
    }
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    return (
        f'[model]\nname = "pixels"\nlatent = true\nimage_size = {image_size}\nchannels = {channels}\n'
        f"[data]\n{data}\n[train]\n{lines}\n[eval]\nmax_images = 16\nbatch_size = 16\n"
    )


def error_lines(err: str) -> list[str]:
    """What a command said on stderr, progress bars left out."""
    lines = [line.strip() for line in err.replace("\r", "\n").splitlines()]
    return [line for line in lines if line and not line.startswith(("train:", "evaluate:"))]


def one_line(capsys, alone: bool = True) -> str:
    """The one line of a failed command, not the line kept for bugs; ``alone``: nothing else on stderr."""
    lines = error_lines(capsys.readouterr().err)
    if not alone:  # what a command said before it failed ("resuming from …") may stand above the error
        lines = [line for line in lines if line.startswith("genkit:")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("genkit: error: ") and "--debug for the traceback" not in lines[0], lines[0]
    return lines[0]


def write_images(folder: Path, n: int, size=(8, 8), seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, size, dtype=np.uint8)).save(folder / f"{i:03d}.png")


def write_cifar10(path: Path, n_train: int, n_test: int) -> None:
    spec = importlib.util.spec_from_file_location("npy_to_cifar10", ROOT / "tools" / "npy_to_cifar10.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rng = np.random.default_rng(0)
    tool.write_tarball(
        rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8),
        rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8),
        path,
    )


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(autouse=True)
def pixels_registry():
    """The built-in plugins and the engine tests' small real model, ``pixels``."""
    import engine_plugins

    from genkit.registry import reset_registry

    engine_plugins.install_registry()
    yield
    reset_registry()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A trained tiny model and the bad inputs the table names, made once for the module."""
    import engine_plugins

    from genkit.registry import reset_registry

    engine_plugins.install_registry()
    root = tmp_path_factory.mktemp("faults")
    recipe = root / "tiny.toml"
    recipe.write_text(tiny_recipe(root / "runs"))
    run = root / "run"
    assert main(["run", str(recipe), "--out", str(run)]) == 0
    model = rundirs.latest_checkpoint(run)
    afile = root / "afile"
    afile.write_text("a regular file")
    np.save(root / "images.npy", np.zeros((2, 8, 8, 1), np.uint8))
    for name, text in (("config-array", "[1, 2]"), ("config-string", '"model"')):
        shutil.copytree(model, root / name)
        (root / name / "config.json").write_text(text)
    (root / "not-a-checkpoint.th").write_text("hello, not a checkpoint")
    (root / "binary.jsonl").write_bytes(b"\x93NUMPY\x00\xff\xfe")
    (root / "damaged").mkdir()
    (root / "damaged" / "metrics.jsonl").write_text('{"step": 1, "spl\n{"step": 2, "split": "train"}\n')
    shutil.copytree(run, root / "partial")
    torch.save({"step": 2}, rundirs.latest_checkpoint(root / "partial") / "state.pt")
    (root / "taken").mkdir()
    (root / "taken" / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss_bpd": 3.0}\n')
    (root / "source.toml").write_text('source = "elsewhere.toml"\n' + recipe.read_text())
    (root / "inf.toml").write_text(recipe.read_text().replace("[eval]", "lr = inf\n[eval]"))
    write_cifar10(root / "cifar" / "cifar-10-python.tar.gz", n_train=20, n_test=5)
    (root / "cifar.toml").write_text(
        tiny_recipe(
            root / "runs",
            data=f'name = "cifar10"\nroot = "{root / "cifar"}"\nmd5 = ""\ndownload = false\nvalidation_size = 100',
            image_size=32,
            channels=3,
        )
    )
    sizes = root / "sizes"
    for split in ("train", "validation", "test"):
        write_images(sizes / split, 8)
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(sizes / "train" / "zz-small.png")
    (root / "sizes.toml").write_text(
        tiny_recipe(root / "runs", data=f'name = "image-folder"\nroot = "{sizes}"\nchannels = 1', batch_size=9)
    )
    yield {
        "root": root,
        "recipe": recipe,
        "run": run,
        "model": model,
        "file": afile,
        "images": root / "images.npy",
        "digits": ROOT / "recipes" / "digits.toml",
    }
    reset_registry()


# (id, command with {placeholders} from `world`, exit status, a phrase of the one line)
CASES = [
    # recipe values, in the file or from --set: one line naming the key, exit 2
    ("lr-inf", "show {recipe} --set train.lr=inf", 2, "--set 'train.lr=inf': train.lr: expected a finite number"),
    ("lr-nan", "show {recipe} --set train.lr=nan", 2, "train.lr: expected a finite number, found nan"),
    ("decay-inf", "show {recipe} --set train.weight_decay=inf", 2, "train.weight_decay: expected a finite number"),
    ("beta-inf", "show {recipe} --set train.betas=[0.9,inf]", 2, "train.betas[1]: expected a finite number"),
    ("lr-inf-in-file", "show {root}/inf.toml", 2, "inf.toml: train.lr: expected a finite number, found inf"),
    ("int-beyond-64-bits", "show {recipe} --set train.steps=99999999999999999999", 2, "expected an integer from"),
    ("seed-negative", "show {recipe} --set train.seed=-1", 2, "train.seed: expected a value >= 0 and <= 4294967295"),
    ("split-seed-2**32", "show {recipe} --set data.split_seed=4294967296", 2, "data.split_seed: expected a value >= 0"),
    ("set-a-number-as-text", "show {recipe} --set train.lr=abc", 2, "--set 'train.lr=abc': train.lr: expected a"),
    ("set-unknown-key", "show {recipe} --set train.lrr=1", 2, "--set 'train.lrr=1': train.lrr: expected one of"),
    ("set-unknown-plugin", "show {recipe} --set model.name=nope", 2, "--set 'model.name=nope': model.name: unknown"),
    ("set-source", "show {recipe} --set source=x.toml", 2, "--set 'source=x.toml': source is written by genkit"),
    ("set-provenance", "show {recipe} --set plugins=[]", 2, "--set 'plugins=[]': plugins is written by genkit"),
    ("set-version", "show {recipe} --set genkit.version=1", 2, "genkit is written by genkit, not a setting"),
    ("set-empty-key", "show {recipe} --set train..lr=1", 2, "--set 'train..lr=1': expected KEY=VALUE"),
    ("source-in-file", "show {root}/source.toml", 2, "source.toml: source: expected one of the known keys"),
    # output paths, checked before any work: exit 2 naming the option
    ("json-under-a-file", "show {recipe} --json {file}/x.json", 2, "'--json': {file}/x.json: {file} is a file, not a"),
    ("eval-json-under-a-file", "eval {model} --images {images} --json {file}/x.json", 2, "{file} is a file, not a"),
    ("curve-json-under-a-file", "curve {run} --json {file}/c.json", 2, "'--json'"),
    ("sample-unknown-extension", "sample {model} --n 1 --out {root}/x.bmpx", 2, ".bmpx is not an image format"),
    ("sample-no-extension", "sample {model} --n 1 --out {root}/grid", 2, "no extension is not an image format"),
    ("sample-under-a-file", "sample {model} --n 1 --out {file}/x.png", 2, "'--out': {file}/x.png: {file} is a file"),
    ("npy-without-.npy", "sample {model} --n 1 --out {root}/ok.png --npy {root}/x.txt", 2, "ending in .npy"),
    ("reconstruct-under-a-file", "reconstruct {model} --images {images} --out {file}/x.png", 2, "'--out'"),
    ("rates-unknown-plot", "rates {model} --images {images} --plot {root}/x.docx", 2, ".docx is not a plot format"),
    ("curve-plot-under-a-file", "curve {run} --plot {file}/c.png", 2, "'--plot': {file}/c.png"),
    ("run-out-under-a-file", "run {recipe} --out {file}/run", 2, "'--out': {file}/run: {file} is a file, not a"),
    ("run-out-dir-a-file", "run {recipe} --set train.out_dir={file}", 2, "train.out_dir {file}/tiny: cannot write the"),
    ("convert-out-under-a-file", "convert vdvae {root}/x.th --recipe {digits} --out {file}/m", 2, "'--out'"),
    ("out-holds-a-run", "run {recipe} --out {root}/taken", 2, "already holds the files of a run (metrics.jsonl)"),
    # other options: exit 2 naming the option
    ("device-unknown", "eval {model} --images {images} --device nope", 2, "'--device': 'nope' is not a torch device"),
    ("device-absent", "eval {model} --images {images} --device cuda:99", 2, "'--device': 'cuda:99'"),
    ("batch-beyond-64-bits", "eval {model} --images {images} --batch-size 99999999999999999999", 2, "'--batch-size'"),
    ("seed-beyond-range", "eval {model} --images {images} --seed 4294967296", 2, "'--seed'"),
    # files that are not what they should be: exit 1 naming the file
    ("config-an-array", "eval {root}/config-array --images {images}", 1, "config.json: expected a JSON object"),
    ("config-a-string", "eval {root}/config-string --images {images}", 1, "found a string"),
    ("convert-not-a-checkpoint", "convert vdvae {root}/not-a-checkpoint.th --recipe {digits} --out {root}/c", 1,
     "not-a-checkpoint.th: not a PyTorch state dict"),
    ("recipe-binary", "show {root}/binary.jsonl", 2, "binary.jsonl: not a text file; expected a recipe"),
    ("curve-binary", "curve {root}/binary.jsonl", 1, "binary.jsonl: not a text file"),
    ("resume-incomplete-state", "run {recipe} --resume {root}/partial", 1, "state.pt: the training state lacks"),
    ("curve-damaged-line", "curve {root}/damaged", 1, "metrics.jsonl:1: not a metrics record"),
    ("cifar-too-few-images", "run {root}/cifar.toml", 1, "cannot hold out 100 of only 20 training images"),
    ("image-of-another-size", "run {root}/sizes.toml --out {root}/sizes-run", 1, "zz-small.png: image is 6×6"),
]  # fmt: skip


@pytest.mark.parametrize("command, status, phrase", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_each_bad_input_is_one_line_with_its_exit_status(world, capsys, command, status, phrase):
    places = {key: str(value) for key, value in world.items()}
    capsys.readouterr()
    assert main([part.format(**places) for part in command.split()]) == status
    line = one_line(capsys)
    assert phrase.format(**places) in line, line


def test_an_error_in_a_set_value_names_the_set_option_and_not_the_recipe_file(world, capsys):
    assert main(["show", str(world["recipe"]), "--set", "train.batch_size=0"]) == 2
    line = one_line(capsys)
    assert "--set 'train.batch_size=0': train.batch_size: expected a value >= 1" in line
    assert str(world["recipe"]) not in line


def test_an_error_in_the_recipe_file_names_the_file_whatever_else_is_set(world, capsys):
    assert main(["show", str(world["root"] / "inf.toml"), "--set", "train.seed=3"]) == 2
    assert f"{world['root'] / 'inf.toml'}: train.lr" in one_line(capsys)


def test_json_written_for_a_nan_figure_is_standard_json():
    text = json_text({"bits_per_dim": float("nan"), "layers": [1.0, float("inf")]})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}")) == {
        "bits_per_dim": "nan",
        "layers": [1.0, "inf"],
    }


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


def test_a_checkpoint_the_disk_refuses_stops_the_run_and_leaves_the_previous_one_the_latest(
    tmp_path, capsys, monkeypatch
):
    from genkit.engine import checkpoint

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(tiny_recipe(tmp_path, steps=4, checkpoint_every=2))
    run = tmp_path / "run"
    assert main(["run", str(recipe), "--out", str(run), "--set", "train.steps=2"]) == 0
    good = rundirs.latest_checkpoint(run)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    capsys.readouterr()
    assert main(["run", str(recipe), "--resume", str(run)]) == 1
    line = one_line(capsys, alone=False)
    assert "step-00000004: could not be written (No space left on device)" in line and str(good) in line
    assert rundirs.checkpoint_dirs(run) == [good] and not list((run / "checkpoints").glob(".tmp-*"))


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
