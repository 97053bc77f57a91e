"""What the fault suite shares: a tiny recipe of the engine's small real model, the one line a failed command
printed, and small bad data sets."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
from locations import ROOT
from PIL import Image

from genkit import rundirs
from genkit.cli import main

#: a progress bar's line: "train:", "train (negative ELBO):", "evaluate:" …
PROGRESS = re.compile(r"^(train|evaluate)( \([^)]*\))?:")


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
    return [line for line in lines if line and not PROGRESS.match(line)]


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


def trained_tiny(root: Path) -> dict:
    """A two-step run of the tiny recipe under ``root``: its recipe, run directory and latest model directory."""
    recipe = root / "tiny.toml"
    recipe.write_text(tiny_recipe(root / "runs"))
    run = root / "run"
    assert main(["run", str(recipe), "--out", str(run)]) == 0
    np.save(root / "images.npy", np.zeros((2, 8, 8, 1), np.uint8))
    return {
        "root": root,
        "recipe": recipe,
        "run": run,
        "model": rundirs.latest_checkpoint(run),
        "images": root / "images.npy",
    }
