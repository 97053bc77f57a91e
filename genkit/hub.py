"""Publishing model directories to the Hugging Face Hub, fetching them back, and their model cards.

What is published is exactly a model directory (see :mod:`genkit.pretrained`): ``config.json``,
``model.safetensors``, a ``README.md`` model card whose YAML front matter carries the Hub metadata
(``library_name: genkit``, tags, data sets, license and a ``model-index`` entry with the bits/dim),
the sample grid ``samples.png`` and, when the model was evaluated, ``eval.json``. Fetching downloads
only those files (never ``*.bin``/``*.pt`` pickles), through the shared Hugging Face cache, so a
model fetched once loads offline (``HF_HUB_OFFLINE=1`` or ``local_files_only=True``). Data sets whose
files sit in a Hub data-set repo are fetched the same way (:func:`download_dataset`).

Every failure the user can cause (unknown repo or revision, no cached copy while offline, a refused
token, an unreachable endpoint) becomes one :class:`~genkit.errors.HubError` line.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from genkit.errors import CheckpointError, ConfigError, HubError
from genkit.pretrained import CONFIG_NAME, WEIGHTS_NAME, load_model_dir, read_config, resolve_local, save_pretrained

CARD_NAME = "README.md"
SAMPLES_NAME = "samples.png"
EVAL_NAME = "eval.json"
#: the files a published model consists of; nothing else is uploaded or downloaded
PUBLISHED_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, SAMPLES_NAME, EVAL_NAME)
#: what loading needs: the card is fetched too (it is small and says where the numbers come from)
DOWNLOADED_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
#: how ``genkit eval --split`` computes bits/dim, unless ``eval.json`` says otherwise
DEFAULT_METHOD = "negative ELBO, one posterior sample per image"
#: the card line that marks a card genkit may regenerate; a card without it is the author's and is kept
GENERATED_MARK = "<!-- genkit:generated-card (delete this line to keep your edits when pushing again) -->"

# Data-set plugin names -> (display name, Hub data-set id of the source images, or None where there is none).
KNOWN_DATASETS = {
    "cifar10": ("CIFAR-10", "uoft-cs/cifar10"),
    "imagenet32": ("ImageNet 32x32", "ILSVRC/imagenet-1k"),
    "imagenet64": ("ImageNet 64x64", "ILSVRC/imagenet-1k"),
    "ffhq256": ("FFHQ 256x256 (5 bit)", None),
    "ffhq1024": ("FFHQ 1024x1024", None),
    "digits": ("UCI handwritten digits (8x8)", None),
}


# ---- fetching ------------------------------------------------------------------------------------


def download(
    repo_id: str,
    *,
    revision: str | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> Path:
    """Fetch a model repo's ``config.json``, ``model.safetensors`` and card into the cache; the snapshot folder.

    Nothing is downloaded when the revision is already cached and ``local_files_only`` is set or
    ``HF_HUB_OFFLINE=1``; neither then makes any network call.
    """
    folder = _snapshot(
        repo_id,
        repo_type="model",
        revision=revision,
        allow_patterns=list(DOWNLOADED_FILES),
        local_files_only=local_files_only,
        token=token,
        cache_dir=cache_dir,
        endpoint=endpoint,
    )
    at = f" at revision {revision!r}" if revision else ""
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointError(f"{repo_id}{at}: the repository has no {CONFIG_NAME}, so it is not a genkit model")
    if not (folder / WEIGHTS_NAME).is_file():
        raise CheckpointError(
            f"{repo_id}{at}: the repository has no {WEIGHTS_NAME}; genkit loads weights only from safetensors, "
            "never from pickle files (*.bin, *.pt, *.th)"
        )
    return folder


def download_dataset(
    repo_id: str,
    *,
    allow_patterns: list[str],
    revision: str | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> Path:
    """Fetch the files of a Hub data-set repo that match ``allow_patterns`` into the cache; the snapshot folder.

    Offline behaviour is the models': a cached revision is used without any network call when
    ``local_files_only`` is set or ``HF_HUB_OFFLINE=1``, and is the only thing used then.
    """
    return _snapshot(
        repo_id,
        repo_type="dataset",
        revision=revision,
        allow_patterns=allow_patterns,
        local_files_only=local_files_only,
        token=token,
        cache_dir=cache_dir,
        endpoint=endpoint,
    )


# How errors name each kind of repository, how a token is given, and what to use instead of the Hub.
_REPO_KINDS = {
    "model": {
        "noun": "model repository",
        "not_local": "no such local directory, and ",
        "token": "pass a token: --token or HF_TOKEN",
        "local_only": "local_files_only=True",
        "instead": "load it once online, or pass a model directory",
    },
    "dataset": {
        "noun": "data-set repository",
        "not_local": "",
        "token": "log in with `hf auth login` or set HF_TOKEN",
        "local_only": "data.download = false",
        "instead": "fetch it once online, or point data.root at a local copy",
    },
}


def _snapshot(
    repo_id: str,
    *,
    repo_type: str,
    revision: str | None,
    allow_patterns: list[str],
    local_files_only: bool,
    token: str | bool | None,
    cache_dir: str | Path | None,
    endpoint: str | None,
) -> Path:
    """``snapshot_download`` with every failure the user can cause turned into one line."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    kind = _REPO_KINDS[repo_type]
    where = endpoint or constants.ENDPOINT
    at = f" at revision {revision!r}" if revision else ""
    try:
        folder = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            allow_patterns=allow_patterns,
            local_files_only=local_files_only,
            token=token,
            cache_dir=cache_dir,
            endpoint=endpoint,
        )
    except HFValidationError:
        error = CheckpointError if repo_type == "model" else ConfigError
        raise error(f"{repo_id}: {kind['not_local']}not a Hub repo id (expected 'namespace/name')") from None
    except RevisionNotFoundError:
        raise HubError(f"{repo_id}: revision {revision!r} not found on {where}") from None
    except GatedRepoError:
        raise HubError(f"{repo_id}: gated repository on {where}; accept its conditions and {kind['token']}") from None
    except RepositoryNotFoundError:
        raise HubError(
            f"{repo_id}: {kind['not_local']}no such {kind['noun']} on {where} (if it is private, {kind['token']})"
        ) from None
    except LocalEntryNotFoundError as exc:
        if local_files_only or constants.is_offline_mode():
            why = kind["local_only"] if local_files_only else "HF_HUB_OFFLINE=1"
            raise HubError(
                f"{repo_id}{at}: not in the Hugging Face cache ({cache_dir or constants.HF_HUB_CACHE}) "
                f"and downloads are off ({why}); {kind['instead']}"
            ) from None
        raise HubError(
            f"{repo_id}{at}: could not reach {where} and no complete cached copy exists ({_first_line(exc)})"
        ) from None
    except HfHubHTTPError as exc:
        raise HubError(f"{repo_id}{at}: {where} answered {_status(exc)}") from None
    return Path(folder)


