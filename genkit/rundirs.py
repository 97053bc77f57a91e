"""The layout of a run directory, the folder ``genkit run`` writes::

    RUN/recipe.toml                       the resolved recipe (with plugin provenance)
    RUN/metrics.jsonl                     one JSON record per logging interval and validation
    RUN/results.json                      the final evaluation and the trivial baselines
    RUN/samples/step-NNNNNNNN-*.png       samples (and a model's own pictures) at every validation
    RUN/checkpoints/step-NNNNNNNN/        complete checkpoints, each also a model directory
    RUN/tensorboard/                      the same figures for TensorBoard, when it is installed

Only paths live here; writing checkpoints is :mod:`genkit.engine.checkpoint`'s job.
"""

from __future__ import annotations

import re
from pathlib import Path

from genkit.errors import CheckpointError, shell_word

RECIPE_NAME = "recipe.toml"
METRICS_NAME = "metrics.jsonl"
RESULTS_NAME = "results.json"
SAMPLES = "samples"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
CHECKPOINT_PATTERN = re.compile(r"^step-(\d+)$")
SAMPLES_PATTERN = re.compile(r"^step-(\d+)-samples\.png$")


RUN_FILES = (RECIPE_NAME, METRICS_NAME, RESULTS_NAME, SAMPLES, CHECKPOINTS, TENSORBOARD)


def run_files(path: str | Path) -> list[str]:
    """The names of the files and folders of a run that ``path`` already holds."""
    return [name for name in RUN_FILES if (Path(path) / name).exists()]


def resume_option(run_dir: str | Path) -> str:
    """``--resume RUN`` as it can be typed (the run's path quoted for the shell: its name is the recipe file's, which
    may hold anything), or words that say so where no path can be offered safely."""
    word = shell_word(str(run_dir), path=True)
    return f"--resume {word}" if word is not None else "--resume and the run's directory"


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / RECIPE_NAME).is_file()


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = Path(run_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The newest complete checkpoint of a run (a model directory holding its EMA weights)."""
    found = checkpoint_dirs(run_dir)
    if not found:
        raise CheckpointError(
            f"{Path(run_dir) / CHECKPOINTS}: no checkpoint yet (expected step-NNNNNNNN folders written by genkit run)"
        )
    return found[-1]


def latest_samples(run_dir: str | Path, step: int | None = None) -> Path | None:
    """The sample grid the run drew last (at ``step`` exactly, when given), or ``None``."""
    folder = Path(run_dir) / SAMPLES
    if not folder.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := SAMPLES_PATTERN.match(p.name)))
    if step is not None:
        found = [(s, p) for s, p in found if s == step]
    return found[-1][1] if found else None


def new_run_dir(out_dir: str | Path, name: str) -> Path:
    """``out_dir/name``, or ``name-2``, ``name-3``… when it is taken: a new run never writes into an earlier one."""
    base = Path(out_dir) / name
    candidate, n = base, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate
