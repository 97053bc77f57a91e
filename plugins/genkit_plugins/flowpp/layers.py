"""The parameter-light invertible layers of Flow++, as the official code (``flows.py``) defines them.

Tensors are ``(B, C, H, W)``; a *pair* is the two halves a split produces, each transformed with
its own weights. Every layer returns ``(output, log|det J|)`` with the log-determinant per image,
``(B,)``, in nats (at least float32). Each is the official component of one of the kinds in
:mod:`genkit_plugins.flowpp.kinds`, registered under the name in brackets:

* :class:`LogitPreprocess` (``preprocess`` ``logit``; official ``ImgProc``): ``v ∈ [0, 256)`` →
  ``logit(0.05 + 0.9·v/256)``; its log-determinant includes ``D·log(0.9/256)``, so the model's
  density is on the ``[0, 256)`` scale (``[0, 2^bits)`` for images of fewer bits).
* :class:`Norm` (``flow-layer`` ``norm``): per-activation affine ``x·g + b`` on each half (``g``
  floored at 1e-10), data-dependent init to zero mean and unit variance over the batch.
* :class:`Pointwise` (``flow-layer`` ``pointwise``): an invertible 1×1 convolution per half,
  initialised to identity + 0.001·N(0, 1); its log-determinant and inverse are computed in float64.
* The splits: even/odd **columns** (:class:`ColumnSplit`, ``split`` ``checkerboard``: the official
  ``CheckerboardSplit``, not an (i + j) checkerboard), first/second half of the channels
  (:class:`ChannelSplit`, ``split`` ``channel``), and ``space_to_depth`` in TensorFlow's channel
  order ``(dy·2 + dx)·C + c`` (:class:`SpaceToDepth`, ``squeeze`` ``squeeze``).
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn

from genkit_plugins.flowpp.datainit import MOMENTS_EPS, DataInit, full_precision
from genkit_plugins.flowpp.kinds import FlowLayer, Pair, Preprocess, Shape, Split, Squeeze, StageError
from genkit_plugins.flowpp.mixture import log_logistic_density
from genkit_plugins.precision import at_least_float32

#: ImgProc's margin: [0, levels) maps onto [0.05, 0.95] before the logit (official value)
ALPHA = 0.05
#: the smallest Norm scale (official ``tf.maximum(g, 1e-10)``)
MIN_NORM_SCALE = 1e-10
#: the spread of Pointwise's noisy-identity initialisation (official value)
POINTWISE_NOISE = 0.001


def sum_per_image(x: Tensor) -> Tensor:
    """``(B, …) -> (B,)``, in at least float32."""
    return at_least_float32(x).flatten(1).sum(1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) per image, ``(B,)``: the prior of ``z`` and the dequantizer's base density."""
    return sum_per_image(-0.5 * at_least_float32(z).square() - 0.5 * math.log(2 * math.pi))


# --- element-wise maps --------------------------------------------------------------------------


def logit_preprocess(v: Tensor, levels: int = 256) -> tuple[Tensor, Tensor]:
    """``ImgProc``: ``y = logit(s)``, ``s = 0.05 + 0.9·v/levels``; log-det ``Σ(−log s − log(1−s)) + D·log(0.9/levels)``.

    ``levels`` is 256 for 8-bit images (the official CIFAR-10 and ImageNet code), 32 for 5-bit ones
    (the official CelebA 5-bit launchers).
    """
    s = v * ((1 - 2 * ALPHA) / levels) + ALPHA
    log_s, log_1ms = torch.log(s), torch.log1p(-s)
    dims = v[0].numel()
    return log_s - log_1ms, sum_per_image(-log_s - log_1ms) + dims * math.log((1 - 2 * ALPHA) / levels)


def logit_preprocess_inverse(y: Tensor, levels: int = 256) -> tuple[Tensor, Tensor]:
    """The inverse of :func:`logit_preprocess` and its log-determinant."""
    dims = y[0].numel()
    v = (torch.sigmoid(y) - ALPHA) * (levels / (1 - 2 * ALPHA))
    return v, sum_per_image(log_logistic_density(y)) - dims * math.log((1 - 2 * ALPHA) / levels)


