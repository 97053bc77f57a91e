"""Whether and where a run may start: the CUDA-graph conditions, the run directory, a resume's recipe."""

from __future__ import annotations

from pathlib import Path

from genkit import rundirs
from genkit.engine.distributed import Distributed
from genkit.errors import CheckpointError, ConfigError
from genkit.fileio import unwritable
from genkit.pretrained import claim_output
from genkit.recipe import Recipe, recipe_to_dict
from genkit.recipefiles import read_toml


def check_cuda_graph(recipe: Recipe, context: Distributed) -> None:
    """``train.cuda_graph`` needs one process on one CUDA device."""
    if not recipe.train.cuda_graph:
        return
    where = recipe.origin("train")
    if context.device.type != "cuda":
        raise ConfigError(
            f"{where}: train.cuda_graph = true needs a CUDA device, and this run is on {context.device}; "
            "set train.cuda_graph = false"
        )
    if context.enabled:
        raise ConfigError(
            f"{where}: train.cuda_graph = true works in one process only, and this run has "
            f"{context.world_size} (torchrun); set train.cuda_graph = false"
        )


def choose_run_dir(recipe: Recipe, run_dir, resume, overwrite: bool = False) -> tuple[Path, str]:
    """The run directory, and the option or setting that named it: ``--resume``, ``--out`` or ``train.out_dir``.

    A resumed run must be a run directory trained with the same ``[model]`` and ``[data]``; a new
    one must not hold another run's or a model's files unless ``overwrite`` (``--overwrite``, for
    ``--out`` only) says to replace them, and must be writable.
    """
    if overwrite and (resume is not None or run_dir is None):
        raise ConfigError(
            "--overwrite applies to --out: it replaces what that folder holds (a run without --out gets a new folder)"
        )
    if resume is not None:
        resume = Path(resume)
        if run_dir is not None and Path(run_dir).resolve() != resume.resolve():
            raise ConfigError(
                f"--out {run_dir} and --resume {resume} name different run directories; give only --resume"
            )
        if not rundirs.is_run_dir(resume):
            raise CheckpointError(
                f"{resume}: not a run directory (no {rundirs.RECIPE_NAME}); expected a folder written by genkit run"
            )
        check_same_model(recipe, resume / rundirs.RECIPE_NAME)
        return resume, "--resume"
    if run_dir is not None:
        run_dir, what = Path(run_dir), "--out"
        found = rundirs.run_files(run_dir)
        if found and not overwrite:
            raise ConfigError(
                f"--out {run_dir}: already holds the files of a run ({', '.join(found)}); continue that run with "
                f"--resume {run_dir}, start it again with --overwrite, or choose another --out"
            )
        claim_output(run_dir, what, overwrite)  # a model directory: eval, sample and push would read that model
    else:
        what = "train.out_dir"
        try:
            run_dir = rundirs.new_run_dir(Path(recipe.train.out_dir).expanduser(), recipe.name)
        except OSError as exc:  # looking for a free name failed: a name too long, a loop of links
            raise ConfigError(f"{what} {recipe.train.out_dir}: cannot write the run there ({exc.strerror})") from None
    problem = unwritable(run_dir, folder=True)
    if problem:
        raise ConfigError(f"{what} {run_dir}: cannot write the run there ({problem})")
    return run_dir, what


def check_same_model(recipe: Recipe, saved_recipe: Path) -> None:
    """Only ``[train]`` and ``[eval]`` may change when a run is resumed."""
    saved = read_toml(saved_recipe)
    current = recipe_to_dict(recipe, provenance=False)
    for table in ("model", "data"):
        if saved.get(table) != current.get(table):
            key, was, now = first_difference(saved.get(table), current.get(table), table)
            raise ConfigError(
                f"{saved_recipe}: the run was trained with a different [{table}] table than {recipe.origin(table)} "
                f"({key}: {was} in the run, {now} now); "
                "resume with the recipe the run was started with (only [train] and [eval] may change)"
            )


def first_difference(saved, current, path: str) -> tuple[str, str, str]:
    """(the first dotted key at which two recipe tables differ, its value in ``saved``, in ``current``)."""
    if isinstance(saved, dict) and isinstance(current, dict):
        for key in [*saved, *(k for k in current if k not in saved)]:
            if saved.get(key) != current.get(key):
                return first_difference(saved.get(key), current.get(key), f"{path}.{key}")
    absent = "absent"
    return path, absent if saved is None else repr(saved), absent if current is None else repr(current)