# ---- publishing ----------------------------------------------------------------------------------


def push_to_hub(
    model_or_path: torch.nn.Module | str | Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    license: str = "mit",
    samples: int = 16,
    evaluation: dict[str, Any] | None = None,
    endpoint: str | None = None,
):
    """Publish a model (a built model, a model directory or a run directory) as the Hub repo ``repo_id``.

    Creates the repo if needed (``private`` applies only then) and the branch ``revision`` if it is
    not ``main``, then uploads the model directory in one commit. A directory is first loaded
    strictly, so a damaged one is never published. The card is (re)written unless the directory's
    card is the author's own (it lacks :data:`GENERATED_MARK`); ``samples`` images are drawn for
    the grid when the directory has none. Returns the ``huggingface_hub`` ``CommitInfo``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    if constants.is_offline_mode():
        raise HubError(f"cannot push {repo_id}: HF_HUB_OFFLINE=1 forbids network calls")
    where = endpoint or constants.ENDPOINT
    with _staged(model_or_path) as (staging, model, source):
        if evaluation is not None:
            check_evaluation(evaluation, "evaluation")
            (staging / EVAL_NAME).write_text(json.dumps(evaluation, indent=2) + "\n")
        if not (staging / SAMPLES_NAME).exists() and samples > 0:
            write_sample_grid(model, staging / SAMPLES_NAME, n=samples)
        if _is_generated_card(staging / CARD_NAME):
            write_model_card(staging, model, repo_id=repo_id, license=license)
        files = [name for name in PUBLISHED_FILES if (staging / name).is_file()]
        message = commit_message or f"Upload {model.recipe.model.name} model with genkit {_genkit_version(staging)}"
        api = HfApi(endpoint=endpoint, token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision not in (None, constants.DEFAULT_REVISION):
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(staging / name)) for name in files]
            return api.create_commit(repo_id, operations, commit_message=message, revision=revision)
        except HFValidationError as exc:
            raise ConfigError(f"{repo_id}: not a valid Hub repo id ({_first_line(exc)})") from None
        except OfflineModeIsEnabled:
            raise HubError(f"cannot push {repo_id}: HF_HUB_OFFLINE=1 forbids network calls") from None
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", None)
            hint = " (log in with `hf auth login`, set HF_TOKEN or pass --token)" if status in (401, 403) else ""
            raise HubError(f"pushing {source} to {repo_id} on {where}: the Hub answered {_status(exc)}{hint}") from None
        except _transport_errors() as exc:  # connection refused, DNS, TLS, timeouts
            raise HubError(f"pushing {source} to {repo_id}: could not reach {where} ({_first_line(exc)})") from None


@contextmanager
def _staged(model_or_path):
    """A temporary copy of the model directory to publish, with the strictly loaded model it holds."""
    with tempfile.TemporaryDirectory(prefix="genkit-push-") as tmp:
        staging = Path(tmp)
        if isinstance(model_or_path, torch.nn.Module):
            model, source = model_or_path, f"the {type(model_or_path).__name__} model"
            save_pretrained(model, staging, card=False)  # the card is written below, with the repo id
            _mark_generated(staging)
        else:
            source = str(model_or_path)
            directory = resolve_local(model_or_path)
            if directory is None:
                raise CheckpointError(f"{model_or_path}: no such model directory or run directory to push")
            model = load_model_dir(directory)  # strict: a damaged directory fails here, before anything is sent
            for name in PUBLISHED_FILES:
                if (directory / name).is_file():
                    # only the weights are linked: the card and eval.json may be rewritten in the staging copy
                    (_link_or_copy if name == WEIGHTS_NAME else shutil.copyfile)(directory / name, staging / name)
            if not (staging / CARD_NAME).exists():
                _mark_generated(staging)
        yield staging, model, source


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows it: weights of hundreds of MB are not duplicated to be uploaded."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _mark_generated(directory: Path) -> None:
    (directory / CARD_NAME).write_text(GENERATED_MARK + "\n")


def _is_generated_card(path: Path) -> bool:
    return not path.exists() or GENERATED_MARK in path.read_text(errors="replace")


# ---- model cards ---------------------------------------------------------------------------------


def write_sample_grid(model: torch.nn.Module, path: Path, *, n: int = 16, seed: int = 0) -> Path:
    """Draw ``n`` unconditional samples at the recipe's sampling temperature (fixed seed) into a PNG grid."""
    from genkit.images import save_grid

    temperature = model.recipe.train.sample_temperature
    device = next(model.parameters(), torch.empty(0)).device
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        images = model.sample(n, temperature=temperature, generator=generator)
    height = model.image_shape[0]
    return save_grid(images, path, scale=max(1, math.ceil(64 / height)))


