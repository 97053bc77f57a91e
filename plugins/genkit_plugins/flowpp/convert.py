"""Import the official Flow++ model's variables (aravindsrinivas/flowpp, TensorFlow) into genkit tensors.

A source is an ``.npz`` of TensorFlow variable names (without ``:0``) to arrays, or a TensorFlow
checkpoint (needs TensorFlow, the ``tensorflow`` extra). The names follow the official templates in
the order they are created: the dequantizer's ``context_proc`` and steps first (``Norm``,
``Pointwise``, ``MixLogisticAttnCoupling``, then ``_1``, ``_2`` …), then the main flow's steps
continuing the count (``Norm_4`` … in the CIFAR-10 model). Layouts change as follows:

==================  ==========================  ==========================
what                TensorFlow                  genkit
==================  ==========================  ==========================
3×3 convolution     ``W (kh, kw, in, out)``     ``weight (out, in, kh, kw)``
``nin`` / dense     ``W (in, out)``             ``weight (out, in, 1, 1)``
LayerNorm           ``g (1, 1, 1, F)``          ``g (F,)``
position embedding  ``pos_emb (H, W, F)``       ``pos_emb (F, H, W)``
Norm                ``norm{i}/g (H, W, C)``     ``g (2, C, H, W)``, halves stacked
Pointwise           ``W{i} (C_in, C_out)``      ``weight (2, C_out, C_in)``
==================  ==========================  ==========================

When the source holds the exponential moving averages (``<name>/ExponentialMovingAverage``, which
the official evaluation and sampling use), they are taken unless ``ema=False``. Optimizer slots are
ignored; any other difference from the recipe's model fails naming the variable. The official
variables map only onto the official layers: a recipe that names another ``norm``, ``pointwise``,
``preprocess``, stage split or squeeze, or dequantizer split is refused before anything is read,
naming the setting and the component it needs.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np
import torch

from genkit.errors import CheckpointError, first_line
from genkit.recipe import Recipe
from genkit_plugins.flowpp.couplings import AffineCoupling, MixtureCDFCoupling
from genkit_plugins.flowpp.datainit import Conv
from genkit_plugins.flowpp.dequantizers import VariationalDequantizer, VariationalSettings
from genkit_plugins.flowpp.flow import SplitStage, parse_stages
from genkit_plugins.flowpp.network import LayerNorm

EMA_SUFFIX = "/ExponentialMovingAverage"
#: variables of a training checkpoint that are not the model's
IGNORED = re.compile(r"(/Adam(_1)?$|^beta[12]_power(_\d+)?$|^global_step$|" + re.escape(EMA_SUFFIX) + "$)")
#: the official template name of each coupling genkit can convert
OFFICIAL_COUPLINGS = {MixtureCDFCoupling: "MixLogisticAttnCoupling", AffineCoupling: "AffineAttnCoupling"}
INSTALL_TENSORFLOW = "pip install 'genkit-torch[tensorflow]'"
#: the model settings that choose a layer, and the component the official variables map onto
OFFICIAL_COMPONENTS = {"norm": "norm", "pointwise": "pointwise", "preprocess": "logit"}
#: the official code's splits (``NAME:N`` in a stage string) and squeezes (``NAME``)
OFFICIAL_SPLITS, OFFICIAL_SQUEEZES = ("checkerboard", "channel"), ("squeeze",)


@attrs.frozen
class Source:
    """Where one genkit tensor comes from: TensorFlow variables (two: the halves, stacked) and their layout."""

    names: tuple[str, ...]
    layout: str


# --- layouts: TensorFlow array(s) -> genkit tensor, and genkit shape -> TensorFlow shape --------------

TO_GENKIT = {
    "conv": lambda a: a.transpose(3, 2, 0, 1),
    "dense": lambda a: a.T[:, :, None, None],
    "vector": lambda a: a,
    "layernorm": lambda a: a.reshape(-1),
    "position": lambda a: a.transpose(2, 0, 1),
    "norm": lambda a: a.transpose(2, 0, 1),
    "pointwise": lambda a: a.T,
}
OFFICIAL_SHAPE = {
    "conv": lambda s: (s[2], s[3], s[1], s[0]),
    "dense": lambda s: (s[1], s[0]),
    "vector": lambda s: s,
    "layernorm": lambda s: (1, 1, 1, s[0]),
    "position": lambda s: (s[1], s[2], s[0]),
    "norm": lambda s: (s[2], s[3], s[1]),
    "pointwise": lambda s: (s[2], s[1]),
}


def _layer_sources(module: torch.nn.Module, prefix: str, scope: str) -> dict[str, Source]:
    """The sources of a conditioning or context network's tensors: genkit's module path mirrors the official scopes."""
    sources = {}
    for name, layer in module.named_modules():
        path = re.sub(r"^net\.", "", name)
        path = re.sub(r"(^|\.)blocks\.(\d+)", lambda m: f"{m.group(1)}block{m.group(2)}", path).replace(".", "/")
        if isinstance(layer, Conv):
            kind = "conv" if layer.weight.shape[-1] > 1 else "dense"
            sources[f"{prefix}{name}.weight"] = Source((f"{scope}/{path}/W",), kind)
            sources[f"{prefix}{name}.bias"] = Source((f"{scope}/{path}/b",), "vector")
        elif isinstance(layer, LayerNorm):
            for p in ("g", "b"):
                sources[f"{prefix}{name}.{p}"] = Source((f"{scope}/{path}/{p}",), "layernorm")
    return sources


def _refuse(found: str, needs: str) -> None:
    raise CheckpointError(
        f"the official variables map only onto the official layers: {found}; the conversion needs {needs}"
    )


def check_official(model: torch.nn.Module) -> None:
    """Refuse, in one line naming the setting, a model whose layers, splits or squeezes are not the official ones."""
    config = model.config
    for setting, official in OFFICIAL_COMPONENTS.items():
        name = getattr(config, setting).name
        if name != official:
            _refuse(f"model.{setting} is {name!r}", repr(official))
    for stage in parse_stages(config.stages):
        official = OFFICIAL_SPLITS if stage.steps else OFFICIAL_SQUEEZES
        if stage.name not in official:
            _refuse(f"model.stages names the {stage.kind} {stage.name!r}", " or ".join(map(repr, official)))
    if isinstance(model.dequantizer, VariationalDequantizer):
        split = (config.dequantizer.settings or VariationalSettings()).split.name
        if split != OFFICIAL_SPLITS[0]:
            _refuse(f"model.dequantizer.split is {split!r}", repr(OFFICIAL_SPLITS[0]))


def official_sources(model: torch.nn.Module) -> dict[str, Source]:
    """Every tensor of a ``flowpp`` model and the official variables it comes from."""
    check_official(model)
    sources: dict[str, Source] = {}
    steps = []
    if isinstance(model.dequantizer, VariationalDequantizer):
        context = model.dequantizer.context
        for name, source in _layer_sources(context, "dequantizer.context.", "context_proc").items():
            sources[name] = attrs.evolve(source, names=(source.names[0].replace("/block", "/c"),))
        steps += [(f"dequantizer.steps.{i}.", step) for i, step in enumerate(model.dequantizer.steps)]
    elif any(True for _ in model.dequantizer.parameters()):
        raise CheckpointError(
            f"the official code has no dequantizer like {type(model.dequantizer).__name__}: "
            "use 'variational' or 'uniform'"
        )
    for s, stage in enumerate(model.flow.stages):
        if isinstance(stage, SplitStage):
            steps += [(f"flow.stages.{s}.steps.{i}.", step) for i, step in enumerate(stage.steps)]
    for n, (prefix, step) in enumerate(steps):
        suffix = f"_{n}" if n else ""
        coupling = OFFICIAL_COUPLINGS.get(type(step.coupling))
        if coupling is None:
            raise CheckpointError(
                f"the official code has no coupling like {type(step.coupling).__name__}: use 'mlc' or 'affine'"
            )
        for p in ("g", "b"):
            sources[f"{prefix}norm.{p}"] = Source((f"Norm{suffix}/norm0/{p}", f"Norm{suffix}/norm1/{p}"), "norm")
        sources[f"{prefix}pointwise.weight"] = Source((f"Pointwise{suffix}/W0", f"Pointwise{suffix}/W1"), "pointwise")
        sources[f"{prefix}coupling.net.pos_emb"] = Source((f"{coupling}{suffix}/pos_emb",), "position")
        sources.update(_layer_sources(step.coupling, f"{prefix}coupling.", f"{coupling}{suffix}"))
    return sources


# --- reading the official variables ---------------------------------------------------------------


def read_variables(path: str | Path) -> Mapping[str, np.ndarray]:
    """The variables of an ``.npz`` file or a TensorFlow checkpoint, by name."""
    path = Path(path)
    if path.suffix == ".npz":
        if not path.is_file():
            raise CheckpointError(f"{path}: file not found")
        try:
            data = np.load(path, allow_pickle=False)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise CheckpointError(
                f"{path}: not a readable .npz of TensorFlow variable names to arrays ({type(exc).__name__})"
            ) from None
        with data:
            return {name: _read_variable(data, name, path) for name in data.files}
    return read_tensorflow_checkpoint(path)


def _read_variable(data, name: str, path: Path) -> np.ndarray:
    """One variable of an open ``.npz``: a damaged one (its bytes fail their checksum, its array header is broken,
    it is cut short) fails naming it."""
    try:
        return data[name]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(
            f"{path}: variable {name!r} is damaged ({type(exc).__name__}: {first_line(exc)}); the file was altered or "
            "cut short"
        ) from None


def read_tensorflow_checkpoint(path: Path) -> Mapping[str, np.ndarray]:
    """The variables of a TensorFlow checkpoint (a prefix like ``model-300000``, or its directory)."""
    index = path.with_name(path.name + ".index")
    if not (index.is_file() or (path / "checkpoint").is_file()):
        raise CheckpointError(
            f"{path}: neither an .npz of TensorFlow variable names to arrays nor a TensorFlow checkpoint "
            f"(a prefix with {index.name} beside it, or a folder holding a 'checkpoint' file)"
        )
    try:
        import tensorflow as tf
    except ImportError:
        raise CheckpointError(
            f"{path}: reading a TensorFlow checkpoint needs TensorFlow, which is not installed: {INSTALL_TENSORFLOW} "
            "(or pass an .npz of variable names to arrays)"
        ) from None
    try:
        reader = tf.train.load_checkpoint(str(path))
    except (ValueError, OSError, tf.errors.OpError) as exc:
        raise CheckpointError(f"{path}: not a readable TensorFlow checkpoint ({type(exc).__name__})") from None
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def convert_variables(
    variables: Mapping[str, np.ndarray], model: torch.nn.Module, source: str, *, ema: bool = True
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(genkit state dict, notes): every tensor of ``model`` (shapes only are read) from the official ``variables``."""
    sources = official_sources(model)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if set(sources) != set(shapes):  # a coupling or dequantizer plugin this converter does not know the layers of
        unknown = sorted(set(shapes) ^ set(sources))
        raise CheckpointError(f"the official code has no counterpart of genkit tensor {unknown[0]!r}")
    has_ema = any(name.endswith(EMA_SUFFIX) for name in variables)
    use_ema = ema and has_ema
    notes = [f"{source}: using the exponential moving averages of the weights"] if use_ema else []
    state, used = {}, set()
    for key, src in sources.items():
        arrays = []
        expected = OFFICIAL_SHAPE[src.layout](shapes[key])
        for name in src.names:
            stored = name + EMA_SUFFIX if use_ema else name
            if stored not in variables:
                raise CheckpointError(f"{source}: missing variable {stored!r} (for {key}); the recipe's model needs it")
            array = np.asarray(variables[stored])
            if array.dtype.kind != "f":  # integers, booleans, complex or text are no weights: never cast silently
                raise CheckpointError(
                    f"{source}: variable {stored!r} is {array.dtype}, not floating point; expected the official "
                    "model's float32 weights"
                )
            if tuple(array.shape) != expected:
                raise CheckpointError(
                    f"{source}: variable {stored!r} has shape {tuple(array.shape)}, "
                    f"the recipe's model expects {expected}"
                )
            arrays.append(TO_GENKIT[src.layout](array))
            used.update((name, stored))
        value = np.stack(arrays) if len(arrays) > 1 else arrays[0]
        if value.dtype not in (np.float32, np.float64):  # float16: widened, every value kept
            value = value.astype(np.float32)
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
    unexpected = sorted(n for n in variables if n not in used and not IGNORED.search(n))
    if unexpected:
        more = f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""
        raise CheckpointError(
            f"{source}: unexpected variable {unexpected[0]!r}{more}; the recipe's model has no such layer"
        )
    return state, notes


def convert_official(
    path: str | Path, recipe: Recipe, *, ema: bool = True
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(genkit state dict, notes) of the official variables at ``path`` for the recipe's ``flowpp`` model."""
    from genkit.models import build_model

    model = build_model(recipe, "meta")
    check_official(model)  # before reading what may be a large checkpoint
    return convert_variables(read_variables(path), model, str(path), ema=ema)
