"""Recipes: TOML files that name plugins and their settings, resolved once into frozen attrs classes.

A recipe has four tables::

    [model]   name = "<model plugin>" (required), then its settings (and nested component tables)
    [data]    name = "digits", then the data-set plugin's settings
    [train]   the training engine's settings (:class:`TrainConfig`)
    [eval]    evaluation settings (:class:`EvalConfig`)

A recipe may start from another: ``extends = "cifar10.toml"`` (a path relative to the recipe's
folder) takes every table of that recipe and lets this one override keys (:func:`genkit.recipefiles.merge_recipes`).

``--set a.b=value`` overrides any key before validation; the value is read as a TOML value
(``3``, ``1e-4``, ``true``, ``[1, 2]``, ``"text"``) and otherwise taken as a bare string.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import attrs
import tomli_w

from genkit.components import ComponentRef, component, resolve_defaults
from genkit.errors import ConfigError, RecipeError
from genkit.fileio import write_text
from genkit.recipefiles import read_recipe_sources, source_of
from genkit.recompute import SYNTAX, parse_policy
from genkit.schema import check, in_range, seed_field, structure, unstructure


@attrs.frozen
class TrainConfig:
    """Settings of the training engine. Defaults are the flagship CIFAR-10 recipe's values where it has one.

    The learning rate at update ``s`` (counting from 0) is ``lr · f(s)`` with ``f(s) = s / warmup_iters``
    during the warm-up, then ``max(lr_decay ** (s − max(warmup_iters, lr_decay_after)), lr_floor / lr)``:
    constant when ``lr_decay = 1``, per-step exponential decay otherwise, held until
    ``lr_decay_after`` first (:func:`genkit.engine.step.lr_factor`). ``grad_clip = 0`` switches
    clipping off; ``skip_threshold = 0`` switches off skipping updates for a large gradient norm
    (updates with a non-finite loss or gradient are always skipped).

    ``batch_size`` is the micro-batch of one process; ``accumulate`` micro-batches make one update, so an
    update sees ``batch_size · accumulate · processes`` images. ``activation_checkpointing`` names the
    units recomputed in the backward pass (:mod:`genkit.recompute`).
    """

    steps: int = attrs.field(default=1000, validator=in_range(0))
    batch_size: int = attrs.field(default=16, validator=in_range(1))  # images per micro-batch and process
    accumulate: int = attrs.field(default=1, validator=in_range(1))  # micro-batches per update
    # images per update over every process; sets train.accumulate for the number of processes (updates_per_process)
    global_batch: int | None = attrs.field(default=None, validator=in_range(1))
    lr: float = attrs.field(default=2e-4, validator=in_range(0, low_open=True))
    weight_decay: float = attrs.field(default=0.01, validator=in_range(0))
    betas: tuple[float, float] = attrs.field(default=(0.9, 0.9), validator=in_range(0, 1, high_open=True))
    eps: float = attrs.field(default=1e-8, validator=in_range(0, low_open=True))
    warmup_iters: int = attrs.field(default=100, validator=in_range(0))
    lr_decay: float = attrs.field(default=1.0, validator=in_range(0, 1, low_open=True))
    lr_decay_after: int = attrs.field(default=0, validator=in_range(0))
    lr_floor: float = attrs.field(default=0.0, validator=in_range(0))
    grad_clip: float = attrs.field(default=200.0, validator=in_range(0))  # 0: no clipping
    skip_threshold: float = attrs.field(default=400.0)  # <= 0 never skips for size; non-finite losses always skip
    ema_rate: float = attrs.field(default=0.9999, validator=in_range(0, 1))
    init_images: int = attrs.field(default=128, validator=in_range(1))  # for a model's data-dependent initialisation
    seed: int = seed_field()
    # "mean": every random variable of the objective (latents, dequantization noise) at its mean, so a step is a
    # deterministic function of the weights and the images: for checking that W processes of batch B take the
    # update one process of batch W·B takes. The objective's gradient is then biased: not for real training.
    latents: Literal["sample", "mean"] = "sample"
    dtype: Literal["float32", "bfloat16"] = "float32"
    compile: bool = False
    channels_last: bool = False
    cuda_graph: bool = False  # capture the whole step in one CUDA graph (one process on one CUDA device)
    activation_checkpointing: str = "off"
    num_workers: int = attrs.field(default=2, validator=in_range(0))
    log_every: int = attrs.field(default=50, validator=in_range(1))
    eval_every: int = attrs.field(default=1000, validator=in_range(1))
    checkpoint_every: int = attrs.field(default=1000, validator=in_range(1))
    keep_checkpoints: int = attrs.field(default=3, validator=in_range(1))
    n_samples: int = attrs.field(default=64, validator=in_range(1))
    sample_temperature: float = attrs.field(default=1.0, validator=in_range(0))
    out_dir: str = "runs"

    def __attrs_post_init__(self) -> None:
        check(self.lr_floor <= self.lr, "lr_floor", f"a floor no higher than lr = {self.lr:g}", self.lr_floor)
        try:
            recomputes = not parse_policy(self.activation_checkpointing).off
        except ValueError:
            check(False, "activation_checkpointing", SYNTAX, self.activation_checkpointing)
        # the recomputation restores the generators' states, which a captured CUDA graph cannot replay
        check(
            not (recomputes and self.cuda_graph),
            "activation_checkpointing",
            '"off" when train.cuda_graph = true (a captured step cannot recompute with the generator states restored)',
            self.activation_checkpointing,
        )
        if self.global_batch is not None:
            check(
                self.global_batch % self.batch_size == 0,
                "global_batch",
                f"a multiple of train.batch_size = {self.batch_size} (the images of one micro-batch)",
                self.global_batch,
            )
            check(
                self.accumulate == 1,
                "accumulate",
                f"no value: train.global_batch = {self.global_batch} sets it for the number of processes",
                self.accumulate,
            )

    def for_processes(self, world_size: int) -> TrainConfig:
        """These settings on ``world_size`` processes: ``accumulate`` set so that an update sees ``global_batch``
        (which the result leaves unset: it holds in ``batch_size × accumulate × world_size``).

        Without ``global_batch`` an update sees ``batch_size × accumulate × world_size`` images and nothing
        changes. A ``global_batch`` that the processes' micro-batches cannot reach exactly is a
        :class:`ConfigError` naming the numbers.
        """
        if self.global_batch is None:
            return self
        per_round = self.batch_size * world_size
        if self.global_batch % per_round:
            raise ConfigError(
                f"train.global_batch = {self.global_batch} images per update is not a whole number of rounds of "
                f"train.batch_size = {self.batch_size} on each of {world_size} processes: choose a batch_size and a "
                "number of processes whose product divides it"
            )
        return attrs.evolve(self, accumulate=self.global_batch // per_round, global_batch=None)


@attrs.frozen
class EvalConfig:
    """Settings of evaluation (``genkit eval`` and the periodic validation during training)."""

    split: Literal["train", "validation", "test"] = "test"
    batch_size: int = attrs.field(default=64, validator=in_range(1))
    max_images: int | None = attrs.field(default=None, validator=in_range(1))
    validation_max_images: int | None = attrs.field(default=None, validator=in_range(1))
    importance_samples: int = attrs.field(default=0, validator=in_range(0))


@attrs.frozen
class Recipe:
    """A fully validated recipe. ``source`` is the file it came from (not part of the saved recipe)."""

    model: ComponentRef = component("model")
    data: ComponentRef = component("dataset", "digits")
    train: TrainConfig = attrs.field(factory=TrainConfig)
    eval: EvalConfig = attrs.field(factory=EvalConfig)
    source: str | None = attrs.field(default=None, eq=False, metadata={"internal": True})
    #: the ``--set`` options applied to ``source`` (not part of the saved recipe either)
    overrides: tuple[str, ...] = attrs.field(default=(), eq=False, metadata={"internal": True})

    @property
    def name(self) -> str:
        return Path(self.source).stem if self.source else "recipe"

    def origin(self, table: str | None = None) -> str:
        """Where the recipe (or its ``table``) came from, for messages: its file and the ``--set`` options that
        changed it."""
        changed = [text for text in self.overrides if table is None or parse_override(text)[0][0] == table]
        return " with ".join([self.source or "the recipe", *(f"--set {text!r}" for text in changed)])


#: top-level keys genkit writes itself (the recipe's file and the provenance of a saved recipe): never set
INTERNAL_KEYS = ("source", "genkit", "plugins")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value)."""
    key, sep, raw = text.partition("=")
    keys = [part.strip() for part in key.strip().split(".")]
    if not sep or not all(keys):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.lr=1e-4")
    if keys[0] in INTERNAL_KEYS:
        raise ConfigError(
            f"--set {text!r}: {keys[0]} is written by genkit, not a setting; "
            "settings are the keys of [model], [data], [train] and [eval]"
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return keys, value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    raw = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if isinstance(child, str) and i >= 0:  # `posterior = "x"` shorthand, now given settings
                child = node[key] = {"name": child}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {'.'.join(keys[: i + 1])} is a value, not a table")
            node = child
        node[keys[-1]] = value
    return raw


def recipe_from_dict(
    raw: dict, *, file: str | None = None, overrides: list[str] = (), sources: dict[str, str] | None = None
) -> Recipe:
    """Validate the recipe ``raw`` (read from ``file``) with ``overrides`` applied.

    An error about a value an override set names that ``--set`` option instead of the file; an error
    about a value of the file that only the overrides made wrong (a check across keys, such as
    blocks that no longer fit a ``--set model.image_size``) names the file and the overrides. An error
    about a value that a recipe ``file`` extends set (``sources``: :func:`read_recipe_sources`) names
    that recipe.
    """
    overrides = list(overrides)
    try:
        recipe = _structure(raw, file, overrides)
    except ConfigError as exc:
        override = override_of(exc.key, overrides)
        if override is not None:
            raise exc.blamed_on(f"--set {override!r}") from None
        blamed = exc
        origin = source_of(exc.key, sources or {})
        if origin is not None and origin != file:
            blamed = exc.blamed_on(f"{origin} (extended by {file})")
        others = [overrides[:i] + overrides[i + 1 :] for i in range(len(overrides))]
        involved = [text for text, rest in zip(overrides, others) if not _fails_alike(raw, file, rest, exc)]
        if not involved:
            raise blamed from None
        raise blamed.noting(" (with " + " ".join(f"--set {text!r}" for text in involved) + ")") from None
    return attrs.evolve(resolve_defaults(recipe), source=file, overrides=tuple(overrides))


def _structure(raw: dict, file: str | None, overrides: list[str]) -> Recipe:
    raw = apply_overrides(raw, overrides)
    raw.pop("plugins", None)  # provenance written by save_recipe; informational on reload
    raw.pop("genkit", None)
    return structure(Recipe, raw, path="", file=file)


def _fails_alike(raw: dict, file: str | None, overrides: list[str], error: ConfigError) -> bool:
    """Whether the recipe with only ``overrides`` fails with the same ``error``: if not, the override left out is
    part of why."""
    try:
        _structure(raw, file, overrides)
    except ConfigError as exc:
        return str(exc) == str(error)
    return False


def override_of(key: str | None, overrides: list[str]) -> str | None:
    """The last of ``overrides`` that set the value at ``key`` (a dotted path, ``[i]`` for array items) or a table
    holding it."""
    if key is None:
        return None
    path = re.sub(r"\[\d+\]", "", key)
    for text in reversed(list(overrides)):
        keys, _ = parse_override(text)
        set_path = ".".join(keys)
        if path == set_path or path.startswith(set_path + ".") or set_path.startswith(path + "."):
            return text
    return None


def load_recipe(path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read (with the recipes it extends), override, validate and resolve a recipe file."""
    raw, sources = read_recipe_sources(path)
    return recipe_from_dict(raw, file=str(path), overrides=overrides, sources=sources)


def recipe_to_dict(recipe: Recipe, *, provenance: bool = True) -> dict:
    """The resolved recipe as plain data; with ``provenance``, every plugin it uses with its provider and version."""
    out = unstructure(recipe)
    out.pop("source", None)
    if provenance:
        from genkit.registry import core_version

        out["genkit"] = {"version": core_version()}
        out["plugins"] = plugin_provenance(recipe)
    return out


def plugin_provenance(recipe: Recipe) -> list[dict]:
    """Every component reference in the recipe, depth first, as {kind, name, provider, version}."""
    found: list[dict] = []

    def walk(obj: Any) -> None:
        if not attrs.has(type(obj)):
            return
        for field in attrs.fields(type(obj)):
            value = getattr(obj, field.name)
            kind = field.metadata.get("plugin_kind")
            if kind is not None and isinstance(value, ComponentRef):
                spec = value.spec(kind)
                entry = {"kind": kind, "name": spec.name, "provider": spec.provider, "version": spec.version}
                if entry not in found:
                    found.append(entry)
                walk(value.settings)
            else:
                walk(value)

    walk(recipe)
    return found


def dump_recipe(recipe: Recipe) -> str:
    return tomli_w.dumps(recipe_to_dict(recipe))


def save_recipe(recipe: Recipe, directory: str | Path, filename: str = "recipe.toml") -> Path:
    """Write the resolved recipe (with plugin provenance) into ``directory``, atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return write_text(directory / filename, dump_recipe(recipe))


__all__ = [
    "EvalConfig",
    "Recipe",
    "TrainConfig",
    "apply_overrides",
    "check",
    "dump_recipe",
    "load_recipe",
    "recipe_from_dict",
    "recipe_to_dict",
    "save_recipe",
    "RecipeError",
]
