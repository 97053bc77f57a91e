"""Latents taken out of a model and put back in: what each tensor is, a batch of them, and paths between two.

A model that declares :class:`genkit.capabilities.Encodable` describes its latents as a list of
:class:`LatentTensor` (its *layout*: one tensor per latent layer of a hierarchical VAE, the ``z`` of
a flow), encodes images to :class:`Latents` and decodes :class:`Latents` to images.
:func:`interpolate` draws the path between two encodings, tensor by tensor: spherical by default,
as White (2016, "Sampling Generative Networks") advises for Gaussian latents, since a straight line
between two points of a high-dimensional Gaussian's typical shell passes through its improbable
centre; linear on request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from genkit.errors import ConfigError, DataError

#: what a tensor of latents holds: each layer's posterior mean (given the means above it), a draw from each
#: layer's posterior, or a flow's image of the dequantized picture
POSTERIOR_MEAN, POSTERIOR_DRAW, FLOW_Z = "posterior mean", "posterior draw", "flow z"
KINDS = (POSTERIOR_MEAN, POSTERIOR_DRAW, FLOW_Z)
PATHS = ("spherical", "linear")


@dataclass(frozen=True)
class LatentTensor:
    """One tensor of a model's latents: its name, its shape for one image, and where it sits in the model."""

    name: str
    shape: tuple[int, ...]
    layer: int | None = None  # the latent layer it belongs to, top (first drawn) first; None for a flow's z
    resolution: int | None = None  # its height and width


@dataclass(frozen=True)
class Latents:
    """The latents of ``count`` images: ``tensors[name]`` is ``(count, *shape)``; ``kind`` is one of :data:`KINDS`."""

    tensors: dict[str, Tensor]
    kind: str

    @property
    def count(self) -> int:
        return len(next(iter(self.tensors.values())))

    def split(self, size: int) -> list[Latents]:
        """Batches of at most ``size`` images, in order."""
        names = list(self.tensors)
        pieces = zip(*(self.tensors[name].split(size) for name in names))
        return [Latents(dict(zip(names, piece)), self.kind) for piece in pieces]

    def to(self, *args, **kwargs) -> Latents:
        """Every tensor moved or cast as ``Tensor.to(*args, **kwargs)`` does."""
        return Latents({name: t.to(*args, **kwargs) for name, t in self.tensors.items()}, self.kind)


def concatenate(parts: Sequence[Latents]) -> Latents:
    """The latents of several batches as one, in order."""
    first = parts[0]
    return Latents({name: torch.cat([p.tensors[name] for p in parts]) for name in first.tensors}, first.kind)


def check_latents(latents: Latents, layout: Sequence[LatentTensor], where: str) -> None:
    """Stop with one line naming ``where`` (a file, a model) and the tensor when ``latents`` do not fit ``layout``."""
    names = [spec.name for spec in layout]
    held = list(latents.tensors)
    if len(held) != len(names):
        raise DataError(
            f"{where}: holds {_count(len(held))} ({_listing(held)}), and the model's latents are "
            f"{_count(len(names))} ({_listing(names)})"
        )
    missing = [name for name in names if name not in latents.tensors]
    if missing:
        extra = next(name for name in held if name not in names)
        raise DataError(
            f"{where}: holds tensor {extra!r} and no {missing[0]!r}; the model's latents are {_listing(names)}"
        )
    if latents.kind not in KINDS:
        raise DataError(f"{where}: latents of kind {latents.kind!r}; expected one of {', '.join(KINDS)}")
    count = None
    for spec in layout:
        tensor = latents.tensors[spec.name]
        if not tensor.is_floating_point():
            raise DataError(f"{where}: tensor {spec.name!r} is {_dtype(tensor.dtype)}, not floating point")
        if tensor.ndim != 1 + len(spec.shape) or tuple(tensor.shape[1:]) != spec.shape:
            raise DataError(
                f"{where}: tensor {spec.name!r} has shape {tuple(tensor.shape)}, expected (N, {_dims(spec.shape)})"
            )
        if count is None:
            count = len(tensor)
        elif len(tensor) != count:
            raise DataError(
                f"{where}: tensor {spec.name!r} holds {len(tensor)} images, {layout[0].name!r} holds {count}"
            )
    if not count:
        raise DataError(f"{where}: holds the latents of no image")


def interpolate(start: Latents, end: Latents, steps: int, path: str = "spherical") -> Latents:
    """``steps`` points from each image of ``start`` to the same image of ``end``, ends included, row-major.

    Image ``r`` of the result's row ``r`` (``result.count = start.count · steps``) at ``t = j / (steps − 1)``
    is, tensor by tensor with the tensor of one image taken as one vector, ``(1 − t)·a + t·b``
    (``linear``) or ``sin((1 − t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b`` with ``cos Ω = a·b / (|a||b|)``
    (``spherical``, White 2016; linear where ``a`` and ``b`` are parallel or zero). Computed in
    float64; the ends are ``a`` and ``b`` exactly.
    """
    if path not in PATHS:
        raise ConfigError(f"interpolation path {path!r}: expected {' or '.join(PATHS)}")
    if steps < 2:
        raise ConfigError(f"interpolation steps: expected 2 or more (both ends included), found {steps}")
    if start.tensors.keys() != end.tensors.keys() or start.count != end.count:
        raise ConfigError(
            f"interpolation: the two ends hold different latents ({start.count} images of {_listing(start.tensors)} "
            f"and {end.count} of {_listing(end.tensors)})"
        )
    t = torch.linspace(0.0, 1.0, steps, dtype=torch.float64)
    tensors = {}
    for name, a in start.tensors.items():
        b = end.tensors[name]
        a64 = a.detach().double().flatten(1)[:, None]  # (rows, 1, D)
        b64 = b.detach().double().to(a.device).flatten(1)[:, None]
        weight_a, weight_b = _weights(a64, b64, t.to(a.device)[None, :, None], path)  # (rows, steps, 1) each
        between = weight_a * a64 + weight_b * b64  # (rows, steps, D)
        tensors[name] = between.reshape(len(a) * steps, *a.shape[1:]).to(a.dtype)
    return Latents(tensors, start.kind)


def _weights(a: Tensor, b: Tensor, t: Tensor, path: str) -> tuple[Tensor, Tensor]:
    linear = (1 - t).expand(len(a), -1, -1), t.expand(len(a), -1, -1)
    if path == "linear":
        return linear
    norms = a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True)
    cosine = ((a * b).sum(dim=-1, keepdim=True) / norms).clamp(-1.0, 1.0)
    omega = torch.arccos(cosine)  # (rows, 1, 1); NaN where a norm is zero
    sine = torch.sin(omega)
    # near Ω = 0 (or π) the ratio of sines loses every digit; there the two paths agree to first order
    parallel = ~(sine.abs() > 1e-6)
    spherical = torch.sin((1 - t) * omega) / sine, torch.sin(t * omega) / sine
    return tuple(torch.where(parallel, lin, sph) for lin, sph in zip(linear, spherical))


def _count(tensors: int) -> str:
    return f"{tensors} tensor" + ("" if tensors == 1 else "s")


def _listing(names) -> str:
    names = list(names)
    return ", ".join(names) if len(names) <= 4 else f"{names[0]}, {names[1]}, …, {names[-1]}"


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(map(str, shape))


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