def write_model_card(
    directory: str | Path, model: torch.nn.Module | None = None, *, repo_id: str | None = None, license: str = "mit"
) -> Path:
    """Write ``README.md`` for a model directory: Hub metadata, results, samples, how to load it, provenance."""
    directory = Path(directory)
    recipe, config = read_config(directory)
    evaluation = read_evaluation(directory)
    path = directory / CARD_NAME
    path.write_text(
        model_card(
            recipe,
            config,
            evaluation=evaluation,
            repo_id=repo_id,
            license=license,
            image_shape=getattr(model, "image_shape", None),
            has_samples=(directory / SAMPLES_NAME).is_file(),
        )
    )
    return path


def read_evaluation(directory: Path) -> dict | None:
    """The model directory's ``eval.json``, if it has one, with ``method`` filled in.

    The file is what ``genkit eval MODEL --split test --json eval.json`` writes: ``split`` and
    ``bits_per_dim`` (required), ``images``, and with ``--importance-samples K`` also
    ``importance_samples`` and ``iw_bits_per_dim``. ``method`` says how the number was computed.
    """
    path = Path(directory) / EVAL_NAME
    if not path.is_file():
        return None
    try:
        evaluation = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    return {"method": DEFAULT_METHOD, **check_evaluation(evaluation, str(path), error=CheckpointError)}


