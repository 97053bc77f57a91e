"""PixelCNN++'s causal layers: shifted convolutions that see only the past (Salimans et al. 2017, openai/pixel-cnn).

Causality comes from where the input is padded, not from masks:

* a **down-shifted** convolution (2×3 by default) pads one row on top and a column on each side,
  so the output at a row sees that row and the rows above it — the *vertical* stream;
* a **down-right-shifted** convolution (2×2) pads on top and on the left, so the output sees rows
  at or above and columns at or left — the *horizontal* stream;
* their **transposed** twins double the resolution (stride 2, openai/pixel-cnn's VALID output
  cropped back to 2H × 2W), each fine row reading only the coarse row it lies in;
* ``shift_output`` moves a vertical output one row down (so it sees only rows above) or a
  horizontal output one column right (only columns to the left);
* **nin** ("network in network") is a 1×1 convolution: pointwise.

Every layer is weight-normalised (:mod:`~genkit_plugins.pixelcnnpp.weightnorm`) and also computes
its output at one row or one position from the window of its input that position needs (``at``):
the building block of the cached sampler.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from genkit.errors import ConfigError
from genkit_plugins.pixelcnnpp.kinds import CausalLayer, Nonlinearity
from genkit_plugins.pixelcnnpp.weightnorm import WeightNormConv2d, WeightNormConvTranspose2d, WeightNormLinear


def concat_elu(x: Tensor) -> Tensor:
    """ELU of ``x`` and of ``−x``, concatenated along channels (so the width doubles)."""
    return F.elu(torch.cat([x, -x], dim=1))


def down_shift(x: Tensor) -> Tensor:
    """Move every row one down, with zeros in the top row."""
    return F.pad(x[:, :, :-1], (0, 0, 1, 0))


def right_shift(x: Tensor) -> Tensor:
    """Move every column one to the right, with zeros in the left column."""
    return F.pad(x[..., :-1], (1, 0, 0, 0))


def _span(start: int, stop: int, size: int) -> tuple[int, int, int]:
    """(zeros before, length inside, zeros after) of the index range [start, stop) against [0, size)."""
    length = stop - start
    before = min(max(-start, 0), length)
    after = min(max(stop - size, 0), length - before)
    return before, length - before - after, after


def window(x: Tensor, rows: tuple[int, int], cols: tuple[int, int], pre: Nonlinearity | None = None) -> Tensor:
    """``pre(x)[:, :, r0:r1, c0:c1]``, with zeros wherever the ranges leave ``x`` (``pre`` sees only the inside)."""
    (top, n_rows, bottom), (left, n_cols, right) = _span(*rows, x.shape[-2]), _span(*cols, x.shape[-1])
    r0, c0 = max(rows[0], 0), max(cols[0], 0)
    part = x[:, :, r0 : r0 + n_rows, c0 : c0 + n_cols]
    if pre is not None:
        part = pre(part)
    return F.pad(part, (left, right, top, bottom)) if left or right or top or bottom else part


def at_position(x: Tensor, row: int, col: int | None = None) -> Tensor:
    """``x`` at ``row`` (``(B, C, 1, W)``) or at ``(row, col)`` (``(B, C, 1, 1)``)."""
    return x[:, :, row : row + 1] if col is None else x[:, :, row : row + 1, col : col + 1]


def put_position(x: Tensor, row: int, col: int | None, value: Tensor) -> None:
    """Write ``value`` into ``x`` at ``row`` or at ``(row, col)``, in place."""
    at_position(x, row, col).copy_(value)


def _check_context(name: str, *, stride: int, allowed_strides: tuple[int, ...], shift_output: bool, shifts: bool):
    if stride not in allowed_strides:
        raise ConfigError(f"pixelcnn-layer {name!r}: stride must be one of {allowed_strides}, found {stride}")
    if shift_output and not shifts:
        raise ConfigError(f"pixelcnn-layer {name!r}: has no shifted output")


class _ShiftedConv2d(CausalLayer):
    """What the two shifted convolutions share: padding, output shift, and the windowed computation."""

    name: ClassVar[str]
    default_filter: ClassVar[tuple[int, int]]

    def __init__(
        self,
        settings=None,
        *,
        in_channels: int,
        out_channels: int,
        filter_size: tuple[int, int] | None = None,
        stride: int = 1,
        shift_output: bool = False,
        init_scale: float = 1.0,
    ):
        _check_context(self.name, stride=stride, allowed_strides=(1, 2), shift_output=shift_output, shifts=True)
        super().__init__()
        kh, kw = filter_size = tuple(filter_size or self.default_filter)
        self.conv = WeightNormConv2d(in_channels, out_channels, filter_size, stride, init_scale=init_scale)
        self.out_channels, self.filter_size = out_channels, filter_size
        self.stride, self.shift_output = stride, shift_output
        self.pad_left, self.pad_right, self.pad_top = self.padding(kh, kw)

    @staticmethod
    @abstractmethod
    def padding(kh: int, kw: int) -> tuple[int, int, int]:
        """(left, right, top) zero padding of the input."""

    @property
    def output_step(self) -> tuple[int, int]:
        """(rows, columns) the output is shifted by."""
        if not self.shift_output:
            return 0, 0
        return (1, 0) if self.stream == "vertical" else (0, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(F.pad(x, (self.pad_left, self.pad_right, self.pad_top, 0)))
        if self.shift_output:
            y = down_shift(y) if self.stream == "vertical" else right_shift(y)
        return y

    def _output_width(self, width: int) -> int:
        return (width + self.pad_left + self.pad_right - self.filter_size[1]) // self.stride + 1

    def _unshifted(self, x: Tensor, row: int, cols: tuple[int, int], pre: Nonlinearity | None) -> Tensor:
        """The output before the shift at ``row``, output columns [c0, c1)."""
        (kh, kw), s = self.filter_size, self.stride
        top = row * s - self.pad_top
        left = cols[0] * s - self.pad_left
        right = (cols[1] - 1) * s - self.pad_left + kw
        return self.conv.operation(window(x, (top, top + kh), (left, right), pre), self.conv.weight(), self.conv.b)

    def at(self, x: Tensor, row: int, col: int | None = None, pre: Nonlinearity | None = None) -> Tensor:
        dr, dc = self.output_step
        width = self._output_width(x.shape[-1]) if col is None else 1
        r, c = row - dr, (0 if col is None else col - dc)
        if r < 0 or c < 0:
            return x.new_zeros(x.shape[0], self.out_channels, 1, width)
        if col is not None:
            return self._unshifted(x, r, (c, c + 1), pre)
        y = self._unshifted(x, r, (0, width), pre)
        return right_shift(y) if dc else y


class DownShiftedConv2d(_ShiftedConv2d):
    """Down-shifted convolution (2×3): the output at a row sees that row and the rows above (the vertical stream)."""

    name = "down-shifted-conv"
    stream = "vertical"
    default_filter = (2, 3)

    @staticmethod
    def padding(kh: int, kw: int) -> tuple[int, int, int]:
        return (kw - 1) // 2, (kw - 1) // 2, kh - 1


class DownRightShiftedConv2d(_ShiftedConv2d):
    """Down-right-shifted convolution (2×2): the output sees rows at or above and columns at or left (the horizontal
    stream)."""

    name = "down-right-shifted-conv"
    stream = "horizontal"
    default_filter = (2, 2)

    @staticmethod
    def padding(kh: int, kw: int) -> tuple[int, int, int]:
        return kw - 1, 0, kh - 1


class _ShiftedDeconv2d(CausalLayer):
    """What the two shifted transposed convolutions share: the crop to 2H × 2W and the windowed computation."""

    name: ClassVar[str]
    default_filter: ClassVar[tuple[int, int]]
    transposed = True

    def __init__(
        self,
        settings=None,
        *,
        in_channels: int,
        out_channels: int,
        filter_size: tuple[int, int] | None = None,
        stride: int = 2,
        shift_output: bool = False,
        init_scale: float = 1.0,
    ):
        _check_context(self.name, stride=stride, allowed_strides=(2,), shift_output=shift_output, shifts=False)
        kh, kw = filter_size = tuple(filter_size or self.default_filter)
        if kh < 2:
            raise ConfigError(f"pixelcnn-layer {self.name!r}: needs at least 2 filter rows, found {kh}")
        super().__init__()
        self.deconv = WeightNormConvTranspose2d(in_channels, out_channels, filter_size, stride, init_scale=init_scale)
        self.out_channels, self.filter_size, self.stride, self.shift_output = out_channels, filter_size, stride, False
        self.crop_left = self.left_crop(kw)

    @staticmethod
    @abstractmethod
    def left_crop(kw: int) -> int:
        """Columns cut on the left of the transposed convolution's output (the rest of the excess is cut on the
        right)."""

    def forward(self, x: Tensor) -> Tensor:
        y = self.deconv(x)
        (kh, kw), (h, w) = self.filter_size, y.shape[-2:]
        return y[:, :, : h - kh + 1, self.crop_left : w - (kw - 1 - self.crop_left)]

    def _inputs(self, position: int, size: int, kernel: int) -> tuple[int, int]:
        """The coarse indices [first, last] whose stride-2 kernel covers the (uncropped) fine ``position``."""
        return max(-((kernel - 1 - position) // 2), 0), min(position // 2, size - 1)

    def at(self, x: Tensor, row: int, col: int | None = None, pre: Nonlinearity | None = None) -> Tensor:
        (kh, kw), (h, w) = self.filter_size, x.shape[-2:]
        p0, p1 = self._inputs(row, h, kh)
        if col is None:
            q0, q1, first, n = 0, w - 1, self.crop_left, 2 * w
        else:
            q0, q1 = self._inputs(col + self.crop_left, w, kw)
            first, n = col + self.crop_left, 1
        if p1 < p0 or q1 < q0:  # no input reaches this position: the bias alone
            return self.deconv.b.to(x.dtype).view(1, -1, 1, 1).expand(x.shape[0], -1, 1, n).clone()
        part = window(x, (p0, p1 + 1), (q0, q1 + 1), pre)
        y = F.conv_transpose2d(part, self.deconv.weight(), self.deconv.b, stride=self.stride)
        start = first - 2 * q0
        return y[:, :, row - 2 * p0 : row - 2 * p0 + 1, start : start + n]


class DownShiftedDeconv2d(_ShiftedDeconv2d):
    """Down-shifted transposed convolution (2×3, stride 2): doubles the resolution of the vertical stream."""

    name = "down-shifted-deconv"
    stream = "vertical"
    default_filter = (2, 3)

    @staticmethod
    def left_crop(kw: int) -> int:
        return (kw - 1) // 2


class DownRightShiftedDeconv2d(_ShiftedDeconv2d):
    """Down-right-shifted transposed convolution (2×2, stride 2): doubles the resolution of the horizontal stream."""

    name = "down-right-shifted-deconv"
    stream = "horizontal"
    default_filter = (2, 2)

    @staticmethod
    def left_crop(kw: int) -> int:
        return 0


class NetworkInNetwork(CausalLayer):
    """A weight-normalised 1×1 convolution ("network in network"): pointwise."""

    name = "nin"
    stream = "pointwise"

    def __init__(
        self,
        settings=None,
        *,
        in_channels: int,
        out_channels: int,
        filter_size: tuple[int, int] | None = None,
        stride: int = 1,
        shift_output: bool = False,
        init_scale: float = 1.0,
    ):
        _check_context(self.name, stride=stride, allowed_strides=(1,), shift_output=shift_output, shifts=False)
        if filter_size not in (None, (1, 1)):
            raise ConfigError(f"pixelcnn-layer 'nin': is 1×1, found filter_size {filter_size}")
        super().__init__()
        self.linear = WeightNormLinear(in_channels, out_channels, init_scale=init_scale)
        self.out_channels, self.stride, self.shift_output = out_channels, 1, False

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)

    def at(self, x: Tensor, row: int, col: int | None = None, pre: Nonlinearity | None = None) -> Tensor:
        cols = (0, x.shape[-1]) if col is None else (col, col + 1)
        return self.linear.operation(window(x, (row, row + 1), cols, pre), self.linear.weight(), self.linear.b)