def sigmoid(h: Tensor) -> tuple[Tensor, Tensor]:
    """``u = σ(h)`` with log-det ``Σ log σ′(h) = Σ(−softplus(h) − softplus(−h))``."""
    return torch.sigmoid(h), sum_per_image(log_logistic_density(h))


def sigmoid_inverse(u: Tensor) -> tuple[Tensor, Tensor]:
    """``h = log u − log(1 − u)`` with log-det ``Σ(−log u − log(1 − u))``."""
    log_u, log_1mu = torch.log(u), torch.log1p(-u)
    return log_u - log_1mu, sum_per_image(-log_u - log_1mu)


# --- splits ---------------------------------------------------------------------------------------


def split_columns(x: Tensor) -> Pair:
    """The official ``CheckerboardSplit``: even columns, odd columns; each ``(B, C, H, W/2)``."""
    return x[..., 0::2], x[..., 1::2]


def merge_columns(a: Tensor, b: Tensor) -> Tensor:
    """Interleave the columns of :func:`split_columns` back."""
    return torch.stack((a, b), dim=-1).flatten(-2)


def split_channels(x: Tensor) -> Pair:
    """The official ``ChannelSplit``: the first half of the channels, then the second."""
    a, b = x.chunk(2, dim=1)
    return a, b


def merge_channels(a: Tensor, b: Tensor) -> Tensor:
    return torch.cat((a, b), dim=1)


def space_to_depth(x: Tensor) -> Tensor:
    """``tf.space_to_depth(x, 2)`` on ``(B, C, H, W)``: channel ``(dy·2 + dx)·C + c`` holds pixel ``(2i+dy, 2j+dx)``.

    (The order differs from ``nn.PixelUnshuffle``'s ``c·4 + dy·2 + dx``, so the channel split after it
    takes different dimensions.)
    """
    return rearrange(x, "b c (h dy) (w dx) -> b (dy dx c) h w", dy=2, dx=2)


def depth_to_space(x: Tensor) -> Tensor:
    return rearrange(x, "b (dy dx c) h w -> b c (h dy) (w dx)", dy=2, dx=2)


# --- the components without weights -----------------------------------------------------------------


class LogitPreprocess(Preprocess):
    """:func:`logit_preprocess` over ``levels`` levels (the official ``ImgProc``)."""

    def __init__(self, settings=None, *, levels: int = 256):
        super().__init__()
        self.levels = levels

    def forward(self, v: Tensor) -> tuple[Tensor, Tensor]:
        return logit_preprocess(v, self.levels)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return logit_preprocess_inverse(y, self.levels)


