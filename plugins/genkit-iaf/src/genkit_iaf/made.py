"""MADE over latent channels: masked 1×1 convolutions that make output channel ``d`` depend only on input channels
``< d``.

Germain et al. 2015, "MADE: Masked Autoencoder for Distribution Estimation": every unit gets a
*degree*; a connection exists only from lower to higher-or-equal degrees, and into an output only
from strictly lower ones. Here the "inputs" are the latent channels at each pixel, so the masks act
on the channel axis of 1×1 convolutions and every pixel is transformed independently. As in
Kingma et al. 2016 (IAF), the network may also see a context ``h`` (from the posterior network)
through an unmasked connection: ``h`` is not part of ``z``, so it may reach every output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def hidden_degrees(hidden: int, zdim: int) -> Tensor:
    """Degrees 0…zdim−1 spread evenly over ``hidden`` units; degree 0 units see only the context."""
    return torch.arange(hidden) * zdim // hidden


class MaskedConv1x1(nn.Conv2d):
    """A 1×1 convolution whose weight is multiplied by a fixed 0/1 mask ``(out, in)``."""

    def __init__(self, mask: Tensor):
        out_channels, in_channels = mask.shape
        super().__init__(in_channels, out_channels, kernel_size=1)
        # not persistent: the mask follows from the shapes, so checkpoints hold only learned weights
        self.register_buffer("mask", mask[:, :, None, None].float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias)

    @property
    def matrix(self) -> Tensor:
        """The masked weight as an ``(out, in)`` matrix: the layer's Jacobian at every pixel."""
        return (self.weight * self.mask)[:, :, 0, 0]


class Made(nn.Module):
    """``(z, h) -> (m, s)``, each ``(B, zdim, H, W)``, with ``m_d`` and ``s_d`` functions of ``z_<d`` and ``h`` only.

    ``depth`` hidden layers of ``hidden`` units with ELU activations (the IAF paper's choice).
    The output layer starts at zero with ``s``'s bias at ``gate_bias``: before training ``m = 0``
    and ``σ = sigmoid(gate_bias)`` everywhere, a clearly positive gate bias as Kingma et al. (2016, §4)
    advise; :mod:`genkit_iaf.flow` divides by that initial gate so a new step is the identity.
    """

    def __init__(self, zdim: int, context: int, hidden: int, depth: int, gate_bias: float):
        super().__init__()
        self.zdim = zdim
        inputs = torch.arange(1, zdim + 1)  # input channel d has degree d (1-based)
        degrees = hidden_degrees(hidden, zdim)
        self.inp = MaskedConv1x1(degrees[:, None] >= inputs[None, :])
        self.context = nn.Conv2d(context, hidden, kernel_size=1, bias=False) if context else None
        self.hidden = nn.ModuleList(MaskedConv1x1(degrees[:, None] >= degrees[None, :]) for _ in range(depth - 1))
        outputs = torch.cat([inputs, inputs])  # (m, s): both are indexed by the channel they transform
        self.out = MaskedConv1x1(outputs[:, None] > degrees[None, :])
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():
            self.out.bias.zero_()
            self.out.bias[zdim:] = gate_bias

    def forward(self, z: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        a = self.inp(z)
        if self.context is not None:
            a = a + self.context(h)
        a = F.elu(a)
        for layer in self.hidden:
            a = F.elu(layer(a))
        m, s = self.out(a).chunk(2, dim=1)
        return m, s

    def jacobian(self, z: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """``(m, s, ∂[m; s]/∂z)``: the outputs, and their Jacobian at every pixel ``(B, H, W, 2·zdim, zdim)``.

        The chain rule through the layers, ``W_out · diag(elu'(a_L)) · W_L ⋯ diag(elu'(a_1)) · W_inp``
        with the masked weights, so both halves are strictly lower triangular; ``h`` is an input
        of the first layer only, held fixed here.
        """
        a = self.inp(z)
        if self.context is not None:
            a = a + self.context(h)
        jacobian = (
            rearrange(elu_derivative(a), "b k h w -> b h w k 1") * self.inp.matrix
        )  # ∂ELU(a)/∂z (B, H, W, hidden, zdim)
        for layer in self.hidden:
            a = layer(F.elu(a))
            jacobian = rearrange(elu_derivative(a), "b k h w -> b h w k 1") * torch.einsum(
                "jk,bhwkz->bhwjz", layer.matrix, jacobian
            )
        m, s = self.out(F.elu(a)).chunk(2, dim=1)
        return m, s, torch.einsum("ok,bhwkz->bhwoz", self.out.matrix, jacobian)


def elu_derivative(a: Tensor) -> Tensor:
    """ELU'(a): 1 where a > 0, else exp(a)."""
    return torch.where(a > 0, torch.ones_like(a), a.exp())
