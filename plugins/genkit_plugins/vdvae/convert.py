"""Import the official openai/vdvae checkpoints (Child 2021) into genkit model directories.

The released files are ``torch.save`` state dicts (``*-model.th`` with a ``module.`` prefix from
DistributedDataParallel, ``*-model-ema.th`` without), read by :func:`genkit.torchfiles.read_state_dict`
(``weights_only=True``, so no pickled code runs). genkit's VDVAE keeps the reference's module names,
so the key mapping is the identity once the prefix is gone; every key and shape is still checked,
and a difference fails naming the keys.

The released FFHQ-1024 checkpoint has two encoder blocks fewer than the published hyperparameters
(an open upstream issue). When the only difference is missing encoder blocks, the converter looks
for the single shorter encoder string — one ``RxN`` token with a smaller N — whose every key and
shape matches the file, and uses it, saying so.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import torch

from genkit.errors import CheckpointError
from genkit.recipe import Recipe
from genkit.torchfiles import read_state_dict
from genkit_plugins.vdvae.blockstr import parse_blocks

ENCODER_BLOCK = re.compile(r"^encoder\.enc_blocks\.(\d+)\.")


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in an official ``.th`` file under genkit's names: the reference's own, without the prefix
    DistributedDataParallel adds."""
    return read_state_dict(path, "an official openai/vdvae *-model.th or *-model-ema.th file")


def expected_shapes(recipe: Recipe) -> dict[str, tuple[int, ...]]:
    """Every tensor the recipe's model holds and its shape, computed on the meta device (nothing allocated)."""
    from genkit.models import build_model

    return {k: tuple(v.shape) for k, v in build_model(recipe, "meta").state_dict().items()}


def differences(
    state: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]]
) -> tuple[list[str], list[str], list[str]]:
    """(missing keys, unexpected keys, 'key: file shape vs model shape' lines)."""
    missing = [k for k in shapes if k not in state]
    unexpected = [k for k in state if k not in shapes]
    mis_shaped = [
        f"{k}: {tuple(state[k].shape)} in the file, {shapes[k]} in the model"
        for k in shapes
        if k in state and tuple(state[k].shape) != shapes[k]
    ]
    return missing, unexpected, mis_shaped


def summarise(keys: list[str]) -> str:
    """Keys grouped by module (``encoder.enc_blocks.68.*``) so a long list stays one readable line."""
    groups: dict[str, int] = {}
    for key in keys:
        group = key.rsplit(".", 2)[0] + ".*" if key.count(".") >= 3 else key
        groups[group] = groups.get(group, 0) + 1
    return ", ".join(f"{g} ({n} tensors)" if n > 1 else g for g, n in groups.items())


def infer_encoder_string(state: dict[str, torch.Tensor], recipe: Recipe) -> str | None:
    """The one encoder string with a single ``RxN`` token shortened that matches the file exactly, else ``None``."""
    found = {int(m.group(1)) for k in state if (m := ENCODER_BLOCK.match(k))}
    settings = recipe.model.settings
    tokens = settings.enc_blocks.split(",")
    short = len(parse_blocks(settings.enc_blocks, factor_letter="d")) - len(found)
    if short <= 0:
        return None
    matches = []
    for i, token in enumerate(tokens):
        if "x" not in token:
            continue
        res, count = (int(p) for p in token.split("x"))
        if count - short < 1:
            continue
        candidate = ",".join(tokens[:i] + [f"{res}x{count - short}"] + tokens[i + 1 :])
        try:
            trial = attrs.evolve(
                recipe, model=attrs.evolve(recipe.model, settings=attrs.evolve(settings, enc_blocks=candidate))
            )
        except (ValueError, TypeError):
            continue
        if not any(differences(state, expected_shapes(trial))):
            matches.append(candidate)
    return matches[0] if len(matches) == 1 else None


def convert_official(
    path: str | Path, recipe: Recipe, *, infer_encoder: bool = True
) -> tuple[Recipe, dict[str, torch.Tensor], list[str]]:
    """(the recipe the file matches, its state dict under genkit names, notes for the user); fails naming any
    difference."""
    state = read_official(path)
    notes: list[str] = []
    missing, unexpected, mis_shaped = differences(state, expected_shapes(recipe))
    if missing and not unexpected and not mis_shaped and infer_encoder and all(ENCODER_BLOCK.match(k) for k in missing):
        candidate = infer_encoder_string(state, recipe)
        if candidate is not None:
            notes.append(
                f"{path}: lacks {summarise(missing)} of the recipe's enc_blocks; using enc_blocks = {candidate!r}, "
                "which matches every key and shape"
            )
            settings = attrs.evolve(recipe.model.settings, enc_blocks=candidate)
            recipe = attrs.evolve(recipe, model=attrs.evolve(recipe.model, settings=settings))
            missing = []
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors: {summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensors: {summarise(unexpected)}")
    if mis_shaped:
        problems.append(
            f"{len(mis_shaped)} mis-shaped: " + "; ".join(mis_shaped[:5]) + (" …" if len(mis_shaped) > 5 else "")
        )
    if problems:
        raise CheckpointError(f"{path} does not match the recipe's model: " + "; ".join(problems))
    return recipe, dict(state), notes
