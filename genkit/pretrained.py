"""Model directories: ``config.json`` + ``model.safetensors`` (+ ``README.md``), saved and loaded strictly.

A *model directory* holds exactly what is needed to rebuild a model: the resolved recipe (with
every plugin's providing distribution and version, and the sha256 of the weights file) and its
weights as safetensors, plus a ``README.md`` model card (:mod:`genkit.cards`). A *run directory*
(what ``genkit run`` writes) is accepted wherever a model directory is, and means its latest
checkpoint's EMA weights; :func:`genkit.hub.from_pretrained` takes anything else as a Hugging Face
Hub repo id. Weights are read only through safetensors, never pickle, and loading
is strict: a missing, unexpected or mis-shaped tensor, an altered file or a plugin that is not
installed each fail with one line naming it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genkit import cards, rundirs
from genkit.errors import CheckpointError, ConfigError, GenkitError, PluginError, first_line, is_out_of_memory
from genkit.fileio import atomic_write, sha256, write_json
from genkit.interfaces import GenerativeModel
from genkit.models import build_model
from genkit.recipe import Recipe, recipe_from_dict, recipe_to_dict
from genkit.registry import get_registry, install_advice

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1
#: what a config.json records of where its weights came from: the step of a run's checkpoint, the file converted
PROVENANCE_KEYS = ("step", "converted_from")


def save_pretrained(
    model: GenerativeModel,
    directory: str | Path,
    *,
    recipe: Recipe | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
    extra: dict[str, Any] | None = None,
    card: bool = True,
    samples: int | str | Path = 0,
) -> Path:
    """Write a model directory: ``model.safetensors`` (``state_dict``, default the model's own), ``config.json``
    and, with ``card``, the ``README.md`` model card.

    ``samples`` puts a sample grid beside them: a number of images to draw with the model's default
    sampler, or the path of a grid already drawn (a run's latest, say); 0 for none.
    """
    recipe = recipe or model.recipe
    if recipe is None:
        raise GenkitError(
            "save_pretrained needs the model's recipe: build it with genkit.models.build_model or pass recipe="
        )
    directory = Path(directory)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in (state_dict or model.state_dict()).items()}
    problem = non_finite(tensors, dtypes_of(model))
    if problem:
        raise CheckpointError(f"{directory}: not written: {problem}; weights that are not all finite give only NaN")
    directory.mkdir(parents=True, exist_ok=True)
    write_weights(directory / WEIGHTS_NAME, tensors)
    config = {
        "format_version": FORMAT_VERSION,
        **recipe_to_dict(recipe),
        "weights_sha256": sha256(directory / WEIGHTS_NAME),
        **(extra or {}),
    }
    write_json(directory / CONFIG_NAME, config)
    if isinstance(samples, (str, Path)):
        atomic_write(directory / cards.SAMPLES_NAME, lambda p: shutil.copyfile(samples, p))
    elif samples > 0:
        cards.write_sample_grid(model, directory / cards.SAMPLES_NAME, n=samples)
    if card:
        cards.write_model_card(directory, recipe, config, model)
    return directory


def read_config(directory: str | Path) -> tuple[Recipe, dict]:
    """The recipe stored in a model directory's ``config.json``, and the raw config."""
    path = Path(directory) / CONFIG_NAME
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (a model directory holds {CONFIG_NAME} and {WEIGHTS_NAME})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc}); the file is corrupt or truncated") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path}: expected a JSON object (the recipe and provenance genkit writes), found {_json_kind(config)}"
        )
    if not isinstance(config.get("plugins", []), list):
        raise CheckpointError(
            f"{path}: plugins: expected an array of the plugins the model uses, found {_json_kind(config['plugins'])}"
        )
    missing_plugins = _missing_plugins(config)
    if missing_plugins:  # the directory is fine; this environment lacks a plugin (exit 2, like a recipe's)
        raise PluginError(f"{path}: {missing_plugins}")
    raw = {k: config[k] for k in ("model", "data", "train", "eval") if k in config}
    try:
        return recipe_from_dict(raw, file=str(path)), config
    except PluginError:  # a plugin this environment lacks: the directory is fine
        raise
    except ConfigError as exc:  # genkit wrote the file: one that does not hold a valid recipe is damaged (exit 1)
        raise CheckpointError(f"{exc}; the model directory is damaged or was edited by hand") from None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (never pickle), turning damage into a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        if is_out_of_memory(exc):
            raise
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({first_line(exc)}); it may be truncated or altered"
        ) from None


def write_weights(path: str | Path, tensors: dict[str, torch.Tensor]) -> Path:
    """``tensors`` as the safetensors file ``path``, atomically and with the mode of the directory's other files
    (safetensors alone makes a private, ``0600`` file, and would replace a device at ``path``)."""
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}), in_place=False)


def dtypes_of(model: torch.nn.Module) -> dict[str, torch.dtype]:
    """The dtype of each tensor of ``model``'s state dict: what a weight becomes when it is loaded into it."""
    return {k: v.dtype for k, v in model.state_dict().items()}


