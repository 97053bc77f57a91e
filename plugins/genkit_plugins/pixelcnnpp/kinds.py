"""The kinds of component PixelCNN++ is assembled from, and the contracts each kind's components fulfil.

Three kinds, each with the contract tests in :mod:`genkit_plugins.pixelcnnpp.contracts`:

* ``pixelcnn-layer`` (:class:`CausalLayer`): a weight-normalised convolution whose output at a
  position sees only the inputs its stream allows — the *vertical* stream rows at or above, the
  *horizontal* stream rows at or above and columns at or left, a *pointwise* layer the position
  itself; stride-2 convolutions halve the resolution, transposed ones double it.
* ``pixelcnn-block`` (:class:`GatedBlock`): a residual block of one stream, with an optional
  auxiliary input from the other stream and an optional class-conditional bias.
* ``pixelcnn-network`` (:class:`PixelNetwork`): images in [-1, 1] to a likelihood's parameters,
  the output at each pixel depending only on the pixels before it in raster order.

Positions are compared through their *anchor*, the top-left image pixel they cover: at a
resolution ``s`` times coarser than the image, position ``(p, q)`` anchors at ``(s·p, s·q)``.
Every component also computes its output at one row (all columns) or one position from a window
of its input maps, reading nothing its stream forbids: what the cached sampler is made of.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from genkit.capabilities import RecomputableUnit

LAYER = "pixelcnn-layer"
BLOCK = "pixelcnn-block"
NETWORK = "pixelcnn-network"

Stream = Literal["vertical", "horizontal", "pointwise"]
Nonlinearity = Callable[[Tensor], Tensor]


class InitialisedFromData(ABC):
    """A layer whose weights can be set from the statistics of one batch (weight normalisation, Salimans & Kingma 2016).

    After :meth:`arm_init`, the layer's next forward pass sets its scale and bias so that its
    output over that batch has per-channel mean 0 and standard deviation :attr:`init_scale`, and
    returns that output; later passes use the weights as set.
    """

    init_scale: float

    @abstractmethod
    def arm_init(self) -> None:
        """Make the next forward pass initialise the layer from its input."""

    @property
    @abstractmethod
    def init_pending(self) -> bool:
        """Whether the layer is armed and has not yet seen its initialising batch."""


class CausalLayer(nn.Module, ABC):
    """A weight-normalised layer of one stream, ``(B, in_channels, H, W) -> (B, out_channels, H', W')``.

    Built as ``factory(settings, in_channels=, out_channels=, filter_size=None, stride=1,
    shift_output=False, init_scale=1.0)``: ``filter_size`` ``(kh, kw)`` or ``None`` for the
    layer's own default; ``stride`` 2 halves H and W (a transposed layer: doubles them, and
    takes only 2); ``shift_output`` moves the output one row down (vertical stream) or one
    column right (horizontal stream), so that it no longer sees its own row or column;
    ``init_scale`` is the spread its weight-normalised operation (an :class:`InitialisedFromData`
    submodule) initialises to, before any shift.
    """

    #: which inputs an output may see: rows at or above its anchor ("vertical"), rows at or above and
    #: columns at or left ("horizontal"), or its own position ("pointwise")
    stream: ClassVar[Stream]
    #: a transposed (up-sampling) layer
    transposed: ClassVar[bool] = False
    #: the layer's stride (2: down-sampling, or up-sampling when transposed)
    stride: int
    #: whether the output is shifted one row down (vertical) or one column right (horizontal)
    shift_output: bool

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor: ...

    @abstractmethod
    def at(self, x: Tensor, row: int, col: int | None = None, pre: Nonlinearity | None = None) -> Tensor:
        """The output at ``row`` (``(B, out, 1, W')``) or at ``(row, col)`` (``(B, out, 1, 1)``), from ``x``.

        Equals ``forward(pre(x))`` there, but reads only the window of ``x`` that position depends
        on; ``pre`` (an element-wise function with ``pre(0) = 0``) is applied to that window alone.
        """


class GatedBlock(nn.Module, ABC):
    """A residual block of one stream: ``(B, channels, H, W) -> (B, channels, H, W)``.

    Built as ``factory(settings, channels=, conv=, skip=, aux_channels=0, dropout=0.5,
    num_classes=0)``: ``conv`` and ``skip`` are references to ``pixelcnn-layer`` components, the
    stream's convolution and a pointwise layer for the auxiliary input; ``aux_channels`` is the
    width of that input (0: none); ``dropout`` acts in train mode; ``num_classes`` > 0 adds a
    learned bias per class (Salimans et al. 2017's conditional model, ``h·W``).
    """

    #: the stream of the block's convolutions
    stream: Stream

    @abstractmethod
    def forward(self, x: Tensor, aux: Tensor | None = None, condition: Tensor | None = None) -> Tensor:
        """``x`` plus the gated residual; ``condition`` is one-hot ``(B, num_classes)``."""

    @abstractmethod
    def new_cache(self, x: Tensor) -> Any:
        """The block's own state for :meth:`at`, for input maps shaped like ``x``."""

    @abstractmethod
    def at(
        self,
        x: Tensor,
        aux: tuple[Tensor, ...],
        cache: Any,
        row: int,
        col: int | None = None,
        condition: Tensor | None = None,
    ) -> Tensor:
        """The output at ``row`` or ``(row, col)`` from the input map ``x`` and the auxiliary maps ``aux``.

        Called in raster order of positions (rows for the vertical stream, positions for the
        horizontal one); equals :meth:`forward` there in eval mode (no dropout). ``aux`` holds the
        auxiliary input's maps, concatenated along channels (empty: none).
        """


class PixelNetwork(nn.Module, ABC):
    """``(B, C, H, W)`` images in [-1, 1] -> ``(B, out_channels, H, W)`` parameters, causal to the pixel.

    Built as ``factory(settings, in_channels=, out_channels=, nr_resnet=, nr_filters=, dropout=,
    num_classes=0)``. The output at pixel ``(i, j)`` depends only on pixels before it in raster
    order, never on ``(i, j)`` itself.
    """

    #: H and W that :meth:`incremental` accepts are multiples of this (so are the heights the
    #: row-truncated sampler cuts at)
    row_multiple: ClassVar[int] = 1

    @abstractmethod
    def forward(self, x: Tensor, condition: Tensor | None = None) -> Tensor: ...

    @abstractmethod
    def incremental(self, x: Tensor, condition: Tensor | None = None) -> IncrementalNetwork:
        """An incremental evaluation for images shaped like ``x`` (whose values it starts from)."""

    def recomputable_units(self, height: int) -> list[RecomputableUnit]:
        """The parts activation checkpointing may recompute for images ``height`` pixels high, in forward order,
        named within the network (:class:`genkit.capabilities.Recomputable`). A network that declares none can
        only train with ``train.activation_checkpointing = "off"``."""
        return []


class IncrementalNetwork(ABC):
    """A network's activations for images being drawn pixel by pixel (Ramachandran et al. 2017).

    For every ``(i, j)`` in raster order: :meth:`params_at` gives the output at ``(i, j)``, which
    depends on the pixels written so far; then :meth:`write` puts the drawn pixel in. Each call
    does the work of that position only: rows of the vertical stream once per row, the
    horizontal stream's positions one by one, each lower resolution every 2 or 4 rows and
    columns. Nothing is read back to the host, so the whole loop can be captured in a CUDA graph.
    """

    @abstractmethod
    def params_at(self, i: int, j: int) -> Tensor:
        """The network's output at pixel ``(i, j)``: ``(B, out_channels, 1, 1)``."""

    @abstractmethod
    def write(self, i: int, j: int, pixel: Tensor) -> None:
        """Put the pixel ``(B, C, 1, 1)`` drawn at ``(i, j)`` into the image."""
