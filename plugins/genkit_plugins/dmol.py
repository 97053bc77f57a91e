"""The discretized logistic mixture likelihood (DMOL) of PixelCNN++.

Salimans, Karpathy, Chen & Kingma (2017), "PixelCNN++: improving the PixelCNN with discretized
logistic mixture likelihood and other modifications", ICLR, as used by the Very Deep VAE (Child 2021,
openai/vdvae). Every pixel is a mixture of ``M`` logistics shared by its channels; for RGB the means
of G and B depend linearly on the (observed) R and G values of the same pixel.

Parameter layout, ``(B, P, H, W)``, the channel-first twin of the reference's ``(B, H, W, 10·M)``:
``M`` mixture logits, then for each channel ``[M means, M log-scales, M coefficients]`` (P = 10·M for
RGB). The coefficients (after ``tanh``) are: channel 0's slot = G on R, channel 1's = B on R,
channel 2's = B on G. One-channel images use the natural reduction with no coefficients at all:
``M`` logits, ``M`` means, ``M`` log-scales (P = 3·M).

Numerics follow the reference exactly, generalised to ``b`` bits: half-bin ``1/(2^b−1)``; values
below −0.999 take the whole lower tail and values above 0.999 the whole upper tail; log-scales are
floored at −7; where a bin's mass is below 1e-5 the log-density at the bin centre minus
``log((2^b−1)/2)`` replaces it (127.5 for 8 bits, 15.5 for 5 bits).
"""

from __future__ import annotations

import math

import attrs
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from genkit.components import ComponentRef
from genkit.errors import ConfigError
from genkit.hookspecs import hookimpl
from genkit.interfaces import Likelihood
from genkit.schema import in_range

LOG_SCALE_FLOOR = -7.0
EDGE = 0.999  # targets beyond ±EDGE are the first/last level: their bins extend to ∓infinity
MIN_BIN_MASS = 1e-5  # below this, the bin mass is replaced by density × bin width (the mid-point branch)


@attrs.frozen
class DMOLConfig:
    """Settings of the ``dmol`` likelihood."""

    #: mixture components per pixel; ``None`` takes the assembling model's ``num_mixtures`` (VDVAE), else 10
    num_mixtures: int | None = attrs.field(default=None, validator=in_range(1))


def build_likelihood(ref: ComponentRef, *, channels: int, bits: int, num_mixtures: int) -> Likelihood:
    """The likelihood plugin ``ref`` names, given the model's ``num_mixtures`` where its settings leave the mixture
    count open (``num_mixtures = None``: the reference names the count in the model's section)."""
    spec = ref.spec("likelihood")
    own = ref.settings if ref.settings is not None else spec.config()
    if getattr(own, "num_mixtures", 0) is None:
        own = attrs.evolve(own, num_mixtures=num_mixtures)
    return spec.build(own, channels=channels, bits=bits)


