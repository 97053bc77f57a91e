"""The contracts every plugin of a kind fulfils. ``genkit.testing`` checks them for every registered plugin.

Conventions shared by all of them:

* **Images** enter and leave models as ``uint8`` tensors of shape ``(B, H, W, C)``, the layout of
  the data files. Everything inside a model is ``(B, C, H, W)``.
* **Likelihood targets** are floats in ``[-1, 1]``: level ``k`` of ``2**bits`` maps to
  ``2k / (2**bits - 1) - 1`` (so 8-bit ``x`` maps to ``x / 127.5 - 1``).
* **Units**: log-likelihoods, KLs and losses are in **nats**; per-dimension figures divide by
  ``C·H·W``; bits/dim = nats/dim ÷ ln 2 (:func:`nats_to_bits`).
* Factories are called as ``factory(settings, **context)``: ``settings`` is the plugin's own
  validated attrs config, ``context`` what the assembling model supplies (widths, channels…).

A model is a :class:`GenerativeModel`. What it can do beyond training, evaluation and sampling
it declares by also deriving from a capability class of :mod:`genkit.capabilities`, never by the
presence of a method.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import attrs
import torch
from torch import Tensor, nn

from genkit.errors import ConfigError, DivergedError, printable

if TYPE_CHECKING:
    from genkit.recipe import Recipe

LN2 = math.log(2.0)


def nats_to_bits(nats_per_dim):
    """Nats per dimension to bits per dimension (a float or a tensor)."""
    return nats_per_dim / LN2


def levels(bits: int, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """The ``2**bits`` target values in [-1, 1] of a ``bits``-bit channel, in order."""
    return torch.linspace(-1.0, 1.0, 2**bits, dtype=dtype)


# --- likelihoods ---------------------------------------------------------------------------------


class Likelihood(nn.Module, ABC):
    """p(x | params): a distribution over images with ``channels`` channels of ``bits`` bits.

    Built as ``factory(settings, channels=C, bits=b)``. ``params`` is ``(B, param_channels, H, W)``
    and ``x`` is ``(B, C, H, W)`` on the level grid in [-1, 1]. Differentiable in ``params``.

    A draw is a deterministic function of uniform noise ``(B, noise_channels, H, W)`` in (0, 1):
    ``sample(params, noise=u)`` with the same ``u`` gives the same draw, so two samplers fed the
    same noise can be compared image for image. ``sample(params, generator=g)`` is
    ``sample(params, noise=draw_noise(...same shape..., generator=g))``.
    """

    channels: int
    bits: int

    @property
    @abstractmethod
    def param_channels(self) -> int:
        """How many parameter channels per pixel the network must output."""

    @property
    @abstractmethod
    def noise_channels(self) -> int:
        """How many uniform numbers per pixel one draw consumes."""

    @abstractmethod
    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """log p(x | params) per example, in nats, summed over every dimension: ``(B,)``."""

    @abstractmethod
    def sample(self, params: Tensor, generator: torch.Generator | None = None, noise: Tensor | None = None) -> Tensor:
        """A draw ``(B, C, H, W)`` on the level grid in [-1, 1], from ``noise`` when given. Not differentiable."""

    @abstractmethod
    def mode(self, params: Tensor) -> Tensor:
        """A deterministic point summary ``(B, C, H, W)`` on the level grid (e.g. the most likely component's mean)."""

    def draw_noise(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Uniform noise ``(B, noise_channels, H, W)`` for a draw at ``params``, in ``params``' dtype and device."""
        b, _, h, w = params.shape
        return torch.rand((b, self.noise_channels, h, w), generator=generator, dtype=params.dtype, device=params.device)


# --- latent distributions --------------------------------------------------------------------------


class LatentDistribution(ABC):
    """A distribution over latents of shape ``(B, zdim, H, W)``, every element a dimension."""

    @property
    @abstractmethod
    def mean(self) -> Tensor:
        """The mean ``(B, zdim, H, W)`` (used by the deterministic 'latents at their mean' mode)."""

    @abstractmethod
    def rsample(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised draw ``(B, zdim, H, W)``: differentiable in the distribution's parameters."""

    @abstractmethod
    def log_prob(self, z: Tensor) -> Tensor:
        """log density per element, nats, ``(B, zdim, H, W)``."""

    def kl(self, other: LatentDistribution) -> Tensor | None:
        """Analytic KL(self ‖ other) per element ``(B, zdim, H, W)``, or ``None`` where there is no closed form."""
        return None

    def path_log_prob(self, z: Tensor) -> Tensor:
        """``log_prob(z)`` in value, with a gradient that reaches this distribution's parameters only through ``z``.

        The path derivative of Roeder, Wu & Duvenaud (2017), "Sticking the Landing": the parameters
        (the network output that built the distribution, and any weights its family holds) are
        constants of the density, so for a reparameterised draw ``z`` the gradient of ``log q(z)``
        drops the score ``∂/∂θ log q_θ(z)`` at fixed ``z``. The score has expectation zero under
        ``z ~ q``, so the expected gradient is unchanged; where ``q`` matches what it is fitted to (a
        latent layer at its prior, or at the exact posterior) it is all the noise there is, and
        without it that gradient vanishes draw by draw. Far from that, the path term alone can be
        the noisier of the two. With ``z`` held fixed no gradient reaches the parameters.

        The default is ``log_prob(z)`` itself, the total gradient: a family overrides it where it can
        hold its parameters fixed.
        """
        return self.log_prob(z)


def kl_divergence(q: LatentDistribution, p: LatentDistribution, z: Tensor) -> Tensor:
    """KL(q ‖ p) per element ``(B, zdim, H, W)``, for ``z`` a reparameterised draw of ``q``.

    Analytic where ``q.kl(p)`` gives it. Otherwise the one-sample Monte-Carlo estimate
    ``log q(z) − log p(z)``, unbiased in value, with ``log q`` from ``q.path_log_prob``: its
    gradient is unbiased too, and the part that reaches ``q``'s parameters vanishes where ``q``
    equals ``p``.
    """
    analytic = q.kl(p)
    if analytic is not None:
        return analytic
    return q.path_log_prob(z) - p.log_prob(z)


class LatentFamily(nn.Module, ABC):
    """Turns a network's output into a latent distribution; usable as prior or posterior.

    Built as ``factory(settings, zdim=Z)``. ``forward(params, temperature)`` takes
    ``(B, param_channels, H, W)``. ``temperature`` scales the spread (1 = the distribution
    itself; for a Gaussian, σ·t). May hold parameters of its own (e.g. flow weights).
    """

    zdim: int

    @property
    @abstractmethod
    def param_channels(self) -> int:
        """How many channels the network that parameterises this family must output."""

    @abstractmethod
    def forward(self, params: Tensor, temperature: float | Tensor = 1.0) -> LatentDistribution: ...


class Block(nn.Module, ABC):
    """A shape-preserving network block ``(B, in_width, H, W) -> (B, out_width, H, W)``.

    Built as ``factory(settings, in_width=, middle_width=, out_width=, resolution=, residual=,
    zero_last=, last_scale=)``: ``resolution`` is H (so blocks may change kernel sizes at small
    resolutions); ``residual`` adds the input (needs ``in_width == out_width``); ``zero_last``
    starts the last layer at zero; ``last_scale`` multiplies the last layer's initial weights.
    """


class Upsampler(nn.Module, ABC):
    """``(B, C, H, W) -> (B, C, H·factor, W·factor)``. Built as ``factory(settings)``."""

    @abstractmethod
    def forward(self, x: Tensor, factor: int) -> Tensor: ...


class Downsampler(nn.Module, ABC):
    """``(B, C, H, W) -> (B, C, H/factor, W/factor)``. Built as ``factory(settings)``."""

    @abstractmethod
    def forward(self, x: Tensor, factor: int) -> Tensor: ...


# --- models ----------------------------------------------------------------------------------------


@attrs.frozen
class Objective:
    """What a model's per-image figure is, so that every report can name it and its parts.

    ``label`` is printed beside every figure ("negative ELBO", "exact negative log-likelihood",
    "variational dequantization bound"). ``key`` names it in per-image results: ``genkit eval
    --images --json`` writes ``nll_nats_per_dim`` for every model and, when ``key`` is not "nll",
    the same values as ``{key}_nats_per_dim`` too (e.g. ``elbo_nats_per_dim``). ``parts``
    are the names of :attr:`LossTerms.parts`, in the order they are printed (``distortion``,
    ``rate``); a model whose figure has no parts gives none. ``exact`` is true when ``nll`` is
    −log p(x) itself rather than an upper bound on it. ``estimate`` says how one evaluation draws
    the figure's random variables, when it has any ("one posterior sample per image").
    """

    # a model plugin's own words, printed by every report: shown as text, never obeyed by the terminal
    label: str = attrs.field(converter=printable)
    key: str = "nll"
    parts: tuple[str, ...] = attrs.field(default=(), converter=lambda parts: tuple(printable(p) for p in parts))
    exact: bool = False
    estimate: str = attrs.field(default="", converter=printable)

    def parts_text(self, figures: Mapping[str, float], suffix: str = "", digits: int = 4) -> str:
        """``distortion 1.4082 + rate 0.4269``: the parts as ``figures`` holds them (under name + ``suffix``).

        Empty when the objective has no parts, or ``figures`` lacks a number for one of them.
        """
        values = [figures.get(name + suffix) for name in self.parts]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            return ""
        return " + ".join(f"{name} {value:.{digits}f}" for name, value in zip(self.parts, values))


class LossTerms(NamedTuple):
    """What a model's forward pass returns. Per-example figures are nats per dimension, ``(B,)``.

    ``parts`` holds one ``(B,)`` tensor per name in the model's ``objective.parts``; they sum to
    ``nll``. ``layer_kl`` is optional: a latent-variable model's KL of every latent layer, nats per
    image, ``(B, L)``.
    """

    nll: Tensor
    parts: dict[str, Tensor]
    layer_kl: Tensor | None = None

    @property
    def loss(self) -> Tensor:
        """The scalar to minimise: the mean of ``nll`` over the batch."""
        return self.nll.mean()


class GenerativeModel(nn.Module, ABC):
    """A likelihood-based model of ``uint8`` images ``(B, H, W, C)``. Built as ``factory(settings)``.

    Declares ``objective`` (what ``nll`` is) and ``samplers`` (the names ``sample`` accepts, the
    first being the default).
    """

    #: (H, W, C) of the images the model takes and makes
    image_shape: tuple[int, int, int]
    #: the bit depth its figure is over: ``2**bits`` levels per channel, a level being a pixel's top ``bits`` bits
    #: (the data sets' convention); it must be the depth the data set declares (:mod:`genkit.pairing`)
    bits: int = 8
    #: what ``forward``'s ``nll`` is and which parts it sums
    objective: ClassVar[Objective]
    #: the names of the model's sampling procedures; the first is the default
    samplers: ClassVar[tuple[str, ...]] = ("ancestral",)
    #: the resolved recipe the model was built from (:func:`genkit.models.build_model` sets it): what
    #: ``save_pretrained`` records and where commands find the model's data set; ``None`` for a model built by hand
    recipe: Recipe | None = None
    #: where the weights came from, as the model directory's ``config.json`` records it
    #: (:func:`genkit.pretrained.load_model_dir` sets it): ``{"step": 1000}`` for a checkpoint of ``genkit run``,
    #: ``{"converted_from": path}`` for ``genkit convert``, ``{}`` when it records neither; ``None`` when not loaded
    provenance: dict[str, Any] | None = None

    @property
    def dims_per_image(self) -> int:
        h, w, c = self.image_shape
        return h * w * c

    @abstractmethod
    def forward(self, images: Tensor, latents: str = "sample", generator: torch.Generator | None = None) -> LossTerms:
        """The training objective and its parts for a batch of ``uint8`` images.

        ``latents="sample"`` draws the objective's random variables (latents, dequantization
        noise) as in training, from ``generator`` when given; ``latents="mean"`` puts every one
        at its mean, a deterministic mode for exact comparisons. A model whose objective has no
        random variables ignores both.
        """

    @abstractmethod
    def sample(
        self,
        n: int,
        temperature: float | list[float] = 1.0,
        generator: torch.Generator | None = None,
        sampler: str | None = None,
    ) -> Tensor:
        """``n`` new ``uint8`` images ``(n, H, W, C)`` drawn by ``sampler`` (default: ``samplers[0]``).

        Every sampler of a model draws the same distribution; fed the same ``generator`` state,
        samplers that differ only in how they compute (cached or not) give the same images.
        ``temperature`` scales the model's noise (a list, one value per latent layer, only for
        :class:`genkit.capabilities.LatentVariables`).
        """

    def pictures(
        self, images: Tensor, *, generator: torch.Generator | None, temperature: float
    ) -> dict[str, tuple[Tensor, int]]:
        """Family-specific pictures drawn at every validation, beside the samples.

        Returns ``{name: (uint8 images (N, H, W, C), columns)}``, each saved as one grid. ``images``
        are a few validation images ``(B, H, W, C)``. The default draws none; a latent-variable model may
        draw its reconstructions from each depth of its hierarchy
        (:meth:`genkit.capabilities.LatentVariables.reconstruction_grid`).
        """
        return {}


def finite_outputs(values: Tensor, model: str) -> Tensor:
    """``values``, what a model draws its images from (a likelihood's parameters, a flow's inverse), if all are
    finite; else a :class:`~genkit.errors.DivergedError`. Finite weights can still overflow, and a NaN becomes a
    black pixel: a grid that looks like a result. One read back to the host; none on the meta device, which has
    only shapes."""
    if values.device.type == "meta":
        return values
    finite = torch.isfinite(values)
    if bool(finite.all()):
        return values
    raise DivergedError(
        f"{model}: {int((~finite).sum())} of the {values.numel()} values its images are drawn from are NaN or infinite"
    )


def resolve_sampler(model: GenerativeModel, sampler: str | None) -> str:
    """``sampler``, or the model's default when ``None``; one line naming the model's samplers when unknown."""
    if sampler is None:
        return model.samplers[0]
    if sampler not in model.samplers:
        raise ConfigError(
            f"sampler {sampler!r}: a {type(model).__name__} samples with {', '.join(repr(s) for s in model.samplers)}"
        )
    return sampler


# --- data sets -------------------------------------------------------------------------------------


class ImageDataset(ABC):
    """A data set of ``uint8`` images. Built as ``factory(settings)``.

    ``split(name)`` for ``name`` in ``train``, ``validation``, ``test`` returns a map-style
    ``torch.utils.data.Dataset`` whose items are ``uint8`` tensors ``(H, W, C)``.
    ``validation_is_test`` is true when the validation split holds the test images (a data set with
    no hold-out of its own), so nothing may be tuned on it that is then reported on test.
    """

    image_shape: tuple[int, int, int]
    bits: int = 8
    validation_is_test: bool = False

    @abstractmethod
    def split(self, name: str) -> torch.utils.data.Dataset: ...