class ColumnSplit(Split):
    """:func:`split_columns`, the official ``CheckerboardSplit``: even columns, odd columns."""

    def __init__(self, settings=None):
        super().__init__()

    def half_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        if w % 2:
            raise StageError(f"the column split needs an even width, found {w}")
        return (c, h, w // 2)

    def split(self, x: Tensor) -> Pair:
        return split_columns(x)

    def merge(self, a: Tensor, b: Tensor) -> Tensor:
        return merge_columns(a, b)


class ChannelSplit(Split):
    """:func:`split_channels`, the official ``ChannelSplit``: the first half of the channels, then the second."""

    def __init__(self, settings=None):
        super().__init__()

    def half_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        if c % 2:
            raise StageError(f"the channel split needs an even number of channels, found {c}")
        return (c // 2, h, w)

    def split(self, x: Tensor) -> Pair:
        return split_channels(x)

    def merge(self, a: Tensor, b: Tensor) -> Tensor:
        return merge_channels(a, b)


class SpaceToDepth(Squeeze):
    """:func:`space_to_depth`: ``(C, H, W)`` → ``(4C, H/2, W/2)`` in TensorFlow's channel order."""

    def __init__(self, settings=None):
        super().__init__()

    def output_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        if h % 2 or w % 2:
            raise StageError(f"space_to_depth needs an even height and width, found {h}×{w}")
        return (4 * c, h // 2, w // 2)

    def forward(self, x: Tensor) -> Tensor:
        return space_to_depth(x)

    def inverse(self, y: Tensor) -> Tensor:
        return depth_to_space(y)


# --- layers with weights ----------------------------------------------------------------------------


class Norm(DataInit, FlowLayer):
    """Per-activation affine ``y = x·max(g, 1e-10) + b`` on each half; ``g``, ``b``: ``(2, C, H, W)``.

    Log-det ``Σ log max(g, 1e-10)`` over both halves, the same for every image. Data-dependent init:
    ``g = 1/sqrt(var + 1e-8)``, ``b = −mean·g`` with moments over the batch axis only.
    """

    def __init__(self, channels: int, height: int, width: int):
        super().__init__()
        self.g = nn.Parameter(torch.ones(2, channels, height, width))
        self.b = nn.Parameter(torch.zeros(2, channels, height, width))

    @classmethod
    def from_settings(cls, settings=None, *, channels: int, height: int, width: int) -> Norm:
        """The ``flow-layer`` factory (Norm takes no settings)."""
        return cls(channels, height, width)

    def _scale(self) -> Tensor:
        return self.g.clamp_min(MIN_NORM_SCALE)

    def _logdet(self, batch: int) -> Tensor:
        return at_least_float32(self._scale()).log().sum().expand(batch)

    def forward(self, pair: Pair) -> tuple[Pair, Tensor]:
        if self.initializing:
            self._initialize(pair)
        g = self._scale()
        return (pair[0] * g[0] + self.b[0], pair[1] * g[1] + self.b[1]), self._logdet(pair[0].shape[0])

    def inverse(self, pair: Pair) -> tuple[Pair, Tensor]:
        g = self._scale()
        return ((pair[0] - self.b[0]) / g[0], (pair[1] - self.b[1]) / g[1]), -self._logdet(pair[0].shape[0])

    @torch.no_grad()
    def _initialize(self, pair: Pair) -> None:
        for i, x in enumerate(pair):
            var, mean = torch.var_mean(at_least_float32(x), dim=0, correction=0)
            scale = torch.rsqrt(var + MOMENTS_EPS)
            self.g[i].copy_(scale)
            self.b[i].copy_(-mean * scale)
        self.initializing = False


class Pointwise(FlowLayer):
    """An invertible 1×1 convolution on each half: ``weight[i]`` is ``(C_out, C_in)`` (the official ``W_i`` transposed).

    Log-det ``H·W·log|det W_i|`` summed over the halves, and ``W_i⁻¹``, both computed in float64 (the
    official inverts in the model's precision). Runs outside autocast: a bf16 matrix product would
    round the flow's state.
    """

    def __init__(self, channels: int, height: int, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(channels) + POINTWISE_NOISE * torch.randn(2, channels, channels))
        self.pixels = height * width

    @classmethod
    def from_settings(cls, settings=None, *, channels: int, height: int, width: int) -> Pointwise:
        """The ``flow-layer`` factory (Pointwise takes no settings)."""
        return cls(channels, height, width)

    def _logdet(self, x: Tensor) -> Tensor:
        logabsdet = torch.linalg.slogdet(self.weight.double()).logabsdet.sum() * self.pixels
        return logabsdet.to(at_least_float32(x).dtype).expand(x.shape[0])

    @staticmethod
    def _mix(matrix: Tensor, x: Tensor) -> Tensor:
        return torch.einsum("oc,bchw->bohw", matrix.to(x.dtype), x)

    def forward(self, pair: Pair) -> tuple[Pair, Tensor]:
        with full_precision(pair[0]):
            out = (self._mix(self.weight[0], pair[0]), self._mix(self.weight[1], pair[1]))
        return out, self._logdet(pair[0])

    def inverse(self, pair: Pair) -> tuple[Pair, Tensor]:
        inverse = torch.linalg.inv_ex(self.weight.double()).inverse  # inv_ex: no error check, so no host sync
        with full_precision(pair[0]):
            out = (self._mix(inverse[0], pair[0]), self._mix(inverse[1], pair[1]))
        return out, -self._logdet(pair[0])