def non_finite(state: dict[str, torch.Tensor], dtypes: dict[str, torch.dtype] | None = None) -> str | None:
    """What is wrong when a floating-point tensor of ``state`` holds NaN or an infinity (the first such), else
    ``None``. One reduction and one read back to the host, wherever the tensors are.

    With ``dtypes`` (name to dtype, :func:`dtypes_of` a model), each tensor is checked as the model will
    use it, cast to its dtype: a float64 value beyond the float32 range is finite in the file and
    infinite in a float32 model.
    """
    dtypes = dtypes or {}
    floating = {k: as_used(v, dtypes.get(k)) for k, v in state.items() if v.is_floating_point() or v.is_complex()}
    if not floating or bool(torch.stack([torch.isfinite(v).all() for v in floating.values()]).all()):
        return None
    name, tensor = next((k, v) for k, v in floating.items() if not bool(torch.isfinite(v).all()))
    bad = int((~torch.isfinite(tensor)).sum())
    if state[name].dtype != tensor.dtype and bool(torch.isfinite(state[name]).all()):
        return (
            f"tensor {name!r} holds {bad} of {tensor.numel()} values beyond the range of {tensor.dtype}, the model's "
            f"dtype (finite as {state[name].dtype}, infinite once cast)"
        )
    return f"tensor {name!r} holds {bad} of {tensor.numel()} values that are NaN or infinite"


def as_used(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """``tensor`` cast to ``dtype`` when both are floating point, as ``load_state_dict`` copies it into a model."""
    if dtype is None or dtype == tensor.dtype or not (tensor.is_floating_point() and dtype.is_floating_point):
        return tensor
    return tensor.to(dtype)


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``model``; any missing, unexpected or mis-shaped tensor fails, naming it, and so do weights
    that are not all finite (the model would give only NaN)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        raise CheckpointError(
            f"{source}: missing tensor {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if unexpected:
        raise CheckpointError(
            f"{source}: unexpected tensor {unexpected[0]!r}"
            + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
        )
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{source}: tensor {key!r} has shape {tuple(state[key].shape)}, the model expects {tuple(value.shape)}"
            )
    problem = non_finite(state, {k: v.dtype for k, v in own.items()})
    if problem:
        raise CheckpointError(
            f"{source}: {problem}; a model whose weights are not all finite cannot be evaluated, sampled or trained"
        )
    model.load_state_dict(state, strict=True)


def load_model_dir(
    directory: str | Path, *, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.nn.Module:
    """Rebuild and load the model in a model directory; returned in eval mode."""
    directory = Path(directory)
    recipe, config = read_config(directory)
    weights = directory / WEIGHTS_NAME
    expected = config.get("weights_sha256")
    if expected is not None and weights.is_file() and sha256(weights) != expected:
        raise CheckpointError(
            f"{weights}: its sha256 differs from the one recorded in {CONFIG_NAME}; the file was altered or truncated"
        )
    model = build_model(recipe)
    # cast before loading, so float64 weights reach a float64 model without a float32 round trip
    model.to(device=device or "cpu", dtype=dtype)
    load_strict(model, load_state_dict(weights), str(weights))
    model.provenance = {key: config[key] for key in PROVENANCE_KEYS if key in config}
    return model.eval()


def output_files(folder: str | Path) -> list[str]:
    """The files of a model directory or of a run that ``folder`` already holds: what an output written there would
    replace, or mix with (a folder holding both ``config.json`` and ``recipe.toml`` loads as the model, not the run).
    A ``README.md`` alone is no model's: many folders have one."""
    folder = Path(folder)
    names = (CONFIG_NAME, WEIGHTS_NAME, cards.SAMPLES_NAME, cards.EVAL_NAME, *rundirs.RUN_FILES)
    return [name for name in names if (folder / name).exists() or (folder / name).is_symlink()]


def claim_output(folder: str | Path, option: str, overwrite: bool) -> None:
    """Refuse, in one line naming ``option``, a ``folder`` that holds a model or a run, unless ``overwrite`` says to
    replace it."""
    found = output_files(folder)
    if found and not overwrite:
        model, run = set(found) - set(rundirs.RUN_FILES), set(found) & set(rundirs.RUN_FILES)
        what = "a model and a run" if model and run else "a model" if model else "the files of a run"
        raise ConfigError(
            f"{option} {folder}: already holds {what} ({', '.join(found)}); choose another {option}, or replace "
            f"them with --overwrite"
        )


def clear_outputs(folder: str | Path) -> None:
    """Delete the files of a model directory or of a run that ``folder`` holds, and the model's card where genkit
    wrote it (a card of the author's own stays); any other file stays."""
    folder = Path(folder)
    card = folder / cards.CARD_NAME
    if (folder / CONFIG_NAME).is_file() and card.is_file() and cards.is_generated_card(card):
        card.unlink()
    for name in output_files(folder):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def resolve_local(path: str | Path) -> Path | None:
    """A local model directory for ``path``: itself, or a run directory's latest checkpoint; ``None`` if it is not
    local."""
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_dir():
        raise CheckpointError(f"{path}: expected a model directory, a run directory or a Hub repo id, found a file")
    if (path / CONFIG_NAME).is_file():
        return path
    if rundirs.is_run_dir(path):
        return rundirs.latest_checkpoint(path)
    raise CheckpointError(f"{path}: neither a model directory ({CONFIG_NAME}) nor a run directory (recipe.toml)")


def _json_kind(value: Any) -> str:
    kinds = {list: "an array", str: "a string", bool: "true or false", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _missing_plugins(config: dict) -> str:
    registry = get_registry()
    for entry in config.get("plugins", []):
        try:
            names = registry.names(entry["kind"])
        except (GenkitError, KeyError, TypeError):
            continue
        if entry.get("name") not in names:
            provider = entry.get("provider", "an unknown distribution")
            return (
                f"the model needs the {entry['kind']} plugin {entry.get('name')!r} from the distribution "
                f"{provider!r} {entry.get('version', '')}, which is not installed; {install_advice(provider)}"
            )
    return ""
