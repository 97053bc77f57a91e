"""Two small models of the other likelihood families, written only against ``genkit.interfaces``.

They show that the core trains, resumes, evaluates, samples, publishes and benchmarks any family
through the same commands as the VDVAE, and they are registered through the model hook like any
plugin (the tests install them with :func:`install_registry`).

* ``masked-ar``: an autoregressive model — masked convolutions (van den Oord et al. 2016; the first
  excludes the current pixel, the rest include it) and the ``dmol`` likelihood. Exact likelihood;
  two samplers, ``sequential`` (one pass per pixel) and ``fixed-point`` (every pixel redrawn from the
  same noise until nothing changes), which give the same images from the same noise.
* ``uniform-flow``: a normalising flow with uniform dequantization — the logit preprocessing of
  Flow++ on ``v = x + u``, per-channel activation normalisation (initialised from data) and affine
  couplings on a checkerboard (Dinh et al. 2017) to a standard normal. Its figure is the uniform
  dequantization bound; it is invertible and has an importance-weighted bound.
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from genkit.capabilities import DataDependentInit, ImportanceWeighted, Invertible
from genkit.components import component
from genkit.hookspecs import hookimpl
from genkit.interfaces import GenerativeModel, LossTerms, Objective, resolve_sampler
from genkit.schema import in_range

# --- an autoregressive model ------------------------------------------------------------------------


class MaskedConv2d(nn.Conv2d):
    """A same-padded convolution that sees only pixels before the centre in raster order (and the centre if asked)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, include_centre: bool):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(kernel_size, kernel_size)
        centre = kernel_size // 2
        mask[centre, centre + int(include_centre) :] = 0
        mask[centre + 1 :] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


@attrs.frozen
class MaskedARSettings:
    image_size: int = attrs.field(default=8, validator=in_range(1))
    image_channels: int = attrs.field(default=1, validator=in_range(1))
    width: int = attrs.field(default=16, validator=in_range(1))
    layers: int = attrs.field(default=2, validator=in_range(0))
    likelihood: object = component("likelihood", "dmol")