def check_evaluation(evaluation: Any, source: str, error: type[Exception] = ConfigError) -> dict:
    """``evaluation`` if it holds a ``split`` name and a ``bits_per_dim`` number; otherwise one line naming
    ``source``."""
    if not isinstance(evaluation, dict):
        raise error(f"{source}: expected a JSON object, found {type(evaluation).__name__}")
    for key, kind, expected in (("split", str, "a split name"), ("bits_per_dim", (int, float), "a number")):
        value = evaluation.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise error(
                f"{source}: {key}: expected {expected}, found {value!r} "
                "(write it with genkit eval MODEL --split test --json FILE)"
            )
    return evaluation


def _metrics(evaluation: dict) -> list[tuple[str, float, str]]:
    """(metric id, bits/dim, how it was computed) for the ELBO and, when measured, the importance-weighted bound."""
    rows = [("bits-per-dim", float(evaluation["bits_per_dim"]), evaluation["method"])]
    if isinstance(evaluation.get("iw_bits_per_dim"), (int, float)):
        k = evaluation.get("importance_samples", "K")
        rows.append(
            (
                "bits-per-dim-iw",
                float(evaluation["iw_bits_per_dim"]),
                f"importance-weighted bound (Burda et al. 2016), {k} samples per image",
            )
        )
    return rows


def card_metadata(recipe, *, evaluation: dict | None, repo_id: str | None, license: str):
    """The card's Hub metadata as ``huggingface_hub.ModelCardData``."""
    from huggingface_hub import EvalResult, ModelCardData

    data_name = recipe.data.name
    display, hub_dataset = KNOWN_DATASETS.get(data_name, (data_name, None))
    name = repo_id.split("/")[-1] if repo_id else f"{recipe.model.name}-{data_name}"
    results = None
    if evaluation is not None:
        results = [
            EvalResult(
                task_type="unconditional-image-generation",
                task_name="Unconditional image generation",
                dataset_type=data_name,
                dataset_name=display,
                dataset_split=evaluation["split"],
                metric_type=metric,
                metric_value=round(value, 4),
                metric_name=f"{method} (bits/dim)",
            )
            for metric, value, method in _metrics(evaluation)
        ]
    return ModelCardData(
        library_name="genkit",
        license=license,
        pipeline_tag="unconditional-image-generation",
        tags=["genkit", recipe.model.name, data_name, "likelihood-based", "unconditional-image-generation"],
        datasets=[hub_dataset] if hub_dataset else None,
        model_name=name if results else None,  # the Hub reads it only inside model-index
        eval_results=results,
    )


