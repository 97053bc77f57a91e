"""The inverse autoregressive flow (Kingma et al. 2016,
"Improved Variational Inference with Inverse Autoregressive Flow").

Each step is the numerically stable update of the paper's §4, divided by a constant::

    [m, s] = MADE(z, h);   σ = sigmoid(s);   z' = (σ ⊙ z + (1 − σ) ⊙ m) / g₀,   g₀ = sigmoid(gate_bias)

The MADE's output layer starts at zero with ``s = gate_bias``, so ``σ = g₀`` and ``m = 0``: a new
step is exactly the identity. Without the division it would start as the contraction ``z' = g₀ z``,
which the posterior network must undo by inflating its scales; on a VDVAE with many more latent
than pixel dimensions that start costs several nats per dimension of KL and, in practice, drove the
encoder's activations to overflow within a thousand steps. Each step can then stretch an element by
at most ``1/g₀`` and shrink it arbitrarily, as the undivided update can.

Because ``m_d`` and ``σ_d`` depend only on ``z_<d`` (in the step's order), the Jacobian
``∂z'/∂z`` is triangular with diagonal ``σ/g₀``, so ``log |det J| = Σ_d (log σ_d − log g₀)``. Successive steps
read the channels in alternating order (natural, reversed, natural, …), which is the paper's
"reverse the ordering between steps" without moving any channel: element ``d`` of the output is
always element ``d`` of the input, scaled at step ``t`` by ``σ_t,d/g₀``. So ``Σ_t log(σ_t,d/g₀)`` is the
log-determinant share of element ``d`` — per element, exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from genkit_iaf.made import Made


class IafStep(nn.Module):
    """One autoregressive step; ``reverse`` reads the channels last-to-first."""

    def __init__(self, zdim: int, context: int, hidden: int, depth: int, gate_bias: float, reverse: bool):
        super().__init__()
        self.reverse = reverse
        self.made = Made(zdim, context, hidden, depth, gate_bias)
        self.initial_gate = 1 / (1 + math.exp(-gate_bias))  # g₀
        self.log_initial_gate = -math.log1p(math.exp(-gate_bias))

    def shift_and_gate(self, z: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(m, s)`` in the natural channel order, computed with this step's ordering."""
        if not self.reverse:
            return self.made(z, h)
        m, s = self.made(z.flip(1), h)
        return m.flip(1), s.flip(1)

    def forward(self, z: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(z', log(σ/g₀))``: the transformed latents and the log of each element's scale, both
        ``(B, zdim, H, W)``."""
        m, s = self.shift_and_gate(z, h)
        gate = s.sigmoid()
        return (gate * z + (1 - gate) * m) / self.initial_gate, F.logsigmoid(s) - self.log_initial_gate

    def inverse(self, z_next: Tensor, h: Tensor | None) -> Tensor:
        """The ``z`` this step maps to ``z_next``.

        Solving ``z_d = (g₀ z'_d − (1 − σ_d) m_d) / σ_d`` with ``σ, m`` evaluated at the current
        guess is exact for every element whose predecessors are already exact; element ``d`` is
        exact after ``d`` sweeps, so ``zdim`` sweeps give the exact inverse (Papamakarios et al.
        2017 use the same sequential inversion for MAF's sampling pass).
        """
        z = z_next
        for _ in range(z_next.shape[1]):
            m, s = self.shift_and_gate(z, h)
            gate = s.sigmoid()
            z = (self.initial_gate * z_next - (1 - gate) * m) / gate
        return z

    def shift_and_gate_jacobians(self, z: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(m, s, ∂m/∂z, ∂s/∂z)`` in the natural channel order, the Jacobians ``(B, H, W, zdim, zdim)`` per pixel."""
        zdim = z.shape[1]
        if not self.reverse:
            m, s, jacobian = self.made.jacobian(z, h)
            return m, s, jacobian[..., :zdim, :], jacobian[..., zdim:, :]
        m, s, jacobian = self.made.jacobian(z.flip(1), h)
        # reading the channels backwards reverses both the rows and the columns
        return m.flip(1), s.flip(1), jacobian[..., :zdim, :].flip(-1, -2), jacobian[..., zdim:, :].flip(-1, -2)

    def pull_back(self, z: Tensor, h: Tensor | None, grad: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """``(z', ∇_{z'} F)`` for ``F = φ − Σ weights ⊙ log(σ/g₀)`` as a function of ``z' = step(z)``, given
        ``grad = ∇φ`` at ``z``.

        Both terms are functions of ``z``, so ``∇_{z'} F = J⁻ᵀ (∇φ − (∂s/∂z)ᵀ (weights ⊙ (1 − σ)))``
        with the step's Jacobian ``J = (diag(σ) + diag((z − m) ⊙ σ(1 − σ)) ∂s/∂z + diag(1 − σ) ∂m/∂z) / g₀``,
        triangular in the step's order: one triangular solve per pixel. Weights and ``h`` are constants.
        """
        column = lambda t: rearrange(t, "b c h w -> b h w c 1")  # noqa: E731  (per-pixel column vectors)
        m, s, dm, ds = self.shift_and_gate_jacobians(z, h)
        gate = s.sigmoid()
        grad = column(grad) - ds.transpose(-1, -2) @ column(weights * (1 - gate))
        jacobian = (
            torch.diag_embed(column(gate).squeeze(-1))
            + column((z - m) * gate * (1 - gate)) * ds
            + column(1 - gate) * dm
        ) / self.initial_gate
        # J is lower triangular when the step reads first-to-last, so Jᵀ is upper
        grad = torch.linalg.solve_triangular(jacobian.transpose(-1, -2), grad, upper=not self.reverse)
        z_next = (gate * z + (1 - gate) * m) / self.initial_gate
        return z_next, rearrange(grad, "b h w c 1 -> b c h w")


class InverseAutoregressiveFlow(nn.Module):
    """``steps`` IAF steps in alternating channel order, starting from the base sample ``z₀``."""

    def __init__(self, zdim: int, context: int, hidden: int, depth: int, steps: int, gate_bias: float):
        super().__init__()
        self.steps = nn.ModuleList(
            IafStep(zdim, context, hidden, depth, gate_bias, reverse=t % 2 == 1) for t in range(steps)
        )

    def forward(self, z0: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(z_T, log_det)``: ``log_det`` is ``Σ_t log(σ_t/g₀)`` per element, ``(B, zdim, H, W)``."""
        z, log_det = z0, 0.0
        for step in self.steps:
            z, log_gate = step(z, h)
            log_det = log_det + log_gate
        return z, log_det

    def inverse(self, z: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(z₀, log_det)``: the base point that flows to ``z`` and the forward map's per-element log-determinant
        there."""
        for step in reversed(self.steps):
            z = step.inverse(z, h)
        _, log_det = self(z, h)
        return z, log_det

    def pull_back(self, z0: Tensor, h: Tensor | None, grad: Tensor, weights: Tensor) -> Tensor:
        """``∇_z`` of ``φ(z₀) − Σ weights ⊙ log_det(z₀)`` with ``z₀ = flow⁻¹(z)``, given ``grad = ∇φ`` at ``z₀``;
        weights and ``h`` held fixed.

        With ``φ = log N(·; μ, σ)`` and ``weights = 1`` this is ``∇_z log q(z)`` at ``z = flow(z₀)``.
        The log-determinant is a sum of per-step terms, each a function of its step's input, so
        :meth:`IafStep.pull_back` carries the gradient forward one step at a time, from ``z₀``,
        without inverting anything.
        """
        z = z0
        for step in self.steps:
            z, grad = step.pull_back(z, h, grad, weights)
        return grad