class DiscretizedLogisticMixture(Likelihood):
    """Discretized mixture of logistics with linear R→G→B dependence (PixelCNN++, Salimans et al. 2017)."""

    def __init__(self, settings: DMOLConfig, *, channels: int, bits: int):
        super().__init__()
        if channels not in (1, 3):
            raise ConfigError(f"likelihood 'dmol': expected 1 or 3 image channels, found {channels}")
        if not 1 <= bits <= 16:
            raise ConfigError(f"likelihood 'dmol': expected between 1 and 16 bits per channel, found {bits}")
        self.channels, self.bits = channels, bits
        self.num_mixtures = settings.num_mixtures or 10
        self.half_bin = 1.0 / (2**bits - 1)
        self.log_half_levels = math.log((2**bits - 1) / 2)  # log(127.5) for 8 bits, log(15.5) for 5

    @property
    def param_channels(self) -> int:
        per_channel = 3 if self.channels == 3 else 2
        return self.num_mixtures * (1 + per_channel * self.channels)

    def _split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """logits (B,M,H,W); means, log-scales (B,C,M,H,W); tanh'd coefficients (B,C,M,H,W) or None."""
        m = self.num_mixtures
        if params.shape[1] != self.param_channels:
            raise ValueError(f"dmol expects {self.param_channels} parameter channels, got {params.shape[1]}")
        per_channel = rearrange(params[:, m:], "b (c k m) h w -> b c k m h w", c=self.channels, m=m)
        log_scales = torch.clamp(per_channel[:, :, 1], min=LOG_SCALE_FLOOR)
        coeffs = torch.tanh(per_channel[:, :, 2]) if self.channels == 3 else None
        return params[:, :m], per_channel[:, :, 0], log_scales, coeffs

    @staticmethod
    def _conditional_means(means: Tensor, coeffs: Tensor | None, x: Tensor) -> Tensor:
        """Shift G's means by c·R and B's by c·R + c'·G, with ``x`` (B,C,1,H,W) the values conditioned on."""
        if coeffs is None:
            return means
        red = means[:, 0]
        green = means[:, 1] + coeffs[:, 0] * x[:, 0]
        blue = means[:, 2] + coeffs[:, 1] * x[:, 0] + coeffs[:, 2] * x[:, 1]
        return torch.stack([red, green, blue], dim=1)

    def log_prob_per_pixel(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(pixel) in nats, summed over channels and mixed over components: ``(B, H, W)``."""
        logits, means, log_scales, coeffs = self._split(params)
        x = x.unsqueeze(2)  # (B, C, 1, H, W): broadcasts against the mixture axis
        centered = x - self._conditional_means(means, coeffs, x)
        inv_scale = torch.exp(-log_scales)
        plus_in = inv_scale * (centered + self.half_bin)
        min_in = inv_scale * (centered - self.half_bin)
        cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
        log_cdf_plus = plus_in - F.softplus(plus_in)  # log σ(plus_in): the lowest level's bin
        log_one_minus_cdf_min = -F.softplus(min_in)  # log(1 − σ(min_in)): the highest level's bin
        mid_in = inv_scale * centered
        log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
        log_probs = torch.where(
            x < -EDGE,
            log_cdf_plus,
            torch.where(
                x > EDGE,
                log_one_minus_cdf_min,
                torch.where(
                    cdf_delta > MIN_BIN_MASS,
                    torch.log(torch.clamp(cdf_delta, min=1e-12)),
                    log_pdf_mid - self.log_half_levels,
                ),
            ),
        )
        log_probs = log_probs.sum(dim=1) + torch.log_softmax(logits, dim=1)  # (B, M, H, W)
        return torch.logsumexp(log_probs, dim=1)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self.log_prob_per_pixel(params, x).sum(dim=(1, 2))

    def _quantise(self, x: Tensor) -> Tensor:
        """Snap values in [-1, 1] to the nearest level ``2k/(2^b−1) − 1``."""
        top = 2**self.bits - 1
        return torch.round((x.clamp(-1.0, 1.0) + 1.0) * (top / 2)) * (2.0 / top) - 1.0

    def _select_and_draw(self, params: Tensor, component: Tensor, noise: Tensor | None) -> Tensor:
        """Channel by channel, each conditioned on the already-drawn (quantised) channels before it."""
        _, means, log_scales, coeffs = self._split(params)
        one_hot = rearrange(F.one_hot(component, self.num_mixtures).to(params.dtype), "b h w m -> b 1 m h w")
        means = (means * one_hot).sum(2)  # (B, C, H, W)
        scales = torch.exp((log_scales * one_hot).sum(2))
        coeffs = (coeffs * one_hot).sum(2) if coeffs is not None else None
        draws = []
        for c in range(self.channels):
            mean = means[:, c]
            if c == 1:
                mean = mean + coeffs[:, 0] * draws[0]
            elif c == 2:
                mean = mean + coeffs[:, 1] * draws[0] + coeffs[:, 2] * draws[1]
            value = mean if noise is None else mean + scales[:, c] * noise[:, c]
            # quantising before conditioning makes this an exact draw from the discrete distribution
            # (the reference conditions on the unquantised value)
            draws.append(self._quantise(value))
        return torch.stack(draws, dim=1)

    @property
    def noise_channels(self) -> int:
        """One uniform number per component (Gumbel-max choice of the component), then one per channel."""
        return self.num_mixtures + self.channels

    def draw_noise(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        b, _, h, w = params.shape
        # the component uniforms, then the channel uniforms: two draws, in that order
        shape = (b, self.num_mixtures, h, w), (b, self.channels, h, w)
        return torch.cat(
            [torch.rand(s, generator=generator, dtype=params.dtype, device=params.device) for s in shape], 1
        )

    @torch.no_grad()
    def sample(self, params: Tensor, generator: torch.Generator | None = None, noise: Tensor | None = None) -> Tensor:
        m = self.num_mixtures
        noise = self.draw_noise(params, generator) if noise is None else noise.to(params.dtype)
        u = noise.clamp(MIN_BIN_MASS, 1.0 - MIN_BIN_MASS)
        # Gumbel-max picks the component; a logistic draw is log(u) − log(1 − u)
        gumbel = -torch.log(-torch.log(u[:, :m]))
        component = torch.argmax(params[:, :m] + gumbel, dim=1)  # (B, H, W)
        logistic = torch.log(u[:, m:]) - torch.log1p(-u[:, m:])
        return self._select_and_draw(params, component, logistic)

    @torch.no_grad()
    def mode(self, params: Tensor) -> Tensor:
        """The most likely component's means, channel by channel, quantised."""
        return self._select_and_draw(params, torch.argmax(params[:, : self.num_mixtures], dim=1), None)


@hookimpl
def genkit_register_likelihoods(register):
    register(
        "dmol",
        DiscretizedLogisticMixture,
        config=DMOLConfig,
        description="Discretized logistic mixture with linear R→G→B dependence (PixelCNN++), any bit depth",
        example=DMOLConfig(num_mixtures=3),
    )
