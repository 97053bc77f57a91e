"""Model cards: the ``README.md`` of a model directory, with the Hub's metadata in its front matter.

A card states what the model is, its bits/dim, what the figure is (the model's objective and its
parts) and how it was computed (from ``eval.json``, written by ``genkit eval MODEL --split test
--json eval.json``), its samples, how to load it and which plugins it needs. The data set's display
name and Hub id come from its plugin's registration.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from genkit.errors import CheckpointError, ConfigError, DivergedError
from genkit.fileio import write_text
from genkit.interfaces import Objective

CARD_NAME = "README.md"
SAMPLES_NAME = "samples.png"
EVAL_NAME = "eval.json"
#: the card line that marks a card genkit may regenerate; a card without it is the author's and is kept
GENERATED_MARK = "<!-- genkit:generated-card (delete this line to keep your edits when pushing again) -->"


def dataset_names(recipe) -> tuple[str, str | None]:
    """(the display name, the Hub data-set id or ``None``) its plugin registered for the recipe's data set."""
    info = recipe.data.spec("dataset").info
    return info.get("display_name", recipe.data.name), info.get("hub_dataset")


def mark_generated(directory: Path) -> None:
    """Leave a card genkit will (re)write: one holding only :data:`GENERATED_MARK`."""
    write_text(Path(directory) / CARD_NAME, GENERATED_MARK + "\n")


def is_generated_card(path: Path) -> bool:
    return not path.exists() or GENERATED_MARK in path.read_text(errors="replace")


def write_sample_grid(model: torch.nn.Module, path: Path, *, n: int = 16, seed: int = 0) -> Path:
    """Draw ``n`` unconditional samples at the recipe's sampling temperature (fixed seed) into a PNG grid."""
    from genkit.images import save_grid

    temperature = model.recipe.train.sample_temperature
    device = next(model.parameters(), torch.empty(0)).device
    generator = torch.Generator(device=device).manual_seed(seed)
    try:
        with torch.no_grad():
            images = model.sample(n, temperature=temperature, generator=generator)  # the model's default sampler
    except DivergedError as exc:  # outputs that are not finite: a black grid would look like the model's samples
        raise DivergedError(f"{path}: no sample grid drawn: {exc}") from None
    height = model.image_shape[0]
    return save_grid(images, path, scale=max(1, math.ceil(64 / height)))


def write_model_card(
    directory: str | Path,
    recipe,
    config: dict,
    model: torch.nn.Module | None = None,
    *,
    repo_id: str | None = None,
    license: str = "mit",
) -> Path:
    """Write ``README.md`` for the model directory holding ``config`` (its ``config.json``): Hub metadata,
    results, samples, how to load it, provenance."""
    directory = Path(directory)
    return write_text(
        directory / CARD_NAME,
        model_card(
            recipe,
            config,
            evaluation=read_evaluation(directory),
            repo_id=repo_id,
            license=license,
            objective=None if model is None else model.objective,
            image_shape=None if model is None else model.image_shape,
            has_samples=(directory / SAMPLES_NAME).is_file(),
        ),
    )


def read_evaluation(directory: Path) -> dict | None:
    """The model directory's ``eval.json``, if it has one.

    The file is what ``genkit eval MODEL --split test --json eval.json`` writes: ``split`` and
    ``bits_per_dim`` (required), ``images``, ``objective`` (what the figure is), ``method`` (how it
    was computed), ``{part}_bits_per_dim`` for each part of the objective, and with
    ``--importance-samples K`` also ``importance_samples`` and ``iw_bits_per_dim``.
    """
    path = Path(directory) / EVAL_NAME
    if not path.is_file():
        return None
    try:
        evaluation = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    return check_evaluation(evaluation, str(path), error=CheckpointError)


def check_evaluation(evaluation: Any, source: str, error: type[Exception] = ConfigError, model=None) -> dict:
    """``evaluation`` if it holds a ``split`` name and a ``bits_per_dim`` number, and (given the ``model`` it is to be
    shown with) a figure of the kind that model reports; otherwise one line naming ``source``."""
    if not isinstance(evaluation, dict):
        raise error(f"{source}: expected a JSON object, found {type(evaluation).__name__}")
    for key, kind, expected in (("split", str, "a split name"), ("bits_per_dim", (int, float), "a number")):
        value = evaluation.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise error(
                f"{source}: {key}: expected {expected}, found {value!r} "
                "(write it with genkit eval MODEL --split test --json FILE)"
            )
    found = evaluation.get("objective")
    if model is not None and isinstance(found, str) and found != model.objective.label:
        raise error(
            f"{source}: its figure is {found!r}, and this {type(model).__name__}'s is {model.objective.label!r}: the "
            "results are of another model (write them with genkit eval MODEL --split test --json FILE)"
        )
    return evaluation


def _metrics(evaluation: dict) -> list[tuple[str, float, str]]:
    """(metric id, bits/dim, how it was computed) for the ELBO and, when measured, the importance-weighted bound."""
    rows = [("bits-per-dim", float(evaluation["bits_per_dim"]), evaluation.get("method", "not recorded"))]
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


def _figure_lines(evaluation: dict, objective: Objective | None) -> list[str]:
    """What the figure is (the model's objective, else the label ``eval.json`` recorded) and, when the evaluation
    holds them, the parts that sum to it."""
    label = objective.label if objective is not None else evaluation.get("objective")
    if not isinstance(label, str):
        return []
    parts = "" if objective is None else objective.parts_text(evaluation, "_bits_per_dim")
    return [f"The figure is the {label}" + (f": {parts} bits/dim." if parts else "."), ""]


def card_metadata(recipe, *, evaluation: dict | None, repo_id: str | None, license: str):
    """The card's Hub metadata as ``huggingface_hub.ModelCardData``."""
    from huggingface_hub import EvalResult, ModelCardData

    data_name = recipe.data.name
    display, hub_dataset = dataset_names(recipe)
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
    objective: Objective | None = None,
    image_shape: tuple[int, int, int] | None = None,
    has_samples: bool = False,
) -> str:
    """The model card text: YAML front matter, then prose a reader (and the Hub page) can use."""
    from genkit.recipe import dump_recipe

    metadata = card_metadata(recipe, evaluation=evaluation, repo_id=repo_id, license=license)
    title = repo_id.split("/")[-1] if repo_id else f"{recipe.model.name}-{recipe.data.name}"
    display = dataset_names(recipe)[0]
    ref = repo_id or "path/to/this/directory"
    if image_shape:
        channels = "one channel" if image_shape[2] == 1 else f"{image_shape[2]} channels"
        shape = f" of {image_shape[0]}×{image_shape[1]} images with {channels}"
    else:
        shape = ""
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
            *_figure_lines(evaluation, objective),
            (
                f"Bits per dimension = {'the' if objective is not None and objective.exact else 'a bound on the'} "
                "negative log-likelihood in nats per dimension ÷ ln 2 (lower is better)."
            ),
            "",
        ]
    if has_samples:
        lines += [
            "## Samples",
            "",
            f"![samples]({SAMPLES_NAME})",
            "",
            f"Unconditional samples at temperature {recipe.train.sample_temperature:g}.",
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
