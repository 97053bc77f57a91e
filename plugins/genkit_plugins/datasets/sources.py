"""Where a data set's files come from: a local copy, the genkit cache, or a Hugging Face Hub data-set repo.

The settings that say so are spelt the same in every data set that has them:

* ``root``: a local copy; for a data set that fetches itself, ``""`` means its folder in the
  genkit cache (``$GENKIT_CACHE``, by default ``~/.cache/genkit``);
* ``hub`` and ``hub_revision``: a Hub data-set repo holding the files in the format the data set
  reads, fetched into the Hugging Face cache (never together with ``root``: :func:`check_one_source`);
* ``download``: ``false`` keeps genkit off the network; so does ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

from pathlib import Path

from genkit.downloads import offline
from genkit.errors import ConfigError
from genkit.schema import check


def why_not_downloading(download: bool) -> str:
    """What forbids downloading ("" when nothing does): the recipe's ``data.download`` or the offline switch."""
    if not download:
        return "data.download = false"
    if offline():
        return "HF_HUB_OFFLINE=1"
    return ""


def check_one_source(settings) -> None:
    """For a settings class's ``__attrs_post_init__``: ``root`` and ``hub`` are never set together."""
    check(
        not (settings.root and settings.hub),
        "hub",
        f"either data.root or data.hub, not both (data.root = {settings.root!r}: a local copy, or a Hub data-set repo)",
        settings.hub,
    )


def hub_folder(repo_id: str, revision: str, *, patterns: list[str], download: bool) -> Path:
    """The snapshot folder of the Hub data-set repo ``repo_id`` holding (at least) its files matching ``patterns``.

    With downloads off only the Hugging Face cache is looked at, and no request is made.
    """
    from genkit.hub import download_dataset

    return download_dataset(repo_id, revision=revision or None, allow_patterns=patterns, local_files_only=not download)


def data_folder(root: str, hub: str, hub_revision: str, *, download: bool, patterns: list[str], holding: str) -> Path:
    """The folder to read: ``root``, or the snapshot of the Hub data-set repo ``hub`` (its files matching ``patterns``).

    ``holding`` says what the folder must hold, for the error when neither is set.
    """
    if hub:
        return hub_folder(hub, hub_revision, patterns=patterns, download=download)
    if not root:
        raise ConfigError(
            f"data.root: expected a folder holding {holding} (or data.hub: a Hub data-set repo holding them), "
            "found neither set"
        )
    return Path(root).expanduser()