class MaskedAR(GenerativeModel):
    """PixelCNN-style masked convolutions with a DMOL output."""

    objective = Objective("exact negative log-likelihood", exact=True)
    samplers = ("sequential", "fixed-point")

    def __init__(self, settings: MaskedARSettings):
        super().__init__()
        c, width = settings.image_channels, settings.width
        self.image_shape = (settings.image_size, settings.image_size, c)
        self.likelihood = settings.likelihood.build("likelihood", channels=c, bits=8)
        layers = [MaskedConv2d(c, width, 5, include_centre=False)]
        layers += [MaskedConv2d(width, width, 3, include_centre=True) for _ in range(settings.layers)]
        self.convs = nn.ModuleList(layers)
        self.out = nn.Conv2d(width, self.likelihood.param_channels, 1)

    def params(self, x: Tensor) -> Tensor:
        """Likelihood parameters of every pixel from the pixels before it: ``(B, P, H, W)``."""
        h = x
        for conv in self.convs:
            h = F.elu(conv(h))
        return self.out(h)

    def _levels(self, images: Tensor) -> Tensor:
        return rearrange(images, "b h w c -> b c h w").to(self.out.weight.dtype) / 127.5 - 1.0

    def forward(self, images: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> LossTerms:
        x = self._levels(images)
        nll = -self.likelihood.log_prob(self.params(x), x) / self.dims_per_image
        return LossTerms(nll, {})

    @torch.no_grad()
    def sample(self, n, temperature=1.0, generator=None, sampler=None) -> Tensor:
        sampler = resolve_sampler(self, sampler)
        h, w, c = self.image_shape
        weight = self.out.weight
        x = torch.zeros(n, c, h, w, dtype=weight.dtype, device=weight.device)
        noise = self.likelihood.draw_noise(self.params(x), generator)  # every pixel's noise, drawn once
        if sampler == "sequential":
            for i in range(h):
                for j in range(w):
                    params = self.params(x)[:, :, i : i + 1, j : j + 1]
                    x[:, :, i : i + 1, j : j + 1] = self.likelihood.sample(
                        params, noise=noise[:, :, i : i + 1, j : j + 1]
                    )
        else:
            for _ in range(h * w):  # pixel k is final after k passes at the latest
                drawn = self.likelihood.sample(self.params(x), noise=noise)
                if torch.equal(drawn, x):
                    break
                x = drawn
        return rearrange(torch.round((x + 1.0) * 127.5).to(torch.uint8), "b c h w -> b h w c")


# --- a flow with uniform dequantization ---------------------------------------------------------------

ALPHA = 0.05  # the logit preprocessing of Flow++: s = α + (1 − 2α)·v/256


class ActNorm(nn.Module):
    """``y = (x − b)·exp(−log_scale)`` per channel, initialised so that a batch comes out with mean 0 and std 1."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def initialize(self, x: Tensor) -> None:
        self.bias.copy_(x.mean((0, 2, 3), keepdim=True))
        self.log_scale.copy_(torch.log(x.std((0, 2, 3), keepdim=True) + 1e-6))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h, w = x.shape[2:]
        return (x - self.bias) * torch.exp(-self.log_scale), -self.log_scale.sum() * h * w * x.new_ones(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        return y * torch.exp(self.log_scale) + self.bias


class Coupling(nn.Module):
    """Affine coupling on a checkerboard: the pixels of one parity are scaled and shifted given the others."""

    def __init__(self, channels: int, width: int, parity: int, size: int):
        super().__init__()
        rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        self.register_buffer("mask", ((rows + cols) % 2 == parity).float()[None, None], persistent=False)
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1), nn.ELU(), nn.Conv2d(width, 2 * channels, 3, padding=1)
        )
        nn.init.zeros_(self.net[-1].weight)  # a new coupling is the identity
        nn.init.zeros_(self.net[-1].bias)

    def _shift_and_log_scale(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.net(kept).chunk(2, dim=1)
        return shift * (1 - self.mask), torch.tanh(raw) * (1 - self.mask)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._shift_and_log_scale(x * self.mask)
        return x * torch.exp(log_scale) + shift, log_scale.flatten(1).sum(1)

    def inverse(self, y: Tensor) -> Tensor:
        shift, log_scale = self._shift_and_log_scale(y * self.mask)
        return (y - shift) * torch.exp(-log_scale)


@attrs.frozen
class UniformFlowSettings:
    image_size: int = attrs.field(default=8, validator=in_range(2))
    image_channels: int = attrs.field(default=1, validator=in_range(1))
    width: int = attrs.field(default=16, validator=in_range(1))
    couplings: int = attrs.field(default=4, validator=in_range(1))


class UniformFlow(GenerativeModel, DataDependentInit, ImportanceWeighted, Invertible):
    """Logit preprocessing, activation normalisation and checkerboard affine couplings on dequantized images."""

    objective = Objective(
        "uniform dequantization bound", key="bound", parts=("prior", "jacobian"), estimate="one draw of u per image"
    )
    samplers = ("inverse",)

    def __init__(self, settings: UniformFlowSettings):
        super().__init__()
        c, size = settings.image_channels, settings.image_size
        self.image_shape = (size, size, c)
        self.norm = ActNorm(c)
        self.couplings = nn.ModuleList(Coupling(c, settings.width, k % 2, size) for k in range(settings.couplings))

    def _dequantize(self, images: Tensor, latents: str, generator) -> Tensor:
        x = rearrange(images, "b h w c -> b c h w").to(self.norm.bias.dtype)
        u = torch.full_like(x, 0.5) if latents == "mean" else torch.rand(x.shape, generator=generator, dtype=x.dtype)
        return x + u.to(x.device)  # v in [0, 256)

    def _flow(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """(z, log|det ∂z/∂v|) per image, the preprocessing's Jacobian included."""
        s = ALPHA + (1 - 2 * ALPHA) * v / 256
        y = torch.log(s) - torch.log1p(-s)
        log_det = (math.log((1 - 2 * ALPHA) / 256) - torch.log(s) - torch.log1p(-s)).flatten(1).sum(1)
        y, norm_log_det = self.norm(y)
        log_det = log_det + norm_log_det
        for coupling in self.couplings:
            y, coupling_log_det = coupling(y)
            log_det = log_det + coupling_log_det
        return y, log_det

    def _inverse(self, z: Tensor) -> Tensor:
        for coupling in reversed(self.couplings):
            z = coupling.inverse(z)
        s = torch.sigmoid(self.norm.inverse(z))
        return (s - ALPHA) * 256 / (1 - 2 * ALPHA)

    def _log_density(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """(log N(z), log|det|) per image, nats."""
        z, log_det = self._flow(v)
        return (-0.5 * (z**2 + math.log(2 * math.pi))).flatten(1).sum(1), log_det

    def initialize(self, images: Tensor) -> None:
        s = ALPHA + (1 - 2 * ALPHA) * self._dequantize(images, "sample", None) / 256
        self.norm.initialize(torch.log(s) - torch.log1p(-s))

    def forward(self, images: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> LossTerms:
        prior, log_det = self._log_density(self._dequantize(images, latents, generator))
        parts = {"prior": -prior / self.dims_per_image, "jacobian": -log_det / self.dims_per_image}
        return LossTerms(parts["prior"] + parts["jacobian"], parts)

    def importance_log_weights(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        prior, log_det = self._log_density(self._dequantize(images, "sample", generator))
        return prior + log_det  # log q(u | x) = 0 for uniform noise on the unit cube

    def encode(self, images: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> Tensor:
        return self._flow(self._dequantize(images, latents, generator))[0]

    def decode(self, z: Tensor) -> Tensor:
        v = self._inverse(z)
        return rearrange(torch.floor(v).clamp(0, 255).to(torch.uint8), "b c h w -> b h w c")

    def inverse_error(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        v = self._dequantize(images, "sample", generator)
        return (self._inverse(self._flow(v)[0]) - v).abs().max()

    @torch.no_grad()
    def sample(self, n, temperature=1.0, generator=None, sampler=None) -> Tensor:
        resolve_sampler(self, sampler)
        h, w, c = self.image_shape
        weight = self.norm.bias
        z = torch.randn((n, c, h, w), generator=generator, dtype=weight.dtype, device=weight.device)
        return self.decode(z * temperature)


@hookimpl
def genkit_register_models(register):
    register("masked-ar", MaskedAR, config=MaskedARSettings, example=MaskedARSettings(image_size=4, width=8, layers=1))
    register(
        "uniform-flow", UniformFlow, config=UniformFlowSettings, example=UniformFlowSettings(image_size=4, width=8)
    )


def install_registry():
    """The process-wide registry: the built-in plugins and these two models."""
    import sys

    from genkit.registry import Registry, make_plugin_manager, set_registry

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(sys.modules[__name__], name="family_plugins")
    registry = Registry(pm)
    set_registry(registry)
    return registry
