"""Import checkpoints of the widely used PyTorch port of PixelCNN++ (pclucas14/pixel-cnn-pp).

The port saves ``model.state_dict()`` with ``torch.save``; trained under ``nn.DataParallel`` every
key carries a ``module.`` prefix. Its layers wrap a torch layer (``.conv``, ``.deconv``, ``.lin_a``)
in ``torch.nn.utils.weight_norm`` (parameters ``weight_g``, ``weight_v``, ``bias``), except that
before April 2019 (commit 16c8b2f, ``==`` for ``=``) the shifted convolutions had none (``weight``,
``bias``); both are read. genkit's module paths are the port's, its weight-normalised operations
named ``conv``, ``deconv`` and ``linear`` (the port's ``lin_a``), so a key maps to
``network.<module path>.<operation>.{V, g, b}``:

* convolutions and ``nin`` are normalised per output channel, as genkit's: ``V`` and ``g`` copy
  over unchanged;
* the port's transposed convolutions are normalised per *input* channel (``weight_norm``'s ``dim=0``
  on a ``ConvTranspose2d``, whose axis 0 is the input), genkit's per output channel as
  openai/pixel-cnn: the effective weight ``W = g·v/‖v‖`` is computed (in float64) and stored as
  ``V = W``, ``g = ‖W‖`` per output channel — the same layer, parametrised as the official code;
* a convolution without weight norm becomes ``V = W``, ``g = ‖W‖``.

Files are read by :func:`genkit.torchfiles.read_state_dict` (``weights_only=True``, so no pickled
code runs). Every key and shape is checked against the recipe's model, and a difference fails in one
line naming the keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from genkit.errors import CheckpointError
from genkit.recipe import Recipe
from genkit.torchfiles import read_state_dict

EXPECTED = "a model.state_dict() saved by pclucas14/pixel-cnn-pp (*.pth or *.th)"
OPERATIONS = {"conv": "conv", "deconv": "deconv", "lin_a": "linear"}  # the port's wrapped layer -> genkit's
#: <module path>.<wrapped layer>.<parameter>
KEY = re.compile(r"^(?P<module>.+)\.(?P<inner>conv|deconv|lin_a)\.(?P<param>weight_g|weight_v|weight|bias)$")
UP_BLOCK = re.compile(r"^up_layers\.0\.u_stream\.(\d+)\.")


def _norm(w: torch.Tensor, axis: int) -> torch.Tensor:
    """‖w‖ over every axis but ``axis``: one value per index of that axis."""
    return torch.linalg.vector_norm(w, dim=[d for d in range(w.dim()) if d != axis])


def _layer(path: Path, module: str, inner: str, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """genkit's ``V``, ``g``, ``b`` of one of the port's layers."""
    where = f"{path}: {module}.{inner}"
    if "bias" not in params:
        raise CheckpointError(f"{where}.bias is missing")
    if "weight" in params:
        weight = params["weight"]
        if weight.dim() < 2:
            raise CheckpointError(
                f"{where}.weight has shape {tuple(weight.shape)}; expected the weight of a layer (2 or more axes)"
            )
    elif "weight_g" in params and "weight_v" in params:
        g, v = params["weight_g"], params["weight_v"]
        if v.dim() < 2 or g.numel() != v.shape[0]:
            raise CheckpointError(
                f"{where}.weight_g has shape {tuple(g.shape)} and {module}.{inner}.weight_v {tuple(v.shape)}; weight "
                "norm keeps one g per index of the first axis of a weight of 2 or more axes"
            )
        if inner != "deconv":  # normalised per output channel (axis 0), as genkit: copied unchanged
            return {"V": v, "g": g.reshape(-1), "b": params["bias"]}
        v64 = v.double()
        weight = (v64 * (g.double().reshape(-1) / _norm(v64, 0)).reshape(-1, *[1] * (v.dim() - 1))).to(v.dtype)
    else:
        raise CheckpointError(f"{where}: expected weight_g and weight_v (or weight), found {', '.join(params)}")
    out_axis = 1 if inner == "deconv" else 0
    return {"V": weight, "g": _norm(weight.double(), out_axis).to(weight.dtype), "b": params["bias"]}


def to_genkit(state: dict[str, torch.Tensor], path: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The port's tensors under genkit's names (``network.<module path>.conv.V`` …)."""
    grouped: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        match = KEY.match(key)
        if match is None:
            raise CheckpointError(
                f"{path}: unexpected tensor {key!r} (not a weight-normalised or plain conv, deconv or nin parameter "
                "of pclucas14/pixel-cnn-pp)"
            )
        grouped.setdefault((match["module"], match["inner"]), {})[match["param"]] = value
    return {
        f"network.{module}.{OPERATIONS[inner]}.{name}": tensor
        for (module, inner), params in grouped.items()
        for name, tensor in _layer(Path(path), module, inner, params).items()
    }


def architecture(state: dict[str, torch.Tensor]) -> dict[str, int] | None:
    """The settings the port's file was trained with, read off its shapes (``None`` if it is not recognised)."""
    first = state.get("u_init.conv.weight_v", state.get("u_init.conv.weight"))
    out = state.get("nin_out.lin_a.weight_v")
    if first is None or out is None:
        return None
    channels = first.shape[1] - 1
    return {
        "nr_resnet": len({m.group(1) for k in state if (m := UP_BLOCK.match(k))}),
        "nr_filters": first.shape[0],
        "nr_logistic_mix": out.shape[0] // (10 if channels == 3 else 3),
        "image_channels": channels,
    }


def _keys(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def convert_checkpoint(path: str | Path, recipe: Recipe) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the checkpoint's tensors under genkit's names, notes); fails in one line naming any difference from the
    recipe's model."""
    from genkit.models import build_model

    raw = read_state_dict(path, EXPECTED)
    state = to_genkit(raw, path)
    shapes = {k: tuple(v.shape) for k, v in build_model(recipe, "meta").state_dict().items()}
    missing = [k for k in shapes if k not in state]
    unexpected = [k for k in state if k not in shapes]
    mis_shaped = [
        f"{k} is {tuple(state[k].shape)} in the file, {shapes[k]} in the model"
        for k in shapes
        if k in state and tuple(state[k].shape) != shapes[k]
    ]
    problems = [
        f"{label} {len(keys)} tensors: {_keys(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped))
        if keys
    ]
    if problems:
        found = architecture(raw)
        settings = recipe.model.settings
        hint = ""
        if found and any(getattr(settings, k) != v for k, v in found.items()):
            hint = "; the file looks like " + ", ".join(f"model.{k} = {v}" for k, v in found.items())
        raise CheckpointError(f"{path} does not match the recipe's model: {'; '.join(problems)}{hint}")
    notes = []
    if any(k.endswith(".conv.weight") for k in raw):
        notes.append(f"{path}: its shifted convolutions have no weight norm (the port before April 2019); g = ‖W‖")
    return state, notes
