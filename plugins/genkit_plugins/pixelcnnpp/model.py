"""PixelCNN++: an autoregressive model of images with a discretized logistic mixture likelihood.

Salimans, Karpathy, Chen & Kingma (2017), "PixelCNN++: Improving the PixelCNN with Discretized
Logistic Mixture Likelihood and Other Modifications", ICLR; reference implementation
openai/pixel-cnn (TensorFlow), and the PyTorch port pclucas14/pixel-cnn-pp whose checkpoints
``genkit convert pixelcnnpp`` reads. 2.92 bits/dim on CIFAR-10.

log p(x) = Σ_pixels log p(x_ij | x_<ij): a two-stream network of shifted convolutions
(``network.py``) gives, at every pixel, the parameters of a mixture of discretized logistics over
its three channels (the ``dmol`` likelihood, R → G → B inside the pixel) from the pixels before
it in raster order only. The figure is the exact negative log-likelihood in nats per dimension.
Weights are weight-normalised and initialised from one batch of data; sampling draws the pixels
in order with one of three samplers that give identical images (``sampling.py``).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from genkit.capabilities import DataDependentInit, Recomputable, RecomputableUnit
from genkit.errors import ConfigError, GenkitError
from genkit.interfaces import GenerativeModel, LossTerms, Objective, finite_outputs, resolve_sampler
from genkit_plugins.dmol import build_likelihood
from genkit_plugins.pixelcnnpp.config import PixelCNNPPConfig
from genkit_plugins.pixelcnnpp.kinds import NETWORK, InitialisedFromData
from genkit_plugins.pixelcnnpp.sampling import SAMPLERS
from genkit_plugins.pixelcnnpp.weightnorm import fixed_weights
from genkit_plugins.precision import at_least_float32

BITS = 8


@contextmanager
def evaluating(module: torch.nn.Module):
    """``module`` in eval mode for the duration, then back in the mode it was in."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class PixelCNNPP(GenerativeModel, DataDependentInit, Recomputable):
    """PixelCNN++ (Salimans et al. 2017): a causal two-stream network and the DMOL likelihood."""

    objective = Objective("exact negative log-likelihood", exact=True)
    samplers = tuple(SAMPLERS)
    bits = BITS

    def __init__(self, settings: PixelCNNPPConfig):
        super().__init__()
        self.config = settings
        self.image_shape = (settings.image_size, settings.image_size, settings.image_channels)
        self.likelihood = build_likelihood(
            settings.likelihood, channels=settings.image_channels, bits=BITS, num_mixtures=settings.nr_logistic_mix
        )
        self.network = settings.network.build(
            NETWORK,
            in_channels=settings.image_channels,
            out_channels=self.likelihood.param_channels,
            nr_resnet=settings.nr_resnet,
            nr_filters=settings.nr_filters,
            dropout=settings.dropout,
            num_classes=settings.num_classes,
        )
        if settings.image_size % self.network.row_multiple:
            raise ConfigError(
                f"pixelcnnpp: image_size {settings.image_size} is not a multiple of {self.network.row_multiple}, "
                f"which network {settings.network.name!r} needs"
            )

    # --- conversions ------------------------------------------------------------------------------

    def _dtype(self) -> torch.dtype:
        return next(self.network.parameters()).dtype

    def recomputable_units(self) -> list[RecomputableUnit]:
        """The network's units (for the two-stream U-Net: every gated block)."""
        return [
            RecomputableUnit(f"network.{unit.name}", unit.resolution, unit.module)
            for unit in self.network.recomputable_units(self.image_shape[0])
        ]

    def preprocess(self, images: Tensor) -> Tensor:
        """``uint8`` ``(B, H, W, C)`` -> ``(B, C, H, W)`` on the level grid in [-1, 1]: the input and the target."""
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != self.image_shape:
            raise ConfigError(
                f"pixelcnnpp: expected uint8 images of shape (B, {', '.join(map(str, self.image_shape))}), "
                f"found {images.dtype} {tuple(images.shape)}"
            )
        x = rearrange(images, "b h w c -> b c h w").to(device=next(self.network.parameters()).device)
        return x.to(self._dtype()) / 127.5 - 1.0

    @staticmethod
    def to_uint8(levels: Tensor) -> Tensor:
        """Level-grid values in [-1, 1] ``(B, C, H, W)`` -> ``uint8`` images ``(B, H, W, C)``."""
        return rearrange(torch.round((levels.clamp(-1, 1) + 1) * 127.5).to(torch.uint8), "b c h w -> b h w c")

    def condition(self, labels: Tensor | None, batch: int) -> Tensor | None:
        """One-hot class vectors ``(B, num_classes)`` for a class-conditional model, ``None`` otherwise."""
        k = self.config.num_classes
        if not k:
            if labels is not None:
                raise ConfigError("pixelcnnpp: labels given, but the model has num_classes = 0")
            return None
        if labels is None:
            raise ConfigError(f"pixelcnnpp: the model is class-conditional (num_classes = {k}) and needs labels")
        if tuple(labels.shape) != (batch,):
            raise ConfigError(f"pixelcnnpp: expected {batch} labels, found shape {tuple(labels.shape)}")
        return F.one_hot(labels.long().to(next(self.network.parameters()).device), k).to(self._dtype())

    # --- the objective ----------------------------------------------------------------------------

    def likelihood_params(self, images: Tensor, *, labels: Tensor | None = None) -> Tensor:
        """The likelihood's parameters ``(B, P, H, W)`` at every pixel given the pixels before it."""
        return self.network(self.preprocess(images), self.condition(labels, images.shape[0]))

    def forward(
        self,
        images: Tensor,
        latents: str = "sample",
        generator: torch.Generator | None = None,
        *,
        labels: Tensor | None = None,
    ) -> LossTerms:
        """−log p(x) in nats per dimension; no latent variables, so ``latents`` and ``generator`` change nothing
        (dropout, in train mode, draws from the global generator)."""
        x = self.preprocess(images)
        params = self.network(x, self.condition(labels, images.shape[0]))
        log_p = self.likelihood.log_prob(at_least_float32(params), at_least_float32(x))
        return LossTerms(nll=-log_p / self.dims_per_image, parts={})

    @torch.no_grad()
    def initialize(self, images: Tensor, *, labels: Tensor | None = None) -> None:
        """Data-dependent initialisation of every weight-normalised layer, in one forward pass in train mode (dropout
        on, as openai/pixel-cnn). A class-conditional model given no labels initialises without the class bias."""
        layers = [m for m in self.modules() if isinstance(m, InitialisedFromData)]
        for layer in layers:
            layer.arm_init()
        condition = self.condition(labels, images.shape[0]) if labels is not None else None
        was_training = self.training
        self.train()
        try:
            self.network(self.preprocess(images), condition)
        finally:
            self.train(was_training)
        unused = [name for name, m in self.named_modules() if isinstance(m, InitialisedFromData) and m.init_pending]
        if unused:
            raise GenkitError(f"pixelcnnpp: the initialising pass did not reach {', '.join(unused[:3])}")

    # --- generation -------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float | list[float] = 1.0,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
        *,
        labels: Tensor | None = None,
    ) -> Tensor:
        """``n`` images drawn pixel by pixel in raster order, in eval mode (no dropout), at temperature 1.

        The uniform noise for every pixel is drawn first, from ``generator``, so every sampler fed
        the same generator state gives the same images.
        """
        if isinstance(temperature, (list, tuple)) or float(temperature) != 1.0:
            raise ConfigError(f"pixelcnnpp samples at temperature 1 only (the DMOL has none), found {temperature}")
        draw = SAMPLERS[resolve_sampler(self, sampler)]
        h, w, c = self.image_shape
        device = next(self.network.parameters()).device
        shape_of_params = torch.empty((), dtype=self._dtype(), device=device).expand(
            n, self.likelihood.param_channels, h, w
        )
        noise = self.likelihood.draw_noise(shape_of_params, generator)
        x = torch.zeros(n, c, h, w, dtype=self._dtype(), device=device)
        with evaluating(self), fixed_weights(self.network):
            levels = draw(self.network, self.likelihood, x, noise, self.condition(labels, n))
        return self.to_uint8(finite_outputs(levels, "pixelcnnpp"))
