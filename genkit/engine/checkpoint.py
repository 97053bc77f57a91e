"""Checkpoints of a run, each one also a model directory.

``RUN/checkpoints/step-00001000/`` holds

* ``config.json`` + ``model.safetensors``: the recipe and the **EMA** weights, i.e. a complete
  model directory (``genkit sample RUN/checkpoints/step-00001000`` works, and so does ``RUN``),
  with its card and, when the run drew samples at that step, their grid as ``samples.png``;
* ``trained.safetensors``: the weights being optimised;
* ``state.pt``: optimizer and scheduler state, step, skipped-update count and every rank's RNG
  state (tensors and plain values only, read back with ``weights_only=True``).

A checkpoint is written into a hidden temporary folder, flushed, and renamed into place: a
rename is atomic, so every ``step-*`` folder is complete and a crash mid-write leaves only a
temporary folder that the next write clears. The newest ``keep_checkpoints`` are kept. Weights
that are not all finite are never written: the checkpoint is refused and the last good one stays
the latest. A write the system refuses (a full disk, the file size limit, an I/O error), whichever
library met it, leaves the latest checkpoint as it was and stops the run in one line naming the file
(:func:`write_refused`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from genkit.errors import CheckpointError, is_out_of_memory
from genkit.fileio import atomic_write, writing
from genkit.pretrained import WEIGHTS_NAME, load_state_dict, load_strict, non_finite, save_pretrained, write_weights
from genkit.rundirs import CHECKPOINTS, checkpoint_dirs, latest_samples, resume_option

TRAINED_NAME = "trained.safetensors"
STATE_NAME = "state.pt"
STATE_KEYS = ("step", "optimizer", "scheduler", "skipped_updates", "rng")  # what a resume cannot do without


def save(
    run_dir: str | Path,
    *,
    step: int,
    trained: torch.nn.Module,
    ema_model: torch.nn.Module,
    recipe,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint ``step`` atomically and delete all but the newest ``keep``."""
    folder = Path(run_dir) / CHECKPOINTS
    target = folder / f"step-{step:08d}"
    tmp = folder / f".tmp-step-{step:08d}"
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in trained.state_dict().items()}
    problem = non_finite(tensors)
    if problem:
        raise CheckpointError(f"{target}: not written: the trained weights' {problem}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in [*folder.glob(".tmp-step-*"), *folder.glob(".del-step-*")]:  # a crash mid-write or -delete
            shutil.rmtree(leftover, ignore_errors=True)
        # the grid the run drew at this step, when it drew one, goes with the model: its card shows it, push reuses it
        samples = latest_samples(run_dir, step) or 0
        save_pretrained(
            ema_model, tmp, recipe=recipe, state_dict=ema_model.state_dict(), extra={"step": step}, samples=samples
        )
        write_weights(tmp / TRAINED_NAME, tensors)
        atomic_write(tmp / STATE_NAME, lambda path: _save_state(state, path))
        with writing(tmp):
            _fsync_folder(tmp)
        if target.exists():  # the same step written again (e.g. interrupted right after a periodic checkpoint)
            _remove(target)
        os.replace(tmp, target)
        _fsync(folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        file = Path(exc.filename) if exc.filename else target
        shown = target / file.relative_to(tmp) if file.is_relative_to(tmp) else file  # where it was going
        raise write_refused(exc, run_dir, shown) from None
    for old in checkpoint_dirs(run_dir)[:-keep]:
        _remove(old)
    return target


def write_refused(exc: OSError, run_dir: str | Path, file: str | Path | None = None) -> CheckpointError:
    """The one line for a file of the run at ``run_dir`` (``file``, else the one ``exc`` names) that the system
    refused to write: what it said, and the checkpoint the run can continue from."""
    latest = checkpoint_dirs(run_dir)
    return CheckpointError(
        f"{file or exc.filename}: could not be written ({exc.strerror or exc}); "
        + (
            f"the latest checkpoint is still {latest[-1]}: continue from it with --resume {run_dir} once the disk "
            "takes the write"
            if latest
            else "no checkpoint was written"
        )
    )


def _save_state(state: dict[str, Any], path: Path) -> None:
    with open(path, "wb") as fh:  # through a Python file, so that a refused write surfaces as its OSError
        torch.save(state, fh)


def load(checkpoint: Path, *, trained: torch.nn.Module, ema_model: torch.nn.Module) -> dict[str, Any]:
    """Load weights into ``trained`` and ``ema_model``; return the rest of the state."""
    load_strict(trained, load_state_dict(checkpoint / TRAINED_NAME), str(checkpoint / TRAINED_NAME))
    load_strict(ema_model, load_state_dict(checkpoint / WEIGHTS_NAME), str(checkpoint / WEIGHTS_NAME))
    path = checkpoint / STATE_NAME
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(
            f"{path}: not found; a training checkpoint holds {STATE_NAME} beside the weights"
        ) from None
    except Exception as exc:  # unpickling damage comes in many types
        if is_out_of_memory(exc):
            raise
        raise CheckpointError(
            f"{path}: unreadable training state ({type(exc).__name__}); the checkpoint is damaged"
        ) from None
    missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"{path}: the training state lacks {', '.join(missing)}; the checkpoint is damaged")
    return state


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's random-number state, as a checkpoint keeps it: the CPU generator's and, on a GPU, the GPU's."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Continue from a state :func:`rng_state` saved (the GPU's only where it was saved and runs on one again)."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _remove(path: Path) -> None:
    # rename first so that a half-deleted folder never looks like a checkpoint
    doomed = path.with_name(".del-" + path.name)
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _fsync_folder(folder: Path) -> None:
    for file in folder.iterdir():
        _fsync(file)
    _fsync(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def require_finite_weights(models: dict[str, torch.nn.Module], step: int, run_dir: Path) -> None:
    """Stop a run in one line once an update has made any weight of ``models`` (by role: trained, EMA) NaN or
    infinite, naming the latest good checkpoint: nothing after it is saved."""
    for which, model in models.items():
        problem = non_finite(model.state_dict())
        if problem is None:
            continue
        saved = checkpoint_dirs(run_dir)
        cure = "lower train.lr, train.weight_decay or train.grad_clip"
        keep = (
            f"the latest good checkpoint is {saved[-1]}: {cure} and continue it with {resume_option(run_dir)}"
            if saved
            else f"no checkpoint was written: {cure} and start again"
        )
        raise CheckpointError(
            f"step {step}: the {which} weights are no longer finite ({problem}), so nothing more is saved; " + keep
        )
