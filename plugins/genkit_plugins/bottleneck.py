"""The Very Deep VAE's bottleneck residual block.

Child (2021), "Very Deep VAEs Generalize Autoregressive Models and Can Outperform Them on Images",
ICLR (openai/vdvae): GELU before every convolution, 1×1 → 3×3 → 3×3 → 1×1 through a narrow middle,
with the 3×3s replaced by 1×1s at resolutions ≤ 2 (a 3×3 kernel on a 1×1 or 2×2 map sees mostly
padding). Every bias starts at zero; the last convolution may start at zero (the prior's, so a fresh
decoder block changes nothing) and is scaled at init by ``last_scale`` (1/√depth keeps the residual
stream's variance from growing with the number of blocks).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from genkit.errors import ConfigError
from genkit.hookspecs import hookimpl
from genkit.interfaces import Block

SMALL_RESOLUTION = 2  # at or below this, 3×3 kernels become 1×1


def conv(in_width: int, out_width: int, kernel_size: int) -> nn.Conv2d:
    """A same-padded convolution with PyTorch's default weight init and a zero bias (as the reference)."""
    layer = nn.Conv2d(in_width, out_width, kernel_size, padding=kernel_size // 2)
    nn.init.zeros_(layer.bias)
    return layer


class BottleneckBlock(Block):
    """GELU-preactivated 1×1 → 3×3 → 3×3 → 1×1 bottleneck, optionally residual (VDVAE, Child 2021)."""

    def __init__(
        self,
        settings=None,
        *,
        in_width: int,
        middle_width: int,
        out_width: int,
        resolution: int,
        residual: bool = False,
        zero_last: bool = False,
        last_scale: float = 1.0,
    ):
        super().__init__()
        if residual and in_width != out_width:
            raise ConfigError(
                f"block 'bottleneck': a residual block needs in_width == out_width, found {in_width} and {out_width}"
            )
        if middle_width < 1:
            raise ConfigError(
                f"block 'bottleneck': middle width must be at least 1, found {middle_width} "
                "(width × bottleneck_multiple)"
            )
        self.residual = residual
        k = 3 if resolution > SMALL_RESOLUTION else 1
        self.c1 = conv(in_width, middle_width, 1)
        self.c2 = conv(middle_width, middle_width, k)
        self.c3 = conv(middle_width, middle_width, k)
        self.c4 = conv(middle_width, out_width, 1)
        if zero_last:
            nn.init.zeros_(self.c4.weight)
        self.c4.weight.data.mul_(last_scale)

    def forward(self, x: Tensor) -> Tensor:
        h = self.c1(F.gelu(x))
        h = self.c2(F.gelu(h))
        h = self.c3(F.gelu(h))
        h = self.c4(F.gelu(h))
        return x + h if self.residual else h


@hookimpl
def genkit_register_blocks(register):
    register(
        "bottleneck", BottleneckBlock, description="VDVAE bottleneck block: GELU, 1×1 → 3×3 → 3×3 → 1×1, zero biases"
    )