def model_card(
    recipe,
    config: dict,
    *,
    evaluation: dict | None,
    repo_id: str | None,
    license: str,
    image_shape: tuple[int, int, int] | None = None,
    has_samples: bool = False,
) -> str:
    """The model card text: YAML front matter, then prose a reader (and the Hub page) can use."""
    from genkit.recipe import dump_recipe

    metadata = card_metadata(recipe, evaluation=evaluation, repo_id=repo_id, license=license)
    title = repo_id.split("/")[-1] if repo_id else f"{recipe.model.name}-{recipe.data.name}"
    display = KNOWN_DATASETS.get(recipe.data.name, (recipe.data.name, None))[0]
    ref = repo_id or "path/to/this/directory"
    shape = f" of {image_shape[0]}×{image_shape[1]} images with {image_shape[2]} channels" if image_shape else ""
    lines = [
        "---",
        metadata.to_yaml(),
        "---",
        GENERATED_MARK,
        "",
        f"# {title}",
        "",
        f"A `{recipe.model.name}` generative model{shape}, trained on {display}, published with "
        f"[genkit](https://github.com/genkit-torch/genkit) {config.get('genkit', {}).get('version', '')}.",
        "",
        *(
            [f"Converted from the checkpoint `{Path(str(config['converted_from'])).name}` with `genkit convert`.", ""]
            if config.get("converted_from")
            else []
        ),
        "## Results",
        "",
    ]
    if evaluation is None:
        lines += ["Not evaluated: no `eval.json` was published with this model.", ""]
    else:
        images = evaluation.get("images", "all")
        lines += [
            "| data | split | bits/dim | images | how it was computed |",
            "|---|---|---|---|---|",
            *(
                f"| {display} | {evaluation['split']} | {value:.4f} | {images} | {method} |"
                for _, value, method in _metrics(evaluation)
            ),
            "",
            (
                "Bits per dimension = a bound on the negative log-likelihood in nats per dimension ÷ ln 2 "
                "(lower is better)."
            ),
            "",
        ]
    if has_samples:
        lines += [
            "## Samples",
            "",
            f"![samples]({SAMPLES_NAME})",
            "",
            f"Unconditional samples at temperature {recipe.train.sample_temperature:g}, seed 0.",
            "",
        ]
    lines += [
        "## How to load",
        "",
        "```python",
        "import genkit",
        "",
        f'model = genkit.from_pretrained("{ref}")  # eval mode; device="cuda", dtype=torch.bfloat16 also work',
        "images = model.sample(16)  # uint8, (16, H, W, C)",
        "```",
        "",
        "or from the command line:",
        "",
        "```bash",
        f"genkit sample {ref} --n 16 --out samples.png",
        f"genkit eval {ref} --split test",
        "```",
        "",
        "Weights are stored as safetensors only. Offline, the cached copy loads with `HF_HUB_OFFLINE=1`",
        "or `local_files_only=True`.",
        "",
        "## Provenance",
        "",
        "| kind | plugin | distribution | version |",
        "|---|---|---|---|",
        *(f"| {p['kind']} | {p['name']} | {p['provider']} | {p['version']} |" for p in config.get("plugins", [])),
        "",
        "The resolved recipe (also in `config.json`):",
        "",
        "```toml",
        dump_recipe(recipe).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


# ---- helpers -------------------------------------------------------------------------------------


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Connection failures of the HTTP client huggingface_hub uses (httpx2 in 2.x, httpx in 1.x, requests before)."""
    import importlib

    errors: list[type[BaseException]] = [OSError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _genkit_version(directory: Path) -> str:
    try:
        return json.loads((directory / CONFIG_NAME).read_text())["genkit"]["version"]
    except (KeyError, TypeError, ValueError, OSError):
        return "(unknown version)"


def _status(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    message = response.headers.get("X-Error-Message") if response is not None else None
    return f"{code} ({message or _first_line(exc)})" if code else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return text[:300] if text else type(exc).__name__


__all__ = [
    "download",
    "download_dataset",
    "push_to_hub",
    "write_model_card",
    "model_card",
    "card_metadata",
    "read_evaluation",
]
