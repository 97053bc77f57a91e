"""Latents files: a model's :class:`genkit.latents.Latents` as safetensors, with what each tensor is in its metadata.

The file holds one tensor per entry of the model's latent layout, ``(N, *shape)`` for N images, in
the model's dtype. Its metadata (strings, as safetensors keeps them)::

    format         genkit-latents            format_version   1
    model_id       sha256:…  (the weights'; see model_id)
    model          what the model was loaded from (a path or a Hub id, informative only)
    kind           posterior mean | posterior draw | flow z
    images         N
    <tensor name>  {"layer": 3, "resolution": 8, "kind": "posterior mean"}   (JSON, one entry per tensor)

Reading checks all of it against the model that is to decode the file, and stops with one line
naming the file and the tensor or key that does not fit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from genkit.capabilities import Encodable, require
from genkit.errors import DataError, first_line, is_out_of_memory
from genkit.fileio import atomic_write
from genkit.latents import KINDS, Latents, check_latents

FORMAT, FORMAT_VERSION = "genkit-latents", "1"


def model_id(model: torch.nn.Module) -> str:
    """``sha256:…`` of the model's weights (names, shapes and float32 values): equal for the same weights in float32
    or float64, on any device."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's floating-point weights: what its latents are computed in."""
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


def save_latents(model: Encodable, latents: Latents, path: str | Path, *, source: str = "") -> Path:
    """Write ``latents`` of ``model`` (checked against its layout) to the safetensors file ``path``, atomically.

    ``source`` is recorded as what the model was loaded from (a directory or a Hub id).
    """
    require(model, Encodable, "save_latents")
    layout = model.latent_layout
    check_latents(latents, layout, "save_latents")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": model_id(model),
        "model": source,
        "kind": latents.kind,
        "images": str(latents.count),
    }
    for spec in layout:
        metadata[spec.name] = json.dumps({"layer": spec.layer, "resolution": spec.resolution, "kind": latents.kind})
    tensors = {spec.name: latents.tensors[spec.name].detach().to("cpu").contiguous() for spec in layout}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_latents(model: Encodable, path: str | Path) -> Latents:
    """The latents in ``path``, on the model's device, after checking that they are ``model``'s: its layout's tensors
    and shapes, its dtype, complete metadata and the id of its weights."""
    require(model, Encodable, "load_latents")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: latents file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (no __iter__)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        if is_out_of_memory(exc):
            raise
        raise DataError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None
    if metadata.get("format") != FORMAT:
        raise DataError(
            f"{path}: not a genkit latents file (its metadata has no format = {FORMAT!r}); genkit encode writes them"
        )
    for key in ("format_version", "model_id", "kind", "images"):
        if key not in metadata:
            raise DataError(f"{path}: its metadata lacks {key!r}")
    if metadata["format_version"] != FORMAT_VERSION:
        raise DataError(
            f"{path}: latents file format {metadata['format_version']!r}; this genkit reads format {FORMAT_VERSION}"
        )
    kind = metadata["kind"]
    if kind not in KINDS:
        raise DataError(f"{path}: kind {kind!r} in its metadata; expected one of {', '.join(KINDS)}")
    latents = Latents(tensors, kind)
    layout = model.latent_layout
    check_latents(latents, layout, str(path))
    for spec in layout:
        _check_entry(path, spec, metadata.get(spec.name), kind)
    if metadata["images"] != str(latents.count):
        raise DataError(f"{path}: its metadata says {metadata['images']} images, its tensors hold {latents.count}")
    dtype = model_dtype(model)
    for name, tensor in tensors.items():
        if tensor.dtype != dtype:
            raise DataError(
                f"{path}: tensor {name!r} is {_name(tensor.dtype)} and the model runs in {_name(dtype)}; "
                "decode with the --dtype the latents were encoded with"
            )
    if metadata["model_id"] != model_id(model):
        source = f" ({metadata['model']})" if metadata.get("model") else ""
        raise DataError(
            f"{path}: the latents of another model{source}, whose weights differ from this one's "
            f"(model_id {metadata['model_id'][:19]}…); decode them with the model that encoded them"
        )
    device = next(model.parameters()).device
    return latents.to(device)


def _check_entry(path: Path, spec, entry: str | None, kind: str) -> None:
    """The metadata entry of tensor ``spec.name`` names its layer, resolution and kind as the layout does."""
    if entry is None:
        raise DataError(f"{path}: its metadata has no entry for tensor {spec.name!r} (its layer, resolution and kind)")
    try:
        described = json.loads(entry)
    except json.JSONDecodeError:
        described = None
    expected = {"layer": spec.layer, "resolution": spec.resolution, "kind": kind}
    if described != expected:
        raise DataError(f"{path}: the metadata of tensor {spec.name!r} is {entry}, expected {json.dumps(expected)}")


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
