"""Loading models from anywhere (:func:`from_pretrained`), publishing them to the Hugging Face Hub.

What is published is exactly a model directory (see :mod:`genkit.pretrained`): ``config.json``,
``model.safetensors``, a ``README.md`` model card whose YAML front matter carries the Hub metadata
(:mod:`genkit.cards`), the sample grid ``samples.png`` and, when the model was evaluated,
``eval.json``. Fetching downloads only what loading needs (never ``*.bin``/``*.pt`` pickles),
through the shared Hugging Face cache, so a model fetched once loads offline (``HF_HUB_OFFLINE=1``
or ``local_files_only=True``). Data sets whose files sit in a Hub data-set repo are fetched the same
way (:func:`download_dataset`).

Every failure the user can cause (unknown repo or revision, no cached copy while offline, a refused
token, an unreachable endpoint) becomes one :class:`~genkit.errors.HubError` line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from genkit import cards
from genkit.cards import CARD_NAME, EVAL_NAME, SAMPLES_NAME
from genkit.errors import CheckpointError, ConfigError, HubError, first_line
from genkit.fileio import write_json
from genkit.pretrained import CONFIG_NAME, WEIGHTS_NAME, load_model_dir, read_config, resolve_local, save_pretrained

#: the files a published model consists of; nothing else is uploaded or downloaded
PUBLISHED_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, SAMPLES_NAME, EVAL_NAME)
#: what loading needs: the card is fetched too (it is small and says where the numbers come from)
DOWNLOADED_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)


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
            f"{repo_id}{at}: could not reach {where} and no complete cached copy exists ({first_line(exc)})"
        ) from None
    except HfHubHTTPError as exc:
        raise HubError(f"{repo_id}{at}: {where} answered {_status(exc)}") from None
    return Path(folder)


def from_pretrained(
    repo_id_or_path: str | Path,
    revision: str | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    endpoint: str | None = None,
) -> torch.nn.Module:
    """A ready model (eval mode, on ``device`` in ``dtype``) from a model directory, a run directory or the Hub.

    A local directory wins over a Hub repo of the same name. From the Hub, only ``config.json``,
    ``model.safetensors`` and ``README.md`` of ``revision`` (a branch, tag or commit; default
    ``main``) are fetched into the Hugging Face cache (``cache_dir``, default ``HF_HUB_CACHE``);
    with ``local_files_only=True`` or ``HF_HUB_OFFLINE=1`` the cached copy is used without any
    network call. ``endpoint`` overrides ``HF_ENDPOINT`` (a mirror, or a test server).
    """
    local = resolve_local(repo_id_or_path)
    if local is not None:
        if revision is not None:
            raise ConfigError(
                f"{repo_id_or_path}: a revision ({revision!r}) applies to Hub repos, and this is a local directory"
            )
        return load_model_dir(local, device=device, dtype=dtype)
    snapshot = download(
        str(repo_id_or_path),
        revision=revision,
        local_files_only=local_files_only,
        token=token,
        cache_dir=cache_dir,
        endpoint=endpoint,
    )
    return load_model_dir(snapshot, device=device, dtype=dtype)


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
    card is the author's own (it lacks :data:`genkit.cards.GENERATED_MARK`). The sample grid is the
    directory's own — a run's checkpoint holds the grid the run drew at its step — else ``samples``
    images drawn now (0: none). Returns the ``huggingface_hub`` ``CommitInfo``.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    if constants.is_offline_mode():
        raise HubError(f"cannot push {repo_id}: HF_HUB_OFFLINE=1 forbids network calls")
    where = endpoint or constants.ENDPOINT
    with _staged(model_or_path) as (staging, model, source):
        if evaluation is not None:
            cards.check_evaluation(evaluation, "evaluation", model=model)
            write_json(staging / EVAL_NAME, evaluation)
        if not (staging / SAMPLES_NAME).exists() and samples > 0:
            cards.write_sample_grid(model, staging / SAMPLES_NAME, n=samples)
        recipe, config = read_config(staging)
        if cards.is_generated_card(staging / CARD_NAME):
            cards.write_model_card(staging, recipe, config, model, repo_id=repo_id, license=license)
        files = [name for name in PUBLISHED_FILES if (staging / name).is_file()]
        version = config.get("genkit", {}).get("version", "(unknown version)")
        message = commit_message or f"Upload {recipe.model.name} model with genkit {version}"
        api = HfApi(endpoint=endpoint, token=token)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision not in (None, constants.DEFAULT_REVISION):
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(staging / name)) for name in files]
            return api.create_commit(repo_id, operations, commit_message=message, revision=revision)
        except HFValidationError as exc:
            raise ConfigError(f"{repo_id}: not a valid Hub repo id ({first_line(exc)})") from None
        except OfflineModeIsEnabled:
            raise HubError(f"cannot push {repo_id}: HF_HUB_OFFLINE=1 forbids network calls") from None
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", None)
            hint = " (log in with `hf auth login`, set HF_TOKEN or pass --token)" if status in (401, 403) else ""
            raise HubError(f"pushing {source} to {repo_id} on {where}: the Hub answered {_status(exc)}{hint}") from None
        except _transport_errors() as exc:  # connection refused, DNS, TLS, timeouts
            raise HubError(f"pushing {source} to {repo_id}: could not reach {where} ({first_line(exc)})") from None


@contextmanager
def _staged(model_or_path):
    """A temporary copy of the model directory to publish, with the strictly loaded model it holds."""
    with tempfile.TemporaryDirectory(prefix="genkit-push-") as tmp:
        staging = Path(tmp)
        if isinstance(model_or_path, torch.nn.Module):
            model, source = model_or_path, f"the {type(model_or_path).__name__} model"
            save_pretrained(model, staging, card=False)  # the card is written below, with the repo id
            cards.mark_generated(staging)
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
                cards.mark_generated(staging)
        yield staging, model, source


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows it: weights of hundreds of MB are not duplicated to be uploaded."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


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


def _status(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    message = response.headers.get("X-Error-Message") if response is not None else None
    return f"{code} ({message or first_line(exc)})" if code else first_line(exc)


__all__ = ["download", "download_dataset", "from_pretrained", "push_to_hub"]
