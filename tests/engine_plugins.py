"""A tiny but real generative model for the engine tests, registered through the model hook like any plugin.

``pixels``: every dimension (row, column, channel) has its own categorical distribution over the
256 levels, optionally shifted by one scalar Gaussian latent per image (a one-layer VAE):
q(z|x) = N(a·m(x) + b, s²) with m(x) the image's mean level in [-1, 1], p(z) = N(0, 1), and
p(x|z) = Π_d Categorical(softmax(logits_d + z·direction_d)). Without the latent it is the
per-pixel histogram model, whose likelihood NumPy computes independently in the tests.
"""

from __future__ import annotations

import math

import attrs
import torch
from torch import nn

from genkit.capabilities import DataDependentInit, ImportanceWeighted, LatentVariables
from genkit.hookspecs import hookimpl
from genkit.interfaces import GenerativeModel, LossTerms, Objective
from genkit.schema import in_range


@attrs.frozen
class PixelSettings:
    image_size: int = attrs.field(default=8, validator=in_range(1))
    channels: int = attrs.field(default=1, validator=in_range(1))
    latent: bool = False
    init_scale: float = 0.1


class PixelModel(GenerativeModel, LatentVariables, ImportanceWeighted):
    """Independent categorical per dimension, plus an optional scalar latent per image."""

    objective = Objective("negative ELBO", key="elbo", parts=("distortion", "rate"), estimate="one posterior sample")
    n_latent_layers = 1
    layer_resolutions = [1]

    def __init__(self, settings: PixelSettings):
        super().__init__()
        self.image_shape = (settings.image_size, settings.image_size, settings.channels)
        self.logits = nn.Parameter(torch.randn(*self.image_shape, 256) * settings.init_scale)
        self.has_latent = settings.latent
        if self.has_latent:
            self.direction = nn.Parameter(torch.randn(*self.image_shape, 256) * settings.init_scale)
            self.posterior = nn.Parameter(torch.tensor([1.0, 0.0, -1.0]))  # a, b, log s

    def _posterior(self, images):
        m = images.float().mean((1, 2, 3)) / 127.5 - 1.0
        a, b, log_s = self.posterior
        return a * m + b, log_s.expand_as(m)

    def _log_px(self, images, z):
        logits = self.logits if z is None else self.logits + z[:, None, None, None, None] * self.direction
        logp = torch.log_softmax(logits.float(), -1).expand(images.shape[0], *logits.shape[-4:])
        return logp.gather(-1, images.long()[..., None]).squeeze(-1).sum((1, 2, 3))  # nats per image

    def forward(self, images, latents="sample", generator=None):
        dims = self.dims_per_image
        if not self.has_latent:
            distortion = -self._log_px(images, None) / dims
            rate = torch.zeros_like(distortion)
            kl = rate[:, None]
        else:
            mean, log_s = self._posterior(images)
            z = mean if latents == "mean" else mean + log_s.exp() * torch.randn_like(mean)
            kl = 0.5 * (mean**2 + (2 * log_s).exp() - 1) - log_s  # KL(N(mean, s²) ‖ N(0, 1))
            distortion = -self._log_px(images, z) / dims
            rate = kl / dims
            kl = kl[:, None]
        elbo = distortion + rate
        return LossTerms(elbo, {"distortion": distortion, "rate": rate}, kl)

    def importance_log_weights(self, images, generator=None):
        if not self.has_latent:
            return self._log_px(images, None)
        mean, log_s = self._posterior(images)
        z = mean + log_s.exp() * torch.randn_like(mean)
        log_q = -0.5 * ((z - mean) / log_s.exp()) ** 2 - log_s - 0.5 * math.log(2 * math.pi)
        log_p = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
        return self._log_px(images, z) + log_p - log_q

    @torch.no_grad()
    def sample(self, n, temperature=1.0, generator=None, sampler=None, latents="sample"):
        z = None
        if self.has_latent:
            (t,) = temperature if isinstance(temperature, (list, tuple)) else (temperature,)  # one latent layer
            z = torch.randn(n, generator=generator, device=self.logits.device) * (0.0 if latents == "mean" else t)
        logits = (
            self.logits.expand(n, *self.logits.shape)
            if z is None
            else self.logits + z[:, None, None, None, None] * self.direction
        )
        probs = torch.softmax(logits.float(), -1).reshape(-1, 256)
        return torch.multinomial(probs, 1, generator=generator).reshape(n, *self.image_shape).to(torch.uint8)

    @torch.no_grad()
    def reconstruct(self, images, keep_layers, temperature=1.0, generator=None):
        z = self._posterior(images)[0] if self.has_latent and keep_layers >= 1 else None
        logits = self.logits if z is None else self.logits + z[:, None, None, None, None] * self.direction
        return logits.expand(images.shape[0], *self.logits.shape[-4:]).argmax(-1).to(torch.uint8)

    @torch.no_grad()
    def pictures(self, images, *, generator, temperature):
        """Each image beside its reconstruction from the posterior."""
        pairs = torch.stack([images, self.reconstruct(images, 1, temperature, generator)], dim=1)
        return {"reconstructions": (pairs.flatten(0, 1), 2)}


class InitialisedPixelModel(PixelModel, DataDependentInit):
    """``pixels`` whose logits start at the log-histogram of a batch (plus the rank, under torch.distributed,
    so that a test sees whether rank 0's initialisation reached every rank)."""

    @torch.no_grad()
    def initialize(self, images):
        counts = torch.nn.functional.one_hot(images.long(), 256).float().sum(0)  # (H, W, C, 256)
        offset = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        self.logits.copy_(torch.log(counts + 1.0) + offset)


@hookimpl
def genkit_register_models(register):
    register("pixels", PixelModel, config=PixelSettings)
    register("pixels-init", InitialisedPixelModel, config=PixelSettings)


def install_registry():
    """Make the process-wide registry the built-in plugins plus this module (also used in spawned workers)."""
    import sys

    from genkit.registry import Registry, make_plugin_manager, set_registry

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(sys.modules[__name__], name="engine_plugins")
    registry = Registry(pm)
    set_registry(registry)
    return registry


def ddp_worker(rank: int, world_size: int, port: int, raw_recipe: dict, out: str) -> None:
    """One rank of a ``torch.multiprocessing.spawn`` run (gloo on CPU): train, then save this rank's weights."""
    import os

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    install_registry()
    from genkit.engine.trainer import train
    from genkit.recipe import recipe_from_dict

    result = train(recipe_from_dict(raw_recipe, file="ddp.toml"), run_dir=f"{out}/run")
    torch.save({k: v.clone() for k, v in result.model.state_dict().items()}, f"{out}/rank{rank}.pt")
    torch.save({k: v.clone() for k, v in result.ema_model.state_dict().items()}, f"{out}/rank{rank}-ema.pt")
