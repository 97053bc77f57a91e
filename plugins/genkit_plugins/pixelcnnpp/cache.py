"""The two-stream U-Net evaluated pixel by pixel, each activation computed once (Ramachandran et al. 2017).

"Fast generation for convolutional autoregressive models" (ICLR workshop 2017): while an image is
drawn in raster order, every layer's activations are kept, and each new pixel computes only what
it makes computable. In PixelCNN++ that is, at a resolution ``s`` times coarser than the image:

* the **u stream's row** ``p`` once the image rows above ``s·p`` are drawn: computed at the start
  of image row ``s·p``, for every ``s`` dividing it (the full row at once);
* the **ul stream's position** ``(p, q)`` once every pixel before ``(s·p, s·q)`` is drawn:
  computed just before that pixel is drawn, when ``s`` divides both its row and column.

Each is read from windows of the maps computed earlier (the layers' ``at``), up pass first, then
the down pass from the coarsest resolution; the output at ``(i, j)`` is the last ``ul`` there.
The work per image is one forward pass in total; the loop reads nothing back to the host.
"""

from __future__ import annotations

from torch import Tensor

from genkit.errors import ConfigError
from genkit_plugins.pixelcnnpp.kinds import IncrementalNetwork
from genkit_plugins.pixelcnnpp.layers import at_position, put_position


class UNetCache(IncrementalNetwork):
    """Every activation map of a :class:`~genkit_plugins.pixelcnnpp.network.TwoStreamUNet`, filled in raster order."""

    def __init__(self, net, x: Tensor, condition: Tensor | None):
        b, c, h, w = x.shape
        m = net.row_multiple
        if h % m or w % m:
            raise ConfigError(f"pixelcnn-network: cached evaluation needs H and W multiples of {m}, found {h}×{w}")
        self.net, self.condition, self.channels = net, condition, c
        self.image = net.with_ones(x.clone())
        levels = len(net.up_layers)
        self.scales = [2**level for level in range(levels)]

        def new(level: int) -> Tensor:
            return x.new_zeros(b, net.nr_filters, h // 2**level, w // 2**level)

        # up pass, per level: the stream's start and every block's output (in the order the stacks are pushed)
        self.u_up = [[new(level) for _ in range(len(pair.u_stream) + 1)] for level, pair in enumerate(net.up_layers)]
        self.ul_up = [[new(level) for _ in range(len(pair.ul_stream) + 1)] for level, pair in enumerate(net.up_layers)]
        self.ul_init_above = new(0)  # the vertical half of ul's start, a row at a time
        # down pass, per level from the coarsest: its start (the up pass's last output at the coarsest) and every
        # block's output; the auxiliary map of every block, popped from the up pass's stacks as the network does
        u_stack = [m for maps in self.u_up for m in maps]
        ul_stack = [m for maps in self.ul_up for m in maps]
        self.u_down, self.ul_down, self.u_aux, self.ul_aux = [], [], [], []
        for d, pair in enumerate(net.down_layers):
            level = levels - 1 - d
            n = len(pair.u_stream)
            starts = (u_stack.pop(), ul_stack.pop()) if d == 0 else (new(level), new(level))
            self.u_down.append([starts[0]] + [new(level) for _ in range(n)])
            self.ul_down.append([starts[1]] + [new(level) for _ in range(n)])
            self.u_aux.append([u_stack.pop() for _ in range(n)])
            self.ul_aux.append([ul_stack.pop() for _ in range(n)])
        assert not u_stack and not ul_stack, "the down pass pops every map the up pass pushed"
        self.caches = {}  # every block's own state, by block
        for pairs, starts in ((net.up_layers, self.u_up), (net.down_layers, self.u_down)):
            for pair, maps in zip(pairs, starts):
                for block in [*pair.u_stream, *pair.ul_stream]:
                    self.caches[block] = block.new_cache(maps[0])

    def _block(self, block, x: Tensor, aux: tuple[Tensor, ...], row: int, col: int | None) -> Tensor:
        return block.at(x, aux, self.caches[block], row, col, self.condition)

    def _rows(self, i: int) -> None:
        """The u stream's rows that image row ``i`` makes computable (before any of its pixels is drawn)."""
        net = self.net
        for level, pair in enumerate(net.up_layers):
            if i % self.scales[level]:
                break
            p, maps = i // self.scales[level], self.u_up[level]
            if level == 0:
                put_position(maps[0], p, None, net.u_init.at(self.image, p))
                put_position(self.ul_init_above, p, None, net.ul_init[0].at(self.image, p))
            else:
                put_position(maps[0], p, None, net.downsize_u_stream[level - 1].at(self.u_up[level - 1][-1], p))
            for k, block in enumerate(pair.u_stream):
                put_position(maps[k + 1], p, None, self._block(block, maps[k], (), p, None))
        for d, pair in enumerate(net.down_layers):
            scale = self.scales[len(self.scales) - 1 - d]
            if i % scale:
                continue
            p, maps = i // scale, self.u_down[d]
            if d > 0:
                put_position(maps[0], p, None, net.upsize_u_stream[d - 1].at(self.u_down[d - 1][-1], p))
            for k, block in enumerate(pair.u_stream):
                put_position(maps[k + 1], p, None, self._block(block, maps[k], (self.u_aux[d][k],), p, None))

    def _position(self, i: int, j: int) -> None:
        """The ul stream's positions that pixel ``(i, j)`` needs (every pixel before it is drawn)."""
        net = self.net
        for level, pair in enumerate(net.up_layers):
            scale = self.scales[level]
            if i % scale or j % scale:
                break
            p, q, maps = i // scale, j // scale, self.ul_up[level]
            if level == 0:
                start = at_position(self.ul_init_above, p, q) + net.ul_init[1].at(self.image, p, q)
            else:
                start = net.downsize_ul_stream[level - 1].at(self.ul_up[level - 1][-1], p, q)
            put_position(maps[0], p, q, start)
            for k, block in enumerate(pair.ul_stream):
                put_position(maps[k + 1], p, q, self._block(block, maps[k], (self.u_up[level][k + 1],), p, q))
        for d, pair in enumerate(net.down_layers):
            scale = self.scales[len(self.scales) - 1 - d]
            if i % scale or j % scale:
                continue
            p, q, maps = i // scale, j // scale, self.ul_down[d]
            if d > 0:
                put_position(maps[0], p, q, net.upsize_ul_stream[d - 1].at(self.ul_down[d - 1][-1], p, q))
            for k, block in enumerate(pair.ul_stream):
                aux = (self.u_down[d][k + 1], self.ul_aux[d][k])
                put_position(maps[k + 1], p, q, self._block(block, maps[k], aux, p, q))

    def params_at(self, i: int, j: int) -> Tensor:
        if j == 0:
            self._rows(i)
        self._position(i, j)
        return self.net.output(at_position(self.ul_down[-1][-1], i, j))

    def write(self, i: int, j: int, pixel: Tensor) -> None:
        put_position(self.image[:, : self.channels], i, j, pixel)


__all__ = ["UNetCache"]
